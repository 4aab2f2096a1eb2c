"""Starting the server: a configuration it cannot start with is one clear line and a non-zero
exit, through `uvicorn --factory` and through `tierwise serve` (what scripts/serve runs); several
workers get a shared session store by default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.redis_server import free_port
from tests.tiny_bundle import build_tiny_bundle

REPO = Path(__file__).resolve().parents[2]
TIERWISE = [sys.executable, "-c", "from tierwise.cli import main; main()"]
UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "router.http.app:create_app"]


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`cmd` with only PATH, this repository on PYTHONPATH and `env` (no ROUTER_* leaks in)."""
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"ROUTER_MODEL_DIR": "/nonexistent/models"},
            "ROUTER_MODEL_DIR='/nonexistent/models': no such folder",
        ),
        (
            {"ROUTER_MODEL_DIR": "."},
            "ROUTER_MODEL_DIR='.': no manifest.json in '.' and no DEFAULT file naming a bundle there",
        ),
        (
            {"ROUTER_DEADLINE_MS": "soon"},
            "ROUTER_DEADLINE_MS: Input should be a valid number, unable to parse string as a number",
        ),
    ],
)
def test_a_bad_configuration_is_one_line_and_a_failed_exit(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    factory = run([*UVICORN, "--port", "0"], tmp_path, **env)
    assert factory.returncode == 3  # uvicorn's start-up failure: a supervisor stops, not loops
    assert factory.stderr.strip() == f"tierwise cannot start: {line}"

    cli = run([*TIERWISE, "serve", "--port", "0"], tmp_path, **env)
    assert cli.returncode == 1
    assert cli.stderr.strip() == f"Error: {line}"


def test_relative_model_dir_says_where_it_was_looked_for(tmp_path: Path) -> None:
    cli = run([*TIERWISE, "serve"], tmp_path, ROUTER_MODEL_DIR="models")
    assert cli.returncode == 1
    assert cli.stderr.strip() == (
        f"Error: ROUTER_MODEL_DIR='models': no such folder (relative to {str(tmp_path)!r})"
    )


def test_several_workers_share_state_in_sqlite_by_default(tmp_path: Path) -> None:
    models = tmp_path / "models"
    build_tiny_bundle(models / "tiny-v1")
    (models / "DEFAULT").write_text("tiny-v1\n")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [*TIERWISE, "serve", "--workers", "2", "--port", str(port)],
        cwd=tmp_path,
        env=env | {"ROUTER_MODEL_DIR": str(models)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        usage = {"model": "claude-haiku-4-5", "usage": {"input_tokens": 10, "output_tokens": 1}}
        for _ in range(10):  # new connections: both workers answer some
            with httpx.Client(base_url=url) as client:
                assert client.post("/runs/r/usage", json=usage).status_code == 200
        with httpx.Client(base_url=url) as client:
            assert client.get("/runs/r").json()["calls"]["haiku"] == 10
        assert (tmp_path / "var" / "state.db").is_file()
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()
