"""The item index under concurrent writers, kills, damaged files and changed data (issue 9,
defects 3, 4, 6 and 7): real ``recagent index build`` processes on a small tool catalog, with the
hash encoder standing in for the sentence-transformers model, and every item checked afterwards."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recagent.config import load_config
from recagent.data import load_files
from recagent.errors import IndexError_
from recagent.locks import LockTimeout, file_lock
from recagent.retrieval import HashEncoder, ItemIndex, integrity
from recagent.retrieval.build import catalog_rows
from recagent.retrieval.store import collection_name, content_hash, stored_hashes
from recagent.runs import layout

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 60
BATCH = 4

# Runs the real CLI with the hash encoder in place of the text model. It prints "batch" on stdout
# after each embedded batch; with GATE set, after GATE_AFTER batches it waits until the file GATE
# exists, so the test decides exactly when it goes on (or kills it there).
LAUNCHER = """
import os, sys, time
from recagent.retrieval import encoders

class Gated(encoders.HashEncoder):
    batches = 0

    def _embed_text_batch(self, texts):
        out = super()._embed_text_batch(texts)
        Gated.batches += 1
        print("batch", flush=True)
        gate = os.environ.get("GATE")
        if gate and Gated.batches >= int(os.environ.get("GATE_AFTER", "1")):
            while not os.path.exists(gate):
                time.sleep(0.02)
        return out

