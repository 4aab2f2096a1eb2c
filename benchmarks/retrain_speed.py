"""Speed of a retrain: embedding (cold and warm cache) and the stacked-heads fit, in turns/s.

A retrain is `tierwise train` on new labeled turns; its cost is embedding each turn with the
bundle's int8 MiniLM (each text alone, in parallel threads: training/data/parallel_embed.py)
and fitting stack4 (training/stack.py). The turns are real: all of zeroeval (2,114, with answer
lengths) plus MMLU-Pro questions up to --turns (without lengths), so the fit has 17 tasks and
partial lengths, as a mixed log would. The embedder is the shipped bundle's (no torch export).
Prints a Markdown table and the issue's target: 10,000 turns in under 5 minutes on 2 cores.

    .venv/bin/python benchmarks/retrain_speed.py                  # 10,000 turns, 2 threads
    .venv/bin/python benchmarks/retrain_speed.py --turns 2000 --workers 1

Not a test: numbers depend on the machine and its load, which the output's first line records.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from router.core.embedder import OnnxEmbedder  # noqa: E402
from tests.training.zeroeval import zeroeval_turns  # noqa: E402
from training.convert import convert  # noqa: E402
from training.data.embed_cache import EmbedCache  # noqa: E402
from training.data.logs import LabeledTurn, load_labeled  # noqa: E402
from training.data.parallel_embed import ParallelEmbedder  # noqa: E402
from training.fit import build_arrays  # noqa: E402
from training.head_types import HEADS  # noqa: E402
from training.stack_heads import fit_stacked, write_stack_classifier  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SHIPPED = REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip()
TARGET_S = 300.0
TARGET_TURNS = 10_000


def load_turns(n: int, work: Path) -> list[LabeledTurn]:
    turns = zeroeval_turns(SHARED)
    (mmlu,) = convert(SHARED, work / "logs", datasets=("mmlu_pro",))
    rest = load_labeled([mmlu.path]).turns
    rng = np.random.default_rng(0)
    picked = rng.permutation(len(rest))[: max(0, n - len(turns))]
    return (turns + [rest[i] for i in sorted(picked)])[:n]


def row(name: str, n: int, seconds: float) -> str:
    return f"| {name} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} |"


@click.command()
@click.option("--turns", "n", type=int, default=TARGET_TURNS, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Embedding threads.")
def main(n: int, workers: int) -> None:
    load = os.getloadavg()
    click.echo(
        f"{platform.node()}: {os.cpu_count()} CPUs, load {load[0]:.1f} before; "
        f"{n:,} turns, {workers} embedding threads"
    )
    with tempfile.TemporaryDirectory(prefix="retrain-speed-") as tmp:
        work = Path(tmp)
        turns = load_turns(n, work)
        texts = [t.turn().text for t in turns]
        keys = [t.content_hash() for t in turns]
        embedder = OnnxEmbedder(SHIPPED / "embedder.onnx", SHIPPED / "tokenizer.json")
        cache = EmbedCache(
            work / "cache", ParallelEmbedder(embedder, workers), "bench", progress=False
        )
        start = time.perf_counter()
        cache.embed_texts(keys, texts)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        embeddings = cache.embed_texts(keys, texts)
        warm = time.perf_counter() - start

        start = time.perf_counter()
        data = build_arrays(turns, embeddings, 0.5, hand=True)
        features = time.perf_counter() - start
        start = time.perf_counter()
        fit = fit_stacked(
            data, HEADS["stack4"], embedder.dim, use_aux=False, min_labels=30,
            default_output_tokens=500, seed=0,
        )  # fmt: skip
        fitting = time.perf_counter() - start
        start = time.perf_counter()
        write_stack_classifier(fit.model, "stack4", work / "bundle", data.features[:512], 384)
        export = time.perf_counter() - start

    click.echo("")
    click.echo("| step | turns | seconds | turns/s |")
    click.echo("|---|---:|---:|---:|")
    click.echo(row("embed, cold cache (int8 MiniLM, each text alone)", n, cold))
    click.echo(row("embed, warm cache", n, warm))
    click.echo(row("features (structure + hand)", n, features))
    for step, seconds in fit.seconds.items():
        click.echo(row(f"fit stack4: {step}", n, seconds))
    click.echo(row("fit stack4 (all)", n, fitting))
    click.echo(row("export + ONNX parity check", n, export))
    total = cold + features + fitting + export
    click.echo(row("**retrain, cold cache**", n, total))
    click.echo(row("**retrain, warm cache**", n, warm + features + fitting + export))
    verdict = (
        "meets" if n >= TARGET_TURNS and total < TARGET_S else "is not the target run or misses"
    )
    click.echo(
        f"\n{n:,} turns, cold cache: {total:.0f} s; target {TARGET_TURNS:,} turns < "
        f"{TARGET_S:.0f} s: {verdict} it. Load {os.getloadavg()[0]:.1f} after."
    )


if __name__ == "__main__":
    main()
