"""Interest profiles: facets computed from a user's history (liked and disliked categories with
weights from ratings, eras, exemplar titles, recent drift) plus 2-3 sentences of prose that the
LLM writes from those facets alone, verified like explanations, with a template fallback.
"""

from __future__ import annotations

import copy
import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from recagent.agent.explain import clean, unsupported_words
from recagent.agent.llm import LLM
from recagent.agent.verify import Facts, Verifier
from recagent.agent.vocab import Nouns

PROFILE_SYSTEM = "Describe the user's taste in two short sentences. Use only the facts."


@dataclass
class Profile:
    """A user's interests. Weights are in [-1, 1]: mean-centred rating evidence per category,
    scaled by how often the category occurs (0 = no signal)."""

    user_id: str | None
    n_items: int = 0
    liked_categories: list[tuple[str, float]] = field(default_factory=list)
    disliked_categories: list[tuple[str, float]] = field(default_factory=list)
    eras: list[tuple[str, float]] = field(default_factory=list)          # ("1990s", share of liked items)
    exemplars: list[str] = field(default_factory=list)                   # titles of favourite items
    exemplar_ids: list[str] = field(default_factory=list)
    recent_drift: list[str] = field(default_factory=list)                # categories rising lately
    prose: str = ""
    prose_source: str = "template"                                       # 'llm' | 'template'

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def facts(self, vocab) -> Facts:
        # Only liked categories: a small model turns 'Dislikes: Action' into 'you enjoy Action'.
        cats = {c for c, _ in self.liked_categories[:5]} | set(self.recent_drift)
        years = {int(e[:4]) for e, _ in self.eras}
        titles = {vocab.catalog.index[i] for i in self.exemplar_ids if i in vocab.catalog.index}
        return Facts(titles=titles, categories=cats, years=years, numbers=set(), liked=set(titles))


