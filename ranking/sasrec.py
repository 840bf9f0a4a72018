"""SASRec (Kang & McAuley 2018), small and CPU-friendly: causal self-attention over the last
``max_len`` items, trained by default with full softmax cross-entropy over all items at every
position (gSASRec's gBCE over sampled negatives is the option for big catalogs), early stopping
on validation NDCG@10."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recagent.ranking.base import History, Recommender, valid_ndcg
from recagent.ranking.early_stopping import EarlyStopping


class SASRec(Recommender):
    """Self-attentive sequential recommender.

    Args:
        dim: hidden size.
        layers: transformer blocks.
        heads: attention heads.
        max_len: history window (most recent items).
        dropout: dropout in embeddings and blocks.
        lr: Adam learning rate.
        epochs: maximum epochs.
        patience: epochs without validation NDCG@10 gain before stopping.
        batch_size: sequences per step.
        seed: torch / numpy seed.
        loss: "ce" = full softmax over all items at every position (eSASRec-style whole-catalogue
            loss); "gbce" = gSASRec's generalised BCE over ``negatives`` uniform negatives with
            calibration ``gbce_t`` (Petrov & Macdonald 2023) and a learned logit bias, cheaper per
            step on big catalogs (on ML-100K B it matches "ce" within noise).
        negatives: sampled negatives per position for "gbce" (one draw per training window).
        gbce_t: gBCE calibration (0 = plain BCE, 1 = fully calibrated; the paper uses 0.75).
        block: "pre_ln" = PyTorch's pre-norm transformer layer (the validated default); "ligr" =
            eSASRec's LiGR layer (Tikhonovich et al. 2025): pre-norm, sigmoid-gated residuals
            around attention and a SwiGLU feed-forward (with ``loss="ce"`` this is eSASRec with
            the whole-catalogue softmax in place of its sampled softmax).
        pad_mask: hide padding from attention, which makes outputs independent of padding, so
            batches are trimmed to their longest window and grouped by length (max_len 200 then
            costs 1.5x the CPU of max_len 50 per epoch instead of ~4x). Off by default: the
            validated ML-100K setting (max_len 50) was trained without it.
    """

    name = "sasrec"
    #: tried on validation by the training home; each value trains a model (minutes on CPU), so
    #: the grid is empty (the config's values). Recipes tried on ML-100K Protocol B, each trained
    #: to early stopping (patience 5), valid / test NDCG@10: the default (max_len 50, pre_ln,
    #: whole-catalogue softmax, lr 3e-3; best epoch 22 of 27, fit 113 s) 0.1183 / 0.1071; max_len 200
    #: (pad_mask, best epoch 19 of 24) 0.1068 / 0.1034; eSASRec's LiGR layers (block="ligr", full
    #: softmax in place of its sampled one) 0.1094 / 0.0984 at lr 3e-3 (best epoch 6) and
    #: 0.1109 / 0.0928 at lr 1e-3 (best epoch 12); gSASRec's gBCE (256 negatives, t 0.75; best
    #: epoch 20 of 25, fit 74 s) 0.1176 / 0.1088; plain BCE on the same negatives (gbce_t 0; best
    #: epoch 28 of 33, fit 101 s) 0.1181 / 0.1051 (fit times at nice 19 on the shared 2-core
    #: machine, load 1.3-1.7). Before the loss had its logit bias (see ``_GBCE``), gBCE scored
    #: 0.0351 / 0.0449 and plain BCE 0.0352, popularity level (Pop 0.0447). Validation keeps the
    #: default (gBCE is 0.0007 below it, within noise; it is the cheaper loss on big catalogs).
    param_grid: ClassVar[dict[str, list]] = {}

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 lr: float = 1e-3, epochs: int = 60, patience: int = 5, batch_size: int = 128, seed: int = 2020,
                 loss: str = "ce", negatives: int = 256, gbce_t: float = 0.75, pad_mask: bool = False,
                 block: str = "pre_ln", **kw: Any):
        from recagent.errors import ConfigError

        if loss not in ("ce", "gbce"):
            raise ConfigError(f"sasrec loss={loss!r}: use 'ce' (full softmax) or 'gbce' (sampled negatives).")
        if block not in ("pre_ln", "ligr"):
            raise ConfigError(f"sasrec block={block!r}: use 'pre_ln' (transformer layer) or 'ligr' (eSASRec's gated layer).")
        super().__init__(dim=dim, layers=layers, heads=heads, max_len=max_len, dropout=dropout, lr=lr, epochs=epochs,
                         patience=patience, batch_size=batch_size, seed=seed, loss=loss, negatives=negatives,
                         gbce_t=gbce_t, pad_mask=pad_mask, block=block, **kw)
        self.net = None

    def _build(self, n_items: int):
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        return _Net(n_items, p["dim"], p["layers"], p["heads"], p["max_len"], p["dropout"], bool(p.get("pad_mask", False)),
                    p.get("block", "pre_ln"))

    def _fit(self, train: History, valid: Any, items: np.ndarray | None = None, log=None, **kw: Any) -> None:
        import torch

        p = self.params
        rng = np.random.default_rng(p["seed"])
        self.net = self._build(train.n_items)
        inp, tgt = _windows(train.sequences, p["max_len"])
        loss_fn = _loss(p, train.n_items, rng)
        opt = torch.optim.Adam([*self.net.parameters(), *loss_fn.parameters()], lr=p["lr"])
        stop, t0 = EarlyStopping(p["patience"], module=self.net), time.time()
        lengths = (inp > 0).sum(1)
        for ep in range(1, p["epochs"] + 1):
            self.net.train()
            for b in _batches(lengths, p["batch_size"], rng, bool(p.get("pad_mask", False))):
                Lb = max(int(lengths[b].max()), 1) if p.get("pad_mask", False) else p["max_len"]
                x, y = torch.from_numpy(inp[b][:, -Lb:]), torch.from_numpy(tgt[b][:, -Lb:])
                loss = loss_fn(self.net(x), self.net.item.weight, y)   # hidden (B, L, d), targets (B, L)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if valid is None:
                continue
            nd = valid_ndcg(self, valid, items=items, history=train)
            if log:
                log(f"sasrec epoch {ep}: loss {loss.item():.3f} valid ndcg@10 {nd:.4f} ({time.time() - t0:.0f} s)")
            if stop.update(nd, ep):
                break
        stop.restore(self.info)
        self.info["fit_seconds"] = round(time.time() - t0, 1)

    def user_vectors(self, sequences: list) -> np.ndarray:
        """Final hidden state for each item sequence (empty sequences give zeros)."""
        import torch

        L = self.params["max_len"]
        x = np.zeros((len(sequences), L), np.int64)
        for r, seq in enumerate(sequences):
            seq = np.asarray(seq)[-L:]
            if len(seq):
                x[r, L - len(seq):] = seq + 1
        if self.params.get("pad_mask", False):   # outputs do not depend on padding: trim it
            x = x[:, -max(int((x > 0).sum(1).max(initial=0)), 1):]
        self.net.eval()
        with torch.inference_mode():
            h = self.net(torch.from_numpy(x))[:, -1].numpy()
        h[(x > 0).sum(1) == 0] = 0.0
        return h

    def score(self, users: np.ndarray, history: History | None = None) -> np.ndarray:
        hist = history or self._require_fit()
        seqs = [hist.sequences[u] for u in np.atleast_1d(users)]
        return self.score_sequences(seqs)

    def score_sequences(self, sequences: list) -> np.ndarray:
        """Scores of every item after each given history (item-index sequences)."""
        out = []
        for s in range(0, len(sequences), 512):
            h = self.user_vectors(sequences[s:s + 512])
            out.append(h @ self.net.item.weight[1:].detach().numpy().T)
        return np.concatenate(out) if out else np.zeros((0, self.net.item.num_embeddings - 1), np.float32)

    def save(self, directory):
        import torch

        d = super().save(directory)
        torch.save(self.net.state_dict(), Path(d) / "net.pt")
        return d

    def _load_state(self, state: dict, directory: Path) -> None:
        import torch

        import json

        saved = json.loads((Path(directory) / "model.json").read_text(encoding="utf-8")).get("params", {})
        self.params.setdefault("pad_mask", False)
        if "pad_mask" not in saved:        # saved before the option existed: attention saw padding
            self.params["pad_mask"] = False
        self.net = self._build(self.train_.n_items)
        self.net.load_state_dict(torch.load(Path(directory) / "net.pt", weights_only=True))


def _batches(lengths: np.ndarray, size: int, rng: np.random.Generator, bucket: bool) -> list:
    """Index batches of one epoch: random when not ``bucket``; otherwise windows of similar
    length go together (random order within a length, batches shuffled) so that trimmed
    batches carry little padding (most ML-100K users have far fewer than 200 items)."""
    if not bucket:
        perm = rng.permutation(len(lengths))
        return [perm[s:s + size] for s in range(0, len(perm), size)]
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[s:s + size] for s in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _windows(sequences: list, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded (input, next-item target) windows of length ``max_len``; long sequences are
    cut into several windows (stride ``max_len``) so every training transition is used once."""
    xs, ys = [], []
    for seq in sequences:
        seq = np.asarray(seq) + 1
        if len(seq) < 2:
            continue
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            w = seq[start:end]
            x, y = np.zeros(max_len, np.int64), np.zeros(max_len, np.int64)
            x[max_len - len(w) + 1:] = w[:-1]
            y[max_len - len(w) + 1:] = w[1:]
            xs.append(x)
            ys.append(y)
            end = start + 1
    return np.stack(xs), np.stack(ys)


