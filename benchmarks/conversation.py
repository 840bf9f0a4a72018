"""Conversation benchmark: simulated users and what people ask, per chat ranker; prints JSON.

- success: a simulated user per held-out ML-100K user (Protocol B: the last item, rated >= 4, is
  the target; history = everything before it). The simulated user knows the target's
  attributes but never says its title or id: over turns it names the target's two rarest
  genres, its decade, a title from its own history that fans of the target also liked, then
  "more like #k" for the shown item closest in genres. Reported: success within 5 turns, mean
  turns to success, for known users (with history) and cold start, beside the same ranker's
  non-conversational hit rate (history only: hit@5, hit@25), for `SimpleRanker` and the fusion
  ranker side by side.
- asks: the share of returned items that match what the message asked for (a word of the ask
  in the item's title, text or categories), known and new users, on ML-100K (title words:
  the catalog has no plot text) and on a generated grocery catalog (clearly synthetic), with
  the agent's ask-first ranking and without it (the behaviour before issue 11).

Usage: OMP_NUM_THREADS=1 python benchmarks/conversation.py [--sim-users 200] [--rankers simple,fusion]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

# ML-100K has no plot text: asks by title words and genre words, each matching >= 5 items
ML_ASKS = ["something about a king", "something about the city", "a story about a man", "something dead scary",
           "a house party", "a love story", "something about the war", "a space adventure"]
GROCERY_ASKS = ["something for breakfast", "a snack with cheese", "anything with chocolate", "spicy food",
                "something with chicken", "a drink with lemon"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim-users", type=int, default=200, help="simulated conversations per ranker")
    ap.add_argument("--ask-users", type=int, default=60, help="known users per ask in the ask-share part")
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--rankers", default="simple,fusion")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from recagent.config import load_config
    from recagent.data import load_dataset, make_split
    from recagent.data.schema import Dataset, Interactions

    cfg = load_config()
    full = load_dataset(cfg, "ml-100k", log_fn=lambda m: None)
    split = make_split(full, "B", cfg.data)
    import pandas as pd

    hist_df = pd.concat([split.train, split.valid])[["user_id", "item_id", "timestamp", "rating", "row"]]
    train = Dataset("ml-100k-train", full.catalog, Interactions(hist_df.reset_index(drop=True)))
    out: dict = {"dataset": "ml-100k", "protocol": "B (history = all but the last item)", "rankers": {}}
    for name in args.rankers.split(","):
        t0 = time.perf_counter()
        ranker = make_ranker(name, cfg, full, train)
        setup = round(time.perf_counter() - t0, 1)
        rng = np.random.default_rng(args.seed)
        res = {"setup_s": setup, "conversation": simulate(train, split, ranker, cfg, args)}
        res["asks_ml100k"] = ask_share(train, ranker, cfg, ML_ASKS, args, rng)
        out["rankers"][name] = res
    grocery = synthetic_grocery(args.seed)
    from recagent.agent.ranker import SimpleRanker

    out["asks_grocery_synthetic"] = ask_share(grocery, SimpleRanker.from_config(cfg, grocery), cfg, GROCERY_ASKS, args,
                                              np.random.default_rng(args.seed))
    print(json.dumps(out, indent=2))
    return out


def make_ranker(name: str, cfg, full, train):
    """`simple`, or `fusion`: the Protocol B fusion model (trained on the split's train part, so
    the held-out targets are never seen) with the ChromaDB index, on the history-only data set."""
    from recagent.agent.ranker import SimpleRanker

    if name == "simple":
        return SimpleRanker.from_config(cfg, train)
    from recagent.agent.fusion_ranker import FusionCandidateRanker
    from recagent.ranking.train import load_or_train
    from recagent.retrieval import ItemIndex
    from recagent.runs import layout

    fusion = load_or_train(cfg.replace("ranking", ablations=False), full, "B", ["fusion"], layout(cfg, full),
                           log=lambda m: print(m, file=sys.stderr))["fusion"]
    index = ItemIndex.open(cfg, full)
    index.ensure_built(full)
    return FusionCandidateRanker(train, index, fusion, like_threshold=cfg.agent.like_threshold,
                                 per_channel=cfg.retrieval.candidates)


def _agent(ds, ranker, cfg, k=5):
    from recagent.agent.agent import Agent

    settings = dataclasses.replace(cfg.agent, explain_with_llm=False, profile_with_llm=False, k=k)
    return Agent(ds, llm=None, ranker=ranker, settings=settings)


def simulate(train, split, ranker, cfg, args) -> dict:
    """Simulated users (known user with history, and cold start) vs the non-conversational baseline."""
    from recagent.agent.session import Constraints, SessionState

    test = split.test[split.test["rating"] >= 4]
    rows = test.sample(n=min(args.sim_users, len(test)), random_state=args.seed)
    agent = _agent(train, ranker, cfg)
    freq: dict[str, int] = {}
    for cs in train.catalog.items["categories"]:
        for c in cs:
            freq[c] = freq.get(c, 0) + 1
    res: dict[str, list] = {"known": [], "cold": []}
    base5 = base25 = 0
    t0 = time.perf_counter()
    for _, r in rows.iterrows():
        u, target = str(r["user_id"]), train.item_index[str(r["item_id"])]
        s = SessionState(user_id=u)
        hist_all = {train.item_index[i] for i in train.history(u)["item_id"]}
        top = [c.item_idx for c in ranker.rank(s, "", 25, hist_all, Constraints())]
        base5 += target in top[:5]
        base25 += target in top
        script = _script(train, agent.evidence, u, target, freq)
        for mode in ("known", "cold"):
            res[mode].append(_converse(agent, mode, u, target, script, args.turns))
    n = len(rows)
    out = {"users": n, "turns": args.turns, "seconds": round(time.perf_counter() - t0, 1),
           "baseline_history_only": {"hit@5": round(base5 / n, 3), "hit@25": round(base25 / n, 3)}}
    for mode, turns in res.items():
        ok = [t for t in turns if t is not None]
        out[f"{mode}_user"] = {
            f"success@{args.turns}_turns": round(len(ok) / n, 3),
            "success@1_turn": round(sum(t == 1 for t in ok) / n, 3),
            "mean_turns_to_success": round(float(np.mean(ok)), 2) if ok else None,
        }
    return out


def _script(train, evidence, user, target, freq) -> list[str]:
    """The simulated user's lines: genres, era, a liked title of its own that the target's fans
    also liked (never the target: it is held out of the history), then feedback."""
    rec = train.catalog.row(target)
    cats = sorted(rec["categories"], key=lambda c: freq[c])[:2]
    lines = [f"I'd like something {' or '.join(cats).lower()}" if cats else "Something good please"]
    lines.append(f"from the {rec['year'] // 10 * 10}s" if rec["year"] else "any era is fine")
    h = train.history(user)
    liked = [train.item_index[i] for i in h[h["rating"] >= 4]["item_id"] if train.item_index[i] != target]
    if liked:
        co = evidence.co_counts(target)
        best = max(liked, key=lambda i: (co[i], -i))
        lines.append(f'something like "{train.catalog.items["title"].iloc[best]}"')
    return lines


def _converse(agent, mode, user, target, script, turns) -> int | None:
    cat = agent.ds.catalog
    tcats = set(cat.items["categories"].iloc[target])
    s = agent.new_session(user if mode == "known" else None)
    for turn in range(1, turns + 1):
        if turn <= len(script):
            msg = script[turn - 1]
        else:
            shown = [agent.ds.item_index[i] for i in s.shown]
            sims = [len(tcats & set(cat.items["categories"].iloc[i])) / max(1, len(tcats | set(cat.items["categories"].iloc[i])))
                    for i in shown]
            msg = f"more like #{int(np.argmax(sims)) + 1}" if shown else "something else"
        r = agent.respond(s, msg)
        if cat.ids[target] in [i.item_id for i in r.items]:
            return turn
    return None


@contextlib.contextmanager
def _ask_first_off():
    """The behaviour before issue 11: asks only steer the query similarity, never the candidates."""
    from recagent.agent.vocab import CatalogVocab

    orig = CatalogVocab.matching_rows
    CatalogVocab.matching_rows = lambda self, text: set()
    try:
        yield
    finally:
        CatalogVocab.matching_rows = orig


def ask_share(ds, ranker, cfg, asks: list[str], args, rng) -> dict:
    """Share of the 5 returned items that match the ask's words, known and new users."""
    from recagent.agent.vocab import CatalogVocab

    vocab = CatalogVocab(ds.catalog)
    agent = _agent(ds, ranker, cfg)
    users = [str(u) for u in rng.choice(ds.user_ids, size=min(args.ask_users, len(ds.user_ids)), replace=False)]
    out: dict = {"asks": asks, "known_users": len(users)}
    # what each ask matches (with categories the parser turns into constraints), fixed before any patching
    wanted = {ask: vocab.matching_rows(agent.parser.parse(ask).ask) | _category_rows(ds, agent.parser.parse(ask).include)
              for ask in asks}
    out["items_matching_each_ask"] = {a: len(r) for a, r in wanted.items()}
    for label, ctx in (("ask_first", contextlib.nullcontext), ("before", _ask_first_off)):
        shares: dict[str, list[float]] = {"known": [], "new": []}
        t0 = time.perf_counter()
        with ctx():
            for ask in asks:
                rows = wanted[ask]
                for who in ["new"] + users:
                    s = agent.new_session(None if who == "new" else who)
                    r = agent.respond(s, ask)
                    if not r.items:
                        continue
                    share = np.mean([ds.item_index[i.item_id] in rows for i in r.items])
                    shares["new" if who == "new" else "known"].append(float(share))
        out[label] = {f"{k}_share_matching": round(float(np.mean(v)), 3) for k, v in shares.items() if v}
        out[label]["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _category_rows(ds, cats: list[str]) -> set[int]:
    want = set(cats)
    return {i for i, cs in enumerate(ds.catalog.items["categories"]) if want & set(cs)} if want else set()


def synthetic_grocery(seed: int = 0):
    """A SYNTHETIC grocery catalog (300 items, 12 aisles with abbreviated names, short texts) and
    a log of 400 users who each buy mostly from two aisles."""
    import pandas as pd

    from recagent.data.schema import Catalog, Dataset, Interactions

    rng = np.random.default_rng(seed)
    aisles = {
        "Breakfast Cereal": ["oat", "corn", "granola", "bran", "honey"], "Frzn Breakfast": ["waffle", "pancake", "sausage"],
        "Snack Chips": ["tortilla", "potato", "cheese", "salt", "spicy"], "Cheese": ["cheddar", "brie", "gouda", "cheese"],
        "Beverages": ["lemon", "cola", "orange", "tea", "coffee"], "Frozen Pizza": ["pepperoni", "cheese", "veggie"],
        "Candy": ["chocolate", "caramel", "gummy", "mint"], "Meat": ["chicken", "beef", "pork", "turkey"],
        "Condiments": ["mustard", "ketchup", "spicy", "mayo"], "Bakery": ["bread", "bagel", "muffin", "croissant"],
        "Dairy": ["milk", "yogurt", "butter", "cream"], "Produce": ["apple", "lemon", "banana", "berry"],
    }
    names = list(aisles)
    rows = []
    for i in range(300):
        a = names[i % len(names)]
        w = rng.choice(aisles[a], size=2, replace=False)
        breakfast = " for breakfast" if a in ("Breakfast Cereal", "Frzn Breakfast", "Bakery", "Dairy") and rng.random() < .6 else ""
        rows.append({"item_id": f"p{i}", "title": f"{w[0].title()} {a.split()[-1]} {i}", "text": f"{w[0]} and {w[1]}{breakfast}",
                     "categories": [a], "year": pd.NA, "image_path": None})
    items = pd.DataFrame(rows)
    items["year"] = items["year"].astype("Int64")
    log = []
    for u in range(400):
        fav = rng.choice(len(names), size=2, replace=False)
        pool = [i for i in range(300) if i % len(names) in fav]
        for j, i in enumerate(rng.choice(pool, size=12, replace=False)):
            log.append({"user_id": f"u{u}", "item_id": f"p{i}", "timestamp": float(1_600_000_000 + 1000 * u + j),
                        "rating": float(rng.integers(3, 6)), "row": len(log)})
    return Dataset("grocery-synthetic", Catalog(items), Interactions(pd.DataFrame(log)))


if __name__ == "__main__":
    main(sys.argv[1:])
