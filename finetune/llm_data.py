"""The LLM's training data, built from a domain's logs: two tasks in one SFT set.

- *profile*: a user's history up to a cut-off -> the chat's profile prompt; the target is 2-3
  sentences that put first the facets of the history that the user's *later* likes share (so
  the profile learns to say what predicts the future), in the house format, and it passes the
  verifier against the history's facts.
- *reason*: a fact sheet (the chat's own explanation prompt) -> one sentence. Targets come from
  rejection sampling: the base model writes several candidates per sheet, only those that pass
  the verifier and the honesty checks are kept, and the one whose sentence frame is rarest so
  far wins; sheets where sampling finds nothing get a template in a rotating frame.

Outputs (``build_llm_data``): ``train.jsonl`` (one example a line: task, messages, target,
source), ``heldout.json`` (users kept out, for the before/after evaluation) and
``llm_data.json`` (counts, acceptance rate, the data hash the adapter records).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recagent.agent.explain import Evidence, Explainer, FactSheet, build_fact_sheets, clean, template_sentence
from recagent.agent.profile import Profile, ProfileSummarizer
from recagent.agent.verify import Verifier, sentence_frame
from recagent.agent.vocab import CatalogVocab, Nouns

log = logging.getLogger("recagent.finetune")

TRAIN_FILE = "train.jsonl"
HELDOUT_FILE = "heldout.json"
META_FILE = "llm_data.json"
# Channels a sampled reason sheet claims, roughly as often as the chat's ranker reports them.
_CHANNELS = ("neighbours", "cf", "profile", "query", "popular")
_CHANNEL_P = (0.35, 0.25, 0.2, 0.1, 0.1)


@dataclass
class Example:
    """One SFT example: the chat messages the model sees and the reply it should write."""

    task: str            # 'profile' | 'reason'
    messages: list[dict]
    target: str
    source: str          # 'future-facts' | 'sampled' | 'template'


@dataclass
class UserSplit:
    """A user's history cut in time: what a profile may see, and what they liked afterwards."""

    user_id: str
    rows: list[int]              # catalog rows before the cut, oldest first
    ratings: list[float] | None
    liked_before: list[int]
    liked_after: list[int]


def split_user(ds: Any, user_id: str, cutoff: float, like_threshold: float) -> UserSplit:
    """Cut one user's history at ``cutoff`` (share of their interactions, by time)."""
    h = ds.history(str(user_id))
    rows = [ds.item_index[i] for i in h["item_id"]]
    ratings = h["rating"].to_numpy(dtype="float64").tolist() if ds.interactions.has_ratings else None
    cut = max(1, min(len(rows) - 1, int(round(len(rows) * cutoff))))
    liked = [r >= like_threshold for r in ratings] if ratings is not None else [True] * len(rows)
    return UserSplit(str(user_id), rows[:cut], None if ratings is None else ratings[:cut],
                     [r for r, ok in zip(rows[:cut], liked[:cut]) if ok], [r for r, ok in zip(rows[cut:], liked[cut:]) if ok])


