"""LoRA fine-tuning on ML-100K: speed and memory of training, and base vs adapter quality.

    python benchmarks/finetune.py speed [--steps 3] [--batch N] [--checkpointing on|off]
        LLM data (templates only) + a few LoRA steps with the default settings on SmolLM2-135M:
        steps/s, tokens/s, peak RSS, and the wall time the default full run extrapolates to.
    python benchmarks/finetune.py eval --run runs/ft-ml [--pairs 300] [--users 100]
        base vs adapter on held-out users: profile Recall@50 with a paired bootstrap CI, reason
        first-try pass rate, false-claim / self-reference / fragment rates (first try and after
        verification), template fallback, distinct-2, 10 reasons of each.
    python benchmarks/finetune.py stages --run runs/ft-ml
        the stage times of a finished `recagent finetune --dataset ml-100k --out runs/ft-ml` run,
        its LoRA speed and memory, and its eval summary (the whole command is the benchmark).

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
    s = cfg.finetune
    if args.batch:
        s = dataclasses.replace(s, batch_size=args.batch)
    if args.checkpointing:
        s = dataclasses.replace(s, gradient_checkpointing=args.checkpointing == "on")
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


def stages(args) -> dict:
    run = Path(args.run)
    marks = {p.stem: json.loads(p.read_text()) for p in sorted((run / "stages").glob("*.json"))}
    lora = marks.get("lora", {})
    return {"stage_seconds": {k: v.get("seconds") for k, v in marks.items()},
            "total_minutes": round(sum(v.get("seconds") or 0 for v in marks.values()) / 60, 1),
            "lora": {k: lora.get(k) for k in ("trained_steps", "wall_s", "steps_per_s", "tokens_per_s", "peak_rss_gib",
                                                "loss_first", "loss_last", "examples", "batch_size", "device")},
            "llm_data": {k: v for k, v in marks.get("llm_data", {}).items() if k not in ("nouns",)},
            "eval": marks.get("eval", {}).get("summary")}


def evaluate(args) -> dict:
    from recagent.finetune.pipeline import _base_llm
    from recagent.finetune.report import evaluate_llm
    from recagent.runs import layout

    cfg, ds, nouns = _setup(args)
    cfg = cfg.replace("finetune", eval_pairs=args.pairs, eval_users=args.users)
    lay = layout(cfg, run=args.run)
    t0 = time.perf_counter()
    res = evaluate_llm(cfg, ds, nouns, _base_llm(cfg, 0.0), _base_llm(cfg, 0.0, tuned=lay), lay.root / "llm_data",
                       log_fn=lambda m: print(m, file=sys.stderr))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    b, a = res["reasons"]["base"]["distinct_2"], res["reasons"]["adapter"]["distinct_2"]
    res["distinct_2_ratio"] = round(a / b, 3) if b else math.nan
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "stages", "eval"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="examples per step (default: finetune.batch_size)")
    ap.add_argument("--checkpointing", choices=["on", "off"], help="default: finetune.gradient_checkpointing")
    ap.add_argument("--out", default="/tmp/recagent-finetune-bench")
    ap.add_argument("--run", default="runs/ft-ml", help="a finished `recagent finetune` run folder")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--set", action="append", help="config override section.key=value (repeatable)")
    args = ap.parse_args()
    out = {"speed": speed, "stages": stages, "eval": evaluate}[args.mode](args)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
