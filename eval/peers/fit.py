"""Fit every requested peer on the training rows and predict the eval rows, one after another
with a progress bar (each peer tunes itself by inner CV; this is eval's slow part).

BLAS runs single-threaded here: the peers' matrices are small (a few thousand rows), so threads
only add synchronisation, and on a busy 2-core machine a threaded full-batch epoch measured 5-7x
slower than a single-threaded one."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from eval.peers import PEERS
from eval.peers.base import PeerFit
from eval.peers.data import PeerData
from router.errors import BadRequestError

log = logging.getLogger(__name__)


def unknown_peer(name: str) -> str:
    return f"unknown peer {name!r}; expected one of {list(PEERS)}"


def fit_peers(
    names: Sequence[str], train: PeerData, test: PeerData, seed: int, progress: bool = True
) -> dict[str, PeerFit]:
    """name -> PeerFit, in the order given."""
    for name in names:
        if name not in PEERS:
            raise BadRequestError(unknown_peer(name))
    out = {}
    with threadpool_limits(limits=1):
        for name in tqdm(names, desc="fit peers", unit="peer", disable=not progress):
            start = time.perf_counter()
            out[name] = PEERS[name].fit_predict(train, test, seed)
            log.info("peer %s: %.1f s, %s", name, time.perf_counter() - start, out[name].params)
    return out
