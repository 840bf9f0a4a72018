"""Config section ``[ranking]``: baselines and the fusion ranker."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class RankingConfig:
    seed: int = opt(2020, "seed for every trained model")
    ease_reg: float = opt(250.0, "EASE L2 regularisation (the peers' value; tuned on validation)")
    itemknn_k: int = opt(100, "ItemKNN neighbours per item")
    epochs: int = opt(50, "max epochs for BPR / sequential / fusion training (early stopping decides)")
    patience: int = opt(5, "epochs without validation NDCG@10 gain before stopping")