def _loss(p: dict, n_items: int, rng: np.random.Generator):
    """The training loss, a torch module ``f(hidden (B, L, d), item table (n_items+1, d),
    targets (B, L) in 0..n_items, 0 = padding)`` whose parameters train with the net's."""
    from torch import nn
    import torch.nn.functional as F

    if p.get("loss", "ce") == "ce":
        class CE(nn.Module):
            def forward(self, h, table, y):
                keep = y > 0
                return F.cross_entropy(h[keep] @ table[1:].T, y[keep] - 1)

        return CE()
    return _GBCE(n_items, int(p.get("negatives", 256)), float(p.get("gbce_t", 0.75)), rng)


def _GBCE(n_items: int, negatives: int, t: float, rng: np.random.Generator):
    """gSASRec's generalised BCE (Petrov & Macdonald 2023, eq. 8-10): per position,
    ``-beta * log sigmoid(s_pos) - sum_j log(1 - sigmoid(s_neg_j))`` over ``negatives`` items drawn
    uniformly (the same draw for every position of one window; a draw equal to the position's
    target is dropped), mean over the real positions.

    Every logit gets one learned scalar ``bias``, started at the log prior odds of one item among
    ``n_items``. It does not change any ranking (scores stay ``h @ table``), but without it the
    logits start at 0 (256 negatives at sigmoid 0.5 push down 256x harder than the positive pulls
    up), and the net can only lower them through a direction shared by the item table and the
    layer-normed hidden state, whose length LayerNorm fixes: that direction used up the hidden
    state and the scores collapsed to popularity (ML-100K B after 8 epochs: valid NDCG@10 0.035,
    per-user score std 0.54, correlation of the mean score with item popularity 0.95; with the
    bias 0.088, 1.86, 0.78, and 0.118 at early stopping).
    """
    import torch
    from torch import nn
    import torch.nn.functional as F

    k = int(min(negatives, max(n_items - 1, 1)))
    alpha = k / max(n_items - 1, 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)   # gSASRec eq. 8: beta = 1 at t = 0

    class GBCE(nn.Module):
        def __init__(self):
            super().__init__()
            self.k, self.beta = k, beta
            self.bias = nn.Parameter(torch.tensor(-float(np.log(max(n_items - 1, 1)))))

        def forward(self, h, table, y):
            keep = y > 0
            neg = torch.from_numpy(rng.integers(1, n_items + 1, (len(y), k)))          # (B, k)
            pos_logit = (h[keep] * table[y[keep]]).sum(-1) + self.bias
            neg_logit = torch.einsum("bld,bkd->blk", h, table[neg]) + self.bias
            neg_logit = neg_logit.masked_fill(neg[:, None, :] == y[:, :, None], -1e9)[keep]  # a drawn target is no negative
            return -(beta * F.logsigmoid(pos_logit)).mean() - F.logsigmoid(-neg_logit).sum(-1).mean()

    return GBCE()


