"""Candidates for a chat turn behind one small protocol, and `SimpleRanker`, the default built
only from what needs no training: item text embeddings (query and profile similarity), item
co-occurrence neighbours of liked items, popularity, and hard constraint filters.

To plug in the retrieval index and the learned FusionRanker, implement `CandidateRanker.rank`
and pass it to ``Agent(ranker=...)``; nothing else in the agent changes.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from recagent.agent.session import Constraints, SessionState, allowed, user_history

log = logging.getLogger("recagent.agent.ranker")


class Candidate(NamedTuple):
    """One ranked item: catalog row, score (higher is better), the channel that found it
    ('query', 'profile', 'neighbours', 'popular', 'cf', ... see ``explain.CHANNELS``) and each
    channel's additive share of the score (the UI's "why this?"; empty when a ranker has none)."""

    item_idx: int
    score: float
    channel: str
    parts: dict[str, float] = {}


@runtime_checkable
class CandidateRanker(Protocol):
    """What the agent asks of retrieval + ranking each turn.

    ``rank`` gets the session (user id or None, likes, dislikes as item ids), the turn's query
    text ("" when the message carried none), how many items to return, catalog rows that must
    not be returned (seen, shown, disliked, the user's history) and the hard constraints. It
    returns at most ``k`` candidates, best first, all satisfying ``constraints.mask``.
    """

    def rank(self, state: SessionState, query_text: str, k: int, exclude: set[int],
             constraints: Constraints) -> list[Candidate]: ...


class SimpleRanker:
    """Embedding + co-occurrence + popularity scoring with hard filters.

    Args:
        dataset: the data set (use a training split in evaluations so held-out items stay hidden).
        encoder: an `Encoder` for query text; None = no query channel.
        item_embeddings: L2-normalised embeddings of ``catalog.describe(i)`` (computed with
            ``encoder`` when None and an encoder is given).
        like_threshold: ratings >= this are likes.
        weights: channel weights {'query', 'profile', 'neighbours', 'popular'}.
    """

    DEFAULT_WEIGHTS = {"query": 1.0, "profile": 0.5, "neighbours": 1.0, "popular": 0.3}

    def __init__(self, dataset, encoder=None, item_embeddings: np.ndarray | None = None, like_threshold: float = 4.0,
                 weights: dict[str, float] | None = None):
        from recagent.agent.explain import Evidence

        self.ds, self.encoder = dataset, encoder
        if item_embeddings is None and encoder is not None:
            item_embeddings = encoder.embed_texts([dataset.catalog.describe(i) for i in range(dataset.n_items)])
        self.emb = item_embeddings
        self.weights = {**self.DEFAULT_WEIGHTS, **(weights or {})}
        self.like_threshold = like_threshold
        self.evidence = Evidence(dataset, like_threshold)
        counts = np.bincount(dataset.encoded()["iidx"].to_numpy(), minlength=dataset.n_items).astype(np.float64)
        self.popularity = np.log1p(counts) / max(1e-9, np.log1p(counts.max()))
        self._n = np.maximum(self.evidence.liked_count, 1).astype(np.float64)

    @classmethod
    def from_config(cls, cfg: Any, dataset, encoder=None) -> "SimpleRanker":
        """Text encoder from ``models.text_encoder``; item embeddings cached in the data set's
        run folder (``runs.layout(...).cache``), keyed by the catalog's texts and the encoder name."""
        if encoder is None:
            from recagent.retrieval.encoders import TextEncoder

            encoder = TextEncoder.from_config(cfg)
        texts = [dataset.catalog.describe(i) for i in range(dataset.n_items)]
        digest = hashlib.sha256(("\n".join(texts) + encoder.name).encode()).hexdigest()[:16]
        from recagent.runs import layout

        path = layout(cfg, dataset).cache / f"text-emb-{digest}.npy"
        emb = None
        if path.is_file():
            emb = np.load(path)
            if emb.shape != (dataset.n_items, encoder.dim):
                emb = None
        if emb is None:
            log.info("embedding %d item texts with %s (cached in %s)", len(texts), encoder.name, path)
            emb = encoder.embed_texts(texts)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, emb)
        return cls(dataset, encoder=encoder, item_embeddings=emb, like_threshold=cfg.agent.like_threshold)

    def liked_rows(self, state: SessionState) -> tuple[list[int], list[int]]:
        """(history likes of a known user, likes named in this conversation) as catalog rows."""
        h = user_history(self.ds, state, self.like_threshold)
        return h.liked_in_log[-100:], h.liked[len(h.liked_in_log):]

    def channel_scores(self, state: SessionState, query_text: str) -> dict[str, np.ndarray]:
        """Each channel's weighted score over every catalog row (what ``rank`` sums; the UI's
        "why this?" shows them per item)."""
        n = self.ds.n_items
        hist, session = self.liked_rows(state)
        parts: dict[str, np.ndarray] = {"popular": self.popularity}
        if self.encoder is not None and self.emb is not None and query_text.strip():
            q = self.encoder.embed_texts([query_text])[0]
            parts["query"] = np.clip(self.emb @ q, 0, None)
        liked = hist + session * 3  # what the user says in this conversation outweighs old history
        if liked and self.emb is not None:
            centroid = self.emb[liked].mean(axis=0)
            centroid /= max(1e-9, float(np.linalg.norm(centroid)))
            parts["profile"] = np.clip(self.emb @ centroid, 0, None)
        if liked:
            co = np.zeros(n)
            for row in liked:
                co += self.evidence.co_counts(row) / np.sqrt(self._n[row] * self._n)
            parts["neighbours"] = co / max(1e-9, co.max())
        return {c: self.weights.get(c, 0.0) * v for c, v in parts.items()}

    def rank(self, state: SessionState, query_text: str, k: int, exclude: set[int],
             constraints: Constraints) -> list[Candidate]:
        dislikes = [self.ds.item_index[i] for i in state.dislikes if i in self.ds.item_index]
        weighted = self.channel_scores(state, query_text)
        total = np.sum(list(weighted.values()), axis=0)
        if dislikes and self.emb is not None:
            total = total - 0.5 * np.clip(self.emb @ self.emb[dislikes].T, 0, None).max(axis=1)
        ok = allowed(self.ds.catalog, constraints, exclude)
        if not ok.any():
            return []
        total = np.where(ok, total, -np.inf)
        top = np.argsort(-total, kind="stable")[:k]
        names = list(weighted)
        stack = np.stack([weighted[c] for c in names])
        return [Candidate(int(i), float(total[i]), names[int(np.argmax(stack[:, i]))], channel_parts(weighted, int(i)))
                for i in top if np.isfinite(total[i])]


def channel_parts(parts: dict[str, np.ndarray], row: int) -> dict[str, float]:
    """One catalog row's share of each channel (rounded for display)."""
    return {name: round(float(v[row]), 4) for name, v in parts.items()}
