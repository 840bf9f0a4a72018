"""Fusion ranker: learns to use the informative channel and ignore noise; works with missing
modalities; chat API (candidates + extra features); save/load."""

import numpy as np
import pytest

from recagent.data import make_split
from recagent.ranking.base import History, Recommender
from recagent.ranking.baselines import EASE
from recagent.ranking.features import CHANNELS, FeatureSources, build_features, normalize
from recagent.ranking.fusion import FusionRanker
from recagent.ranking.fusion_net import ChannelSlice, forward, ndcg_torch, train_net
from recagent.retrieval.encoders import HashEncoder
from ranking_data import write_recipes

PARAMS = dict(hidden=8, mlp=False, lr=0.05, weight_decay=0.0, epochs=60, patience=10, batch_users=64, seed=0)


def synthetic(n_users=300, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, n_items, n_users)
    answer = rng.normal(0, 1, (n_users, n_items))
    answer[np.arange(n_users), target] += 3.0          # carries the answer (noisily)
    noise = rng.normal(0, 1, (n_users, n_items))        # pure noise
    F = np.stack([answer, noise], axis=2).astype(np.float32)
    M = np.ones_like(F)
    cand = np.ones((n_users, n_items), bool)
    X = normalize(F, M, cand)
    tg = np.zeros((n_users, n_items), bool)
    tg[np.arange(n_users), target] = True
    ctx = np.ones((n_users, 3), np.float32)
    return X, M, ctx, cand, tg


SL2 = ChannelSlice.of(["answer", "noise"], ["answer", "noise"])


def _holdout_ndcg(net, X, M, ctx, cand, tg, rows):
    from recagent.eval.metrics import ndcg_per_row

    s = forward(net, (X, M, ctx), SL2, rows)
    return float(ndcg_per_row(np.where(cand[rows], s, -np.inf), tg[rows], 10).mean())


