"""Ranking metrics as pure functions: per-list reference versions and batched array versions.

Definitions follow RecBole 1.2.1 (``recbole/evaluator/metrics.py``) so numbers compare with the
peers: Recall@K = hits / |relevant|; Precision@K = hits / K; HR@K = 1 if any hit; MRR@K =
1 / rank of the first hit (0 if none in the top K); NDCG@K = DCG / IDCG with binary gains,
DCG = sum_{r<=K} hit_r / log2(r + 1) and IDCG the DCG of min(|relevant|, K) hits at the top.
Every metric lies in [0, 1]. A user with no relevant item scores 0.0 everywhere; eval only
averages over users that have a test item. A list shorter than K is scored as it is (the
missing positions are misses), except Precision which still divides by K.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

METRICS = ("recall", "ndcg", "hit", "mrr", "precision")


# -- reference versions: one ranked list and one set of relevant items -------------------------
def recall_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Share of the relevant items found in the top k. Range [0, 1]; 0.0 without relevant items."""
    rel = set(relevant)
    return len(rel.intersection(list(ranked)[:k])) / len(rel) if rel else 0.0


def precision_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Hits in the top k divided by k (not by the list length). Range [0, 1]."""
    rel = set(relevant)
    return len(rel.intersection(list(ranked)[:k])) / k if rel and k > 0 else 0.0


def hit_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """1.0 if any relevant item is in the top k, else 0.0."""
    rel = set(relevant)
    return float(any(x in rel for x in list(ranked)[:k]))


def mrr_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Reciprocal (1-based) rank of the first relevant item within the top k, else 0.0."""
    rel = set(relevant)
    for r, x in enumerate(list(ranked)[:k]):
        if x in rel:
            return 1.0 / (r + 1)
    return 0.0


