"""Scale benchmark on a SYNTHETIC log (recagent.data.synthetic; not real users or items):
per model, fit time, peak RSS and the latency of ``recommend`` for one user. Prints JSON.

Each model runs in its own subprocess, so its peak RSS (``ru_maxrss``) is its own; a model
that refuses the catalog (EASE's memory guard) or runs past ``--timeout`` is reported as such.
Neural models train for a fixed small number of epochs (said in the output): the point is
cost per epoch at scale, not accuracy (accuracy on a synthetic log means nothing).

    nice -n 5 .venv/bin/python benchmarks/scale.py                      # ~1M x 20k items x 50k users
    .venv/bin/python benchmarks/scale.py --scale 0.1 --models ease,rp3beta   # quick look
    nice -n 5 .venv/bin/python benchmarks/scale.py --models fusion-chat  # the chat's ranking step

``fusion-chat`` is the chat's per-turn ranking at that scale: the fusion ranker over the channels
that fit there (EASE / DLAE refuse 20k items; MultiVAE and SASRec train one epoch in 162 s and
65 s here, left out to keep this run short), trained briefly on a few hundred held-out last items (its accuracy is not the point),
then per user: one full-catalog scoring pass (``FusionRanker.contributions``, what
``agent/fusion_ranker.py`` calls each turn to pick and explain its candidates), ``rank`` of 300
candidates and ``recommend``; p50 / p95 over ``CHAT_USERS`` users, plus each channel's share.
Measured 2026-11-27 (50k users, 20k items, 969k interactions, quiet machine, load 0.05-1.0): full
pass p50 39 ms, p95 47 ms; rank of 300 candidates p50 9 ms; recommend p50 39 ms; peak RSS 4.6 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

MODELS = ("pop", "itemknn", "ease", "dlae", "rp3beta", "gfcf", "userknn", "bpr", "multivae", "sasrec", "content", "slim")
#: per-model settings at scale: defaults except a fixed epoch budget for the neural models (no
#: validation split, so no early stopping) and SASRec's sampled gBCE loss, which is what its
#: full softmax over 20k items would need to fit in memory and time on CPU
SETTINGS = {"bpr": {"epochs": 3}, "multivae": {"epochs": 1}, "sasrec": {"epochs": 1, "loss": "gbce", "negatives": 256}}
#: the fusion-chat run: channels fit at this scale (grid-free, the models' defaults), the
#: users whose last item trains the net, and the users timed
CHAT_CHANNELS = ("itemknn", "rp3beta", "gfcf", "userknn", "bpr")
CHAT_VALID_USERS = 200
CHAT_USERS = 50


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply users, items and interactions")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per model (fit + latency)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    shape = dict(n_users=int(a.users * a.scale), n_items=int(a.items * a.scale),
                 n_interactions=int(a.interactions * a.scale))
    if a.child:
        fn = _chat_child if a.child == "fusion-chat" else _child
        print(json.dumps(fn(a.child, shape) if fn is _child else fn(shape)), flush=True)
        return
    out = {"data": {"kind": "SYNTHETIC (recagent.data.synthetic)", **shape, "scale": a.scale},
           "settings": SETTINGS, "threads": os.environ.get("OMP_NUM_THREADS"), "models": {}}
    for name in [m.strip() for m in a.models.split(",") if m.strip()]:
        cmd = [sys.executable, __file__, "--child", name, "--users", str(shape["n_users"]), "--items",
               str(shape["n_items"]), "--interactions", str(shape["n_interactions"])]
        t = time.time()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            res = json.loads(lines[-1]) if lines else {"status": f"failed (rc {r.returncode}): {r.stderr.strip()[-300:]}"}
        except subprocess.TimeoutExpired:
            res = {"status": f"timeout after {a.timeout:.0f} s"}
        res["wall_s"] = round(time.time() - t, 1)
        out["models"][name] = res
        print(f"{name}: {res}", file=sys.stderr, flush=True)
    out["data"].update(out["models"].get(next(iter(out["models"]), ""), {}).get("data", {}))
    print(json.dumps(out, indent=2))


def _child(name: str, shape: dict) -> dict:
    import numpy as np

    from recagent.data.synthetic import SyntheticSpec, generate
    from recagent.errors import RecagentError
    from recagent.ranking.base import History
    from recagent.ranking.registry import model_class

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    t = time.time()
    df = generate(SyntheticSpec(**shape))
    hist = History.from_frame(df, shape["n_users"], shape["n_items"])
    data = {"interactions": int(hist.matrix.nnz), "generate_s": round(time.time() - t, 1)}
    res = {"data": data, "data_rss_mib": _rss_mib(), "params": SETTINGS.get(name, {})}
    model = model_class(name)(**SETTINGS.get(name, {}))
    if name == "content":   # synthetic item vectors (random, unit length): cost only
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((shape["n_items"], 384)).astype(np.float32)
        model.set_embeddings(emb / np.linalg.norm(emb, axis=1, keepdims=True))
        res["params"] = {"embeddings": "random 384-d (synthetic)"}
    t = time.time()
    try:
        model.fit(hist)
    except RecagentError as e:
        return {**res, "status": f"refused: {e}", "fit_s": round(time.time() - t, 1), "peak_rss_mib": _rss_mib()}
    res["fit_s"] = round(time.time() - t, 1)
    users = np.random.default_rng(1).integers(0, shape["n_users"], 21)
    lat = []
    for u in users:
        t = time.perf_counter()
        model.recommend(int(u), k=10)
        lat.append(time.perf_counter() - t)
    res.update(status="ok", recommend_one_user_ms_median=round(1000 * float(np.median(lat[1:])), 1),
               recommend_one_user_ms_first=round(1000 * lat[0], 1), peak_rss_mib=_rss_mib())
    return res


def _chat_child(shape: dict) -> dict:
    """The chat's ranking step at scale (see the module docstring)."""
    import numpy as np

    from recagent.data.synthetic import SyntheticSpec, generate
    from recagent.ranking.base import History
    from recagent.ranking.fusion import FusionRanker
    from recagent.ranking.registry import model_class

    import torch

    torch.set_num_threads(1)
    t = time.time()
    df = generate(SyntheticSpec(**shape))
    n_u, n_i = shape["n_users"], shape["n_items"]
    rng = np.random.default_rng(0)
    # the last item of a few users is the fusion net's validation target
    last = df.groupby("uidx").tail(1)
    last = last[df.groupby("uidx")["uidx"].transform("size").loc[last.index] > 2]
    valid = last.loc[rng.choice(last.index.to_numpy(), CHAT_VALID_USERS, replace=False)]
    train = History.from_frame(df.drop(valid.index), n_u, n_i)
    res = {"data": {"interactions": int(train.matrix.nnz), "generate_s": round(time.time() - t, 1)},
           "channels": list(CHAT_CHANNELS), "fit_s": {}}
    models = {}
    for name in CHAT_CHANNELS:
        t = time.time()
        models[name] = model_class(name)(**SETTINGS.get(name, {})).fit(train)
        res["fit_s"][name] = round(time.time() - t, 1)
    emb = rng.standard_normal((n_i, 384)).astype(np.float32)        # random text vectors: cost only
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    t = time.time()
    fusion = FusionRanker(channels=list(CHAT_CHANNELS) + ["text_hist", "pop", "recency"], members=1, epochs=3,
                          patience=1, select=False).fit(train, valid, base_models=models, text_emb=emb)
    res["fit_s"]["fusion"] = round(time.time() - t, 1)
    users = rng.choice(np.flatnonzero(np.diff(train.matrix.indptr) > 0), CHAT_USERS + 1, replace=False)
    lat = {"contributions_full_catalog": [], "rank_300_candidates": [], "recommend_k10": []}
    per_channel = {name: [] for name in CHAT_CHANNELS}
    for u in users:
        hist = list(train.sequences[u])
        t = time.perf_counter()
        fusion.contributions(hist, user=int(u))
        lat["contributions_full_catalog"].append(time.perf_counter() - t)
        cands = rng.choice(n_i, 300, replace=False)
        t = time.perf_counter()
        fusion.rank(hist, cands, user=int(u))
        lat["rank_300_candidates"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fusion.recommend(int(u), k=10)
        lat["recommend_k10"].append(time.perf_counter() - t)
        one = fusion._one_user_history(hist, int(u))
        for name, m in models.items():
            t = time.perf_counter()
            m.score(np.array([int(u)])) if name == "bpr" else m.score(np.array([0]), one)
            per_channel[name].append(time.perf_counter() - t)
    ms = lambda v, q: round(1000 * float(np.percentile(v[1:], q)), 1)  # noqa: E731 (first call warms caches)
    res["latency_ms"] = {k: {"p50": ms(v, 50), "p95": ms(v, 95)} for k, v in lat.items()}
    res["channel_score_ms_p50"] = {k: ms(v, 50) for k, v in per_channel.items()}
    res.update(status="ok", users_timed=CHAT_USERS, peak_rss_mib=_rss_mib())
    return res


def _rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    main()
