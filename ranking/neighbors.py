"""User-based k-nearest neighbours, and the block-wise sparse top-k similarity helper that the
item-item models (ItemKNN, RP3beta) use so that no dense item-item matrix is ever allocated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp

from recagent.ranking.base import History, Recommender, sparse_from_state, sparse_state  # noqa: F401 (re-exported)


class UserKNN(Recommender):
    """User-based kNN (Herlocker et al. 1999; Resnick et al. 1994): cosine similarity of user
    rows (with ``shrink`` in the denominator), each user keeps its ``k`` most similar training
    users, score(u, j) = sum over neighbours v of sim(u, v)^``power`` * x_vj.

    Neighbours are found at scoring time against the training matrix, so a history given to
    ``score`` (train + valid in eval, a chat user's likes) is folded in without refitting; the
    user itself is never its own neighbour. Fit stores only the normalised training matrix.

    Args:
        k: neighbours per user (tuned on validation).
        shrink: added to the cosine denominator; damps users with few shared items.
        power: exponent on similarities (> 1 sharpens towards the closest neighbours).
    """

    name = "userknn"
    #: tried on validation by the training home (each value is a cheap refit)
    param_grid: ClassVar[dict[str, list]] = {"k": [30, 50, 100], "shrink": [10.0]}

    def __init__(self, k: int = 100, shrink: float = 0.0, power: float = 1.0, **kw: Any):
        super().__init__(k=k, shrink=shrink, power=power, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        self.X = train.matrix.astype(np.float32).tocsr()
        self.norms = np.sqrt(np.asarray(self.X.multiply(self.X).sum(1)).ravel()).astype(np.float32)
        self.XT = self.X.T.tocsr()     # kept: scipy would convert X.T to CSR on every score call

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        users = np.atleast_1d(users)
        src = history or self._require_fit()
        h = src.for_users(users).astype(np.float32)
        sim = np.asarray((h @ self.XT).todense(), dtype=np.float32)          # (b, n_train_users)
        hn = np.sqrt(np.asarray(h.multiply(h).sum(1)).ravel())
        sim /= np.outer(hn, self.norms) + float(self.params["shrink"]) + 1e-9
        if src.n_users == sim.shape[1]:  # rows are training users: never one's own neighbour
            sim[np.arange(len(users)), users] = 0.0                           # (a chat's one-row history is nobody's row)
        k = int(self.params["k"])
        if 0 < k < sim.shape[1]:
            drop = np.argpartition(-sim, k - 1, axis=1)[:, k:]
            np.put_along_axis(sim, drop, 0.0, axis=1)
        if self.params["power"] != 1.0:
            sim = np.power(np.maximum(sim, 0.0), float(self.params["power"]))
        return np.asarray((sp.csr_matrix(sim) @ self.X).todense(), dtype=np.float32)

    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict, directory: Path) -> None:
        self._fit(self.train_, None)


def topk_rows(block_fn: Callable[[np.ndarray], np.ndarray], n_rows: int, n_cols: int, k: int,
              block: int = 1024, zero_diagonal: bool = True) -> sp.csr_matrix:
    """A sparse ``(n_rows, n_cols)`` matrix that keeps the ``k`` largest entries of each row,
    computed ``block`` rows at a time so memory stays ``block * n_cols`` floats.

    Args:
        block_fn: maps an array of row indices to their dense rows ``(len(rows), n_cols)``.
        n_rows: number of rows.
        n_cols: number of columns.
        k: entries kept per row (all when ``k <= 0`` or ``k >= n_cols``; zeros are dropped).
        block: rows per step.
        zero_diagonal: set entry (i, i) to 0 before selecting (no self-similarity).
    """
    parts = []
    for s in range(0, n_rows, block):
        rows = np.arange(s, min(s + block, n_rows))
        dense = np.asarray(block_fn(rows), dtype=np.float32)
        if zero_diagonal:
            ok = rows < n_cols
            dense[np.flatnonzero(ok), rows[ok]] = 0.0
        if 0 < k < n_cols:
            keep = np.argpartition(-dense, k - 1, axis=1)[:, :k]
            vals = np.take_along_axis(dense, keep, axis=1)
            r = np.repeat(np.arange(len(rows)), k)
            m = sp.csr_matrix((vals.ravel(), (r, keep.ravel())), shape=(len(rows), n_cols))
        else:
            m = sp.csr_matrix(dense)
        m.eliminate_zeros()
        parts.append(m)
    if not parts:
        return sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    return sp.vstack(parts, format="csr").astype(np.float32)


