"""The batch lane: Message Batches API (half price), resumable.

Every batch id is written to a small JSON state file the moment the API returns it; a later run
with the same state file polls those batches instead of sending their requests again, and
succeeded results go to the ResultStore, so no request is ever paid for twice.

Retry policy: an item that ends `expired`, or `errored` with a transient error type
(api_error, overloaded_error, rate_limit_error, timeout_error), is sent once more in a follow-up
batch. Anything else (invalid_request_error, canceled, a second failure) comes back as a failed
Outcome whose `error` says why; the caller lists it in its failures file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from labeling.outcomes import Outcome, Params, ResultStore
from router.errors import RouterError

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error", "batch_lost"}
)
# Sends per request: the first one and one follow-up for transient failures.
MAX_ATTEMPTS = 2
# API limits are 100,000 requests and 256 MB per batch; stay well inside both.
MAX_REQUESTS_PER_BATCH = 10_000
MAX_BYTES_PER_BATCH = 128_000_000


class BatchError(RouterError):
    """A batch could not be created or its results could not be read."""

    status_code = 502


class BatchPendingError(BatchError):
    """Batches are still running when the wait budget ran out; re-run to resume them."""

    def __init__(self, batch_ids: list[str], state_path: Path) -> None:
        self.batch_ids = batch_ids
        super().__init__(
            f"batches {batch_ids} still in progress; their ids are saved in {str(state_path)!r}: "
            "run the same command again to resume (nothing will be sent twice)"
        )


@dataclass(frozen=True)
class PollConfig:
    # Batches usually finish within the hour; polling every 30 s at first costs nothing.
    interval_s: float = 30.0
    backoff: float = 2.0
    # Long batches (up to 24 h) are polled every 10 min at most.
    max_interval_s: float = 600.0
    # None waits for as long as the batches take; else raise BatchPendingError after this.
    max_wait_s: float | None = None


@dataclass
class BatchState:
    """Pending batch ids with their custom_ids, and how often each custom_id was sent."""

    path: Path
    pending: dict[str, list[str]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BatchState:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BatchError(f"batch state file {str(path)!r} is unreadable: {exc}") from exc
        pending = {bid: list(b["custom_ids"]) for bid, b in data.get("pending", {}).items()}
        return cls(path, pending, dict(data.get("attempts", {})))

    def save(self) -> None:
        """Atomic (temp file + rename): a crash leaves the old or the new state, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": 1,
            "updated_at": datetime.now(UTC).isoformat(),
            "pending": {bid: {"custom_ids": cids} for bid, cids in self.pending.items()},
            "attempts": self.attempts,
        }
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)


def _chunks(items: list[tuple[str, Params]]) -> Iterator[list[tuple[str, Params]]]:
    chunk: list[tuple[str, Params]] = []
    size = 0
    for item in items:
        n = len(json.dumps(item[1]))
        if chunk and (len(chunk) >= MAX_REQUESTS_PER_BATCH or size + n > MAX_BYTES_PER_BATCH):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def _retry_after(exc: anthropic.APIStatusError, default: float) -> float:
    try:
        return float(exc.response.headers.get("retry-after", default))
    except ValueError:
        return default


