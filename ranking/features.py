"""Per (user, candidate) features of the fusion ranker, one *channel* per signal, each with a
mask that is 0 where the signal does not exist (no image, no profile text, unknown user).

Channels (``CHANNELS``; a ranker uses the subset it is given):
  ease, itemknn, bpr  CF scores of fitted baselines (user history folded in for item-item models)
  rp3beta, gfcf, userknn, slim, dlae, multivae
                      the same for the other collaborative models (history folded in)
  sasrec              sequential score after the user's time-ordered history
  text_hist           cosine(history centroid of text embeddings, item text embedding)
  text_profile        cosine(profile text embedding, item text embedding), when a profile is given
  image_hist          cosine(history centroid of image embeddings, item image), when images exist
  xmodal_profile      cosine(CLIP text embedding of the profile, item image), when both exist
  pop                 log(1 + training users of the item)
  recency             log(1 + interactions with the item in the ``recency_days`` before the
                      user's latest interaction): what is popular *at the user's time*
Chat adds ``query`` (query text vs item) and ``constraint`` (1 if the item meets the user's
constraints) as extra features with fixed weights (no offline data exists to learn them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recagent.ranking.base import History

#: collaborative channels: a fitted ``Recommender`` each (registry name = channel name); ``bpr``
#: reads the model's own user factors, the others fold the given history in
CF_CHANNELS = ("ease", "itemknn", "bpr", "sasrec", "rp3beta", "gfcf", "userknn", "slim", "dlae", "multivae")
CHANNELS = CF_CHANNELS + ("text_hist", "text_profile", "image_hist", "xmodal_profile", "pop", "recency")


@dataclass
class FeatureSources:
    """Everything the channels are computed from.

    Attributes:
        models: fitted recommenders by channel name (``ease``, ``itemknn``, ``bpr``, ``sasrec``).
        text_emb: ``(n_items, d)`` item text embeddings, or None.
        image_emb: ``(n_items, d')`` item image embeddings (rows of items without image are
            ignored), or None.
        has_image: bool ``(n_items,)``, which rows of ``image_emb`` are real.
        has_text: bool ``(n_items,)``, which rows of ``text_emb`` are real (items without text
            are gated like items without an image: the text channels are masked for them, and
            they do not count in a history's text centroid); None = the rows that are not all zero.
        events: the interactions used for ``pop`` / ``recency`` (columns iidx, timestamp); for
            leakage safety this must be the data the CF models were fit on (or earlier).
        recency_days: window of the recency channel.
    """

    models: dict = field(default_factory=dict)
    text_emb: np.ndarray | None = None
    image_emb: np.ndarray | None = None
    has_image: np.ndarray | None = None
    events: Any = None
    recency_days: float = 14.0
    n_items: int = 0
    has_text: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.text_emb is not None and self.has_text is None:
            self.has_text = np.linalg.norm(self.text_emb, axis=1) > 0  # a zero row: the item has no text
        if self.events is not None and len(self.events):
            ev = self.events.sort_values(["iidx", "timestamp"], kind="stable")
            self._ev_item = ev["iidx"].to_numpy(np.int64)
            self._ev_time = ev["timestamp"].to_numpy(float)
            self._pop = np.bincount(self._ev_item, minlength=self.n_items).astype(np.float32)
        else:
            self._ev_item = self._ev_time = None
            self._pop = None

    def available(self, channel: str) -> bool:
        """Whether the channel can ever be non-masked with these sources."""
        if channel in CF_CHANNELS:
            return channel in self.models
        if channel in ("text_hist", "text_profile"):
            return self.text_emb is not None and self.has_text is not None and bool(self.has_text.any())
        if channel in ("image_hist", "xmodal_profile"):
            return self.image_emb is not None and self.has_image is not None and bool(self.has_image.any())
        return self._pop is not None


def build_features(src: FeatureSources, channels: list[str], users: np.ndarray, history: History,
                   items: np.ndarray, model_users: np.ndarray | None = None,
                   profile_text: np.ndarray | None = None, profile_clip: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Raw channel values and masks, each ``(len(users), len(items), len(channels))`` float32.

    Args:
        src: the feature sources.
        channels: channel names (``CHANNELS`` subset), in output order.
        users: row indices into ``history``.
        history: the users' known interactions (folded into item-item, sequential, content).
        items: candidate item indices (the same columns for every user).
        model_users: the users' indices in the fitted models (for BPR's user factors; -1 for a
            user they never saw), or None
            for users the models never saw (the ``bpr`` channel is then masked).
        profile_text: optional ``(len(users), d)`` text embeddings of profile texts.
        profile_clip: optional ``(len(users), d')`` CLIP text embeddings of profile texts.
    """
    users = np.atleast_1d(np.asarray(users))
    items = np.asarray(items)
    B, I, C = len(users), len(items), len(channels)
    F = np.zeros((B, I, C), np.float32)
    M = np.zeros((B, I, C), np.float32)
    hist_len = np.array([len(history.sequences[u]) for u in users])
    has_hist = (hist_len > 0)[:, None]
    for c, ch in enumerate(channels):
        if not src.available(ch):
            continue
        if ch in CF_CHANNELS:
            if ch == "bpr":
                if model_users is None:
                    continue
                mu = np.asarray(model_users)
                known = mu >= 0                  # -1: a user the models never saw (BPR masked)
                if known.any():
                    vals = src.models[ch].score(mu[known])
                    F[known, :, c] = vals[:, items]
                    M[known, :, c] = 1.0
            else:
                vals = src.models[ch].score(users, history)
                F[:, :, c] = vals[:, items]
                M[:, :, c] = has_hist
        elif ch == "text_hist":
            cen = _masked_centroids(history, users, src.text_emb, src.has_text)
            has = np.linalg.norm(cen, axis=1) > 0  # some history item has text
            F[:, :, c] = cen @ src.text_emb[items].T
            M[:, :, c] = has[:, None] & src.has_text[items][None, :]
        elif ch == "text_profile" and profile_text is not None:
            F[:, :, c] = np.asarray(profile_text, np.float32) @ src.text_emb[items].T
            M[:, :, c] = src.has_text[items][None, :]
        elif ch == "image_hist":
            img = src.image_emb * src.has_image[:, None]
            cen = _masked_centroids(history, users, img, src.has_image)
            has = np.linalg.norm(cen, axis=1) > 0
            F[:, :, c] = cen @ img[items].T
            M[:, :, c] = has[:, None] & src.has_image[items][None, :]
        elif ch == "xmodal_profile" and profile_clip is not None:
            img = src.image_emb * src.has_image[:, None]
            F[:, :, c] = np.asarray(profile_clip, np.float32) @ img[items].T
            M[:, :, c] = src.has_image[items][None, :]
        elif ch == "pop":
            F[:, :, c] = np.log1p(src._pop[items])[None, :]
            M[:, :, c] = 1.0
        elif ch == "recency":
            F[:, :, c] = _recency(src, history.last_time[users], items)
            M[:, :, c] = np.isfinite(history.last_time[users])[:, None]
    F *= M
    return F, M


def normalize(F: np.ndarray, M: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per user and channel, two views of each raw value over that user's candidates:
    a z-score (scale-free value) and a rank gain 1/log2(rank + 1) (robust to heavy tails, as in
    reciprocal-rank fusion). Returns ``(B, I, 2C)``; masked and non-candidate entries are 0.

    Args:
        F: raw values ``(B, I, C)``.
        M: masks ``(B, I, C)``.
        cand: bool ``(B, I)``, the rankable candidates of each user (unseen, in the universe).
    """
    w = M * cand[:, :, None]
    n = np.maximum(w.sum(1, keepdims=True), 1.0)
    mu = (F * w).sum(1, keepdims=True) / n
    sd = np.sqrt((((F - mu) * w) ** 2).sum(1, keepdims=True) / n)
    z = np.clip((F - mu) / np.maximum(sd, 1e-6), -5.0, 10.0) * w
    # ranks among the candidates (masked entries get -inf, so they rank last and get gain 0)
    masked = np.where(w > 0, F, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(F.shape[1])[None, :, None], axis=1)
    gain = (1.0 / np.log2(ranks + 2.0)).astype(np.float32) * w
    return np.concatenate([z, gain], axis=2).astype(np.float32)


def context(M: np.ndarray, cand: np.ndarray, hist_len: np.ndarray) -> np.ndarray:
    """User context for the gate: log history length and each channel's coverage (share of the
    candidates where the channel is present). Shape ``(B, 1 + C)``."""
    n = np.maximum(cand.sum(1, keepdims=True), 1.0)
    cov = (M * cand[:, :, None]).sum(1) / n
    return np.concatenate([np.log1p(np.asarray(hist_len, np.float32))[:, None] / 5.0, cov], axis=1).astype(np.float32)


def _masked_centroids(history: History, users: np.ndarray, vecs: np.ndarray, real: np.ndarray) -> np.ndarray:
    # L2-normalised mean of the history items that have the modality; zeros when none has it
    cen = np.zeros((len(users), vecs.shape[1]), np.float32)
    for r, u in enumerate(users):
        seq = [i for i in history.sequences[u] if real[i]]
        if seq:
            cen[r] = vecs[seq].mean(0)
    return cen / np.maximum(np.linalg.norm(cen, axis=1, keepdims=True), 1e-12)


def _recency(src: FeatureSources, t_user: np.ndarray, items: np.ndarray) -> np.ndarray:
    out = np.zeros((len(t_user), len(items)), np.float32)
    if src._ev_item is None:
        return out
    # one sorted key per event, item * span + time, so that every (user, item) window count is
    # two searchsorted calls over all pairs at once (a loop over items cost ~0.3 s per chat user
    # at 20k items); query times are clipped just outside the events' range, which keeps counts
    key = getattr(src, "_ev_key", None)
    t_lo, t_hi = float(src._ev_time.min()) - 1.0, float(src._ev_time.max()) + 1.0
    span = t_hi - t_lo + 1.0
    if key is None:
        key = src._ev_key = src._ev_item * span + (src._ev_time - t_lo)
    t = np.nan_to_num(np.asarray(t_user, float), nan=-np.inf)
    win = src.recency_days * 86400.0
    base = np.asarray(items, np.int64)[None, :] * span
    hi = base + (np.clip(t, t_lo, t_hi) - t_lo)[:, None]
    lo = base + (np.clip(t - win, t_lo, t_hi) - t_lo)[:, None]
    out[:] = np.searchsorted(key, hi, side="right") - np.searchsorted(key, lo, side="right")
    return np.log1p(out)
