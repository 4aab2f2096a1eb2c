"""Turns to label: logged turns (labeled-log or call-log JSONL) or the arena-hard folder.

A JSONL line needs an id (`id`, else `call_id`, else `request_hash`) and a RouteRequest
(`request`, or the line itself when it has `prompt`/`messages`). Existing answers are optional:
`"answers": {"haiku": "text" | {"text": ..., "model": ...}, ...}`. Lines that cannot be used
come back as input failures with their line number, never silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from router.core.schemas import RouteRequest
from router.core.tiers import TIER_ORDER, Tier, parse_tier
from router.errors import RouterError


class SourceError(RouterError):
    """An input file or folder is missing or unusable as a whole."""


@dataclass(frozen=True)
class Answer:
    text: str
    model: str | None = None  # who wrote it, when known (arena-hard: claude-3-*)


@dataclass
class TurnInput:
    id: str
    request: RouteRequest
    answers: dict[Tier, Answer] = field(default_factory=dict)
    category: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Failure:
    """Why one turn (or one input line) was not labeled."""

    id: str
    stage: str  # input | answer | judge
    reason: str
    tier: Tier | None = None
    judge: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "reason": self.reason}
        if self.tier is not None:
            out["tier"] = self.tier.value
        if self.judge is not None:
            out["judge"] = self.judge
        return out


def _answers(raw: Any, where: str) -> dict[Tier, Answer]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SourceError(f"{where}: 'answers' must be an object of tier -> text")
    out: dict[Tier, Answer] = {}
    for key, value in raw.items():
        tier = parse_tier(str(key), field=f"{where}: answers")
        if isinstance(value, str):
            out[tier] = Answer(value)
        elif isinstance(value, dict) and isinstance(value.get("text"), str):
            out[tier] = Answer(value["text"], value.get("model"))
        else:
            raise SourceError(f"{where}: answers.{key} must be a string or {{'text': ...}}")
    return out


def _turn_from_record(rec: Any, where: str) -> TurnInput:
    if not isinstance(rec, dict):
        raise SourceError(f"{where}: expected a JSON object")
    turn_id = rec.get("id") or rec.get("call_id") or rec.get("request_hash")
    if not turn_id:
        raise SourceError(f"{where}: no 'id' (nor 'call_id' / 'request_hash')")
    raw_request = rec.get("request")
    if raw_request is None and ("messages" in rec or "prompt" in rec):
        raw_request = {k: v for k, v in rec.items() if k not in ("id", "answers", "scores")}
    if raw_request is None:
        raise SourceError(f"{where}: no 'request' (redacted call-log lines cannot be labeled)")
    try:
        request = RouteRequest.model_validate(raw_request)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "request"
        raise SourceError(f"{where}: request.{loc}: {err['msg']}") from None
    return TurnInput(
        id=str(turn_id),
        request=request,
        answers=_answers(rec.get("answers"), where),
        category=rec.get("category"),
        source=rec.get("source"),
    )


def read_jsonl_turns(path: Path) -> tuple[list[TurnInput], list[Failure]]:
    """Turns from a labeled-log or call-log export; bad lines and duplicate ids are failures."""
    if not path.is_file():
        raise SourceError(f"input {str(path)!r} does not exist")
    turns: list[TurnInput] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                turn = _turn_from_record(json.loads(line), where)
            except json.JSONDecodeError as exc:
                failures.append(Failure(where, "input", f"invalid JSON: {exc.msg}"))
                continue
            except RouterError as exc:
                failures.append(Failure(where, "input", str(exc)))
                continue
            if turn.id in seen:
                failures.append(Failure(turn.id, "input", f"{where}: duplicate id {turn.id!r}"))
                continue
            seen.add(turn.id)
            turns.append(turn)
    return turns, failures


def _arena_answer_files(folder: Path) -> dict[Tier, Path]:
    files: dict[Tier, Path] = {}
    for path in sorted((folder / "model_answer").glob("*.jsonl")):
        tiers = [t for t in TIER_ORDER if t.value in path.name.lower()]
        if len(tiers) != 1:
            continue
        if tiers[0] in files:
            raise SourceError(f"two answer files for {tiers[0].value}: {files[tiers[0]]}, {path}")
        files[tiers[0]] = path
    return files


def read_arena_hard(
    folder: Path, limit: int | None = None
) -> tuple[list[TurnInput], list[Failure]]:
    """question.jsonl + model_answer/claude-3-{haiku,sonnet,opus}*.jsonl -> turns with answers."""
    questions = folder / "question.jsonl"
    if not questions.is_file():
        raise SourceError(f"{str(folder)!r} has no question.jsonl: is it the arena_hard folder?")
    answers: dict[Tier, dict[str, Answer]] = {}
    for tier, path in _arena_answer_files(folder).items():
        answers[tier] = {}
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                turns = rec["choices"][0]["turns"]
                answers[tier][rec["question_id"]] = Answer(
                    turns[-1]["content"], rec.get("model_id")
                )
    out: list[TurnInput] = []
    failures: list[Failure] = []
    with questions.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) + len(failures) >= limit:
                break
            rec = json.loads(line)
            qid = f"arena_hard:{rec['question_id']}"
            if len(rec["turns"]) != 1:
                failures.append(Failure(qid, "input", f"{len(rec['turns'])} turns; expected 1"))
                continue
            found = {
                t: a[rec["question_id"]] for t, a in answers.items() if rec["question_id"] in a
            }
            request = RouteRequest(prompt=rec["turns"][0]["content"])
            category = rec.get("cluster") or rec.get("category")
            out.append(TurnInput(qid, request, found, category, "arena_hard"))
    return out, failures
