"""Before/after evaluation of the LLM (base vs LoRA adapter) and the finetune report.

- *Profiles*: for held-out users, the profile prose written from the first part of their
  history (the same cut as the training data) is embedded by the text encoder and used alone
  to retrieve items; Recall@50 of the items they liked after the cut, base vs adapter, with a
  paired bootstrap CI over users.
- *Reasons*: fact sheets for held-out (user, later-liked item) pairs, explained in turns of five
  as in the chat: first-try verifier pass rate, false claims about the user, self-references
  and fragments (first try, and after verification), template-fallback rate, distinct-2 of the
  final reasons, and examples.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger("recagent.finetune")


def recall_at(scores: np.ndarray, exclude: Sequence[int], relevant: Sequence[int], k: int = 50) -> float:
    """Recall@k = |top-k ∩ relevant| / |relevant| (in [0, 1]; 0.0 when nothing is relevant)."""
    rel = set(int(r) for r in relevant)
    if not rel:
        return 0.0
    s = np.asarray(scores, dtype=np.float64).copy()
    s[list(exclude)] = -np.inf
    top = np.argpartition(-s, min(k, len(s) - 1))[:k]
    return len(rel & set(int(t) for t in top)) / len(rel)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): unique word n-grams / all word n-grams over the texts, in [0, 1]."""
    grams = []
    for t in texts:
        w = t.lower().split()
        grams += [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def problem_kind(problems: Sequence[str]) -> set[str]:
    """Which honesty failures a verifier problem list contains."""
    kinds = set()
    for p in problems:
        if p.startswith("claims"):
            kinds.add("false_claim")
        elif "own reason" in p:
            kinds.add("self_reference")
        elif p.startswith("fragment"):
            kinds.add("fragment")
    return kinds


def reason_pairs(ds: Any, users: Sequence[str], n: int, settings: Any, like_threshold: float, seed: int = 0):
    """Up to ``n`` (user, split, item row, channel) pairs from held-out users' later likes."""
    from recagent.finetune.llm_data import _CHANNEL_P, _CHANNELS, split_user

    rng = np.random.default_rng(seed + 11)
    out = []
    splits = [split_user(ds, u, settings.profile_cutoff, like_threshold) for u in users]
    splits = [s for s in splits if s.liked_after]
    for k in range(n):
        if not splits:
            break
        sp = splits[k % len(splits)]
        out.append((sp, int(rng.choice(sp.liked_after)), str(rng.choice(_CHANNELS, p=_CHANNEL_P))))
    return out


def reason_sheets(ds: Any, users: Sequence[str], settings: Any, like_threshold: float) -> list:
    """The evaluation's fact sheets: one per `reason_pairs` pair, with the user's history before
    the cut (every 7th as a new user, without one)."""
    from recagent.agent.explain import Evidence, build_fact_sheets

    evidence = Evidence(ds, like_threshold)
    pairs = reason_pairs(ds, users, settings.eval_pairs, settings, like_threshold, settings.seed)
    return [build_fact_sheets(ds.catalog, [(item, ch)], sp.liked_before if i % 7 else [], evidence, None, 2,
                              set(sp.liked_before) | set(sp.liked_after))[0] for i, (sp, item, ch) in enumerate(pairs)]


def grounded_bank(sheets: Sequence[Any], verifier: Any, nouns: Any, seed: int = 0) -> dict:
    """Distinct-2 of one random grounded frame per sheet (`training_reasons`): how varied
    reasons can be when every word comes from the fact sheet, the reference for the models'."""
    from recagent.agent.explain import Explainer, template_sentence
    from recagent.finetune.llm_data import grounded, training_reasons

    rng = np.random.default_rng(seed + 5)
    exp = Explainer(None, verifier)
    texts = []
    for s in sheets:
        ok = [t for t in training_reasons(s, nouns) if grounded(t, s, exp)]
        texts.append(ok[int(rng.integers(len(ok)))] if ok else template_sentence(s, 0, nouns))
    return {"distinct_2": distinct_n(texts), "mean_words": float(np.mean([len(t.split()) for t in texts])) if texts else 0.0}


def evaluate_llm(cfg: Any, ds: Any, nouns: Any, base_llm: Any, tuned_llm: Any, data_dir: Path, encoder: Any = None,
                 quiet: bool = False, log_fn: Callable[[str], None] = log.info, models: dict | None = None) -> dict:
    """Profiles and reasons of the base model vs the tuned one on the held-out users.

    Args:
        cfg: the resolved config (``[finetune]`` sizes, ``[agent]`` thresholds).
        ds: the data set.
        nouns: the catalog's nouns.
        base_llm, tuned_llm: `LLM`s (the same base; the second with the adapter).
        data_dir: the ``llm_data`` folder (its ``heldout.json`` names the users).
        encoder: text encoder for profile retrieval (default: the configured one).
        models: ``{"base": llm, "adapter": llm}`` to compare instead of the two above.
    """
    from recagent.agent.explain import Explainer
    from recagent.agent.profile import ProfileSummarizer
    from recagent.agent.verify import Verifier
    from recagent.agent.vocab import CatalogVocab
    from recagent.eval.bootstrap import paired_bootstrap
    from recagent.finetune.llm_data import HELDOUT_FILE, split_user
    from recagent.ranking.content import item_text_embeddings

    s, like = cfg.finetune, cfg.agent.like_threshold
    users = json.loads((Path(data_dir) / HELDOUT_FILE).read_text(encoding="utf-8"))
    vocab = CatalogVocab(ds.catalog, cfg.agent.fuzzy_threshold, nouns)
    verifier = Verifier(vocab)
    models = models or {"base": base_llm, "adapter": tuned_llm}
    if encoder is None:
        from recagent.retrieval.encoders import TextEncoder

        encoder = TextEncoder.from_config(cfg)
    item_emb = item_text_embeddings(ds.catalog, encoder)
    # -- profiles
    splits = [sp for sp in (split_user(ds, u, s.profile_cutoff, like) for u in users) if sp.liked_after][:s.eval_users]
    recalls: dict[str, list[float]] = {m: [] for m in models}
    sources: dict[str, list[str]] = {m: [] for m in models}
    examples: dict[str, list[str]] = {m: [] for m in models}
    for name, llm in models.items():
        summ = ProfileSummarizer(ds, llm, verifier, like, cfg.agent.dislike_threshold,
                                 max_new_tokens=cfg.agent.profile_max_new_tokens)
        profs = summ.many([(sp.user_id, sp.rows, sp.ratings) for sp in splits])
        texts, sources[name] = [p.prose for p in profs], [p.prose_source for p in profs]
        q = np.asarray(encoder.embed_texts(texts), dtype=np.float32) if texts else np.zeros((0, item_emb.shape[1]))
        for sp, vec in zip(splits, q):
            recalls[name].append(recall_at(item_emb @ vec, sp.rows, sp.liked_after, 50))
        examples[name] = texts[:5]
        log_fn(f"eval: profiles ({name}): Recall@50 {np.mean(recalls[name]) if recalls[name] else 0:.4f} "
               f"over {len(splits)} users")
    names = list(models)
    profiles = {
        "users": len(splits),
        "recall@50": {m: float(np.mean(recalls[m])) if recalls[m] else 0.0 for m in names},
        "llm_prose_rate": {m: float(np.mean([x == "llm" for x in sources[m]])) if sources[m] else 0.0 for m in names},
        "examples": examples,
    }
    if len(names) == 2:
        profiles["adapter_minus_base"] = paired_bootstrap(np.array(recalls[names[1]]), np.array(recalls[names[0]]))
    # -- reasons
    sheets = reason_sheets(ds, users, s, like)
    reasons: dict[str, Any] = {"grounded_bank": grounded_bank(sheets, verifier, nouns, s.seed)}
    for name, llm in models.items():
        exp = Explainer(llm, verifier, cfg.agent.explain_max_new_tokens)
        outs = []
        for start in range(0, len(sheets), 5):  # turns of five, as in the chat
            outs += exp.explain(sheets[start:start + 5])
        first_kinds = [problem_kind(o.first_problems) for o in outs]
        final_kinds = [problem_kind(verifier.check(o.text, sh.facts()).problems) for o, sh in zip(outs, sheets)]
        n = max(1, len(outs))
        reasons[name] = {
            "pairs": len(outs),
            "first_try_pass": sum(o.grounded_first for o in outs) / n,
            "first_try": {k: sum(k in f for f in first_kinds) / n for k in ("false_claim", "self_reference", "fragment")},
            "after_verification": {k: sum(k in f for f in final_kinds) / n
                                   for k in ("false_claim", "self_reference", "fragment")},
            "template_fallback": sum(o.source == "template" for o in outs) / n,
            "distinct_2": distinct_n([o.text for o in outs]),
            "distinct_2_first_try": distinct_n([o.first_text for o in outs if o.first_text]),
            "examples": [{"item": sh.title, "first_try": o.first_text, "final": o.text, "source": o.source}
                         for o, sh in list(zip(outs, sheets))[:10]],
        }
        log_fn(f"eval: reasons ({name}): first-try pass {reasons[name]['first_try_pass']:.3f}, "
               f"fallback {reasons[name]['template_fallback']:.3f}, distinct-2 {reasons[name]['distinct_2']:.3f}")
    log_fn(f"eval: reasons (a random grounded frame per sheet, the reference): distinct-2 "
           f"{reasons['grounded_bank']['distinct_2']:.3f}")
    summary = {"profile_recall@50": profiles["recall@50"],
               "reason_first_try_pass": {m: reasons[m]["first_try_pass"] for m in names},
               "reason_distinct_2": {m: reasons[m]["distinct_2"] for m in names}}
    return {"profiles": profiles, "reasons": reasons, "summary": summary}


def write_report(lay: Any, stages: dict) -> list[Path]:
    """``report/report.md``, ``report.json`` and PNG plots (LoRA loss, before/after bars)."""
    d = Path(lay.report)
    d.mkdir(parents=True, exist_ok=True)
    ev_path = Path(lay.root) / "eval.json"
    ev = json.loads(ev_path.read_text(encoding="utf-8")) if ev_path.is_file() else {}
    training = Path(lay.adapter) / "training.json"
    tr = json.loads(training.read_text(encoding="utf-8")) if training.is_file() else {}
    data = {"stages": stages, "eval": ev, "lora": {k: v for k, v in tr.items() if k != "losses"}}
    files = [d / "report.json"]
    (d / "report.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    plots = _plots(d, tr, ev)
    md = ["# recagent finetune report", ""]
    v = stages.get("validate", {})
    md += [f"Data: {v.get('dataset')} ({v.get('users')} users, {v.get('items')} {v.get('item_noun', 'item')}s, "
           f"{v.get('interactions')} interactions).", ""]
    rk = stages.get("rankers", {})
    if rk.get("valid_ndcg@10"):
        md += ["## Rankers (Protocol B, validation NDCG@10)", "", "| model | NDCG@10 |", "|---|---|"]
        md += [f"| {k} | {v:.4f} |" for k, v in rk["valid_ndcg@10"].items()] + [""]
    elif rk.get("skipped"):
        md += [f"Rankers: skipped ({rk['skipped']}).", ""]
    if tr:
        md += ["## LoRA", "", f"{tr.get('trained_steps')} steps (resumed from {tr.get('resumed_from')}), "
               f"loss {_num(tr.get('loss_first'))} -> {_num(tr.get('loss_last'))}, {tr.get('steps_per_s')} steps/s, "
               f"{tr.get('tokens_per_s')} tokens/s, peak RSS {tr.get('peak_rss_gib')} GiB, device {tr.get('device')}.", ""]
    if ev:
        p, r = ev["profiles"], ev["reasons"]
        names = list(p["recall@50"])
        md += ["## Before / after", "", "| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        md.append(f"| held-out users / reason pairs | " + " | ".join(f"{p['users']} / {r[m]['pairs']}" for m in names) + " |")
        md.append("| profile Recall@50 | " + " | ".join(f"{p['recall@50'][m]:.4f}" for m in names) + " |")
        for key, label in [("first_try_pass", "reason first-try pass"), ("template_fallback", "template fallback"),
                           ("distinct_2", "distinct-2")]:
            md.append(f"| {label} | " + " | ".join(f"{r[m][key]:.3f}" for m in names) + " |")
        for k in ("false_claim", "self_reference", "fragment"):
            md.append(f"| {k} (first try / final) | " + " | ".join(
                f"{r[m]['first_try'][k]:.3f} / {r[m]['after_verification'][k]:.3f}" for m in names) + " |")
        if "grounded_bank" in r:
            md += ["", f"Reference: one random grounded frame per sheet (every word from the fact sheet) has "
                       f"distinct-2 {r['grounded_bank']['distinct_2']:.3f}; invented words raise distinct-2, so the "
                       "base model's figure includes text the verifier's honesty checks would not train on."]
        if "adapter_minus_base" in p:
            b = p["adapter_minus_base"]
            md += ["", f"Profile Recall@50, adapter - base: {b['diff']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] "
                       f"(95 % paired bootstrap over {p['users']} users)."]
        for m in names:
            md += ["", f"### Reasons: {m}", ""] + [f"- {x['item']}: {x['final']} ({x['source']})" for x in r[m]["examples"]]
    md += [""] + [f"![{p.stem}]({p.name})" for p in plots]
    (d / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return files + [d / "report.md"] + plots


def _num(x: Any) -> str:
    return "-" if x is None else f"{float(x):.4f}"


def _plots(d: Path, tr: dict, ev: dict) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out = []
    if tr.get("losses"):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(range(1, len(tr["losses"]) + 1), tr["losses"])
        ax.set_xlabel("step")
        ax.set_ylabel("reply loss")
        ax.set_title("LoRA training loss")
        fig.tight_layout()
        fig.savefig(d / "lora_loss.png", dpi=100)
        plt.close(fig)
        out.append(d / "lora_loss.png")
    if ev:
        names = list(ev["profiles"]["recall@50"])
        keys = [("profile R@50", lambda m: ev["profiles"]["recall@50"][m]),
                ("first-try pass", lambda m: ev["reasons"][m]["first_try_pass"]),
                ("distinct-2", lambda m: ev["reasons"][m]["distinct_2"]),
                ("fallback", lambda m: ev["reasons"][m]["template_fallback"])]
        fig, ax = plt.subplots(figsize=(6, 3))
        w = 0.8 / max(1, len(names))
        for j, m in enumerate(names):
            ax.bar(np.arange(len(keys)) + j * w, [f(m) for _, f in keys], w, label=m)
        ax.set_xticks(np.arange(len(keys)) + w * (len(names) - 1) / 2)
        ax.set_xticklabels([k for k, _ in keys])
        ax.legend()
        ax.set_title("base vs adapter")
        fig.tight_layout()
        fig.savefig(d / "before_after.png", dpi=100)
        plt.close(fig)
        out.append(d / "before_after.png")
    return out
