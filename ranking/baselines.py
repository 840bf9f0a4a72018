"""Non-neural baselines: Pop (true counts), ItemKNN (cosine, top-k neighbours) and EASE."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recagent.ranking.base import History, ItemItemRecommender, Recommender
from recagent.ranking.linear import dense_guard
from recagent.ranking.neighbors import topk_rows


class Pop(Recommender):
    """Most popular items (number of training users per item; true counts, unlike RecBole's Pop,
    which counts an item at most once per batch)."""

    name = "pop"
    param_grid: ClassVar[dict[str, list]] = {}

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        self.counts = np.asarray(train.matrix.sum(0)).ravel().astype(np.float32)

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(np.atleast_1d(users)), len(self.counts))).copy()

    def _state(self) -> dict:
        return {"counts": self.counts}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.counts = state["counts"]


class ItemKNN(ItemItemRecommender):
    """Item-based k-nearest neighbours (Sarwar et al. 2001): cosine similarity of item columns,
    each item keeps its ``k`` most similar items, score(u, j) = sum over u's items i of sim(i, j).

    Args:
        k: neighbours kept per item (RecBole's default 100; tuned on validation).
        shrink: added to the cosine denominator to damp rare co-occurrences.
    """

    matrix = "sim"  # the item-item matrix (scored and saved by ItemItemRecommender)
    name = "itemknn"
    #: tried on validation by the training home
    param_grid: ClassVar[dict[str, list]] = {"k": [50, 100, 200]}

    def __init__(self, k: int = 100, shrink: float = 0.0, **kw: Any):
        super().__init__(k=k, shrink=shrink, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        x = train.matrix.astype(np.float32).tocsc()
        xt = x.T.tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel())
        shrink = float(self.params["shrink"])
        # cosine is symmetric: keeping the k best sources of each target column j is keeping
        # the k best entries of row j and transposing; done block-wise, never dense n x n
        rows = topk_rows(lambda r: (xt[r] @ x).toarray() / (np.outer(norms[r], norms) + shrink + 1e-9),
                         x.shape[1], x.shape[1], int(self.params["k"]))
        self.sim = rows.T.tocsr()


class EASE(ItemItemRecommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): B = I - P / diag(P) with
    P = (X^T X + reg I)^-1 and diag(B) = 0; score = X B (closed form, < 1 s for 1.7k items).

    The dense inverse needs about 3 * 8 * n_items^2 bytes (24 GiB at 32k items): the fit
    checks that estimate against ``max_dense_gib`` first and refuses with a one-line
    ``ModelError`` naming the sparse alternatives, instead of being killed for memory.

    Args:
        reg: L2 regularisation (RecBole's default 250; tuned on validation).
        max_dense_gib: the memory the dense matrices may take (4 GiB is ~13k items).
    """

    matrix = "B"  # the item-item matrix (scored and saved by ItemItemRecommender)
    name = "ease"
    #: tried on validation by the training home
    param_grid: ClassVar[dict[str, list]] = {"reg": [100.0, 250.0, 500.0, 1000.0]}

    def __init__(self, reg: float = 250.0, max_dense_gib: float = 4.0, **kw: Any):
        super().__init__(reg=reg, max_dense_gib=max_dense_gib, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        dense_guard(self.name, train.n_items, float(self.params.get("max_dense_gib", 4.0)))
        x = train.matrix.astype(np.float64)
        g = (x.T @ x).toarray()
        g[np.diag_indices_from(g)] += float(self.params["reg"])
        p = np.linalg.inv(g)
        del g
        p /= -np.diag(p)[None, :]
        np.fill_diagonal(p, 0.0)
        self.B = p.astype(np.float32)


def item_popularity(matrix: sp.csr_matrix) -> np.ndarray:
    """Users per item of a binary user-item matrix."""
    return np.asarray(matrix.sum(0)).ravel()