def _shuffled(X, channel, n_channels, seed=0):
    """X with one channel's two views shuffled across items (its information destroyed)."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    for u in range(len(X)):
        p = rng.permutation(X.shape[1])
        for f in (channel, n_channels + channel):
            X[u, :, f] = X[u, p, f]
    return X


@pytest.mark.parametrize("mlp", [False, True])
def test_fusion_uses_the_answer_channel_and_ignores_noise(mlp):
    X, M, ctx, cand, tg = synthetic()
    rows = np.arange(240, 300)
    net, info = train_net((X, M, ctx, cand, tg), SL2, np.arange(240), rows, {**PARAMS, "mlp": mlp})
    full = _holdout_ndcg(net, X, M, ctx, cand, tg, rows)
    assert full > 0.7                                   # a random ranking of 40 items gets ~0.1
    no_noise = _holdout_ndcg(net, _shuffled(X, 1, 2), M, ctx, cand, tg, rows)
    no_answer = _holdout_ndcg(net, _shuffled(X, 0, 2), M, ctx, cand, tg, rows)
    assert abs(full - no_noise) < 0.05                  # noise destroyed: nothing lost
    assert no_answer < 0.3                              # answer destroyed: back to near random
    if not mlp:
        w = net.base.detach().numpy() + net.gate[2].bias.detach().numpy()
        assert abs(w[0]) + abs(w[2]) > 3 * (abs(w[1]) + abs(w[3]))


@pytest.fixture
def tiny_fit(tiny):
    split = make_split(tiny, "B")
    tr = History.from_frame(split.train, split.n_users, split.n_items)
    emb = HashEncoder(32).embed_texts([tiny.catalog.describe(i) for i in range(len(tiny.catalog))])
    return tiny, split, tr, emb


def test_torch_ndcg_of_the_trainer_is_the_metric():
    import torch

    from recagent.eval.metrics import ndcg_per_row

    rng = np.random.default_rng(0)
    s = rng.normal(size=(50, 30)).astype(np.float32)
    cand = rng.random((50, 30)) > 0.2
    tgt = (rng.random((50, 30)) > 0.85) & cand
    tgt[0] = False                                                     # a row without targets: 0
    ours = ndcg_torch(torch.from_numpy(s), torch.from_numpy(cand), torch.from_numpy(tgt)).numpy()
    ref = ndcg_per_row(np.where(cand, s, -np.inf), tgt, 10)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert ours[0] == 0.0 and ours.max() > 0


def test_topn_listwise_loss_also_learns_the_answer_channel():
    X, M, ctx, cand, tg = synthetic()
    rows = np.arange(240, 300)
    net, _ = train_net((X, M, ctx, cand, tg), SL2, np.arange(240), rows, {**PARAMS, "loss": "topn", "topn": 10})
    assert _holdout_ndcg(net, X, M, ctx, cand, tg, rows) > 0.7


def test_fusion_on_a_catalog_without_images(tiny_fit, tmp_path):
    ds, split, tr, emb = tiny_fit
    f = FusionRanker(hidden=4, epochs=5, patience=2, holdout=0.34)
    f.fit(split, base_models={"ease": EASE(reg=1.0).fit(tr)}, text_emb=emb)
    assert not f.src.available("image_hist") and not f.src.available("xmodal_profile")
    trv = History.concat(split.train, split.valid, n_users=split.n_users, n_items=split.n_items)
    s = f.score(np.arange(split.n_users), trv)
    assert s.shape == (split.n_users, split.n_items) and np.isfinite(s).all()
    ids, _ = f.recommend(np.arange(split.n_users), k=3, history=trv)
    for u in range(split.n_users):
        assert not set(ids[u]) & set(trv.sequences[u])
    f.save(tmp_path / "f")
    back = Recommender.load(tmp_path / "f")
    np.testing.assert_allclose(back.score(np.arange(3), trv), f.score(np.arange(3), trv), rtol=1e-4, atol=1e-5)


def test_partial_images_are_masked_per_item(tiny_fit):
    ds, split, tr, emb = tiny_fit
    rng = np.random.default_rng(0)
    img = rng.normal(size=(split.n_items, 16)).astype(np.float32)
    has = np.arange(split.n_items) % 2 == 0
    src = FeatureSources({}, emb, img, has, tr.frame, 14.0, split.n_items)
    F, M = build_features(src, ["image_hist", "text_hist", "bpr"], np.arange(split.n_users), tr, np.arange(split.n_items))
    c_img = 0
    users_with_img = [u for u in range(split.n_users) if any(has[i] for i in tr.sequences[u])]
    assert M[users_with_img][:, ~has, c_img].sum() == 0          # items without image: masked
    assert M[users_with_img][:, has, c_img].min() == 1
    assert M[:, :, 2].sum() == 0                                   # bpr not given: masked everywhere
    assert (F * (1 - M) == 0).all()


def test_rank_for_a_new_user_with_query_and_constraint_features(tiny_fit):
    ds, split, tr, emb = tiny_fit
    f = FusionRanker(hidden=4, epochs=3, patience=1, holdout=0.34)
    f.fit(split, base_models={"ease": EASE(reg=1.0).fit(tr)}, text_emb=emb)
    idx = ds.catalog.index
    history = [idx["i1"], idx["i2"]]
    cands = np.array([idx[i] for i in ("i3", "i5", "i7")])
    base = f.rank(history, cands)
    assert base.shape == (3,) and np.isfinite(base).all()
    boosted = f.rank(history, cands, extra_features={"constraint": np.array([0.0, 1.0, 0.0])})
    assert boosted[1] - base[1] == pytest.approx(f.params["extra_weights"]["constraint"])
    assert np.argmax(f.rank(history, cands, extra_features={"constraint": np.array([0.0, 1.0, 0.0]),
                                                              "query": np.array([0.0, 5.0, 0.0])})) == 1
    assert f.rank([], cands).shape == (3,)                          # cold start: no history at all


def test_unknown_channel_is_a_config_error():
    from recagent.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown channel"):
        FusionRanker(channels=["ease", "telepathy"])
    assert FusionRanker().params["channels"] is None                # chosen from the sources at fit time


def test_concurrent_rank_calls_on_one_shared_model_match_single_threaded(tmp_path):
    """Defect 2 of issue 9: chat sessions share one FusionRanker; concurrent rank() calls with
    different candidate sets and users must neither fail nor see each other's candidates."""
    from concurrent.futures import ThreadPoolExecutor

    from recagent.data import load_files

    ds = load_files(*write_recipes(tmp_path), name="recipes")
    split = make_split(ds, "B")
    tr = History.from_frame(split.train, split.n_users, split.n_items)
    emb = HashEncoder(32).embed_texts([ds.catalog.describe(i) for i in range(len(ds.catalog))])
    f = FusionRanker(hidden=4, epochs=3, patience=1, holdout=0.34, members=1)
    f.fit(split, base_models={"ease": EASE(reg=1.0).fit(tr)}, text_emb=emb)
    rng = np.random.default_rng(1)
    jobs = []
    for j in range(96):
        n = int(rng.integers(2, ds.n_items))           # candidate sets of very different sizes
        user = None if j % 3 == 0 else int(rng.integers(0, ds.n_users))
        hist = list(tr.sequences[user]) if user is not None else [int(x) for x in rng.choice(ds.n_items, 3)]
        jobs.append((hist, rng.choice(ds.n_items, n, replace=False), user))
    run = lambda job: f.rank(job[0], job[1], user=job[2])  # noqa: E731
    alone = [run(j) for j in jobs]
    contrib = f.contributions(jobs[1][0], user=jobs[1][2])
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(run, jobs))
        for a, b in zip(alone, together):
            np.testing.assert_array_equal(a, b)
    again = f.contributions(jobs[1][0], user=jobs[1][2])
    assert set(again) == set(contrib)
    for name in contrib:
        np.testing.assert_array_equal(again[name], contrib[name])


