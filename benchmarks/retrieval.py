"""Retrieval benchmark: HNSW recall vs exact search, query latency, build throughput, memory.

Prints one JSON object. Parts:

* ``ml100k``: real all-MiniLM-L6-v2 embeddings of the 1,682 ML-100K items: raw encoder
  throughput vs ``ItemIndex.build`` throughput (same run, same batch size), recall@10 of the
  index against numpy brute force (every item as a query, itself included), p50/p95 latency
  with and without a category + year filter.
* ``ml100k.open``: what a fresh process pays to open the built index once (lock, HNSW file-size
  check, client, then ``health(dataset)``: build record, counts, 8-item self-query probe, catalog
  fingerprint) and its first queries, beside the same first query on a bare Chroma client.
* ``open_random``: the same checks on N random vectors (the estimate at 100k items).
* ``random``: N random 384-d unit vectors (N = 100,000; 20,000 with ``--quick``) in a
  collection with the index's HNSW settings: insert rate, recall@10 (unfiltered and filtered)
  for ef_search in a sweep, p50/p95 latency, on-disk bytes and resident memory per 100k vectors.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/retrieval.py [--quick] [--n N] [--queries Q]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def _exact_topk(base: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    sims = queries @ base.T
    if mask is not None:
        sims[:, ~mask] = -np.inf
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def _recall(found: list[list[int]], exact: np.ndarray) -> float:
    hits = [len(set(f) & set(e.tolist())) / max(1, len(e)) for f, e in zip(found, exact)]
    return round(float(np.mean(hits)), 4)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def bench_ml100k(cfg, work: Path, n_queries: int) -> dict:
    import torch

    from recagent.data import load_dataset
    from recagent.retrieval import Filters, ItemIndex, TextEncoder

    torch.set_num_threads(1)
    ds = load_dataset(cfg, "ml-100k")
    cat = ds.catalog
    texts = [cat.describe(i) for i in range(len(cat))]
    enc = TextEncoder.from_config(cfg)
    enc.embed_texts(texts[:64])  # warm-up
    t = time.perf_counter()
    raw = enc.embed_texts(texts, batch_size=cfg.retrieval.batch_size)
    raw_s = time.perf_counter() - t
    index = ItemIndex.open(cfg.replace("paths", runs_dir=str(work)), "ml-100k", text_encoder=enc, clip_encoder=None)
    t = time.perf_counter()
    report = index.build(ds)
    build_s = time.perf_counter() - t
    # the machine is shared: time the raw encoder again after the build and use the mean
    t = time.perf_counter()
    enc.embed_texts(texts, batch_size=cfg.retrieval.batch_size)
    raw_s = (raw_s + time.perf_counter() - t) / 2
    stored = index.embeddings(cat.ids)
    base = np.stack([stored[str(i)] for i in cat.ids])
    rng = np.random.default_rng(0)
    qi = rng.choice(len(cat), size=min(n_queries, len(cat)), replace=False)
    # queries: item embeddings (item->item neighbours) and fresh text queries' embeddings
    queries = base[qi]
    exact = _exact_topk(base, queries, 10)
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.query_vector(q, 10, "text")
        lat.append(time.perf_counter() - t)
        found.append([cat.index[h.item_id] for h in hits])
    f = Filters(include_categories=("Drama", "Comedy"), year_min=1980, year_max=1998)
    mask = np.array([f.accepts({**cat.row(i), "item_id": str(cat.ids[i])}) for i in range(len(cat))])
    exact_f = _exact_topk(base, queries, 10, mask)
    lat_f, found_f = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.query_vector(q, 10, "text", f)
        lat_f.append(time.perf_counter() - t)
        found_f.append([cat.index[h.item_id] for h in hits])
    t = time.perf_counter()
    enc.embed_texts(["space adventure with robots"])
    q_embed_ms = (time.perf_counter() - t) * 1000
    n = len(cat)
    opens: dict[str, list[dict]] = {"checked": [], "bare": []}
    for _ in range(5):  # alternate, so both see the same machine load
        for mode in opens:
            opens[mode].append(_fresh(["--_open", str(work), mode] + [f"--set={o}" for o in _overrides]))
    return {"open": {mode: _median_rows(rows) for mode, rows in opens.items()},
        "items": n, "encoder": enc.name, "max_raw_diff": float(np.abs(raw - base).max()),
        "raw_encoder_items_per_s": round(n / raw_s, 1), "build_items_per_s": round(n / build_s, 1),
        "build_vs_raw": round(raw_s / build_s, 3), "build_s": round(build_s, 2), "embedded": report.embedded,
        "recall_at_10": _recall(found, exact), "recall_at_10_filtered": _recall(found_f, exact_f),
        "filter": "Drama|Comedy, 1980-1998", "filter_selectivity": round(float(mask.mean()), 3),
        "latency": _pct(lat), "latency_filtered": _pct(lat_f), "query_text_embed_ms": round(q_embed_ms, 2),
    }


def _random_data(n: int, n_queries: int, dim: int = 384):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((n, dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = rng.standard_normal((n_queries, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    cats = [f"c{j}" for j in range(10)]
    metas = [{"item_id": str(i), "categories": [cats[i % 10], cats[(i * 7 + 3) % 10]], "year": 1950 + i % 70}
             for i in range(n)]
    return base, queries, metas


def bench_random(cfg, work: Path, n: int, n_queries: int, efs: list[int], dim: int = 384) -> dict:
    import subprocess

    import chromadb
    from chromadb.config import Settings

    s = cfg.retrieval
    base, _, metas = _random_data(n, n_queries, dim)
    folder = work / "random"
    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("random-text", embedding_function=None, configuration={"hnsw": {
        "space": "cosine", "max_neighbors": s.hnsw_m, "ef_construction": s.hnsw_ef_construction, "ef_search": s.hnsw_ef_search}})
    step = min(5000, client.get_max_batch_size())
    t = time.perf_counter()
    for a in range(0, n, step):
        col.add(ids=[str(i) for i in range(a, min(n, a + step))], embeddings=base[a:a + step], metadatas=metas[a:a + step])
    insert_s = time.perf_counter() - t
    out: dict = {"vectors": n, "dim": dim, "hnsw_m": s.hnsw_m, "ef_construction": s.hnsw_ef_construction,
                 "insert_s": round(insert_s, 1), "insert_vectors_per_s": round(n / insert_s, 1), "sweep": {}}
    for ef in efs:
        # Chroma applies a changed ef_search when a process loads the index, so each setting
        # is measured in a fresh process (as a real query process would see it).
        col.modify(configuration={"hnsw": {"ef_search": ef}})
        res = subprocess.run([sys.executable, __file__, "--_query", str(folder), str(n), str(n_queries)],
                             capture_output=True, text=True, check=True)
        out["sweep"][f"ef_search={ef}"] = json.loads(res.stdout.strip().splitlines()[-1])
    out["filter"] = "categories contains c3 and year >= 1970"
    disk = _dir_bytes(folder)
    out["disk_mb_per_100k"] = round(disk / 2**20 * 100_000 / n, 1)
    out["raw_float32_mb_per_100k"] = round(100_000 * dim * 4 / 2**20, 1)
    return out


def _query_random(folder: str, n: int, n_queries: int) -> dict:
    import chromadb
    from chromadb.config import Settings

    from recagent.retrieval import Filters

    base, queries, metas = _random_data(n, n_queries)
    f = Filters(include_categories=("c3",), year_min=1970)
    mask = np.array([f.accepts(m) for m in metas])
    exact, exact_f = _exact_topk(base, queries, 10), _exact_topk(base, queries, 10, mask)
    del base
    rss0 = _rss()
    from recagent.config import load_config
    from recagent.retrieval import ItemIndex

    client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
    col = client.get_collection("random-text", embedding_function=None)
    t = time.perf_counter()
    col.query(query_embeddings=queries[:1], n_results=10, include=[])
    row: dict = {"ef_search": col.configuration["hnsw"]["ef_search"], "load_s": round(time.perf_counter() - t, 2)}
    # collection "random-text" is channel "text" of an ItemIndex over data set "random"
    index = ItemIndex(client, "random", load_config().retrieval, text_encoder=None, clip_encoder=None)
    for name, flt, ex in (("unfiltered", None, exact), ("filtered", f, exact_f), ("filtered_chroma_where", f, exact_f)):
        lat, found = [], []
        for q in queries:
            t = time.perf_counter()
            if name == "filtered_chroma_where":  # Chroma's own pre-filter, for comparison
                ids = col.query(query_embeddings=q[None, :], n_results=10, where=f.where(), include=["distances"])["ids"][0]
            else:
                ids = [h.item_id for h in index.query_vector(q, 10, "text", flt)]
            lat.append(time.perf_counter() - t)
            found.append([int(i) for i in ids])
        row[name] = {"recall_at_10": _recall(found, ex), **_pct(lat)}
    row["filter_selectivity"] = round(float(mask.mean()), 3)
    row["rss_mb_per_100k_loaded"] = round((_rss() - rss0) / 2**20 * 100_000 / n, 1)
    return row


_overrides: list[str] = []  # the --set values, passed on to the fresh processes


def _fresh(args: list[str]) -> dict:
    import subprocess

    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median_rows(rows: list[dict]) -> dict:
    return {k: round(float(np.median([r[k] for r in rows])), 3) for k in rows[0]} | {"runs": len(rows)}


def _open_ml100k(work: str, mode: str, overrides: list[str]) -> dict:
    """In a fresh process: open the ML-100K index built under ``work`` and run a first query,
    ``checked`` (ItemIndex.open + health, as every command does) or ``bare`` (a plain Chroma
    client, what a process paid before the checks). Both pay Chroma's own first-access load."""
    t_all = time.perf_counter()
    from recagent.config import load_config
    from recagent.data import load_dataset
    from recagent.retrieval import HashEncoder
    from recagent.runs import layout

    cfg = load_config(overrides=overrides).replace("paths", runs_dir=work)
    ds = load_dataset(cfg, "ml-100k")
    ds.catalog.fingerprint  # noqa: B018 - the loaded data set computes it once anyway (saved models check it)
    folder = layout(cfg, ds).index
    q = HashEncoder(384).embed_texts(["space adventure with robots"])[0]  # the encoder is not what is timed
    row: dict = {"setup_ms": (time.perf_counter() - t_all) * 1000}
    t0 = time.perf_counter()
    if mode == "checked":
        from recagent.retrieval import ItemIndex

        index = ItemIndex.open(cfg, ds, text_encoder=None, clip_encoder=None)
        row["open_ms"] = (time.perf_counter() - t0) * 1000
        t = time.perf_counter()
        h = index.health(ds)
        row["health_ms"] = (time.perf_counter() - t) * 1000
        assert h.ok, h
        query = lambda: index.query_vector(q, 10)  # noqa: E731
    else:
        import chromadb
        from chromadb.config import Settings

        from recagent.retrieval.store import collection_name

        c = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
        col = c.get_collection(collection_name("ml-100k", "text"), embedding_function=None)
        query = lambda: col.query(query_embeddings=q[None, :], n_results=10, include=["distances"])  # noqa: E731
    t = time.perf_counter()
    query()
    row["first_query_ms"] = (time.perf_counter() - t) * 1000
    row["to_first_result_ms"] = (time.perf_counter() - t0) * 1000
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        query()
        lat.append(time.perf_counter() - t)
    row["query_p50_ms"] = float(np.median(lat)) * 1000
    return row


