"""TIERWISE_REQUIRE_ALL=1 (.ci/run sets it): a skip fails the run.

Tests skip when a real peer is missing (redis-server, PostgreSQL, chromium, ../shared/data, an
optional package); on a laptop that is the right call, but in CI it would let a broken
scripts/system-deps pass green. With the variable set, every skip (a skipped test, a fixture
that skips, a skipped module) is reported as a failure carrying the skip's reason, which names
what is missing. xfail is left alone. A pytest plugin: tests/conftest.py imports its hooks.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

ENV = "TIERWISE_REQUIRE_ALL"


def required() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _refused(why: str) -> str:
    return f"{ENV}=1: skips fail the run, and this one skipped: {why}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if required() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = _refused(_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if required() and report.skipped:
        report.outcome = "failed"
        report.longrepr = _refused(_reason(report.longrepr))
    return report
