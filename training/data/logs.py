"""Labeled logs: one JSON object per line, one record per turn, with per-tier scores.

    {"id": "mmlu_pro:11285",                        # unique per turn
     "request": {"prompt": "..."}                   # or a Messages-API body: system/messages/tools
     "scores": {"haiku": {"score": 0.0, "source": "ground_truth:Meta-Llama-3_1-8B-Instruct"},
                "opus":  {"score": 0.8, "source": "judge:claude-opus-4-6",
                          "adequate": true, "judges": {...}, "output_tokens": 412}},
     "aux": {"gpt-4o-2024-05-13": {"score": 1.0, "output_tokens": 230}},  # optional
     "category": "engineering", "source": "mmlu_pro"}

score is in [0, 1]; `adequate` defaults to score >= the training adequacy threshold. Tiers may
be missing (a partial label). `output_tokens` is the length of that tier's answer, when known (it
prices the turn). `aux` holds other models' outcomes on the same turn: difficulty signal for
training and eval's peers, never a tier.
Bad lines are collected with their line numbers and reported, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.core.features import Turn, extract_turn
from router.core.schemas import RouteRequest
from router.core.tiers import Tier
from router.errors import RouterError


class DataError(RouterError):
    """Labeled logs are unreadable or every line was invalid."""


class TierScore(BaseModel):
    model_config = ConfigDict(extra="allow")

    score: float = Field(ge=0, le=1)
    source: str = Field(min_length=1, description="ground_truth:<model> or judge:<model id>")
    adequate: bool | None = None
    judges: dict[str, Any] | None = None
    # Tokens of this tier's answer (what the turn cost in output); None when not recorded.
    output_tokens: int | None = Field(default=None, ge=0)

    def is_adequate(self, threshold: float) -> bool:
        return self.adequate if self.adequate is not None else self.score >= threshold


class AuxOutcome(BaseModel):
    """Another model's result on a turn: a difficulty signal for training, never a tier."""

    score: float = Field(ge=0, le=1)
    output_tokens: int | None = Field(default=None, ge=0)


class LabeledTurn(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    request: RouteRequest
    scores: dict[Tier, TierScore]
    category: str | None = None
    source: str | None = None
    # Other models' outcomes keyed by model name; None (not {}) keeps old logs byte-identical.
    aux: dict[str, AuxOutcome] | None = None

    @field_validator("scores")
    @classmethod
    def _some_scores(cls, scores: dict[Tier, TierScore]) -> dict[Tier, TierScore]:
        if not scores:
            raise ValueError("scores: at least one tier needs a score")
        return scores

    def turn(self) -> Turn:
        return extract_turn(self.request)

    def content_hash(self) -> str:
        """Hash of what routing sees (text + structure), the embedding-cache key."""
        turn = self.turn()
        payload = json.dumps([turn.text, turn.structure()], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class LoadReport:
    turns: list[LabeledTurn]
    bad_lines: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, why)
    duplicates: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.turns)} turns loaded, {len(self.bad_lines)} bad lines, "
            f"{self.duplicates} duplicates removed"
        )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{loc}: {err['msg']}"


def iter_records(path: Path) -> Iterator[tuple[int, LabeledTurn | str]]:
    """(line number, record or the reason the line is bad); blank lines are skipped."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, LabeledTurn.model_validate_json(line)
            except ValidationError as exc:
                if any(e["type"] == "json_invalid" for e in exc.errors()):
                    yield lineno, f"invalid JSON: {exc.errors()[0]['msg']}"
                else:
                    yield lineno, _first_error(exc)


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form used for de-duplication."""
    return re.sub(r"\s+", " ", text).strip().lower()


def load_labeled(paths: Sequence[Path]) -> LoadReport:
    """Read, validate and de-duplicate (by id, then by normalized text; first one wins)."""
    report = LoadReport(turns=[])
    seen_ids: set[str] = set()
    seen_text: set[str] = set()
    for path in paths:
        if not path.is_file():
            raise DataError(f"labeled log {str(path)!r} does not exist")
        for lineno, rec in iter_records(path):
            if isinstance(rec, str):
                report.bad_lines.append((str(path), lineno, rec))
                continue
            key = normalize_text(rec.turn().text)
            if rec.id in seen_ids or key in seen_text:
                report.duplicates += 1
                continue
            seen_ids.add(rec.id)
            seen_text.add(key)
            report.turns.append(rec)
    if not report.turns:
        raise DataError(
            f"no valid records in {[str(p) for p in paths]}; first problems: {report.bad_lines[:3]}"
        )
    return report


def write_labeled(turns: Iterable[LabeledTurn], path: Path) -> int:
    """Write JSONL atomically (temp file + rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for t in turns:
            fh.write(t.model_dump_json(exclude_none=True) + "\n")
            n += 1
    tmp.replace(path)
    return n


def label_arrays(
    turns: Sequence[LabeledTurn], tiers: Sequence[Tier], adequacy_threshold: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(scores, adequate), each (n, k) float64 with NaN where a tier is unlabeled; adequate is
    1.0/0.0 (TierScore.is_adequate)."""
    scores = np.full((len(turns), len(tiers)), np.nan)
    adequate = np.full_like(scores, np.nan)
    for i, t in enumerate(turns):
        for j, tier in enumerate(tiers):
            s = t.scores.get(tier)
            if s is not None:
                scores[i, j] = s.score
                adequate[i, j] = float(s.is_adequate(adequacy_threshold))
    return scores, adequate


def data_hash(turns: Sequence[LabeledTurn]) -> str:
    """Order-independent hash of the training records, recorded in the manifest."""
    digest = hashlib.sha256()
    for line in sorted(t.model_dump_json(exclude_none=True) for t in turns):
        digest.update(line.encode())
    return digest.hexdigest()
