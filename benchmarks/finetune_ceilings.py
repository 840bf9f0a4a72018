"""How far issue 10's two open targets can go on ML-100K, whatever the model writes (JSON).

- ``profiles``: Recall@50 of history-only profile texts (the house rule, other category
  choices, recent titles, favourites, the latest release year, embedding centroids), retrieved
  exactly as ``recagent finetune``'s evaluation does (MiniLM over ``Catalog.describe``), on the
  held-out users of a run and on as many other users; each against the template prose, with a
  paired bootstrap CI. What wins on one set of users and loses on the other is noise.
- ``reasons``: distinct-2 over the evaluation's 300 fact sheets of one random grounded frame per
  sheet (the report's reference) and of the best pick per sheet from the whole frame bank, chosen
  greedily for unseen bigrams: an upper bound on what a model that says only what the sheet
  says can reach with these frames.

Usage: OMP_NUM_THREADS=1 python benchmarks/finetune_ceilings.py --run runs/ft-ml5 [--only profiles]
Measured 2026-11-27 on runs/ft-ml5 (183 held-out + 200 other users; 300 sheets): every text
0.030-0.099. The house rule the adapter writes gets 0.0885 on the held-out users, which is the
adapter's own measured 0.0885. The best on held-out users (house rule + latest release year,
0.099) gets 0.071 on the others, and the best on the others (centroid of the last 5 liked,
0.092) gets 0.085 on held-out; the base model reaches 0.084. For reasons, a random frame gives
0.374 and the best greedy pick 0.482, while the target (1.5x the base model) is 0.56.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _join(xs: list[str]) -> str:
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def profile_texts(p, rows: list[int], ratings: list[float], catalog, like: float) -> dict[str, str]:
    """History-only profile texts of one user (every fact comes from the history before the cut)."""
    from recagent.agent.profile import template_prose

    titles = catalog.items["title"]
    years = catalog.items["year"].to_numpy(dtype="float64", na_value=np.nan)
    liked = [r for r, x in zip(rows, ratings) if x >= like] or list(rows)
    recent = [f'"{titles.iloc[r]}"' for r in liked[::-1]]
    freq = [c for c, _ in Counter(c for r in liked for c in catalog.items["categories"].iloc[r]).most_common(3)]
    lift = [c for c, _ in p.liked_categories[:3]] or freq
    era = f", mostly from the {p.eras[0][0]}" if p.eras else ""
    fav = p.exemplars[1] if len(p.exemplars) > 1 else (p.exemplars[0] if p.exemplars else "")
    fav_s = f' "{fav}" is the kind of movie you like most.' if fav else ""
    ys = [int(years[r]) for r in liked if not np.isnan(years[r])]
    latest = max(ys) if ys else None
    out = {
        "template (fallback prose)": template_prose(p),
        "house rule: 3 distinctive categories + favourite 2": f"You enjoy {_join(lift)} movies.{fav_s}",
        "3 most frequent categories + era": f"You enjoy {_join(freq)} movies{era}.",
        "3 most frequent categories + favourite": f"You enjoy {_join(freq)} movies.{fav_s}",
        "favourites (3)": "Favourites include " + _join([f'"{t}"' for t in p.exemplars]) + "." if p.exemplars else "",
        "last liked title": f"Lately you liked {recent[0]}." if recent else "",
        "last 3 liked titles": "Lately you liked " + _join(recent[:3]) + "." if recent else "",
        "last 5 liked titles": "Lately you liked " + _join(recent[:5]) + "." if recent else "",
        "house rule + last 3 titles": f"You enjoy {_join(lift)} movies. Lately you liked " + _join(recent[:3]) + "."
        if recent else "",
    }
    if latest:
        out["house rule + latest release year"] = f"You enjoy {_join(lift)} movies.{fav_s} Lately: {latest} releases."
        out["categories from the latest year"] = f"You enjoy {_join(lift)} movies from {latest}.{fav_s}"
    return {k: v for k, v in out.items() if v}


def profiles(args, cfg, ds) -> dict:
    from recagent.eval.bootstrap import paired_bootstrap
    from recagent.agent.profile import ProfileSummarizer
    from recagent.finetune.llm_data import split_user
    from recagent.finetune.report import recall_at
    from recagent.ranking.content import item_text_embeddings
    from recagent.retrieval.encoders import TextEncoder

    like, cut = cfg.agent.like_threshold, cfg.finetune.profile_cutoff
    enc = TextEncoder.from_config(cfg)
    emb = item_text_embeddings(ds.catalog, enc, cfg.paths.cache / "embeddings")
    held = json.loads((Path(args.run) / "llm_data" / "heldout.json").read_text(encoding="utf-8"))
    rng = np.random.default_rng(1)
    others = [u for u in rng.permutation(sorted(ds.interactions.df["user_id"].astype(str).unique())) if u not in set(held)]
    summ = ProfileSummarizer(ds, None, None, like, cfg.agent.dislike_threshold)
    out = {}
    for name, users in (("heldout", held), ("other", others[:len(held) + 100])):
        splits = [sp for sp in (split_user(ds, u, cut, like) for u in users) if sp.liked_after][:args.users]
        scores: dict[str, list[float]] = {}
        for sp in splits:
            p = summ.facets(sp.user_id, sp.rows, sp.ratings)
            texts = profile_texts(p, sp.rows, sp.ratings or [like] * len(sp.rows), ds.catalog, like)
            q = np.asarray(enc.embed_texts(list(texts.values())), dtype=np.float32)
            for k, v in zip(texts, q):
                scores.setdefault(k, []).append(recall_at(emb @ v, sp.rows, sp.liked_after, 50))
            liked = [r for r, x in zip(sp.rows, sp.ratings or [like] * len(sp.rows)) if x >= like] or sp.rows
            for k, rows in (("centroid of liked items", liked), ("centroid of the last 5 liked", liked[-5:])):
                scores.setdefault(k, []).append(recall_at(emb @ emb[rows].mean(0), sp.rows, sp.liked_after, 50))
        full = [k for k, v in scores.items() if len(v) == len(splits)]
        base = np.array(scores["template (fallback prose)"])
        out[name] = {"users": len(splits), "recall@50": {
            k: {"mean": round(float(np.mean(scores[k])), 4),
                "minus_template": {a: round(float(b), 4) for a, b in paired_bootstrap(np.array(scores[k]), base).items()}}
            for k in full}}
    return out


def reasons(args, cfg, ds) -> dict:
    from recagent.agent.explain import Explainer, template_sentence
    from recagent.agent.verify import Verifier
    from recagent.agent.vocab import CatalogVocab, nouns_for
    from recagent.finetune.llm_data import grounded, training_reasons
    from recagent.finetune.report import distinct_n, grounded_bank, reason_sheets

    s = cfg.finetune
    nouns = nouns_for(ds, cfg.data)
    users = json.loads((Path(args.run) / "llm_data" / "heldout.json").read_text(encoding="utf-8"))
    verifier = Verifier(CatalogVocab(ds.catalog, cfg.agent.fuzzy_threshold, nouns))
    exp = Explainer(None, verifier)
    sheets = reason_sheets(ds, users, s, cfg.agent.like_threshold)
    banks = [[t for t in training_reasons(sh, nouns) if grounded(t, sh, exp)] or [template_sentence(sh, 0, nouns)]
             for sh in sheets]
    seen: set = set()
    greedy = []
    for bank in banks:
        def new_share(t: str) -> float:
            w = t.lower().split()
            grams = list(zip(w, w[1:]))
            return sum(g not in seen for g in grams) / max(1, len(grams))
        best = max(bank, key=new_share)
        w = best.lower().split()
        seen.update(zip(w, w[1:]))
        greedy.append(best)
    return {"sheets": len(sheets), "frames_per_sheet_median": float(np.median([len(b) for b in banks])),
            "distinct_2": {"random_frame": round(grounded_bank(sheets, verifier, nouns, s.seed)["distinct_2"], 4),
                           "best_greedy_pick": round(distinct_n(greedy), 4)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/ft-ml5", help="a finished `recagent finetune --dataset ml-100k` run")
    ap.add_argument("--users", type=int, default=200, help="users per set (held-out, other)")
    ap.add_argument("--only", default="profiles,reasons")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from recagent.config import load_config
    from recagent.data import load_dataset

    cfg = load_config(None, [])
    ds = load_dataset(cfg, "ml-100k")
    out = {name: fn(args, cfg, ds) for name, fn in (("profiles", profiles), ("reasons", reasons))
           if name in args.only.split(",")}
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
