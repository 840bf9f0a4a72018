"""FusionRanker: gated fusion of every available channel (``ranking/features.py``), trained for
next-item prediction (softmax over all candidates) with early stopping on held-out users.

Leakage scheme (why the numbers are honest):
  1. The channel models (EASE, ItemKNN, BPR, SASRec) are fit on the *train* split only (their
     hyper-parameters / epochs chosen on valid, as for the baselines).
  2. The fusion network is trained on the *valid* split's targets, with features computed from
     train-only models and train-only histories, so no target it learns from was seen by any
     channel. Valid users are split 80/20 (seeded); the 20 % decide early stopping.
  3. At test time the same channel models (not refit) score with the train+valid history folded
     in (item-item, sequential and content channels read the history; BPR keeps its factors);
     ``eval`` gives every baseline the same train+valid history, so the comparison is fair.
  The test split is never touched before the final scoring.

Model: per channel two normalised views (z-score and rank gain, per user over its candidates),
times its mask. score(u, i) = sum_f w_f(u) x_f(u, i) + MLP([x(u, i), m(u, i)]), where the gate
w(u) = w0 + G(context(u)) depends on history length and channel coverage, so e.g. short
histories can lean on popularity and text while long ones lean on CF.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recagent.ranking.base import History, Recommender
from recagent.ranking.features import CF_CHANNELS, CHANNELS, FeatureSources, build_features, context, normalize

DEFAULT_CHANNELS = ["ease", "itemknn", "bpr", "sasrec", "text_hist", "text_profile", "image_hist", "xmodal_profile",
                    "pop", "recency"]


class FusionRanker(Recommender):
    """Gated fusion ranker (see the module docstring for the training scheme).

    Args:
        channels: channel names to use (default: all of ``CHANNELS``; unavailable ones stay masked).
        hidden: hidden units of the gate and of the pointwise MLP.
        mlp: add the pointwise MLP on top of the gated linear part.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        epochs: maximum epochs over the training users.
        patience: epochs without held-out NDCG@10 gain before stopping.
        holdout: share of the valid users kept for early stopping.
        batch_users: users per step.
        recency_days: window of the recency channel.
        extra_weights: fixed weights of chat-only features (``query``: z-scored query
            similarity, ``constraint``: 0/1 match), used by ``rank``.
        members: nets in the ensemble; member k holds out a different random 20 % of the valid
            users (seed + k) and the scores are averaged (lower variance, all users used).
        seed: seed of the user split and of torch.
    """

    name = "fusion"

    def __init__(self, channels: list | None = None, hidden: int = 16, mlp: bool = True, lr: float = 5e-3,
                 weight_decay: float = 1e-5, epochs: int = 100, patience: int = 8, holdout: float = 0.2,
                 batch_users: int = 64, recency_days: float = 14.0, extra_weights: dict | None = None,
                 members: int = 3, seed: int = 2020, **kw: Any):
        super().__init__(channels=list(channels or DEFAULT_CHANNELS), hidden=hidden, mlp=mlp, lr=lr,
                         weight_decay=weight_decay, epochs=epochs, patience=patience, holdout=holdout,
                         batch_users=batch_users, recency_days=recency_days,
                         extra_weights=dict(extra_weights or {"query": 1.0, "constraint": 3.0}), members=members,
                         seed=seed, **kw)
        unknown = [c for c in self.params["channels"] if c not in CHANNELS]
        if unknown:
            from recagent.errors import ConfigError

            raise ConfigError(f"fusion: unknown channel(s) {unknown}; channels are: {', '.join(CHANNELS)}.")
        self.net = None
        self.src: FeatureSources | None = None
        self.items_: np.ndarray | None = None

    # -- training ---------------------------------------------------------------------
    def fit(self, data: Any, valid: Any = None, **kw: Any) -> "FusionRanker":
        """Fit on a ``Split`` (train + valid), see ``_fit`` for the keyword arguments."""
        return super().fit(data, valid, **kw)

    def _fit(self, train: History, valid: Any, base_models: dict | None = None, text_emb: np.ndarray | None = None,
             image_emb: np.ndarray | None = None, has_image: np.ndarray | None = None, items: np.ndarray | None = None,
             features: tuple | None = None, src: FeatureSources | None = None, log=None, **kw: Any) -> None:
        """Args:
            base_models: fitted channel models by name (fit on train only!); missing CF
                channels are fit here with defaults.
            text_emb / image_emb / has_image: item embeddings (see ``FeatureSources``).
            items: the item universe to rank over (default: all items).
            features: precomputed ``(X, M, ctx, cand, targets)`` from ``training_features``
                (eval reuses them across ablations).
            src: ready feature sources (shared by ablation variants).
        """
        if valid is None:
            raise ValueError("FusionRanker.fit needs validation interactions (a Split or valid=DataFrame)")
        t0 = time.time()
        self.items_ = np.arange(train.n_items) if items is None else np.asarray(items)
        self.src = src or self.src or make_sources(train, self.params, base_models, text_emb, image_emb, has_image, log)
        if features is None:
            features = self.training_features(train, valid)
        X, M, ctx, cand, targets = features
        sel_f, sel_c = self._select(len(M[0, 0]) if M.ndim == 3 else 0)
        nets, infos = [], []
        for k in range(max(1, int(self.params["members"]))):
            rng = np.random.default_rng(self.params["seed"] + k)
            n = len(X)
            perm = rng.permutation(n)
            n_val = max(1, int(round(self.params["holdout"] * n))) if n > 1 else 0
            val_rows, tr_rows = perm[:n_val], perm[n_val:] if n > 1 else perm
            net, info = train_fusion(X[:, :, sel_f], M[:, :, sel_c], ctx[:, [0] + [1 + c for c in sel_c]], cand, targets,
                                     tr_rows, val_rows, {**self.params, "seed": self.params["seed"] + k}, log)
            nets.append(net)
            infos.append(info)
        self.net = _ensemble(nets)
        info = {"members": len(nets), "best_epochs": [i.get("best_epoch") for i in infos],
                "holdout_ndcg10": round(float(np.mean([i.get("holdout_ndcg10", np.nan) for i in infos])), 4)}
        self.info.update(info, fit_seconds=round(time.time() - t0, 1))

    def training_features(self, train: History, valid: Any, src: FeatureSources | None = None,
                          items: np.ndarray | None = None) -> tuple:
        """``(X, M, ctx, cand, targets)`` over ALL channels for the valid users (features from
        train-only histories and models; targets = their valid items).

        Args:
            src: the feature sources (default: this model's).
            items: the item universe (default: this model's).
        """
        src = src or self.src
        items = self.items_ if items is None else np.asarray(items)
        v = valid if isinstance(valid, pd.DataFrame) else valid.frame
        users = np.unique(v["uidx"].to_numpy())
        col = np.full(train.n_items, -1)
        col[items] = np.arange(len(items))
        targets = np.zeros((len(users), len(items)), bool)
        row = np.searchsorted(users, v["uidx"].to_numpy())
        c = col[v["iidx"].to_numpy()]
        targets[row[c >= 0], c[c >= 0]] = True
        X, M, ctx, cand = features_all(src, users, train, users, items)
        return X, M, ctx, cand, targets & cand

    def _features_all(self, users, history: History, model_users, items: np.ndarray, profile_text=None,
                      profile_clip=None):
        """Features over ``items`` (the columns); reads the model, never changes it (thread-safe)."""
        return features_all(self.src, users, history, model_users, items, profile_text, profile_clip)

    def _select(self, _n: int) -> tuple[list, list]:
        chans = [CHANNELS.index(c) for c in self.params["channels"]]
        C = len(CHANNELS)
        return chans + [C + c for c in chans], chans

    # -- scoring ----------------------------------------------------------------------
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
        """Fused scores ``(len(users), len(items))`` of ``items``; everything a call needs is an
        argument, so concurrent calls on one shared model never see each other's state."""
        import torch

        X, M, ctx, cand = self._features_all(users, history, model_users, items, profile_text, profile_clip)
        sf, sc = self._select(0)
        with torch.inference_mode():
            return self.net(torch.from_numpy(np.ascontiguousarray(X[:, :, sf])),
                            torch.from_numpy(np.ascontiguousarray(M[:, :, sc])),
                            torch.from_numpy(np.ascontiguousarray(ctx[:, [0] + [1 + c for c in sc]]))).numpy()

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
        """Each channel's additive share of the fused score over every item (chat's "why this?").

        A channel's share is the sum over its two views (z-score, rank) of feature x per-user
        gate weight, averaged over the ensemble's members; ``interaction`` is the MLP's part
        (absent for a linear fusion). Items outside the fitted universe get 0.

        Args:
            history_items: the user's item indices in time order (may be empty).
            user: the user's index in the fitted models, or None for a new user.
        """
        import torch

        hist = self._one_user_history(history_items, user)
        items = self.items_
        X, M, ctx, _ = self._features_all(np.array([0]), hist, np.array([-1 if user is None else user]), items)
        sf, sc = self._select(0)
        x = torch.from_numpy(np.ascontiguousarray(X[:, :, sf]))
        m = torch.from_numpy(np.ascontiguousarray(M[:, :, sc]))
        c = torch.from_numpy(np.ascontiguousarray(ctx[:, [0] + [1 + i for i in sc]]))
        names = list(self.params["channels"])
        parts = np.zeros((len(names), x.shape[1]), np.float32)
        inter = np.zeros(x.shape[1], np.float32)
        members = list(self.net.members)
        with torch.inference_mode():
            for net in members:
                w = net.base + net.gate(c)
                per_feature = (x * w[:, None, :])[0].numpy()          # (items, 2C)
                parts += (per_feature[:, :len(names)] + per_feature[:, len(names):]).T / len(members)
                if net.mlp is not None:
                    inter += net.mlp(torch.cat([x, m], dim=-1))[0, :, 0].numpy() / len(members)
        out = {}
        for name, row in zip(names + ["interaction"], list(parts) + [inter]):
            full = np.zeros(hist.n_items, np.float32)
            full[items] = row
            out[name] = full
        if not any(net.mlp is not None for net in members):
            del out["interaction"]
        return out

    def _one_user_history(self, history_items: list, user: int | None) -> History:
        """A one-row `History` (row 0) of ``history_items`` in time order, timed like the
        fitted user ``user`` (or the training data's end for a new user)."""
        n_items = self._require_fit().n_items
        hist = History.from_frame(pd.DataFrame({"uidx": np.zeros(len(history_items), np.int64),
                                                "iidx": np.asarray(history_items, np.int64),
                                                "timestamp": np.arange(len(history_items), dtype=float)}), 1, n_items)
        hist.last_time[:] = self.train_.frame["timestamp"].max() if len(self.train_.frame) else np.nan
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
        models = {}
        for sub in sorted((Path(directory) / "channels").glob("*")):
            models[sub.name] = Recommender.load(sub)
        self.src = FeatureSources(models, state.get("text_emb"), state.get("image_emb"), state.get("has_image"),
                                  self.train_.frame, self.params["recency_days"], self.train_.n_items)
        _, sc = self._select(0)
        self.net = _ensemble([_net(len(sc), self.params["hidden"], self.params["mlp"])
                              for _ in range(max(1, int(self.params["members"])))])
        self.net.load_state_dict(torch.load(Path(directory) / "net.pt", weights_only=True))


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
    for ch in params["channels"]:
        if ch in CF_CHANNELS and ch not in models and ch in defaults:
            if log:
                log(f"fusion: fitting channel {ch} with defaults")
            models[ch] = defaults[ch]().fit(train)
    models = {k: v for k, v in models.items() if k in CF_CHANNELS}
    if image_emb is not None and has_image is None:
        has_image = np.linalg.norm(image_emb, axis=1) > 0
    return FeatureSources(models, text_emb, image_emb, has_image, train.frame, params["recency_days"], train.n_items)


def train_fusion(X: np.ndarray, M: np.ndarray, ctx: np.ndarray, cand: np.ndarray, targets: np.ndarray,
                 train_rows: np.ndarray, val_rows: np.ndarray, params: dict, log=None):
    """Train the gated fusion net on precomputed features (softmax over each user's candidates,
    averaged over their target items); early stopping on NDCG@10 of ``val_rows``.

    Args:
        X: ``(U, I, 2C)`` normalised features.  M: ``(U, I, C)`` masks.  ctx: ``(U, 1 + C)``.
        cand: bool ``(U, I)`` rankable candidates.  targets: bool ``(U, I)`` next items.
        train_rows / val_rows: user rows to train on / to stop on.
        params: ``hidden``, ``mlp``, ``lr``, ``weight_decay``, ``epochs``, ``patience``,
            ``batch_users``, ``seed``.
    Returns:
        ``(net, info)`` with the best net (by held-out NDCG@10) and training facts.
    """
    import torch

    torch.manual_seed(params["seed"])
    rng = np.random.default_rng(params["seed"])
    C = M.shape[2]
    net = _net(C, params["hidden"], params["mlp"])
    opt = torch.optim.Adam(net.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    Xt, Mt, Ct, cand_t, tgt_t = T(X), T(M), T(ctx), T(cand), T(targets.astype(np.float32))
    has_t = targets[train_rows].any(1)
    train_rows = np.asarray(train_rows)[has_t]
    val_rows = np.asarray(val_rows)[targets[val_rows].any(1)] if len(val_rows) else val_rows
    best, best_state, bad, ep = -1.0, None, 0, 0
    for ep in range(1, params["epochs"] + 1):
        net.train()
        order = train_rows[rng.permutation(len(train_rows))]
        for s in range(0, len(order), params["batch_users"]):
            b = torch.from_numpy(order[s:s + params["batch_users"]])
            logits = net(Xt[b], Mt[b], Ct[b]).masked_fill(~cand_t[b], -1e9)
            logp = torch.log_softmax(logits, dim=1)
            t = tgt_t[b]
            loss = -((logp * t).sum(1) / t.sum(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not len(val_rows):
            continue
        nd = _ndcg10(net, Xt, Mt, Ct, cand_t, tgt_t, torch.from_numpy(val_rows))
        if log and ep % 5 == 0:
            log(f"fusion epoch {ep}: loss {loss.item():.4f} held-out ndcg@10 {nd:.4f}")
        if nd > best + 1e-5:
            best, bad = nd, 0
            best_state = ({k: v.clone() for k, v in net.state_dict().items()}, ep)
        else:
            bad += 1
            if bad >= params["patience"]:
                break
    info = {"epochs_run": ep}
    if best_state is not None:
        net.load_state_dict(best_state[0])
        info.update(best_epoch=best_state[1], holdout_ndcg10=round(best, 4))
    net.eval()
    return net, info


def _ndcg10(net, X, M, C, cand, tgt, rows) -> float:
    import torch

    with torch.inference_mode():
        logits = net(X[rows], M[rows], C[rows]).masked_fill(~cand[rows], -1e9)
        top = logits.topk(min(10, logits.shape[1]), dim=1).indices
        hits = tgt[rows].gather(1, top)
        disc = 1.0 / torch.log2(torch.arange(2, top.shape[1] + 2, dtype=torch.float32))
        dcg = (hits * disc).sum(1)
        n_rel = tgt[rows].sum(1).clamp(max=top.shape[1]).long()
        ideal = torch.cat([torch.zeros(1), disc.cumsum(0)])[n_rel]
        return float((dcg / ideal.clamp(min=1e-9)).mean())


def _net(n_channels: int, hidden: int, mlp: bool):
    import torch
    from torch import nn

    class FusionNet(nn.Module):
        def __init__(self):
            super().__init__()
            nf = 2 * n_channels
            self.base = nn.Parameter(torch.zeros(nf))
            self.gate = nn.Sequential(nn.Linear(1 + n_channels, hidden), nn.Tanh(), nn.Linear(hidden, nf))
            nn.init.zeros_(self.gate[2].weight)
            nn.init.zeros_(self.gate[2].bias)
            self.mlp = nn.Sequential(nn.Linear(nf + n_channels, hidden), nn.ReLU(), nn.Linear(hidden, 1)) if mlp else None
            if self.mlp is not None:
                nn.init.zeros_(self.mlp[2].weight)

        def forward(self, x, m, ctx):
            w = self.base + self.gate(ctx)                          # (B, 2C): per-user channel weights
            s = (x * w[:, None, :]).sum(-1)
            if self.mlp is not None:
                s = s + self.mlp(torch.cat([x, m], dim=-1)).squeeze(-1)
            return s

    return FusionNet()


def _ensemble(nets: list):
    """Average of the members' scores (a module, so one state_dict saves them all)."""
    import torch
    from torch import nn

    class Ensemble(nn.Module):
        def __init__(self):
            super().__init__()
            self.members = nn.ModuleList(nets)

        def forward(self, x, m, ctx):
            return torch.stack([net(x, m, ctx) for net in self.members]).mean(0)

    return Ensemble().eval()
