"""The prompt-cache simulation: unit rules on made-up sessions, then the real recordings (the
recorded models must reproduce the recorded reads, writes and dollars). Expected dollars are
computed here from Anthropic's list prices, not from tiers.toml."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from eval.replay.cache import SessionShape, shape_of, simulate
from eval.replay.costs import Pricer
from eval.replay.session import ReplaySession
from router.settings import Settings

OPUS, SONNET, HAIKU = "claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"
# Anthropic list prices, USD per MTok (input, output), and the cache multipliers.
PRICE = {"opus": (5.0, 25.0), "sonnet": (3.0, 15.0), "haiku": (1.0, 5.0)}
READ, WRITE_5M, WRITE_1H = 0.1, 1.25, 2.0
MINIMUM = {OPUS: 4096, SONNET: 2048, HAIKU: 4096}


def family(model: str) -> str:
    return next(f for f in PRICE if f in model)


def shape(
    prompts: list[int],
    times: list[float] | None = None,
    ttl: float = 300.0,
    shared: list[int] | None = None,
    warm: list[int] | None = None,
) -> SessionShape:
    """An append-only conversation: each prompt shares all of the previous one."""
    n = len(prompts)
    p = np.asarray(prompts, dtype=np.int64)
    s = np.asarray(shared if shared is not None else [0, *prompts[:-1]], dtype=np.int64)
    return SessionShape(
        prompt=p,
        tail=np.zeros(n, dtype=np.int64),
        output=np.full(n, 100, dtype=np.int64),
        shared=s,
        warm=np.asarray(warm or [0] * n, dtype=np.int64),
        times=np.asarray(times if times is not None else [math.nan] * n, dtype=np.float64),
        ttl_s=ttl,
    )


def minimum(model: str) -> int:
    return MINIMUM[model]


def test_same_model_reads_the_previous_prompt_and_writes_the_rest() -> None:
    t = simulate(shape([10_000, 12_000, 15_000]), [OPUS] * 3, minimum)
    assert t.read.tolist() == [0, 10_000, 12_000]
    assert t.write.tolist() == [10_000, 2_000, 3_000]
    assert t.lost.tolist() == [0, 0, 0]


def test_a_switch_writes_the_prefix_again_on_the_new_model() -> None:
    t = simulate(shape([10_000, 12_000, 15_000]), [OPUS, HAIKU, OPUS], minimum)
    # Back on opus: it still holds the first prompt (10k, within the TTL), not haiku's 12k.
    assert t.read.tolist() == [0, 0, 10_000]
    assert t.write.tolist() == [10_000, 12_000, 5_000]
    assert t.lost.tolist() == [0, 10_000, 2_000]  # what the previous model held beyond that
    assert t.switched.tolist() == [False, True, True]


def test_a_switch_is_priced_as_the_lost_prefix_written_on_the_new_model() -> None:
    pricer = Pricer(Settings())
    t = simulate(shape([10_000, 12_000]), [OPUS, HAIKU], minimum)
    usd = pricer.switch_usd(t)
    assert usd[0] == 0
    assert math.isclose(usd[1], 10_000 * PRICE["haiku"][0] * WRITE_5M / 1e6)


def test_the_cache_expires_after_the_ttl() -> None:
    times = [0.0, 299.0, 299.0 + 301.0]
    t = simulate(shape([10_000, 12_000, 15_000], times), [OPUS] * 3, minimum)
    assert t.read.tolist() == [0, 10_000, 0]  # 301 s gap > 5 minutes: cold
    assert t.write.tolist() == [10_000, 2_000, 15_000]
    hour = simulate(shape([10_000, 12_000, 15_000], times, ttl=3600.0), [OPUS] * 3, minimum)
    assert hour.read.tolist() == [0, 10_000, 12_000]


def test_every_use_refreshes_the_ttl() -> None:
    times = [0.0, 250.0, 500.0, 750.0]  # 750 s after the first write, never 300 s idle
    t = simulate(shape([10_000, 11_000, 12_000, 13_000], times), [OPUS] * 4, minimum)
    assert t.read.tolist() == [0, 10_000, 11_000, 12_000]


def test_an_expired_cache_loses_nothing_on_a_switch() -> None:
    t = simulate(shape([10_000, 12_000], [0.0, 1000.0]), [OPUS, HAIKU], minimum)
    assert t.lost.tolist() == [0, 0]


def test_one_hour_writes_cost_2x() -> None:
    pricer = Pricer(Settings())
    t = simulate(shape([10_000, 12_000], ttl=3600.0), [OPUS, OPUS], minimum)
    assert t.one_hour
    assert t.tokens(0).cache_write_1h == 10_000 and t.tokens(0).cache_write_5m == 0
    want = (10_000 * 5.0 * WRITE_1H + 100 * 25.0) / 1e6
    assert math.isclose(pricer.usd(t)[0], want)
    five = simulate(shape([10_000, 12_000]), [OPUS, OPUS], minimum)
    assert math.isclose(pricer.usd(five)[0], (10_000 * 5.0 * WRITE_5M + 100 * 25.0) / 1e6)


def test_prompts_below_the_models_minimum_are_not_cached() -> None:
    # 3,000 tokens: above Sonnet 4.6's 2,048, below Opus 4.6's and Haiku 4.5's 4,096.
    t = simulate(shape([3_000, 3_500]), [OPUS, OPUS], minimum)
    assert t.read.tolist() == [0, 0] and t.write.tolist() == [0, 0]
    assert t.uncached.tolist() == [3_000, 3_500]
    s = simulate(shape([3_000, 3_500]), [SONNET, SONNET], minimum)
    assert s.read.tolist() == [0, 3_000] and s.write.tolist() == [3_000, 500]


def test_a_cached_prefix_below_the_minimum_cannot_be_read() -> None:
    # Opus cached the first 5,000-token prompt; the next shares only 3,000 tokens with it.
    t = simulate(shape([5_000, 6_000], shared=[0, 3_000]), [OPUS, OPUS], minimum)
    assert t.read.tolist() == [0, 0] and t.write.tolist() == [5_000, 6_000]


def test_a_prefix_warm_from_outside_the_session_is_read() -> None:
    t = simulate(shape([10_000, 12_000], warm=[8_000, 0]), [OPUS, OPUS], minimum)
    assert t.read.tolist() == [8_000, 10_000]
    cold = simulate(shape([10_000, 12_000], warm=[8_000, 0]), [OPUS, OPUS], minimum, use_warm=False)
    assert cold.read.tolist() == [0, 10_000]


def test_one_shared_cache_is_what_naive_routing_assumes() -> None:
    t = simulate(shape([10_000, 12_000]), [OPUS, HAIKU], minimum, shared_cache=True)
    assert t.read.tolist() == [0, 10_000] and t.lost.tolist() == [0, 0]


# ---- the real recordings ---------------------------------------------------------------------


def hand_price(usage: dict[str, Any], model: str, output: int) -> float:
    inp, out = PRICE[family(model)]
    detail = usage["cache_creation"]
    return (
        usage["input_tokens"] * inp
        + usage["cache_read_input_tokens"] * inp * READ
        + detail["ephemeral_5m_input_tokens"] * inp * WRITE_5M
        + detail["ephemeral_1h_input_tokens"] * inp * WRITE_1H
        + output * out
    ) / 1e6


def test_recorded_models_reproduce_the_recorded_cache_use(
    claude_sessions: dict[str, ReplaySession],
) -> None:
    pricer = Pricer(Settings())
    for name, session in claude_sessions.items():
        s = shape_of(session.calls, session.ttl_s, True, pricer.min_tokens)
        t = simulate(s, [c.model for c in session.calls], pricer.min_tokens)
        assert t.read.tolist() == [c.tokens.cache_read for c in session.calls], name
        assert t.write.tolist() == [c.tokens.cache_write for c in session.calls], name
        assert t.uncached.tolist() == [c.tokens.input_tokens for c in session.calls], name


def test_replaying_the_recorded_models_reproduces_the_recorded_cost(
    raw_transcripts: dict[str, list[dict[str, Any]]],
    claude_sessions: dict[str, ReplaySession],
) -> None:
    """Dollars from the simulation of the recorded models == dollars from the files' usage
    fields priced by hand, per session, to the cent's hundredth."""
    pricer = Pricer(Settings())
    total_want = total_got = 0.0
    for name, session in claude_sessions.items():
        lines_by_id: dict[str, list[dict[str, Any]]] = {}
        for line in raw_transcripts[name]:
            if line.get("type") == "assistant":
                lines_by_id.setdefault(line["message"]["id"], []).append(line)
        want = sum(
            hand_price(
                lines[0]["message"]["usage"],
                lines[0]["message"]["model"],
                max(x["message"]["usage"]["output_tokens"] for x in lines),
            )
            for lines in lines_by_id.values()
        )
        s = shape_of(session.calls, session.ttl_s, True, pricer.min_tokens)
        got = float(
            pricer.usd(simulate(s, [c.model for c in session.calls], pricer.min_tokens)).sum()
        )
        assert got == pytest.approx(want, abs=1e-4), name
        total_want, total_got = total_want + want, total_got + got
    assert total_got == pytest.approx(total_want, rel=1e-9)


