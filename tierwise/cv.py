"""`tierwise cv`: the router against every peer by repeated cross-validation over labeled logs.

Each turn is embedded once, as `tierwise train` embeds it (the bundle's own int8 embedder, each
text alone, through the embedding cache) into the features a bundle computes. For each repeat,
the turns are dealt into stratified folds (training.split.fold_ids); for each fold the router's
stacked heads (training.stack, `tierwise train`'s defaults) and every peer (eval.peers) are fitted
on the other folds and predict it. Each repeat's out-of-fold predictions are pooled and routed
with the policy each fold's bundle would ship (eval.folds); eval.repeated compares the methods
over the repeats. It fits training's heads and eval's peers, so it lives in the CLI layer.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from eval.cli import PEER_CHOICES
from router.errors import RouterError
from training.data.embed_cache import DEFAULT_CACHE_DIR

if TYPE_CHECKING:
    from eval.cv_report import CvFiles
    from eval.repeated import RepeatedSubset
    from router.core.policy import UtilityPolicy
    from training.config import TrainConfig
    from training.data.logs import LabeledTurn, LoadReport
    from training.export import BundleEmbedder
    from training.fit import TurnArrays
    from training.head_types import HeadType

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
# --peers accepts the task prior's short name too.
PEER_ALIASES = {"prior": "task_prior"}


class CvConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Labeled-log JSONL files (training.data.logs), read as `tierwise train` reads them.
    logs: tuple[Path, ...] = Field(min_length=1)
    # 5 folds: each model trains on 80% of the turns, as `tierwise train` (holdout 0.2) does.
    folds: int = Field(default=5, ge=2)
    # 3 repeats: the spread between repeats shows how much one split's numbers move.
    repeats: int = Field(default=3, ge=1)
    # Repeat r deals its folds and seeds the router's and the peers' inner CV with seed + r;
    # the bootstrap uses seed.
    seed: int = 0
    # Peer routers (eval.peers.PEERS), fitted on each fold's training turns.
    peers: tuple[str, ...] = PEER_CHOICES
    # Paired bootstrap resamples (issue 8: 500; 0 skips the intervals).
    bootstrap: int = Field(default=500, ge=0)
    # cv.json and cv.md go here.
    out: Path = Path("reports/cv")
    # Embedding cache and ONNX embedder exports, shared with `tierwise train`.
    cache_dir: Path = DEFAULT_CACHE_DIR
    # A progress bar over the folds.
    progress: bool = True


@dataclass(frozen=True)
class CvResult:
    subsets: tuple[RepeatedSubset, ...]  # pooled first
    files: CvFiles
    markdown: str
    folds: tuple[IntArray, ...]  # per repeat, each turn's fold
    seconds: float


@dataclass(frozen=True)
class FoldFit:
    """One fold's predictions for its own rows, and the policy its bundle would ship."""

    rows: IntArray
    probs: FloatArray  # (m, k) the router's P(adequate)
    believed: FloatArray  # (m, k) USD the policy weighs: input + the router's answer forecast
    policy: UtilityPolicy
    peers: dict[str, FloatArray]
    # The default operating point this fold's bundle would ship (quality_target on its training
    # rows' out-of-fold predictions) and what it keeps on this fold's unseen rows: quality and
    # cost shares of always-top, and the rows it was measured on.
    default_knob: float
    default_quality: float
    default_cost: float
    default_rows: int


def training_config(cfg: CvConfig) -> TrainConfig:
    """`tierwise train`'s defaults (head, adequacy, answer tokens, embedder) for these logs."""
    from training.config import TrainConfig

    return TrainConfig(logs=cfg.logs, cache_dir=cfg.cache_dir, seed=cfg.seed,
                       progress=cfg.progress, track=False)  # fmt: skip


def features(
    cfg: TrainConfig, bundle_embedder: BundleEmbedder
) -> tuple[LoadReport, TurnArrays, str, int]:
    """(load report, TurnArrays with the bundle's features, embedder name, embedding dim)."""
    from training.fit import build_arrays
    from training.train import embed_turns, load_logs

    report = load_logs(cfg)
    with tempfile.TemporaryDirectory(prefix="tierwise-cv-") as tmp:
        staging = Path(tmp)
        spec = bundle_embedder.export(staging, cfg.quantization)
        embedder = bundle_embedder.load(staging, spec)
        embeddings = embed_turns(report.turns, staging, spec, embedder, cfg)
        file = staging / spec.file
        tag = ""
        if file.is_file():
            from router.core.bundle import sha256_file

            tag = f" ({sha256_file(file)[:8]})"
    data = build_arrays(report.turns, embeddings, cfg.adequacy_threshold, hand=True)
    return report, data, f"{spec.name}:{spec.quantization}{tag}", spec.dim


