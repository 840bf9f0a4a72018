"""Paired bootstrap confidence intervals for the difference of two models' per-user metrics."""

from __future__ import annotations

import numpy as np


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of ``a - b`` over users with a percentile (1 - alpha) CI from ``n`` resamples of users
    (Efron & Tibshirani 1993; the same resampled users for both models, hence "paired").

    Args:
        a, b: per-user values of one metric for two models, aligned by user.
        n: resamples.
        seed: generator seed.
        alpha: 0.05 gives a 95 % interval.
    Returns:
        ``{"diff", "low", "high", "p_le_0"}``; ``p_le_0`` is the share of resamples whose mean
        difference is <= 0 (a one-sided bootstrap p-value for "a is better").
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) == 0:
        return {"diff": 0.0, "low": 0.0, "high": 0.0, "p_le_0": 1.0}
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    for s in range(0, n, 100):
        idx = rng.integers(0, len(d), (min(100, n - s), len(d)))
        means[s:s + len(idx)] = d[idx].mean(1)
    return {"diff": float(d.mean()), "low": float(np.quantile(means, alpha / 2)),
            "high": float(np.quantile(means, 1 - alpha / 2)), "p_le_0": float((means <= 0).mean())}
