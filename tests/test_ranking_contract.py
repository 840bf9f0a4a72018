"""The one recommender contract, checked on every registered model (implicit's
``RecommenderBaseTestMixin`` pattern): a checkerboard where the right answer is known, single vs
batched ``recommend``, the ``items`` universe, ``exclude_seen`` and a save/load round trip.

The data is a hand-built checkerboard, not movies: user u likes every item of its parity (u % 2)
except two, its valid item (u + 2) % N and its test item u. Fitted on train (valid for early
stopping), then scored with train + valid histories, every model that learns co-occurrence must
rank item u first for user u: it is the only unseen item of the user's parity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recagent.data.splits import Split
from recagent.ranking.base import History, Recommender
from recagent.ranking.registry import ALL_MODEL_NAMES

N = 40          # users = items; 18 training items per user


def checkerboard(n: int = N, seed: int = 0):
    """(train, valid, test) frames of the checkerboard; timestamps random within a user, so
    sequences carry no order signal beyond the parity."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n):
        for i in range(u % 2, n, 2):
            part = "test" if i == u else "valid" if i == (u + 2) % n else "train"
            rows.append((u, i, part))
    df = pd.DataFrame(rows, columns=["uidx", "iidx", "part"])
    df["timestamp"] = rng.random(len(df))
    df.loc[df.part == "valid", "timestamp"] = 2.0     # valid after train, test last (leave-one-out order)
    df.loc[df.part == "test", "timestamp"] = 3.0
    df["row"] = np.arange(len(df))
    df["user_id"], df["item_id"], df["rating"] = df.uidx.astype(str), df.iidx.astype(str), 5.0
    parts = [df[df.part == p].drop(columns="part").reset_index(drop=True) for p in ("train", "valid", "test")]
    return Split("B", *parts, n, n, np.arange(n))


# one tiny, fast configuration per model; the neural ones train for a few seconds at most
def _content():
    from recagent.ranking.content import ContentKNN

    m = ContentKNN()
    emb = np.zeros((N, 2), np.float32)
    emb[np.arange(N), np.arange(N) % 2] = 1.0          # the parity is the only content
    m.set_embeddings(emb)
    return m


def _fusion_fit(model, split):
    from recagent.ranking.baselines import EASE

    tr = History.from_frame(split.train, split.n_users, split.n_items)
    emb = np.zeros((N, 2), np.float32)
    emb[np.arange(N), np.arange(N) % 2] = 1.0
    return model.fit(split, base_models={"ease": EASE(reg=1.0).fit(tr)}, text_emb=emb)


MODELS = {
    "pop": (lambda: _cls("pop")(), None),
    "itemknn": (lambda: _cls("itemknn")(k=20), None),
    "ease": (lambda: _cls("ease")(reg=1.0), None),
    "bpr": (lambda: _cls("bpr")(dim=8, lr=0.05, reg=1e-4, epochs=40, eval_every=1000), None),
    "sasrec": (lambda: _cls("sasrec")(dim=16, layers=1, heads=1, max_len=20, dropout=0.0, lr=1e-2, epochs=15,
                                      batch_size=64, patience=100), None),
    "content": (_content, None),
    "fusion": (lambda: _cls("fusion")(hidden=4, epochs=3, patience=1, holdout=0.34, members=1), _fusion_fit),
    "rp3beta": (lambda: _cls("rp3beta")(alpha=1.0, beta=0.3, k=20), None),
    "gfcf": (lambda: _cls("gfcf")(alpha=0.3, k=4), None),
    "userknn": (lambda: _cls("userknn")(k=10), None),
    "slim": (lambda: _cls("slim")(alpha=1e-3, l1_ratio=0.1), None),
    "dlae": (lambda: _cls("dlae")(dropout=0.25, reg=1.0), None),
    "multivae": (lambda: _cls("multivae")(hidden=32, latent=8, dropout=0.2, lr=1e-2, epochs=60, patience=100,
                                          anneal_steps=50, batch_size=64), None),
}
#: models for which the checkerboard answer is not knowable (every item is equally popular)
NO_KNOWN_ANSWER = {"pop"}


def _cls(name):
    from recagent.ranking.registry import model_class

    return model_class(name)


