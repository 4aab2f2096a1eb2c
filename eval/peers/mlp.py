"""MLP router: one hidden layer (64 ReLU, dropout .2) on the standardised bundle features (embedding
+ structure), one sigmoid output per tier, masked loss so partial labels train only their tier.
Weight decay and the number of epochs by inner-CV log loss."""

from __future__ import annotations

from eval.peers.base import INNER_FOLDS, PeerFit
from eval.peers.data import PeerData, inner_folds, standardize
from eval.peers.neural import Mlp, predict, train, tune

# The grid FINDINGS searched: light to strong L2; epochs up to 300 at lr 3e-3.
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 3e-2)
MAX_EPOCHS = 300
LR = 3e-3


class MlpPeer:
    name = "mlp"
    label = "MLP"

    def __init__(self, use_aux: bool = False) -> None:
        # Tier outputs only by default (FINDINGS: aux outputs did not help the MLP).
        self.use_aux = use_aux

    def fit_predict(self, train_data: PeerData, test: PeerData, seed: int) -> PeerFit:
        x, x_test = standardize(train_data.features, test.features)
        t, m = train_data.targets(self.use_aux)
        configs = {wd: ((lambda: Mlp(x.shape[1], t.shape[1])), wd) for wd in WEIGHT_DECAYS}
        folds = inner_folds(train_data, INNER_FOLDS, seed)
        best = tune(configs, x, t, m, train_data.adequate, folds, MAX_EPOCHS, LR, seed)
        net = Mlp(x.shape[1], t.shape[1])
        params, _ = train(net, x, t, m, best.config, best.epochs, LR, seed)
        k = train_data.adequate.shape[1]
        return PeerFit(
            predict(net, params, x_test)[:, :k],
            {"weight_decay": best.config, "epochs": best.epochs},
        )
