"""FusionRanker: gated fusion of every available channel (``ranking/features.py``), trained for
next-item prediction with early stopping on held-out users, and never served when a simpler
choice did better on validation. The torch nets and their trainer are in ``fusion_net.py``; the
training home (``ranking/train.py``) fits the channels and calls ``fit``.

Leakage scheme (why the numbers are honest):
  1. The channel models (EASE, ItemKNN, BPR, RP3beta, GF-CF, user-KNN, DLAE, MultiVAE, SASRec)
     are fit on the *train* split only (their hyper-parameters / epochs chosen on valid, as for
     the baselines).
  2. The fusion net's targets are the *valid* split's items, with features computed from
     train-only models and train-only histories, so no target it learns from was seen by any
     channel. More targets come from refit folds (``ranking/train.py``: ``refit_folds``): the
     channels are refit on part of train and the rest of train is the target, with the same
     hyper-parameters, so again no target is in the data its features come from. Those rows
     only train; early stopping and selection use the valid users alone.
  3. The valid users are cut into ``members`` folds; member k stops early on fold k, so every
     valid user has an out-of-fold score. On those scores the net is compared with each single
     channel and with "best channel + a x net" blends; the best is served (``served``), and
     eval says which (``info["selection"]``).
  4. At test time the same channel models (not refit) score with the train+valid history folded
     in (item-item, sequential and content channels read the history; BPR keeps its factors);
     ``eval`` gives every baseline the same train+valid history, so the comparison is fair.
  The test split is never touched before the final scoring.

Model: per channel two normalised views (z-score and rank gain, per user over its candidates),
times its mask. score(u, i) = sum_f w_f(u) x_f(u, i) + MLP([x(u, i), m(u, i)]), where the gate
w(u) = w0 + G(context(u)) depends on history length and channel coverage, so e.g. short
histories can lean on popularity and text while long ones lean on CF. The ensemble averages
the members' scores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recagent.ranking.base import History, Recommender
from recagent.ranking.features import CF_CHANNELS, CHANNELS, FeatureSources, build_features, context, normalize
from recagent.ranking.fusion_net import ChannelSlice, build_net, ensemble, forward, take, train_net


class FusionRanker(Recommender):
    """Gated fusion ranker (see the module docstring for the training scheme).

    Args:
        channels: channel names to use (default: every channel its sources provide).
        hidden: hidden units of the gate and of the pointwise MLP.
        mlp: add the pointwise MLP on top of the gated linear part.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        epochs: maximum epochs over the training users.
        patience: epochs without held-out NDCG@10 gain before stopping.
        holdout: share of the valid users held out for early stopping when ``members`` is 1.
        batch_users: users per step.
        recency_days: window of the recency channel.
        extra_weights: fixed weights of chat-only features (``query``: z-scored query
            similarity, ``constraint``: 0/1 match), used by ``rank``.
        members: nets in the ensemble; the valid users are cut into ``members`` folds and
            member k stops on fold k, so every valid user has an out-of-fold score (used for
            ``select``) and the average uses all users.
        repeats: times the fold cut is redrawn (another seed), each giving ``members`` nets; a
            user's out-of-fold score is the mean over repeats (less variance from the small
            early-stopping folds; the ensemble then has ``members x repeats`` nets).
        loss: "softmax" over all candidates or "topn" (softmax over the top ``topn``
            candidates plus the targets), see ``fusion_net``.
        topn: candidates kept by the "topn" loss.
        refit_folds: extra target sets from channels refit on part of train (the training
            home's ``refit_features``); 0 = valid targets only (measured better on ML-100K A).
        train_top: train (and stop early) on each user's shortlist of this many candidates by
            the channels' summed rank gains (``fusion_net.shortlist``; 0 = all items): several
            times faster, and the top-10 is decided among them anyway.
        select: choose on validation (out-of-fold) between the net, each single channel and
            "best channel + a x net" blends, and serve the winner (``info["selection"]``).
        seed: seed of the user folds and of torch.
    """

    name = "fusion"

    def __init__(self, channels: list | None = None, hidden: int = 16, mlp: bool = True, lr: float = 5e-3,
                 weight_decay: float = 1e-5, epochs: int = 100, patience: int = 8, holdout: float = 0.2,
                 batch_users: int = 64, recency_days: float = 14.0, extra_weights: dict | None = None,
                 members: int = 3, repeats: int = 1, loss: str = "softmax", topn: int = 50, train_top: int = 256, refit_folds: int = 0,
                 select: bool = True, seed: int = 2020, **kw: Any):
        super().__init__(channels=None if channels is None else list(channels), hidden=hidden, mlp=mlp, lr=lr,
                         weight_decay=weight_decay, epochs=epochs, patience=patience, holdout=holdout,
                         batch_users=batch_users, recency_days=recency_days,
                         extra_weights=dict(extra_weights or {"query": 1.0, "constraint": 3.0}), members=members,
                         repeats=repeats, loss=loss, topn=topn, train_top=train_top, refit_folds=refit_folds, select=select, seed=seed,
                         **kw)
        from recagent.errors import ConfigError

        unknown = [c for c in (channels or []) if c not in CHANNELS]
        if unknown:
            raise ConfigError(f"fusion: unknown channel(s) {unknown}; channels are: {', '.join(CHANNELS)}.")
        if loss not in ("softmax", "topn"):
            raise ConfigError(f"fusion: loss={loss!r}; use 'softmax' or 'topn'.")
        self.net = None
        self.src: FeatureSources | None = None
        self.items_: np.ndarray | None = None
        self.served: dict = {"kind": "net"}

    @property
    def slice(self) -> ChannelSlice:
        return ChannelSlice.of(CHANNELS, self.params["channels"])

    # -- training ---------------------------------------------------------------------
    def fit(self, data: Any, valid: Any = None, **kw: Any) -> "FusionRanker":
        """Fit on a ``Split`` (train + valid), see ``_fit`` for the keyword arguments."""
        return super().fit(data, valid, **kw)

    def _fit(self, train: History, valid: Any, base_models: dict | None = None, text_emb: np.ndarray | None = None,
             image_emb: np.ndarray | None = None, has_image: np.ndarray | None = None, items: np.ndarray | None = None,
             features: tuple | None = None, src: FeatureSources | None = None, n_select: int | None = None,
             log=None, **kw: Any) -> None:
        """Args:
            base_models: fitted channel models by name (fit on train only!); missing CF
                channels are fit here with defaults.
            text_emb / image_emb / has_image: item embeddings (see ``FeatureSources``).
            items: the item universe to rank over (default: all items).
            features: precomputed ``(X, M, ctx, cand, targets)`` from ``training_features``
                (the training home reuses them across ablations).
            src: ready feature sources (shared by ablation variants).
            n_select: the first ``n_select`` rows of ``features`` are the validation users
                (early stopping and selection); later rows only train (see ``ranking/train.py``'s
                K-fold rows). Default: all rows.
        """
        if valid is None and features is None:
            raise ValueError("FusionRanker.fit needs validation interactions (a Split or valid=DataFrame)")
        t0 = time.time()
        self.items_ = np.arange(train.n_items) if items is None else np.asarray(items)
        self.src = src or self.src or make_sources(train, self.params, base_models, text_emb, image_emb, has_image, log)
        if self.params["channels"] is None:
            self.params["channels"] = [c for c in CHANNELS if self.src.available(c)]
        if features is None:
            features = self.training_features(train, valid)
        n = len(features[0])
        n_sel = n if n_select is None else int(n_select)
        folds = self._folds(n_sel)
        sl = self.slice
        nets, infos = [], []
        oof = np.zeros((n_sel, features[0].shape[1]), np.float32)
        has_oof = np.zeros(n_sel, np.int64)
        extra = np.arange(n_sel, n)
        for k, val_rows in enumerate(folds):
            tr_rows = np.concatenate([np.setdiff1d(np.arange(n_sel), val_rows), extra])
            net, info = train_net(features, sl, tr_rows, val_rows, {**self.params, "seed": self.params["seed"] + k}, log)
            nets.append(net)
            infos.append(info)
            if len(val_rows):
                oof[val_rows] += forward(net, features, sl, val_rows)
                has_oof[val_rows] += 1
        self.net = ensemble(nets)
        self.info.update({"members": len(nets), "best_epochs": [i.get("best_epoch") for i in infos],
                          "holdout_ndcg10": round(float(np.mean([i.get("holdout_ndcg10", np.nan) for i in infos])), 4),
                          "training_users": int(n), "selection_users": int(n_sel)})
        if self.params["select"] and has_oof.any():
            rows = np.flatnonzero(has_oof)
            self.served, table = select_served(features, rows, oof[rows] / has_oof[rows, None], sl)
            self.info["selection"] = {"served": describe(self.served), "valid_ndcg@10": table}
            self.info["served_valid_ndcg10"] = table[label(self.served)]
            if log:
                log(f"fusion: serving {describe(self.served)} (out-of-fold valid ndcg@10: {table})")
        self.info["fit_seconds"] = round(time.time() - t0, 1)

    def _folds(self, n: int) -> list[np.ndarray]:
        """Held-out rows of each member: per repeat, ``members`` disjoint folds (or one
        ``holdout`` share), each repeat cut with its own seed."""
        k = max(1, int(self.params["members"]))
        if n < 2:
            return [np.zeros(0, np.int64)]
        out = []
        for r in range(self.n_repeats):
            perm = np.random.default_rng(self.params["seed"] + 1000 * r).permutation(n)
            if k == 1:
                out.append(np.sort(perm[:max(1, int(round(self.params["holdout"] * n)))]))
            else:
                out.extend(np.sort(perm[j::k]) for j in range(k))
        return out

    @property
    def n_repeats(self) -> int:
        return max(1, int(self.params.get("repeats", 1) or 1))

    def training_features(self, train: History, valid: Any, src: FeatureSources | None = None,
                          items: np.ndarray | None = None) -> tuple:
        """``(X, M, ctx, cand, targets)`` over ALL channels for the valid users (features from
        train-only histories and models; targets = their valid items).

        Args:
            src: the feature sources (default: this model's).
            items: the item universe (default: this model's).
        """
        return training_features(src or self.src, train, valid, self.items_ if items is None else items)

    # -- scoring ----------------------------------------------------------------------
    def score_features(self, feats: tuple, rows: np.ndarray | None = None) -> np.ndarray:
        """The served score ``(rows, I)`` from full features ``(X, M, ctx, cand, ...)``: the net,
        a single channel or a blend (``self.served``); eval scores precomputed features with it."""
        return served_scores(self.served, self.net, feats, self.slice, rows)

    def score(self, users: np.ndarray, history: History | None = None, model_users: np.ndarray | None = None,
              profile_text: np.ndarray | None = None, profile_clip: np.ndarray | None = None) -> np.ndarray:
        """Scores over all items (items outside the fitted universe get -inf).

        Args:
            users: row indices into ``history``.
            history: histories to fold in (default: training data).
            model_users: the users' indices in the channel models (default: ``users``).
        """
        hist = history or self._require_fit()
        users = np.atleast_1d(np.asarray(users))
        out = np.full((len(users), hist.n_items), -np.inf, np.float32)
        for s in range(0, len(users), 256):
            ub = users[s:s + 256]
            mu = ub if model_users is None else np.asarray(model_users)[s:s + 256]
            out[s:s + 256][:, self.items_] = self._logits(ub, hist, mu, self.items_,
                                                          _rows(profile_text, s), _rows(profile_clip, s))
        return out

    def _logits(self, users: np.ndarray, history: History, model_users: np.ndarray, items: np.ndarray,
                profile_text: np.ndarray | None = None, profile_clip: np.ndarray | None = None) -> np.ndarray:
        """Served scores ``(len(users), len(items))`` of ``items``; everything a call needs is an
        argument, so concurrent calls on one shared model never see each other's state."""
        feats = features_all(self.src, users, history, model_users, items, profile_text, profile_clip)
        return self.score_features(feats)

    def rank(self, history_items: list, candidates: np.ndarray, user: int | None = None,
             profile_text: np.ndarray | None = None, profile_clip: np.ndarray | None = None,
             extra_features: dict | None = None) -> np.ndarray:
        """Scores for a candidate list (chat): higher is better, same order as ``candidates``.

        Args:
            history_items: the user's item indices in time order (may be empty: a new user).
            candidates: item indices to score (from retrieval + CF top-N).
            user: the user's index in the fitted models, or None for a new user (BPR masked).
            profile_text: optional ``(d,)`` text embedding of the profile text.
            profile_clip: optional CLIP text embedding of the profile text (cross-modal channel).
            extra_features: optional ``{"query": sims, "constraint": 0/1}`` arrays aligned with
                ``candidates``; added with the fixed ``extra_weights`` (query z-scored first).
        """
        candidates = np.asarray(candidates, dtype=np.int64)
        if len(candidates) == 0:
            return np.zeros(0, np.float32)
        hist = self._one_user_history(history_items, user)
        s = self._logits(np.array([0]), hist, np.array([-1 if user is None else user]), candidates,
                         None if profile_text is None else np.asarray(profile_text)[None],
                         None if profile_clip is None else np.asarray(profile_clip)[None])[0]
        s = np.nan_to_num(s, neginf=-1e9).astype(np.float32)
        w = self.params["extra_weights"]
        for name, vals in (extra_features or {}).items():
            v = np.asarray(vals, np.float32)
            if name == "query" and len(v) > 1:
                v = (v - v.mean()) / max(float(v.std()), 1e-6)
            s = s + float(w.get(name, 1.0)) * v
        return s

    def contributions(self, history_items: list, user: int | None = None) -> dict[str, np.ndarray]:
        """Each channel's additive share of the served score over every item (chat's "why this?").

        For the net, a channel's share is the sum over its two views (z-score, rank) of feature x
        per-user gate weight, averaged over the ensemble's members; ``interaction`` is the MLP's
        part (absent for a linear fusion). When a single channel is served it holds the whole
        score; a blend adds the net's shares, scaled as in the blend. Items outside the fitted
        universe get 0.

        Args:
            history_items: the user's item indices in time order (may be empty).
            user: the user's index in the fitted models, or None for a new user.
        """
        hist = self._one_user_history(history_items, user)
        items = self.items_
        feats = features_all(self.src, np.array([0]), hist, np.array([-1 if user is None else user]), items)
        parts = net_contributions(self.net, feats, self.slice)
        kind = self.served["kind"]
        if kind != "net":
            ch = self.served["channel"]
            own = channel_score(feats, ch)[0]
            if kind == "channel":
                parts = {ch: own}
            else:
                a = float(self.served["weight"]) / float(_user_sd(forward(self.net, feats, self.slice), feats[3])[0])
                parts = {k: v * a for k, v in parts.items()}
                parts[ch] = parts.get(ch, 0.0) + own
        out = {}
        for name, row in parts.items():
            full = np.zeros(hist.n_items, np.float32)
            full[items] = row
            out[name] = full
        return out

    def _one_user_history(self, history_items: list, user: int | None) -> History:
        """A one-row `History` (row 0) of ``history_items`` in time order, timed like the
        fitted user ``user`` (or the training data's end for a new user)."""
        import scipy.sparse as sp

        n_items = self._require_fit().n_items
        items = np.asarray(history_items, np.int64)
        n = len(items)
        frame = pd.DataFrame({"uidx": np.zeros(n, np.int64), "iidx": items, "timestamp": np.arange(n, dtype=float),
                              "row": np.arange(n)})
        m = sp.csr_matrix((np.ones(n, np.float32), (np.zeros(n, np.int64), items)), shape=(1, n_items))
        m.data[:] = 1.0   # built directly (History.from_frame sorts a frame: ~10 ms a chat turn at scale)
        lt = self.train_.last_time
        end = float(np.nanmax(lt)) if np.isfinite(lt).any() else np.nan     # the training data's end
        hist = History(m, [items], np.array([end]), frame)
        if user is not None and len(self.train_.sequences[user]):
            hist.last_time[0] = self.train_.last_time[user]
        return hist

    def gate_weights(self) -> dict[str, float]:
        """Mean learned weight of each feature (``<channel>:z`` / ``<channel>:rank``) at the base
        of the gate (interpretation aid; the per-user gate adds to these)."""
        base = np.mean([m.base.detach().numpy() for m in self.net.members], axis=0)
        ch = self.params["channels"]
        names = [f"{c}:z" for c in ch] + [f"{c}:rank" for c in ch]
        return {n: round(float(v), 4) for n, v in zip(names, base)}

    # -- persistence ------------------------------------------------------------------
    def save(self, directory):
        import torch

        self.info["served"] = self.served
        d = super().save(directory)
        torch.save(self.net.state_dict(), Path(d) / "net.pt")
        for name, m in self.src.models.items():
            m.save(Path(d) / "channels" / name)
        return d

    def _state(self) -> dict:
        st = {"items": self.items_}
        for k in ("text_emb", "image_emb", "has_image"):
            v = getattr(self.src, k)
            if v is not None:
                st[k] = v
        return st

    def _load_state(self, state: dict, directory: Path) -> None:
        import torch

        self.items_ = state["items"]
        self.served = dict(self.info.get("served") or {"kind": "net"})
        models = {}
        for sub in sorted((Path(directory) / "channels").glob("*")):
            models[sub.name] = Recommender.load(sub)
        self.src = FeatureSources(models, state.get("text_emb"), state.get("image_emb"), state.get("has_image"),
                                  self.train_.frame, self.params["recency_days"], self.train_.n_items)
        if self.params["channels"] is None:  # pragma: no cover - saved models always name them
            self.params["channels"] = [c for c in CHANNELS if self.src.available(c)]
        self.net = ensemble([build_net(len(self.params["channels"]), self.params["hidden"], self.params["mlp"])
                             for _ in range(max(1, int(self.params["members"])) * self.n_repeats)])
        self.net.load_state_dict(torch.load(Path(directory) / "net.pt", weights_only=True))


# -- what is served: the net, one channel, or a blend (chosen on validation) ------------------------
def channel_score(feats: tuple, channel: str, rows: np.ndarray | None = None) -> np.ndarray:
    """One channel alone as a score: its z view, ties broken by its rank view (the same order as
    its raw values over the candidates)."""
    c = CHANNELS.index(channel)
    X = feats[0] if rows is None else feats[0][rows]
    return X[:, :, c] + 1e-3 * X[:, :, len(CHANNELS) + c]


def _user_sd(s: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per-user standard deviation of ``s`` over the candidates (the blend's scale of the net;
    a per-user shift would not change any ranking, so none is applied)."""
    w = cand.astype(np.float32)
    n = np.maximum(w.sum(1), 1.0)
    mu = (s * w).sum(1) / n
    return np.maximum(np.sqrt((((s - mu[:, None]) * w) ** 2).sum(1) / n), 1e-6)


def served_scores(served: dict, net: Any, feats: tuple, sl: ChannelSlice, rows: np.ndarray | None = None
                  ) -> np.ndarray:
    """Scores of the served model (``{"kind": "net" | "channel" | "blend", "channel", "weight"}``)."""
    kind = served.get("kind", "net")
    if kind == "channel":
        return channel_score(feats, served["channel"], rows)
    s = forward(net, feats, sl, rows)
    if kind == "blend":
        cand = feats[3] if rows is None else feats[3][rows]
        s = channel_score(feats, served["channel"], rows) + float(served["weight"]) * s / _user_sd(s, cand)[:, None]
    return s


def describe(served: dict) -> str:
    """Human words for what is served ("the fused net", "ease alone", "ease + 0.5 x net")."""
    kind = served.get("kind", "net")
    if kind == "channel":
        return f"{served['channel']} alone (it beat the fused net on validation)"
    if kind == "blend":
        return f"{served['channel']} + {served['weight']} x fused net (beat the net alone on validation)"
    return "the fused net"


BLEND_WEIGHTS = (0.25, 0.5, 1.0, 2.0)


def label(served: dict) -> str:
    """The key of ``served`` in the selection table."""
    kind = served.get("kind", "net")
    return "net" if kind == "net" else served["channel"] if kind == "channel" else \
        f"{served['channel']} + {served['weight']} x net"


def select_served(feats: tuple, rows: np.ndarray, oof: np.ndarray, sl: ChannelSlice) -> tuple[dict, dict]:
    """Choose what to serve on validation rows ``rows``: the net (its out-of-fold scores
    ``oof``), each single channel of ``sl``, and ``best channel + a x net`` (per-user z-scored
    net) for ``a`` in ``BLEND_WEIGHTS``. The net wins ties. Returns ``(served, {label: ndcg})``."""
    from recagent.eval.metrics import ndcg_per_row

    cand, tgt = feats[3][rows], feats[4][rows]
    nd = lambda s: float(ndcg_per_row(np.where(cand, s, -np.inf), tgt, 10).mean())  # noqa: E731
    table = {"net": nd(oof)}
    M = feats[1][rows]
    for ch in sl.channels:
        c = CHANNELS.index(ch)
        if (M[:, :, c] * cand).any():
            table[ch] = nd(channel_score(feats, ch, rows))
    choices = {"net": {"kind": "net"}}
    singles = [k for k in table if k != "net"]
    if singles:
        best = max(singles, key=lambda k: table[k])
        choices[best] = {"kind": "channel", "channel": best}
        zn = oof / _user_sd(oof, cand)[:, None]
        base = channel_score(feats, best, rows)
        for a in BLEND_WEIGHTS:
            choice = {"kind": "blend", "channel": best, "weight": a}
            table[label(choice)] = nd(base + a * zn)
            choices[label(choice)] = choice
    win = max(choices, key=lambda k: (table[k], k == "net"))
    return choices[win], {k: round(v, 4) for k, v in table.items()}


def net_contributions(net: Any, feats: tuple, sl: ChannelSlice) -> dict[str, np.ndarray]:
    """Per-channel additive shares of the net's score for row 0 (see ``contributions``)."""
    import torch

    x, m, c = take(feats, sl, np.array([0]))
    names = list(sl.channels)
    parts = np.zeros((len(names), x.shape[1]), np.float32)
    inter = np.zeros(x.shape[1], np.float32)
    members = list(net.members)
    with torch.inference_mode():
        for member in members:
            per_feature = (x * member.weights(c)[:, None, :])[0].numpy()          # (items, 2C)
            parts += (per_feature[:, :len(names)] + per_feature[:, len(names):]).T / len(members)
            if member.mlp is not None:
                inter += member.mlp(torch.cat([x, m], dim=-1))[0, :, 0].numpy() / len(members)
    out = dict(zip(names, parts))
    if any(member.mlp is not None for member in members):
        out["interaction"] = inter
    return out


def training_features(src: FeatureSources, train: History, valid: Any, items: np.ndarray) -> tuple:
    """``(X, M, ctx, cand, targets)`` of every channel for the users of ``valid`` (features
    from ``train`` histories and ``src``'s models; targets = their ``valid`` items)."""
    from recagent.eval.metrics import relevance

    items = np.asarray(items)
    v = valid if isinstance(valid, pd.DataFrame) else valid.frame
    users = np.unique(v["uidx"].to_numpy())
    targets = relevance(v, train.n_users, train.n_items)[users][:, items].toarray() > 0
    X, M, ctx, cand = features_all(src, users, train, users, items)
    return X, M, ctx, cand, targets & cand


def features_all(src: FeatureSources, users: np.ndarray, history: History, model_users: np.ndarray | None,
                 items: np.ndarray, profile_text=None, profile_clip=None) -> tuple:
    """``(X, M, ctx, cand)`` of every channel for ``users`` over the columns ``items``."""
    F, M = build_features(src, list(CHANNELS), users, history, items, model_users, profile_text, profile_clip)
    cand = ~(history.for_users(users)[:, items].toarray() > 0)
    X = normalize(F, M, cand)
    hist_len = np.array([len(history.sequences[u]) for u in users])
    return X, M, context(M, cand, hist_len), cand


def _rows(a: np.ndarray | None, start: int, n: int = 256) -> np.ndarray | None:
    return None if a is None else np.asarray(a)[start:start + n]


def make_sources(train: History, params: dict, base_models: dict | None, text_emb, image_emb, has_image, log=None
                 ) -> FeatureSources:
    """Feature sources from fitted channel models; CF channels that are wanted but missing are
    fit on ``train`` with defaults (EASE, ItemKNN and BPR only: SASRec must be given)."""
    from recagent.ranking.baselines import EASE, ItemKNN
    from recagent.ranking.bpr import BPRMF

    models = dict(base_models or {})
    defaults = {"ease": EASE, "itemknn": ItemKNN, "bpr": BPRMF}
    for ch in params["channels"] or list(defaults):
        if ch in CF_CHANNELS and ch not in models and ch in defaults:
            if log:
                log(f"fusion: fitting channel {ch} with defaults")
            models[ch] = defaults[ch]().fit(train)
    models = {k: v for k, v in models.items() if k in CF_CHANNELS}
    if image_emb is not None and has_image is None:
        has_image = np.linalg.norm(image_emb, axis=1) > 0
    return FeatureSources(models, text_emb, image_emb, has_image, train.frame, params["recency_days"], train.n_items)
