"""manifest.json: everything that must match the model, written by training, checked at load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from router.core.features import STRUCT_FEATURES
from router.core.tiers import TIER_ORDER

MANIFEST_FORMAT = 1
# Highest ONNX opset the serving runtime is built and tested for.
MAX_OPSET = 21


@dataclass(frozen=True)
class CurvePoint:
    """One held-out operating point of a policy: at `threshold` it kept `quality` (share of
    always-top quality) at `cost` (share of always-top cost, input and output tokens priced)."""

    threshold: float
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


# Load-time parity tolerance of an fp32 bundle; exporters may set another (int8: 1e-2).
DEFAULT_PARITY_ATOL = 1e-3


class ParityProbe(BaseModel):
    """Texts and the probabilities the exporter got for them; load re-scores and compares."""

    texts: list[str]
    probs: list[list[float]]
    atol: float = DEFAULT_PARITY_ATOL


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: int = MANIFEST_FORMAT
    version: str
    created_at: str
    labels: list[str]
    features: list[str] = Field(default_factory=lambda: list(STRUCT_FEATURES))
    embedder: EmbedderSpec
    classifier: ClassifierSpec
    default_threshold: float = Field(ge=0, le=1)
    # Held-out operating points, for quality_target (router.core.policy.threshold_for_quality).
    curve: list[CurvePoint] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict, description="file name -> sha256")
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    parity: ParityProbe | None = None

    @property
    def input_dim(self) -> int:
        return self.embedder.dim + len(self.features)

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
