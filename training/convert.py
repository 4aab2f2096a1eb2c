"""Public routing data (../shared/data) -> labeled logs (training.data.logs format).

Each source maps some of its models onto our tiers: a tier's score is that model's 0/1 (or
fractional) correctness, with source "ground_truth:<model>". For zeroeval the tiers are the real
Claude 3 family; elsewhere they are stand-ins. A tier the mapping leaves out, or a model without
a result for a prompt, is simply absent from `scores` (a partial label), which training handles
per tier. Every other model's outcome on the prompt goes into `aux` (difficulty signal for
training and eval's peers, never a tier).

Prompts: MMLU-Pro and RouteLLM are written the way a user would ask (the question, then lettered
options; harness suffixes such as a trailing "Answer:" dropped). ZeroEval keeps the exact prompt
every model saw (its template with the fixed JSON-answer instruction), because held-out prompts
of those tasks arrive in that same format and the router must see at serve time what it was
trained on.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from router.core.schemas import RouteRequest
from router.core.tiers import TIER_ORDER, Tier
from training.data.logs import AuxOutcome, DataError, LabeledTurn, TierScore, write_labeled
from training.split import dedupe, sample, split_turns

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
    # Real Claude tiers (one release family); claude-3-sonnet has no math-l5 results.
    "zeroeval": {
        Tier.HAIKU: "claude-3-haiku-20240307",
        Tier.SONNET: "claude-3-sonnet-20240229",
        Tier.OPUS: "claude-3-opus-20240229",
    },
}
# ZeroEval task files (../shared/data/zeroeval/<task>.csv); the task is the turn's category.
ZEROEVAL_TASKS: tuple[str, ...] = ("gsm", "crux", "math-l5")
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


def _scores(
    values: Mapping[Tier, float],
    tier_map: TierMap,
    output_tokens: Mapping[Tier, int | None] | None = None,
) -> dict[Tier, TierScore]:
    lengths = output_tokens or {}
    return {
        tier: TierScore(
            score=float(values[tier]),
            source=f"ground_truth:{tier_map[tier]}",
            output_tokens=lengths.get(tier),
        )
        for tier in TIER_ORDER
        if tier in values
    }


def _aux(outcomes: Mapping[str, AuxOutcome]) -> dict[str, AuxOutcome] | None:
    """None (the field left out) when no other model has a result, as in logs without aux."""
    return dict(outcomes) or None


def mmlu_pro_prompt(question: str, options: list[str]) -> str:
    lines = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    return question.strip() + "\n\n" + "\n".join(lines)


MMLU_PRO_META = ("question_id", "question", "options", "category", "src")


def convert_mmlu_pro(root: Path, tier_map: TierMap) -> Iterator[LabeledTurn]:
    path = root / "mmlu_pro" / "mmlu_pro_correct.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        _check_columns("mmlu_pro", tier_map, columns)
        others = [c for c in columns if c not in MMLU_PRO_META and c not in tier_map.values()]
        for row in reader:
            prompt = mmlu_pro_prompt(row["question"], json.loads(row["options"]))
            # An empty cell means the model has no result for that question: a partial label.
            values = {t: float(row[m]) for t, m in tier_map.items() if row[m].strip()}
            if not values:
                log.warning("mmlu_pro:%s has no score for any mapped model", row["question_id"])
                continue
            aux = {m: AuxOutcome(score=float(row[m])) for m in others if row[m].strip()}
            yield LabeledTurn(
                id=f"mmlu_pro:{row['question_id']}",
                request=RouteRequest(prompt=prompt),
                scores=_scores(values, tier_map),
                category=row["category"],
                source="mmlu_pro",
                aux=_aux(aux),
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
            aux = {
                m: AuxOutcome(score=float(v))
                for m, v in sorted(rec["scores"].items())
                if m not in tier_map.values() and v is not None
            }
            # `split` is an extra field: dcrouter's own train/test split, kept for eval.
            yield LabeledTurn.model_validate(
                {
                    "id": f"dcrouter:{split}:{i}",
                    "request": RouteRequest(prompt=rec["question"]),
                    "scores": scores,
                    "category": f"cluster_{rec.get('cluster_id')}",
                    "source": "dcrouter",
                    "split": split,
                    "aux": _aux(aux),
                }
            )


def zeroeval_length(cell: str) -> int | None:
    """A zeroeval `<model>__out_tokens` cell -> TierScore/AuxOutcome.output_tokens. 0 is an empty
    output, i.e. a failed call, not a free one: its length is unknown (None), so pricing falls
    back to a typical answer instead of charging nothing. Its score stays 0 (the upstream scorer's
    verdict on an empty answer)."""
    tokens = int(float(cell)) if cell.strip() else 0
    return tokens if tokens > 0 else None


def _zeroeval_models(columns: list[str]) -> list[str]:
    return [c.removesuffix("__correct") for c in columns if c.endswith("__correct")]


def convert_zeroeval(root: Path, tier_map: TierMap) -> Iterator[LabeledTurn]:
    """gsm, crux and math-l5 (category = task): the exact prompt, each tier's 0/1 correctness and
    answer length, every other model's outcome as aux. A tier model without a result file for a
    task (claude-3-sonnet on math-l5) or without a record for a prompt is a partial label."""
    files = [root / "zeroeval" / f"{task}.csv" for task in ZEROEVAL_TASKS]
    models: set[str] = set()
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            models.update(_zeroeval_models(next(csv.reader(fh))))
    _check_columns("zeroeval", tier_map, sorted(models))
    for task, path in zip(ZEROEVAL_TASKS, files, strict=True):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            present = _zeroeval_models(list(reader.fieldnames or []))
            tiers = {t: m for t, m in tier_map.items() if m in present}
            others = [m for m in present if m not in tier_map.values()]
            for row in reader:
                values = {t: float(row[f"{m}__correct"]) for t, m in tiers.items()
                          if row[f"{m}__correct"].strip()}  # fmt: skip
                if not values:
                    log.warning("zeroeval:%s:%s has no score for any tier", task, row["id"])
                    continue
                lengths = {t: zeroeval_length(row[f"{m}__out_tokens"]) for t, m in tiers.items()}
                aux = {
                    m: AuxOutcome(
                        score=float(row[f"{m}__correct"]),
                        output_tokens=zeroeval_length(row[f"{m}__out_tokens"]),
                    )
                    for m in others
                    if row[f"{m}__correct"].strip()
                }
                yield LabeledTurn(
                    id=f"zeroeval:{task}:{row['id']}",
                    request=RouteRequest(prompt=row["prompt"]),
                    scores=_scores(values, tier_map, lengths),
                    category=task,
                    source="zeroeval",
                    aux=_aux(aux),
                )


CONVERTERS: dict[str, Callable[[Path, TierMap], Iterator[LabeledTurn]]] = {
    "mmlu_pro": convert_mmlu_pro,
    "routellm_mmlu": convert_routellm_mmlu,
    "routellm_gsm8k": convert_routellm_gsm8k,
    "dcrouter": convert_dcrouter,
    "zeroeval": convert_zeroeval,
}


@dataclass(frozen=True)
class ConvertResult:
    dataset: str
    path: Path  # <dataset>.jsonl, or <dataset>.train.jsonl with a split
    records: int
    heldout_path: Path | None = None  # <dataset>.heldout.jsonl with a split
    heldout_records: int = 0
    duplicates: int = 0  # dropped before sampling/splitting (same id or normalized text)


def convert(
    root: Path,
    out_dir: Path,
    datasets: tuple[str, ...] = DATASETS,
    tier_maps: Mapping[str, TierMap] | None = None,
    limit: int | None = None,
    split: float | None = None,
    seed: int = 0,
) -> list[ConvertResult]:
    """Write out_dir/<dataset>.jsonl per dataset. `limit` keeps a seeded sample of N records,
    stratified like the split; `split` writes out_dir/<dataset>.train.jsonl and
    <dataset>.heldout.jsonl instead, the held-out part `split` of the records, stratified by
    source/category and label pattern (training.split). Both de-duplicate first (by id, then
    normalized text, as load_labeled does), so a question never lands on both sides."""
    maps = tier_maps or DEFAULT_TIER_MAPS
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist")
    results = []
    for name in datasets:
        if name not in CONVERTERS:
            raise DataError(f"unknown dataset {name!r}; expected one of {DATASETS}")
        records = CONVERTERS[name](root, maps[name])
        duplicates = 0
        if limit is not None or split is not None:
            turns, duplicates = dedupe(list(records))
            records = iter(sample(turns, limit, seed) if limit is not None else turns)
        if split is None:
            path = out_dir / f"{name}.jsonl"
            n = write_labeled(records, path)
            log.info("wrote %d %s records to %s", n, name, path)
            results.append(ConvertResult(name, path, n, duplicates=duplicates))
            continue
        train, heldout = split_turns(list(records), split, seed)
        path, held_path = out_dir / f"{name}.train.jsonl", out_dir / f"{name}.heldout.jsonl"
        n, n_held = write_labeled(train, path), write_labeled(heldout, held_path)
        log.info("wrote %d train / %d held-out %s records to %s", n, n_held, name, out_dir)
        results.append(ConvertResult(name, path, n, held_path, n_held, duplicates))
    return results
