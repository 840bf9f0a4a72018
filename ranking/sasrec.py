"""SASRec (Kang & McAuley 2018), small and CPU-friendly: causal self-attention over the last
``max_len`` items, trained with full softmax cross-entropy over all items at every position
(faster to converge than the paper's sampled BCE), early stopping on validation NDCG@10."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from recagent.ranking.base import History, Recommender, valid_ndcg


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
    """

    name = "sasrec"

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 lr: float = 1e-3, epochs: int = 60, patience: int = 5, batch_size: int = 128, seed: int = 2020, **kw: Any):
        super().__init__(dim=dim, layers=layers, heads=heads, max_len=max_len, dropout=dropout, lr=lr, epochs=epochs,
                         patience=patience, batch_size=batch_size, seed=seed, **kw)
        self.net = None

    def _build(self, n_items: int):
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        return _Net(n_items, p["dim"], p["layers"], p["heads"], p["max_len"], p["dropout"])

    def _fit(self, train: History, valid: Any, items: np.ndarray | None = None, log=None, **kw: Any) -> None:
        import torch

        p = self.params
        rng = np.random.default_rng(p["seed"])
        self.net = self._build(train.n_items)
        opt = torch.optim.Adam(self.net.parameters(), lr=p["lr"])
        inp, tgt = _windows(train.sequences, p["max_len"])
        best, best_state, bad, t0 = -1.0, None, 0, time.time()
        for ep in range(1, p["epochs"] + 1):
            self.net.train()
            perm = rng.permutation(len(inp))
            for s in range(0, len(perm), p["batch_size"]):
                b = perm[s:s + p["batch_size"]]
                x, y = torch.from_numpy(inp[b]), torch.from_numpy(tgt[b])
                h = self.net(x)                                  # (B, L, d)
                keep = y > 0
                logits = h[keep] @ self.net.item.weight[1:].T    # over real items
                loss = torch.nn.functional.cross_entropy(logits, y[keep] - 1)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if valid is None:
                continue
            nd = valid_ndcg(self, valid, items=items, history=train)
            if log:
                log(f"sasrec epoch {ep}: loss {loss.item():.3f} valid ndcg@10 {nd:.4f}")
            if nd > best:
                best, bad = nd, 0
                best_state = ({k: v.clone() for k, v in self.net.state_dict().items()}, ep)
            else:
                bad += 1
                if bad >= p["patience"]:
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state[0])
            self.info.update(best_epoch=best_state[1], valid_ndcg10=best)
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

        self.net = self._build(self.train_.n_items)
        self.net.load_state_dict(torch.load(Path(directory) / "net.pt", weights_only=True))


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


def _Net(n_items: int, dim: int, layers: int, heads: int, max_len: int, dropout: float):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
            self.pos = nn.Embedding(max_len, dim)
            layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True,
                                               norm_first=True, activation="gelu")
            self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.drop = nn.Dropout(dropout)
            nn.init.normal_(self.item.weight, std=0.02)
            nn.init.normal_(self.pos.weight, std=0.02)
            self.register_buffer("causal", torch.triu(torch.full((max_len, max_len), float("-inf")), 1))

        def forward(self, x):
            h = self.item(x) * (dim ** 0.5) + self.pos.weight[None]
            h = self.drop(h) * (x > 0).unsqueeze(-1)
            h = self.blocks(h, mask=self.causal)
            return self.norm(h)

    return Net()
