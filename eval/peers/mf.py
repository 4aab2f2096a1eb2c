"""RouteLLM-style matrix-factorisation router: logit(model, prompt) = b_model + <v_model, W x> on
the standardised bundle features, fitted jointly on the tiers and every auxiliary model (their
outcomes shape the prompt projection W). Rank, weight decay and epochs by inner-CV log loss."""

from __future__ import annotations

from eval.peers.base import INNER_FOLDS, PeerFit
from eval.peers.data import PeerData, inner_folds, standardize
from eval.peers.neural import MatrixFactorization, predict, train, tune

RANKS = (8, 32)
WEIGHT_DECAYS = (3e-4, 1e-3, 3e-3)
MAX_EPOCHS = 400
LR = 1e-2


class MfPeer:
    name = "mf"
    label = "matrix factorisation"

    def __init__(self, use_aux: bool = True) -> None:
        self.use_aux = use_aux

    def fit_predict(self, train_data: PeerData, test: PeerData, seed: int) -> PeerFit:
        x, x_test = standardize(train_data.features, test.features)
        t, m = train_data.targets(self.use_aux)

        def factory(rank: int) -> MatrixFactorization:
            return MatrixFactorization(x.shape[1], t.shape[1], rank)

        configs = {(r, wd): ((lambda r=r: factory(r)), wd) for r in RANKS for wd in WEIGHT_DECAYS}
        folds = inner_folds(train_data, INNER_FOLDS, seed)
        best = tune(configs, x, t, m, train_data.adequate, folds, MAX_EPOCHS, LR, seed)
        rank, wd = best.config
        net = factory(rank)
        params, _ = train(net, x, t, m, wd, best.epochs, LR, seed)
        k = train_data.adequate.shape[1]
        return PeerFit(
            predict(net, params, x_test)[:, :k],
            {"rank": rank, "weight_decay": wd, "epochs": best.epochs,
             "aux_models": 0 if train_data.aux is None else train_data.aux.shape[1]},
        )  # fmt: skip
