"""The live lane: one Messages-API call per request, a few at a time; full price, results at once.
For a handful of turns; the batch lane (labeling.batches) is half price."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from tqdm import tqdm

from labeling.outcomes import Outcome, Params, ResultStore, error_outcome

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)


class LiveLane:
    """One Messages-API call per request. Retries on 429/5xx (and 408/409, connection errors)
    are the SDK's: up to `max_retries`, waiting what retry-after / retry-after-ms say, else
    exponential backoff. What still fails comes back as an errored Outcome, never an exception."""

    def __init__(
        self,
        client: anthropic.Anthropic,
        store: ResultStore | None = None,
        *,
        max_retries: int = 5,
        concurrency: int = 4,
        progress: bool = True,
    ) -> None:
        self.client = client.with_options(max_retries=max_retries)
        self.store = store or ResultStore(None)
        self.concurrency = concurrency
        self.progress = progress

    def _call(self, cid: str, params: Params) -> Outcome:
        import anthropic

        try:
            message = self.client.messages.create(**params)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            log.warning("live request %s failed: %s", cid, exc)
            return error_outcome(cid, exc, "live")
        return Outcome(cid, "succeeded", message=message.model_dump(mode="json"), lane="live")

    def run(self, requests: Mapping[str, Params], desc: str = "live") -> dict[str, Outcome]:
        out = self.store.reused(requests)
        todo = [cid for cid in requests if cid not in out]
        with (
            ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool,
            tqdm(total=len(todo), desc=desc, disable=not self.progress or not todo) as bar,
        ):
            for outcome in pool.map(lambda c: self._call(c, requests[c]), todo):
                self.store.add(outcome)
                out[outcome.custom_id] = outcome
                bar.update(1)
        return out
