"""`tierwise route-file` decides every turn at every operating point exactly as POST /route
does for the same body with the same knob field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from router.core.bundle import read_manifest
from router.http.app import create_app
from router.settings import Settings
from tierwise.cli import main
from tierwise.route_file import RouteFileError, read_turns

TURNS = [
    {"id": "a", "request": {"prompt": "hello thanks name color"}},
    {"id": "b", "request": {"prompt": "prove derive theorem integral optimize"}},
    {"prompt": "what time is it", "max_tokens": 20},
    {"id": "d", "messages": [{"role": "user", "content": "derive the architecture theorem"}]},
]
KEYS = ("tier", "policy", "knob", "probabilities", "expected_cost_usd", "output_tokens", "reason")


def test_route_file_equals_post_route(stacked_bundle_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "turns.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in TURNS))
    out = tmp_path / "decisions.jsonl"
    args = ["route-file", "--model", str(stacked_bundle_dir), "--data", str(data)]
    args += ["--out", str(out), "--quality-target", "0.9", "--sweep", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    manifest = read_manifest(stacked_bundle_dir)
    assert len(lines) == len(TURNS) * 5
    sweep = [ln["operating_point"] for ln in lines[1:5]]
    assert all(set(p) == {"failed_turn_usd"} for p in sweep)
    knobs = [p["failed_turn_usd"] for p in sweep]
    assert knobs == sorted(knobs) and knobs[0] == min(p.knob for p in manifest.curve)

    settings = Settings(model_dir=stacked_bundle_dir, deadline_ms=10_000)
    with TestClient(create_app(settings)) as client:
        for line in lines:
            turn = next(t for t in TURNS if t.get("id", "") == line["id"] or
                        (line["id"] == "line:3" and "id" not in t))  # fmt: skip
            body = dict(turn.get("request", turn))
            body.pop("id", None)
            body.update(line["operating_point"])
            decision = client.post("/route", json=body).json()
            assert {k: decision[k] for k in KEYS} == {k: line[k] for k in KEYS}, line["id"]
    # The sweep spans the curve: the cheapest point and the most expensive choose differently.
    first = [ln["tier"] for ln in lines[1::5]]
    last = [ln["tier"] for ln in lines[4::5]]
    assert first != last


def test_a_line_that_is_not_a_turn_is_named(tmp_path: Path) -> None:
    data = tmp_path / "turns.jsonl"
    data.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"prompt": 3}) + "\n")
    with pytest.raises(RouteFileError, match="turns.jsonl:2: not a turn"):
        list(read_turns(data))
