"""Chat UI load benchmark: N simulated concurrent sessions, each sending M messages through
`gradio_client` to a local server; prints p50/p95 turn latency and the error count as JSON.

    .venv/bin/python benchmarks/ui.py                 # FakeBackend on ML-100K (the UI/queue overhead)
    .venv/bin/python benchmarks/ui.py --real          # the real agent (LLM reasons; slow on 2 cores)
    .venv/bin/python benchmarks/ui.py --real --no-llm # the real agent with template reasons
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MESSAGES = ["something funny", "sci-fi from the 80s", "no horror please", "more like the first one",
            "a drama, nothing too old", "romance", "thriller but no war", "an adventure classic"]


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for no data."""
    if not xs:
        return 0.0
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def session(url: str, sid: int, n_messages: int, latencies: list, errors: list, lock: threading.Lock) -> None:
    from gradio_client import Client

    try:
        c = Client(url, verbose=False)
        c.predict("", api_name="/start")
    except Exception as exc:  # a failed session start counts as errors for every message it would send
        with lock:
            errors.extend([f"session {sid}: start: {exc!r}"] * n_messages)
        return
    for j in range(n_messages):
        msg = MESSAGES[(sid + j) % len(MESSAGES)]
        t0 = time.perf_counter()
        try:
            out = c.predict(msg, api_name="/chat")
            ok = out.get("done") and out.get("reply")
            dt = time.perf_counter() - t0
            with lock:
                (latencies.append(dt) if ok else errors.append(f"session {sid} msg {j}: incomplete reply"))
        except Exception as exc:
            with lock:
                errors.append(f"session {sid} msg {j}: {exc!r}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--messages", type=int, default=5)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--real", action="store_true", help="the real agent instead of the FakeBackend")
    ap.add_argument("--no-llm", action="store_true", help="with --real: template reasons and profiles")
    ap.add_argument("--concurrency", type=int, default=None, help="ui.concurrency (default from config)")
    args = ap.parse_args(argv)

    from recagent.config import load_config
    from recagent.ui.serve import free_port, launch, make_backend

    overrides = [f"ui.concurrency={args.concurrency}"] if args.concurrency else []
    cfg = load_config(overrides=overrides)
    if args.real and args.no_llm:
        cfg = cfg.replace("agent", explain_with_llm=False, profile_with_llm=False)
    t0 = time.perf_counter()
    backend = make_backend(cfg, dataset=args.dataset, kind="agent" if args.real else "fake", log_fn=lambda m: None)
    load_s = time.perf_counter() - t0
    srv = launch(backend, cfg, port=free_port(), block=False)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    t1 = time.perf_counter()
    threads = [threading.Thread(target=session, args=(srv.url, i, args.messages, latencies, errors, lock))
               for i in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t1
    srv.close()
    result = {
        "benchmark": "ui", "backend": backend.name + ("-no-llm" if args.real and args.no_llm else ""),
        "dataset": args.dataset, "sessions": args.sessions, "messages_per_session": args.messages,
        "concurrency": cfg.ui.concurrency, "turns": len(latencies), "errors": len(errors),
        "p50_s": round(percentile(latencies, 50), 3), "p95_s": round(percentile(latencies, 95), 3),
        "mean_s": round(statistics.fmean(latencies), 3) if latencies else 0.0,
        "max_s": round(max(latencies), 3) if latencies else 0.0,
        "wall_s": round(wall, 2), "turns_per_s": round(len(latencies) / wall, 3) if wall else 0.0,
        "backend_load_s": round(load_s, 2), "first_errors": errors[:3],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(1 if main()["errors"] else 0)
