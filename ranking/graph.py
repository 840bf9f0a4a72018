"""Graph recommenders on the user-item bipartite graph: RP3beta (random walks of length 3 with
popularity re-weighting) and GF-CF (a graph low-pass filter, with its ideal low-pass part).

Neither allocates a dense item-item matrix: RP3beta keeps the top-k neighbours of each item
(computed block-wise), GF-CF scores through the sparse normalised matrix and a few singular
vectors, so both scale to catalogs where EASE's dense inverse does not fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recagent.ranking.base import History, ItemItemRecommender, Recommender
from recagent.ranking.neighbors import sparse_from_state, sparse_state, topk_rows


class RP3beta(ItemItemRecommender):
    """RP3beta (Paudel et al. 2017, "Updatable, accurate, diverse, and scalable recommendations
    for interactive applications"; the strong setting of Ferrari Dacrema et al. 2019).

    W = P_iu^alpha @ P_ui^alpha (3-step random-walk probability item -> user -> item), each
    column divided by popularity^beta, top-``k`` entries kept per item; score = history @ W.

    Args:
        alpha: exponent on the transition probabilities (1 = plain P3).
        beta: popularity penalty (0 = none; higher favours less popular items).
        k: neighbours kept per item.
    """

    name = "rp3beta"
    #: tried on validation by the training home (each value is a refit of about a second)
    param_grid: ClassVar[dict[str, list]] = {"alpha": [0.3, 0.5, 0.8], "beta": [0.4, 0.6], "k": [300, 1000]}

    def __init__(self, alpha: float = 1.0, beta: float = 0.3, k: int = 200, **kw: Any):
        super().__init__(alpha=alpha, beta=beta, k=k, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        x = train.matrix.astype(np.float32).tocsr()
        a = float(self.params["alpha"])
        pui = _row_normalize(x).power(a).tocsr()
        piu = _row_normalize(x.T.tocsr()).power(a).tocsr()
        pop = np.asarray(x.sum(0)).ravel()
        pen = np.zeros_like(pop, dtype=np.float32)
        pen[pop > 0] = pop[pop > 0] ** -float(self.params["beta"])
        self.W = topk_rows(lambda rows: (piu[rows] @ pui).toarray() * pen[None, :],
                           x.shape[1], x.shape[1], int(self.params["k"]))


class GFCF(Recommender):
    """GF-CF (Shen et al. 2021, "How powerful is graph convolution for recommendation?").

    With R~ = D_u^-1/2 R D_i^-1/2 (degree-normalised training matrix), a user's history r is
    scored by the linear filter r R~^T R~ plus ``alpha`` times the ideal low-pass filter
    r D_i^-1/2 V_k V_k^T D_i^1/2, V_k the top-``k`` right singular vectors of R~. Training-free
    apart from one truncated SVD (skipped when ``alpha`` is 0).

    Args:
        alpha: weight of the ideal low-pass part (the paper uses 0.3).
        k: singular vectors kept for the ideal low-pass part (the paper uses 256).
        seed: start vector of the sparse SVD (results are deterministic for a fixed seed).
    """

    name = "gfcf"
    #: tried on validation by the training home (alpha 0 needs no SVD)
    param_grid: ClassVar[dict[str, list]] = {"alpha": [0.3, 0.6], "k": [32, 128]}

    def __init__(self, alpha: float = 0.3, k: int = 128, seed: int = 2020, **kw: Any):
        super().__init__(alpha=alpha, k=k, seed=seed, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        x = train.matrix.astype(np.float32).tocsr()
        du = _inv_sqrt(np.asarray(x.sum(1)).ravel())
        self.di = _inv_sqrt(np.asarray(x.sum(0)).ravel())
        self.R = sp.diags(du) @ x @ sp.diags(self.di)
        self.R = self.R.tocsr().astype(np.float32)
        self.RT = self.R.T.tocsr()     # kept: scipy would convert R.T to CSR on every score call
        self.V = np.zeros((0, x.shape[1]), np.float32)
        k = min(int(self.params["k"]), min(x.shape) - 1)
        if float(self.params["alpha"]) > 0 and k > 0:
            from scipy.sparse.linalg import svds

            rng = np.random.default_rng(self.params["seed"])
            _, _, vt = svds(self.R.astype(np.float64), k=k, v0=rng.standard_normal(min(x.shape)))
            self.V = vt.astype(np.float32)

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        h = (history or self._require_fit()).for_users(np.atleast_1d(users)).astype(np.float32)
        out = np.asarray(((h @ self.RT) @ self.R).todense(), dtype=np.float32)
        if len(self.V) and float(self.params["alpha"]) > 0:
            v_in, v_out = self._low_pass()
            out += float(self.params["alpha"]) * (np.asarray(h @ v_in) @ v_out)
        return out

    def _low_pass(self) -> tuple[np.ndarray, np.ndarray]:
        """``(D_i^-1/2 V_k^T, V_k D_i^1/2)``, so the ideal low-pass part of a history ``r`` is
        ``(r @ first) @ second`` (computed once: per call it cost ~15 ms at 20k items)."""
        if getattr(self, "_lp", None) is None:
            di_inv = np.zeros_like(self.di)
            di_inv[self.di > 0] = 1.0 / self.di[self.di > 0]
            self._lp = (np.ascontiguousarray((self.V * self.di[None, :]).T), self.V * di_inv[None, :])
        return self._lp

    def _state(self) -> dict:
        return {**sparse_state("R", self.R), "di": self.di, "V": self.V}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.R, self.di, self.V = sparse_from_state("R", state), state["di"], state["V"]
        self.RT = self.R.T.tocsr()


def _row_normalize(m: sp.csr_matrix) -> sp.csr_matrix:
    s = np.asarray(m.sum(1)).ravel()
    inv = np.zeros_like(s, dtype=np.float32)
    inv[s > 0] = 1.0 / s[s > 0]
    return sp.diags(inv) @ m


def _inv_sqrt(d: np.ndarray) -> np.ndarray:
    out = np.zeros(len(d), np.float32)
    out[d > 0] = d[d > 0] ** -0.5
    return out
