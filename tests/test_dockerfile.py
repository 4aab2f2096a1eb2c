"""No Docker engine runs here, so the Dockerfile is checked as text against the repository and
the README: what it copies exists and is serving-only, what it runs are the README's own
commands, and a copy of exactly what it copies serves (two workers, shared state, the shipped
model in the models volume)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]
SERVING_ONLY = ("router", "tierwise")
NOT_SERVING = ("training", "labeling", "eval")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def copy_sources() -> list[str]:
    return [src for args in of("COPY") for src in shlex.split(args)[:-1]]


def env() -> dict[str, str]:
    pairs = [p for args in of("ENV") for p in shlex.split(args)]
    return dict(p.split("=", 1) for p in pairs)


def readme_block(heading: str) -> str:
    """The first ```bash block under `## heading` in the README."""
    section = (REPO / "README.md").read_text().split(f"## {heading}\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_copies_exist_and_are_serving_only() -> None:
    sources = copy_sources()
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
    tops = {Path(src).parts[0].rstrip("/") for src in sources}
    assert set(SERVING_ONLY) <= tops
    assert not tops & set(NOT_SERVING), tops


def test_run_and_cmd_are_the_readmes_commands() -> None:
    cmd = of("CMD")[-1]
    assert cmd.startswith("[")  # exec form: signals reach the server
    (start,) = json.loads(cmd)
    assert (REPO / start).is_file() and os.access(REPO / start, os.X_OK)
    # The README's set-up starts the service with exactly this script...
    assert start in readme_block("Set-up").split()
    # ...which installs with `scripts/bootstrap serve`, the image's install step.
    installs = [args for args in of("RUN") if args.startswith("scripts/")]
    assert installs == ["scripts/bootstrap serve"]
    assert "scripts/bootstrap serve" in (REPO / start).read_text()
    for args in installs:
        script = shlex.split(args)[0]
        assert (REPO / script).is_file() and os.access(REPO / script, os.X_OK)
        assert script in copy_sources() or any(
            script.startswith(src.rstrip("/") + "/") for src in copy_sources()
        )
    docker = (REPO / "README.md").read_text().split("## Docker\n", 1)[1].split("\n## ", 1)[0]
    assert "`scripts/bootstrap serve`" in docker and "`scripts/serve`" in docker


def test_workers_share_state_follow_deploys_and_read_a_models_volume() -> None:
    vars_ = env()
    assert int(vars_["TIERWISE_WORKERS"]) > 1
    assert vars_["ROUTER_SESSION_URL"].startswith("sqlite:///var/")
    assert float(vars_["ROUTER_RELOAD_POLL_S"]) > 0  # /admin/reload reaches one worker
    assert vars_["ROUTER_MODEL_DIR"] == "/app/models"
    volumes = [v for args in of("VOLUME") for v in json.loads(args)]
    assert {"/app/var", "/app/models"} <= set(volumes)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """/app as the image has it: only the COPY sources (shipped models included)."""
    app = tmp_path / "app"
    for args in of("COPY"):
        *sources, dest = shlex.split(args)
        assert dest.endswith("/"), f"COPY {args}: copy into a folder"
        for src in sources:
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, app / dest, dirs_exist_ok=True)
            else:
                (app / dest).mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / src, app / dest / Path(src).name)
    (app / "var").mkdir()
    return app


def test_what_the_image_copies_serves_without_training_code(image: Path) -> None:
    assert not any((image / name).exists() for name in NOT_SERVING)
    imports = (
        "import sys; from tierwise.cli import main; import tierwise.serve, router.http.app, "
        "router.http.protocol; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{NOT_SERVING!r}); assert not bad, bad; import router; print(router.__file__)"
    )
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(image)}
    done = subprocess.run(
        [sys.executable, "-c", imports], cwd=image, env=base, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(image))

    port = free_port()
    docker_env = base | env() | {"TIERWISE_HOST": "127.0.0.1", "TIERWISE_PORT": str(port)}
    docker_env["ROUTER_MODEL_DIR"] = str(image / "models")
    start = [sys.executable, "-c", "from tierwise.cli import main; main()", "serve"]
    start += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        docker_env["TIERWISE_WORKERS"],
    ]
    proc = subprocess.Popen(
        start, cwd=image, env=docker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the server exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        r = httpx.post(f"{url}/route", json={"prompt": "What is 7 + 5?"}, timeout=30)
        assert r.status_code == 200 and r.json()["tier"] in ("haiku", "sonnet", "opus")
        shipped = (REPO / "models" / "DEFAULT").read_text().strip()
        assert r.json()["model_version"] == shipped
        assert (image / "var" / "state.db").is_file()  # the workers' shared state
    finally:
        proc.terminate()
        proc.wait(30)
