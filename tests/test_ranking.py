"""Baselines: checkerboard data where the held-out item must rank first; the contract; save/load."""

import numpy as np
import pandas as pd
import pytest

from recagent.ranking.base import History, Recommender, topk
from recagent.ranking.baselines import EASE, ItemKNN, Pop
from recagent.ranking.bpr import BPRMF
from recagent.ranking.sasrec import SASRec
from recagent.ranking.early_stopping import EarlyStopping


def checkerboard(n_users=40, n_items=20):
    """Users in two blocks, each likes every item of its block but one (the held-out item,
    different per user); the other block's items are never seen."""
    rows, held = [], []
    half = n_items // 2
    for u in range(n_users):
        block = range(0, half) if u % 2 == 0 else range(half, n_items)
        out = list(block)[u % half]
        held.append((u, out))
        rows += [(u, i) for i in block if i != out]
    train = pd.DataFrame(rows, columns=["uidx", "iidx"])
    test = pd.DataFrame(held, columns=["uidx", "iidx"])
    return train, test, n_users, n_items


@pytest.mark.parametrize("make", [lambda: ItemKNN(k=50), lambda: EASE(reg=10.0),
                                  lambda: BPRMF(dim=8, lr=0.05, reg=1e-4, epochs=60, eval_every=1000)])
def test_held_out_item_ranks_first_on_checkerboard(make):
    train, test, n_u, n_i = checkerboard()
    model = make().fit(History.from_frame(train, n_u, n_i))
    ids, scores = model.recommend(np.arange(n_u), k=1)
    assert ids[:, 0].tolist() == test.sort_values("uidx")["iidx"].tolist()


def test_recommend_masks_seen_items_and_respects_the_universe():
    train, test, n_u, n_i = checkerboard()
    model = Pop().fit(History.from_frame(train, n_u, n_i))
    ids, _ = model.recommend(np.arange(n_u), k=5, items=np.arange(0, 15))
    for u in range(n_u):
        seen = set(train[train.uidx == u].iidx)
        got = [i for i in ids[u] if i >= 0]
        assert not seen.intersection(got)
        assert all(i < 15 for i in got)
    one_ids, one_scores = model.recommend(3, k=2)
    assert one_ids.shape == (2,) and one_scores[0] >= one_scores[1]


def test_pop_counts_are_true_counts():
    df = pd.DataFrame({"uidx": [0, 1, 2, 0], "iidx": [5, 5, 5, 1]})
    m = Pop().fit(History.from_frame(df, 3, 6))
    assert m.counts[5] == 3 and m.counts[1] == 1


def test_history_orders_by_time_then_row():
    df = pd.DataFrame({"uidx": [0, 0, 0], "iidx": [3, 1, 2], "timestamp": [5.0, 5.0, 1.0], "row": [1, 0, 2]})
    h = History.from_frame(df, 1, 4)
    assert h.sequences[0].tolist() == [2, 1, 3]
    assert h.last_time[0] == 5.0


def test_topk_orders_best_first():
    ids, vals = topk(np.array([[0.1, 0.9, 0.5, -np.inf]]), 3)
    assert ids.tolist() == [[1, 2, 0]] and vals[0, 0] == pytest.approx(0.9)


@pytest.mark.parametrize("make", [lambda: EASE(reg=10.0), lambda: ItemKNN(k=5), lambda: Pop(),
                                  lambda: BPRMF(dim=4, epochs=2, eval_every=1000)])
def test_save_load_roundtrip(tmp_path, make):
    train, _, n_u, n_i = checkerboard()
    m = make().fit(History.from_frame(train, n_u, n_i))
    m.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert type(back) is type(m)
    np.testing.assert_allclose(back.score(np.arange(5)), m.score(np.arange(5)), rtol=1e-5)


@pytest.mark.parametrize("recipe", [{}, {"block": "ligr"}, {"loss": "gbce", "negatives": 4, "epochs": 80}],
                         ids=["sasrec", "esasrec-ligr", "gsasrec-gbce"])