def test_every_registered_model_is_under_contract():
    assert set(MODELS) == set(ALL_MODEL_NAMES)


@pytest.fixture(scope="module")
def fitted():
    """Each model fitted once on the checkerboard (module scope keeps the file fast)."""
    import torch

    torch.manual_seed(0)
    split = checkerboard()
    out = {}
    for name, (make, fit) in MODELS.items():
        m = make()
        out[name] = fit(m, split) if fit else m.fit(split)
    trv = History.concat(split.train, split.valid, n_users=N, n_items=N)
    return out, split, trv


class RecommenderContract:
    """Checks every model must pass; subclasses set ``name``."""

    name = ""

    def test_held_out_item_ranks_first(self, fitted):
        models, split, trv = fitted
        if self.name in NO_KNOWN_ANSWER:
            pytest.skip("no known answer: all checkerboard items are equally popular")
        ids, _ = models[self.name].recommend(np.arange(N), k=1, history=trv)
        hits = ids[:, 0] == np.arange(N)
        assert hits.all(), f"{self.name}: users whose test item was not first: {np.flatnonzero(~hits).tolist()}"

    def test_single_and_batched_recommend_agree(self, fitted):
        models, _, trv = fitted
        m = models[self.name]
        for exclude in (True, False):
            ids, sc = m.recommend(np.arange(N), k=5, history=trv, exclude_seen=exclude)
            assert ids.shape == (N, 5) and sc.shape == (N, 5)
            small, _ = m.recommend(np.arange(N), k=5, history=trv, exclude_seen=exclude, batch_size=7)
            for u in (0, 1, 17, N - 1):
                one_ids, one_sc = m.recommend(u, k=5, history=trv, exclude_seen=exclude)
                assert one_ids.shape == (5,)
                np.testing.assert_allclose(one_sc, sc[u], rtol=1e-4, atol=1e-5)
                distinct = np.r_[np.abs(np.diff(one_sc)) > 1e-4, True]   # ties may swap
                assert (one_ids[distinct] == ids[u][distinct]).all()
                assert (small[u][distinct] == ids[u][distinct]).all()
            assert np.all(np.diff(sc, axis=1) <= 1e-6), "scores must come best first"

    def test_items_universe_is_respected(self, fitted):
        models, _, trv = fitted
        universe = np.arange(N)[np.arange(N) % 4 != 0]          # drops the test item of users 0, 4, 8, ...
        ids, sc = models[self.name].recommend(np.arange(N), k=N, history=trv, items=universe)
        got = ids[np.isfinite(sc)]
        assert np.isin(got, universe).all()
        # each user can still get every unseen item of the universe
        for u in (0, 3):
            unseen = set(universe) - set(trv.sequences[u].tolist())
            assert set(ids[u][np.isfinite(sc[u])].tolist()) == unseen

    def test_exclude_seen(self, fitted):
        models, _, trv = fitted
        ids, sc = models[self.name].recommend(np.arange(N), k=N, history=trv)
        for u in range(N):
            assert not set(ids[u][np.isfinite(sc[u])].tolist()) & set(trv.sequences[u].tolist())
        ids, sc = models[self.name].recommend(np.arange(N), k=N, history=trv, exclude_seen=False)
        assert np.isfinite(sc).all() and all(sorted(r) == list(range(N)) for r in ids.tolist())
        ids, _ = models[self.name].recommend(0, k=10 * N, history=trv)   # more than exist: capped
        assert len(ids) == N

    def test_save_load_round_trip_gives_identical_scores(self, fitted, tmp_path):
        models, _, trv = fitted
        m = models[self.name]
        m.save(tmp_path / self.name)
        back = Recommender.load(tmp_path / self.name)
        assert type(back) is type(m) and back.params == m.params
        users = np.arange(N)
        np.testing.assert_allclose(back.score(users, trv), m.score(users, trv), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(back.score(users), m.score(users), rtol=1e-5, atol=1e-6)


def _test_class(name):
    return type(f"Test{name.title()}", (RecommenderContract,), {"name": name})


for _name in MODELS:
    globals()[f"Test{_name.title()}Contract"] = _test_class(_name)
