"""manifest.json: everything that must match the model, written by training, checked at load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.core.features import STRUCT_FEATURES
from router.core.tiers import TIER_ORDER

MANIFEST_FORMAT = 1
# Highest ONNX opset the serving runtime is built and tested for.
MAX_OPSET = 21


@dataclass(frozen=True)
class CurvePoint:
    """One held-out operating point of the bundle's policy: at knob value `knob` (its threshold,
    or V in USD for the utility policy) it kept `quality` (share of always-top quality) at `cost`
    (share of always-top cost, input and output tokens priced). Old manifests call it threshold."""

    knob: float
    quality: float
    cost: float


class EmbedderSpec(BaseModel):
    name: str
    file: str = "embedder.onnx"
    tokenizer: str = "tokenizer.json"
    dim: int = Field(gt=0)
    max_length: int = Field(default=256, gt=0)
    quantization: str = "fp32"
    opset: int = 17


class ClassifierSpec(BaseModel):
    file: str = "classifier.onnx"
    head: str
    opset: int
    input_name: str = "input"
    output_name: str = "probabilities"
    # The graph's per-tier expected answer tokens (n, k); None: the bundle predicts no lengths.
    tokens_output: str | None = None
    # Input columns the model ignores because they were near-constant in training (named
    # emb<i>, a STRUCT_FEATURES or a HAND_FEATURES name); recorded so a rebuild can be checked.
    dropped_inputs: list[str] = Field(default_factory=list)


# Load-time parity tolerance of an fp32 bundle; exporters may set another (int8: 1e-2).
DEFAULT_PARITY_ATOL = 1e-3


class ParityProbe(BaseModel):
    """Texts and the probabilities the exporter got for them; load re-scores and compares."""

    texts: list[str]
    probs: list[list[float]]
    atol: float = DEFAULT_PARITY_ATOL
    # Expected answer tokens per tier, for bundles that predict them.
    tokens: list[list[float]] | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: int = MANIFEST_FORMAT
    version: str
    created_at: str
    labels: list[str]
    features: list[str] = Field(default_factory=lambda: list(STRUCT_FEATURES))
    # router.core.features.HAND_FEATURES after `features`; [] for bundles without them.
    hand_features: list[str] = Field(default_factory=list)
    embedder: EmbedderSpec
    classifier: ClassifierSpec
    # The router.core.policy policy the bundle was trained and tuned for; a manifest without
    # one predates the utility policy and routes by threshold.
    policy: str = "threshold"
    # Its knob when a request sets none (threshold bundles: default_threshold).
    default_knob: float | None = None
    # The utility policy's typical turn: the mean expected USD of the dearest tier over the
    # training turns. A turn costing m times more values an inadequate answer at m x the knob.
    reference_cost_usd: float | None = Field(default=None, gt=0)
    default_threshold: float | None = Field(default=None, ge=0, le=1)
    # Held-out operating points over the knob, for quality_target (policy.knob_for_quality).
    curve: list[CurvePoint] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict, description="file name -> sha256")
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    parity: ParityProbe | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_curve_keys(cls, data: Any) -> Any:
        """Manifests written before the knob was neutral name it `threshold` in the curve."""
        if isinstance(data, dict) and isinstance(data.get("curve"), list):
            data = {
                **data,
                "curve": [
                    {("knob" if k == "threshold" else k): v for k, v in p.items()}
                    if isinstance(p, dict)
                    else p
                    for p in data["curve"]
                ],
            }
        return data

    @model_validator(mode="after")
    def _has_a_knob(self) -> Manifest:
        if self.default_knob is None and self.default_threshold is None:
            raise ValueError(
                "a manifest needs default_knob (or, threshold bundles, default_threshold)"
            )
        return self

    @property
    def knob(self) -> float:
        """The default knob of the bundle's policy."""
        if self.default_knob is not None:
            return self.default_knob
        assert self.default_threshold is not None  # _has_a_knob
        return self.default_threshold

    @property
    def input_dim(self) -> int:
        return self.embedder.dim + len(self.features) + len(self.hand_features)

    @classmethod
    def create(
        cls, version: str, embedder: EmbedderSpec, classifier: ClassifierSpec, **fields: Any
    ) -> Manifest:
        """A new bundle's manifest: labels are the tiers cheapest first, created now (UTC)."""
        return cls(
            version=version,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            labels=[t.value for t in TIER_ORDER],
            embedder=embedder,
            classifier=classifier,
            **fields,
        )
