"""BPR-MF (Rendle et al. 2009) in torch: user/item factors trained on (user, positive, sampled
negative) triples, early stopping on validation NDCG@10."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recagent.ranking.base import History, Recommender, valid_ndcg
from recagent.ranking.early_stopping import EarlyStopping


class BPRMF(Recommender):
    """Matrix factorisation with the BPR loss.

    Args:
        dim: factor size.
        lr: Adam learning rate.
        reg: L2 weight on the factors used in each batch.
        epochs: maximum epochs.
        patience: validation checks without NDCG@10 gain before stopping.
        eval_every: epochs between validation checks.
        batch_size: triples per step.
        seed: torch / numpy seed.
    """

    name = "bpr"
    #: tried on validation by the training home (each value trains a model; reg picked on
    #: Protocol A validation from 1e-4, 1e-2, 3e-2, so only the winner is kept here)
    param_grid: ClassVar[dict[str, list]] = {"reg": [1e-2]}

    def __init__(self, dim: int = 64, lr: float = 5e-3, reg: float = 1e-2, epochs: int = 200, patience: int = 4,
                 eval_every: int = 5, batch_size: int = 2048, seed: int = 2020, **kw: Any):
        super().__init__(dim=dim, lr=lr, reg=reg, epochs=epochs, patience=patience, eval_every=eval_every,
                         batch_size=batch_size, seed=seed, **kw)

    def _fit(self, train: History, valid: Any, items: np.ndarray | None = None, log=None, **kw: Any) -> None:
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        n_u, n_i = train.n_users, train.n_items
        U = torch.nn.Embedding(n_u, p["dim"])
        V = torch.nn.Embedding(n_i, p["dim"])
        torch.nn.init.normal_(U.weight, std=0.1)
        torch.nn.init.normal_(V.weight, std=0.1)
        opt = torch.optim.Adam(list(U.parameters()) + list(V.parameters()), lr=p["lr"])
        coo = train.matrix.tocoo()
        users, pos = coo.row.astype(np.int64), coo.col.astype(np.int64)
        seen = train.matrix
        # sample negatives from the items that occur in training (others have no signal)
        pool = np.flatnonzero(np.asarray(seen.sum(0)).ravel() > 0) if items is None else np.asarray(items)
        stop, t0 = EarlyStopping(p["patience"]), time.time()
        for ep in range(1, p["epochs"] + 1):
            perm = rng.permutation(len(users))
            for s in range(0, len(perm), p["batch_size"]):
                b = perm[s:s + p["batch_size"]]
                u, i = users[b], pos[b]
                j = pool[rng.integers(0, len(pool), len(b))]
                clash = np.asarray(seen[u, j]).ravel() > 0  # resample once where the negative is seen
                j[clash] = pool[rng.integers(0, len(pool), int(clash.sum()))]
                tu, ti, tj = (torch.from_numpy(a) for a in (u, i, j))
                eu, ei, ej = U(tu), V(ti), V(tj)
                x = (eu * (ei - ej)).sum(1)
                loss = -torch.nn.functional.logsigmoid(x).mean() + p["reg"] * (eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / len(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if valid is None or ep % p["eval_every"]:
                continue
            self.U, self.V = U.weight.detach().numpy().copy(), V.weight.detach().numpy().copy()
            nd = valid_ndcg(self, valid, items=items, history=train)
            if log:
                log(f"bpr epoch {ep}: valid ndcg@10 {nd:.4f}")
            if stop.update(nd, ep, snapshot=lambda: (self.U, self.V)):
                break
        if stop.best_state is None:
            self.U, self.V = U.weight.detach().numpy().copy(), V.weight.detach().numpy().copy()
            self.info.update(epochs=p["epochs"])
        else:
            self.U, self.V = stop.best_state
            self.info.update(stop.summary())
        self.info["fit_seconds"] = round(time.time() - t0, 1)

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        return self.U[np.atleast_1d(users)] @ self.V.T

    def _state(self) -> dict:
        return {"U": self.U, "V": self.V}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.U, self.V = state["U"], state["V"]
