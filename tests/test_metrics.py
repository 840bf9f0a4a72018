"""Metrics against hand-computed values, including the edge cases."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recagent.eval.bootstrap import paired_bootstrap
from recagent.eval.metrics import (batch_metrics, catalog_coverage, hit_at_k, hit_matrix, intra_list_diversity,
                                   mrr_at_k, ndcg_at_k, novelty, precision_at_k, recall_at_k)


def test_hand_computed_values():
    ranked, rel = [7, 3, 9, 1, 5], {3, 5, 8}
    # hits at ranks 2 and 5 (1-based)
    assert recall_at_k(ranked, rel, 5) == pytest.approx(2 / 3)
    assert precision_at_k(ranked, rel, 5) == pytest.approx(2 / 5)
    assert hit_at_k(ranked, rel, 1) == 0.0 and hit_at_k(ranked, rel, 2) == 1.0
    assert mrr_at_k(ranked, rel, 5) == pytest.approx(0.5)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, rel, 5) == pytest.approx(dcg / idcg)
    # k = 2: only one relevant slot can be filled; ideal has 2 hits
    assert ndcg_at_k(ranked, rel, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_no_hit_and_no_relevant_items_score_zero():
    assert ndcg_at_k([1, 2, 3], {9}, 3) == 0.0
    assert mrr_at_k([1, 2, 3], {9}, 3) == 0.0
    assert recall_at_k([1, 2], set(), 2) == 0.0
    assert ndcg_at_k([1, 2], set(), 2) == 0.0


def test_k_larger_than_the_list():
    # list of 2, k = 10: the missing positions are misses; precision still divides by k
    assert recall_at_k([4, 2], {2}, 10) == 1.0
    assert precision_at_k([4, 2], {2}, 10) == pytest.approx(0.1)
    assert ndcg_at_k([4, 2], {2}, 10) == pytest.approx(1 / math.log2(3))


def test_batch_metrics_match_reference_versions():
    rng = np.random.default_rng(0)
    n_items, k = 30, 10
    tops = np.array([rng.permutation(n_items)[:12] for _ in range(20)])
    rel_sets = [set(rng.choice(n_items, rng.integers(0, 4), replace=False).tolist()) for _ in range(20)]
    rows = [u for u, s in enumerate(rel_sets) for _ in s]
    cols = [i for s in rel_sets for i in s]
    rel = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(20, n_items))
    hits = hit_matrix(tops, rel)
    got = batch_metrics(hits, np.array([len(s) for s in rel_sets]), k)
    ref = {"recall": recall_at_k, "ndcg": ndcg_at_k, "hit": hit_at_k, "mrr": mrr_at_k, "precision": precision_at_k}
    for name, fn in ref.items():
        want = [fn(list(t), s, k) if s else 0.0 for t, s in zip(tops, rel_sets)]
        np.testing.assert_allclose(got[name], want, err_msg=name)


def test_padding_is_never_a_hit():
    rel = sp.csr_matrix(np.array([[1, 0, 0]]))
    hits = hit_matrix(np.array([[-1, 0]]), rel)
    assert hits.tolist() == [[False, True]]


def test_beyond_accuracy():
    assert catalog_coverage([[0, 1], [1, 2]], 10) == pytest.approx(0.3)
    # items seen by 3 and 0 of 3 users: p = 4/4 and 1/4
    assert novelty([[0, 1]], np.array([3, 0]), 3) == pytest.approx((0.0 + 2.0) / 2)
    vecs = np.array([[1, 0], [0, 1], [1, 0]], float)
    assert intra_list_diversity([[0, 1]], vecs) == pytest.approx(1.0)
    assert intra_list_diversity([[0, 2]], vecs) == pytest.approx(0.0)


def test_paired_bootstrap_ci_contains_the_mean_and_excludes_zero_for_a_clear_gain():
    rng = np.random.default_rng(1)
    b = rng.random(500)
    a = b + 0.1 + rng.normal(0, 0.01, 500)
    r = paired_bootstrap(a, b, n=300, seed=0)
    assert r["low"] <= r["diff"] <= r["high"]
    assert r["low"] > 0.09 and r["p_le_0"] == 0.0
