from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from router.core.tiers import Tier
from training.cli import convert as convert_cmd
from training.convert import (
    DEFAULT_TIER_MAPS,
    convert,
    convert_dcrouter,
    convert_mmlu_pro,
    convert_routellm_gsm8k,
    convert_routellm_mmlu,
    convert_zeroeval,
    mmlu_pro_prompt,
    parse_tier_overrides,
    zeroeval_length,
)
from training.data.logs import DataError, load_labeled
from training.split import label_pattern


def first(it, n):  # type: ignore[no-untyped-def]
    return [x for _, x in zip(range(n), it, strict=False)]


def test_mmlu_pro_prompt_reads_like_a_user_question() -> None:
    prompt = mmlu_pro_prompt(" Stack is also known as ", ["FIFO memory", "LIFO memory"])
    assert prompt == "Stack is also known as\n\nA. FIFO memory\nB. LIFO memory"


def test_tier_overrides_replace_and_drop() -> None:
    maps = parse_tier_overrides(["mmlu_pro:haiku=Mistral-7B-v0.1", "dcrouter:SONNET="])
    assert maps["mmlu_pro"][Tier.HAIKU] == "Mistral-7B-v0.1"
    assert Tier.SONNET not in maps["dcrouter"]
    assert DEFAULT_TIER_MAPS["mmlu_pro"][Tier.HAIKU] == "Meta-Llama-3_1-8B-Instruct"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("mmlu_pro-haiku=x", "DATASET:TIER=MODEL"),
        ("squad:haiku=x", "unknown dataset 'squad'"),
        ("mmlu_pro:gpt=x", "unknown tier 'gpt'"),
    ],
)
def test_tier_override_errors_name_the_choices(spec: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_tier_overrides([spec])


def test_mmlu_pro(shared_data: Path) -> None:
    turns = first(convert_mmlu_pro(shared_data, DEFAULT_TIER_MAPS["mmlu_pro"]), 50)
    t = turns[1]
    assert t.id == "mmlu_pro:11286" and t.category == "engineering" and t.source == "mmlu_pro"
    assert t.request.prompt == (
        "Stack is also known as\n\nA. FIFO memory\nB. Flash memory\nC. LIFO memory\nD. LILO memory"
    )
    assert t.scores[Tier.HAIKU].source == "ground_truth:Meta-Llama-3_1-8B-Instruct"
    assert t.scores[Tier.SONNET].source == "ground_truth:gemini-1.5-flash-002"
    assert t.scores[Tier.OPUS].source == "ground_truth:gemini-1.5-pro-002"
    assert {s.score for x in turns for s in x.scores.values()} <= {0.0, 1.0}


def test_mmlu_pro_unknown_model_lists_available(shared_data: Path) -> None:
    with pytest.raises(DataError, match="available: .*gemini-1.5-pro-002"):
        next(convert_mmlu_pro(shared_data, {Tier.HAIKU: "claude-9"}))


def test_routellm_is_two_tier_partial(shared_data: Path) -> None:
    mmlu = first(convert_routellm_mmlu(shared_data, DEFAULT_TIER_MAPS["routellm_mmlu"]), 5)
    assert mmlu[0].id == "routellm_mmlu:abstract_algebra:0"
    assert set(mmlu[0].scores) == {Tier.HAIKU, Tier.OPUS}
    assert not mmlu[0].request.prompt.rstrip().endswith("Answer:")
    assert "\nA. " in mmlu[0].request.prompt
    gsm = first(convert_routellm_gsm8k(shared_data, DEFAULT_TIER_MAPS["routellm_gsm8k"]), 5)
    assert gsm[0].request.prompt.startswith("Janet")
    assert gsm[0].scores[Tier.OPUS].source == "ground_truth:gpt-4-1106-preview"


def test_dcrouter_three_tiers_with_split(shared_data: Path) -> None:
    turns = first(convert_dcrouter(shared_data, DEFAULT_TIER_MAPS["dcrouter"]), 5)
    assert turns[0].id == "dcrouter:train:0" and turns[0].category == "cluster_0"
    assert set(turns[0].scores) == set(Tier)
    assert turns[0].scores[Tier.SONNET].source == "ground_truth:llama-3.3-nemotron-super-49b-v1"
    assert json.loads(turns[0].model_dump_json())["split"] == "train"


@pytest.mark.slow  # --limit samples from every record of all five datasets: ~10 s
def test_convert_writes_loadable_logs(shared_data: Path, tmp_path: Path) -> None:
    results = convert(shared_data, tmp_path, limit=20)
    assert [r.dataset for r in results] == [
        "mmlu_pro",
        "routellm_mmlu",
        "routellm_gsm8k",
        "dcrouter",
        "zeroeval",
    ]
    report = load_labeled([r.path for r in results])
    assert report.bad_lines == [] and len(report.turns) == 100


def test_convert_cli_with_tier_override(shared_data: Path, tmp_path: Path) -> None:
    args = [
        "--data",
        str(shared_data),
        "--out",
        str(tmp_path),
        "--dataset",
        "mmlu_pro",
        "--limit",
        "3",
        "--tier-model",
        "mmlu_pro:haiku=Mistral-7B-Instruct-v0.2",
        "--tier-model",
        "mmlu_pro:sonnet=",
    ]
    result = CliRunner().invoke(convert_cmd, args)
    assert result.exit_code == 0, result.output
    assert (
        "mmlu_pro: 3 records" in result.output
        and "haiku<-Mistral-7B-Instruct-v0.2" in result.output
    )
    rec = json.loads((tmp_path / "mmlu_pro.jsonl").read_text().splitlines()[0])
    assert set(rec["scores"]) == {"haiku", "opus"}
    assert rec["scores"]["haiku"]["source"] == "ground_truth:Mistral-7B-Instruct-v0.2"

    bad = CliRunner().invoke(convert_cmd, [*args[:4], "--tier-model", "mmlu_pro:haiku=nope"])
    assert bad.exit_code == 1 and "'nope'" in bad.output


def test_mmlu_pro_missing_results_become_partial_labels(shared_data: Path) -> None:
    turns = {
        t.id: t for t in first(convert_mmlu_pro(shared_data, DEFAULT_TIER_MAPS["mmlu_pro"]), 170)
    }
    assert set(turns["mmlu_pro:6023"].scores) == {Tier.HAIKU, Tier.SONNET}  # no gemini-pro result
    assert set(turns["mmlu_pro:11286"].scores) == set(Tier)


def test_zeroeval_real_claude_tiers_lengths_partial_labels_and_aux(shared_data: Path) -> None:
    turns = {t.id: t for t in convert_zeroeval(shared_data, DEFAULT_TIER_MAPS["zeroeval"])}
    assert len(turns) == 983 + 594 + 537
    gsm = turns["zeroeval:gsm:gsm8k-main-test-#1"]
    assert gsm.category == "gsm" and gsm.source == "zeroeval"
    # The exact prompt every model saw: the ZeroEval template with its JSON instruction.
    assert gsm.request.prompt is not None and gsm.request.prompt.lstrip().startswith("## Question:")
    assert '"answer": "42"' in gsm.request.prompt
    haiku = gsm.scores[Tier.HAIKU]
    assert haiku.source == "ground_truth:claude-3-haiku-20240307" and haiku.score in (0.0, 1.0)
    assert haiku.output_tokens is not None and haiku.output_tokens > 0
    assert gsm.aux is not None and "gpt-4o-2024-05-13" in gsm.aux
    assert not {"claude-3-haiku-20240307", "claude-3-opus-20240229"} & set(gsm.aux)
    assert "claude-3-5-sonnet-20241022" in gsm.aux  # other Claude models are aux, not tiers
    math = [t for t in turns.values() if t.category == "math-l5"]
    assert len(math) == 537 and all(set(t.scores) == {Tier.HAIKU, Tier.OPUS} for t in math)
    crux = [t for t in turns.values() if t.category == "crux"]
    assert all(set(t.scores) == set(Tier) for t in crux)
    # Every Claude tier's answer length is recorded (none of their calls failed).
    assert all(s.output_tokens for t in turns.values() for s in t.scores.values())
    # Reported accuracy (zeroeval/README.md): haiku 15.3% and opus 35.9% on math-l5.
    assert np.mean([t.scores[Tier.HAIKU].score for t in math]) == pytest.approx(0.153, abs=1e-3)
    assert np.mean([t.scores[Tier.OPUS].score for t in math]) == pytest.approx(0.359, abs=1e-3)


def test_zeroeval_empty_output_is_a_failed_call_with_unknown_length() -> None:
    assert zeroeval_length("0") is None and zeroeval_length("") is None
    assert zeroeval_length("212") == 212 and zeroeval_length("7.0") == 7


def test_zeroeval_failed_calls_keep_score_0_and_no_length(shared_data: Path) -> None:
    """Other models' empty outputs (out_tokens 0) are in aux as score 0 without a length."""
    failed = [
        (name, a)
        for t in convert_zeroeval(shared_data, DEFAULT_TIER_MAPS["zeroeval"])
        for name, a in (t.aux or {}).items()
        if a.output_tokens is None
    ]
    assert failed and all(a.score == 0.0 for _, a in failed)


def test_mmlu_pro_and_dcrouter_keep_the_other_models_as_aux(shared_data: Path) -> None:
    (mmlu,) = first(convert_mmlu_pro(shared_data, DEFAULT_TIER_MAPS["mmlu_pro"]), 1)
    assert mmlu.aux is not None and len(mmlu.aux) == 26
    assert not set(DEFAULT_TIER_MAPS["mmlu_pro"].values()) & set(mmlu.aux)
    (dc,) = first(convert_dcrouter(shared_data, DEFAULT_TIER_MAPS["dcrouter"]), 1)
    assert dc.aux is not None and len(dc.aux) == 6
    assert not set(DEFAULT_TIER_MAPS["dcrouter"].values()) & set(dc.aux)


def _strata_share(turns: list, key) -> dict:  # type: ignore[no-untyped-def, type-arg]
    counts = Counter(key(t) for t in turns)
    return {k: v / len(turns) for k, v in counts.items()}


def test_convert_split_is_seeded_stratified_and_disjoint(shared_data: Path, tmp_path: Path) -> None:
    args = ["--data", str(shared_data), "--dataset", "zeroeval", "--split", "0.2"]
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = CliRunner().invoke(
            convert_cmd, [*args, "--out", str(tmp_path / name), "--seed", seed]
        )
        assert out.exit_code == 0, out.output
        assert "1691 train" in out.output and "423 held out" in out.output
        runs[name] = tuple(
            (tmp_path / name / f"zeroeval.{part}.jsonl").read_text()
            for part in ("train", "heldout")
        )
    assert runs["a"] == runs["b"]  # same seed, same split, byte for byte
    assert runs["a"][1] != runs["c"][1]  # another seed, another split
    train = load_labeled([tmp_path / "a" / "zeroeval.train.jsonl"]).turns
    held = load_labeled([tmp_path / "a" / "zeroeval.heldout.jsonl"]).turns
    assert not {t.id for t in train} & {t.id for t in held}
    everything = train + held
    # Every task in both halves, in proportion (within one turn of the exact share).
    for cat, share in _strata_share(everything, lambda t: t.category).items():
        in_held = sum(t.category == cat for t in held)
        assert abs(in_held - 0.2 * share * len(everything)) < 1, cat
    # Label patterns (which tiers answered correctly) balanced within each task.
    by_stratum = Counter((t.category, label_pattern(t)) for t in everything)
    held_by = Counter((t.category, label_pattern(t)) for t in held)
    for stratum, n in by_stratum.items():
        if n >= 5:
            assert abs(held_by[stratum] - 0.2 * n) <= 1, stratum


def test_limit_is_a_seeded_stratified_sample(shared_data: Path, tmp_path: Path) -> None:
    """The csv files come one task at a time: the first N rows would all be gsm."""
    results = convert(shared_data, tmp_path, ("zeroeval",), limit=100, seed=3)
    sample = load_labeled([results[0].path]).turns
    assert len(sample) == 100
    cats = Counter(t.category for t in sample)
    assert cats == {"gsm": 47, "crux": 28, "math-l5": 25}  # 983/594/537 of 2114: 46.5/28.1/25.4
    again = convert(shared_data, tmp_path / "again", ("zeroeval",), limit=100, seed=3)
    assert again[0].path.read_text() == results[0].path.read_text()