class BatchLane:
    """Send requests as Message Batches, wait with exponential backoff, collect every result."""

    def __init__(
        self,
        client: anthropic.Anthropic,
        state_path: Path,
        store: ResultStore | None = None,
        *,
        poll: PollConfig | None = None,
        progress: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.state_path = state_path
        self.store = store or ResultStore(None)
        self.poll = poll or PollConfig()
        self.progress = progress
        self.sleep = sleep

    def run(self, requests: Mapping[str, Params], desc: str = "batch") -> dict[str, Outcome]:
        state = BatchState.load(self.state_path)
        out = self.store.reused(requests)
        in_flight = {cid for cids in state.pending.values() for cid in cids}
        if in_flight:
            log.info("resuming %d pending batches from %s", len(state.pending), self.state_path)
        send = [cid for cid in requests if cid not in out and cid not in in_flight]
        while True:
            self._submit(state, [(cid, requests[cid]) for cid in send])
            if not state.pending:
                break
            send = []
            for outcome in self._wait(state, desc):
                self.store.add(outcome)
                if outcome.custom_id not in requests:
                    continue  # from an earlier run's batch; its successes are now in the store
                retry = not outcome.ok and (
                    outcome.status == "expired" or outcome.error_type in TRANSIENT_ERRORS
                )
                if retry and state.attempts.get(outcome.custom_id, 0) < MAX_ATTEMPTS:
                    log.info("%s ended %s; sending it again", outcome.custom_id, outcome.describe())
                    send.append(outcome.custom_id)
                else:
                    out[outcome.custom_id] = outcome
            if not send:
                break
        for cid in requests:  # cannot happen unless the API loses an item; still never drop one
            out.setdefault(cid, Outcome(cid, "errored", error="missing: no result was returned"))
        return out

    def _submit(self, state: BatchState, items: list[tuple[str, Params]]) -> None:
        for chunk in _chunks(items):
            body = [{"custom_id": cid, "params": params} for cid, params in chunk]
            batch = self._create(body)
            state.pending[batch.id] = [cid for cid, _ in chunk]
            for cid, _ in chunk:
                state.attempts[cid] = state.attempts.get(cid, 0) + 1
            state.save()
            log.info("created batch %s with %d requests", batch.id, len(chunk))

    def _create(self, body: list[dict[str, Any]]) -> Any:
        """Create without the SDK's blind retries: a retried POST whose first response was lost
        would create a second, paid batch. 429 and 529 are safe to retry (nothing was created)."""
        import anthropic

        client = self.client.with_options(max_retries=0)
        delay = self.poll.interval_s
        for attempt in range(6):
            try:
                return client.messages.batches.create(requests=body)  # type: ignore[arg-type]
            except anthropic.APIStatusError as exc:
                if exc.status_code not in (429, 529) or attempt == 5:
                    raise BatchError(f"creating a batch of {len(body)} failed: {exc}") from exc
                wait = _retry_after(exc, delay)
                log.warning("batch create got %d; retrying in %.1fs", exc.status_code, wait)
                self.sleep(wait)
                delay = min(delay * self.poll.backoff, self.poll.max_interval_s)
            except anthropic.APIConnectionError as exc:
                raise BatchError(
                    f"creating a batch of {len(body)} failed ({exc}); if it was created anyway "
                    "it shows in `client.messages.batches.list()` and can be canceled there"
                ) from exc
        raise AssertionError("unreachable")

    def _wait(self, state: BatchState, desc: str) -> Iterator[Outcome]:
        """Poll every pending batch until it ends, yielding its outcomes as it does."""
        import anthropic

        start = time.monotonic()
        delay = self.poll.interval_s
        total = sum(len(c) for c in state.pending.values())
        with tqdm(total=total, desc=desc, disable=not self.progress) as bar:
            done_before = 0
            while state.pending:
                processed = done_before
                for bid in list(state.pending):
                    try:
                        batch = self.client.messages.batches.retrieve(bid)
                    except anthropic.NotFoundError:
                        # Deleted, or from another workspace/key: its items are sent again.
                        log.warning("batch %s is gone (404); its requests will be resent", bid)
                        for cid in state.pending.pop(bid):
                            why = f"batch_lost: batch {bid} no longer exists"
                            yield Outcome(cid, "errored", error=why, error_type="batch_lost")
                        state.save()
                        continue
                    counts = batch.request_counts
                    processed += len(state.pending[bid]) - counts.processing
                    if batch.processing_status != "ended":
                        continue
                    yield from self._collect(bid, state.pending[bid])
                    done_before += len(state.pending.pop(bid))
                    state.save()
                bar.update(max(0, processed - bar.n))
                if not state.pending:
                    break
                if self.poll.max_wait_s is not None and (
                    time.monotonic() - start >= self.poll.max_wait_s
                ):
                    raise BatchPendingError(sorted(state.pending), self.state_path)
                self.sleep(delay)
                delay = min(delay * self.poll.backoff, self.poll.max_interval_s)

    def _collect(self, batch_id: str, cids: list[str]) -> Iterator[Outcome]:
        import anthropic

        try:
            results = list(self.client.messages.batches.results(batch_id))
        except (anthropic.APIError, ValueError) as exc:
            raise BatchError(f"results of batch {batch_id} cannot be read: {exc}") from exc
        seen = set()
        for item in results:
            cid, result = item.custom_id, item.result
            seen.add(cid)
            if result.type == "succeeded":
                yield Outcome(cid, "succeeded", message=result.message.model_dump(mode="json"))
            elif result.type == "errored":
                err = result.error.error
                yield Outcome(
                    cid, "errored", error=f"{err.type}: {err.message}", error_type=err.type
                )
            elif result.type == "expired":
                why = "expired: the batch ended (24 h limit) before this request ran"
                yield Outcome(cid, "expired", error=why, error_type="expired")
            else:
                why = "canceled: the batch was canceled before this request ran"
                yield Outcome(cid, "canceled", error=why, error_type="canceled")
        for cid in cids:
            if cid not in seen:
                yield Outcome(cid, "errored", error=f"missing from batch {batch_id} results")

    def cancel_pending(self) -> list[str]:
        """Ask the API to cancel every pending batch; their results are collected by run()."""
        state = BatchState.load(self.state_path)
        for bid in state.pending:
            self.client.messages.batches.cancel(bid)
        return sorted(state.pending)
