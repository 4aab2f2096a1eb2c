"""Label turns: generate missing tier answers, have every judge grade every tier's answer, write
labeled logs (training.data.logs format).

Per tier: `score` = mean of the judges' 1-10 scores mapped linearly to 0..1; `adequate` = the
judges' unanimous verdict (true only when every judge says adequate: routing down to a cheaper
tier on a split vote would trade quality for cost on exactly the turns where it is in doubt);
`judges` = {model id: {score, adequate, reason}}; `source` = "judge:<id>,<id>".

Nothing is lost: a turn is written to `out` only when every tier has every judge's verdict;
otherwise it is listed in the failures file with each reason. A re-run skips ids already in `out`,
reuses every paid result (ResultStore) and resumes pending batches (BatchState).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from labeling.batches import BatchLane, PollConfig
from labeling.judge import (
    ANSWER_MAX_TOKENS,
    JUDGE_MAX_TOKENS,
    RUBRIC_VERSION,
    JudgeFailure,
    Verdict,
    answer_params,
    judge_params,
    verdict_from_outcome,
)
from labeling.ledger import Lane, Ledger, LedgerKey, Stage, approx_input_tokens
from labeling.live import LiveLane
from labeling.outcomes import Outcome, Params, RequestLane, ResultStore, custom_id
from labeling.sources import Answer, Failure, TurnInput
from router.core.tiers import TIER_ORDER, Tier
from router.settings import Settings
from training.data.logs import LabeledTurn, TierScore

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)


class LabelConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    out: Path
    # Default: <out>.failures.jsonl next to the output.
    failures: Path | None = None
    # Batch ids and paid results live here so a re-run resumes; default: <out>.work/.
    state_dir: Path | None = None
    judges: tuple[str, ...] = Field(min_length=1)
    tiers: tuple[Tier, ...] = TIER_ORDER
    # Batch: half price, results within 24 h. Live: full price, for a handful of turns.
    lane: Literal["batch", "live"] = "batch"
    # False: generate every answer with tiers.toml's models (arena-hard's are Claude 3's).
    use_given_answers: bool = True
    answer_max_tokens: int = Field(default=ANSWER_MAX_TOKENS, gt=0)
    judge_max_tokens: int = Field(default=JUDGE_MAX_TOKENS, gt=0)
    # Estimate only: typical answer length (the worst case uses answer_max_tokens).
    expected_answer_tokens: int = Field(default=500, gt=0)
    # Estimate only: the JSON verdict with a 40-word reason.
    expected_judge_tokens: int = Field(default=120, gt=0)
    poll: PollConfig = PollConfig()
    live_concurrency: int = Field(default=4, gt=0)
    progress: bool = True

    @property
    def failures_path(self) -> Path:
        return self.failures or self.out.with_name(self.out.name + ".failures.jsonl")

    @property
    def work_dir(self) -> Path:
        return self.state_dir or self.out.with_name(self.out.name + ".work")


@dataclass
class Estimate:
    ledger: Ledger  # expected tokens and dollars, before any prompt-cache savings
    worst_usd: float  # every answer running to max_tokens
    new_requests: int
    reused_requests: int

    def render(self) -> str:
        head = f"{self.new_requests} requests to send ({self.reused_requests} already paid, reused)"
        table = self.ledger.render("Estimated cost (expected output lengths, no cache savings):")
        return f"{head}\n{table}\n  worst case (answers at max_tokens): ${self.worst_usd:.4f}"


@dataclass
class LabelResult:
    labeled: int = 0
    skipped: int = 0  # already in `out` before this run
    failures: list[Failure] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)  # this run's real usage
    reused: int = 0  # results read from the store: no new spend

    @property
    def failed_turns(self) -> int:
        return len({f.id for f in self.failures})


def labeled_ids(path: Path) -> set[str]:
    """Ids already written to `out`; unreadable lines are ignored (they will be redone)."""
    ids: set[str] = set()
    if path.is_file():
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    ids.add(str(json.loads(line)["id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    return ids


@dataclass(frozen=True)
class _Req:
    turn: TurnInput
    tier: Tier
    params: Params
    judge: str | None = None  # None: an answer request


class Labeler:
    def __init__(
        self,
        cfg: LabelConfig,
        settings: Settings,
        client: anthropic.Anthropic | None = None,
        *,
        lane: RequestLane | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.store = ResultStore(cfg.work_dir / "results.jsonl")
        self.client = client
        self._lane = lane

    @property
    def lane(self) -> RequestLane:
        if self._lane is None:
            if self.client is None:
                raise ValueError("Labeler needs an anthropic client (or a lane) to send requests")
            if self.cfg.lane == "live":
                self._lane = LiveLane(
                    self.client,
                    self.store,
                    concurrency=self.cfg.live_concurrency,
                    progress=self.cfg.progress,
                )
            else:
                state = self.cfg.work_dir / "batches.json"
                self._lane = BatchLane(
                    self.client, state, self.store, poll=self.cfg.poll, progress=self.cfg.progress
                )
        return self._lane

    # ---- requests ------------------------------------------------------------------------
    def _todo(self, turns: Sequence[TurnInput]) -> list[TurnInput]:
        """Turns not yet in `out`, as copies: generated answers never go into the caller's."""
        done = labeled_ids(self.cfg.out)
        keep = self.cfg.use_given_answers
        return [
            replace(t, answers=dict(t.answers) if keep else {}) for t in turns if t.id not in done
        ]

    def _answer_requests(self, turns: Sequence[TurnInput]) -> dict[str, _Req]:
        out = {}
        for turn in turns:
            for tier in self.cfg.tiers:
                if tier in turn.answers:
                    continue
                model = self.settings.tier_spec(tier).model
                params = answer_params(turn.request, model, self.cfg.answer_max_tokens)
                out[custom_id("ans", turn.id, params)] = _Req(turn, tier, params)
        return out

    def _judge_requests(self, turns: Sequence[TurnInput]) -> dict[str, _Req]:
        out = {}
        for turn in turns:
            for tier in self.cfg.tiers:
                for judge in self.cfg.judges:
                    params = judge_params(
                        turn.request, turn.answers[tier].text, judge, self.cfg.judge_max_tokens
                    )
                    cid = custom_id("jdg", turn.id, tier.value, RUBRIC_VERSION, params)
                    out[cid] = _Req(turn, tier, params, judge)
        return out

    # ---- estimate ------------------------------------------------------------------------
    def estimate(self, turns: Sequence[TurnInput]) -> Estimate:
        """Tokens x price for every request not already paid; judges of answers not yet written
        are estimated with an answer of expected_answer_tokens. Turns already in `out` are free."""
        turns = self._todo(turns)
        lane_kind: Lane = self.cfg.lane
        expected, worst = Ledger(), Ledger()
        new = reused = 0
        placeholder = "x" * (self.cfg.expected_answer_tokens * 4)
        for cid, req in self._answer_requests(turns).items():
            if cid in self.store:
                reused += 1
                continue
            new += 1
            model, n_in = req.params["model"], approx_input_tokens(req.params)
            key: LedgerKey = ("answer", req.tier, str(model))
            out_tokens = min(self.cfg.expected_answer_tokens, req.params["max_tokens"])
            usage = {"input_tokens": n_in, "output_tokens": out_tokens}
            expected.record(self.settings, key, usage, lane_kind)
            usage = {"input_tokens": n_in, "output_tokens": req.params["max_tokens"]}
            worst.record(self.settings, key, usage, lane_kind)
        padded = [
            TurnInput(
                t.id,
                t.request,
                {tier: t.answers.get(tier) or Answer(placeholder) for tier in self.cfg.tiers},
            )
            for t in turns
        ]
        for cid, req in self._judge_requests(padded).items():
            if cid in self.store:
                reused += 1
                continue
            new += 1
            key = ("judge", req.tier, str(req.params["model"]))
            usage = {
                "input_tokens": approx_input_tokens(req.params),
                "output_tokens": self.cfg.expected_judge_tokens,
            }
            expected.record(self.settings, key, usage, lane_kind)
            worst.record(self.settings, key, usage, lane_kind)
        return Estimate(expected, worst.total().usd, new, reused)

    # ---- run -----------------------------------------------------------------------------
    def _send(
        self, requests: dict[str, _Req], result: LabelResult, desc: str
    ) -> dict[str, Outcome]:
        outcomes = self.lane.run({cid: r.params for cid, r in requests.items()}, desc=desc)
        for cid, outcome in outcomes.items():
            req = requests[cid]
            if outcome.reused:
                result.reused += 1
            elif outcome.ok:
                stage: Stage = "answer" if req.judge is None else "judge"
                key = (stage, req.tier, str(req.params["model"]))
                result.ledger.record(self.settings, key, outcome.usage, outcome.lane)
        return outcomes

    def run(
        self,
        turns: Sequence[TurnInput],
        confirm: Callable[[Estimate], bool] | None = None,
        input_failures: Sequence[Failure] = (),
    ) -> LabelResult | None:
        """Label every turn not yet in `out`, write the failures file (input failures too);
        None if `confirm` declined the estimate (then nothing is sent or written)."""
        todo = self._todo(turns)
        result = LabelResult(skipped=len(turns) - len(todo))
        if todo and confirm is not None and not confirm(self.estimate(turns)):
            return None
        failed: dict[str, list[Failure]] = {}

        answer_reqs = self._answer_requests(todo)
        if answer_reqs:
            outcomes = self._send(answer_reqs, result, "answers")
            for cid, req in answer_reqs.items():
                outcome = outcomes[cid]
                if outcome.ok:
                    req.turn.answers[req.tier] = Answer(outcome.text, req.params["model"])
                else:
                    why = f"answer request {outcome.describe()}"
                    failed.setdefault(req.turn.id, []).append(
                        Failure(req.turn.id, "answer", why, tier=req.tier)
                    )

        judgeable = [t for t in todo if t.id not in failed]
        judge_reqs = self._judge_requests(judgeable)
        verdicts: dict[tuple[str, Tier], list[Verdict]] = {}
        if judge_reqs:
            outcomes = self._send(judge_reqs, result, "judging")
            for cid, req in judge_reqs.items():
                assert req.judge is not None
                got = verdict_from_outcome(outcomes[cid], req.judge)
                if isinstance(got, JudgeFailure):
                    self.store.discard(cid)  # a paid but unusable reply: ask again next run
                    failed.setdefault(req.turn.id, []).append(
                        Failure(req.turn.id, "judge", got.reason, tier=req.tier, judge=req.judge)
                    )
                else:
                    verdicts.setdefault((req.turn.id, req.tier), []).append(got)

        records = [self._record(t, verdicts) for t in judgeable if t.id not in failed]
        result.labeled = append_labeled(records, self.cfg.out)
        result.failures = [*input_failures, *(f for fs in failed.values() for f in fs)]
        write_failures(result.failures, self.cfg.failures_path)
        return result

    def _record(
        self, turn: TurnInput, verdicts: dict[tuple[str, Tier], list[Verdict]]
    ) -> LabeledTurn:
        source = "judge:" + ",".join(self.cfg.judges)
        scores = {}
        for tier in self.cfg.tiers:
            got = verdicts[(turn.id, tier)]
            mean = sum(v.unit_score for v in got) / len(got)
            scores[tier] = TierScore.model_validate(
                {
                    "score": round(mean, 4),
                    "source": source,
                    # Unanimous: one judge's "not adequate" keeps the turn off this tier.
                    "adequate": all(v.adequate for v in got),
                    "judges": {v.judge: v.as_dict() for v in got},
                    "answer_model": turn.answers[tier].model,
                }
            )
        return LabeledTurn(
            id=turn.id,
            request=turn.request,
            scores=scores,
            category=turn.category,
            source=turn.source,
        )


def append_labeled(records: Sequence[LabeledTurn], path: Path) -> int:
    """Append JSONL lines (after a newline if an interrupted write left the last one open)."""
    if not records:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        if fh.tell() > 0:
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    with path.open("a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(rec.model_dump_json(exclude_none=True) + "\n")
    return len(records)


def write_failures(failures: Sequence[Failure], path: Path) -> None:
    """One line per failed turn: {"id", "reasons": [{stage, reason, tier?, judge?}, ...]}."""
    by_id: dict[str, list[Failure]] = {}
    for f in failures:
        by_id.setdefault(f.id, []).append(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for turn_id, fs in by_id.items():
            fh.write(json.dumps({"id": turn_id, "reasons": [f.as_dict() for f in fs]}) + "\n")
    tmp.replace(path)