def test_a_net_that_loses_on_validation_is_not_served(tmp_path):
    """Issue 13: never worse than its best channel. The net cannot learn here (lr 0: constant
    scores), so the best single channel on validation must be served, and scores must follow it."""
    from ranking_data import write_popularity_shop
    from recagent.data import load_files

    ds = load_files(*write_popularity_shop(tmp_path), name="shop")
    split = make_split(ds, "A")
    tr = History.from_frame(split.train, split.n_users, split.n_items)
    f = FusionRanker(channels=["ease", "itemknn", "pop", "recency"], hidden=4, epochs=2, patience=1, lr=0.0, members=2)
    f.fit(split, base_models={"ease": EASE(reg=10.0).fit(tr)})
    table = f.info["selection"]["valid_ndcg@10"]
    singles = {k: v for k, v in table.items() if k != "net" and " x net" not in k}
    assert f.served["kind"] == "channel" and table[f.served["channel"]] == max(singles.values()) > table["net"]
    assert "alone" in f.info["selection"]["served"]
    # what is served ranks exactly as that channel does
    from recagent.ranking.fusion import channel_score, features_all

    feats = features_all(f.src, np.arange(5), tr, np.arange(5), f.items_)
    np.testing.assert_array_equal(np.argsort(-f.score_features(feats), axis=1, kind="stable"),
                                  np.argsort(-channel_score(feats, f.served["channel"]), axis=1, kind="stable"))
    back = Recommender.load(f.save(tmp_path / "m"))
    assert back.served == f.served


@pytest.mark.slow  # ~15 s: two evals with every fusion channel
def test_eval_says_what_fusion_serves_on_a_one_channel_shop(tmp_path, monkeypatch):
    """On data whose signal is popularity only, eval names what fusion serves (JSON and table),
    and the fused model is not worse than its best single channel on validation."""
    import json

    from click.testing import CliRunner

    from ranking_data import write_popularity_shop
    from recagent.cli import cli

    monkeypatch.setattr("recagent.ranking.train._LazyEncoder", lambda cfg: HashEncoder(16))  # no model load
    items, log = write_popularity_shop(tmp_path / "shop")
    opts = ["--dataset", "custom", "--protocol", "A", "--models", "pop,ease,fusion", "--set", f"data.items={items}",
            "--set", f"data.interactions={log}", "--set", f"paths.runs_dir={tmp_path / 'runs'}",
            "--set", "ranking.ease_grid=[10.0]", "--set", "ranking.itemknn_grid=[20]", "--set", "ranking.bpr_epochs=5",
            "--set", "ranking.fusion_epochs=20", "--set", "ranking.ablations=false", "--set", "eval.bootstrap=20",
            "--set", f"paths.cache_dir={tmp_path / 'cache'}"]
    r = CliRunner().invoke(cli, ["eval", "--json"] + opts)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    sel = out["fusion_selection_valid_ndcg@10"]
    assert out["fusion_serves"] and max(sel.values()) >= max(v for k, v in sel.items() if k in ("pop", "ease"))
    r = CliRunner().invoke(cli, ["eval"] + opts)
    assert "fusion serves:" in r.output