def test_sasrec_learns_a_deterministic_next_item_rule(tmp_path, recipe):
    """Every user walks items i -> i+1 (mod 12); the next item after the history must rank first
    (plain SASRec, eSASRec's LiGR layers, gSASRec's gBCE loss)."""
    rows = []
    for u in range(30):
        start = u % 12
        for t in range(8):
            rows.append((u, (start + t) % 12, float(t)))
    df = pd.DataFrame(rows, columns=["uidx", "iidx", "timestamp"])
    train = History.from_frame(df, 30, 12)
    m = SASRec(**{**dict(dim=16, layers=1, heads=1, max_len=8, dropout=0.0, lr=1e-2, epochs=40, batch_size=32),
                  **recipe}).fit(train)
    want = [(u % 12 + 8) % 12 for u in range(30)]
    ids, _ = m.recommend(np.arange(30), k=1, exclude_seen=False)
    assert np.mean(ids[:, 0] == np.array(want)) >= 0.9
    m.save(tmp_path / "s")
    back = Recommender.load(tmp_path / "s")
    assert back.params == m.params
    np.testing.assert_allclose(back.score(np.arange(3)), m.score(np.arange(3)), rtol=1e-4, atol=1e-5)


def test_sasrec_unknown_block_is_a_config_error():
    from recagent.errors import ConfigError

    with pytest.raises(ConfigError, match="block='gru'.*ligr"):
        SASRec(block="gru")


def test_ease_refuses_a_catalog_over_its_memory_limit_with_one_line():
    """EASE's dense inverse: the estimate is checked before allocating (no OOM kill)."""
    from recagent.errors import ModelError
    from recagent.ranking.linear import DLAE

    train, _, n_u, n_i = checkerboard()
    h = History.from_frame(train, n_u, n_i)
    limit = 3 * 8 * 10 ** 2 / 2 ** 30            # room for a 10-item catalog only
    for model in (EASE(reg=10.0, max_dense_gib=limit), DLAE(max_dense_gib=limit)):
        with pytest.raises(ModelError) as err:
            model.fit(h)
        msg = str(err.value)
        assert "\n" not in msg and "20 items" in msg and "max_dense_gib" in msg and "rp3beta" in msg
    EASE(reg=10.0, max_dense_gib=4 * limit).fit(h)   # 20 items fit in four times the room


def test_early_stopping_keeps_the_best_snapshot_and_stops_after_patience():
    stop = EarlyStopping(patience=2)
    scores = [0.1, 0.3, 0.2, 0.25, 0.9]
    stopped_at = None
    for ep, s in enumerate(scores, 1):
        if stop.update(s, ep, snapshot=lambda ep=ep: f"weights@{ep}"):
            stopped_at = ep
            break
    assert stopped_at == 4 and stop.best_state == "weights@2" and stop.best == 0.3
    assert stop.summary()["best_epoch"] == 2


def test_early_stopping_restores_the_best_module_weights_and_reports_them():
    """SASRec, MultiVAE and the fusion trainer leave snapshot and restore to the helper."""
    import torch

    net = torch.nn.Linear(2, 1)
    stop = EarlyStopping(patience=1, module=net)
    assert not stop.restore()                      # never updated (no validation): nothing to restore
    with torch.no_grad():
        net.weight.fill_(1.0)
    stop.update(0.5, 1)
    with torch.no_grad():
        net.weight.fill_(2.0)                     # worse epoch: its weights must not survive
    assert stop.update(0.4, 2)
    info = {}
    assert stop.restore(info)
    assert torch.all(net.weight == 1.0) and info["best_epoch"] == 1 and info["valid_ndcg10"] == 0.5


def test_itemknn_keeps_k_sources_per_target_item():
    """Regression for the block-wise (sparse) ItemKNN: each target column keeps at most k sources."""
    train, _, n_u, n_i = checkerboard()
    m = ItemKNN(k=3).fit(History.from_frame(train, n_u, n_i))
    per_col = np.diff(m.sim.tocsc().indptr)
    assert per_col.max() == 3 and m.sim.diagonal().sum() == 0


