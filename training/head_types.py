"""HEADS: the head types training can fit, by name. Their names are the `--head` choices
(training.cli) and TrainConfig.heads. Two kinds:

- stacked (`stack4`, the default, and `stack2`): one model for every tier at once, with hand
  features, P(task), 2PL difficulty targets, calibrated per-tier stage 2, a coverage guard and
  answer lengths (training/stack.py), exported by training/stack_model.py; served with the
  utility policy. A stacked type is trained alone.
- per tier (logistic regressions, an MLP): `build` makes a fresh, unfitted sklearn pipeline
  that skl2onnx can export (training.onnx_heads); CV picks one per tier among the candidates
  given; served with the threshold policy, as bundles before the stacked heads were.

A new head type is one entry here.

sklearn is imported when a head is built, not on import, so the CLI lists heads without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HeadType:
    name: str
    help: str
    build: Callable[[int], Any] | None  # seed -> an unfitted sklearn Pipeline (per-tier types)
    default: bool  # among TrainConfig's default candidates
    # Stacked types: their stage-1 blocks (training.stack.StackConfig.blocks); () per tier.
    blocks: tuple[str, ...] = ()

    @property
    def stacked(self) -> bool:
        return bool(self.blocks)

    @property
    def policy(self) -> str:
        """The router.core.policy policy its bundles are tuned for and served with."""
        return "utility" if self.stacked else "threshold"


def _logreg(c: float) -> Callable[[int], Any]:
    def build(seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        # Standardising first puts the structure columns (log tokens ~5) on the embedding's
        # scale, so one C regularises both alike.
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))

    return build


def _mlp(seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(
        hidden_layer_sizes=(64,), alpha=1e-2, early_stopping=True, max_iter=200, random_state=seed
    )
    return make_pipeline(StandardScaler(), mlp)


def _logreg_type(c: str, default: bool, why: str) -> HeadType:
    return HeadType(
        f"logreg_c{c}", f"logistic regression, C={c} ({why})", _logreg(float(c)), default
    )


# Question embeddings predict model correctness only weakly (held-out AUC ~0.65 on MMLU-Pro), so
# CV there picks strong regularisation (C ~ 1e-3 on standardised features): the default grid
# spans 300x around it, plus a small MLP in case the data is richer. C=1 and C=10 suit small or
# clean data (the synthetic test logs). kNN is left out: its graph would embed the training set.
#
# stack4 is the default: by 5-fold x 3-seed CV on real Claude 3 outcomes (zeroeval) it routes
# with APGR .64 against .54 for the per-tier logistic heads under the threshold policy, ties
# stack2 there, and unlike stack2 also ties the best peer where tiers differ by kind of prompt
# (dcrouter), thanks to its direct per-tier block (../scratch/routing/FINDINGS.md, 6 and 8).
HEADS: dict[str, HeadType] = {
    h.name: h
    for h in (
        HeadType(
            "stack4",
            "stacked: 2PL difficulty + direct tier heads -> calibrated per-tier logistic, "
            "answer lengths, coverage guard (utility policy)",
            None,
            True,
            ("embedding", "side", "tiers"),
        ),
        HeadType(
            "stack2",
            "stack4 without the direct tier heads in stage 1 (utility policy)",
            None,
            False,
            ("embedding", "side"),
        ),
        _logreg_type("0.0003", False, "strong regularisation"),
        _logreg_type("0.001", False, "MMLU-Pro's usual pick"),
        _logreg_type("0.01", False, "moderate"),
        _logreg_type("0.1", False, "light"),
        _logreg_type("1", False, "small or clean data"),
        _logreg_type("10", False, "almost unregularised"),
        HeadType("mlp", "one hidden layer of 64, early stopping", _mlp, False),
    )
}
DEFAULT_HEADS: tuple[str, ...] = tuple(name for name, h in HEADS.items() if h.default)


# The per-tier candidates `tierwise train` picked among before the stacked heads (per tier, by
# CV log loss): name them all with --head to train that kind of bundle.
PER_TIER_HEADS: tuple[str, ...] = (
    "logreg_c0.0003",
    "logreg_c0.001",
    "logreg_c0.01",
    "logreg_c0.1",
    "mlp",
)


def unknown_head(name: str) -> str:
    """The message for a head name HEADS does not have."""
    return f"unknown head {name!r}; expected one of {list(HEADS)}"


def check_heads(names: tuple[str, ...]) -> str | None:
    """Why these candidates cannot be trained together, or None: a stacked type is alone."""
    stacked = [n for n in names if n in HEADS and HEADS[n].stacked]
    if stacked and len(names) > 1:
        return f"a stacked head type ({stacked[0]}) is trained alone; got {list(names)}"
    return None
