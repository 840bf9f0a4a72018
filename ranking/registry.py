"""Model names -> classes, and the small validation grid each model declares (``param_grid``)."""

from __future__ import annotations

from recagent.errors import ConfigError


def model_class(name: str):
    """The recommender class registered under ``name``."""
    from recagent.ranking.baselines import EASE, ItemKNN, Pop
    from recagent.ranking.bpr import BPRMF
    from recagent.ranking.content import ContentKNN
    from recagent.ranking.fusion import FusionRanker
    from recagent.ranking.graph import GFCF, RP3beta
    from recagent.ranking.linear import DLAE, SLIM
    from recagent.ranking.multivae import MultiVAE
    from recagent.ranking.neighbors import UserKNN
    from recagent.ranking.sasrec import SASRec

    classes = {c.name: c for c in (Pop, ItemKNN, EASE, BPRMF, ContentKNN, SASRec, FusionRanker,
                                   RP3beta, GFCF, UserKNN, SLIM, DLAE, MultiVAE)}
    if name not in classes:
        raise ConfigError(f"unknown model '{name}'; use one of: {', '.join(classes)}.")
    return classes[name]


MODEL_NAMES = ("pop", "itemknn", "ease", "bpr", "sasrec", "content", "fusion")
#: the channel models added for issue 13 (each a ``Recommender`` with a ``param_grid`` tuned on
#: validation); kept apart from ``MODEL_NAMES`` until the training home and eval list them
NEW_MODEL_NAMES = ("rp3beta", "gfcf", "userknn", "slim", "dlae", "multivae")
ALL_MODEL_NAMES = MODEL_NAMES + NEW_MODEL_NAMES


def param_grid(name: str) -> dict[str, list]:
    """The small validation grid model ``name`` declares (``{}``: its defaults only)."""
    return dict(getattr(model_class(name), "param_grid", {}) or {})