def fit_fold(
    data: TurnArrays,
    turns: list[LabeledTurn],
    test: IntArray,
    train: IntArray,
    head: HeadType,
    dim: int,
    tcfg: TrainConfig,
    peers: tuple[str, ...],
    seed: int,
) -> FoldFit:
    from eval.peers.data import PeerData, aux_names, peer_data
    from eval.peers.fit import fit_peers
    from router.core.heads import HeadScores
    from training.heldout import RoutingRows
    from training.stack_heads import fit_stacked
    from training.train import default_point, policy_costs, tier_specs, true_costs

    specs = tier_specs()
    tr, te = data.subset(train), data.subset(test)
    fit = fit_stacked(tr, head, dim, use_aux=tcfg.use_aux, min_labels=tcfg.min_labels,
                      default_output_tokens=tcfg.output_tokens, seed=seed)  # fmt: skip
    # As training sets the bundle's policy and default knob: on the training rows' honest
    # out-of-fold predictions.
    policy, point, _ = default_point(head, tr, fit.oof_probs, fit.oof_tokens, specs, tcfg)
    # StackModel.predict is the math classifier.onnx computes (training checks the export
    # against it); float32 outputs, as served.
    probs, tokens = fit.model.predict(te.features)
    served = HeadScores(probs.astype(np.float32), tokens.astype(np.float32))
    believed = policy_costs(te, served, specs, tcfg.output_tokens)
    held = RoutingRows.of(served.quality, believed, np.where(te.labeled, te.scores, np.nan),
                          true_costs(te, specs, tcfg.output_tokens))  # fmt: skip
    quality, cost = held.shares(
        policy.choose(held.probs, held.policy_costs, point.knob, held.allowed)
    )
    adequacy = tcfg.adequacy_threshold
    train_turns = [turns[i] for i in train]
    peer_train = peer_data(train_turns, tr.features, dim, adequacy, aux_names(train_turns))
    peer_test = peer_data([turns[i] for i in test], te.features, dim, adequacy)
    # The peers never see the predicted turns' labels.
    hidden = np.full_like(peer_test.adequate, np.nan)
    peer_test = PeerData(peer_test.features, dim, hidden, None, peer_test.categories)
    fits = fit_peers(peers, peer_train, peer_test, seed, progress=False)
    return FoldFit(
        test, served.quality.astype(np.float64), believed, policy,
        {name: f.probs for name, f in fits.items()},
        point.knob, quality, cost, len(held.probs),
    )  # fmt: skip


