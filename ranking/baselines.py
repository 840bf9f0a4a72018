"""Non-neural baselines: Pop (true counts), ItemKNN (cosine, top-k neighbours) and EASE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recagent.ranking.base import History, Recommender


class Pop(Recommender):
    """Most popular items (number of training users per item; true counts, unlike RecBole's Pop,
    which counts an item at most once per batch)."""

    name = "pop"

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        self.counts = np.asarray(train.matrix.sum(0)).ravel().astype(np.float32)

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(np.atleast_1d(users)), len(self.counts))).copy()

    def _state(self) -> dict:
        return {"counts": self.counts}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.counts = state["counts"]


class ItemKNN(Recommender):
    """Item-based k-nearest neighbours (Sarwar et al. 2001): cosine similarity of item columns,
    each item keeps its ``k`` most similar items, score(u, j) = sum over u's items i of sim(i, j).

    Args:
        k: neighbours kept per item (RecBole's default 100; tuned on validation).
        shrink: added to the cosine denominator to damp rare co-occurrences.
    """

    name = "itemknn"

    def __init__(self, k: int = 100, shrink: float = 0.0, **kw: Any):
        super().__init__(k=k, shrink=shrink, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        x = train.matrix.astype(np.float32)
        co = (x.T @ x).toarray()
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.params["shrink"] + 1e-9)
        np.fill_diagonal(sim, 0.0)
        k = min(int(self.params["k"]), sim.shape[0] - 1)
        if 0 < k < sim.shape[0] - 1:
            # keep, for each target item j (column), its k most similar source items
            drop = np.argpartition(-sim, k, axis=0)[k:]
            np.put_along_axis(sim, drop, 0.0, axis=0)
        self.sim = sim.astype(np.float32)

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        h = (history or self._require_fit()).for_users(np.atleast_1d(users))
        return np.asarray(h @ self.sim)

    def _state(self) -> dict:
        return {"sim": self.sim}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.sim = state["sim"]


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): B = I - P / diag(P) with
    P = (X^T X + reg I)^-1 and diag(B) = 0; score = X B (closed form, < 1 s for 1.7k items).

    Args:
        reg: L2 regularisation (RecBole's default 250; tuned on validation).
    """

    name = "ease"

    def __init__(self, reg: float = 250.0, **kw: Any):
        super().__init__(reg=reg, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        x = train.matrix.astype(np.float64)
        g = (x.T @ x).toarray()
        g[np.diag_indices_from(g)] += float(self.params["reg"])
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.B = b.astype(np.float32)

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        h = (history or self._require_fit()).for_users(np.atleast_1d(users))
        return np.asarray(h @ self.B)

    def _state(self) -> dict:
        return {"B": self.B}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.B = state["B"]


def item_popularity(matrix: sp.csr_matrix) -> np.ndarray:
    """Users per item of a binary user-item matrix."""
    return np.asarray(matrix.sum(0)).ravel()
