"""The TIERWISE_REQUIRE_ALL mechanism itself (tests/require_all.py), on a throwaway test folder
run by a real pytest subprocess, and .ci/run setting it around the README's scripts/test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import require_all

REPO = Path(__file__).resolve().parents[1]

SKIPPING = """
import pytest


@pytest.fixture
def postgres():
    pytest.skip("PostgreSQL server binaries are not installed")


def test_runs():
    pass


def test_skips_in_the_body():
    pytest.skip("redis-server is not installed")


def test_skips_in_a_fixture(postgres):
    pass


@pytest.mark.skipif(True, reason="chromium not installed")
def test_skipped_by_marker():
    pass


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("tierwise_no_such_module")


def test_never_runs():
    pass
"""


def run_pytest(folder: Path, require_all: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TIERWISE_REQUIRE_ALL"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only this plugin: quick, and nothing else's
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if require_all is not None:
        env["TIERWISE_REQUIRE_ALL"] = require_all
    (folder / "pytest.ini").write_text("[pytest]\n")  # not the repo's settings
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.require_all", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*cmd, "-rA", "--rootdir", str(folder), "-c", str(folder / "pytest.ini"), str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PREFIX = "TIERWISE_REQUIRE_ALL=1: skips fail the run, and this one skipped: "


@pytest.fixture
def peers(tmp_path: Path) -> Path:
    (tmp_path / "test_peers.py").write_text(SKIPPING)
    return tmp_path


@pytest.fixture
def optional(tmp_path: Path) -> Path:
    (tmp_path / "test_optional.py").write_text(SKIPPED_MODULE)
    (tmp_path / "test_other.py").write_text("def test_runs():\n    pass\n")
    return tmp_path


@pytest.mark.parametrize("value", [None, "", "0"])
def test_without_it_skips_stay_skips(peers: Path, value: str | None) -> None:
    result = run_pytest(peers, value)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in result.stdout


def test_with_it_every_skip_fails_and_names_what_is_missing(peers: Path) -> None:
    result = run_pytest(peers, "1")
    out = result.stdout
    assert result.returncode == 1, out
    # Skips in the setup phase (a fixture, a skipif marker) are errors, in the body failures.
    assert "1 failed, 1 passed, 1 xfailed, 2 errors" in out
    for why in [
        "redis-server is not installed",
        "PostgreSQL server binaries are not installed",
        "chromium not installed",
    ]:
        assert PREFIX + why in out, why


@pytest.mark.parametrize("value", [None, "1"])
def test_a_skipped_module_fails_collection(optional: Path, value: str | None) -> None:
    result = run_pytest(optional, value)
    if value is None:
        assert result.returncode == 0 and "1 passed, 1 skipped" in result.stdout, result.stdout
    else:
        assert result.returncode == 2, result.stdout  # interrupted: 1 error during collection
        assert PREFIX + "could not import 'tierwise_no_such_module'" in result.stdout


def test_this_suite_runs_with_the_hooks(pytestconfig: pytest.Config) -> None:
    hooks = pytestconfig.pluginmanager.hook
    for name in ("pytest_runtest_makereport", "pytest_make_collect_report"):
        functions = [impl.function for impl in getattr(hooks, name).get_hookimpls()]
        assert getattr(require_all, name) in functions, name


def test_ci_runs_the_readme_command_with_it_set() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "export TIERWISE_REQUIRE_ALL=1" in ci
    assert ci.rstrip().endswith("exec scripts/test")
    assert "\nscripts/test\n" in (REPO / "README.md").read_text()
