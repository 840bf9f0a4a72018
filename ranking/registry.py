"""Model names -> classes, and the small validation grids each baseline is tuned over."""

from __future__ import annotations

from recagent.errors import ConfigError


def model_class(name: str):
    """The recommender class registered under ``name``."""
    from recagent.ranking.baselines import EASE, ItemKNN, Pop
    from recagent.ranking.bpr import BPRMF
    from recagent.ranking.content import ContentKNN
    from recagent.ranking.fusion import FusionRanker
    from recagent.ranking.sasrec import SASRec

    classes = {c.name: c for c in (Pop, ItemKNN, EASE, BPRMF, ContentKNN, SASRec, FusionRanker)}
    if name not in classes:
        raise ConfigError(f"unknown model '{name}'; use one of: {', '.join(classes)}.")
    return classes[name]


MODEL_NAMES = ("pop", "itemknn", "ease", "bpr", "sasrec", "content", "fusion")
