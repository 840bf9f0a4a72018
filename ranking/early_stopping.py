"""Early stopping on a validation score: the one helper BPR, SASRec, MultiVAE (and the fusion
trainer) share. Higher scores are better (NDCG@10)."""

from __future__ import annotations

from typing import Any, Callable


class EarlyStopping:
    """Tracks the best validation score and a snapshot of the state that produced it.

    Usage::

        stop = EarlyStopping(patience=5)
        for epoch in range(1, epochs + 1):
            train_one_epoch()
            if stop.update(valid_score(), epoch, snapshot=lambda: copy_of_weights()):
                break
        weights = stop.best_state   # None when update was never called

    Args:
        patience: checks in a row without a gain larger than ``min_delta`` before stopping.
        min_delta: smallest gain that counts as an improvement.
    """

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best: float = float("-inf")
        self.best_step: int | None = None
        self.best_state: Any = None
        self.bad = 0
        self.history: list[tuple[int, float]] = []

    def update(self, score: float, step: int, snapshot: Callable[[], Any] | None = None) -> bool:
        """Record ``score`` at ``step``; take ``snapshot()`` when it is the best so far.

        Returns:
            True when training should stop (``patience`` checks without improvement).
        """
        score = float(score)
        self.history.append((int(step), score))
        if score > self.best + self.min_delta or self.best_step is None:
            self.best, self.best_step, self.bad = score, int(step), 0
            self.best_state = snapshot() if snapshot is not None else None
            return False
        self.bad += 1
        return self.bad >= self.patience

    @property
    def improved(self) -> bool:
        """True when the last update was the best so far."""
        return self.bad == 0 and self.best_step is not None

    def summary(self) -> dict:
        """``best_epoch`` and ``valid_ndcg10`` for a model's ``info`` (empty before any update)."""
        if self.best_step is None:
            return {}
        return {"best_epoch": self.best_step, "valid_ndcg10": round(self.best, 5), "checks": len(self.history)}
