"""Protocol A (per-user random 8:1:1 of positives) and B (leave-one-out by time, ties by row)."""

from __future__ import annotations

import numpy as np
import pytest

from recagent.data import leave_one_out_split, load_files, make_split, random_split
from recagent.data.splits import split_counts
from recagent.errors import DataError


def make(tmp_path, log: str):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n" + "".join(f"i{k},Item {k}\n" for k in range(30)))
    p = tmp_path / "log.csv"
    p.write_text("user_id,item_id,timestamp,rating\n" + log)
    return load_files(items, p)


def test_ties_on_the_last_timestamp_are_broken_by_file_order(tmp_path):
    # u1's last two interactions share t=300: the later *row* (i3) is the test item, i2 valid.
    ds = make(tmp_path, "u1,i1,100,5\nu1,i2,300,4\nu1,i3,300,3\nu1,i0,50,5\n")
    sp = leave_one_out_split(ds)
    assert sp.test["item_id"].tolist() == ["i3"]
    assert sp.valid["item_id"].tolist() == ["i2"]
    assert sorted(sp.train["item_id"]) == ["i0", "i1"]


def test_leave_one_out_small_histories(tmp_path):
    ds = make(tmp_path, "a,i1,1,5\nb,i1,1,5\nb,i2,2,5\nc,i1,1,5\nc,i2,2,5\nc,i3,3,5\n")
    sp = leave_one_out_split(ds)
    by = lambda df: dict(df.groupby("user_id").size())  # noqa: E731
    assert by(sp.test) == {"b": 1, "c": 1}      # a single interaction only trains
    assert by(sp.valid) == {"c": 1}             # two interactions: train + test
    assert by(sp.train) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("n,expected", [(1, [1, 0, 0]), (2, [1, 0, 1]), (3, [1, 1, 1]), (9, [7, 1, 1]),
                                        (10, [8, 1, 1]), (19, [17, 1, 1]), (20, [16, 2, 2]), (37, [31, 3, 3])])
def test_split_counts_follow_recbole_rounding(n, expected):
    assert split_counts(n, [0.8, 0.1, 0.1]) == expected


def test_random_split_uses_positives_only_and_is_seeded(tmp_path):
    log = "".join(f"u{u},i{k},{k},{5 if k % 3 else 2}\n" for u in range(4) for k in range(30))
    ds = make(tmp_path, log)
    a = random_split(ds, threshold=4, seed=7)
    b = random_split(ds, threshold=4, seed=7)
    c = random_split(ds, threshold=4, seed=8)
    assert a.test.equals(b.test) and not a.test.equals(c.test)
    allp = np.concatenate([a.train["rating"], a.valid["rating"], a.test["rating"]])
    assert (allp >= 4).all() and len(allp) == 4 * 20
    # 20 positives per user -> 16 / 2 / 2 each, disjoint
    assert a.sizes() == {"train": 64, "valid": 8, "test": 8}
    keys = lambda df: set(zip(df["user_id"], df["item_id"]))  # noqa: E731
    assert not (keys(a.train) & keys(a.test)) and not (keys(a.valid) & keys(a.test))
    assert set(a.items) == {ds.item_index[f"i{k}"] for k in range(30) if k % 3}


def test_random_split_without_ratings_is_a_clear_error(tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\na,A\n")
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu,a,1\n")
    with pytest.raises(DataError, match="Protocol A needs ratings"):
        make_split(load_files(items, log), "A")
    with pytest.raises(DataError, match="unknown protocol 'C'"):
        make_split(load_files(items, log), "C")


def test_ml100k_split_sizes_match_the_peers(ml100k, cfg):
    """peer_baselines.md: Protocol A 942 users, 1,447 items, 45,063 / 5,156 / 5,156 (RecBole)."""
    a = make_split(ml100k, "A", cfg.data)
    assert a.sizes() == {"train": 45063, "valid": 5156, "test": 5156}
    assert len(a.users) == 942 and len(a.items) == 1447
    b = make_split(ml100k, "B", cfg.data)
    assert b.sizes() == {"train": 98114, "valid": 943, "test": 943}
    assert len(b.items) == 1682


def test_ml100k_catalog_and_users(ml100k):
    s = ml100k.summary()
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100000)
    assert set(s["user_attributes"]) == {"age", "gender", "occupation"}
    assert ml100k.catalog.get("1")["title"] == "Toy Story"
    assert ml100k.catalog.get("1")["categories"] == ["Animation", "Children's", "Comedy"]
    assert ml100k.catalog.get("1412")["year"] == 1995          # year recovered from the title
    assert "unknown" not in ml100k.catalog.category_vocabulary
    titles = set(ml100k.catalog.items["title"])
    assert "The Usual Suspects" in titles and "Usual Suspects, The" not in titles
    assert ml100k.user_attributes("1") == {"age": 24, "gender": "M", "occupation": "technician"}


def test_save_split_writes_original_ids(tmp_path, tiny):
    sp = make_split(tiny, "B")
    d = sp.save(tmp_path / "split")
    test = (d / "test.csv").read_text().splitlines()
    assert test[0] == "user_id,item_id,timestamp,rating"
    assert len(test) - 1 == len(sp.test) and test[1].startswith("u")
