"""`FusionCandidateRanker`: the chat's retrieval + learned ranking (DESIGN.md's chat turn).

Candidates are the union of the ChromaDB item index's text search on the turn's query, its
neighbours of the user's liked items, and the FusionRanker's own top-N over the catalog (its CF
and sequential channels); the FusionRanker then scores the union, with the query similarity
and constraint match as extra features. The hard constraints and exclusions filter the result,
so every returned item satisfies them. The fusion model comes from the training home
(``recagent.ranking.train.load_or_train``): the one ``recagent train --protocol B --models
fusion`` (or ``eval`` / ``recommend``) saved for this very data (its fingerprint must match), or
trained now when ``agent.ranker=fusion`` (Protocol B training data: everything but each user's
last two ratings).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from recagent.agent.session import Constraints, SessionState, allowed, user_history
from recagent.agent.ranker import Candidate, channel_parts

log = logging.getLogger("recagent.agent.fusion")


class FusionCandidateRanker:
    """A `CandidateRanker` over an `ItemIndex` and a fitted `FusionRanker`.

    Args:
        dataset: the data set being served (same id mapping the fusion model was fitted on).
        index: a built `recagent.retrieval.ItemIndex` of the catalog.
        fusion: a fitted `recagent.ranking.FusionRanker`.
        like_threshold: ratings >= this are the user's likes (neighbour queries).
        per_channel: candidates fetched from each source before ranking.
    """

    def __init__(self, dataset, index, fusion, like_threshold: float = 4.0, per_channel: int = 100):
        self.ds, self.index, self.fusion = dataset, index, fusion
        self.like_threshold = like_threshold
        self.per_channel = per_channel
        emb = index.embeddings([str(i) for i in dataset.item_ids], channel="text")
        dim = next(iter(emb.values())).shape[0] if emb else 0
        self.emb = np.stack([emb.get(str(i), np.zeros(dim, np.float32)) for i in dataset.item_ids]) if emb else None  # the agent reuses these for fact sheets
        # with pictures indexed (a CLIP model for this catalog), asks also search the images (text ->
        # image) and "more like this" also finds visually similar items
        self.channels = ("text", "image") if _has_items(index, "image") else ("text",)

    @classmethod
    def from_config(cls, cfg: Any, dataset, train: bool = False, log_fn: Callable[[str], None] = log.info
                    ) -> "FusionCandidateRanker | None":
        """Open the index (building it on first use) and load the saved fusion model; ``None``
        when no current fusion model is saved and ``train`` is off (the caller falls back)."""
        from recagent.ranking.train import load_or_train
        from recagent.retrieval import ItemIndex
        from recagent.runs import StaleRunError, layout

        try:
            fusion = load_or_train(cfg.replace("ranking", ablations=False), dataset, "B", ["fusion"],
                                   layout(cfg, dataset), log=log_fn, allow_train=train,
                                   command="recagent chat (first start)")["fusion"]
        except StaleRunError as exc:
            log_fn(str(exc))
            return None
        index = ItemIndex.open(cfg, dataset.name)
        index.ensure_built(dataset, log_fn=log_fn)
        return cls(dataset, index, fusion, like_threshold=cfg.agent.like_threshold,
                   per_channel=cfg.retrieval.candidates)

    def _history(self, state: SessionState) -> tuple[list[int], list[int], int | None]:
        """(all history rows in time order, liked rows, the user's model index or None)."""
        h = user_history(self.ds, state, self.like_threshold)
        return h.rows, h.liked, h.user

    def channel_scores(self, state: SessionState, query_text: str, query_sim: np.ndarray | None = None
                       ) -> dict[str, np.ndarray]:
        """Each fusion channel's additive share of an item's score over the whole catalog, plus
        the query term (the UI's "why this?").

        Args:
            query_sim: the query's similarity to every item, when the caller already searched.
        """
        history, _, user = self._history(state)
        parts = self.fusion.contributions(history, user=user)
        if query_text.strip():
            sims = self._query_sims(query_text)[0] if query_sim is None else query_sim
            z = (sims - sims.mean()) / max(float(sims.std()), 1e-6)
            parts["query"] = float(self.fusion.params["extra_weights"].get("query", 1.0)) * z
        dislikes = [self.ds.item_index[i] for i in state.dislikes if i in self.ds.item_index]
        if dislikes and self.emb is not None:
            # "I hated Star Wars": what reads like a disliked item goes down (its sequels first);
            # the fusion channels would also push down everything its fans watched
            sims = np.clip(self.emb @ self.emb[dislikes].T, 0, None).max(axis=1)
            z = (sims - sims.mean()) / max(float(sims.std()), 1e-6)
            parts["dislike"] = -float(self.fusion.params["extra_weights"].get("dislike", 1.0)) * np.clip(z, 0, None)
        # every returned item meets the constraints: rank() adds that feature to all of them
        parts["constraint"] = np.full(self.ds.n_items, float(self.fusion.params["extra_weights"].get("constraint", 1.0)),
                                      np.float32)
        return {name: v for name, v in parts.items() if np.any(v)}  # masked channels (no images, ...) add nothing

    def _query_sims(self, query_text: str) -> tuple[np.ndarray, list[int]]:
        """Similarity of the query to every item (0 outside the index's top hits), and the hits' rows."""
        sims = np.zeros(self.ds.n_items, np.float32)
        rows = []
        for h in self.index.query_text(query_text, self.per_channel, channels=self.channels):
            r = self.ds.item_index[h.item_id]
            sims[r] = h.score
            rows.append(r)
        return sims, rows

    def rank(self, state: SessionState, query_text: str, k: int, exclude: set[int],
             constraints: Constraints) -> list[Candidate]:
        ok = allowed(self.ds.catalog, constraints, exclude)
        if not ok.any():
            return []
        history, liked, user = self._history(state)
        found: dict[int, str] = {}
        idx = self.ds.item_index
        query_sim = np.zeros(self.ds.n_items, np.float32)
        if query_text.strip():
            query_sim, rows = self._query_sims(query_text)
            for r in rows:
                found.setdefault(r, "query")
        if liked:
            for h in self.index.query_items([self.ds.item_ids[r] for r in liked[-20:]], self.per_channel,
                                             channels=self.channels):
                found.setdefault(idx[h.item_id], "neighbours")
        # One scoring pass over the whole catalog, as the fusion model was trained (full ranking:
        # its z-score and rank views are per user over all items); the channels' shares are the
        # score, so "why this?" adds up to exactly what ranked the item.
        parts = self.channel_scores(state, query_text, query_sim if query_text.strip() else None)
        total = np.where(ok, np.sum(list(parts.values()), axis=0), -np.inf)
        for r in np.argsort(-total, kind="stable")[: self.per_channel]:
            if np.isfinite(total[r]):
                found.setdefault(int(r), "cf")
        cands = np.array([r for r in found if ok[r]], dtype=np.int64)
        if len(cands) == 0:
            return []
        order = cands[np.argsort(-total[cands], kind="stable")[:k]]
        return [Candidate(int(r), float(total[r]), found[int(r)], channel_parts(parts, int(r))) for r in order]


def _has_items(index, channel: str) -> bool:
    """Does the index hold items in ``channel`` (False for an absent channel)?"""
    return int(index.status().get(channel, {}).get("count", 0) or 0) > 0
