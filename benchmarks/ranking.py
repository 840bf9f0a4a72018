"""Benchmark: full `eval` of every model on Protocol A and/or B of ML-100K; prints one JSON object
with test metrics, the fused model's paired bootstrap CI against the best single model (chosen
on validation), what fusion serves, the ablation table, targets and timings (wall seconds on
this machine, which may be shared: say so when quoting them).

Usage:
  OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/ranking.py [A|B|AB] [--no-ablations]
      [--channels ease,itemknn,...] [--refit-folds K] [--loss softmax|topn] [--topn N]
      [--fusion repeats=3 ...] [--models pop,ease,...,fusion]

Measured 2026-11-27 (shared 2-core machine, load 2.9-3.4, `benchmarks/ranking.py AB`: every
model, ablations on, fusion channels ranking.train.FUSION_CHANNELS):
  A: fusion NDCG@10 0.2432 vs DLAE 0.2312, diff +0.0119 [+0.0058, +0.0185]; eval 193 s
  A again with 10 members x 2 seed cuts (ranking.train.FUSION_ENSEMBLE, `benchmarks/ranking.py A`,
  nice 19, load 3.3-4.0): fusion 0.2431 vs DLAE, diff +0.0118 [+0.0059, +0.0182]; 143 s CPU
  (user 82 + sys 61; 12.0 min wall on the busy machine, not a timing), peak RSS 2.5 GB
  B: fusion NDCG@10 0.1299 vs SASRec 0.1071, diff +0.0228 [+0.0121, +0.0341]; eval 521 s
  B again 07:03 UTC (same setting, nice 19, busy): 0.1283, diff +0.0212 [+0.0103, +0.0331]; 808 s
  with ablations (table in README). SASRec recipes: `B --models sasrec --grid 'sasrec:block="ligr"'`
  (eSASRec's LiGR layers) or `--grid 'sasrec:loss="gbce"'`; numbers in ranking/sasrec.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

TARGETS = {"A": 0.243, "B": 0.125}



def main(argv: list[str]) -> None:
    import resource

    import torch

    torch.set_num_threads(1)
    from recagent.config import load_config
    from recagent.data import load_dataset
    from recagent.eval.peers import BEST_PEER
    from recagent.eval.runner import parse_models, run_eval

    ap = argparse.ArgumentParser()
    ap.add_argument("protocols", nargs="?", default="AB")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--channels", default=None, help="fusion's collaborative channels (default: FUSION_CHANNELS)")
    ap.add_argument("--refit-folds", type=int, default=None, help="default: ranking.train.REFIT_FOLDS")
    ap.add_argument("--loss", default=None)
    ap.add_argument("--topn", type=int, default=None)
    ap.add_argument("--fusion", action="append", default=[],
                    help="FusionRanker argument, e.g. repeats=3 or loss=\"topn\" (JSON value; repeatable)")
    ap.add_argument("--models", default="all")
    ap.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    ap.add_argument("--grid", action="append", default=[],
                    help="one grid point instead of a model's grid, e.g. sasrec:max_len=50 (repeatable)")
    a = ap.parse_args(argv)
    overrides = (["ranking.ablations=false"] if a.no_ablations else []) + a.set
    cfg = load_config(overrides=overrides)
    grids = {}
    for g in a.grid:
        name, _, kv = g.partition(":")
        point = {k: json.loads(v) for k, v in (x.split("=") for x in kv.split(","))}
        grids.setdefault(name, []).append(point)
    ds = load_dataset(cfg, "ml-100k")
    out = {"dataset": "ml-100k", "threads": 1, "load_avg_at_start": os.getloadavg(),
           "note": "wall times on a 2-core machine shared with other jobs (pessimistic)", "args": vars(a),
           "protocols": {}}
    for p in a.protocols.upper():
        models = parse_models(a.models)
        if p == "A" and a.models == "all":
            models = [m for m in models if m != "sasrec"]   # a random split has no order to model
        fp = {} if a.refit_folds is None else {"refit_folds": a.refit_folds}
        if a.loss:
            fp["loss"] = a.loss
        if a.topn:
            fp["topn"] = a.topn
        for kv in a.fusion:
            k, _, v = kv.partition("=")
            fp[k] = json.loads(v)
        t = time.time()
        with tempfile.TemporaryDirectory() as d:
            r = run_eval(cfg, ds, p, models, d, log=lambda s: print(s, file=sys.stderr, flush=True), save=False,
                         channels=a.channels.split(",") if a.channels else None, fusion_params=fp, grids=grids)
        total = time.time() - t
        fus = r.results.get("fusion", {}).get("ndcg@10")
        out["protocols"][p] = {
            "table": {m: {k: round(v, 4) for k, v in res.items() if k in ("ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "recall@20")}
                      for m, res in r.results.items()},
            "valid_ndcg@10": r.valid,
            "best_single_by_valid": r.best_baseline,
            "fusion_vs_best_single_ndcg@10_ci95": r.ci.get("fusion", {}).get("ndcg@10"),
            "fusion_serves": r.fusion_selection.get("served"),
            "fusion_selection_valid_ndcg@10": r.fusion_selection.get("valid_ndcg@10"),
            "ablations_ndcg@10": {k: v["ndcg@10"] for k, v in r.ablations.items()},
            "target_fusion_ndcg@10": TARGETS[p], "fusion_ndcg@10": fus,
            "target_met": fus is not None and fus >= TARGETS[p],
            "best_peer": BEST_PEER[p],
            "fusion_params": {k: v for k, v in r.info.get("fusion", {}).items() if k in ("members",)} | fp,
            "timings_s": r.timings, "total_eval_s": round(total, 1),
            "fusion_info": {k: v for k, v in r.info.get("fusion", {}).items() if k not in ("gate_base", "selection")},
        }
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
