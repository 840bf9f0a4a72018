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
    joined = cats[0] if len(cats) == 1 else ", ".join(cats[:-1]) + " and " + cats[-1]
    when = f", mostly from the {era}" if era else ""
    v = variant % 3
    first = [f"You enjoy {joined} {nouns.items}{when}.",
             f"Your taste runs to {joined}{when}.",
             f"You keep coming back to {joined} {nouns.items}{when}."][v]
    second = ""
    if best:
        second = [f' "{best}" is the kind of {nouns.item} you like most.',
                  f' "{best}" shows it well.',
                  f' Think of "{best}".'][v]
    return (first + second).strip()


def sample_reasons(llm: Any, explainer: Explainer, sheets: Sequence[FactSheet], candidates: int, temperature: float,
                   max_new_tokens: int = 40, batch_sheets: int = 8,
                   progress: Callable[[int], None] | None = None) -> tuple[list[str | None], dict]:
    """Rejection sampling: ``candidates`` samples per sheet, keep those that pass every check,
    prefer the rarest sentence frame so far. Returns one text (or None) per sheet and counts."""
    frames: Counter = Counter()
    out: list[str | None] = []
    n_cand = n_pass = 0
    for start in range(0, len(sheets), batch_sheets):
        chunk = sheets[start:start + batch_sheets]
        prompts = [explainer.prompt(s) for s in chunk for _ in range(candidates)]
        texts = llm.generate_batch(prompts, max_new_tokens, temperature)
        for j, s in enumerate(chunk):
            cands = [clean(t) for t in texts[j * candidates:(j + 1) * candidates]]
            n_cand += len(cands)
            ok = list(dict.fromkeys(c for c in cands if c and explainer._check(c, s).ok))
            n_pass += len(ok)
            if ok:
                pick = min(ok, key=lambda c: (frames[sentence_frame(c, explainer.verifier.vocab)], -len(set(c.split()))))
                frames[sentence_frame(pick, explainer.verifier.vocab)] += 1
                out.append(pick)
            else:
                out.append(None)
        if progress is not None:
            progress(len(chunk))
    return out, {"candidates": n_cand, "passed": n_pass, "sheets_with_a_pass": sum(x is not None for x in out)}


def build_llm_data(ds: Any, settings: Any, nouns: Nouns, out_dir: Path, llm: Any = None, like_threshold: float = 4.0,
                   quiet: bool = False, log_fn: Callable[[str], None] = log.info) -> dict:
    """Write the SFT set for one data set into ``out_dir``; returns what ``llm_data.json`` holds.

    Args:
        ds: the data set (catalog + log).
        settings: the ``[finetune]`` section.
        nouns: what the catalog's items and categories are called.
        out_dir: where ``train.jsonl``, ``heldout.json`` and ``llm_data.json`` go.
        llm: the base model for rejection sampling; None = template reasons only.
        like_threshold: ratings >= this are likes.
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
    for attempt, u in enumerate(users):
        if sum(e.task == "profile" for e in examples) >= n_profile:
            break
        sp = split_user(ds, u, settings.profile_cutoff, like_threshold)
        if len(sp.rows) + 1 < settings.min_history or not sp.liked_after:
            continue
        p = summ.facets(u, sp.rows, sp.ratings)
        target = profile_target(p, sp.liked_after, ds.catalog, nouns, attempt)
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
    n_sample = min(len(sheets), settings.reason_sample_sheets) if llm is not None else 0
    sampled: list[str | None] = [None] * len(sheets)
    stats: dict[str, Any] = {"candidates": 0, "passed": 0, "sheets_with_a_pass": 0}
    if n_sample:
        log_fn(f"llm data: sampling {settings.reason_candidates} reasons for each of {n_sample} fact sheets")
        with tqdm(total=n_sample, desc="rejection sampling", disable=quiet, unit="sheet") as bar:
            sampled[:n_sample], stats = sample_reasons(llm, explainer, sheets[:n_sample], settings.reason_candidates,
                                                       settings.reason_temperature, progress=bar.update)
    frames: Counter = Counter()
    for i, (s, text) in enumerate(zip(sheets, sampled)):
        source = "sampled"
        if text is None:
            # the template frame used least so far (templates vary, never one pattern)
            options = [template_sentence(s, v, nouns) for v in range(3)]
            text = min(options, key=lambda t: (frames[sentence_frame(t, vocab)], options.index(t)))
            source = "template"
        frames[sentence_frame(text, vocab)] += 1
        examples.append(Example("reason", explainer.prompt(s), text, source))
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
        "sampling": {**stats, "sheets": n_sample, "per_sheet": settings.reason_candidates},
        "heldout_users": len(held),
        "reason_frames": len(frames),
        "data_hash": hashlib.sha256(body).hexdigest(),
        "nouns": asdict(nouns),
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def read_examples(path: Path) -> list[dict]:
    """The examples of a ``train.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
