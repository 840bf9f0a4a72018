"""SASRec's sampled-negative loss (gSASRec's gBCE): its value against a hand computation, and the
regression it pins: with 256 uniform negatives and no logit bias, the logits started at 0 and the
net collapsed to popularity scores (ML-100K Protocol B valid NDCG@10 0.035, Pop level)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recagent.ranking.base import History
from recagent.ranking.sasrec import SASRec, _loss


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_gbce_value_matches_a_hand_computation():
    """5 items, 3 negatives, t 0.75: alpha = 3/4, beta = 3/4 * (0.75 * (1 - 4/3) + 4/3) = 0.8125;
    one real position (the other is padding); a drawn negative equal to the target is dropped."""
    loss = _loss({"loss": "gbce", "negatives": 3, "gbce_t": 0.75}, 5, np.random.default_rng(7))
    assert loss.beta == pytest.approx(0.8125)
    assert loss.bias.item() == pytest.approx(-math.log(4))        # log prior odds of 1 item in 5
    with torch.no_grad():
        loss.bias.fill_(-0.5)
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0], [0.5, -1.0]])
    h = torch.tensor([[[9.0, 9.0], [0.3, -0.2]]])                # (B 1, L 2, d 2); position 0 is padding
    y = torch.tensor([[0, 2]])
    neg = np.random.default_rng(7).integers(1, 6, (1, 3))[0]     # the draw the loss makes
    hv = np.array([0.3, -0.2])
    want = -0.8125 * _logsig(hv @ table[2].numpy() - 0.5)
    want -= sum(_logsig(-(hv @ table[j].numpy() - 0.5)) for j in neg if j != 2)
    assert loss(h, table, y).item() == pytest.approx(want, rel=1e-5)


def test_gbce_beta_is_one_for_plain_bce_and_alpha_when_fully_calibrated():
    rng = np.random.default_rng(0)
    assert _loss({"loss": "gbce", "negatives": 10, "gbce_t": 0.0}, 101, rng).beta == pytest.approx(1.0)
    assert _loss({"loss": "gbce", "negatives": 10, "gbce_t": 1.0}, 101, rng).beta == pytest.approx(0.1)


def _shop(n_users: int = 150, n_items: int = 300, length: int = 12, seed: int = 0) -> History:
    """A shop where whoever buys item i buys item i+1 next (mod n_items), from a random start."""
    rng = np.random.default_rng(seed)
    rows = [(u, (start + t) % n_items, float(t))
            for u, start in enumerate(rng.integers(n_items, size=n_users)) for t in range(length)]
    return History.from_frame(pd.DataFrame(rows, columns=["uidx", "iidx", "timestamp"]), n_users, n_items)


@pytest.mark.parametrize("gbce_t", [0.75, 0.0], ids=["gbce", "plain-bce"])
def test_gbce_with_256_negatives_learns_the_next_item_far_above_popularity(gbce_t):
    """Regression: before the logit bias this scored hit@10 0.03-0.04 (chance is 10/300) and
    top-1 0.0; now top-1 0.85-0.95 and hit@10 >= 0.99 over model seeds 2018-2025."""
    train = _shop()
    m = SASRec(dim=16, layers=1, heads=1, max_len=12, dropout=0.0, lr=1e-2, epochs=20, batch_size=32,
               loss="gbce", negatives=256, gbce_t=gbce_t).fit(train)
    want = np.array([(s[-1] + 1) % train.n_items for s in train.sequences])
    scores = m.score_sequences(train.sequences)
    rank = (scores > scores[np.arange(len(want)), want][:, None]).sum(1)
    pop_top10 = np.argsort(-np.bincount(np.concatenate(train.sequences), minlength=train.n_items))[:10]
    assert np.mean(np.isin(want, pop_top10)) < 0.1
    assert np.mean(rank < 10) >= 0.9
    assert np.mean(rank == 0) >= 0.7
