from __future__ import annotations

import json
from pathlib import Path

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
    mmlu_pro_prompt,
    parse_tier_overrides,
)
from training.data.logs import DataError, load_labeled


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


def test_convert_writes_loadable_logs(shared_data: Path, tmp_path: Path) -> None:
    results = convert(shared_data, tmp_path, limit=20)
    assert [r.dataset for r in results] == [
        "mmlu_pro",
        "routellm_mmlu",
        "routellm_gsm8k",
        "dcrouter",
    ]
    report = load_labeled([r.path for r in results])
    assert report.bad_lines == [] and len(report.turns) == 80


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