encoders.TextEncoder.from_config = classmethod(lambda cls, cfg: Gated(64, name="hash"))
from recagent.cli import main
main(sys.argv[1:])
"""


@pytest.fixture
def tools(tmp_path):
    """A 60-item hardware catalog (no movies) with a small log, in a folder named 'shop'."""
    folder = tmp_path / "shop"
    folder.mkdir()
    kinds = ["hammer", "saw", "drill", "rake", "whisk", "ladle"]
    uses = ["nails", "timber", "concrete", "leaves", "eggs", "soup"]
    rows = ["item_id,title,text,categories"]
    for i in range(N_ITEMS):
        k = i % len(kinds)
        rows.append(f"t{i},{kinds[k].title()} model {i},A {kinds[k]} for {uses[(i * 7) % 6]} number {i},"
                    f"{'Garden' if k == 3 else 'Kitchen' if k > 3 else 'Workshop'}")
    (folder / "items.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    log = ["user_id,item_id,timestamp"] + [f"u{u},t{(u * 5 + j) % N_ITEMS},{1000 + 10 * u + j}"
                                           for u in range(10) for j in range(3)]
    (folder / "log.csv").write_text("\n".join(log) + "\n", encoding="utf-8")
    (tmp_path / "launch.py").write_text(textwrap.dedent(LAUNCHER), encoding="utf-8")
    return folder


def _sets(tmp_path, folder, *extra):
    return [f"paths.runs_dir={tmp_path / 'runs'}", f"data.items={folder / 'items.csv'}",
            f"data.interactions={folder / 'log.csv'}", f"retrieval.batch_size={BATCH}", *extra]


def _cfg(tmp_path, folder, *extra):
    return load_config(overrides=_sets(tmp_path, folder, *extra))


def _dataset(folder):
    return load_files(folder / "items.csv", folder / "log.csv", name=f"custom-{folder.name}")


def _cli(tmp_path, folder, *args, sets=(), gate: Path | None = None, gate_after: int = 1, **kw) -> subprocess.Popen:
    cmd = [sys.executable, str(tmp_path / "launch.py"), *args]
    for s in _sets(tmp_path, folder, *sets):
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "GATE": str(gate or ""),
           "GATE_AFTER": str(gate_after)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, **kw)


def _build_cmd(*extra):
    return ["index", "build", "--dataset", "custom", *extra]


def _open(tmp_path, folder, *extra) -> ItemIndex:
    return ItemIndex.open(_cfg(tmp_path, folder, *extra), _dataset(folder), text_encoder=HashEncoder(64, name="hash"),
                          clip_encoder=None)


def _wait_for_batches(proc: subprocess.Popen, n: int) -> None:
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("batch")
        if seen >= n:
            return
    raise AssertionError(f"the build ended after {seen} batches: {proc.stderr.read()}")


def assert_every_item_once_and_correct(index: ItemIndex, ds) -> None:
    """Every catalog id stored exactly once, with the right content hash and an embedding equal to
    a fresh encoding; nothing else stored."""
    col = index.client.get_collection(collection_name(index.dataset, "text"), embedding_function=None)
    ids = col.get()["ids"]
    assert len(ids) == len(set(ids)) == len(ds.catalog) and set(ids) == set(ds.catalog.ids)
    rows, _ = catalog_rows(ds.catalog)
    enc = HashEncoder(64, name="hash")
    stored = stored_hashes(col)
    want = {i: content_hash(enc.name, "text", text, meta) for i, text, meta in rows}
    assert stored == want
    got = index.embeddings([r[0] for r in rows])
    fresh = enc.embed_texts([r[1] for r in rows])
    assert len(got) == len(rows)
    for (iid, _, _), vec in zip(rows, fresh):
        assert np.allclose(got[iid], vec, atol=1e-6), iid


# ---------------------------------------------------------------------------------- the lock
def test_file_lock_timeout_names_the_holder_and_readers_share(tmp_path):
    path = tmp_path / "x.lock"
    held, release = threading.Event(), threading.Event()

    def writer():
        with file_lock(path, what="index X"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    held.wait(10)
    waits: list[str] = []
    try:
        with pytest.raises(LockTimeout) as err:
            with file_lock(path, shared=True, timeout=0.3, what="index X", on_wait=waits.append):
                pass
    finally:
        release.set()
        t.join()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("index X is locked by pid") and f"pid {os.getpid()}" in msg
    assert msg.endswith("try again.") and waits and "waiting up to 0 s" in waits[0]
    with file_lock(path, shared=True, timeout=0), file_lock(path, shared=True, timeout=0):
        pass  # readers share (the second is re-entrant in this thread)
    with file_lock(path, timeout=0):
        with file_lock(path, timeout=0):  # re-entrant: a locked function may call another
            pass
    assert path.read_text() == ""  # a released lock names nobody


@pytest.mark.slow  # real CLI processes (~1.5 s of CPU each)
def test_two_build_processes_take_turns_and_leave_every_item_once(tools, tmp_path):
    gate = tmp_path / "go"
    first = _cli(tmp_path, tools, *_build_cmd(), gate=gate)
    second = None
    try:
        _wait_for_batches(first, 1)  # the first holds the lock and waits at the gate
        second = _cli(tmp_path, tools, *_build_cmd("--json"))
        waiting = second.stderr.readline()  # the second's first words: it waits, and says for whom
        gate.touch()
        out2, err2 = second.communicate(timeout=120)
        out1, err1 = first.communicate(timeout=120)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
    assert f"is in use by pid {first.pid}" in waiting and "index build" in waiting, waiting + err2
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    report = json.loads(out2)
    assert report["channels"]["text"]["unchanged"] == N_ITEMS  # and then found the work done
    assert report["lock_wait_s"] > 0
    ds = _dataset(tools)
    index = _open(tmp_path, tools)
    assert index.location == str(layout(_cfg(tmp_path, tools), ds).index)
    assert index.location.endswith(os.path.join("runs", "custom-shop", "index"))  # one naming scheme
    assert index.health(ds).ok
    assert_every_item_once_and_correct(index, ds)


@pytest.mark.slow  # real CLI processes (~1.5 s of CPU each)
def test_second_writer_gives_up_after_the_timeout_with_one_line(tools, tmp_path):
    first = _cli(tmp_path, tools, *_build_cmd(), gate=tmp_path / "never")
    try:
        _wait_for_batches(first, 1)
        second = _cli(tmp_path, tools, *_build_cmd(), sets=["retrieval.lock_timeout=0.5"])
        _, err = second.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert second.returncode == 1
    assert lines[-1].startswith("error: index ") and f"locked by pid {first.pid}" in lines[-1]
    assert "--set retrieval.lock_timeout=SECONDS" in lines[-1] and "Traceback" not in err


@pytest.mark.slow  # real CLI processes (~1.5 s of CPU each)
def test_reader_opening_mid_build_waits_and_sees_the_whole_index(tools, tmp_path):
    cfg, ds = _cfg(tmp_path, tools), _dataset(tools)
    gate = tmp_path / "go"
    build = _cli(tmp_path, tools, *_build_cmd(), gate=gate, gate_after=2)
    try:
        _wait_for_batches(build, 2)
        waits: list[str] = []
        threading.Timer(1.0, gate.touch).start()  # the build goes on while this process waits to open
        t0 = time.perf_counter()
        index = ItemIndex.open(cfg, ds, text_encoder=HashEncoder(64, name="hash"), clip_encoder=None,
                               log_fn=waits.append)
        waited = time.perf_counter() - t0
        assert integrity.read_record(Path(index.location))["complete"]  # opened only after the build finished
        assert build.wait(timeout=60) == 0
    finally:
        if build.poll() is None:
            build.kill()
    assert waits and f"pid {build.pid}" in waits[0] and waited > 0.9
    assert index.health(ds).ok
    assert_every_item_once_and_correct(index, ds)


# ---------------------------------------------------------------------------------- kills
@pytest.mark.parametrize("kill_after", [1, 5, 11])
def test_build_killed_after_n_batches_is_reported_then_finished(tools, tmp_path, kill_after):
    proc = _cli(tmp_path, tools, *_build_cmd(), gate=tmp_path / "never", gate_after=kill_after)
    try:
        _wait_for_batches(proc, kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ds = _dataset(tools)
    index = _open(tmp_path, tools)
    h = index.health(ds)
    assert h.state == "incomplete" and "a build stopped before it finished" in h.detail
    stored = int(re.search(rf"\((\d+) of {N_ITEMS} items stored\)", h.detail).group(1))
    # killed while embedding batch n: batches 1..n-2 are stored, n-1 may be in flight, n is lost
    assert max(0, kill_after - 2) * BATCH <= stored <= (kill_after - 1) * BATCH
    with pytest.raises(IndexError_, match=r"is incomplete .*; finish it: `recagent index build --dataset custom"):
        index.query_text("hammer")  # never a silent partial index
    said: list[str] = []
    report = index.ensure_built(ds, log_fn=said.append)
    assert report is not None and any("finishing the build" in s for s in said)
    assert report.channels["text"]["total"] == N_ITEMS
    assert report.channels["text"]["added"] + report.channels["text"]["unchanged"] == N_ITEMS
    assert index.ensure_built(ds) is None  # whole now
    assert_every_item_once_and_correct(_open(tmp_path, tools), ds)


# ---------------------------------------------------------------------------------- damage
def _big(tmp_path, n=1500):
    """A catalog large enough that Chroma persists an HNSW graph (it keeps < 1,000 in its log)."""
    folder = tmp_path / "bigshop"
    folder.mkdir()
    rows = ["item_id,title,text"] + [f"b{i},Part {i},spare part {i} for machine {i % 97} size {i % 13}"
                                     for i in range(n)]
    (folder / "items.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "log.csv").write_text("user_id,item_id,timestamp\nu1,b1,1\n", encoding="utf-8")
    return folder


def _segment_file(index: ItemIndex, name: str) -> Path:
    segs = [p for p in Path(index.location).iterdir() if p.is_dir() and (p / "header.bin").exists()]
    files = sorted((p / name for p in segs if (p / name).stat().st_size > 0), key=lambda f: -f.stat().st_size)
    assert files, f"no persisted {name}"
    return files[0]


def _self_misses(index: ItemIndex, ds, n=40) -> int:
    """How many of n items spread over the catalog are not their own text's nearest neighbour."""
    enc = HashEncoder(64, name="hash")
    picks = np.linspace(0, len(ds.catalog) - 1, n).astype(int)
    vecs = enc.embed_texts([ds.catalog.describe(i) for i in picks])
    return sum(index.query_vector(v, k=1)[0].item_id != ds.catalog.ids[i] for i, v in zip(picks, vecs))