def test_training_on_shortlists_learns_the_same_and_scores_match_the_full_features():
    from recagent.ranking.fusion_net import shortlist

    X, M, ctx, cand, tg = synthetic()
    rows = np.arange(240, 300)
    net, _ = train_net((X, M, ctx, cand, tg), SL2, np.arange(240), rows, {**PARAMS, "train_top": 10})
    assert _holdout_ndcg(net, X, M, ctx, cand, tg, rows) > 0.7
    Xs, Ms, cs, cands, tgs = shortlist((X, M, ctx, cand, tg), SL2, rows, 10)
    assert Xs.shape == (60, 10, 4) and tgs.sum() <= tg[rows].sum()
    full = forward(net, (X, M, ctx), SL2, rows)
    short = forward(net, (Xs, Ms, cs), SL2)
    for r in range(len(rows)):                          # pointwise net: the same items score the same
        assert np.abs(short[r][:, None] - full[r][None, :]).min(1).max() < 1e-5


def test_recency_counts_each_items_events_in_the_window_before_the_users_time():
    """The recency channel (vectorised over all user x item pairs) against a direct count on a
    tiny log, including a user with no time (NaN) and times outside the log's range."""
    import pandas as pd

    from recagent.ranking.features import FeatureSources, _recency

    rng = np.random.default_rng(0)
    ev = pd.DataFrame({"iidx": rng.integers(0, 7, 200), "timestamp": rng.uniform(0, 60 * 86400, 200).round()})
    src = FeatureSources({}, None, None, None, ev, 14.0, 9)
    t = np.array([10 * 86400.0, 59 * 86400.0, np.nan, -5.0, 90 * 86400.0, float(ev.timestamp.iloc[3])])
    got = _recency(src, t, np.arange(9))
    for r, tu in enumerate(t):
        for i in range(9):
            ts = ev.timestamp[ev.iidx == i].to_numpy()
            want = 0 if np.isnan(tu) else int(((ts <= tu) & (ts > tu - 14 * 86400)).sum())
            assert got[r, i] == pytest.approx(np.log1p(want)), (r, i)


def test_fusion_repeats_redraw_the_folds_and_keep_every_net():
    """``repeats`` cuts the valid users again with another seed; the ensemble holds members x
    repeats nets."""
    from recagent.ranking.fusion import FusionRanker

    f = FusionRanker(members=2, repeats=2)
    folds = f._folds(10)
    assert len(folds) == 4
    assert sorted(np.concatenate(folds[:2])) == list(range(10)) == sorted(np.concatenate(folds[2:]))
    assert not all(np.array_equal(a, b) for a, b in zip(folds[:2], folds[2:]))


def test_a_fixed_seed_trains_the_same_net_twice_and_another_seed_does_not():
    """Runs are reproducible: the trainer seeds torch and its user order from ``params["seed"]``,
    so the same features and seed give bit-identical scores (a seed ensemble's members differ)."""
    X, M, ctx, cand, tg = synthetic(n_users=120)
    feats = (X, M, ctx, cand, tg)
    tr, va = np.arange(90), np.arange(90, 120)
    p = {**PARAMS, "mlp": True, "epochs": 8, "patience": 8}
    a, _ = train_net(feats, SL2, tr, va, p)
    b, _ = train_net(feats, SL2, tr, va, p)
    c, _ = train_net(feats, SL2, tr, va, {**p, "seed": 1})
    sa, sb, sc = (forward(n, feats, SL2) for n in (a, b, c))
    assert np.array_equal(sa, sb)
    assert not np.allclose(sa, sc)
