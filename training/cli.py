"""`tierwise convert`, `train`, `promote` and `deploy` (also `router-train convert|train|...`).

Commands only parse flags, build the config, call a plain function and print a summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from router.errors import RouterError
from training.convert import DATASETS
from training.head_types import DEFAULT_HEADS, HEADS

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.train import TrainResult

F = TypeVar("F", bound=Callable[..., Any])


@click.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("../shared/data"),
    show_default=True,
    help="Folder with mmlu_pro/, routellm/, dcrouter/, zeroeval/.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Writes <out>/<dataset>.jsonl.",
)
@click.option(
    "--dataset",
    "datasets",
    type=click.Choice(DATASETS),
    multiple=True,
    help="Datasets to convert (repeatable; default all).",
)
@click.option(
    "--tier-model",
    "tier_models",
    multiple=True,
    metavar="DATASET:TIER=MODEL",
    help="Override which model stands in for a tier, e.g. "
    "mmlu_pro:haiku=Mistral-7B-Instruct-v0.2; 'DATASET:TIER=' drops the tier. Defaults: "
    "mmlu_pro haiku/sonnet/opus = Meta-Llama-3_1-8B-Instruct/gemini-1.5-flash-002/"
    "gemini-1.5-pro-002; routellm_* haiku/opus = Mixtral-8x7B/GPT-4-1106; dcrouter "
    "haiku/sonnet/opus = llama-3.1-8b-instruct/llama-3.3-nemotron-super-49b-v1/"
    "llama-3.1-nemotron-51b-instruct; zeroeval haiku/sonnet/opus = claude-3-haiku-20240307/"
    "claude-3-sonnet-20240229/claude-3-opus-20240229 (real Claude tiers).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Keep a seeded sample of N records per dataset, stratified by category and label "
    "pattern (--seed).",
)
@click.option(
    "--split",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Write <dataset>.train.jsonl and <dataset>.heldout.jsonl, the held-out part this "
    "fraction of the records, stratified by source/category and label pattern (--seed).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --limit and --split.")
def convert(
    data_dir: Path,
    out_dir: Path,
    datasets: tuple[str, ...],
    tier_models: tuple[str, ...],
    limit: int | None,
    split: float | None,
    seed: int,
) -> None:
    """Convert public routing data into labeled-log JSONL."""
    from training.convert import convert as run_convert
    from training.convert import parse_tier_overrides

    try:
        maps = parse_tier_overrides(list(tier_models))
        results = run_convert(
            data_dir, out_dir, datasets or DATASETS, maps, limit, split=split, seed=seed
        )
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in results:
        tiers = ", ".join(f"{t.value}<-{m}" for t, m in maps[r.dataset].items())
        dropped = f", {r.duplicates} duplicates dropped" if r.duplicates else ""
        if r.heldout_path is None:
            click.echo(f"{r.dataset}: {r.records} records -> {r.path}  ({tiers}){dropped}")
        else:
            click.echo(
                f"{r.dataset}: {r.records} train -> {r.path}, {r.heldout_records} held out -> "
                f"{r.heldout_path}  ({tiers}){dropped}"
            )


def train_options(command: F) -> F:
    """The options of `tierwise train` (also `router-train train`); train_config turns them into
    a TrainConfig."""
    options = [
        click.option(
            "--logs",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            multiple=True,
            required=True,
            help="Labeled-log JSONL file (repeatable).",
        ),
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("models"),
            show_default=True,
            help="Bundles go to <out>/<version>/.",
        ),
        click.option("--version", "version", help="Bundle version (default: derived from data)."),
        click.option(
            "--quantization",
            type=click.Choice(["int8", "fp32"]),
            default="int8",
            show_default=True,
        ),
        click.option(
            "--compare",
            "compare",
            type=click.Choice(["int8", "fp32"]),
            multiple=True,
            help="Embedder precisions to report held-out routing for (default: fp32 and int8).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--holdout", "holdout_fraction", type=float, default=0.2, show_default=True),
        click.option("--cv-folds", type=click.IntRange(min=2), default=3, show_default=True),
        click.option(
            "--head",
            "heads",
            type=click.Choice(list(HEADS)),
            multiple=True,
            help="Head type: one stacked type, or per-tier candidates (repeatable; CV picks one "
            "per tier). "
            + "; ".join(f"{h.name}: {h.help}" for h in HEADS.values())
            + f". Default: {', '.join(DEFAULT_HEADS)}.",
        ),
        click.option(
            "--quality-target",
            type=float,
            default=0.97,
            show_default=True,
            help="Share of always-top quality the default operating point keeps (stacked heads: "
            "on the training rows' out-of-fold predictions; in repeated CV .97 kept >= .95 "
            "held out on 13 of 15 folds, .96 on 12).",
        ),
        click.option(
            "--aux/--no-aux",
            "use_aux",
            default=False,
            show_default=True,
            help="Stacked heads: also fit the 2PL difficulty on the logs' auxiliary models' "
            "outcomes (LabeledTurn.aux). Off by default: in repeated CV on real Claude outcomes "
            "it did not help (APGR .643 with, .655 without).",
        ),
        click.option(
            "--min-labels",
            type=click.IntRange(min=1),
            default=30,
            show_default=True,
            help="Stacked heads: a tier with fewer labels in a task stays uncertain on its "
            "prompts.",
        ),
        click.option("--adequacy-threshold", type=float, default=0.5, show_default=True),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Embedding cache.",
        ),
        click.option(
            "--fail-on-bad-lines", is_flag=True, help="Exit with an error on any bad line."
        ),
        click.option("--no-track", is_flag=True, help="Do not log to MLflow."),
        click.option(
            "--alias",
            help="Give the new registry version this alias (e.g. champion, which `tierwise "
            "deploy` serves); default: none (`tierwise promote` sets one later).",
        ),
        click.option("--no-progress", is_flag=True, help="Hide progress bars."),
        click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def train_config(
    logs: tuple[Path, ...],
    out_dir: Path,
    version: str | None,
    quantization: str,
    compare: tuple[str, ...],
    seed: int,
    holdout_fraction: float,
    cv_folds: int,
    heads: tuple[str, ...],
    quality_target: float,
    use_aux: bool,
    min_labels: int,
    adequacy_threshold: float,
    cache_dir: Path | None,
    fail_on_bad_lines: bool,
    no_track: bool,
    alias: str | None,
    no_progress: bool,
    verbose: bool,
) -> TrainConfig:
    """train_options' values -> TrainConfig (unset ones fall back to its documented defaults);
    also sets up logging (-v)."""
    from pydantic import ValidationError

    from training.config import TrainConfig

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    fields: dict[str, object] = {
        "logs": logs,
        "out_dir": out_dir,
        "version": version,
        "quantization": quantization,
        "compare_quantizations": compare or None,
        "seed": seed,
        "holdout_fraction": holdout_fraction,
        "cv_folds": cv_folds,
        "heads": heads or None,
        "quality_target": quality_target,
        "use_aux": use_aux,
        "min_labels": min_labels,
        "adequacy_threshold": adequacy_threshold,
        "cache_dir": cache_dir,
        "fail_on_bad_lines": fail_on_bad_lines,
        "track": not no_track,
        "alias": alias,
        "progress": not no_progress,
    }
    try:
        return TrainConfig.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@train_options
def train(**options: Any) -> None:
    """Train a router bundle from labeled logs and write <out>/<version>/ (no peer comparison:
    `tierwise train` adds it)."""
    from training.train import train as run_train

    cfg = train_config(**options)
    try:
        result = run_train(cfg)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    print_summary(result)


def print_summary(result: TrainResult, echo: Callable[[str], None] = click.echo) -> None:
    report = result.load_report
    echo(report.summary())
    for path, lineno, why in report.bad_lines:
        echo(f"  bad line {path}:{lineno}: {why}")
    m = result.manifest
    knob = f"{m.policy} {m.knob:.4g}" + (
        " USD per inadequate answer" if m.policy == "utility" else ""
    )
    echo(f"bundle {m.version} -> {result.bundle_dir}")
    echo(f"heads: {m.classifier.head}; default operating point: {knob}")
    for key, summary in m.metrics.get("heldout_curve", {}).items():
        echo(
            f"held-out curve ({key}, {summary['n']} turns): APGR {summary['apgr']:.3f}, "
            f"saving at 95% of always-top quality {summary['saving_at_95']:.1%}; at the default: "
            f"quality {summary['default_quality_share']:.3f}, cost "
            f"{summary['default_cost_share']:.3f} of always-top"
        )
    for key, outcomes in result.routing.items():
        n = outcomes[0].n if outcomes else 0
        echo(f"held-out routing ({key}, default point, {n} turns labeled for every tier):")
        echo(f"  {'policy':<14} {'tier_acc':>8} {'quality':>8} {'q_share':>8} {'cost_saved':>10}")
        for o in outcomes:
            echo(
                f"  {o.name:<14} {o.tier_accuracy:8.3f} {o.quality:8.3f} "
                f"{o.quality_share:8.3f} {o.cost_saved:10.3f}"
            )
    if result.mlflow_run_id:
        echo(f"mlflow run {result.mlflow_run_id}, registered version {result.registered_version}")
        if result.alias:
            echo(f"alias {result.alias} -> version {result.registered_version}")
    for warning in result.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")


def registry_options(command: F) -> F:
    """--model-name, --tracking-uri and --registry-uri: where deploy and promote find the
    registered bundle."""
    options = [
        click.option(
            "--model-name",
            default=None,
            help="Registered model [default: TrainConfig.registered_model].",
        ),
        click.option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            default=None,
            help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db].",
        ),
        click.option(
            "--registry-uri",
            envvar="MLFLOW_REGISTRY_URI",
            default=None,
            help="MLflow model registry URI [default: the tracking URI].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.option(
    "--alias", default="champion", show_default=True, help="Deploy models:/<name>@<alias>."
)
@registry_options
@click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Bundles folder the service reads (ROUTER_MODEL_DIR); the bundle lands in <dir>/<version>.",
)
@click.option("--url", default=None, help="Running service to reload, e.g. http://tierwise:8000.")
@click.option(
    "--token",
    envvar="TIERWISE_ADMIN_TOKEN",
    default=None,
    help="Admin token for /admin/reload (ROUTER_ADMIN_TOKENS) [default: $TIERWISE_ADMIN_TOKEN].",
)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Load it here first.")
@click.option(
    "--set-default/--no-set-default",
    default=True,
    show_default=True,
    help="Point <models-dir>/DEFAULT at it once the service runs it.",
)
def deploy(
    alias: str,
    model_name: str | None,
    tracking_uri: str | None,
    registry_uri: str | None,
    models_dir: Path,
    url: str | None,
    token: str | None,
    verify: bool,
    set_default: bool,
) -> None:
    """Fetch models:/<name>@<alias> into --models-dir and hot-reload the service at --url."""
    from pydantic import ValidationError

    from training.deploy import DeployConfig
    from training.deploy import deploy as run_deploy

    fields = {
        "alias": alias,
        "model_name": model_name,
        "tracking_uri": tracking_uri,
        "registry_uri": registry_uri,
        "models_dir": models_dir,
        "url": url,
        "token": token,
        "verify": verify,
        "set_default": set_default,
    }
    try:
        cfg = DeployConfig.model_validate({k: v for k, v in fields.items() if v is not None})
        result = run_deploy(cfg)
    except (ValidationError, RouterError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{cfg.model_name}@{alias} = registry version {result.registry_version} = bundle "
        f"{result.model_version} -> {result.path}"
    )
    if result.reloaded:
        click.echo(f"{url} now serves {result.model_version} (was {result.previous_version})")
    if cfg.set_default:
        click.echo(f"{cfg.models_dir / 'DEFAULT'} -> {result.model_version}")


@click.command()
@click.argument("version")
@click.option("--alias", required=True, help="The alias to point at VERSION, e.g. champion.")
@registry_options
def promote(
    version: str,
    alias: str,
    model_name: str | None,
    tracking_uri: str | None,
    registry_uri: str | None,
) -> None:
    """Point models:/<name>@ALIAS at VERSION: a registry version number, or the bundle version
    training gave it (--version, e.g. my-v2). `tierwise deploy --alias ALIAS` then serves it."""
    from training.deploy import DEFAULT_MODEL_NAME
    from training.tracking import promote as run_promote

    name = model_name or DEFAULT_MODEL_NAME
    try:
        done = run_promote(name, version, alias, tracking_uri, registry_uri)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    was = f" (was version {done.previous_version})" if done.previous_version else ""
    click.echo(
        f"{name}@{alias} -> version {done.model_version} (bundle {done.bundle_version}){was}"
    )


@click.group()
def main() -> None:
    """router-train: convert public data and train router bundles."""


main.add_command(convert)
main.add_command(train)
main.add_command(deploy)
main.add_command(promote)
