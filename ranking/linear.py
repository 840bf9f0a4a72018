"""Linear item-item autoencoders beside EASE: SLIM (sparse, ElasticNet per item) and DLAE /
EDLAE (EASE with a dropout-shaped regulariser, closed form), plus the memory guard every dense
item-item model runs before allocating its ``n_items x n_items`` matrices."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recagent.errors import ModelError
from recagent.ranking.base import History, ItemItemRecommender

log = logging.getLogger("recagent.ranking")


def dense_guard(model: str, n_items: int, max_gib: float, copies: int = 3, itemsize: int = 8) -> float:
    """Estimated GiB of ``copies`` dense ``n_items x n_items`` matrices; raises ``ModelError``
    (one line naming the limit and the alternatives) when it exceeds ``max_gib``.

    Args:
        model: model name for the message.
        n_items: catalog size.
        max_gib: the limit (the model's ``max_dense_gib`` option).
        copies: matrices alive at the peak (Gram, inverse, LAPACK workspace).
        itemsize: bytes per entry (8 for float64).
    """
    need = copies * itemsize * float(n_items) ** 2 / 2 ** 30
    if need > max_gib:
        biggest = int((max_gib * 2 ** 30 / (copies * itemsize)) ** 0.5)
        raise ModelError(f"{model}: {n_items:,} items need about {need:.1f} GiB for the dense item-item inverse, over "
                         f"max_dense_gib={max_gib:g} (about {biggest:,} items); use rp3beta, gfcf or slim (sparse "
                         f"item neighbours) for this catalog, or raise {model}'s max_dense_gib if the memory is there.")
    return need


class SLIM(ItemItemRecommender):
    """SLIM (Ning & Karypis 2011): for each item j, non-negative ElasticNet weights w_j that
    rebuild column j from the other columns (w_jj = 0); score = history @ W. One sklearn
    ``ElasticNet`` per item (coordinate descent on the sparse matrix), top-``k`` weights kept.

    Args:
        alpha: sklearn's overall penalty (its loss divides the squared error by 2 * n_users).
        l1_ratio: share of L1 in the penalty (sparsity).
        k: weights kept per item.
        max_iter: coordinate-descent sweeps per item.
    """

    name = "slim"
    #: tried on validation by the training home (each value is a refit of ~1 min on ML-100K;
    #: on Protocol A validation alpha 1e-4..1e-1 peaked at 0.03, l1_ratio 0.01 vs 0.1 was flat)
    param_grid: ClassVar[dict[str, list]] = {"alpha": [0.01, 0.03], "l1_ratio": [0.1]}

    def __init__(self, alpha: float = 0.03, l1_ratio: float = 0.1, k: int = 200, max_iter: int = 100, **kw: Any):
        super().__init__(alpha=alpha, l1_ratio=l1_ratio, k=k, max_iter=max_iter, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import ElasticNet

        p = self.params
        X = train.matrix.astype(np.float64).tocsc(copy=True)
        n = X.shape[1]
        enet = ElasticNet(alpha=p["alpha"], l1_ratio=p["l1_ratio"], positive=True, fit_intercept=False, copy_X=False,
                          precompute=False, selection="random", max_iter=p["max_iter"], tol=1e-4, random_state=0)
        rows, cols, vals = [], [], []
        k = int(p["k"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            for j in range(n):
                a, b = X.indptr[j], X.indptr[j + 1]
                if a == b:
                    continue
                y = X[:, j].toarray().ravel()
                saved = X.data[a:b].copy()
                X.data[a:b] = 0.0                     # w_jj = 0: item j may not rebuild itself
                enet.fit(X, y)
                X.data[a:b] = saved
                w = enet.sparse_coef_
                idx, val = w.indices, w.data
                if len(val) > k:
                    top = np.argpartition(-val, k - 1)[:k]
                    idx, val = idx[top], val[top]
                rows.append(idx)
                cols.append(np.full(len(idx), j))
                vals.append(val)
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
        self.W = sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))), shape=(n, n))


class DLAE(ItemItemRecommender):
    """DLAE / EDLAE (Steck 2020, "Autoencoders that don't overfit towards the identity"): EASE
    whose L2 penalty is what dropout with rate p implies, Lambda = p/(1-p) diag(X^T X) + reg I,
    so popular items are regularised more. With P = (X^T X + Lambda)^-1:
    ``zero_diag`` (EDLAE) B = I - P / diag(P) with diag(B) = 0; otherwise (DLAE) B = I - P Lambda.

    Args:
        dropout: the dropout rate p in [0, 1).
        reg: extra uniform L2 (lambda).
        zero_diag: EDLAE's diagonal constraint (True) or plain DLAE (False).
        max_dense_gib: refuse catalogs whose dense matrices need more memory (see ``dense_guard``).
    """

    matrix = "B"  # the item-item matrix (scored and saved by ItemItemRecommender)
    name = "dlae"
    #: tried on validation by the training home (each value is a refit of about a second)
    param_grid: ClassVar[dict[str, list]] = {"dropout": [0.1, 0.33, 0.5], "reg": [10.0, 100.0, 300.0], "zero_diag": [False]}

    def __init__(self, dropout: float = 0.25, reg: float = 10.0, zero_diag: bool = True, max_dense_gib: float = 4.0,
                 **kw: Any):
        if not 0.0 <= float(dropout) < 1.0:
            from recagent.errors import ConfigError

            raise ConfigError(f"dlae dropout={dropout}: use a rate in [0, 1), e.g. 0.25.")
        super().__init__(dropout=dropout, reg=reg, zero_diag=zero_diag, max_dense_gib=max_dense_gib, **kw)

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        p = self.params
        dense_guard(self.name, train.n_items, float(p["max_dense_gib"]))
        x = train.matrix.astype(np.float64)
        g = (x.T @ x).toarray()
        lam = float(p["dropout"]) / (1.0 - float(p["dropout"])) * np.diag(g) + float(p["reg"])
        g[np.diag_indices_from(g)] += lam
        P = np.linalg.inv(g)
        del g
        if p["zero_diag"]:
            P /= -np.diag(P)[None, :]
            np.fill_diagonal(P, 0.0)
        else:
            P *= -lam[None, :]
            P[np.diag_indices_from(P)] += 1.0
        self.B = P.astype(np.float32)
