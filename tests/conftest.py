from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import configuration as hypothesis_configuration
from hypothesis import settings as hypothesis_settings
from hypothesis.database import DirectoryBasedExampleDatabase

from router.agent.routing import AgentRouting
from router.agent.stores import open_stores
from router.core.bundle import ModelBundle, load_bundle
from router.core.service import RoutingService
from router.settings import Settings
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeEmbedder, build_fake_bundle

# Hooks, found by name: under TIERWISE_REQUIRE_ALL=1 (.ci/run) a skip fails the run.
from tests.require_all import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Hypothesis keeps its example database and caches under the system temp dir, not in the repo.
_HYPOTHESIS_HOME = Path(tempfile.gettempdir()) / "tierwise-hypothesis"
hypothesis_configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
hypothesis_settings.register_profile(
    "tierwise", database=DirectoryBasedExampleDatabase(_HYPOTHESIS_HOME / "examples")
)
hypothesis_settings.load_profile("tierwise")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fake_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real skl2onnx classifier on FakeEmbedder features. Read-only: copy before mutating."""
    out, _, _ = build_fake_bundle(tmp_path_factory.mktemp("bundles") / "fake-v1")
    return out


@pytest.fixture
def bundle_copy(fake_bundle_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(fake_bundle_dir, dst)
    return dst


@pytest.fixture(scope="session")
def fake_bundle(fake_bundle_dir: Path) -> ModelBundle:
    return load_bundle(fake_bundle_dir, embedder=FakeEmbedder())


@pytest.fixture
def make_service(fake_bundle: ModelBundle) -> Callable[..., RoutingService]:
    def make(**overrides: object) -> RoutingService:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        return RoutingService(fake_bundle, settings, AgentRouting(settings, open_stores(settings)))

    return make


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A real local Anthropic API (Messages + Batches) on 127.0.0.1; see tests/fake_anthropic.py."""
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port for the session; see tests/redis_server.py."""
    from tests.redis_server import running_redis

    try:
        with running_redis(tmp_path_factory.mktemp("redis")) as url:
            yield url
    except FileNotFoundError:
        pytest.skip("redis-server is not installed (scripts/system-deps installs it)")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A client on an emptied database: each test starts without keys."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()
