"""Benchmark: full `eval` of all models on Protocol A and/or B of ML-100K; prints one JSON object
with test metrics, targets, timings (wall seconds on this machine, which may be shared).

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ranking.py [A|B|AB] [--no-ablations]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

TARGETS = {"A": 0.243, "B": 0.111}


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    from recagent.config import load_config
    from recagent.data import load_dataset
    from recagent.eval.peers import BEST_PEER
    from recagent.eval.runner import run_eval

    protocols = (argv[0] if argv and not argv[0].startswith("-") else "AB").upper()
    overrides = ["ranking.ablations=false"] if "--no-ablations" in argv else []
    cfg = load_config(overrides=overrides)
    ds = load_dataset(cfg, "ml-100k")
    out = {"dataset": "ml-100k", "threads": 1, "note": "wall times on a 2-core machine shared with other jobs (pessimistic)",
           "protocols": {}}
    for p in protocols:
        t = time.time()
        with tempfile.TemporaryDirectory() as d:
            r = run_eval(cfg, ds, p, ["pop", "itemknn", "ease", "bpr", "sasrec", "content", "fusion"], d,
                         log=lambda s: print(s, file=sys.stderr, flush=True))
        total = time.time() - t
        fus = r.results["fusion"]["ndcg@10"]
        out["protocols"][p] = {
            "table": {m: {k: round(v, 4) for k, v in res.items() if k in ("ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "recall@20")}
                      for m, res in r.results.items()},
            "best_baseline": r.best_baseline,
            "fusion_vs_best_baseline_ndcg@10_ci95": r.ci.get("fusion", {}).get("ndcg@10"),
            "ablations_ndcg@10": {k: v["ndcg@10"] for k, v in r.ablations.items()},
            "target_fusion_ndcg@10": TARGETS[p], "fusion_ndcg@10": fus, "target_met": fus >= TARGETS[p],
            "best_peer": BEST_PEER[p],
            "timings_s": r.timings, "total_eval_s": round(total, 1),
            "fusion_info": {k: v for k, v in r.info.get("fusion", {}).items() if k != "gate_base"},
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
