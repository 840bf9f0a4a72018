"""Config section ``[ranking]``: baselines and the fusion ranker."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import Rule, opt


@dataclass(frozen=True)
class RankingConfig:
    seed: int = opt(2020, "seed for every trained model", min=0)
    ease_reg: float = opt(250.0, "EASE L2 regularisation (the peers' value; tuned on validation)", gt=0)
    ease_grid: list = opt([100.0, 250.0, 500.0, 1000.0], "EASE reg values tried on validation (empty = ease_reg only)",
                          items=Rule(float, gt=0))
    itemknn_k: int = opt(100, "ItemKNN neighbours per item", min=1)
    itemknn_grid: list = opt([50, 100, 200], "ItemKNN k values tried on validation (empty = itemknn_k only)",
                             items=Rule(int, min=1))
    epochs: int = opt(50, "max epochs for BPR / sequential / fusion training (early stopping decides)", min=1)
    patience: int = opt(5, "epochs without validation NDCG@10 gain before stopping", min=1)
    bpr_dim: int = opt(64, "BPR-MF factor size (RecBole's default)", min=1)
    bpr_reg: float = opt(0.01, "BPR-MF L2 weight (picked on Protocol A validation from 1e-4, 1e-2, 3e-2)", min=0)
    bpr_epochs: int = opt(200, "BPR-MF max epochs (validation every 5, stops after 4 checks without gain)", min=1)
    sasrec_dim: int = opt(64, "SASRec hidden size (kept small so an epoch takes seconds on CPU)", min=2,
                          check=lambda d: None if d % 2 == 0 else f"{d} is odd; use an even size (SASRec splits "
                                                                  "it over 2 attention heads)")
    sasrec_layers: int = opt(2, "SASRec transformer blocks", min=1)
    sasrec_max_len: int = opt(50, "SASRec history window (most recent items)", min=1)
    sasrec_lr: float = opt(3e-3, "SASRec Adam learning rate", gt=0)
    content_grid: list = opt([0, 20], "content model: history window sizes tried (0 = whole history)",
                             items=Rule(int, min=0))
    fusion_hidden: int = opt(16, "fusion gate / MLP hidden units", min=1)
    fusion_epochs: int = opt(100, "fusion max epochs (early stopping on held-out valid users)", min=1)
    fusion_patience: int = opt(8, "fusion epochs without held-out NDCG@10 gain before stopping", min=1)
    fusion_members: int = opt(0, "fusion ensemble size: valid users cut into this many folds, member k trains on the "
                              "others and stops on fold k; 0 = the protocol's measured default "
                              "(ranking.train.FUSION_ENSEMBLE: A 10, B 5)", min=0)
    fusion_repeats: int = opt(0, "fusion seed ensemble: the valid users are cut into fusion_members folds this many "
                              "times (another seed each), so the ensemble holds members x repeats nets and fit time "
                              "grows with it; 0 = the protocol's measured default (ranking.train.FUSION_ENSEMBLE)",
                              min=0)
    recency_days: float = opt(14.0, "window of the fusion recency channel (interactions in the days before the user's last)",
                              gt=0)
    ablations: bool = opt(True, "eval: also train fusion on each channel alone and on all-but-one")
