"""TrainConfig: every training knob in one frozen object, logged whole to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.data.embed_cache import DEFAULT_CACHE_DIR
from training.head_types import DEFAULT_HEADS, HEADS, unknown_head

Quantization = Literal["fp32", "int8"]
# Probes stored in manifest.parity: short and long, easy and hard, so load-time re-scoring
# exercises truncation-free tokenization across the range the router sees.
DEFAULT_PARITY_TEXTS: tuple[str, ...] = (
    "What is 2 + 2?",
    "Translate 'good morning' into French.",
    "Derive the Euler-Lagrange equations for a charged particle in an electromagnetic field "
    "and show that the Lorentz force follows.",
    "Which of the following is a prime number?\n\nA. 21\nB. 27\nC. 29\nD. 33",
)


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Labeled-log JSONL files (training.data.logs format); several files are concatenated, then
    # de-duplicated by id and normalized text.
    logs: tuple[Path, ...] = Field(min_length=1)
    # Bundles are written to out_dir/<version>/; out_dir is what ROUTER_MODEL_DIR points at.
    out_dir: Path = Path("models")
    # None -> "<first log's stem>-minilm-<quantization>-<data hash prefix>": unique per data.
    version: str | None = None
    # Served embedder precision. int8 is ~4x smaller (keeps the bundle ~25 MB for git) and
    # routing quality is reported for both in the manifest so the choice can be checked.
    quantization: Quantization = "int8"
    # Embedder precisions whose held-out routing metrics are reported (each costs one ONNX
    # export plus one pass over the held-out turns).
    compare_quantizations: tuple[Quantization, ...] = ("fp32", "int8")
    # Score >= this counts as adequate when a record does not say. Ground truth is 0/1, and for
    # fractional scores (dcrouter partial credit) 0.5 means "more right than wrong".
    adequacy_threshold: float = Field(default=0.5, ge=0, le=1)
    # 20% held out: ~2.4k MMLU-Pro turns, enough for +-1% error bars on tier shares.
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    # One seed drives the split, CV folds, MLP init and the random baseline: rebuilds match.
    seed: int = 0
    # 3 folds is enough to rank a handful of heads and keeps the 2-core budget.
    cv_folds: int = Field(default=3, ge=2)
    # Candidate heads (names in training.head_types.HEADS), picked per tier by CV log loss
    # (rewards calibration, which the threshold relies on); the registry says why these.
    heads: tuple[str, ...] = Field(default=DEFAULT_HEADS, min_length=1)
    # The default threshold is the cheapest held-out operating point keeping this share of
    # always-top quality: most of the quality, at a fraction of the cost.
    quality_target: float = Field(default=0.95, gt=0)
    # Output tokens priced per held-out turn, so the curve's cost is what a turn costs (input
    # plus output, router.core.economics.turn_costs); serving's and eval's default as well.
    output_tokens: int = Field(default=500, ge=0)
    # Thresholds evaluated for manifest.curve; a 0.05 grid is finer than the noise on 2k turns.
    curve_thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
    # MiniLM was trained with 256 word pieces; longer inputs are truncated identically at serve.
    max_length: int = Field(default=256, gt=0)
    # Texts per embedder call: large enough to amortise padding, small enough for 2 cores.
    embed_batch_size: int = Field(default=64, gt=0)
    # Embedding cache (outside the repo); keyed by embedder name and turn content hash.
    cache_dir: Path = DEFAULT_CACHE_DIR
    # Bad lines are always reported with file:line; this turns any of them into a failure.
    fail_on_bad_lines: bool = False
    # Texts whose exported-bundle probabilities are stored in manifest.parity.
    parity_texts: tuple[str, ...] = DEFAULT_PARITY_TEXTS
    # Log params, metrics, the bundle and a registered model version to MLflow.
    track: bool = True
    # MLflow experiment and registered-model names.
    experiment: str = "tierwise"
    registered_model: str = "tierwise-router"
    # Registry alias given to the new version (e.g. champion, which `tierwise deploy` serves);
    # None leaves aliases alone (`tierwise promote` sets one after the eval report).
    alias: str | None = Field(default=None, min_length=1)
    # Show tqdm progress bars while embedding.
    progress: bool = True

    @model_validator(mode="after")
    def _alias_needs_tracking(self) -> TrainConfig:
        if self.alias is not None and not self.track:
            raise ValueError(f"alias {self.alias!r} needs MLflow tracking: drop --no-track")
        return self

    @field_validator("heads")
    @classmethod
    def _registered(cls, heads: tuple[str, ...]) -> tuple[str, ...]:
        for name in heads:
            if name not in HEADS:
                raise ValueError(unknown_head(name))
        return heads
