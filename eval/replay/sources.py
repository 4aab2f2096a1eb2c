"""PATH arguments -> ReplaySessions, whatever they hold. Local files only.

- a folder is walked (e.g. ~/.claude/projects/<project>/, with its `subagents/` folders);
- `*.jsonl`: a Claude Code transcript, or a `tierwise export-log` file (told apart by content);
- `*.json` / `*.json.gz`: OpenAI-format trajectories (tau-bench); their tool schemas come from
  `tools_file`, else from the one `*tools.json` next to them;
- `*.tar.gz` / `*.tgz`: the same, read from the archive's members without unpacking it.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from eval.replay.calllog import is_calllog_record, read_export
from eval.replay.claude_code import read_transcript
from eval.replay.errors import ReplayError
from eval.replay.session import ReplaySession
from eval.replay.tau_bench import is_trajectories, read_trajectories

log = logging.getLogger(__name__)

ARCHIVES = (".tar.gz", ".tgz")
FORMATS = "Claude Code transcripts (.jsonl), tierwise export-log files (.jsonl), OpenAI-format trajectories (.json, .json.gz) and .tar.gz archives of them"


@dataclass
class Loaded:
    sessions: list[ReplaySession] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read
    skipped: list[str] = field(default_factory=list)  # files and lines not read, and why
    tools_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _File:
    """A file on disk or in an archive: `name` is its path below the folder or archive given."""

    name: str
    path: Path
    data: bytes | None = None  # archive members are read into memory

    def text_lines(self) -> Iterator[str]:
        if self.data is not None:
            yield from io.StringIO(self.data.decode("utf-8", errors="replace"))
            return
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            yield from fh

    def json(self) -> Any:
        raw = self.data if self.data is not None else self.path.read_bytes()
        if self.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        return json.loads(raw)


def _kind(name: str) -> str | None:
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith((".json", ".json.gz")):
        return "json"
    if name.endswith(ARCHIVES):
        return "archive"
    return None


def _first_record(lines: Iterable[str]) -> object:
    for raw in lines:
        if raw.strip():
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                return None
    return None


def _tools_near(folder: Path) -> Path | None:
    found = sorted(folder.glob("*tools.json"))
    return found[0] if len(found) == 1 else None


def _read_tools(path: Path) -> list[dict[str, Any]]:
    try:
        tools = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReplayError(f"tools file {str(path)!r} cannot be read: {exc}") from exc
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ReplayError(f"tools file {str(path)!r} is not a JSON list of tool schemas")
    return tools


class _Reader:
    def __init__(self, tools_file: Path | None, default_output_tokens: int) -> None:
        self.loaded = Loaded()
        self.tools = _read_tools(tools_file) if tools_file else None
        if tools_file:
            self.loaded.tools_files.append(str(tools_file))
        self.default_output_tokens = default_output_tokens

    def read(self, file: _File, explicit: bool) -> None:
        kind = _kind(file.name)
        try:
            if kind == "jsonl":
                self._jsonl(file)
            elif kind == "json":
                self._json(file, explicit)
            elif kind == "archive":
                self._archive(file)
            elif explicit:
                raise ReplayError(f"{file.path}: unknown file type; replay reads {FORMATS}")
        except (OSError, tarfile.TarError, EOFError, UnicodeDecodeError) as exc:
            raise ReplayError(f"{file.path}: cannot be read ({exc})") from exc

    def _jsonl(self, file: _File) -> None:
        self.loaded.files.append(str(file.path))
        if is_calllog_record(_first_record(file.text_lines())):
            sessions, skipped = read_export(
                file.text_lines(), file.path, self.default_output_tokens
            )
            self.loaded.sessions.extend(sessions)
            self.loaded.skipped.extend(skipped)
            return
        session = read_transcript(file.text_lines(), file.name, file.path)
        self.loaded.skipped.extend(session.warnings)
        if session.calls:
            self.loaded.sessions.append(session)
        else:
            self.loaded.skipped.append(f"{file.path}: no API calls")

    def _json(self, file: _File, explicit: bool) -> None:
        try:
            data = file.json()
        except (json.JSONDecodeError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ReplayError(f"{file.path}: not JSON ({exc})") from exc
        if not is_trajectories(data):
            if explicit:
                raise ReplayError(
                    f"{file.path}: not a list of trajectories (objects with 'traj' or "
                    f"'messages'); replay reads {FORMATS}"
                )
            return  # e.g. the tools file next to the trajectories
        tools = self.tools
        if tools is None and file.data is None and (near := _tools_near(file.path.parent)):
            tools = _read_tools(near)
            self.loaded.tools_files.append(str(near))
        self.loaded.files.append(str(file.path))
        self.loaded.sessions.extend(read_trajectories(data, file.path, tools or []))

    def _archive(self, file: _File) -> None:
        with tarfile.open(file.path, "r:*") as archive:
            members = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)
            tools = next((m for m in members if m.name.endswith("tools.json")), None)
            if tools is not None and self.tools is None:
                handle = archive.extractfile(tools)
                self.tools = json.loads(handle.read()) if handle else None
                self.loaded.tools_files.append(f"{file.path}!{tools.name}")
            for member in members:
                if _kind(member.name) not in ("jsonl", "json"):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                name = str(PurePosixPath(member.name))
                self.read(_File(name, Path(f"{file.path}!{name}"), handle.read()), False)


def _name(path: Path, folder: Path | None = None) -> str:
    """A file's name for its session: a subagent file keeps `<session>/subagents/`, wherever
    the walk started; others are named from the folder given."""
    if path.parent.name == "subagents":
        return "/".join(path.parts[-3:])
    return path.relative_to(folder).as_posix() if folder else path.name


def _walk(folder: Path) -> list[_File]:
    return [
        _File(_name(p, folder), p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and _kind(p.name) is not None
    ]


def load_sessions(
    paths: Sequence[Path], tools_file: Path | None = None, default_output_tokens: int = 500
) -> Loaded:
    """Every session under `paths`, in path order; ReplayError names a path that is missing or
    of no known format. Unreadable lines are skipped and listed in `skipped`."""
    reader = _Reader(tools_file, default_output_tokens)
    for path in paths:
        if not path.exists():
            raise ReplayError(f"{str(path)!r}: no such file or folder")
        if path.is_dir():
            for file in _walk(path):
                reader.read(file, explicit=False)
        else:
            reader.read(_File(_name(path), path), explicit=True)
    if not reader.loaded.sessions:
        raise ReplayError(
            f"no API calls found under {[str(p) for p in paths]}; replay reads {FORMATS}"
        )
    for note in reader.loaded.skipped:
        log.debug("skipped: %s", note)
    return reader.loaded
