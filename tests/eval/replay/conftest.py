"""Fixtures on the real agent sessions in ../shared/data/agent_sessions (skipped, saying so,
when that folder is absent). The raw_* fixtures read the files with tarfile/json only, so the
tests can count and sum independently of the code under test."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from eval.replay.session import ReplaySession
from eval.replay.sources import load_sessions


@pytest.fixture(scope="session")
def agent_sessions(shared_data: Path) -> Path:
    folder = shared_data / "agent_sessions"
    if not folder.is_dir():
        pytest.skip(f"real agent sessions folder {folder} is absent on this machine")
    return folder


@pytest.fixture(scope="session")
def transcripts_tar(agent_sessions: Path) -> Path:
    return agent_sessions / "claude_code" / "transcripts.tar.gz"


@pytest.fixture(scope="session")
def raw_transcripts(transcripts_tar: Path) -> dict[str, list[dict[str, Any]]]:
    """Member name -> its JSON lines, straight from the archive."""
    out: dict[str, list[dict[str, Any]]] = {}
    with tarfile.open(transcripts_tar) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".jsonl"):
                handle = archive.extractfile(member)
                assert handle is not None
                lines = handle.read().decode().splitlines()
                out[member.name.removeprefix("./")] = [json.loads(x) for x in lines if x.strip()]
    return out


@pytest.fixture(scope="session")
def transcript_dir(transcripts_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive unpacked, as the files sit under ~/.claude/projects/<project>/."""
    out = tmp_path_factory.mktemp("claude-project")
    with tarfile.open(transcripts_tar) as archive:
        archive.extractall(out, filter="data")
    return out


@pytest.fixture(scope="session")
def claude_sessions(transcripts_tar: Path) -> dict[str, ReplaySession]:
    """Every Claude Code session, parsed by the code under test, by file name in the archive."""
    loaded = load_sessions([transcripts_tar])
    return {str(s.path).split("!", 1)[1]: s for s in loaded.sessions}


@pytest.fixture(scope="session")
def raw_tau(agent_sessions: Path) -> list[dict[str, Any]]:
    path = agent_sessions / "tau_bench" / "gpt-4o-airline.json.gz"
    data: list[dict[str, Any]] = json.loads(gzip.decompress(path.read_bytes()))
    return data
