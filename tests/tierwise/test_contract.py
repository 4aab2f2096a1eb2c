"""The client's copy of the /route contract (tierwise.contract) agrees with the server's."""

from __future__ import annotations

import dataclasses

from router.core.schemas import RouteDecision as ServerDecision
from router.core.tiers import TIER_ORDER
from router.core.tiers import Tier as ServerTier
from router.settings import Settings
from tierwise.contract import RouteDecision, Tier, default_models, parse_tier, rank


def test_tiers_match_the_server_in_order() -> None:
    assert [t.value for t in Tier] == [t.value for t in TIER_ORDER]
    assert [rank(t) for t in Tier] == [ServerTier(t.value).rank for t in Tier]
    assert parse_tier(" Opus ") is Tier.OPUS


def test_decisions_read_the_server_json_field_for_field() -> None:
    server = ServerDecision(
        tier=ServerTier.SONNET,
        model="claude-sonnet-4-6",
        probabilities={ServerTier.HAIKU: 0.2, ServerTier.SONNET: 0.7, ServerTier.OPUS: 0.9},
        threshold=0.6,
        reason="r",
        model_version="v1",
        estimated_cost_usd=1e-5,
        latency_ms=2.0,
        cost_breakdown={"chosen": "sonnet"},
    )
    client = RouteDecision.from_json(server.model_dump(mode="json"))
    assert {f.name for f in dataclasses.fields(RouteDecision)} == set(ServerDecision.model_fields)
    assert dataclasses.asdict(client) == server.model_dump()


def test_default_models_are_the_servers_without_importing_it() -> None:
    assert {t.value: m for t, m in default_models().items()} == {
        t.value: spec.model for t, spec in Settings().tiers.items()
    }
