"""Local LLM backends on the shipped SmolLM2-135M-Instruct; prints one JSON object.

- quality: greedy reasons for 20 real fact-sheet prompts from the agent's explain path (ML-100K,
  4 known users x 5 picks, batches of 5 as in a turn, 40 new tokens), per candidate against
  transformers float32 (the reference): agreement of the first 40 tokens (mean share of the
  reference's tokens before the first difference), exact-match rate, and the verifier's
  first-try pass rate (what a turn keeps as an LLM reason without a retry).
- speed: tokens per second for one prompt and for a batch of 5, at 1 and 2 threads; time to the
  first streamed token. Candidates run interleaved in every repetition (the machine is shared:
  compare ratios within this run); medians of ``--reps``.
- concurrency: two sessions each generating a batch of 5 at once (wall time against one alone).
- stop: seconds from a Stop request to the generation's return.
- turns (``--only turns``): counters per chat turn, valid on a busy machine (no wall clock):
  LLM batches, prompts, prompt and generated tokens, decode steps (a batch decodes as many
  steps as its longest reason), reasons kept on the first try / after a title repair / from the
  retry / as templates, the first-try problems, and CPU seconds in ranking and in the LLM;
  ``--users`` known users (42, 43, ...) and one new user (greedy decoding: every new user's turns are
  alike), two turns each (the chat section's messages).
- chat (``--chat``): one fresh chat process per backend, started together: time to ready, and
  ``--reps`` x (new-user session, known-user session: users 42, 43, ... so no profile is cached):
  session start, the session's first turn and a later turn (5 LLM-written reasons each), the first LLM token inside a turn, the process's
  very first turn, and its peak RSS; the speed-up of each backend over transformers fp32.

Usage: OMP_NUM_THREADS=1 python benchmarks/llm.py [--reps 5] [--chat] [--only speed,quality,...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MSGS = ["something funny from the 90s", "sci-fi or action, no horror", "a drama like \"Fargo\""]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="quality,speed,concurrency,stop", help="sections, comma-separated (and --chat)")
    ap.add_argument("--threads", default="1,2", help="thread counts for the speed section")
    ap.add_argument("--candidates", default="hf-fp32,hf-dynint8,ct2-int8,ct2-int8_float32,ct2-float32")
    ap.add_argument("--chat", action="store_true", help="also time whole chat turns in fresh processes per backend")
    ap.add_argument("--chat-backends", default="ct2,ct2@2,hf", help="backend[@threads]; default threads: $OMP_NUM_THREADS")
    ap.add_argument("--max-seconds", type=float, default=600.0,
                    help="chat: agent.max_seconds (the default 20 s budget cuts slow backends' reasons to templates on a busy machine)")
    ap.add_argument("--users", type=int, default=20, help="turns: known users counted (42, 43, ...)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return chat_child(args.child)

    from recagent.config import load_config

    cfg = load_config()
    out: dict = {"model": cfg.models.llm, "machine": machine(), "reps": args.reps}
    only = set(args.only.split(",")) if args.only else set()
    names = args.candidates.split(",")
    if only & {"quality", "speed", "concurrency", "stop"}:
        sheets, explainer_args = fact_sheets(cfg)
        threads = [int(t) for t in args.threads.split(",")]
        if "quality" in only:
            out["quality"] = quality(cfg, names, sheets, explainer_args)
            print(json.dumps({"quality": out["quality"]}), file=sys.stderr, flush=True)
        if "speed" in only:
            out["speed"] = speed(cfg, names, sheets, explainer_args, threads, args.reps)
        if "concurrency" in only:
            out["concurrency"] = concurrency(cfg, sheets, explainer_args, args.reps)
        if "stop" in only:
            out["stop"] = stop_latency(cfg, args.reps)
    if "turns" in only:
        out["turns"] = turn_counts(cfg, args.users)
    if args.chat:
        out["chat"] = chat(args.chat_backends.split(","), args.reps, args.max_seconds)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))
    return out


# -- candidates ---------------------------------------------------------------------------------
def load_candidate(cfg, name: str, threads: int):
    """A backend by name: 'hf-fp32', 'hf-dynint8' (torch dynamic int8 Linear layers), 'ct2-<compute type>'."""
    import torch

    from recagent.models import pull_fast_model, pull_model

    torch.set_num_threads(threads)
    if name.startswith("hf-"):
        from recagent.agent.llm_hf import HFModel

        path = str(pull_model(cfg.models.llm, cfg.paths.cache, log_fn=lambda m: None))
        model = None
        if name == "hf-dynint8":
            import warnings

            from transformers import AutoModelForCausalLM

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
                model = torch.ao.quantization.quantize_dynamic(base, {torch.nn.Linear}, dtype=torch.qint8)
        return HFModel(path, model=model, max_new_tokens=40, max_seconds=1e6)  # no wall-time cut: we time it
    from recagent.agent.llm_ct2 import CT2Model

    path = str(pull_fast_model(cfg.models.llm, cfg.paths.cache, log_fn=lambda m: None))
    return CT2Model(path, compute_type=name.split("-", 1)[1], threads=threads, max_new_tokens=40, max_seconds=1e6)


def fact_sheets(cfg):
    """20 fact sheets from real turns: known users 42, 196, 301, 7; one message each."""
    from recagent.agent.agent import Agent
    from recagent.agent.llm import LLM
    from recagent.agent.ranker import SimpleRanker
    from recagent.data import load_dataset

    ds = load_dataset(cfg, "ml-100k", log_fn=lambda m: None)

    class Silent(LLM):  # writes nothing: every reason falls back to a template; we keep the sheets
        name = "silent"

        def _generate(self, prompts, req):
            return [""] * len(prompts)

    agent = Agent(ds, llm=Silent(), ranker=SimpleRanker.from_config(cfg, ds), settings=cfg.agent)
    sheets: list = []
    real = agent.explainer.explain
    agent.explainer.explain = lambda s, request=None: (sheets.extend(s), real(s, request))[1]
    for user, msg in zip(["42", "196", "301", "7"], MSGS + ["something with a great story"]):
        agent.respond(agent.new_session(user), msg)
    return sheets[:20], (agent.verifier, cfg.agent.explain_max_new_tokens)


def quality(cfg, names: list[str], sheets, explainer_args) -> dict:
    from recagent.agent.explain import Explainer, clean

    verifier, max_new = explainer_args
    res, texts = {}, {}
    for name in names:
        llm = load_candidate(cfg, name, 1)  # greedy text does not depend on threads; 1 is fastest on a busy machine
        ex = Explainer(llm, verifier, max_new)
        prompts = [ex.prompt(s) for s in sheets]
        outs = []
        for i in range(0, len(prompts), 5):
            outs += llm.generate_batch(prompts[i:i + 5], max_new)
        texts[name] = outs
        passed = [ex._check(clean(t), s).ok for t, s in zip(outs, sheets)]
        res[name] = {"verifier_first_try_pass": round(sum(passed) / len(passed), 3)}
        del llm
    from transformers import AutoTokenizer

    from recagent.models import pull_model

    tok = AutoTokenizer.from_pretrained(str(pull_model(cfg.models.llm, cfg.paths.cache, log_fn=lambda m: None)))
    ref = [tok(t, add_special_tokens=False)["input_ids"][:40] for t in texts[names[0]]]
    for name in names:
        agree, exact = [], 0
        for r, t in zip(ref, texts[name]):
            ids = tok(t, add_special_tokens=False)["input_ids"][:40]
            n = next((i for i, (a, b) in enumerate(zip(r, ids)) if a != b), min(len(r), len(ids)))
            agree.append(n / max(1, len(r)))
            exact += int(r == ids)
        res[name].update(first40_token_agreement=round(statistics.mean(agree), 3), exact_match=f"{exact}/{len(ref)}")
    res["reference"] = names[0]
    res["examples"] = {n: texts[n][:2] for n in names}
    return res


def speed(cfg, names, sheets, explainer_args, threads: list[int], reps: int) -> dict:
    from recagent.agent.explain import Explainer

    verifier, max_new = explainer_args
    prompts = [Explainer(None, verifier, max_new).prompt(s) for s in sheets]
    out = {}
    for th in threads:
        models = {n: load_candidate(cfg, n, th) for n in names}
        import torch

        torch.set_num_threads(th)
        rows: dict[str, dict[str, list]] = {n: {"single": [], "batch5": [], "first": [], "turn_batch_s": []} for n in names}
        for m in models.values():  # warm-up (first call allocates, fills the prefix cache)
            m.generate_batch(prompts[:5], max_new)
        for r in range(reps):
            for n, m in models.items():  # interleaved: every candidate sees the same load
                p = prompts[r % len(prompts)]
                t0 = time.perf_counter()
                text = m.generate(p, max_new)
                dt = time.perf_counter() - t0
                rows[n]["single"].append(n_tokens(m, text) / dt)
                batch = prompts[(5 * r) % 20:(5 * r) % 20 + 5]
                t0 = time.perf_counter()
                texts = m.generate_batch(batch, max_new)
                dt = time.perf_counter() - t0
                rows[n]["batch5"].append(sum(n_tokens(m, t) for t in texts) / dt)
                rows[n]["turn_batch_s"].append(dt)
                t0 = time.perf_counter()
                for _ in m.stream(p, max_new):
                    rows[n]["first"].append(time.perf_counter() - t0)
                    break
        ref = names[0]
        summary = {}
        for n in names:
            s = {k: round(statistics.median(v), 3) for k, v in rows[n].items()}
            s = {"tok_s_single": round(s["single"], 1), "tok_s_batch5": round(s["batch5"], 1),
                 "first_token_s": s["first"], "batch5_wall_s": s["turn_batch_s"]}
            summary[n] = s
        for n in names:
            summary[n]["speedup_batch5_vs_" + ref] = round(summary[n]["tok_s_batch5"] / summary[ref]["tok_s_batch5"], 2)
            summary[n]["speedup_single_vs_" + ref] = round(summary[n]["tok_s_single"] / summary[ref]["tok_s_single"], 2)
        out[f"threads_{th}"] = summary
        print(json.dumps({f"speed threads_{th}": summary}), file=sys.stderr, flush=True)  # partial results
        del models
    return out


def n_tokens(llm, text: str) -> int:
    return max(1, len(llm.tokenizer(text, add_special_tokens=False)["input_ids"]))


def concurrency(cfg, sheets, explainer_args, reps: int) -> dict:
    """Two sessions, each a batch of 5, at once vs one alone (2 threads in all)."""
    from recagent.agent.explain import Explainer
    from recagent.agent.llm_ct2 import CT2Model
    from recagent.models import pull_fast_model

    verifier, max_new = explainer_args
    prompts = [Explainer(None, verifier, max_new).prompt(s) for s in sheets]
    path = str(pull_fast_model(cfg.models.llm, cfg.paths.cache, log_fn=lambda m: None))
    out = {}
    variants = {"ct2 inter=1 x intra=2": CT2Model(path, threads=2, inter_threads=1, max_seconds=1e6),
                "ct2 inter=2 x intra=1": CT2Model(path, threads=1, inter_threads=2, max_seconds=1e6),
                "hf-fp32 (lock), 1 thread": load_candidate(cfg, "hf-fp32", 1)}
    rows: dict[str, dict[str, list]] = {k: {"alone": [], "two_at_once": [], "same_text": []} for k in variants}
    for r in range(reps):
        a, b = prompts[:5], prompts[5:10]
        for k, m in variants.items():
            t0 = time.perf_counter()
            ref_a = m.generate_batch(a, max_new)
            rows[k]["alone"].append(time.perf_counter() - t0)
            ref_b = m.generate_batch(b, max_new)
            got: dict = {}
            ths = [threading.Thread(target=lambda key, ps: got.__setitem__(key, m.generate_batch(ps, max_new)), args=(x, ps))
                   for x, ps in (("a", a), ("b", b))]
            t0 = time.perf_counter()
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            rows[k]["two_at_once"].append(time.perf_counter() - t0)
            rows[k]["same_text"].append(got["a"] == ref_a and got["b"] == ref_b)
    for k, v in rows.items():
        out[k] = {"one_batch5_s": round(statistics.median(v["alone"]), 2),
                  "two_sessions_batch5_at_once_s": round(statistics.median(v["two_at_once"]), 2),
                  "outputs_equal_to_alone": all(v["same_text"])}
    return out


def stop_latency(cfg, reps: int) -> dict:
    """Seconds from stop.set() to the return of a long generation (started 0.3 s before)."""
    out = {}
    for name in ("ct2-int8", "hf-fp32"):
        m = load_candidate(cfg, name, 2)
        lat, toks = [], []
        for _ in range(reps):
            stop = threading.Event()
            res: list = []
            t = threading.Thread(target=lambda: res.append(m.generate("Write a very long story about a robot who learns to cook.",
                                                                       400, stop=stop)))
            t.start()
            time.sleep(0.3)
            t0 = time.perf_counter()
            stop.set()
            t.join()
            lat.append(time.perf_counter() - t0)
            toks.append(n_tokens(m, res[0]))
        out[name] = {"stop_to_return_s_median": round(statistics.median(lat), 3), "stop_to_return_s_max": round(max(lat), 3),
                     "tokens_before_stop_median": statistics.median(toks), "budget": 400}
    return out


# -- counters per turn ---------------------------------------------------------------------------
def turn_counts(cfg, users: int) -> dict:
    """Where a turn's work goes, by counting (see the module docstring): one chat agent on the
    default backend, one thread; per (new|known, first|later turn) the means over sessions."""
    import collections

    from recagent.agent.service import build_agent
    from recagent.config import load_config
    from recagent.data import load_dataset

    cfg = load_config(overrides=["agent.max_seconds=600", "models.threads=1"])
    ds = load_dataset(cfg, "ml-100k", log_fn=lambda m: None)
    agent = build_agent(cfg, ds)
    llm, tok = agent.llm, agent.llm.tokenizer
    cur: dict = {}
    real_generate, real_rank, real_explain = llm._generate, agent._rank, agent.explainer.explain

    def generate(prompts, req):
        ids = [tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
               for p in prompts]
        t0 = time.process_time()  # CPU seconds: the backend's threads live in this process
        texts = real_generate(prompts, req)
        gen = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        cur["batches"].append({"prompts": len(prompts), "prompt_tokens": sum(map(len, ids)), "generated": sum(gen),
                               "steps": max(gen, default=0), "cpu_s": time.process_time() - t0})
        return texts

    def rank(*a, **k):
        t0 = time.process_time()
        try:
            return real_rank(*a, **k)
        finally:
            cur["rank_cpu_s"] += time.process_time() - t0

    def explain(*a, **k):
        exps = real_explain(*a, **k)
        cur["exps"] = exps
        return exps

    llm._generate, agent._rank, agent.explainer.explain = generate, rank, explain
    rows: dict = collections.defaultdict(list)
    problems: dict = collections.defaultdict(collections.Counter)
    for n in range(users):
        for who, user in (("new", None), ("known", str(42 + n)))[0 if n == 0 else 1:]:  # new users: greedy, alike
            s = agent.new_session(user)
            for i, msg in enumerate(MSGS[:2]):
                cur.clear()
                cur.update(batches=[], rank_cpu_s=0.0, exps=[])
                t0 = time.process_time()
                reply = agent.respond(s, msg)
                b, exps, key = cur["batches"], cur["exps"], f"{who}_{'first' if i == 0 else 'later'}_turn"
                rows[key].append({
                    "cpu_s": time.process_time() - t0, "rank_cpu_s": cur["rank_cpu_s"], "llm_cpu_s": sum(x["cpu_s"] for x in b),
                    "llm_batches": len(b), "retry_prompts": sum(x["prompts"] for x in b[1:]),
                    "prompt_tokens": sum(x["prompt_tokens"] for x in b), "generated_tokens": sum(x["generated"] for x in b),
                    "decode_steps": sum(x["steps"] for x in b), "first_batch_steps": b[0]["steps"] if b else 0,
                    "reasons": len(reply.items), "llm_written": sum(it.reason_source.startswith("llm") for it in reply.items),
                    "first_try": sum(e.grounded_first for e in exps), "repaired": sum(getattr(e, "repaired", False) for e in exps),
                    "retried": sum(e.source == "llm-retry" for e in exps), "template": sum(e.source == "template" for e in exps)})
                for e in exps:
                    for p in e.first_problems:
                        problems[key][p.split("'")[0].split("(")[0].strip()] += 1
    out = {}
    for key, rs in rows.items():
        n_reasons = max(1, sum(r["reasons"] for r in rs))
        out[key] = {k: round(statistics.mean(r[k] for r in rs), 3) for k in rs[0] if k != "reasons"}
        out[key].update(turns=len(rs), llm_written_share=round(sum(r["llm_written"] for r in rs) / n_reasons, 3),
                        first_try_share=round(sum(r["first_try"] for r in rs) / n_reasons, 3),
                        repaired_share=round(sum(r["repaired"] for r in rs) / n_reasons, 3),
                        first_try_problems=dict(problems[key].most_common()))
    out["note"] = "means per turn; CPU seconds at one thread (valid under load, unlike wall time)"
    return out


# -- whole chat turns ---------------------------------------------------------------------------
def chat(backends: list[str], reps: int, max_seconds: float) -> dict:
    """One fresh chat process per backend, all started together (they share the machine's load);
    in each, ``reps`` x (a new-user session and a known-user-42 session, 2 turns each)."""
    procs = {b: subprocess.Popen([sys.executable, __file__, "--child", f"{b}:{reps}:{max_seconds}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ}) for b in backends}
    out: dict = {}
    for b, p in procs.items():
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"chat child {b} failed:\n{stderr[-3000:]}")
        out[b] = json.loads(stdout.strip().splitlines()[-1])
    if "hf" in out:
        for b in backends:
            if b != "hf":
                out[f"speedup_{b}_over_hf"] = {k: round(out["hf"][k] / out[b][k], 2) for k in out[b]
                                               if k.endswith("_s") and isinstance(out[b][k], float) and out[b][k] > 0}
    return out


def chat_child(spec: str) -> dict:
    """One chat process: build the agent as `recagent chat` does, then sessions and turns."""
    backend, reps, max_seconds = spec.split(":")
    backend, _, threads = backend.partition("@")
    t_start = time.perf_counter()
    from recagent.config import load_config

    cfg = load_config(overrides=[f"models.llm_backend={backend}", f"agent.max_seconds={max_seconds}"]
                      + ([f"models.threads={threads}"] if threads else []))
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    from recagent.agent.service import build_agent
    from recagent.data import load_dataset

    ds = load_dataset(cfg, "ml-100k", log_fn=lambda m: None)
    t0 = time.perf_counter()
    agent = build_agent(cfg, ds)
    build_s = time.perf_counter() - t0
    ready_s = time.perf_counter() - t_start
    llm = agent.llm
    real = llm._generate
    turn = {"t0": 0.0, "first": None}

    def timed(prompts, req):  # the first token of each turn's first LLM call
        if req.on_text is None and turn["first"] is None:
            def seen(row, piece):
                if turn["first"] is None:
                    turn["first"] = time.perf_counter() - turn["t0"]
            req.on_text = seen
        return real(prompts, req)

    llm._generate = timed
    rows: dict[str, list[float]] = {}
    reasons = []
    for rep in range(int(reps)):
        for who, user in (("new", None), ("known", str(42 + rep))):  # a user whose profile is not cached yet
            t0 = time.perf_counter()
            s = agent.new_session(user)
            rows.setdefault(f"{who}_session_start_s", []).append(time.perf_counter() - t0)
            for i, msg in enumerate(MSGS[:2]):
                turn["t0"], turn["first"] = time.perf_counter(), None
                reply = agent.respond(s, msg)
                kind = "first_turn" if i == 0 else "later_turn"
                rows.setdefault(f"{who}_{kind}_s", []).append(time.perf_counter() - turn["t0"])
                rows.setdefault(f"{who}_{kind}_first_llm_token_s", []).append(turn["first"] or float("nan"))
                reasons.append(sum(it.reason_source.startswith("llm") for it in reply.items))
    out = {"process_ready_s": round(ready_s, 2), "build_agent_s": round(build_s, 2)}
    out.update({k: round(statistics.median(v), 3) for k, v in rows.items()})
    out["process_first_turn_s"] = round(rows["new_first_turn_s"][0], 2)  # the very first turn of this process
    out.update(runs_per_median=int(reps), llm_reasons_per_turn=reasons,
               peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               ranker=type(agent.ranker).__name__, llm=llm.name, loadavg=[round(x, 1) for x in os.getloadavg()])
    print(json.dumps(out))
    return out


def machine() -> dict:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg_1_5_15": [round(x, 2) for x in load],
            "note": "shared, busy machine: compare ratios measured within this run"}


if __name__ == "__main__":
    main(sys.argv[1:])