def test_the_recorded_opus_to_haiku_switch_is_a_cache_loss(
    raw_transcripts: dict[str, list[dict[str, Any]]],
    claude_sessions: dict[str, ReplaySession],
) -> None:
    name = "ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"
    session = claude_sessions[name]
    k = next(i for i, c in enumerate(session.calls) if c.tokens.cache_write == 39_413)
    assert session.calls[k].tokens.cache_read == 0
    assert "opus" in session.calls[k - 1].model and "haiku" in session.calls[k].model
    before = session.calls[k - 1].tokens
    held = before.cache_read + before.cache_write  # what opus cached on the previous call
    pricer = Pricer(Settings())
    s = shape_of(session.calls, session.ttl_s, True, pricer.min_tokens)
    recorded = simulate(s, [c.model for c in session.calls], pricer.min_tokens)
    assert recorded.switched[k] and recorded.read[k] == 0 and recorded.write[k] == 39_413
    assert recorded.lost[k] == held  # the whole opus prefix, written again on haiku
    assert pricer.switch_usd(recorded)[k] == pytest.approx(held * 1.0 * WRITE_5M / 1e6)
    stay = simulate(s, [session.calls[0].model] * session.n_calls, pricer.min_tokens)
    assert stay.read[k] == held  # on opus the same call reads that prefix at 0.1x


@pytest.mark.parametrize(
    ("model", "tier", "prices"),
    [
        ("claude-opus-4-6", "opus", (5.0, 25.0)),
        ("claude-haiku-4-5-20251001", "haiku", (1.0, 5.0)),
        ("claude-sonnet-4-5-20250929", "sonnet", (3.0, 15.0)),
    ],
)
def test_recorded_models_map_to_tiers_and_list_prices(
    model: str, tier: str, prices: tuple[float, float]
) -> None:
    settings = Settings()
    found = Pricer(settings).tier(model)
    assert found is not None and found.value == tier
    spec = settings.tier_spec(found)
    assert (spec.input_per_mtok, spec.output_per_mtok) == prices