def _Net(n_items: int, dim: int, layers: int, heads: int, max_len: int, dropout: float, pad_mask: bool = True,
         block: str = "pre_ln"):
    import torch
    from torch import nn

    class LiGR(nn.Module):
        """eSASRec's layer: x + sigmoid(g(x)) * attn(LN(x)), then x + sigmoid(g'(x)) * SwiGLU(LN(x))."""

        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.gate1, self.gate2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.w_in, self.w_gate = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
            self.w_out = nn.Linear(dim, dim, bias=False)
            self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

        def forward(self, x, mask):
            q = self.ln1(x)
            a = self.attn(q, q, q, attn_mask=mask, need_weights=False)[0]
            x = x + torch.sigmoid(self.gate1(x)) * self.drop1(a)
            z = self.ln2(x)
            f = self.w_out(nn.functional.silu(self.w_in(z)) * self.w_gate(z))
            return x + torch.sigmoid(self.gate2(x)) * self.drop2(f)

    class LiGRStack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(LiGR() for _ in range(layers))

        def forward(self, h, mask):
            for layer in self.layers:
                h = layer(h, mask)
            return h

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
            self.pos = nn.Embedding(max_len, dim)
            if block == "ligr":
                self.blocks = LiGRStack()
            else:
                layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True,
                                                   norm_first=True, activation="gelu")
                self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.drop = nn.Dropout(dropout)
            nn.init.normal_(self.item.weight, std=0.02)
            nn.init.normal_(self.pos.weight, std=0.02)
            self.register_buffer("causal", torch.triu(torch.full((max_len, max_len), float("-inf")), 1))

        def forward(self, x):
            """``x``: (B, Lb) left-padded item ids, Lb <= max_len (the last column is the latest
            item, at position max_len - 1, so trimmed batches keep their positions)."""
            Lb = x.shape[1]
            real = x > 0
            h = self.item(x) * (dim ** 0.5) + self.pos.weight[max_len - Lb:][None]
            h = self.drop(h) * real.unsqueeze(-1)
            mask = self.causal[-Lb:, -Lb:]
            if pad_mask:
                # no query attends to padding (a padding query attends to itself only, so no
                # row is fully masked): outputs do not depend on how much padding a batch has
                eye = torch.eye(Lb, dtype=torch.bool)
                hide = (~real)[:, None, :] & ~eye[None]
                mask = (mask[None] + torch.zeros(hide.shape).masked_fill(hide, float("-inf")))
                mask = mask.repeat_interleave(heads, dim=0)
            h = self.blocks(h, mask)
            return self.norm(h)

    return Net()
