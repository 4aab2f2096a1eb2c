"""A stacked bundle (utility policy, answer-length forecasts) behind RoutingService and /route:
the decision explains itself in the policy's own numbers, every knob field means what it says,
and the agent path prices the cache with the same policy."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from router.agent.routing import AgentRouting
from router.agent.stores import open_stores
from router.core.bundle import load_bundle
from router.core.features import extract_turn
from router.core.policy import knob_for_quality
from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.core.tiers import TIER_ORDER, Tier
from router.errors import BundleError
from router.http.app import create_app
from router.settings import Settings

HARD = "prove derive theorem integral optimize architecture prove derive"
EASY = "hello thanks name color"


@pytest.fixture(scope="module")
def service(stacked_bundle_dir: Path) -> RoutingService:
    settings = Settings()
    return RoutingService(
        load_bundle(stacked_bundle_dir), settings, AgentRouting(settings, open_stores(settings))
    )


def by_hand_costs(
    settings: Settings, request: RouteRequest, tokens: dict[Tier, float]
) -> dict[Tier, float]:
    turn = extract_turn(request)
    return {
        t: (turn.approx_tokens * settings.tier_spec(t).input_per_mtok
            + tokens[t] * settings.tier_spec(t).output_per_mtok) / 1e6
        for t in TIER_ORDER
    }  # fmt: skip


def test_a_decision_explains_policy_knob_quality_cost_and_tokens(service: RoutingService) -> None:
    manifest = service.bundle.manifest
    assert manifest.policy == "utility" and manifest.default_threshold is None
    request = RouteRequest(prompt=HARD)
    d = service.route(request)
    assert d.policy == "utility" and d.knob == manifest.knob and d.threshold == 0.0
    scores = service.bundle.predict([extract_turn(request)])
    assert scores.output_tokens is not None
    want_tokens = dict(zip(TIER_ORDER, scores.output_tokens[0].tolist(), strict=True))
    assert d.output_tokens == pytest.approx(want_tokens)
    assert d.expected_cost_usd == pytest.approx(
        by_hand_costs(service.settings, request, want_tokens)
    )
    # The choice is the argmin of cost + (1 - quality) x V x m, from the numbers it reports;
    # m is the turn's dearest cost over the bundle's reference turn, at least 1.
    reference = manifest.reference_cost_usd
    assert reference is not None and reference > 0
    m = max(1.0, max(d.expected_cost_usd.values()) / reference)
    value = d.knob * m
    totals = {t: d.expected_cost_usd[t] + (1 - d.probabilities[t]) * value for t in TIER_ORDER}
    assert totals[d.tier] == pytest.approx(min(totals.values()))
    assert f"an inadequate answer is valued at ${value:.3g}" in d.reason
    assert d.reason.startswith(f"{d.tier.value}: ")


def test_answer_forecasts_are_capped_by_max_tokens(service: RoutingService) -> None:
    d = service.route(RouteRequest(prompt=HARD, max_tokens=7))
    assert d.output_tokens is not None and set(d.output_tokens.values()) == {7.0}


def test_each_knob_field_means_what_it_says(service: RoutingService) -> None:
    curve = service.bundle.manifest.curve
    hard = service.route(RouteRequest(prompt=HARD, threshold=0.5))
    assert hard.policy == "threshold" and hard.threshold == 0.5 and hard.knob == 0.5
    assert "P(adequate)" in hard.reason
    free = service.route(RouteRequest(prompt=HARD, failed_turn_usd=0.0))
    assert free.policy == "utility" and free.knob == 0.0
    assert free.expected_cost_usd is not None
    assert free.expected_cost_usd[free.tier] == min(free.expected_cost_usd.values())
    target = float(np.median([p.quality for p in curve if p.quality <= 1.0]))
    point = service.route(RouteRequest(prompt=HARD, quality_target=target))
    assert point.knob == knob_for_quality(target, curve) and point.policy == "utility"
    reached = [p for p in curve if p.quality >= target]
    assert point.knob == min(reached, key=lambda p: (p.cost, p.knob)).knob


def test_higher_stakes_never_buy_less_quality(service: RoutingService) -> None:
    order = [t.value for t in TIER_ORDER]
    for prompt in (EASY, HARD):
        qualities = []
        for value in (0.0, 0.001, 0.01, 0.1, 1.0, 10.0):
            d = service.route(RouteRequest(prompt=prompt, failed_turn_usd=value))
            qualities.append(d.probabilities[d.tier])
            assert d.tier.value in order
        assert all(b >= a - 1e-9 for a, b in zip(qualities, qualities[1:], strict=False))


def test_agent_path_prices_the_cache_with_the_same_policy(service: RoutingService) -> None:
    """Opus holds a 60k-token prefix: at the bundle's knob, staying reads it at 0.1x, while a
    cheaper tier would write it at 1.25x; the breakdown's risk is (1 - P) x the value the
    policy put on an inadequate answer here (the knob x the turn's size m), so each tier's total
    is what the policy minimised and the chosen tier's is the least."""
    base = {"messages": [{"role": "user", "content": EASY}]}
    cold = service.route(RouteRequest.model_validate(base))
    warm = service.route(
        RouteRequest.model_validate(
            {
                **base,
                "session_id": "s-utility",
                "previous_model": service.settings.tier_spec(Tier.OPUS).model,
                "previous_usage": {
                    "input_tokens": 50,
                    "output_tokens": 10,
                    "cache_read_input_tokens": 60_000,
                },
            }
        )
    )
    assert cold.tier != Tier.OPUS  # an easy turn alone goes cheaper
    assert warm.tier == Tier.OPUS, warm.reason
    assert "staying on opus reads the 60050-token cached prefix" in warm.reason
    assert warm.cost_breakdown is not None
    rows = warm.cost_breakdown["tiers"]
    value = warm.cost_breakdown["inadequate_usd"]
    reference = service.bundle.manifest.reference_cost_usd
    assert reference is not None
    dearest = max(rows[t.value]["total_usd"] - rows[t.value]["risk_usd"] for t in TIER_ORDER)
    assert math.isclose(value, warm.knob * max(1.0, dearest / reference), rel_tol=1e-5)
    assert rows[warm.tier.value]["total_usd"] == min(r["total_usd"] for r in rows.values())
    for tier in TIER_ORDER:
        row = rows[tier.value]
        assert math.isclose(row["risk_usd"], (1 - warm.probabilities[tier]) * value, rel_tol=1e-5)
        assert warm.expected_cost_usd is not None
        assert math.isclose(warm.expected_cost_usd[tier], row["total_usd"] - row["risk_usd"])


def test_route_json_carries_the_explanation(stacked_bundle_dir: Path) -> None:
    settings = Settings(model_dir=stacked_bundle_dir, deadline_ms=10_000)
    with TestClient(create_app(settings)) as client:
        body = client.post("/route", json={"prompt": HARD}).json()
        version = client.get("/version").json()
    assert body["policy"] == "utility" and body["knob"] == version["default_knob"]
    assert (
        set(body["expected_cost_usd"]) == set(body["output_tokens"]) == {"haiku", "sonnet", "opus"}
    )
    assert version["policy"] == "utility"


def test_a_bundle_whose_hand_features_differ_is_refused(
    stacked_bundle_dir: Path, tmp_path: Path
) -> None:
    import json

    bundle = tmp_path / "bundle"
    shutil.copytree(stacked_bundle_dir, bundle)
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["hand_features"][:2] == ["log_chars", "log_words"]
    manifest["hand_features"] = list(reversed(manifest["hand_features"]))
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="manifest hand_features \\['options', "):
        load_bundle(bundle)


def test_every_tier_has_a_forecast_and_a_probability(service: RoutingService) -> None:
    d = service.route(RouteRequest(prompt=EASY))
    assert d.output_tokens is not None
    assert all(v >= 0 for v in d.output_tokens.values())
    assert np.all([0 <= p <= 1 for p in d.probabilities.values()])
