"""Slow: the peers on real Claude 3 outcomes (zeroeval, 80/20 stratified split) with the shipped
bundle's features (int8 MiniLM + structure): routed by the threshold policy and by the cost-aware
one, every peer must beat random routing at its own tier mix over all held-out turns. (Not per
task: on math-l5, where 59% of prompts defeat both tiers, the threshold policy escalates the
hopeless ones and puts every estimator below random, as FINDINGS measured.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.curves import curve_of, reference
from eval.peers import PEERS
from eval.peers.data import aux_names, peer_data
from eval.routing import random_at_router_mix, routing_set, sweep
from router.core.bundle import load_bundle
from router.core.economics import turn_costs
from router.core.policy import UtilityPolicy, get_policy
from router.settings import Settings
from training.convert import DEFAULT_TIER_MAPS, convert_zeroeval
from training.split import split_turns

pytestmark = pytest.mark.slow


MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_peer_beats_random_at_its_own_mix_on_zeroeval(shared_data: Path) -> None:
    if not (MODELS / "DEFAULT").is_file():
        pytest.skip("no shipped models/DEFAULT in this checkout")
    bundle = load_bundle(MODELS)
    turns = list(convert_zeroeval(shared_data, DEFAULT_TIER_MAPS["zeroeval"]))
    train_turns, test_turns = split_turns(turns, 0.2, seed=0)
    dim = bundle.embedder.dim

    def features(ts: list) -> np.ndarray:  # type: ignore[type-arg]
        routed = [t.turn() for t in ts]
        return np.vstack([bundle.features(routed[i : i + 256]) for i in range(0, len(ts), 256)])

    names = aux_names(train_turns)
    train = peer_data(train_turns, features(train_turns), dim, 0.5, names)
    test = peer_data(test_turns, features(test_turns), dim, 0.5)
    scores = np.column_stack(
        [[t.scores[tier].score if tier in t.scores else np.nan for t in test_turns]
         for tier in DEFAULT_TIER_MAPS["zeroeval"]]
    )  # fmt: skip
    lengths = np.column_stack(
        [[t.scores[tier].output_tokens or 200 if tier in t.scores else 200 for t in test_turns]
         for tier in DEFAULT_TIER_MAPS["zeroeval"]]
    )  # fmt: skip
    costs = turn_costs([t.turn().approx_tokens for t in test_turns], lengths, Settings().tiers)
    rs = routing_set(scores, scores, costs)
    assert rs is not None and rs.n == len(test_turns)
    ref = reference(np.nan_to_num(rs.scores), rs.costs)
    for name, peer in PEERS.items():
        probs = peer.fit_predict(train, test, seed=0).probs
        for policy in (get_policy("threshold"), UtilityPolicy()):
            routed = sweep(name, policy, probs, costs, rs)
            chance = curve_of(random_at_router_mix(routed, rs), ref).apgr
            mine = curve_of(routed, ref).apgr
            assert mine > chance, (name, policy.name, mine, chance)
