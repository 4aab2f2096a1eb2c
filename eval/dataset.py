"""Load an eval set (labeled-log JSONL), drop turns the model trained on, and pair judge scores.

Overlap with training is matched by id and by normalized text (training.data.normalize_text), the
same keys training de-duplicates on. The training turns are the --train-data files, else the
manifest's training["logs"] when those files still exist, minus the ids the manifest lists in
training["heldout_ids"] (training's own held-out split, which it never fitted on). So
`--data <the training logs>` evaluates exactly training's held-out turns. Without training data,
overlap is not checked and the report says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.core.manifest import Manifest
from training.data.logs import (
    DataError,
    LabeledTurn,
    LoadReport,
    data_hash,
    load_labeled,
    normalize_text,
)

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    turns: list[LabeledTurn]  # what is evaluated: valid, unique, not in training
    load: LoadReport  # bad lines and within-file duplicates of the eval files
    train_turns: list[LabeledTurn] = field(default_factory=list)
    overlap_removed: int = 0  # eval turns dropped because training saw them
    overlap_source: str = "not checked: no --train-data and the manifest's training.logs are gone"
    train_hash_matches: bool | None = None  # --train-data vs manifest training.data_hash
    train_subset_of_logs: bool | None = None  # every training id is in manifest training.logs
    judge_merged: int = 0  # turns whose scores came (partly) from --judge-scores files
    judge_unmatched: int = 0  # --judge-scores records whose id is not in the eval set

    def summary(self) -> dict[str, Any]:
        return {
            "n_eval": len(self.turns),
            "n_loaded": len(self.turns) + self.overlap_removed,
            "bad_lines": len(self.load.bad_lines),
            "duplicates_in_eval": self.load.duplicates,
            "overlap_removed": self.overlap_removed,
            "overlap_source": self.overlap_source,
            "n_train": len(self.train_turns),
            "train_hash_matches": self.train_hash_matches,
            "train_subset_of_logs": self.train_subset_of_logs,
            "judge_merged": self.judge_merged,
            "judge_unmatched": self.judge_unmatched,
        }


def drop_overlap(
    turns: Sequence[LabeledTurn], train_ids: set[str], train_texts: set[str]
) -> tuple[list[LabeledTurn], int]:
    """Turns whose id and normalized text are both unseen in training, and how many were not."""
    kept = [
        t
        for t in turns
        if t.id not in train_ids and normalize_text(t.turn().text) not in train_texts
    ]
    return kept, len(turns) - len(kept)


def merge_judge_scores(
    turns: Sequence[LabeledTurn], judged: Sequence[LabeledTurn]
) -> tuple[list[LabeledTurn], int, int]:
    """Per-tier scores from `judged` (matched by id) replace the eval set's for those tiers.
    Returns (turns, how many turns changed, how many judged ids matched nothing)."""
    by_id = {j.id: j for j in judged}
    out, merged = [], 0
    for t in turns:
        j = by_id.pop(t.id, None)
        if j is None:
            out.append(t)
            continue
        out.append(t.model_copy(update={"scores": {**t.scores, **j.scores}}))
        merged += 1
    return out, merged, len(by_id)


def load_eval_set(
    data: Sequence[Path],
    train_data: Sequence[Path] = (),
    manifest: Manifest | None = None,
    judge_scores: Sequence[Path] = (),
) -> EvalSet:
    report = load_labeled(data)
    turns = report.turns
    result = EvalSet(turns=turns, load=report)
    if judge_scores:
        judged = load_labeled(judge_scores).turns
        turns, result.judge_merged, result.judge_unmatched = merge_judge_scores(turns, judged)
    recorded = (manifest.training if manifest else {}) or {}
    logs = [Path(str(p)) for p in recorded.get("logs") or []]
    logs_exist = bool(logs) and all(p.is_file() for p in logs)
    source = "--train-data"
    if not train_data and logs_exist:
        train_data, source = logs, "manifest training.logs"
    if train_data:
        loaded = load_labeled(train_data).turns
        if "data_hash" in recorded:
            result.train_hash_matches = recorded["data_hash"] == data_hash(loaded)
        # Training fitted on its logs minus the held-out ids it recorded; those stay evaluable.
        heldout = {str(i) for i in recorded.get("heldout_ids") or []}
        train = [t for t in loaded if t.id not in heldout]
        result.train_turns = train
        result.overlap_source = f"{source} {', '.join(p.name for p in train_data)}"
        if len(train) < len(loaded):
            result.overlap_source += f" minus {len(loaded) - len(train)} manifest heldout_ids"
        if result.train_hash_matches is False and logs_exist:
            # A split of the training logs (e.g. training's own train part) hashes differently.
            logged = {t.id for t in load_labeled(logs).turns}
            result.train_subset_of_logs = {t.id for t in loaded} <= logged
    ids = {t.id for t in result.train_turns}
    texts = {normalize_text(t.turn().text) for t in result.train_turns}
    turns, result.overlap_removed = drop_overlap(turns, ids, texts)
    if not turns:
        raise DataError(
            f"every eval turn in {[str(p) for p in data]} is also in the training data "
            f"({result.overlap_source}); evaluate on held-out turns"
        )
    result.turns = turns
    log.info("eval set: %s", result.summary())
    return result


def _judge_value(value: Any, threshold: float) -> tuple[float, bool] | None:
    """A judge entry is a bare score or {"score": x, "adequate": b?}; anything else is skipped."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value), float(value) >= threshold
    if isinstance(value, Mapping) and isinstance(value.get("score"), int | float):
        score = float(value["score"])
        adequate = value.get("adequate")
        return score, bool(adequate) if isinstance(adequate, bool) else score >= threshold
    return None


def judge_pairs(
    turns: Sequence[LabeledTurn], adequacy_threshold: float
) -> dict[
    tuple[str, str],
    tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]],
]:
    """For each pair of judges (names sorted), aligned (scores_a, scores_b, adequate_a,
    adequate_b) over every (turn, tier) both judged."""
    rows: dict[tuple[str, str], list[tuple[float, float, bool, bool]]] = {}
    for t in turns:
        for s in t.scores.values():
            verdicts = {
                name: v
                for name, raw in (s.judges or {}).items()
                if (v := _judge_value(raw, adequacy_threshold)) is not None
            }
            names = sorted(verdicts)
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    (sa, aa), (sb, ab) = verdicts[a], verdicts[b]
                    rows.setdefault((a, b), []).append((sa, sb, aa, ab))
    return {
        pair: (
            np.asarray([r[0] for r in vals]),
            np.asarray([r[1] for r in vals]),
            np.asarray([r[2] for r in vals], dtype=bool),
            np.asarray([r[3] for r in vals], dtype=bool),
        )
        for pair, vals in rows.items()
    }
