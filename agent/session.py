"""One conversation's state: hard constraints, feedback, likes, what was shown; plain data that
round-trips through JSON. ``user_history`` is the one place that says which catalog rows a
user liked (log + conversation), and ``allowed`` the one place that applies the constraints and
exclusions, for every ranker.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np


@dataclass
class Constraints:
    """Hard filters of a session: categories to include (any of) / exclude, a year range."""

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    exclude_words: list[str] = field(default_factory=list)  # "no frozen food": items whose title/text say "frozen"

    def mask(self, catalog) -> np.ndarray:
        """Boolean array over catalog rows: True where an item satisfies every constraint."""
        from recagent.agent.vocab import item_word_rows, stem

        items = catalog.items
        ok = np.ones(len(items), dtype=bool)
        inc, exc = set(self.include), set(self.exclude)
        if inc or exc:
            cats = items["categories"]
            ok &= np.fromiter(((not inc or bool(inc & set(c))) and not (exc & set(c)) for c in cats), bool, len(items))
        if self.exclude_words:
            index = item_word_rows(catalog)
            for w in self.exclude_words:
                ok[list(index.get(stem(w), ()))] = False
        if self.year_min is not None or self.year_max is not None:
            years = items["year"].to_numpy(dtype="float64", na_value=np.nan)
            if self.year_min is not None:
                ok &= years >= self.year_min
            if self.year_max is not None:
                ok &= years <= self.year_max
        return ok

    def describe(self) -> str:
        parts = []
        if self.include:
            parts.append(" or ".join(self.include))
        if self.year_min is not None and self.year_max is not None:
            parts.append(f"from {self.year_min}" if self.year_min == self.year_max else f"from {self.year_min}-{self.year_max}")
        elif self.year_min is not None:
            parts.append(f"from {self.year_min} on")
        elif self.year_max is not None:
            parts.append(f"up to {self.year_max}")
        if self.exclude:
            parts.append("no " + ", no ".join(self.exclude))
        if self.exclude_words:
            parts.append("nothing " + " or ".join(f"“{w}”" for w in self.exclude_words))
        return ", ".join(parts)


@dataclass
class Feedback:
    """Feedback on one item: ``kind`` is 'like', 'dislike' or 'seen'; ``item_id`` the item."""

    kind: str
    item_id: str


@dataclass
class SessionState:
    """One conversation; plain data so it round-trips through JSON (``to_json`` / ``from_json``).

    Item lists hold original item ids (strings). ``profile`` is a `Profile.to_dict()` or None.
    """

    user_id: str | None = None
    profile: dict | None = None
    constraints: Constraints = field(default_factory=Constraints)
    likes: list[str] = field(default_factory=list)
    dislikes: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)        # items of the last reply, in order
    shown_all: list[str] = field(default_factory=list)    # every item shown in this session
    queries: list[str] = field(default_factory=list)      # free text of past turns (latest last)
    turn: int = 0
    k: int | None = None                                  # list size asked for in this session (None: the default)
    ask: str = ""                                         # the words of the latest ask that items are matched on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SessionState":
        d = dict(d)
        d["constraints"] = Constraints(**d.get("constraints", {}))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "SessionState":
        return cls.from_dict(json.loads(text))

    def apply(self, p: Any) -> None:
        """Fold one parsed message (`dialogue.Parsed`) into the state (later statements win over earlier ones)."""
        c = self.constraints
        if p.reset:
            self.constraints = c = Constraints()
        if p.include and not getattr(p, "include_adds", False):
            c.include = []  # a new ask of the same kind replaces the last one, unless it says "also" / "and"
        for cat in p.include:
            if cat in c.exclude:
                c.exclude.remove(cat)
            if cat not in c.include:
                c.include.append(cat)
        for cat in p.exclude:
            if cat in c.include:
                c.include.remove(cat)
            if cat not in c.exclude:
                c.exclude.append(cat)
        if p.year_min is not None or p.year_max is not None:
            c.year_min, c.year_max = p.year_min, p.year_max
        for w in p.exclude_words:
            if w not in c.exclude_words:
                c.exclude_words.append(w)
        if p.reset:
            self.ask = ""
        if p.ask:
            self.ask = p.ask
        for iid in p.references:
            _add(self.likes, iid)
            _drop(self.dislikes, iid)
        for fb in p.feedback:
            if fb.kind == "like":
                _add(self.likes, fb.item_id)
                _drop(self.dislikes, fb.item_id)
            elif fb.kind == "dislike":
                _add(self.dislikes, fb.item_id)
                _drop(self.likes, fb.item_id)
            elif fb.kind == "seen":
                _add(self.seen, fb.item_id)
        if p.free_text:
            self.queries.append(p.free_text)
        if p.k is not None:
            self.k = p.k
        self.turn += 1

    def list_size(self, default: int, limit: int = 10) -> int:
        """How many items this session's replies hold."""
        return max(1, min(limit, self.k or default))


class UserHistory(NamedTuple):
    """A session's user as catalog rows: ``rows`` everything the user interacted with (log, in
    time order, then this conversation's likes), ``liked`` the liked subset (log ratings >=
    the threshold, every interaction for logs without ratings, then the conversation's likes),
    ``user`` the dense user index (None for a new user)."""

    rows: list[int]
    liked: list[int]
    liked_in_log: list[int]
    user: int | None


def user_history(dataset, state: "SessionState", like_threshold: float = 4.0) -> UserHistory:
    """The session user's history and likes as catalog rows (see `UserHistory`)."""
    idx = dataset.item_index
    rows: list[int] = []
    liked: list[int] = []
    user = None
    if state.user_id is not None and str(state.user_id) in dataset.user_index:
        user = dataset.user_index[str(state.user_id)]
        h = dataset.history(str(state.user_id))
        rows = [idx[i] for i in h["item_id"]]
        good = h[h["rating"] >= like_threshold] if dataset.interactions.has_ratings else h
        liked = [idx[i] for i in good["item_id"]]
    session = [idx[i] for i in state.likes if i in idx]
    return UserHistory(rows + session, liked + session, liked, user)


def allowed(catalog, constraints: Constraints, exclude: set[int]) -> np.ndarray:
    """Boolean mask over catalog rows: meets every constraint and is not excluded."""
    ok = constraints.mask(catalog)
    if exclude:
        ok[list(exclude)] = False
    return ok


def _add(xs: list[str], x: str) -> None:
    if x not in xs:
        xs.append(x)


def _drop(xs: list[str], x: str) -> None:
    if x in xs:
        xs.remove(x)
