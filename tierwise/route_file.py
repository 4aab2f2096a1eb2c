"""`tierwise route-file`: what the service would decide for every turn of a file, at one or many
operating points, so an outside harness can score the router with its own labels.

Input: JSON Lines, each a labeled-log record (`{"id": ..., "request": {...}}`) or a /route body
(`{"prompt": ...}` or `{"messages": ...}`, optional "id"). Output: one line per turn and
operating point:

    {"id": "...", "operating_point": {"quality_target": 0.96}, "tier": "haiku",
     "policy": "utility", "knob": 0.057, "probabilities": {...}, "expected_cost_usd": {...},
     "output_tokens": {...}, "reason": "...", "model_version": "..."}

Decisions go through RoutingService exactly as POST /route: each turn is scored once
(`RoutingService.score`), and every operating point is the same request with its knob fields
set (`quality_target`, or the bundle policy's knob for `--sweep`), decided by
`RoutingService.decide`. Agent-context fields are honoured as /route honours them (sessions in
memory for the run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from router.agent.routing import AgentRouting
from router.agent.stores import memory_stores
from router.core.bundle import load_bundle, read_manifest, resolve_bundle_dir
from router.core.manifest import Manifest
from router.core.policy import get_policy
from router.core.schemas import KNOB_FIELDS, RouteRequest
from router.core.service import RoutingService
from router.errors import RouterError
from router.settings import Settings

# Turns scored per bundle call; bounds memory, not results.
BATCH = 64


class RouteFileError(RouterError):
    """A line of the turns file is not a turn."""


@dataclass(frozen=True)
class Turn:
    id: str
    request: RouteRequest


def read_turns(path: Path) -> Iterator[Turn]:
    """Each line's id (else "line:<n>") and RouteRequest; RouteFileError names file:line."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                body = record["request"] if "request" in record else record
                if isinstance(body, dict):
                    body = {k: v for k, v in body.items() if k != "id"}
                request = RouteRequest.model_validate(body)
            except (ValueError, KeyError, ValidationError) as exc:
                why = str(exc).splitlines()[0]
                raise RouteFileError(f"{path}:{lineno}: not a turn: {why}") from None
            yield Turn(str(record.get("id", f"line:{lineno}")), request)


def sweep_points(manifest: Manifest, n: int) -> list[dict[str, float]]:
    """n operating points spread along the bundle's held-out curve, cheapest first, each as
    the request field of its policy's knob."""
    field = get_policy(manifest.policy).knob_name
    knobs = sorted({p.knob for p in manifest.curve}) or [manifest.knob]
    if n == 1:
        return [{field: manifest.knob}]
    picked = (
        knobs
        if n >= len(knobs)
        else [knobs[round(i * (len(knobs) - 1) / (n - 1))] for i in range(n)]
    )
    return [{field: float(k)} for k in dict.fromkeys(picked)]


def route_file(
    model: Path, data: Path, out: Path, points: Sequence[dict[str, float]], settings: Settings
) -> int:
    """Write the decisions of every turn at every point (an empty point: the request's own
    knobs, else the bundle's default); returns the number of lines written."""
    bundle = load_bundle(model, settings.onnx_threads)
    service = RoutingService(bundle, settings, AgentRouting(settings, memory_stores(settings)))
    written = 0
    turns = iter(read_turns(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        while batch := [t for _, t in zip(range(BATCH), turns, strict=False)]:
            scored = service.score([t.request for t in batch])
            for turn, item in zip(batch, scored, strict=True):
                for point in points or [{}]:
                    request = turn.request
                    if point:
                        cleared = dict.fromkeys(KNOB_FIELDS)
                        request = request.model_copy(update={**cleared, **point})
                    decision = service.decide(request, item)
                    fh.write(json.dumps(_line(turn.id, point, decision.model_dump(mode="json"))))
                    fh.write("\n")
                    written += 1
    return written


def _line(turn_id: str, point: dict[str, float], decision: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "tier",
        "policy",
        "knob",
        "probabilities",
        "expected_cost_usd",
        "output_tokens",
        "reason",
        "model_version",
    )
    return {"id": turn_id, "operating_point": point, **{k: decision[k] for k in keep}}


@click.command("route-file")
@click.option(
    "--model",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="A bundle folder, or a folder whose DEFAULT names one.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="JSONL turns: labeled-log records or /route bodies.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSONL out."
)
@click.option(
    "--quality-target",
    "targets",
    type=click.FloatRange(0, 1, min_open=True),
    multiple=True,
    help="Operating point as a share of always-top quality (repeatable).",
)
@click.option(
    "--sweep",
    type=click.IntRange(min=1),
    help="N operating points along the bundle's held-out curve (its policy's knob).",
)
def route_file_command(
    model: Path, data: Path, out: Path, targets: tuple[float, ...], sweep: int | None
) -> None:
    """Decide every turn of a file as POST /route would, at each operating point."""
    settings = Settings()
    try:
        points: list[dict[str, float]] = [{"quality_target": q} for q in targets]
        if sweep is not None:
            points += sweep_points(read_manifest(resolve_bundle_dir(model)), sweep)
        n = route_file(model, data, out, points, settings)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{n} decisions ({max(len(points), 1)} operating points per turn) -> {out}")
