"""recagent.ranking: one recommender contract, the baselines and the gated FusionRanker.

Contract (``ranking/base.py``), shared by every model so eval treats them alike::

    model.fit(split)                      # a data.Split (train; valid for early stopping) or a History
    model.score(users, history=None)      # dense (len(users), n_items) scores, history folded in
    ids, scores = model.recommend(users, k=10, exclude_seen=True, history=None, items=None)
    model.save(dir); Recommender.load(dir)

Baselines: ``Pop``, ``ItemKNN``, ``EASE`` (baselines.py), ``BPRMF`` (bpr.py), ``SASRec``
(sasrec.py), ``ContentKNN`` (content.py, text embeddings cached by encoder name + catalog hash),
``RP3beta`` / ``GFCF`` (graph.py), ``SLIM`` / ``DLAE`` (linear.py), ``UserKNN`` (neighbors.py),
``MultiVAE`` (multivae.py); all listed in registry.py, each with its validation ``param_grid``.
Training has one home, ``train.py`` (train / load_or_train, data fingerprints).

Fusion (fusion.py, features in features.py): see the module docstring for the leakage-safe
training scheme. Offline eval scores all items; chat scores a candidate list:

    from recagent.ranking import Recommender
    ranker = Recommender.load(layout(cfg, ds).model("B", "fusion"))   # a FusionRanker (recagent.runs)
    scores = ranker.rank(
        history_items=[12, 40, 7],          # the user's item indices, oldest first ([] = new user)
        candidates=np.array([...]),         # item indices from retrieval + CF top-N
        user=None,                          # the user's index in the fitted models if known (enables BPR)
        profile_text=None,                  # (d,) text-encoder embedding of the profile text
        profile_clip=None,                  # CLIP text embedding of the profile (cross-modal channel)
        extra_features={"query": sims,      # query-text vs candidate similarity (z-scored, weight 1)
                        "constraint": ok},  # 1.0 where the candidate meets the constraints (weight 3)
    )                                       # -> np.ndarray aligned with candidates, higher = better

The extra features have fixed weights (``FusionRanker(extra_weights=...)``) because no offline
data exists to learn them; every other channel's weight is learned and gated per user.
"""

from recagent.ranking.base import History, Recommender, mask_scores, topk, valid_ndcg
from recagent.ranking.baselines import EASE, ItemKNN, Pop
from recagent.ranking.bpr import BPRMF
from recagent.ranking.content import ContentKNN, item_text_embeddings
from recagent.ranking.features import CHANNELS, FeatureSources
from recagent.ranking.fusion import FusionRanker
from recagent.ranking.registry import MODEL_NAMES, model_class
from recagent.ranking.sasrec import SASRec

__all__ = ["History", "Recommender", "mask_scores", "topk", "valid_ndcg", "EASE", "ItemKNN", "Pop", "BPRMF",
           "ContentKNN", "item_text_embeddings", "CHANNELS", "FeatureSources", "FusionRanker", "MODEL_NAMES",
           "model_class", "SASRec"]
