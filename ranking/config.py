"""Config section ``[ranking]``: baselines and the fusion ranker."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class RankingConfig:
    seed: int = opt(2020, "seed for every trained model")
    ease_reg: float = opt(250.0, "EASE L2 regularisation (the peers' value; tuned on validation)")
    ease_grid: list = opt([100.0, 250.0, 500.0, 1000.0], "EASE reg values tried on validation (empty = ease_reg only)")
    itemknn_k: int = opt(100, "ItemKNN neighbours per item")
    itemknn_grid: list = opt([50, 100, 200], "ItemKNN k values tried on validation (empty = itemknn_k only)")
    epochs: int = opt(50, "max epochs for BPR / sequential / fusion training (early stopping decides)")
    patience: int = opt(5, "epochs without validation NDCG@10 gain before stopping")
    bpr_dim: int = opt(64, "BPR-MF factor size (RecBole's default)")
    bpr_reg: float = opt(0.01, "BPR-MF L2 weight (picked on Protocol A validation from 1e-4, 1e-2, 3e-2)")
    bpr_epochs: int = opt(200, "BPR-MF max epochs (validation every 5, stops after 4 checks without gain)")
    sasrec_dim: int = opt(64, "SASRec hidden size (kept small so an epoch takes seconds on CPU)")
    sasrec_layers: int = opt(2, "SASRec transformer blocks")
    sasrec_max_len: int = opt(50, "SASRec history window (most recent items)")
    sasrec_lr: float = opt(3e-3, "SASRec Adam learning rate")
    content_grid: list = opt([0, 20], "content model: history window sizes tried (0 = whole history)")
    fusion_hidden: int = opt(16, "fusion gate / MLP hidden units")
    fusion_epochs: int = opt(100, "fusion max epochs (early stopping on held-out valid users)")
    fusion_patience: int = opt(8, "fusion epochs without held-out NDCG@10 gain before stopping")
    fusion_members: int = opt(3, "fusion ensemble size (each member stops on a different 20 % of valid users)")
    recency_days: float = opt(14.0, "window of the fusion recency channel (interactions in the days before the user's last)")
    ablations: bool = opt(True, "eval: also train fusion on each channel alone and on all-but-one")