@pytest.mark.parametrize("damage", ["truncate-data_level0.bin", "truncate-header.bin", "garble-header.bin"])
def test_damaged_hnsw_file_gives_one_line_and_rebuild_repairs(tmp_path, damage):
    folder = _big(tmp_path)
    ds = _dataset(folder)
    index = _open(tmp_path, folder, "retrieval.batch_size=256")
    index.build(ds)
    assert _self_misses(index, ds) == 0
    how, name = damage.split("-", 1)
    f = _segment_file(index, name)
    if how == "truncate":
        with open(f, "r+b") as fh:
            fh.truncate(f.stat().st_size // 2)
    else:
        with open(f, "r+b") as fh:
            fh.seek(4)
            fh.write(os.urandom(40))
    broken = _open(tmp_path, folder, "retrieval.batch_size=256")
    h = broken.health(ds)
    assert h.state == "damaged" and name in h.detail
    with pytest.raises(IndexError_) as err:
        broken.query_text("spare part 7")  # never silently wrong neighbours
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"index {broken.location} is damaged")
    assert msg.endswith("repair it: `recagent index build --rebuild --dataset custom "
                        f"--set data.items={folder / 'items.csv'} --set data.interactions={folder / 'log.csv'}`.")
    with pytest.raises(IndexError_, match="--rebuild"):
        broken.build(ds)  # an incremental build on a damaged store would make it worse
    report = broken.rebuild(ds)
    assert report.channels["text"]["added"] == len(ds.catalog)
    fixed = _open(tmp_path, folder, "retrieval.batch_size=256")
    assert fixed.health(ds).ok and _self_misses(fixed, ds) == 0