def ndcg_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Binary-gain NDCG@k (Järvelin & Kekäläinen 2002; RecBole's form). Range [0, 1]. The one
    NDCG formula is ``batch_metrics``'; this is the one-list view of it."""
    rel = set(relevant)
    if not rel or k <= 0:
        return 0.0
    hits = np.array([[x in rel for x in list(ranked)[:k]]], dtype=bool).reshape(1, -1)
    return float(batch_metrics(hits, np.array([len(rel)]), k)["ndcg"][0])


# -- batched versions --------------------------------------------------------------------------
def hit_matrix(top: np.ndarray, relevant: sp.csr_matrix, valid: np.ndarray | None = None) -> np.ndarray:
    """Bool ``(n_users, K)``: is ``top[u, r]`` relevant to user u (row u of ``relevant``)?

    Args:
        top: ranked item indices per user (``-1`` or masked entries marked by ``valid=False``).
        relevant: binary CSR with one row per row of ``top``.
        valid: optional bool mask of real list entries (False = padding, never a hit).
    """
    rows = np.repeat(np.arange(top.shape[0]), top.shape[1])
    cols = np.clip(top.ravel(), 0, relevant.shape[1] - 1)
    hits = np.asarray(relevant[rows, cols]).reshape(top.shape) > 0
    if valid is not None:
        hits &= valid
    return hits & (top >= 0)


def batch_metrics(hits: np.ndarray, n_rel: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user values of every metric in ``METRICS`` at cut-off k.

    Args:
        hits: bool ``(n_users, K)`` from ``hit_matrix`` (K may be < k: a short list).
        n_rel: number of relevant items per user.
        k: the cut-off.
    """
    h = hits[:, :k].astype(np.float64)
    n_rel = np.asarray(n_rel, dtype=np.float64)
    has = n_rel > 0
    n_hit = h.sum(1)
    disc = 1.0 / np.log2(np.arange(2, h.shape[1] + 2))
    dcg = h @ disc
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = ideal[np.minimum(n_rel, k).astype(int)]
    first = np.where(h.any(1), h.argmax(1) + 1, 0)
    safe = lambda a, b: np.divide(a, b, out=np.zeros_like(a), where=(b > 0) & has)  # noqa: E731
    return {
        "recall": safe(n_hit, n_rel),
        "ndcg": safe(dcg, idcg),
        "hit": np.where(has, (n_hit > 0).astype(float), 0.0),
        "mrr": np.where(has & (first > 0), 1.0 / np.maximum(first, 1), 0.0),
        "precision": np.where(has, n_hit / k, 0.0) if k > 0 else np.zeros_like(n_hit),
    }


# -- beyond accuracy ---------------------------------------------------------------------------
def catalog_coverage(lists: np.ndarray | Sequence[Sequence[int]], n_items: int) -> float:
    """Share of the ``n_items`` rankable items that appear in at least one list. Range [0, 1]."""
    seen = {int(x) for lst in lists for x in lst if int(x) >= 0}
    return len(seen) / n_items if n_items else 0.0


def novelty(lists: np.ndarray | Sequence[Sequence[int]], item_pop: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(p_i) of recommended items, p_i = (users with i + 1) / (n_users + 1)
    (Zhou et al. 2010, smoothed so unseen items are finite). Range [0, log2(n_users + 1)]."""
    p = (np.asarray(item_pop, dtype=np.float64) + 1.0) / (n_users + 1.0)
    vals = [-np.log2(p[int(x)]) for lst in lists for x in lst if int(x) >= 0]
    return float(np.mean(vals)) if vals else 0.0


def intra_list_diversity(lists: np.ndarray | Sequence[Sequence[int]], item_vectors: np.ndarray) -> float:
    """Mean over lists of the mean pairwise cosine distance (1 - cos) between the list's items
    (Ziegler et al. 2005). Range [0, 2] (in [0, 1] for non-negative vectors); lists with < 2
    items are skipped."""
    v = np.asarray(item_vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    out = []
    for lst in lists:
        idx = [int(x) for x in lst if int(x) >= 0]
        if len(idx) < 2:
            continue
        s = v[idx] @ v[idx].T
        n = len(idx)
        out.append(1.0 - (s.sum() - np.trace(s)) / (n * (n - 1)))
    return float(np.mean(out)) if out else 0.0


def relevance(df, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary CSR ``(n_users, n_items)`` of held-out interactions (a frame with ``uidx``, ``iidx``)."""
    m = sp.csr_matrix((np.ones(len(df), np.float32), (np.asarray(df["uidx"]), np.asarray(df["iidx"]))),
                      shape=(n_users, n_items))
    m.data[:] = 1.0
    return m


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest per row, best first (masked -inf entries may
    fill the tail when fewer than k items are rankable; callers drop them)."""
    k = max(0, min(k, scores.shape[1]))
    if k == 0:
        return np.zeros((scores.shape[0], 0), np.int64), np.zeros((scores.shape[0], 0), np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    return ids.astype(np.int64), np.take_along_axis(vals, order, axis=1)


def ndcg_from_scores(scores: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """Mean NDCG@k over rows with a relevant item, from already-masked dense scores (used for
    early stopping and tuning on the validation split)."""
    n_rel = np.diff(relevant.indptr)
    keep = n_rel > 0
    if not keep.any():
        return 0.0
    ids, vals = topk(scores[keep], k)
    hits = hit_matrix(ids, relevant[keep], np.isfinite(vals))
    return float(batch_metrics(hits, n_rel[keep], k)["ndcg"].mean())


def ndcg_per_row(scores: np.ndarray, targets: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-row NDCG@k of dense, already-masked scores against a dense bool ``targets`` matrix
    (0 for rows without a target)."""
    ids, vals = topk(np.asarray(scores, np.float32), k)
    hits = np.take_along_axis(np.asarray(targets, bool), ids, axis=1) & np.isfinite(vals)
    return batch_metrics(hits, np.asarray(targets, bool).sum(1), k)["ndcg"]
