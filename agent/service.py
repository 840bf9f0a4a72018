"""Library entry points: build an `Agent` from the config, and explain given items for a known
user without a conversation (what ``recagent recommend --explain`` prints)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Sequence

from recagent.errors import ConfigError

log = logging.getLogger("recagent.agent")


def build_agent(cfg: Any, dataset, llm=None, ranker=None, text_encoder: bool = True):
    """An `Agent` with the configured LLM (unless ``agent.explain_with_llm`` and
    ``agent.profile_with_llm`` are both off) and the ranker ``agent.ranker`` selects
    (`FusionCandidateRanker` over the index and the trained fusion model, or `SimpleRanker`).

    Args:
        cfg: the resolved config.
        dataset: the data set to serve.
        llm: an `LLM` to use instead of loading ``models.llm``.
        ranker: a `CandidateRanker` to use instead of `SimpleRanker`.
        text_encoder: give the SimpleRanker the text encoder (query/profile similarity).
    """
    from recagent.agent.agent import Agent
    from recagent.agent.llm import load_llm
    from recagent.agent.ranker import SimpleRanker

    if llm is None and (cfg.agent.explain_with_llm or cfg.agent.profile_with_llm):
        llm = load_llm(cfg)
    if ranker is None:
        ranker = select_ranker(cfg, dataset) if text_encoder else \
            SimpleRanker(dataset, like_threshold=cfg.agent.like_threshold)
    from recagent.agent.vocab import nouns_for

    return Agent(dataset, llm=llm, ranker=ranker, settings=cfg.agent, nouns=nouns_for(dataset, cfg.data))


def _progress(msg: str) -> None:
    """Long one-off work (index build, fusion training) reports on stderr."""
    print(msg, file=sys.stderr, flush=True)


def select_ranker(cfg: Any, dataset):
    """The chat's `CandidateRanker` per ``agent.ranker``: `FusionCandidateRanker` (ChromaDB index
    + trained FusionRanker; 'fusion' trains it on first use, 'auto' uses it when one is saved)
    or `SimpleRanker`."""
    from recagent.agent.ranker import SimpleRanker

    choice = cfg.agent.ranker
    if choice not in ("auto", "fusion", "simple"):
        raise ConfigError(f"agent.ranker = '{choice}': use 'auto', 'fusion' or 'simple'.")
    if choice != "simple":
        from recagent.agent.fusion_ranker import FusionCandidateRanker

        ranker = FusionCandidateRanker.from_config(cfg, dataset, train=choice == "fusion", log_fn=_progress)
        if ranker is not None:
            return ranker
        from recagent.ranking.train import train_hint

        log.warning("no trained fusion ranker for %s yet: using the simple ranker. Train it once with "
                    "`%s`, or --set agent.ranker=fusion.", dataset.name, train_hint(dataset, "B", "fusion"))
    return SimpleRanker.from_config(cfg, dataset)


def explain_for_user(cfg: Any, dataset, user_id: str, item_ids: Sequence[str], llm=None, channel: str = "cf",
                     agent=None) -> list[dict]:
    """Reasons for items recommended to a known user, one batch of LLM calls.

    Args:
        cfg: the resolved config (``[agent]`` budgets, ``models.llm``).
        dataset: the data set the user and items belong to.
        user_id: a user of the log.
        item_ids: original item ids, in display order.
        llm: an `LLM` instead of loading ``models.llm`` (None + ``agent.explain_with_llm=false``: templates).
        channel: how the items were found (see ``explain.CHANNELS``); 'cf' for CF recommenders.
        agent: reuse an existing `Agent` (its verifier and evidence) instead of building one.

    Returns:
        ``[{"item_id", "title", "reason", "reason_source"}]`` in the order of ``item_ids``.
    """
    from recagent.agent.agent import Agent
    from recagent.agent.explain import build_fact_sheets
    from recagent.agent.llm import load_llm

    user_id = str(user_id)
    if user_id not in dataset.user_index:
        raise ConfigError(f"--user {user_id}: not a user of {dataset.name}; pick an id from the log.")
    unknown = [i for i in item_ids if str(i) not in dataset.item_index]
    if unknown:
        raise ConfigError(f"item ids {unknown[:3]} are not in the {dataset.name} catalog; pass catalog item ids.")
    if agent is None:
        if llm is None and cfg.agent.explain_with_llm:
            llm = load_llm(cfg)
        from recagent.agent.ranker import SimpleRanker

        from recagent.agent.vocab import nouns_for

        agent = Agent(dataset, llm=llm, ranker=SimpleRanker(dataset, like_threshold=cfg.agent.like_threshold),
                      settings=cfg.agent, nouns=nouns_for(dataset, cfg.data))
    from recagent.agent.session import SessionState

    history = agent.history_rows(SessionState(user_id=user_id))
    rows = [dataset.item_index[str(i)] for i in item_ids]
    sheets = build_fact_sheets(dataset.catalog, [(r, channel) for r in rows], history, agent.evidence, agent.embeddings,
                               cfg.agent.history_neighbours, set(history))
    exps = agent.explainer.explain(sheets)
    return [{"item_id": s.item_id, "title": s.title, "reason": e.text, "reason_source": e.source}
            for s, e in zip(sheets, exps)]


__all__ = ["build_agent", "explain_for_user", "select_ranker", "Agent"]


def __getattr__(name: str):  # lazy: `from recagent.agent.service import Agent`
    if name == "Agent":
        from recagent.agent.agent import Agent

        return Agent
    raise AttributeError(name)
