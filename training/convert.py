"""Public routing data (../shared/data) -> labeled logs (training.data.logs format).

Each source maps some of its models onto our tiers ("stand-ins"): a tier's score is that model's
0/1 (or fractional) correctness, with source "ground_truth:<model>". A tier the mapping leaves out
is simply absent from `scores` (a partial label), which training handles per tier.

Prompts are written the way a user would ask: the question, then lettered options when there
are any; harness suffixes such as a trailing "Answer:" are dropped.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from router.core.schemas import RouteRequest
from router.core.tiers import TIER_ORDER, Tier
from training.data.logs import DataError, LabeledTurn, TierScore, write_labeled

log = logging.getLogger(__name__)

TierMap = Mapping[Tier, str]  # tier -> the column / model name standing in for it

# Defaults chosen so each tier's stand-in has roughly the relative strength of Haiku/Sonnet/Opus.
DEFAULT_TIER_MAPS: dict[str, dict[Tier, str]] = {
    "mmlu_pro": {
        Tier.HAIKU: "Meta-Llama-3_1-8B-Instruct",
        Tier.SONNET: "gemini-1.5-flash-002",
        Tier.OPUS: "gemini-1.5-pro-002",
    },
    "routellm_mmlu": {
        Tier.HAIKU: "mistralai/Mixtral-8x7B-Instruct-v0.1",
        Tier.OPUS: "gpt-4-1106-preview",
    },
    "routellm_gsm8k": {
        Tier.HAIKU: "mistralai/Mixtral-8x7B-Instruct-v0.1",
        Tier.OPUS: "gpt-4-1106-preview",
    },
    "dcrouter": {
        Tier.HAIKU: "llama-3.1-8b-instruct",
        Tier.SONNET: "llama-3.3-nemotron-super-49b-v1",
        Tier.OPUS: "llama-3.1-nemotron-51b-instruct",
    },
}
DATASETS: tuple[str, ...] = tuple(DEFAULT_TIER_MAPS)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ANSWER_SUFFIX = re.compile(r"\s*\n?Answer:\s*$")


def parse_tier_overrides(specs: list[str]) -> dict[str, dict[Tier, str]]:
    """`DATASET:TIER=MODEL` strings applied over DEFAULT_TIER_MAPS; `DATASET:TIER=` drops a tier."""
    maps = {name: dict(m) for name, m in DEFAULT_TIER_MAPS.items()}
    for spec in specs:
        head, sep, model = spec.partition("=")
        dataset, colon, tier_name = head.partition(":")
        if not sep or not colon:
            raise DataError(f"tier mapping {spec!r} must look like DATASET:TIER=MODEL")
        if dataset not in maps:
            raise DataError(
                f"tier mapping {spec!r}: unknown dataset {dataset!r}; expected {DATASETS}"
            )
        try:
            tier = Tier(tier_name.strip().lower())
        except ValueError:
            raise DataError(
                f"tier mapping {spec!r}: unknown tier {tier_name!r}; "
                f"expected one of {[t.value for t in Tier]}"
            ) from None
        if model.strip():
            maps[dataset][tier] = model.strip()
        else:
            maps[dataset].pop(tier, None)
    for dataset, mapping in maps.items():
        if not mapping:
            raise DataError(f"tier mapping for {dataset!r} is empty; map at least one tier")
    return maps


def _check_columns(dataset: str, tier_map: TierMap, available: list[str]) -> None:
    missing = [m for m in tier_map.values() if m not in available]
    if missing:
        raise DataError(f"{dataset}: models {missing} not in the data; available: {available}")


def _scores(values: Mapping[Tier, float], tier_map: TierMap) -> dict[Tier, TierScore]:
    return {
        tier: TierScore(score=float(values[tier]), source=f"ground_truth:{tier_map[tier]}")
        for tier in TIER_ORDER
        if tier in values
    }


def mmlu_pro_prompt(question: str, options: list[str]) -> str:
    lines = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    return question.strip() + "\n\n" + "\n".join(lines)


def convert_mmlu_pro(root: Path, tier_map: TierMap) -> Iterator[LabeledTurn]:
    path = root / "mmlu_pro" / "mmlu_pro_correct.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        _check_columns("mmlu_pro", tier_map, list(reader.fieldnames or []))
        for row in reader:
            prompt = mmlu_pro_prompt(row["question"], json.loads(row["options"]))
            # An empty cell means the model has no result for that question: a partial label.
            values = {t: float(row[m]) for t, m in tier_map.items() if row[m].strip()}
            if not values:
                log.warning("mmlu_pro:%s has no score for any mapped model", row["question_id"])
                continue
            yield LabeledTurn(
                id=f"mmlu_pro:{row['question_id']}",
                request=RouteRequest(prompt=prompt),
                scores=_scores(values, tier_map),
                category=row["category"],
                source="mmlu_pro",
            )


def _truthy(value: str) -> float:
    if value not in ("True", "False"):
        raise DataError(f"expected True/False, got {value!r}")
    return 1.0 if value == "True" else 0.0


def _routellm_rows(
    path: Path, dataset: str, tier_map: TierMap
) -> Iterator[tuple[int, str, dict[Tier, float]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        _check_columns(dataset, tier_map, list(reader.fieldnames or []))
        for i, row in enumerate(reader):
            prompt = _ANSWER_SUFFIX.sub("", row["prompt"]).strip()
            yield i, prompt, {t: _truthy(row[m]) for t, m in tier_map.items()}


def convert_routellm_mmlu(root: Path, tier_map: TierMap) -> Iterator[LabeledTurn]:
    for path in sorted((root / "routellm" / "mmlu_responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        for i, prompt, values in _routellm_rows(path, "routellm_mmlu", tier_map):
            yield LabeledTurn(
                id=f"routellm_mmlu:{subject}:{i}",
                request=RouteRequest(prompt=prompt),
                scores=_scores(values, tier_map),
                category=subject,
                source="routellm_mmlu",
            )


def convert_routellm_gsm8k(root: Path, tier_map: TierMap) -> Iterator[LabeledTurn]:
    path = root / "routellm" / "gsm8k_responses.csv"
    for i, prompt, values in _routellm_rows(path, "routellm_gsm8k", tier_map):
        yield LabeledTurn(
            id=f"routellm_gsm8k:{i}",
            request=RouteRequest(prompt=prompt),
            scores=_scores(values, tier_map),
            category="gsm8k",
            source="routellm_gsm8k",
        )


def convert_dcrouter(root: Path, tier_map: TierMap) -> Iterator[LabeledTurn]:
    for split in ("train", "test"):
        records = json.loads((root / "dcrouter" / f"{split}.json").read_text(encoding="utf-8"))
        if records:
            _check_columns("dcrouter", tier_map, sorted(records[0]["scores"]))
        for i, rec in enumerate(records):
            scores = _scores({t: rec["scores"][m] for t, m in tier_map.items()}, tier_map)
            # `split` is an extra field: dcrouter's own train/test split, kept for eval.
            yield LabeledTurn.model_validate(
                {
                    "id": f"dcrouter:{split}:{i}",
                    "request": RouteRequest(prompt=rec["question"]),
                    "scores": scores,
                    "category": f"cluster_{rec.get('cluster_id')}",
                    "source": "dcrouter",
                    "split": split,
                }
            )


CONVERTERS: dict[str, Callable[[Path, TierMap], Iterator[LabeledTurn]]] = {
    "mmlu_pro": convert_mmlu_pro,
    "routellm_mmlu": convert_routellm_mmlu,
    "routellm_gsm8k": convert_routellm_gsm8k,
    "dcrouter": convert_dcrouter,
}


@dataclass(frozen=True)
class ConvertResult:
    dataset: str
    path: Path
    records: int


def convert(
    root: Path,
    out_dir: Path,
    datasets: tuple[str, ...] = DATASETS,
    tier_maps: Mapping[str, TierMap] | None = None,
    limit: int | None = None,
) -> list[ConvertResult]:
    """Write out_dir/<dataset>.jsonl for each dataset; `limit` keeps the first N records of each."""
    maps = tier_maps or DEFAULT_TIER_MAPS
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist")
    results = []
    for name in datasets:
        if name not in CONVERTERS:
            raise DataError(f"unknown dataset {name!r}; expected one of {DATASETS}")
        records = CONVERTERS[name](root, maps[name])
        if limit is not None:
            records = itertools.islice(records, limit)
        path = out_dir / f"{name}.jsonl"
        n = write_labeled(records, path)
        log.info("wrote %d %s records to %s", n, name, path)
        results.append(ConvertResult(name, path, n))
    return results