def heldout_users(ds: Any, n: int, min_history: int, seed: int) -> list[str]:
    """Users kept out of the LLM training data (seeded; only users with enough history)."""
    counts = ds.interactions.df["user_id"].astype(str).value_counts()
    eligible = sorted(counts[counts >= max(2, min_history)].index)
    rng = np.random.default_rng(seed + 7)
    k = min(n, max(0, len(eligible) // 5))  # never more than a fifth of the users
    return sorted(str(u) for u in rng.choice(eligible, size=k, replace=False)) if k else []


def profile_target(p: Profile, after: Sequence[int], catalog: Any, nouns: Nouns, variant: int = 0) -> str | None:
    """2-3 sentences from the history's facets, ordered by what the later likes share.

    Only facets of the history are named (so the text passes the verifier against the
    history's facts); the future decides which of them come first and which are left out.
    """
    cats_after: Counter = Counter()
    for r in after:
        cats_after.update(catalog.items["categories"].iloc[r])
    liked = [c for c, _ in p.liked_categories[:5]]
    if not liked:
        return None
    ranked = sorted(liked, key=lambda c: (-cats_after.get(c, 0), liked.index(c)))
    cats = [c for c in ranked if cats_after.get(c, 0) > 0][:3] or ranked[:2]
    years = catalog.items["year"].to_numpy(dtype="float64", na_value=np.nan)
    decades = Counter(int(years[r]) // 10 * 10 for r in after if not np.isnan(years[r]))
    eras = [e for e, _ in p.eras]
    era = next((f"{d}s" for d, _ in decades.most_common() if f"{d}s" in eras), eras[0] if eras else None)
    best = None
    if p.exemplars:
        ex_rows = [catalog.index[i] for i in p.exemplar_ids if i in catalog.index]
        overlap = [sum(cats_after.get(c, 0) for c in catalog.items["categories"].iloc[r]) for r in ex_rows]
        best = p.exemplars[int(np.argmax(overlap))] if overlap else p.exemplars[0]
    return _profile_text(cats, era, best, nouns, variant)


def _profile_text(cats: Sequence[str], era: str | None, fav: str | None, nouns: Nouns, variant: int) -> str:
    """One profile in the house format (the frames the chat's few-shot example uses)."""
    joined = cats[0] if len(cats) == 1 else ", ".join(cats[:-1]) + " and " + cats[-1]
    when = f", mostly from the {era}" if era else ""
    v = variant % 3
    first = [f"You enjoy {joined} {nouns.items}{when}.",
             f"You are drawn to {joined} {nouns.items}{when}.",
             f"You keep coming back to {joined} {nouns.items}{when}."][v]
    second = ""
    if fav:
        second = [f' "{fav}" is the kind of {nouns.item} you like most.', f' "{fav}" shows it well.',
                  f' "{fav}" is a good example.'][v]
    return first + second


def profile_candidates(p: Profile, nouns: Nouns, variant: int = 0, max_categories: int = 3) -> dict[tuple, str]:
    """Every house-format profile that says only what the profile prompt shows, keyed by its
    rule ``(category positions, era shown, favourite position)``: 1-3 of the first four liked
    categories (in the prompt's order), the era or not, one of the two shown favourites or
    none. A model can learn to follow a rule from its prompt alone."""
    from itertools import combinations

    shown = [c for c, _ in p.liked_categories[:4]]
    era = p.eras[0][0] if p.eras else None
    favs = list(p.exemplars[:2])
    out: dict[tuple, str] = {}
    for k in range(1, min(max_categories, len(shown)) + 1):
        for pos in combinations(range(len(shown)), k):
            for e in ((1, 0) if era else (0,)):
                for f in range(len(favs) + 1):
                    out[(pos, e, f)] = _profile_text([shown[i] for i in pos], era if e else None,
                                                     favs[f - 1] if f else None, nouns, variant)
    return out


def future_score(scores: np.ndarray, seen: Sequence[int], future: Sequence[int]) -> float:
    """How well a profile's retrieval scores find the items liked after the cut: Recall@50 (the
    evaluation metric), plus smaller weights on Recall@200 and the mean rank percentile, which
    break Recall@50's many ties for users with few later likes."""
    from recagent.finetune.report import recall_at

    s = np.asarray(scores, dtype=np.float64).copy()
    s[list(seen)] = -np.inf
    ranks = (-s).argsort(kind="stable").argsort()
    pct = 1.0 - ranks[list(future)] / max(1, len(s) - len(seen))
    return recall_at(s, [], future, 50) + 0.3 * recall_at(s, [], future, 200) + 0.1 * float(np.mean(pct))


class ProfileTargets:
    """Profile targets chosen by what retrieves the user's *later* likes.

    Every candidate rule (`profile_candidates` in each of the house format's phrasings) is
    scored on up to ``rule_users`` training users by `future_score` of its text alone; the
    ``top_rules`` best on average are this domain's house rules, and each user's target is the
    house rule that fits that user best. (A rule a model can read off its prompt generalises;
    the single best candidate per user is mostly noise a model cannot predict.) The phrasing is
    part of the rule because it moves retrieval as much as the facts do: on 183 held-out
    ML-100K users the same facts gave Recall@50 0.091 as "You enjoy X. "F" is the kind of
    movie you like most." and 0.079 as "You are drawn to X. "F" shows it well."
    """

    def __init__(self, encoder: Any, item_emb: np.ndarray, nouns: Nouns, top_rules: int = 3, phrasings: int = 3):
        self.encoder, self.item_emb, self.nouns, self.top_rules = encoder, item_emb, nouns, top_rules
        self.phrasings = phrasings
        self.rule_scores: dict[tuple, float] = {}

    def candidates(self, p: Profile) -> dict[tuple, str]:
        """``{(rule, phrasing): text}`` for one user's profile facets."""
        out: dict[tuple, str] = {}
        for v in range(self.phrasings):
            out.update({(k, v): t for k, t in profile_candidates(p, self.nouns, v).items()})
        return out

    def _scores(self, cands: dict[tuple, str], seen: Sequence[int], future: Sequence[int]) -> dict[tuple, float]:
        q = np.asarray(self.encoder.embed_texts(list(cands.values())), dtype=np.float32)
        return {k: future_score(self.item_emb @ v, seen, future) for k, v in zip(cands, q)}

    def fit(self, users: Sequence[tuple[Profile, UserSplit]]) -> dict[tuple, float]:
        """Mean score of each rule over ``users`` (rules a user cannot fill count as missing)."""
        tot: Counter = Counter()
        n: Counter = Counter()
        for p, sp in users:
            for k, v in self._scores(self.candidates(p), sp.rows, sp.liked_after).items():
                tot[k] += v
                n[k] += 1
        full = max(n.values()) if n else 0
        self.rule_scores = {k: tot[k] / n[k] for k in tot if n[k] >= 0.8 * full}
        return self.rule_scores

    @property
    def house_rules(self) -> list[tuple]:
        return sorted(self.rule_scores, key=lambda k: -self.rule_scores[k])[:self.top_rules]

    def target(self, p: Profile, sp: UserSplit) -> str | None:
        cands = self.candidates(p)
        mine = {k: cands[k] for k in self.house_rules if k in cands}
        if not mine:  # a short history: the best-scoring rule this user can fill
            ok = [k for k in sorted(self.rule_scores, key=lambda k: -self.rule_scores[k]) if k in cands]
            return cands[ok[0]] if ok else None
        scores = self._scores(mine, sp.rows, sp.liked_after)
        return mine[max(scores, key=scores.get)]


def grounded(text: str, sheet: FactSheet, explainer: Explainer) -> bool:
    """A training target: passes the chat's checks (which reject invented words), names the
    item, links it to a reason the sheet gives, and repeats nothing."""
    if not text or not explainer._check(text, sheet).ok:
        return False
    low = text.lower()
    if sheet.title.lower().split(" (")[0] not in low:
        return False
    if re.search(r"\b(\w+)\W+\1\b", low) or re.search(r"\b(\w{4})\w*\W+\1", low):  # "nothing to nothing", "comedy comedies"
        return False
    if re.search(r"favou?rite|same (\w+ )?as\b", low):  # the item as the user's favourite, or as another item
        return False
    links = [c.lower() for c in sheet.categories] + [n["title"].lower() for n in sheet.neighbours]
    if sheet.co_liked:
        links.append(sheet.co_liked["via_title"].lower())
    if links and not any(x in low for x in links):
        return False  # says nothing the sheet gives as a reason
    return True  # invented words: `Explainer._check` rejects them (`invented_words`)


def training_reasons(s: FactSheet, nouns: Nouns) -> list[str]:
    """Grounded reasons in many sentence frames, built only from the fact sheet.

    A lead (how the item relates to the liked neighbour, or why it was picked) is combined
    with one of several ways of giving the co-liked count, so the bank holds dozens of
    phrasings per sheet: a tuned model that learned from it varies its wording from card to
    card, where three chat templates (or the prompt's one example) would teach it one pattern.
    Every frame says only what the sheet says; `grounded` still checks each one.
    """
    from recagent.agent.explain import _why

    t = f'"{s.title}"'
    when = f" from {s.year}" if s.year else ""
    genre = " and ".join(s.categories[:2])
    kind = f"{genre} {nouns.item}" if genre else nouns.item
    art = "an" if kind[:1].lower() in "aeiou" else "a"
    leads: list[str] = []
    if s.neighbours and s.liked:
        n = s.neighbours[0]
        x = f'"{n["title"]}"'
        sh = " and ".join(n["shared"][:2])
        for xx in (f"{x}, which you liked", f"{x}, one of your likes", x):
            if sh:
                leads += [f"{t} shares {sh} with {xx}", f"{t} has the {sh} streak of {xx}",
                          f"{t} is a {sh} match for {xx}", f"{t} gives more {sh} in the spirit of {xx}",
                          f"after {xx}, {t} brings more {sh}", f"{t} offers the {sh} of {xx}",
                          f"{t}{when} is {sh} at heart, like {xx}"]
            else:
                link = ("described much like", f"with a {nouns.story} much like") if n.get("similar_text") else \
                       ("from the same decade as", "made in the same years as")
                leads += [f"{t} is {art} {kind}{when}, {link[0]} {xx}", f"{t}, {art} {kind}, is {link[1]} {xx}"]
        if sh:
            leads += [f"{t} keeps the {sh} of {x} going", f"{t} stays close to {x} with its {sh}", f"{t} has {sh} in common with {x}",
                      f"you liked {x}, and {t} brings the same {sh}", f"if {x} worked for you, {t} offers more {sh}",
                      f"{t} is another {sh} pick{when} for fans of {x}", f"{t} pairs well with {x}: both are {sh}"]
    else:
        why = _why(s)
        leads = [f"{t} is {art} {kind}{when}, and {why}", f"{t} made the list because {why}",
                 f"{art} {kind}{when}: {t}, picked because {why}", f"because {why}, {t} is on the list",
                 f"{t}{when} is here because {why}", f"{t}, {art} {kind}{when}, earns its place: {why}",
                 f"{t} is {art} {kind} pick{when}; {why}", f"for {art} {kind} mood, {t} fits: {why}"]
    leads = [x[0].upper() + x[1:] for x in leads]
    if not s.co_liked:
        return [x + "." for x in leads]
    c = s.co_liked
    b, m, v = c["both"], c["via_total"], f'"{c["via_title"]}"'
    tails = [f", and {b} of the {m} people who liked {v} also liked it.",
             f"; of the {m} people who liked {v}, {b} liked it too.",
             f". {b} of {m} fans of {v} liked it as well.",
             f". {v} fans agree: {b} of {m} liked it.",
             f", and it won over {b} of the {m} fans of {v}.",
             f"; {b} out of {m} people who liked {v} liked it too."]
    return [lead + tail for lead in leads for tail in tails] + [
        f"{b} of the {m} people who liked {v} also liked {t}, {art} {kind}{when}.",
        f"Fans of {v} agree: {b} of {m} of them liked {t}.",
        f"{t} won over {b} of the {m} people who liked {v}."]


def shot_shaped(explainer: Explainer, sheet: FactSheet, slot: int = 0) -> str | None:
    """The prompt's own example reply, rewritten with this sheet's facts (its title, liked
    neighbour, counts, year and shared category), when the result passes every check: the
    target that teaches 'say these facts the way the example does'."""
    from recagent.agent.explain import few_shot

    n = sheet.neighbours[0] if sheet.neighbours else None
    cat = (n["shared"][0] if n and n["shared"] else (sheet.categories[0] if sheet.categories else None))
    if cat is None:
        return None
    cats = [cat] + [c for c in explainer.verifier.vocab.categories if c != cat][:1]
    _, reply = few_shot(explainer.nouns, cats, slot, sheet)
    other = n["title"] if n else (sheet.co_liked["via_title"] if sheet.co_liked else None)
    if '"Night Train"' in reply and other is None:
        return None
    text = reply.replace('"Moon Harbor"', f'"{sheet.title}"').replace('"Night Train"', f'"{other}"')
    if sheet.co_liked:
        text = re.sub(r"\b41\b", str(sheet.co_liked["both"]), text)
        text = re.sub(r"\b97\b", str(sheet.co_liked["via_total"]), text)
    text = text.replace("1983", str(sheet.year)) if sheet.year else text.replace(" from 1983", "").replace(" (1983)", "")
    return text if grounded(text, sheet, explainer) else None


def sample_reasons(llm: Any, explainer: Explainer, sheets: Sequence[FactSheet], candidates: int, temperature: float,
                   max_new_tokens: int = 40, batch_sheets: int = 8, progress: Callable[[int], None] | None = None,
                   slots: Sequence[int] | None = None, shapes: Sequence[str | None] | None = None
                   ) -> tuple[list[str | None], dict]:
    """Rejection sampling: ``candidates`` samples per sheet, keep those that pass every check
    (`grounded`), prefer one that opens like its prompt's example (``shapes``), then the rarest
    sentence frame so far. Returns one text (or None) per sheet and counts."""
    vocab = explainer.verifier.vocab
    frames: Counter = Counter()
    out: list[str | None] = []
    n_cand = n_pass = 0
    slots = list(slots) if slots is not None else [0] * len(sheets)
    want = [sentence_frame(x, vocab) if x else None for x in (shapes or [None] * len(sheets))]
    for start in range(0, len(sheets), batch_sheets):
        chunk = sheets[start:start + batch_sheets]
        prompts = [explainer.prompt(s, None, slots[start + j]) for j, s in enumerate(chunk) for _ in range(candidates)]
        texts = llm.generate_batch(prompts, max_new_tokens, temperature)
        for j, s in enumerate(chunk):
            cands = [clean(t) for t in texts[j * candidates:(j + 1) * candidates]]
            n_cand += len(cands)
            ok = list(dict.fromkeys(c for c in cands if grounded(c, s, explainer)))
            n_pass += len(ok)
            if ok:
                w = want[start + j]
                pick = min(ok, key=lambda c: (sentence_frame(c, vocab) != w, frames[sentence_frame(c, vocab)],
                                              -len(set(c.split()))))
                frames[sentence_frame(pick, vocab)] += 1
                out.append(pick)
            else:
                out.append(None)
        if progress is not None:
            progress(len(chunk))
    return out, {"candidates": n_cand, "passed": n_pass, "sheets_with_a_pass": sum(x is not None for x in out)}


def build_llm_data(ds: Any, settings: Any, nouns: Nouns, out_dir: Path, llm: Any = None, like_threshold: float = 4.0,
                   quiet: bool = False, log_fn: Callable[[str], None] = log.info, encoder: Any = None,
                   embed_cache: Path | None = None) -> dict:
    """Write the SFT set for one data set into ``out_dir``; returns what ``llm_data.json`` holds.

    Args:
        ds: the data set (catalog + log).
        settings: the ``[finetune]`` section.
        nouns: what the catalog's items and categories are called.
        out_dir: where ``train.jsonl``, ``heldout.json`` and ``llm_data.json`` go.
        llm: the base model for rejection sampling; None = template reasons only.
        like_threshold: ratings >= this are likes.
        encoder: the text encoder; profile targets are then the house rules that retrieve the
            users' later likes best (`ProfileTargets`); None = `profile_target`'s ordering.
        embed_cache: folder of cached item text embeddings (``paths.cache/embeddings``).
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(settings.seed)
    vocab = CatalogVocab(ds.catalog, nouns=nouns)
    verifier = Verifier(vocab)
    explainer = Explainer(None, verifier)
    summ = ProfileSummarizer(ds, None, verifier, like_threshold)
    held = set(heldout_users(ds, settings.heldout_users, settings.min_history, settings.seed))
    users = [u for u in map(str, ds.user_ids) if u not in held]
    rng.shuffle(users)
    n_profile = int(round(settings.max_examples * settings.profile_share))
    n_reason = settings.max_examples - n_profile
    examples: list[Example] = []
    splits = (split_user(ds, u, settings.profile_cutoff, like_threshold) for u in users)
    eligible = ((sp, summ.facets(sp.user_id, sp.rows, sp.ratings)) for sp in splits
                if len(sp.rows) + 1 >= settings.min_history and sp.liked_after)
    chosen = [x for _, x in zip(range(n_profile), eligible)]
    targets, rules = None, {}
    if encoder is not None and chosen:
        from recagent.ranking.content import item_text_embeddings

        targets = ProfileTargets(encoder, item_text_embeddings(ds.catalog, encoder, embed_cache), nouns, settings.profile_rules)
        log_fn(f"llm data: scoring profile rules on {min(len(chosen), settings.profile_rule_users)} users")
        targets.fit([(p, sp) for sp, p in chosen[:settings.profile_rule_users]])
        rules = {"house_rules": [_rule_name(k) for k in targets.house_rules],
                 "house_rule_scores": [round(targets.rule_scores[k], 4) for k in targets.house_rules],
                 "rules_scored": len(targets.rule_scores)}
    for sp, p in chosen:  # without an encoder: one phrasing for everyone (a rotation is noise to the model)
        target = (targets.target(p, sp) if targets is not None
                  else profile_target(p, sp.liked_after, ds.catalog, nouns))
        if target and verifier.check(target, p.facts(vocab)).ok:
            examples.append(Example("profile", summ.prompt(p), target, "future-facts"))
    evidence = Evidence(ds, like_threshold)
    sheets: list[FactSheet] = []
    for k in range(n_reason * 3):
        if len(sheets) >= n_reason or not users:
            break
        sp = split_user(ds, users[k % len(users)], settings.profile_cutoff, like_threshold)
        pool = sp.liked_after or sp.rows
        if not pool:
            continue
        item = int(rng.choice(pool))
        hist = [] if rng.random() < 0.15 else sp.liked_before  # some new users: no likes, no claims
        channel = str(rng.choice(_CHANNELS, p=_CHANNEL_P))
        sheets += build_fact_sheets(ds.catalog, [(item, channel)], hist, evidence, None, 2,
                                    set(sp.liked_before) | set(sp.liked_after))
    slots = [int(x) for x in rng.integers(0, 5, size=len(sheets))]  # the card's position in a turn of five
    shapes = [shot_shaped(explainer, s, slot) for s, slot in zip(sheets, slots)]
    n_sample = min(len(sheets), settings.reason_sample_sheets) if llm is not None else 0
    sampled: list[str | None] = [None] * len(sheets)
    stats: dict[str, Any] = {"candidates": 0, "passed": 0, "sheets_with_a_pass": 0}
    if n_sample:
        log_fn(f"llm data: sampling {settings.reason_candidates} reasons for each of {n_sample} fact sheets")
        with tqdm(total=n_sample, desc="rejection sampling", disable=quiet, unit="sheet") as bar:
            sampled[:n_sample], stats = sample_reasons(llm, explainer, sheets[:n_sample], settings.reason_candidates,
                                                       settings.reason_temperature, progress=bar.update,
                                                       slots=slots[:n_sample], shapes=shapes[:n_sample])
    frames: Counter = Counter()
    for i, (s, text) in enumerate(zip(sheets, sampled)):
        source = "sampled"
        shape = shapes[i]
        if shape is not None and (text is None or sentence_frame(text, vocab) != sentence_frame(shape, vocab)):
            text, source = shape, "example-shaped"  # the prompt's example opening, with this sheet's facts
        if text is None:
            # the frame used least so far, among those that pass the chat's checks (never one pattern)
            bank = training_reasons(s, nouns)
            options = []
            for j in rng.permutation(len(bank)):  # a few that pass, in random order (the bank is large)
                if grounded(bank[j], s, explainer):
                    options.append(bank[j])
                    if len(options) == 8:
                        break
            options = options or [template_sentence(s, v, nouns) for v in range(3)]
            text = min(options, key=lambda t: frames[sentence_frame(t, vocab)])  # stable: random order kept
            source = "template"
        frames[sentence_frame(text, vocab)] += 1
        examples.append(Example("reason", explainer.prompt(s, None, slots[i]), text, source))
    order = rng.permutation(len(examples))
    lines = [json.dumps(asdict(examples[i]), ensure_ascii=False, sort_keys=True) for i in order]
    body = ("\n".join(lines) + "\n").encode("utf-8")
    (out_dir / TRAIN_FILE).write_bytes(body)
    (out_dir / HELDOUT_FILE).write_text(json.dumps(sorted(held), indent=1), encoding="utf-8")
    meta = {
        "examples": len(examples),
        "profile": sum(e.task == "profile" for e in examples),
        "reason": sum(e.task == "reason" for e in examples),
        "reason_sampled": sum(e.source == "sampled" for e in examples),
        "reason_template": sum(e.source == "template" for e in examples),
        "reason_example_shaped": sum(e.source == "example-shaped" for e in examples),
        "sampling": {**stats, "sheets": n_sample, "per_sheet": settings.reason_candidates},
        "heldout_users": len(held),
        "profile_targets": rules or {"rule": "history categories ordered by the later likes (no encoder)"},
        "reason_frames": len(frames),
        "data_hash": hashlib.sha256(body).hexdigest(),
        "nouns": asdict(nouns),
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def _rule_name(rule: tuple) -> str:
    (pos, era, fav), phrasing = rule
    return (f"categories {'+'.join(str(i + 1) for i in pos)}" + (", era" if era else "")
            + (f", favourite {fav}" if fav else "") + f", phrasing {phrasing + 1}")


def read_examples(path: Path) -> list[dict]:
    """The examples of a ``train.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
