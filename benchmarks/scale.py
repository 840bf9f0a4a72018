"""Scale benchmark on a SYNTHETIC log (recagent.data.synthetic; not real users or items):
per model, fit time, peak RSS and the latency of ``recommend`` for one user. Prints JSON.

Each model runs in its own subprocess, so its peak RSS (``ru_maxrss``) is its own; a model
that refuses the catalog (EASE's memory guard) or runs past ``--timeout`` is reported as such.
Neural models train for a fixed small number of epochs (said in the output): the point is
cost per epoch at scale, not accuracy (accuracy on a synthetic log means nothing).

    nice -n 5 .venv/bin/python benchmarks/scale.py                      # ~1M x 20k items x 50k users
    .venv/bin/python benchmarks/scale.py --scale 0.1 --models ease,rp3beta   # quick look
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
        print(json.dumps(_child(a.child, shape)), flush=True)
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


def _rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    main()
