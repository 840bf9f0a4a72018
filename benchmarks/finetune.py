"""LoRA fine-tuning on ML-100K: speed and memory of training, and base vs adapter quality.

    python benchmarks/finetune.py speed [--steps 3] [--batch 8] [--no-checkpointing]
        LLM data (templates only) + a few LoRA steps with the default settings on SmolLM2-135M:
        steps/s, tokens/s, peak RSS, and the wall time the default full run extrapolates to.
    python benchmarks/finetune.py eval --adapter runs/ml/adapter [--pairs 300] [--users 100]
        base vs adapter on held-out users: profile Recall@50 with a paired bootstrap CI, reason
        first-try pass rate, false-claim / self-reference / fragment rates (first try and after
        verification), template fallback, distinct-2, 10 reasons of each.
    python benchmarks/finetune.py train --out /tmp/ml-lora --steps 60
        the llm_data + lora stages alone (a quick adapter to evaluate).

Prints one JSON object. Run it with `nice`; timings on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _setup(args):
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from recagent.agent.vocab import nouns_for
    from recagent.config import load_config
    from recagent.data import load_dataset

    cfg = load_config(None, args.set or [])
    ds = load_dataset(cfg, "ml-100k")
    return cfg, ds, nouns_for(ds, cfg.data)


def speed(args) -> dict:
    from recagent.finetune.llm_data import build_llm_data, read_examples
    from recagent.finetune.lora import total_steps, train_lora
    from recagent.models import resolve_model

    cfg, ds, nouns = _setup(args)
    s = dataclasses.replace(cfg.finetune, batch_size=args.batch, gradient_checkpointing=not args.no_checkpointing)
    out = Path(args.out)
    t0 = time.perf_counter()
    meta = build_llm_data(ds, dataclasses.replace(s, reason_sample_sheets=0), nouns, out / "llm_data", llm=None, quiet=True)
    data_s = time.perf_counter() - t0
    ex = read_examples(out / "llm_data" / "train.jsonl")
    res = train_lora(resolve_model(cfg.models.llm, cfg.paths.cache), ex, out / "adapter", out / "ckpt", s,
                     meta["data_hash"], steps=args.steps, quiet=True)
    full = total_steps(len(ex), s, None)
    return {"examples": len(ex), "data_seconds": round(data_s, 1), "batch_size": s.batch_size,
            "gradient_checkpointing": s.gradient_checkpointing, "steps_measured": args.steps,
            "seconds_per_step": round(res["wall_s"] / args.steps, 1), "steps_per_s": res["steps_per_s"],
            "tokens_per_s": res["tokens_per_s"], "tokens_per_step": round(res["tokens"] / args.steps),
            "peak_rss_gib": res["peak_rss_gib"], "default_total_steps": full,
            "extrapolated_lora_minutes": round(full * res["wall_s"] / args.steps / 60, 1),
            "load_average": os.getloadavg(), "cpus": os.cpu_count()}


def train(args) -> dict:
    from recagent.finetune.llm_data import build_llm_data, read_examples
    from recagent.finetune.lora import train_lora
    from recagent.models import resolve_model

    cfg, ds, nouns = _setup(args)
    out = Path(args.out)
    llm = None
    if cfg.finetune.reason_sample_sheets:
        from recagent.finetune.pipeline import _base_llm

        llm = _base_llm(cfg)
    meta = build_llm_data(ds, cfg.finetune, nouns, out / "llm_data", llm=llm, quiet=False)
    ex = read_examples(out / "llm_data" / "train.jsonl")
    res = train_lora(resolve_model(cfg.models.llm, cfg.paths.cache), ex, out / "adapter", out / "ckpt", cfg.finetune,
                     meta["data_hash"], merged_dir=out / "merged", steps=args.steps, resume=True)
    return {"llm_data": meta, "lora": {k: v for k, v in res.items() if k != "losses"}}


def evaluate(args) -> dict:
    from recagent.finetune.pipeline import _base_llm
    from recagent.finetune.report import evaluate_llm

    cfg, ds, nouns = _setup(args)
    cfg = cfg.replace("finetune", eval_pairs=args.pairs, eval_users=args.users)
    data_dir = Path(args.adapter).parent / "llm_data"
    t0 = time.perf_counter()
    res = evaluate_llm(cfg, ds, nouns, _base_llm(cfg, 0.0), _base_llm(cfg.replace("models", llm_adapter=args.adapter), 0.0),
                       data_dir, log_fn=lambda m: print(m, file=sys.stderr))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    b, a = res["reasons"]["base"]["distinct_2"], res["reasons"]["adapter"]["distinct_2"]
    res["distinct_2_ratio"] = round(a / b, 3) if b else math.nan
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "train", "eval"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--out", default="/tmp/recagent-finetune-bench")
    ap.add_argument("--adapter", default="")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--set", action="append", help="config override section.key=value (repeatable)")
    args = ap.parse_args()
    out = {"speed": speed, "train": train, "eval": evaluate}[args.mode](args)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
