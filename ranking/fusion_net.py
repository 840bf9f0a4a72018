"""The fusion ranker's torch side: the gated net, the ensemble, the one forward helper that owns
the channel slicing, and the trainer (``FusionRanker`` in ``fusion.py`` uses these; so does eval).

Feature tensors (``ranking/features.py``) always hold *every* channel of ``CHANNELS``:
``X (U, I, 2C)`` (z-score views, then rank-gain views), ``M (U, I, C)`` masks and
``ctx (U, 1 + C)`` (log history length, then per-channel coverage). A net uses a subset of the
channels; :class:`ChannelSlice` says which columns that is, and :func:`take` is the only place
that cuts them out.

Losses (``params["loss"]``):
  softmax   cross-entropy of each target under a softmax over the user's candidates, averaged
            over the user's targets (the sampled-softmax family, here over all candidates);
  topn      the same softmax restricted to the user's top-``topn`` candidates under the current
            net plus the targets (a listwise loss that spends its gradient where the top-10 is
            decided, as in ListNet/LambdaRank truncations).
Early stopping uses :func:`ndcg_torch`, a torch copy of ``eval.metrics``' NDCG@k (binary gains,
ideal DCG of min(|targets|, k) hits) kept in torch so a check costs no copies;
``tests/test_ranking_fusion.py`` checks it against ``eval.metrics.batch_metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from recagent.ranking.early_stopping import EarlyStopping


@dataclass(frozen=True)
class ChannelSlice:
    """The columns of the full feature tensors that a net over ``channels`` reads."""

    channels: tuple
    features: tuple       # columns of X: the z views, then the rank views
    masks: tuple          # columns of M
    context: tuple        # columns of ctx: history length, then the channels' coverage

    @classmethod
    def of(cls, all_channels: Sequence[str], channels: Sequence[str]) -> "ChannelSlice":
        C = len(all_channels)
        idx = [list(all_channels).index(c) for c in channels]
        return cls(tuple(channels), tuple(idx + [C + c for c in idx]), tuple(idx), tuple([0] + [1 + c for c in idx]))


def take(feats: tuple, sl: ChannelSlice, rows: np.ndarray | None = None) -> tuple:
    """``(x, m, ctx)`` torch tensors of ``sl``'s channels (and ``rows`` of the users, if given)
    from full ``(X, M, ctx, ...)`` features."""
    import torch

    X, M, ctx = feats[0], feats[1], feats[2]
    if rows is not None:
        X, M, ctx = X[rows], M[rows], ctx[rows]
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return T(X[:, :, list(sl.features)]), T(M[:, :, list(sl.masks)]), T(ctx[:, list(sl.context)])


def forward(net: Any, feats: tuple, sl: ChannelSlice, rows: np.ndarray | None = None) -> np.ndarray:
    """Scores ``(len(rows), I)`` of ``net`` on full features (inference; any thread)."""
    import torch

    x, m, c = take(feats, sl, rows)
    with torch.inference_mode():
        return net(x, m, c).numpy()


def build_net(n_channels: int, hidden: int, mlp: bool):
    """score(u, i) = sum_f w_f(u) x_f(u, i) [+ MLP([x(u, i), m(u, i)])], w(u) = base + G(ctx(u))."""
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

        def weights(self, ctx):
            return self.base + self.gate(ctx)                    # (B, 2C): per-user channel weights

        def forward(self, x, m, ctx):
            s = (x * self.weights(ctx)[:, None, :]).sum(-1)
            if self.mlp is not None:
                s = s + self.mlp(torch.cat([x, m], dim=-1)).squeeze(-1)
            return s

    return FusionNet()


def ensemble(nets: list):
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


def ndcg_torch(logits, cand, tgt, k: int = 10) -> "Any":
    """Per-user NDCG@k (torch) of ``logits`` with non-candidates masked; binary targets."""
    import torch

    logits = logits.masked_fill(~cand, float("-inf"))
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    hits = tgt.gather(1, top).float()
    disc = 1.0 / torch.log2(torch.arange(2, top.shape[1] + 2, dtype=torch.float32))
    dcg = (hits * disc).sum(1)
    n_rel = tgt.float().sum(1).clamp(max=top.shape[1]).long()
    ideal = torch.cat([torch.zeros(1), disc.cumsum(0)])[n_rel]
    return torch.where(n_rel > 0, dcg / ideal.clamp(min=1e-9), torch.zeros_like(dcg))


def shortlist(feats: tuple, sl: ChannelSlice, rows: np.ndarray, n: int, chunk: int = 256) -> tuple:
    """``(X, M, ctx, cand, targets)`` of ``rows`` restricted to each user's ``n`` best candidates
    by the summed rank gains of ``sl``'s channels (training only: the net is pointwise and the
    features were normalised over all candidates, so scores on the shortlist equal the full
    ones; targets outside it are dropped). ``n`` of 0 (or >= the item count) keeps everything."""
    X, M, ctx, cand, tgt = feats
    rows = np.asarray(rows)
    if not n or n >= X.shape[1]:
        return X[rows], M[rows], ctx[rows], cand[rows], tgt[rows]
    C = M.shape[2]
    gain_cols = [C + c for c in sl.masks]
    parts = []
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        g = np.where(cand[r], X[r][:, :, gain_cols].sum(-1), -np.inf)
        idx = np.sort(np.argpartition(-g, n - 1, axis=1)[:, :n], axis=1)
        parts.append((np.take_along_axis(X[r], idx[:, :, None], 1), np.take_along_axis(M[r], idx[:, :, None], 1),
                      ctx[r], np.take_along_axis(cand[r], idx, 1), np.take_along_axis(tgt[r], idx, 1)))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(5))


def train_net(feats: tuple, sl: ChannelSlice, train_rows: np.ndarray, val_rows: np.ndarray, params: dict,
              log: Callable[[str], None] | None = None):
    """Train one gated net on full features ``(X, M, ctx, cand, targets)``; early stopping on
    NDCG@10 of ``val_rows``.

    Args:
        feats: full features (every channel) and bool ``cand`` / ``targets`` ``(U, I)``.
        sl: the channels this net reads.
        train_rows / val_rows: user rows to train on / to stop on.
        params: ``hidden``, ``mlp``, ``lr``, ``weight_decay``, ``epochs``, ``patience``,
            ``batch_users``, ``seed``, optional ``loss`` ("softmax" | "topn"), ``topn`` and
            ``train_top`` (train and stop on each user's shortlist of that many candidates, see
            :func:`shortlist`; 0 = all).
    Returns:
        ``(net, info)`` with the best net (by held-out NDCG@10) and training facts.
    """
    import torch

    torch.manual_seed(params["seed"])
    rng = np.random.default_rng(params["seed"])
    net = build_net(len(sl.channels), params["hidden"], params["mlp"])
    opt = torch.optim.Adam(net.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    top = int(params.get("train_top", 0) or 0)
    fv = shortlist(feats, sl, val_rows, top)
    feats = shortlist(feats, sl, train_rows, top)
    cand, targets = feats[3], feats[4]
    train_rows = np.flatnonzero(targets.any(1))
    val_rows = np.flatnonzero(fv[4].any(1))
    xv, mv, cv = take(fv, sl, val_rows) if len(val_rows) else (None, None, None)
    cand_v, tgt_v = torch.from_numpy(fv[3][val_rows]), torch.from_numpy(fv[4][val_rows])
    loss_kind, topn = params.get("loss", "softmax"), int(params.get("topn", 50))
    stop, ep, loss = EarlyStopping(params["patience"], min_delta=1e-5, module=net), 0, None
    for ep in range(1, params["epochs"] + 1):
        net.train()
        order = train_rows[rng.permutation(len(train_rows))]
        for s in range(0, len(order), params["batch_users"]):
            b = np.sort(order[s:s + params["batch_users"]])
            x, m, c = take(feats, sl, b)
            cb, t = torch.from_numpy(cand[b]), torch.from_numpy(targets[b]).float()
            logits = net(x, m, c).masked_fill(~cb, -1e9)
            if loss_kind == "topn":
                keep = torch.zeros_like(cb)
                keep.scatter_(1, logits.detach().topk(min(topn, logits.shape[1]), dim=1).indices, True)
                logits = logits.masked_fill(~(keep | (t > 0)), -1e9)
            logp = torch.log_softmax(logits, dim=1)
            loss = -((logp * t).sum(1) / t.sum(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not len(val_rows):
            continue
        net.eval()
        with torch.inference_mode():
            nd = float(ndcg_torch(net(xv, mv, cv), cand_v, tgt_v).mean())
        if log and ep % 5 == 0:
            log(f"fusion epoch {ep}: loss {loss.item():.4f} held-out ndcg@10 {nd:.4f}")
        if stop.update(nd, ep):
            break
    info = {"epochs_run": ep}
    if stop.restore():
        info.update(best_epoch=stop.best_step, holdout_ndcg10=round(stop.best, 4))
    net.eval()
    return net, info
