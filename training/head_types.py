"""HEADS: the head types training can fit for a tier, by name. Their names are the `--head`
choices (training.cli) and TrainConfig.heads; each builds a fresh, unfitted sklearn pipeline
that skl2onnx can export (training.onnx_heads). A new head type is one entry here.

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
    build: Callable[[int], Any]  # seed -> an unfitted sklearn Pipeline with predict_proba
    default: bool  # among TrainConfig's default candidates


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
HEADS: dict[str, HeadType] = {
    h.name: h
    for h in (
        _logreg_type("0.0003", True, "strong regularisation"),
        _logreg_type("0.001", True, "MMLU-Pro's usual pick"),
        _logreg_type("0.01", True, "moderate"),
        _logreg_type("0.1", True, "light"),
        _logreg_type("1", False, "small or clean data"),
        _logreg_type("10", False, "almost unregularised"),
        HeadType("mlp", "one hidden layer of 64, early stopping", _mlp, True),
    )
}
DEFAULT_HEADS: tuple[str, ...] = tuple(name for name, h in HEADS.items() if h.default)


def unknown_head(name: str) -> str:
    """The message for a head name HEADS does not have."""
    return f"unknown head {name!r}; expected one of {list(HEADS)}"
