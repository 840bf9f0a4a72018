"""Full-ranking evaluation of one model on one split: per-user metric arrays and top-N lists."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recagent.eval.metrics import (METRICS, batch_metrics, catalog_coverage, hit_matrix, intra_list_diversity, novelty,
                                   relevance, topk)
from recagent.ranking.base import History, mask_scores


@dataclass
class EvalResult:
    """Per-user values (``per_user["ndcg@10"]`` aligned with ``users``), top lists and means."""

    users: np.ndarray
    per_user: dict
    top: np.ndarray
    extra: dict = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        out = {k: round(float(v.mean()), 6) if len(v) else 0.0 for k, v in self.per_user.items()}
        out.update(self.extra)
        return out


def evaluate_scores(score_fn, users: np.ndarray, history: History, targets: pd.DataFrame, items: np.ndarray | None,
                    ks=(5, 10, 20), k_max: int = 100, item_pop: np.ndarray | None = None,
                    item_vectors: np.ndarray | None = None, batch_size: int = 512) -> EvalResult:
    """Rank every item for each user (history items and items outside ``items`` masked), then
    compute every metric at every K.

    Args:
        score_fn: ``users -> (len(users), n_items)`` dense scores.
        users: users with at least one target.
        history: histories whose items are masked (train, or train+valid at test time).
        targets: held-out interactions.
        items: the protocol's item universe.
        ks: cut-offs.
        k_max: length of the stored top lists (for ``--save-recommendations``).
        item_pop: training users per item, for novelty.
        item_vectors: item vectors (e.g. genres) for intra-list diversity.
    """
    rel = relevance(targets, history.n_users, history.n_items)
    k_keep = max(max(ks), k_max)
    tops, fin = [], []
    for s in range(0, len(users), batch_size):
        ub = users[s:s + batch_size]
        sc = np.asarray(score_fn(ub), dtype=np.float32).copy()
        mask_scores(sc, history.for_users(ub), items)
        ids, vals = topk(sc, k_keep)
        tops.append(np.where(np.isfinite(vals), ids, -1))
    top = np.concatenate(tops) if tops else np.zeros((0, k_keep), np.int64)
    hits = hit_matrix(top, rel[users])
    n_rel = np.diff(rel.indptr)[users]
    per_user = {}
    for k in ks:
        for name, vals in batch_metrics(hits, n_rel, k).items():
            per_user[f"{name}@{k}"] = vals
    extra = {}
    n_univ = len(items) if items is not None else history.n_items
    k10 = 10 if 10 in ks else max(ks)
    extra[f"coverage@{k10}"] = round(catalog_coverage(top[:, :k10], n_univ), 6)
    if item_pop is not None:
        extra[f"novelty@{k10}"] = round(novelty(top[:, :k10], item_pop, history.n_users), 6)
    if item_vectors is not None:
        extra[f"diversity@{k10}"] = round(intra_list_diversity(top[:, :k10], item_vectors), 6)
    return EvalResult(users, per_user, top[:, :k_max], extra)


def genre_vectors(catalog) -> np.ndarray:
    """One-hot genre vectors per item (for intra-list diversity)."""
    vocab = {c: j for j, c in enumerate(catalog.category_vocabulary)}
    v = np.zeros((len(catalog), max(1, len(vocab))), np.float32)
    for i, cats in enumerate(catalog.items["categories"]):
        for c in cats:
            v[i, vocab[c]] = 1.0
    return v


__all__ = ["EvalResult", "evaluate_scores", "relevance", "genre_vectors", "METRICS"]