def bench_open_random(work: Path, n: int, dim: int = 384) -> dict:
    """The open checks on ``n`` random vectors: HNSW file sizes, count, probe; plus the catalog
    fingerprint of an ``n``-item synthetic catalog (each in a fresh process where it matters)."""
    import chromadb
    import pandas as pd
    from chromadb.config import Settings

    from recagent.data import Catalog
    from recagent.retrieval import integrity
    from recagent.retrieval.store import collection_name

    base, _, metas = _random_data(n, 1, dim)
    folder = work / "open-random" / "index"
    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    col = client.create_collection(collection_name("random", "text"), embedding_function=None,
                                   configuration={"hnsw": {"space": "cosine"}})
    step = min(5000, client.get_max_batch_size())
    for a in range(0, n, step):
        col.add(ids=[str(i) for i in range(a, min(n, a + step))], embeddings=base[a:a + step], metadatas=metas[a:a + step])
    ids = [str(i) for i in range(n)]
    integrity.write_record(folder, {"text": {"count": n, "encoder": "random",
                                             "probe": integrity.probe_of(col, integrity.probe_ids(ids))}})
    del client, col
    items = pd.DataFrame({"item_id": ids, "title": [f"Item {i}" for i in range(n)],
                          "text": [f"some description of item {i}" for i in range(n)],
                          "categories": [[f"c{i % 10}"] for i in range(n)], "year": pd.array([1950 + i % 70 for i in range(n)], dtype="Int64"),
                          "image_path": [None] * n})
    t = time.perf_counter()
    Catalog(items).fingerprint  # noqa: B018
    fp_ms = (time.perf_counter() - t) * 1000
    rows = [_fresh(["--_open-random", str(folder)]) for _ in range(3)]
    return {"items": n, "catalog_fingerprint_ms": round(fp_ms, 1), **_median_rows(rows)}


