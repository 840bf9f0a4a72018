"""Encoders: text (sentence-transformers) and, in ``retrieval/clip.py``, CLIP (open_clip).

An encoder needs a ``name``, a ``dim`` and one batch method; the base class does batching,
progress, float32 and L2 normalisation, so real encoders stay short.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """What the index and the ranker need from an encoder."""

    name: str
    dim: int

    def embed_texts(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray: ...

    def embed_images(self, images: Sequence, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """PIL images or paths -> L2-normalised float32; encoders without an image tower raise."""
        ...


class BaseEncoder:
    """Batching, progress and normalisation around one ``_embed_text_batch`` method."""

    name: str = "base"
    dim: int = 0
    batch_size: int = 64
    supports_images: bool = False

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed_image_batch(self, images: list) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{self.name} has no image tower")

    def embed_texts(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), dim)."""
        return self._batched(list(texts), self._embed_text_batch, batch_size, progress, "embedding texts")

    def embed_images(self, images: Sequence, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """``images``: PIL images or paths. L2-normalised float32, shape (len(images), dim)."""
        return self._batched(list(images), self._embed_image_batch, batch_size, progress, "embedding images")

    def _batched(self, items: list, fn, batch_size: int | None, progress: bool, desc: str) -> np.ndarray:
        bs = batch_size or self.batch_size
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        starts: Iterable[int] = range(0, len(items), bs)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, total=(len(items) + bs - 1) // bs, desc=f"{self.name}: {desc}", unit="batch")
        out = [np.asarray(fn(items[s:s + bs]), dtype=np.float32) for s in starts]
        return l2_normalize(np.concatenate(out, axis=0))


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


class TextEncoder(BaseEncoder):
    """A sentence-transformers model (default: the cached all-MiniLM-L6-v2, 384-d).

    Args:
        model: a local folder or hub id (see ``recagent.models.resolve_model``).
        device: torch device string.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64):
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self.model = SentenceTransformer(model, device=None if device == "auto" else device)
        self.name = self.name_for(model)
        getdim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(getdim())
        self.batch_size = batch_size

    @staticmethod
    def name_for(model: str) -> str:
        """The encoder name for a model setting (alias, folder or hub id); caches key on it."""
        return f"st:{str(model).rstrip('/').split('/')[-1]}"

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False)

    @classmethod
    def from_config(cls, cfg) -> "TextEncoder":
        from recagent.models import resolve_model

        return cls(resolve_model(cfg.models.text_encoder, cfg.paths.cache), device=cfg.models.device,
                   batch_size=cfg.retrieval.batch_size)


class HashEncoder(BaseEncoder):
    """A deterministic bag-of-words hashing encoder: no model, for tests and as a fallback.

    Texts sharing words get similar vectors, so retrieval tests have known answers.
    """

    def __init__(self, dim: int = 64, name: str = "hash"):
        self.dim = dim
        self.name = name

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            if not out[i].any():
                out[i, 0] = 1.0
        return out
