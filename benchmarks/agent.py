"""Agent benchmark on ML-100K; prints one JSON object.

- grounding: explanations of (user, item) pairs from the real LLM: grounded rate (verifier pass
  on the first generation, before any retry or fallback) and hallucinated-title rate of the final
  reasons (a title outside the catalog, or a catalog title outside the user's history and the
  item's fact sheet; must be 0).
- conversation: moved to ``benchmarks/conversation.py`` (SimpleRanker and fusion side by side).
- latency: time to the first streamed piece, to the first LLM token, and to a full reply with 5
  explained items, for a known user, per local LLM backend (``--backends``, same run) and the
  speed-up over transformers fp32; peak RSS of the process. Whole chat processes per backend
  (first turn of a session included): ``benchmarks/llm.py --chat``.

Usage: OMP_NUM_THREADS=1 python benchmarks/agent.py [--pairs 200] [--no-llm]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200, help="(user, item) pairs explained by the LLM")
    ap.add_argument("--latency-runs", type=int, default=5)
    ap.add_argument("--no-llm", action="store_true", help="skip the LLM parts (grounding, latency)")
    ap.add_argument("--device", default="cpu", help="torch device for the LLM (grounding only; latency is CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", default="ct2,hf", help="local LLM backends timed in the latency section (same run)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (a chat process uses torch's default, the core count)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from recagent.config import load_config
    from recagent.data import load_dataset, make_split
    from recagent.data.schema import Dataset, Interactions

    cfg = load_config()
    full = load_dataset(cfg, "ml-100k", log_fn=lambda m: None)
    split = make_split(full, "B", cfg.data)
    import pandas as pd

    hist_df = pd.concat([split.train, split.valid])[["user_id", "item_id", "timestamp", "rating", "row"]]
    train = Dataset("ml-100k-train", full.catalog, Interactions(hist_df.reset_index(drop=True)))
    out: dict = {"dataset": "ml-100k", "protocol": "B (history = all but the last item)",
                 "threads": torch.get_num_threads()}

    from recagent.agent.agent import Agent
    from recagent.agent.ranker import SimpleRanker

    t0 = time.perf_counter()
    ranker = SimpleRanker.from_config(cfg, train)
    out["ranker_setup_s"] = round(time.perf_counter() - t0, 2)
    rng = np.random.default_rng(args.seed)

    if not args.no_llm:
        from recagent.agent.llm import load_llm
        from recagent.agent.llm_hf import HFModel
        from recagent.models import resolve_model

        if args.device != "cpu" and args.pairs:
            path = resolve_model(cfg.models.llm, cfg.paths.cache)
            gpu_llm = HFModel(path, device=args.device, max_new_tokens=cfg.agent.explain_max_new_tokens)
            out["grounding"] = grounding(train, ranker, gpu_llm, cfg, args, rng)
            out["grounding"]["device"] = args.device
            del gpu_llm
        # every local backend in the same run (the default first); the speed-up is over transformers fp32
        llms = {b: load_llm(cfg.replace("models", llm_backend=b)) for b in args.backends.split(",")}
        llm = next(iter(llms.values()))
        if args.device == "cpu" and args.pairs:
            out["grounding"] = grounding(train, ranker, llm, cfg, args, rng)
            out["grounding"]["device"] = "cpu"
            out["grounding"]["llm"] = llm.name
        out["latency"] = {}
        for top in (5, 2):
            for b, m in llms.items():
                agent = Agent(train, llm=m, ranker=ranker, settings=dataclasses.replace(cfg.agent, llm_explain_top=top))
                out["latency"][f"{b}:llm_reasons_{top}_of_5"] = latency(agent, args)
            if "hf" in llms:
                ref = out["latency"][f"hf:llm_reasons_{top}_of_5"]["full_reply_5_items_s"]
                out["latency"][f"speedup_over_hf:llm_reasons_{top}_of_5"] = {
                    b: round(ref / out["latency"][f"{b}:llm_reasons_{top}_of_5"]["full_reply_5_items_s"], 2) for b in llms}
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))
    return out


def grounding(train, ranker, llm, cfg, args, rng) -> dict:
    """Explain the top item of ``pairs`` users in batches of 5 (one turn's worth)."""
    from recagent.agent.dialogue import Constraints, SessionState
    from recagent.agent.explain import Explainer, build_fact_sheets
    from recagent.agent.verify import Verifier
    from recagent.agent.vocab import CatalogVocab

    vocab = CatalogVocab(train.catalog)
    ver = Verifier(vocab)
    exp = Explainer(llm, ver, cfg.agent.explain_max_new_tokens)
    users = rng.choice(train.user_ids, size=min(args.pairs, len(train.user_ids)), replace=False)
    jobs = []
    for u in users:
        s = SessionState(user_id=str(u))
        hist_all = {train.item_index[i] for i in train.history(str(u))["item_id"]}
        cand = ranker.rank(s, "", 1, hist_all, Constraints())[0]
        liked, _ = ranker.liked_rows(s)
        jobs.append((str(u), cand, liked))
    n = first_ok = halluc = 0
    sources: dict[str, int] = {}
    problems: dict[str, int] = {}
    t0 = time.perf_counter()
    for b in range(0, len(jobs), 5):
        batch = jobs[b:b + 5]
        sheets = [build_fact_sheets(train.catalog, [(c.item_idx, c.channel)], liked, ranker.evidence, ranker.emb,
                                    cfg.agent.history_neighbours, set(liked))[0] for _, c, liked in batch]
        for (u, c, liked), sheet, e in zip(batch, sheets, exp.explain(sheets)):
            n += 1
            first_ok += e.grounded_first
            sources[e.source] = sources.get(e.source, 0) + 1
            for p in e.problems:
                key = p.split("'")[0].split(" not")[0].strip()
                problems[key] = problems.get(key, 0) + 1
            allowed = sheet.facts().titles | set(liked)
            if ver.unknown_quoted(e.text) or ver.outside(e.text, allowed):
                halluc += 1
    return {"pairs": n, "grounded_rate": round(first_ok / max(1, n), 3),
            "hallucinated_title_rate_after_fallback": round(halluc / max(1, n), 4),
            "final_sources": sources, "first_try_problems": dict(sorted(problems.items(), key=lambda x: -x[1])[:8]),
            "seconds": round(time.perf_counter() - t0, 1)}


def latency(agent, args) -> dict:
    """Known user 196; messages that each produce 5 explained items."""
    msgs = ["something funny from the 90s", "sci-fi or action, no horror", "a drama like \"Fargo\"",
            "something romantic", "a thriller from the 80s"]
    first_piece, first_item, full, sources = [], [], [], {}
    t0 = time.perf_counter()
    s = agent.new_session("196")
    session_s = time.perf_counter() - t0
    for m in msgs[:args.latency_runs]:
        t0 = time.perf_counter()
        stream = agent.respond_stream(s, m)
        times = []
        for _ in stream:
            times.append(time.perf_counter() - t0)
        first_piece.append(times[0])
        first_item.append(times[1] if len(times) > 1 else times[0])
        full.append(times[-1])
        for it in stream.reply.items:
            sources[it.reason_source] = sources.get(it.reason_source, 0) + 1
    # The LLM's own first token on one explanation prompt (streamed).
    from recagent.agent.explain import build_fact_sheets

    sheet = build_fact_sheets(agent.ds.catalog, [(0, "query")], agent.history_rows(s), agent.evidence)[0]
    t0 = time.perf_counter()
    first_tok = None
    for _ in agent.llm.stream(agent.explainer.prompt(sheet), max_new_tokens=8):  # the turn's prefix is cached by now
        first_tok = time.perf_counter() - t0
        break
    med = lambda xs: round(float(np.median(xs)), 2)  # noqa: E731
    return {"runs": len(full), "session_start_with_profile_s": round(session_s, 2),
            "first_streamed_piece_s": med(first_piece), "first_llm_token_s": round(first_tok or -1, 2),
            "first_explained_item_s": med(first_item), "full_reply_5_items_s": med(full),
            "full_reply_5_items_all_s": [round(x, 2) for x in full], "reason_sources": sources}


if __name__ == "__main__":
    main(sys.argv[1:])