def _open_random(folder: str) -> dict:
    import chromadb
    from chromadb.config import Settings

    from recagent.retrieval import integrity
    from recagent.retrieval.store import collection_name

    row = {}
    t = time.perf_counter()
    integrity.segment_problem(Path(folder))
    row["segment_check_ms"] = (time.perf_counter() - t) * 1000
    rec = integrity.read_record(Path(folder))
    client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
    col = client.get_collection(collection_name("random", "text"), embedding_function=None)
    t = time.perf_counter()
    col.query(query_embeddings=np.ones((1, 384), np.float32), n_results=1, include=[])
    row["load_first_query_ms"] = (time.perf_counter() - t) * 1000  # paid by any first query, checked or not
    t = time.perf_counter()
    col.count()
    row["count_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    problem = integrity.probe_problem(col, rec["channels"]["text"]["probe"])
    row["probe_ms"] = (time.perf_counter() - t) * 1000
    assert problem is None, problem
    return row


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_query"]:  # internal: the query phase of bench_random, in a fresh process
        print(json.dumps(_query_random(argv[1], int(argv[2]), int(argv[3]))))
        return
    if argv[:1] == ["--_open"]:  # internal: opening the ML-100K index in a fresh process
        print(json.dumps(_open_ml100k(argv[1], argv[2], [a.split("=", 1)[1] for a in argv[3:]])))
        return
    if argv[:1] == ["--_open-random"]:
        print(json.dumps(_open_random(argv[1])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20k random vectors instead of 100k")
    ap.add_argument("--n", type=int, default=None, help="random vectors (overrides --quick)")
    ap.add_argument("--queries", type=int, default=200, help="queries per measurement")
    ap.add_argument("--ef", default="", help="comma-separated ef_search sweep (default: the config's value)")
    ap.add_argument("--skip-ml100k", action="store_true")
    ap.add_argument("--skip-random", action="store_true")
    ap.add_argument("--open-only", action="store_true", help="only the open/verify cost (ml100k + --n random items)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override section.key=value")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from recagent.config import load_config

    cfg = load_config(overrides=args.overrides)
    _overrides[:] = args.overrides
    n = args.n or (20_000 if args.quick else 100_000)
    efs = [int(x) for x in args.ef.split(",") if x] or [cfg.retrieval.hnsw_ef_search]
    work = Path(tempfile.mkdtemp(prefix="recagent-bench-"))
    out: dict = {"machine": {"cpus": os.cpu_count(), "omp_threads": os.environ.get("OMP_NUM_THREADS")},
                 "hnsw": {"m": cfg.retrieval.hnsw_m, "ef_construction": cfg.retrieval.hnsw_ef_construction,
                          "ef_search": cfg.retrieval.hnsw_ef_search}}
    try:
        if not args.skip_ml100k:
            out["ml100k"] = bench_ml100k(cfg, work, args.queries)
            print(json.dumps({"partial": out}), file=sys.stderr, flush=True)
        if not args.skip_random:
            out["open_random"] = bench_open_random(work, n)
            print(json.dumps({"partial": out}), file=sys.stderr, flush=True)
        if not args.skip_random and not args.open_only:
            out["random"] = bench_random(cfg, work, n, args.queries, efs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
