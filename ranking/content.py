"""Content-only recommender and the cached item embeddings it (and the fusion ranker) uses.

Item text = ``Catalog.describe(i)`` (title, year, genres, free text), embedded once with the
configured text encoder and cached as ``.npy`` keyed by encoder name + catalog hash, so a
second run (or the fusion ranker) never re-embeds.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from recagent.ranking.base import History, Recommender

log = logging.getLogger("recagent.ranking")


def catalog_hash(texts: list[str]) -> str:
    """A short content hash of the item texts (changes when any text or the order changes)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def item_text_embeddings(catalog: Any, encoder: Any, cache_dir: str | Path | None = None,
                         progress: bool = False) -> np.ndarray:
    """L2-normalised text embeddings of every catalog item, ``(n_items, dim)``, cached.

    Args:
        catalog: a ``recagent.data.Catalog``.
        encoder: an ``Encoder`` (``name``, ``dim``, ``embed_texts``).
        cache_dir: folder for ``<encoder>-<hash>.npy``; ``None`` disables caching.
        progress: show a progress bar while embedding.
    """
    texts = [catalog.describe(i) for i in range(len(catalog))]
    path = None
    if cache_dir is not None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.name)
        path = Path(cache_dir) / f"{safe}-{catalog_hash(texts)}.npy"
        if path.is_file():
            emb = np.load(path)
            if emb.ndim == 2 and emb.shape[0] == len(texts):
                return emb
    emb = np.asarray(encoder.embed_texts(texts, progress=progress), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        tmp.replace(path)
    return emb


def centroids(history: History, users: np.ndarray, item_vecs: np.ndarray, recent: int = 0) -> np.ndarray:
    """Mean (L2-normalised) item vector of each user's history; zeros for empty histories.

    Args:
        history: user histories.
        users: user indices.
        item_vecs: ``(n_items, d)`` item vectors.
        recent: when > 0, only the most recent ``recent`` items of each sequence count.
    """
    out = np.zeros((len(users), item_vecs.shape[1]), np.float32)
    for r, u in enumerate(np.atleast_1d(users)):
        seq = history.sequences[u]
        if recent:
            seq = seq[-recent:]
        if len(seq):
            out[r] = item_vecs[seq].mean(0)
    n = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(n, 1e-12)


class ContentKNN(Recommender):
    """Content-only: cosine similarity between the centroid of a user's history embeddings and
    each item's text embedding (no collaborative signal at all).

    Args:
        recent: use only the last ``recent`` history items (0 = all; tuned on validation).
    """

    name = "content"

    def __init__(self, recent: int = 0, **kw: Any):
        super().__init__(recent=recent, **kw)
        self.emb: np.ndarray | None = None

    def set_embeddings(self, emb: np.ndarray) -> "ContentKNN":
        """Give the item embeddings (from ``item_text_embeddings``) before ``fit``."""
        self.emb = np.asarray(emb, dtype=np.float32)
        return self

    def _fit(self, train: History, valid: Any, **kw: Any) -> None:
        if self.emb is None:
            raise ValueError("ContentKNN needs item embeddings: call set_embeddings(item_text_embeddings(...)) first")

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        hist = history or self._require_fit()
        return centroids(hist, np.atleast_1d(users), self.emb, self.params["recent"]) @ self.emb.T

    def _state(self) -> dict:
        return {"emb": self.emb}

    def _load_state(self, state: dict, directory: Path) -> None:
        self.emb = state["emb"]
