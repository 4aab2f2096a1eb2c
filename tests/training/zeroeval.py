"""Real Claude 3 outcomes from ../shared/data/zeroeval as labeled turns (a test helper until
`tierwise convert` reads zeroeval): haiku/sonnet/opus = claude-3-haiku/-sonnet/-opus (sonnet
has no math-l5 results: a partial label), answer lengths from `<model>__out_tokens`, every other
model an auxiliary outcome, category = the task."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from router.core.schemas import RouteRequest
from router.core.tiers import Tier
from training.data.logs import AuxOutcome, LabeledTurn, TierScore

TASKS = ("gsm", "crux", "math-l5")
CLAUDE_3 = {
    Tier.HAIKU: "claude-3-haiku-20240307",
    Tier.SONNET: "claude-3-sonnet-20240229",
    Tier.OPUS: "claude-3-opus-20240229",
}


def _number(value: str | None) -> float | None:
    return None if value is None or value == "" else float(value)


def zeroeval_turns(data_dir: Path, tiers: dict[Tier, str] = CLAUDE_3) -> list[LabeledTurn]:
    csv.field_size_limit(sys.maxsize)
    turns = []
    for task in TASKS:
        with (data_dir / "zeroeval" / f"{task}.csv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                models = [c[: -len("__correct")] for c in row if c.endswith("__correct")]
                scores, aux = {}, {}
                for model in models:
                    correct = _number(row[f"{model}__correct"])
                    if correct is None:
                        continue
                    tokens = _number(row.get(f"{model}__out_tokens"))
                    out = None if tokens is None else int(tokens)
                    tier = next((t for t, m in tiers.items() if m == model), None)
                    if tier is not None:
                        scores[tier] = TierScore(
                            score=correct, source=f"ground_truth:{model}", output_tokens=out
                        )
                    else:
                        aux[model] = AuxOutcome(score=correct, output_tokens=out)
                if not scores:
                    continue
                turns.append(
                    LabeledTurn(
                        id=f"zeroeval:{task}:{row['id']}",
                        request=RouteRequest(prompt=row["prompt"]),
                        scores=scores,
                        aux=aux or None,
                        category=task,
                        source="zeroeval",
                    )
                )
    return turns
