"""Early stopping on a validation score: the one helper BPR, SASRec, MultiVAE (and the fusion
trainer) share; it owns the best snapshot and putting it back. Higher scores are better (NDCG@10)."""

from __future__ import annotations

from typing import Any, Callable


class EarlyStopping:
    """Tracks the best validation score and a snapshot of the state that produced it.

    Usage with a torch module (the snapshot is a copy of its ``state_dict``)::

        stop = EarlyStopping(patience=5, module=net)
        for epoch in range(1, epochs + 1):
            train_one_epoch()
            if stop.update(valid_score(), epoch):
                break
        stop.restore(info)          # best weights back into net; info gets best_epoch, ...

    or with any state: ``stop.update(score, epoch, snapshot=lambda: copy_of_state())`` and
    ``stop.best_state`` (None when ``update`` was never called).

    Args:
        patience: checks in a row without a gain larger than ``min_delta`` before stopping.
        min_delta: smallest gain that counts as an improvement.
        module: a torch module whose weights are snapshotted when ``update`` gets no
            ``snapshot`` and put back by ``restore``.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, module: Any = None):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.module = module
        self.best: float = float("-inf")
        self.best_step: int | None = None
        self.best_state: Any = None
        self.bad = 0
        self.history: list[tuple[int, float]] = []

    def update(self, score: float, step: int, snapshot: Callable[[], Any] | None = None) -> bool:
        """Record ``score`` at ``step``; take ``snapshot()`` (default: a copy of the module's
        weights) when it is the best so far.

        Returns:
            True when training should stop (``patience`` checks without improvement).
        """
        score = float(score)
        self.history.append((int(step), score))
        if score > self.best + self.min_delta or self.best_step is None:
            self.best, self.best_step, self.bad = score, int(step), 0
            if snapshot is not None:
                self.best_state = snapshot()
            elif self.module is not None:
                self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            else:
                self.best_state = None
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, info: dict | None = None) -> bool:
        """Put the best weights back into the module and add :meth:`summary` to ``info``.

        Returns:
            False (and changes nothing) when ``update`` was never called, e.g. no validation data.
        """
        if self.best_step is None:
            return False
        if self.module is not None and self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        if info is not None:
            info.update(self.summary())
        return True

    @property
    def improved(self) -> bool:
        """True when the last update was the best so far."""
        return self.bad == 0 and self.best_step is not None

    def summary(self) -> dict:
        """``best_epoch`` and ``valid_ndcg10`` for a model's ``info`` (empty before any update)."""
        if self.best_step is None:
            return {}
        return {"best_epoch": self.best_step, "valid_ndcg10": round(self.best, 5), "checks": len(self.history)}
