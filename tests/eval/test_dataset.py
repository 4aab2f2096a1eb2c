"""Eval-set loading: overlap with training from each source, judge-score merging, label arrays."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eval.dataset import judge_pairs, load_eval_set
from router.core.manifest import Manifest
from router.core.tiers import TIER_ORDER
from training.data.logs import DataError, data_hash, label_arrays, load_labeled


def record(i: str, text: str, **scores: Any) -> dict[str, Any]:
    return {"id": i, "request": {"prompt": text}, "scores": scores}


def gt(score: float) -> dict[str, Any]:
    return {"score": score, "source": "ground_truth:test"}


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def manifest(training: dict[str, Any]) -> Manifest:
    return Manifest.model_validate(
        {
            "version": "v",
            "created_at": "now",
            "labels": [t.value for t in TIER_ORDER],
            "embedder": {"name": "e", "dim": 4},
            "classifier": {"head": "h", "opset": 17},
            "default_threshold": 0.5,
            "training": training,
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train = write(
        tmp_path / "train.jsonl",
        [record("t1", "What is 2+2?", haiku=gt(1)), record("t2", "Prove it", opus=gt(1))],
    )
    ev = write(
        tmp_path / "eval.jsonl",
        [
            record("e1", "  what IS 2+2? ", haiku=gt(1)),  # same text as t1 once normalized
            record("t2", "a new text, reused id", haiku=gt(0)),  # same id as t2
            record("e3", "Fresh question", haiku=gt(0), opus=gt(1)),
            record("e3", "duplicate id within eval", haiku=gt(0)),
            "not json",  # type: ignore[list-item]
        ],
    )
    return ev, train


def test_train_data_removes_overlap_by_text_and_id(files: tuple[Path, Path]) -> None:
    ev, train = files
    es = load_eval_set([ev], [train])
    assert [t.id for t in es.turns] == ["e3"]
    s = es.summary()
    assert (s["overlap_removed"], s["duplicates_in_eval"], s["bad_lines"]) == (2, 1, 1)
    assert s["n_loaded"] == 3 and s["n_train"] == 2 and s["train_hash_matches"] is None
    assert s["overlap_source"] == "--train-data train.jsonl"


def test_manifest_logs_and_hash_are_used_without_train_data(files: tuple[Path, Path]) -> None:
    ev, train = files
    digest = data_hash(load_labeled([train]).turns)
    es = load_eval_set([ev], manifest=manifest({"logs": [str(train)], "data_hash": digest}))
    assert es.overlap_removed == 2 and es.train_hash_matches is True
    assert es.overlap_source.startswith("manifest training.logs")
    es = load_eval_set([ev], [train], manifest({"data_hash": "something else"}))
    assert es.train_hash_matches is False and es.train_subset_of_logs is None


def test_a_split_of_the_training_logs_is_recognised(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    ev, train = files
    full = write(
        tmp_path / "full.jsonl",
        [json.loads(line) for line in train.read_text().splitlines()]
        + [record("h1", "held out by training", haiku=gt(1))],
    )
    recorded = {"logs": [str(full)], "data_hash": data_hash(load_labeled([full]).turns)}
    es = load_eval_set([ev], [train], manifest(recorded))
    assert es.train_hash_matches is False and es.train_subset_of_logs is True
    other = write(tmp_path / "other.jsonl", [record("x9", "never trained on", haiku=gt(1))])
    es = load_eval_set([ev], [other], manifest(recorded))
    assert es.train_subset_of_logs is False


def test_manifest_heldout_ids_stay_evaluable(files: tuple[Path, Path]) -> None:
    ev, train = files
    # Training held out t1 (so its text "What is 2+2?" is fair game) and fitted on t2 only.
    recorded = manifest({"logs": [str(train)], "heldout_ids": ["t1"]})
    es = load_eval_set([ev], manifest=recorded)
    assert [t.id for t in es.turns] == ["e1", "e3"] and es.overlap_removed == 1
    assert es.overlap_source.endswith("minus 1 manifest heldout_ids")
    # The training logs themselves as the eval set: exactly the held-out turns remain.
    es = load_eval_set([train], manifest=recorded)
    assert [t.id for t in es.turns] == ["t1"]


def test_without_training_data_overlap_is_not_checked(files: tuple[Path, Path]) -> None:
    ev, _ = files
    es = load_eval_set([ev], manifest=manifest({"logs": ["/gone.jsonl"]}))
    assert es.overlap_removed == 0 and es.overlap_source.startswith("not checked")
    with pytest.raises(DataError, match="every eval turn"):
        load_eval_set([ev], [ev])


def test_judge_scores_replace_tiers_by_id(files: tuple[Path, Path], tmp_path: Path) -> None:
    ev, _ = files
    judged = write(
        tmp_path / "judged.jsonl",
        [record("e3", "Fresh question", sonnet=gt(0.5)), record("zz", "unknown", haiku=gt(1))],
    )
    es = load_eval_set([ev], judge_scores=[judged])
    e3 = next(t for t in es.turns if t.id == "e3")
    assert {t.value for t in e3.scores} == {"haiku", "sonnet", "opus"}
    assert (es.judge_merged, es.judge_unmatched) == (1, 1)


def test_label_arrays_and_judge_pairs(tmp_path: Path) -> None:
    judges = {
        "a": {"score": 8, "adequate": True, "reason": "ok"},
        "b": {"score": 3, "adequate": False},
        "c": 0.9,  # a bare score
        "broken": {"reason": "no score"},
    }
    path = write(
        tmp_path / "j.jsonl",
        [record("1", "x", sonnet={"score": 0.4, "source": "judge:x", "judges": judges})],
    )
    turns = load_labeled([path]).turns
    scores, adequate = label_arrays(turns, TIER_ORDER, adequacy_threshold=0.5)
    assert math.isnan(scores[0, 0]) and scores[0, 1] == 0.4 and adequate[0, 1] == 0.0
    pairs = judge_pairs(turns, adequacy_threshold=0.5)
    assert sorted(pairs) == [("a", "b"), ("a", "c"), ("b", "c")]
    sa, sb, aa, ab = pairs[("a", "c")]
    assert sa.tolist() == [8.0] and sb.tolist() == [0.9]
    assert aa.tolist() == [True] and ab.tolist() == [True]  # 0.9 >= 0.5
    assert np.asarray(pairs[("a", "b")][3]).tolist() == [False]