@pytest.mark.slow  # real CLI processes (~1.5 s of CPU each)
def test_cli_on_a_damaged_store_says_one_line_and_rebuild_repairs(tools, tmp_path):
    ds = _dataset(tools)
    _open(tmp_path, tools).build(ds)
    db = Path(layout(_cfg(tmp_path, tools), ds).index) / "chroma.sqlite3"
    size = db.stat().st_size
    with open(db, "r+b") as fh:  # a damaged sqlite file (a disk error, a copy cut short)
        fh.seek(size // 3)
        fh.write(random.Random(3).randbytes(size // 3))  # seeded: the same damage every run
    for args in (["search", "hammer", "--dataset", "custom"], ["index", "status", "--dataset", "custom"]):
        p = _cli(tmp_path, tools, *args)
        out, err = p.communicate(timeout=120)
        if args[0] == "index":  # status reports it and exits 0
            assert p.returncode == 0 and "damaged" in out, err
            continue
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert p.returncode == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("error: index ") and "is damaged" in lines[0]
        assert "recagent index build --rebuild --dataset custom" in lines[0]
    p = _cli(tmp_path, tools, *_build_cmd("--rebuild"))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    index = _open(tmp_path, tools)
    assert index.health(ds).ok
    assert_every_item_once_and_correct(index, ds)


def test_item_without_embedding_is_found_and_re_embedded(tools, tmp_path):
    ds = _dataset(tools)
    index = _open(tmp_path, tools)
    index.build(ds)
    col = index.client.get_collection(collection_name(index.dataset, "text"), embedding_function=None)
    col.upsert(ids=["t3"], embeddings=[[0.0] * 64], metadatas=[col.get(ids=["t3"])["metadatas"][0]])  # what racing writers left
    report = index.build(ds)
    assert report.repaired == {"text": 1}
    assert_every_item_once_and_correct(index, ds)


# ---------------------------------------------------------------------------------- data changes
def test_changed_catalog_is_detected_on_open_and_updated_with_a_log_line(tools, tmp_path):
    ds = _dataset(tools)
    _open(tmp_path, tools).build(ds)
    items = tools / "items.csv"
    items.write_text(items.read_text().replace("A hammer for", "A heavy hammer for", 1), encoding="utf-8")
    ds2 = _dataset(tools)
    index = _open(tmp_path, tools)
    h = index.health(ds2)
    assert h.state == "stale" and "catalog changed" in h.detail
    said: list[str] = []
    report = index.ensure_built(ds2, log_fn=said.append)
    assert any("catalog changed since it was built; updating it" in s for s in said)
    assert report.channels["text"]["updated"] == 1 and report.channels["text"]["unchanged"] == N_ITEMS - 1
    assert index.health(ds2).ok
    assert_every_item_once_and_correct(index, ds2)


def test_index_built_by_an_older_recagent_must_be_finished_before_use(tools, tmp_path):
    ds = _dataset(tools)
    index = _open(tmp_path, tools)
    index.build(ds)
    (Path(index.location) / "build.json").unlink()  # what an index built before build records looks like
    again = _open(tmp_path, tools)
    assert again.health().state == "incomplete"
    with pytest.raises(IndexError_, match="no record of a finished build"):
        again.query_text("saw")
    assert again.ensure_built(ds).channels["text"]["unchanged"] == N_ITEMS  # nothing re-embedded
    assert again.query_text("saw", k=1)


# ---------------------------------------------------------------------------------- options
@pytest.mark.parametrize("args", [["--k", "0"], ["--k", "-3"], ["--k", "x"], ["--year-min", "2000", "--year-max", "1990"]])
def test_search_rejects_bad_numbers_with_one_error_line(args):
    from recagent.cli import cli

    res = CliRunner().invoke(cli, ["search", "robots", *args])
    assert res.exit_code == 2
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and ("--k" in errors[0] or "--year-min" in errors[0]) and "Traceback" not in res.output


def test_encoder_change_is_stale_and_delete_leaves_nothing(tools, tmp_path):
    ds = _dataset(tools)
    _open(tmp_path, tools).build(ds)
    other = ItemIndex.open(_cfg(tmp_path, tools), ds, text_encoder=HashEncoder(32, name="hash-32"), clip_encoder=None)
    h = other.health(ds)
    assert h.state == "stale" and "embedded with hash, the text encoder is now hash-32" in h.detail
    other.delete()
    assert not Path(other.location).exists()
    assert _open(tmp_path, tools).health(ds).state == "empty"
