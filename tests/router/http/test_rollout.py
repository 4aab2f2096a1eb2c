"""POST /admin/reload swaps the model without downtime; a bad bundle is refused with 409 naming
the problem while the live one keeps serving; the shadow model never touches responses."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from prometheus_client import Counter

from router.core.bundle import ModelBundle, load_bundle
from router.core.embedder import Embedder
from router.core.service import RoutingService
from router.http.app import create_app
from router.http.shadow import Shadow
from router.http.state import app_state
from router.settings import Settings


@pytest.fixture
def client(models: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=models, deadline_ms=5000))) as c:
        yield c


def live(client: TestClient) -> str:
    version: str = client.get("/version").json()["model_version"]
    assert client.post("/route", json={"prompt": "hi"}).json()["model_version"] == version
    return version


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("path", ["models/tiny-v2", "tiny-v2"])
def test_reload_by_path(client: TestClient, path: str) -> None:
    assert live(client) == "tiny-v1"
    r = client.post("/admin/reload", json={"path": path})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "tiny-v2" and body["previous_version"] == "tiny-v1"
    assert body["path"].endswith("tiny-v2") and body["load_ms"] > 0
    assert live(client) == "tiny-v2"
    version = client.get("/version").json()
    assert version["reloaded_at"] == body["loaded_at"]
    assert metric(client, 'tierwise_model_reloads_total{outcome="ok"}') == 1.0


def test_reload_without_body_rereads_default(client: TestClient, models: Path) -> None:
    (models / "DEFAULT").write_text("tiny-v2\n")
    assert client.post("/admin/reload").json()["model_version"] == "tiny-v2"
    assert live(client) == "tiny-v2"


def _edit(bundle: Path, key: str, value: object) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    target = data
    *parents, leaf = key.split(".")
    for p in parents:
        target = target[p]
    target[leaf] = value(target[leaf]) if callable(value) else value
    path.write_text(json.dumps(data))


def _append(name: str):  # type: ignore[no-untyped-def]
    def corrupt(bundle: Path) -> None:
        with (bundle / name).open("ab") as fh:
            fh.write(b"\0garbage")

    return corrupt


BAD_BUNDLES = {
    "bad sha256": (_append("classifier.onnx"), "corrupt: sha256"),
    "bad embedder sha256": (_append("embedder.onnx"), "'embedder.onnx' is corrupt"),
    "wrong dim": (
        lambda b: _edit(b, "embedder.dim", 32),
        "does not match manifest embedder.dim 32",
    ),
    "wrong labels": (
        lambda b: _edit(b, "labels", ["haiku", "opus", "sonnet"]),
        "manifest labels ['haiku', 'opus', 'sonnet'] do not match the tiers",
    ),
    "opset": (lambda b: _edit(b, "classifier.opset", 99), "classifier opset 99 is newer"),
    "parity": (
        lambda b: _edit(b, "parity.probs", lambda p: [[x + 0.3 for x in row] for row in p]),
        "parity check",
    ),
    "no manifest": (lambda b: (b / "manifest.json").unlink(), "no manifest.json"),
    "bad json": (lambda b: (b / "manifest.json").write_text("{"), "manifest.json' is invalid"),
    "missing file": (
        lambda b: (b / "tokenizer.json").unlink(),
        "bundle file 'tokenizer.json' listed in the manifest is missing",
    ),
}


@pytest.mark.parametrize("name", list(BAD_BUNDLES))
def test_bad_bundle_is_refused_and_live_one_keeps_serving(
    client: TestClient, models: Path, name: str
) -> None:
    mutate, words = BAD_BUNDLES[name]
    shutil.copytree(models / "tiny-v2", models / "bad")
    mutate(models / "bad")
    r = client.post("/admin/reload", json={"path": "models/bad"})
    assert r.status_code == 409, r.text
    message = r.json()["error"]["message"]
    assert words in message and "still serving 'tiny-v1'" in message, message
    assert live(client) == "tiny-v1"
    assert client.get("/readyz").json()["model_version"] == "tiny-v1"
    assert metric(client, 'tierwise_model_reloads_total{outcome="refused"}') == 1.0


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("../../etc", 400, "outside the models folder"),
        ("/etc", 400, "outside"),
        ("models/tiny-v9", 404, "tiny-v1"),  # lists the bundles that do exist
        ("x\u0000y", 400, "not a usable"),
    ],
)
def test_reload_path_must_be_a_bundle_inside_models(
    client: TestClient, path: str, status: int, words: str
) -> None:
    r = client.post("/admin/reload", json={"path": path})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]
    assert live(client) == "tiny-v1"


def test_second_reload_while_one_runs_is_409(client: TestClient) -> None:
    rollout = app_state(client.app).rollout
    with rollout._lock:  # a reload in progress
        r = client.post("/admin/reload", json={"path": "tiny-v2"})
    assert r.status_code == 409 and "in progress" in r.json()["error"]["message"]


class SlowEmbedder:
    """Wraps a real embedder; signals when scoring has started, then takes `delay_s`."""

    def __init__(self, inner: Embedder, delay_s: float) -> None:
        self.inner, self.delay_s, self.dim = inner, delay_s, inner.dim
        self.started = threading.Event()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.started.set()
        time.sleep(self.delay_s)
        return self.inner.embed(texts)


def slowed(bundle: ModelBundle, delay_s: float) -> tuple[ModelBundle, SlowEmbedder]:
    slow = SlowEmbedder(bundle.embedder, delay_s)
    return ModelBundle(bundle.manifest, slow, bundle.heads, bundle.path), slow


def test_in_flight_requests_finish_on_the_old_model(models: Path) -> None:
    settings = Settings(model_dir=models, deadline_ms=5000)
    old, slow = slowed(load_bundle(models / "tiny-v1"), 0.5)
    with TestClient(create_app(settings, service=RoutingService(old, settings))) as client:
        result: dict[str, object] = {}
        thread = threading.Thread(
            target=lambda: result.update(client.post("/route", json={"prompt": "hi"}).json())
        )
        thread.start()
        assert slow.started.wait(5)
        r = client.post("/admin/reload", json={"path": "tiny-v2"})  # while it is being scored
        assert r.status_code == 200, r.text
        assert client.post("/route", json={"prompt": "hi"}).json()["model_version"] == "tiny-v2"
        thread.join(5)
    assert result["model_version"] == "tiny-v1" and result["fallback"] is False


def test_shadow_is_scored_off_the_request_path(tiny_models: Path) -> None:
    settings = Settings(
        model_dir=tiny_models / "tiny-v1",
        shadow_model_dir=tiny_models / "tiny-v2",
        deadline_ms=5000,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/version").json()["shadow_model_version"] == "tiny-v2"
        prompts = ["hello", "prove the theorem", "derive the integral and optimize", "thanks"]
        for p in prompts:
            body = client.post("/route", json={"prompt": p}).json()
            assert body["model_version"] == "tiny-v1" and "shadow" not in json.dumps(body)
        deadline = time.monotonic() + 5
        agree = 'tierwise_shadow_decisions_total{outcome="agree"}'
        disagree = 'tierwise_shadow_decisions_total{outcome="disagree"}'
        while time.monotonic() < deadline:
            if metric(client, agree) + metric(client, disagree) == len(prompts):
                break
            time.sleep(0.02)
        assert metric(client, agree) + metric(client, disagree) == len(prompts)

        # A shadow far slower than the deadline changes nothing for callers.
        shadow = app_state(client.app).shadow
        assert shadow is not None
        slow_bundle, _ = slowed(shadow.service.bundle, 0.3)
        shadow.service = RoutingService(slow_bundle, settings)
        start = time.perf_counter()
        for _ in range(20):
            assert client.post("/route", json={"prompt": "hi"}).json()["fallback"] is False
        assert (time.perf_counter() - start) / 20 < 0.1


def test_shadow_queue_drops_instead_of_blocking(fake_bundle: ModelBundle) -> None:
    slow_bundle, slow = slowed(fake_bundle, 1.0)
    outcomes = Counter("t_shadow", "test", ["outcome"], registry=None)
    shadow = Shadow(RoutingService(slow_bundle, Settings()), outcomes)
    from router.core.schemas import RouteDecision, RouteRequest

    request = RouteRequest(prompt="hi")
    decision = RouteDecision(
        tier="haiku",  # type: ignore[arg-type]
        model="m",
        probabilities={},
        threshold=0.5,
        reason="r",
        model_version="v",
        estimated_cost_usd=0,
        latency_ms=1,
    )
    start = time.perf_counter()
    for _ in range(1000):
        shadow.on_route(request, decision)
    assert time.perf_counter() - start < 0.5  # 1000 enqueues, none waits for the 1 s model
    assert outcomes.labels("skipped")._value.get() >= 1000 - 256 - 32
    shadow.close()


def test_bad_shadow_bundle_does_not_stop_the_service(tiny_models: Path, tmp_path: Path) -> None:
    settings = Settings(model_dir=tiny_models, shadow_model_dir=tmp_path / "nothing")
    with TestClient(create_app(settings)) as client:
        assert client.get("/version").json()["shadow_model_version"] is None
        assert client.post("/route", json={"prompt": "hi"}).status_code == 200


def wait_for(predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_polling_follows_the_default_pointer(models: Path) -> None:
    """ROUTER_RELOAD_POLL_S: every worker follows DEFAULT (what `tierwise deploy` moves)."""
    settings = Settings(model_dir=models, deadline_ms=5000, reload_poll_s=0.05)
    with TestClient(create_app(settings)) as client:
        assert live(client) == "tiny-v1"
        (models / "DEFAULT").write_text("tiny-v2\n")
        assert wait_for(lambda: client.get("/version").json()["model_version"] == "tiny-v2")

        shutil.copytree(models / "tiny-v2", models / "bad")
        BAD_BUNDLES["bad sha256"][0](models / "bad")
        (models / "DEFAULT").write_text("bad\n")
        refused = 'tierwise_model_reloads_total{outcome="refused"}'
        assert wait_for(lambda: metric(client, refused) == 1.0)
        time.sleep(0.3)  # refused once, not retried every poll
        assert metric(client, refused) == 1.0 and live(client) == "tiny-v2"

        # An explicit reload elsewhere is not undone while DEFAULT stays put.
        assert client.post("/admin/reload", json={"path": "tiny-v1"}).status_code == 200
        time.sleep(0.3)
        assert live(client) == "tiny-v1"
