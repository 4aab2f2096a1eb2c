"""Peer routers that eval compares the bundle with, by name (PEERS). Each is a Peer (eval.peers.base):
fitted on the same training turns and the same bundle features, tuned by inner CV, and routed by
eval with the same policy and costs as the router, so only the quality estimator differs."""

from __future__ import annotations

from eval.peers.base import Peer, PeerFit
from eval.peers.irt import IrtPeer
from eval.peers.knn import KnnPeer
from eval.peers.mf import MfPeer
from eval.peers.mlp import MlpPeer
from eval.peers.prior import TaskPriorPeer

PEERS: dict[str, Peer] = {
    p.name: p for p in (KnnPeer(), MlpPeer(), MfPeer(), IrtPeer(), TaskPriorPeer())
}
PEER_NAMES: tuple[str, ...] = tuple(PEERS)

__all__ = ["PEERS", "PEER_NAMES", "Peer", "PeerFit"]