def run_cv(cfg: CvConfig, bundle_embedder: BundleEmbedder | None = None) -> CvResult:
    """Embed, fit and predict every fold of every repeat, compare, write cv.json and cv.md.
    `bundle_embedder` replaces `tierwise train`'s MiniLM export (tests: a fake)."""
    from tqdm.auto import tqdm

    from eval.curves import QUALITY_SHARE
    from eval.cv_report import CvRun, DefaultPoint, render_markdown, write_cv
    from eval.folds import fold_policy_costs, pool_folds
    from eval.repeated import compare_repeats
    from eval.routing import routing_set
    from eval.routing_metrics import RoutingInputs, route_methods
    from router.core.policy import UtilityPolicy
    from router.core.tiers import TIER_ORDER
    from training.data.logs import data_hash, label_arrays
    from training.export import MiniLMBundleEmbedder
    from training.fit import TrainingError
    from training.head_types import HEADS
    from training.split import fold_ids
    from training.train import tier_specs, true_costs

    start = time.perf_counter()
    tcfg = training_config(cfg)
    head = HEADS[tcfg.heads[0]]
    if not head.stacked:
        raise TrainingError(f"tierwise cv fits stacked heads; the default head is {head.name}")
    bundle_embedder = bundle_embedder or MiniLMBundleEmbedder(
        cfg.cache_dir / "onnx-embedders", tcfg.max_length
    )
    report, data, embedder_name, dim = features(tcfg, bundle_embedder)
    turns = report.turns
    scores, adequate = label_arrays(turns, TIER_ORDER, tcfg.adequacy_threshold)
    costs = true_costs(data, tier_specs(), tcfg.output_tokens)
    rs = routing_set(scores, adequate, costs)
    if rs is None:
        raise TrainingError("no turn is labeled for two routing tiers: nothing to route")
    categories = np.asarray([t.category or "(none)" for t in turns], dtype=str)
    n = len(turns)
    repeats, all_folds, defaults = [], [], []
    bar = tqdm(total=cfg.repeats * cfg.folds, desc="cv", unit="fold", disable=not cfg.progress)
    with bar:
        for r in range(cfg.repeats):
            seed = cfg.seed + r
            folds = fold_ids(turns, cfg.folds, seed)
            fits = []
            for f in range(cfg.folds):
                bar.set_postfix(repeat=r + 1, fold=f + 1)
                test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
                fits.append(fit_fold(data, turns, test, train, head, dim, tcfg, cfg.peers, seed))
                bar.update()
            defaults += [DefaultPoint(x.default_knob, x.default_quality, x.default_cost,
                                      x.default_rows) for x in fits]  # fmt: skip
            probs = pool_folds(n, [(x.rows, x.probs) for x in fits])
            believed = pool_folds(n, [(x.rows, x.believed) for x in fits])
            peers = {p: pool_folds(n, [(x.rows, x.peers[p]) for x in fits]) for p in cfg.peers}
            weighed = fold_policy_costs(believed, folds, [x.policy for x in fits])
            inputs = RoutingInputs(scores, adequate, costs, weighed, data.tokens, categories,
                                   TIER_ORDER)  # fmt: skip
            repeats.append(route_methods(inputs, rs, probs, peers, UtilityPolicy()))
            all_folds.append(folds)
    tier_names = [TIER_ORDER[int(j)].value for j in rs.cols]
    subsets = compare_repeats(repeats, rs, categories[rs.rows], cfg.bootstrap, cfg.seed,
                              tier_names)  # fmt: skip
    seconds = time.perf_counter() - start
    run = CvRun(
        logs=tuple(p.name for p in cfg.logs),
        data_hash=data_hash(turns),
        n_turns=n,
        n_routed=rs.n,
        folds=cfg.folds,
        repeats=cfg.repeats,
        seed=cfg.seed,
        n_boot=cfg.bootstrap,
        head=head.name,
        policy=head.policy,
        embedder=embedder_name,
        peers=cfg.peers,
        fold_sizes=tuple(tuple(np.bincount(f, minlength=cfg.folds).tolist()) for f in all_folds),
        share=QUALITY_SHARE,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=seconds,
        default_points=tuple(defaults),
        quality_target=tcfg.quality_target,
    )
    files = write_cv(run, subsets, cfg.out)
    return CvResult(subsets, files, render_markdown(run, subsets), tuple(all_folds), seconds)


@click.command("cv")
@click.option(
    "--logs",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    multiple=True,
    required=True,
    help="Labeled-log JSONL file (repeatable).",
)
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Repeat r deals its folds and seeds its fits with SEED + r.")  # fmt: skip
@click.option(
    "--peers",
    default=",".join(PEER_CHOICES),
    show_default=True,
    help="Comma-separated peer routers to compare with ('' for none).",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Paired bootstrap resamples (0: no intervals).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports/cv"),
    show_default=True,
    help="Writes OUT/cv.json and OUT/cv.md.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CACHE_DIR,
    show_default=True,
    help="Embedding cache and ONNX embedder exports (shared with tierwise train).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def cv_command(
    logs: tuple[Path, ...],
    folds: int,
    repeats: int,
    seed: int,
    peers: str,
    bootstrap: int,
    out: Path,
    cache_dir: Path,
    no_progress: bool,
) -> None:
    """Compare the router with every peer router by repeated stratified cross-validation on
    labeled logs: APGR and saving at 95% of always-top quality per method, the mean over
    repeats with paired bootstrap intervals, per task too, and issue 8's targets."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    names = tuple(PEER_ALIASES.get(p.strip(), p.strip()) for p in peers.split(",") if p.strip())
    unknown = [p for p in names if p not in PEER_CHOICES]
    if unknown:
        raise click.BadParameter(
            f"unknown peer {unknown[0]!r}; expected one of {list(PEER_CHOICES)}",
            param_hint="--peers",
        )
    cfg = CvConfig(logs=logs, folds=folds, repeats=repeats, seed=seed, peers=names,
                   bootstrap=bootstrap, out=out, cache_dir=cache_dir, progress=not no_progress)  # fmt: skip
    try:
        result = run_cv(cfg)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result.markdown, nl=False)
    click.echo(f"\nwritten: {result.files.markdown}, {result.files.json}")