@pytest.mark.parametrize("block", ["pre_ln", "ligr"])
def test_sasrec_scores_do_not_depend_on_padding(block):
    """With ``pad_mask`` no query attends to padding, so trimming a batch to its longest
    history (what training and scoring do) gives the same vectors as full-width padding."""
    import torch

    m = SASRec(dim=8, layers=1, heads=2, max_len=12, dropout=0.0, pad_mask=True, block=block)
    m.net = m._build(20)
    m.net.eval()
    x = np.zeros((2, 12), np.int64)
    x[0, -3:] = [4, 5, 6]
    x[1, -5:] = [1, 2, 3, 7, 9]
    with torch.inference_mode():
        full = m.net(torch.from_numpy(x))[:, -1].numpy()
        trimmed = m.net(torch.from_numpy(x[:, -5:]))[:, -1].numpy()
        alone = m.net(torch.from_numpy(x[:1, -3:]))[:, -1].numpy()
    np.testing.assert_allclose(trimmed, full, atol=1e-5)
    np.testing.assert_allclose(alone[0], full[0], atol=1e-5)


def test_synthetic_log_has_the_requested_shape_is_seeded_and_says_synthetic(tmp_path):
    from recagent.data.synthetic import LABEL, SyntheticSpec, generate, write_files

    spec = SyntheticSpec(n_users=300, n_items=2000, n_interactions=6000, n_topics=10, seed=3)
    a, b = generate(spec), generate(spec)
    pd.testing.assert_frame_equal(a, b)
    assert a.uidx.nunique() == 300 and a.iidx.max() < 2000
    assert 0.85 * 6000 <= len(a) <= 1.05 * 6000 and not a.duplicated(["uidx", "iidx"]).any()
    assert (a.groupby("uidx").timestamp.diff().dropna() > 0).all()
    # taste structure: co-occurrence predicts a held-out item better than popularity does
    c = generate(SyntheticSpec(n_users=1000, n_items=500, n_interactions=20000, n_topics=10, seed=3))
    last = c.groupby("uidx").tail(1)
    h = History.from_frame(c.drop(last.index), 1000, 500)
    hit = lambda m: np.mean([t in r for t, r in zip(last.iidx, m.fit(h).recommend(last.uidx.to_numpy(), k=20)[0])])  # noqa: E731
    assert hit(ItemKNN(k=50)) > hit(Pop()) + 0.1   # 0.40 against 0.25 at seed 3
    files = write_files(tmp_path / "syn", spec)
    assert "synthetic" in LABEL and "synthetic" in (tmp_path / "syn" / "README.txt").read_text()
    assert pd.read_csv(files["items"]).text.str.contains("synthetic").all()


def test_userknn_one_row_history_does_not_drop_training_user_0():
    """Regression: scoring a chat's one-row history zeroed training user 0's similarity, as if
    the new user were user 0 (row 0 of the one-row history is nobody's training row)."""
    import pandas as pd

    from recagent.ranking.base import History
    from recagent.ranking.neighbors import UserKNN

    # user 0 liked items 0, 1, 2; user 1 liked 3, 4; a new user who liked 0, 1 should get item 2 from user 0
    frame = pd.DataFrame({"uidx": [0, 0, 0, 1, 1], "iidx": [0, 1, 2, 3, 4], "timestamp": [1.0, 2, 3, 4, 5]})
    tr = History.from_frame(frame, 2, 5)
    model = UserKNN(k=1, shrink=0.0).fit(tr)
    one = History.from_frame(pd.DataFrame({"uidx": [0, 0], "iidx": [0, 1], "timestamp": [1.0, 2]}), 1, 5)
    assert model.score(np.array([0]), one)[0, 2] > 0
    own = model.score(np.array([0]))            # training users: still never their own neighbour
    assert own[0, 2] == 0
