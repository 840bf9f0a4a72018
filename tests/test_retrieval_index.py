"""ItemIndex with the hash encoder: known answers, filters, incremental rebuilds, kill-and-resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recagent.config import load_config
from recagent.data import Catalog
from recagent.errors import IndexError_
from recagent.retrieval import Filters, HashEncoder, Hit, ItemIndex, merge_channels
from recagent.runs import layout

REPO = Path(__file__).resolve().parents[1]


class CountingEncoder(HashEncoder):
    """The hash encoder, remembering every text it embedded."""

    def __init__(self, dim: int = 64, name: str = "hash"):
        super().__init__(dim, name)
        self.seen: list[str] = []

    def _embed_text_batch(self, texts):
        self.seen += texts
        return super()._embed_text_batch(texts)


def _cfg(tmp_path, *sets):
    return load_config(overrides=[f"paths.runs_dir={tmp_path / 'runs'}", *sets])


def _open(tmp_path, enc=None, *sets):
    return ItemIndex.open(_cfg(tmp_path, *sets), "tiny", text_encoder=enc or HashEncoder(64), clip_encoder=None)


def _catalog(n: int, changed: dict | None = None) -> Catalog:
    rows = [{"item_id": f"m{i}", "title": f"Movie {i}", "text": f"plot number {i} word{i % 7}",
             "categories": ["Drama"] if i % 2 else ["Comedy", "Romance"], "year": 1950 + i, "image_path": None}
            for i in range(n)]
    for i, text in (changed or {}).items():
        rows[i]["text"] = text
    df = pd.DataFrame(rows)
    df["year"] = df["year"].astype("Int64")
    return Catalog(df)


def test_build_stores_every_item_in_the_run_dir_with_original_ids(tiny, tmp_path):
    index = _open(tmp_path)
    report = index.build(tiny)
    assert report.channels["text"] == {"added": 8, "updated": 0, "deleted": 0, "unchanged": 0, "total": 8}
    assert sorted(index.ids()) == [f"i{i}" for i in range(1, 9)]
    folder = layout(_cfg(tmp_path), tiny).index
    assert folder == tmp_path / "runs" / "custom-tiny" / "index" and index.location == str(folder)
    assert (folder / "build.json").is_file() and (folder / "data.json").is_file()  # record + catalog fingerprint
    assert set(report.absent) == {"image", "clip_text"} and "clip_checkpoint" in report.absent["image"]


def test_text_query_finds_the_matching_items_with_cosine_scores(tiny, tmp_path):
    index = _open(tmp_path)
    index.build(tiny)
    hits = index.query_text("haunted house ghost", k=2)
    assert {h.item_id for h in hits} == {"i5", "i6"}
    assert all(h.channel == "text" for h in hits)
    assert hits[0].score >= hits[1].score and -1.0 <= hits[1].score <= 1.0
    # the score is the cosine similarity of the (normalised) embeddings
    enc = HashEncoder(64)
    q = enc.embed_texts(["haunted house ghost"])[0]
    item = enc.embed_texts([tiny.catalog.describe(tiny.catalog.index[hits[0].item_id])])[0]
    assert hits[0].score == pytest.approx(float(q @ item), abs=1e-4)


def test_category_and_year_filters_and_exclusions(tiny, tmp_path):
    index = _open(tmp_path)
    index.build(tiny)
    cat = tiny.catalog
    everything = index.query_text("robots space", k=8)
    assert len(everything) == 8
    only = index.query_text("robots space", k=8, include_categories=["Horror", "Drama"])
    assert {h.item_id for h in only} == {"i5", "i6", "i8"}
    no_scifi = index.query_text("robots space", k=8, exclude_categories=["Sci-Fi"])
    assert len(no_scifi) == 5 and all("Sci-Fi" not in cat.get(h.item_id)["categories"] for h in no_scifi)
    era = index.query_text("robots space", k=8, year_min=1980, year_max=1995)
    assert {h.item_id for h in era} == {"i2", "i3", "i5", "i6"}
    both = index.query_text("robots", k=8, filters=Filters(include_categories=("Sci-Fi",)), year_max=1990)
    assert {h.item_id for h in both} == {"i1", "i2"}
    # exclusions still return k items (over-fetch), none of them excluded
    top3 = [h.item_id for h in everything[:3]]
    rest = index.query_text("robots space", k=3, exclude_ids=top3)
    assert len(rest) == 3 and not set(top3) & {h.item_id for h in rest}
    assert [h.score for h in rest] == pytest.approx([h.score for h in everything[3:6]], abs=1e-5)  # ties may swap ids


@pytest.mark.parametrize("overfetch", [((100, 10), (1000, 50)), ((1, 1),), ()],
                         ids=["post-filter", "post-filter-then-where", "chroma-where"])
def test_filters_where_matches_python_semantics(tiny, tmp_path, monkeypatch, overfetch):
    monkeypatch.setattr("recagent.retrieval.index._OVERFETCH", overfetch)
    index = _open(tmp_path)
    index.build(tiny)
    metas = {r["item_id"]: {"item_id": r["item_id"], "categories": r["categories"], "year": r["year"]}
             for r in (tiny.catalog.row(i) for i in range(len(tiny.catalog)))}
    cases = [Filters(include_categories=("Comedy",)), Filters(exclude_categories=("Romance", "Horror")),
             Filters(year_min=1990), Filters(include_categories=("Action", "Thriller"), year_max=1995),
             Filters(exclude_ids=frozenset({"i1", "i2"}), exclude_categories=("Drama",))]
    for f in cases:
        got = {h.item_id for h in index.query_text("a", k=8, filters=f)}
        assert got == {i for i, m in metas.items() if f.accepts(m)}, f


def test_query_items_returns_neighbours_without_the_query_items(tiny, tmp_path):
    index = _open(tmp_path)
    index.build(tiny)
    hits = index.query_items(["i1", "i2"], k=3)
    ids = [h.item_id for h in hits]
    assert "i1" not in ids and "i2" not in ids
    assert ids[0] == "i7"  # the other robots-in-space film
    with pytest.raises(IndexError_, match="none of the items"):
        index.query_items(["nope"], k=3)


def test_rebuild_embeds_only_changed_items_and_deletes_removed_ones(tmp_path):
    enc = CountingEncoder()
    index = _open(tmp_path, enc)
    index.build(_catalog(30))
    assert len(enc.seen) == 30
    before = index.embeddings(["m3"])["m3"]
    enc.seen.clear()
    changed = _catalog(31, changed={3: "an entirely new plot about pirates"})  # m3 changed, m30 new
    cat = Catalog(changed.items[changed.items["item_id"] != "m7"])            # m7 removed
    report = index.build(cat)
    assert report.channels["text"] == {"added": 1, "updated": 1, "deleted": 1, "unchanged": 28, "total": 30}
    assert sorted(enc.seen) == sorted([cat.describe(cat.index["m3"]), cat.describe(cat.index["m30"])])
    assert sorted(index.ids()) == sorted(cat.ids)
    assert not np.allclose(before, index.embeddings(["m3"])["m3"])
    top = index.query_text(cat.describe(cat.index["m3"]), k=1)[0]
    assert top.item_id == "m3" and top.score == pytest.approx(1.0, abs=1e-4)
    enc.seen.clear()
    assert index.build(cat).channels["text"]["unchanged"] == 30 and enc.seen == []


def test_changing_the_encoder_re_embeds_everything(tmp_path):
    _open(tmp_path, HashEncoder(64, name="hash-a")).build(_catalog(10))
    enc = CountingEncoder(32, name="hash-b")
    index = _open(tmp_path, enc)
    report = index.build(_catalog(10))
    assert len(enc.seen) == 10 and report.channels["text"]["total"] == 10
    assert index.status()["text"]["encoder"] == "hash-b"
    assert len(index.embeddings(["m1"])["m1"]) == 32


def test_clip_channels_absent_without_weights_say_how_to_fix(tiny, tmp_path):
    index = _open(tmp_path)
    index.build(tiny)
    st = index.status()
    assert st["text"]["count"] == 8 and "absent" in st["image"] and "absent" in st["clip_text"]
    with pytest.raises(IndexError_, match="clip_checkpoint"):
        index.query_text("robots", channels="image")


def test_querying_an_unbuilt_index_names_the_build_command(tmp_path):
    with pytest.raises(IndexError_, match="not built; run `recagent index build --dataset custom-tiny`"):
        _open(tmp_path).query_text("x")


def test_merge_channels_interleaves_and_keeps_each_item_once():
    a = [Hit("1", 0.9, "text"), Hit("2", 0.8, "text"), Hit("3", 0.7, "text")]
    b = [Hit("2", 0.3, "image"), Hit("4", 0.2, "image")]
    merged = merge_channels([a, b], k=4)
    assert [(h.item_id, h.channel) for h in merged] == [("1", "text"), ("2", "image"), ("4", "image"), ("3", "text")]


KILL_SCRIPT = """
import sys, time
import pandas as pd
from recagent.config import load_config
from recagent.data import Catalog
from recagent.retrieval import HashEncoder, ItemIndex

