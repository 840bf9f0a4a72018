"""Chat UI load benchmark: N simulated sessions, each sending M messages through `gradio_client`
to a local server, all at once, at each ``ui.concurrency`` given; prints JSON with p50/p95 turn
latency (full reply, and first cards on screen), throughput, the error count and (``--check-alone``) how many sessions got other items
than the same conversation run alone (issue 9, defect 2: must be 0).

    .venv/bin/python benchmarks/ui.py                 # FakeBackend on ML-100K (the UI/queue overhead)
    .venv/bin/python benchmarks/ui.py --real --no-llm --sessions 20 --messages 3 \\
        --concurrency 1,2,4 --check-alone             # the real agent (fusion ranker), template reasons
    .venv/bin/python benchmarks/ui.py --real          # the real agent with LLM reasons (slow on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

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


def conversation(url: str, sid: int, n_messages: int, users: list[str], latencies: list, errors: list,
                 lock: threading.Lock, first_cards: list | None = None) -> list[list[str]] | None:
    """One session: start (every other one as a known user, when the server allows it), then
    ``n_messages`` turns. Returns the item ids of each reply (None after an error)."""
    from gradio_client import Client

    try:
        c = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # queued turns wait, not fail
        c.predict(users[sid % len(users)] if users and sid % 2 else "", api_name="/start")
    except Exception as exc:  # a failed session start counts as errors for every message it would send
        with lock:
            errors.extend([f"session {sid}: start: {exc!r}"] * n_messages)
        return None
    items = []
    for j in range(n_messages):
        msg = MESSAGES[(sid + j) % len(MESSAGES)]
        t0 = time.perf_counter()
        try:
            job = c.submit(msg, api_name="/chat")
            t_cards = None
            while not job.done():  # when the first update with cards arrives (cards come before reasons)
                if t_cards is None and any(o.get("cards") for o in job.outputs()):
                    t_cards = time.perf_counter() - t0
                time.sleep(0.02)
            out = job.result()
            dt = time.perf_counter() - t0
            if first_cards is not None:
                with lock:
                    first_cards.append(t_cards if t_cards is not None else dt)
            if not (out.get("done") and out.get("reply")):
                raise RuntimeError("incomplete reply")
            items.append([x["item_id"] for x in out["cards"]])
            with lock:
                latencies.append(dt)
        except Exception as exc:
            with lock:
                errors.append(f"session {sid} msg {j}: {exc!r}")
            return None
    return items


def load(backend, cfg, sessions: int, messages: int, concurrency: int, users: list[str],
         reference: list | None = None) -> tuple[dict, list]:
    """All sessions at once against a server with ``ui.concurrency = concurrency``."""
    from recagent.ui.serve import free_port, launch

    c = cfg.replace("ui", concurrency=concurrency)
    srv = launch(backend, c, port=free_port(), block=False, known_users=True, warn=lambda m: None)
    latencies: list[float] = []
    first: list[float] = []
    errors: list[str] = []
    got: list = [None] * sessions
    lock = threading.Lock()

    def run(sid: int) -> None:
        got[sid] = conversation(srv.url, sid, messages, users, latencies, errors, lock, first)

    t1 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t1
    srv.close()
    out = {
        "concurrency": concurrency, "turns": len(latencies), "errors": len(errors),
        "p50_s": round(percentile(latencies, 50), 3), "p95_s": round(percentile(latencies, 95), 3),
        "mean_s": round(statistics.fmean(latencies), 3) if latencies else 0.0,
        "max_s": round(max(latencies), 3) if latencies else 0.0,
        "first_cards_p50_s": round(percentile(first, 50), 3), "first_cards_p95_s": round(percentile(first, 95), 3),
        "wall_s": round(wall, 2), "turns_per_s": round(len(latencies) / wall, 3) if wall else 0.0,
        "first_errors": errors[:3],
    }
    if reference is not None:
        differ = [i for i in range(sessions) if got[i] is not None and got[i] != reference[i]]
        out["sessions_differing_from_alone"] = len(differ)
        out["differing"] = differ[:10]
    return out, got


def alone(backend, cfg, sessions: int, messages: int, users: list[str]) -> tuple[list, float]:
    """Each conversation on its own, one after another (the reference for ``--check-alone``)."""
    from recagent.ui.serve import free_port, launch

    srv = launch(backend, cfg, port=free_port(), block=False, known_users=True, warn=lambda m: None)
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.perf_counter()
    ref = [conversation(srv.url, i, messages, users, lat, errors, lock) for i in range(sessions)]
    wall = time.perf_counter() - t0
    srv.close()
    if errors:
        raise SystemExit(f"the reference (alone) run failed: {errors[:3]}")
    return ref, wall


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--messages", type=int, default=5)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--real", action="store_true", help="the real agent instead of the FakeBackend")
    ap.add_argument("--no-llm", action="store_true", help="with --real: template reasons and profiles")
    ap.add_argument("--ranker", default="fusion", help="with --real: agent.ranker (fusion trains once if missing)")
    ap.add_argument("--concurrency", default=None, help="ui.concurrency values, comma-separated (default: config)")
    ap.add_argument("--check-alone", action="store_true", help="compare each session's items with it run alone")
    args = ap.parse_args(argv)

    from recagent.config import load_config
    from recagent.ui.serve import make_backend

    cfg = load_config()
    if args.real:
        cfg = cfg.replace("agent", ranker=args.ranker)
    if args.real and args.no_llm:
        cfg = cfg.replace("agent", explain_with_llm=False, profile_with_llm=False)
    levels = [int(x) for x in args.concurrency.split(",")] if args.concurrency else [cfg.ui.concurrency]
    t0 = time.perf_counter()
    if args.real:
        backend = make_backend(cfg, dataset=args.dataset, log_fn=lambda m: None)
    else:  # the catalog-only fake of the tests: the UI/queue overhead alone
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from fakes import FakeBackend

        from recagent.data import load_dataset

        backend = FakeBackend(load_dataset(cfg, args.dataset, log_fn=lambda m: None))
    load_s = time.perf_counter() - t0
    users = [u for u, _ in backend.users()][:50]
    result: dict = {
        "benchmark": "ui", "backend": backend.name + ("-no-llm" if args.real and args.no_llm else ""),
        "ranker": "fake",
        "dataset": args.dataset, "sessions": args.sessions, "messages_per_session": args.messages,
        "backend_load_s": round(load_s, 2), "cpus": os.cpu_count(),
    }
    if args.real:
        result["ranker"] = type(backend.agent.ranker).__name__
    reference = None
    if args.check_alone:
        reference, wall = alone(backend, cfg, args.sessions, args.messages, users)
        result["alone"] = {"turns": args.sessions * args.messages, "wall_s": round(wall, 2),
                           "turns_per_s": round(args.sessions * args.messages / wall, 3)}
    result["runs"] = [load(backend, cfg, args.sessions, args.messages, c, users, reference)[0] for c in levels]
    result["errors"] = sum(r["errors"] for r in result["runs"])
    result["sessions_differing_from_alone"] = sum(r.get("sessions_differing_from_alone", 0) for r in result["runs"])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    r = main()
    sys.exit(1 if r["errors"] or r["sessions_differing_from_alone"] else 0)