class ProfileSummarizer:
    """History -> `Profile`; known users' profiles are cached for the life of the object.

    Args:
        dataset: the data set whose log holds the histories.
        llm: writes the prose; None = template prose.
        verifier: checks the prose against the facets.
        like_threshold, dislike_threshold: rating cut-offs (logs without ratings: all liked).
        exemplars: favourite titles to keep.
        recent_window: last N interactions that define the recent drift.
        max_new_tokens: budget of the prose.
    """

    def __init__(self, dataset, llm: LLM | None = None, verifier: Verifier | None = None, like_threshold: float = 4.0,
                 dislike_threshold: float = 2.0, exemplars: int = 3, recent_window: int = 20, max_new_tokens: int = 60):
        self.ds, self.llm, self.verifier = dataset, llm, verifier
        self.like_threshold, self.dislike_threshold = like_threshold, dislike_threshold
        self.n_exemplars, self.recent_window, self.max_new_tokens = exemplars, recent_window, max_new_tokens
        self._cache: dict[str, Profile] = {}
        self._lock = threading.Lock()  # sessions share one summarizer; the cache is its only mutable state

    def summarize(self, user_id: str, prose: bool = True) -> Profile:
        """The profile of a user of the log (cached per user; safe to call from several sessions:
        two first calls for one user may both compute it, and the first stored wins). Callers get
        a copy, so a session that edits its profile never changes another session's."""
        key = f"{user_id}|{prose}"
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            h = self.ds.history(str(user_id))
            rows = [self.ds.item_index[i] for i in h["item_id"]]
            ratings = h["rating"].to_numpy(dtype="float64") if self.ds.interactions.has_ratings else None
            made = self.from_items(str(user_id), rows, ratings, prose=prose)
            with self._lock:
                hit = self._cache.setdefault(key, made)
        return copy.deepcopy(hit)

    def from_items(self, user_id: str | None, rows: Sequence[int], ratings: Sequence[float] | None = None,
                   prose: bool = True) -> Profile:
        """A profile from catalog rows in time order (ratings optional; None = all liked).

        Args:
            user_id: shown in the profile; None for a conversation-only user.
            rows: catalog rows, oldest first.
            ratings: one per row, or None.
            prose: ask the LLM for prose (else template prose).
        """
        return self.many([(user_id, rows, ratings)], prose)[0]

    def many(self, histories: Sequence[tuple[str | None, Sequence[int], Sequence[float] | None]], prose: bool = True,
             batch: int = 8) -> list[Profile]:
        """`from_items` for several ``(user_id, rows, ratings)`` histories, the LLM called on
        ``batch`` prompts at a time (evaluation over many users); each profile is the same as
        `from_items` gives: the LLM's prose if it passes the verifier, else the template's."""
        profiles = [self.facets(u, rows, ratings) for u, rows, ratings in histories]
        for p in profiles:
            p.prose, p.prose_source = template_prose(p), "template"
        todo = [p for p in profiles if p.n_items] if prose and self.llm is not None else []
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            for p, out in zip(chunk, self.llm.generate_batch([self.prompt(p) for p in chunk], self.max_new_tokens)):
                text = clean(out)
                if self.verifier is None or self.checks(text, p):
                    p.prose, p.prose_source = text, "llm"
        return profiles

    def checks(self, text: str, p: Profile) -> bool:
        """The verifier against the profile's facts, and no word the prompt does not supply
        (the prose is shown as what we know about the user: "You love gritty crime dramas"
        would be a claim the data does not make)."""
        vocab = self.verifier.vocab
        facts = p.facts(vocab)
        if not self.verifier.check(text, facts).ok:
            return False
        nouns = getattr(vocab, "nouns", None) or Nouns()
        words = " ".join([self.prompt(p)[-1]["content"], *p.exemplars])
        return not unsupported_words(text, words, nouns, vocab, facts.categories, {"you", "your", "favourite"})

    def facets(self, user_id: str | None, rows: Sequence[int], ratings: Sequence[float] | None = None) -> Profile:
        """The data-derived part of a profile (no LLM)."""
        cat = self.ds.catalog
        rows = [int(r) for r in rows]
        p = Profile(user_id=user_id, n_items=len(rows))
        if not rows:
            return p
        r = np.full(len(rows), self.like_threshold, dtype=np.float64) if ratings is None else np.asarray(ratings, dtype=np.float64)
        r = np.where(np.isnan(r), self.like_threshold, r)
        centred = r - r.mean() if ratings is not None and r.std() > 0 else np.ones(len(rows))
        cats = [cat.items["categories"].iloc[i] for i in rows]
        score: dict[str, float] = {}
        count: dict[str, int] = {}
        for c_list, w in zip(cats, centred):
            for c in c_list:
                score[c] = score.get(c, 0.0) + float(w)
                count[c] = count.get(c, 0) + 1
        # Mean centred rating per category, shrunk towards 0 for rare categories.
        weight = {c: score[c] / count[c] * (1 - math.exp(-count[c] / 3)) for c in score}
        scale = max(1e-9, max(abs(v) for v in weight.values()))
        norm = {c: round(v / scale, 2) for c, v in weight.items()}
        if ratings is None:  # implicit log: frequency relative to the catalog's base rate
            base = {c: n / len(cat) for c, n in _category_counts(cat).items()}
            lift = {c: count[c] / len(rows) / max(base.get(c, 1e-9), 1e-9) for c in count}
            top = max(lift.values())
            norm = {c: round(v / top, 2) for c, v in lift.items()}
        p.liked_categories = sorted([(c, v) for c, v in norm.items() if v > 0.05], key=lambda x: -x[1])[:5]
        p.disliked_categories = sorted([(c, v) for c, v in norm.items() if v < -0.05 and count[c] >= 2],
                                       key=lambda x: x[1])[:3]
        liked = [i for i, x in zip(rows, r) if x >= self.like_threshold] or rows
        years = cat.items["year"].to_numpy(dtype="float64", na_value=np.nan)
        decades = [int(years[i]) // 10 * 10 for i in liked if not np.isnan(years[i])]
        if decades:
            vals, counts = np.unique(decades, return_counts=True)
            order = np.argsort(-counts, kind="stable")[:3]
            p.eras = [(f"{int(vals[j])}s", round(float(counts[j]) / len(decades), 2)) for j in order]
        # Exemplars: the highest-rated items, most recent first among ties.
        order = sorted(range(len(rows)), key=lambda k: (-r[k], -k))
        seen: list[int] = []
        for k in order:
            if rows[k] not in seen and r[k] >= self.like_threshold - (0 if ratings is not None else 99):
                seen.append(rows[k])
            if len(seen) == self.n_exemplars:
                break
        p.exemplar_ids = [str(cat.ids[i]) for i in seen]
        p.exemplars = [str(cat.items["title"].iloc[i]) for i in seen]
        p.recent_drift = self._drift(cats, r)
        return p

    def _drift(self, cats: list, r: np.ndarray) -> list[str]:
        """Categories whose share among recent liked items rose most over the whole history."""
        n = self.recent_window
        if len(cats) < 2 * n:
            return []
        liked = r >= self.like_threshold
        def share(cs, mask):
            tot: dict[str, float] = {}
            m = max(1, int(mask.sum()))
            for c_list, ok in zip(cs, mask):
                if ok:
                    for c in c_list:
                        tot[c] = tot.get(c, 0.0) + 1 / m
            return tot
        before, recent = share(cats[:-n], liked[:-n]), share(cats[-n:], liked[-n:])
        rise = {c: recent[c] - before.get(c, 0.0) for c in recent}
        return [c for c, v in sorted(rise.items(), key=lambda x: -x[1]) if v >= 0.15][:2]

    def prompt(self, p: Profile) -> list[dict]:
        """Facets only, as short lines; the few-shot reply shows the expected paraphrase."""
        lines = [
            "Likes: " + ", ".join(c for c, _ in p.liked_categories[:5]),
            "Dislikes: " + (", ".join(c for c, _ in p.disliked_categories[:2]) or "none"),
            "Era: " + (p.eras[0][0] if p.eras else "any"),
            "Favourites: " + ", ".join(f'"{t}"' for t in p.exemplars[:2]),
        ]
        if p.recent_drift:
            lines.append("Lately more: " + ", ".join(p.recent_drift))
        vocab = getattr(self.verifier, "vocab", None)
        nouns = getattr(vocab, "nouns", None) or Nouns()
        cats = (list(vocab.categories[:2]) if vocab is not None else []) or ["Classic", "Cozy"]
        cats = cats + cats[:1] if len(cats) == 1 else cats
        shot_user = f'Likes: {cats[0]}, {cats[1]}\nDislikes: none\nEra: 1950s\nFavourites: "Moon Harbor"'
        shot = f'You enjoy {cats[0]} and {cats[1]} {nouns.items}, mostly from the 1950s. "Moon Harbor" is a favourite.'
        return [{"role": "system", "content": PROFILE_SYSTEM},
                {"role": "user", "content": shot_user}, {"role": "assistant", "content": shot},
                {"role": "user", "content": "\n".join(lines)}]


def template_prose(p: Profile) -> str:
    """Prose built only from the facets (the fallback and the LLM-free mode)."""
    if not p.n_items:
        return "No history yet: recommendations come from this conversation."
    likes = [c for c, _ in p.liked_categories[:3]]
    parts = []
    if likes:
        era = f", mostly from the {p.eras[0][0]}" if p.eras else ""
        parts.append(f"Enjoys {_join(likes)}{era}.")
    if p.exemplars:
        parts.append("Favourites include " + _join([f'"{t}"' for t in p.exemplars]) + ".")
    if p.disliked_categories:
        parts.append(f"Less keen on {_join([c for c, _ in p.disliked_categories[:2]])}.")
    if p.recent_drift:
        parts.append(f"Lately more into {_join(p.recent_drift)}.")
    return " ".join(parts[:3])


def conversation_profile(summarizer: ProfileSummarizer, likes: Sequence[int], dislikes: Sequence[int]) -> Profile:
    """A cold-start profile from the items a user named in this conversation (no LLM call)."""
    rows = list(likes) + list(dislikes)
    ratings = [5.0] * len(likes) + [1.0] * len(dislikes)
    return summarizer.from_items(None, rows, ratings if dislikes else None, prose=False)


def _category_counts(catalog) -> dict[str, int]:
    out: dict[str, int] = {}
    for cs in catalog.items["categories"]:
        for c in cs:
            out[c] = out.get(c, 0) + 1
    return out


def _join(xs: list[str]) -> str:
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]