class Slow(HashEncoder):
    def _embed_text_batch(self, texts):
        out = super()._embed_text_batch(texts)
        print("batch", flush=True)
        time.sleep(0.25)
        return out

df = pd.read_pickle(sys.argv[2])
cfg = load_config(overrides=[f"paths.runs_dir={sys.argv[1]}", "retrieval.batch_size=4"])
ItemIndex.open(cfg, "tiny", text_encoder=Slow(64), clip_encoder=None).build(Catalog(df))
print("done", flush=True)
"""


def test_build_killed_midway_resumes_with_every_item_exactly_once(tmp_path):
    cat = _catalog(80)
    pkl = tmp_path / "items.pkl"
    cat.items.to_pickle(pkl)
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs"), str(pkl)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        batches = 0
        for line in proc.stdout:
            batches += line.startswith("batch")
            assert not line.startswith("done"), "the build finished before it could be killed"
            if batches == 6:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    enc = CountingEncoder()
    index = _open(tmp_path, enc, "retrieval.batch_size=4")
    stored_before = index.status()["text"]["count"] if "count" in index.status()["text"] else 0
    assert 0 < stored_before < 80
    report = index.build(cat)
    ids = index.ids()
    assert len(ids) == len(set(ids)) == 80 and set(ids) == set(cat.ids)
    assert report.channels["text"]["added"] == 80 - stored_before
    assert report.channels["text"]["unchanged"] == stored_before
    assert len(enc.seen) == 80 - stored_before
    # what survived the kill is intact: its embeddings equal a fresh encoding
    some = sorted(set(ids) - {c for c in cat.ids if cat.describe(cat.index[c]) in enc.seen})[:3]
    fresh = HashEncoder(64).embed_texts([cat.describe(cat.index[i]) for i in some])
    got = index.embeddings(some)
    assert all(np.allclose(got[i], fresh[j], atol=1e-6) for j, i in enumerate(some))
