"""Query results (``Hit``), metadata ``Filters`` and the merge of several channels' results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Hit:
    """One retrieved item.

    Attributes:
        item_id: the catalog's original item id.
        score: cosine similarity between query and item embedding (higher is better, in [-1, 1]).
        channel: which collection found it: ``text``, ``image`` or ``clip_text``.
    """

    item_id: str
    score: float
    channel: str

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": self.score, "channel": self.channel}


@dataclass(frozen=True)
class Filters:
    """Constraints on retrieved items, applied inside Chroma (categories, year) or after an
    over-fetch (exclusion list).

    Args:
        include_categories: keep items having at least one of these categories (empty: no constraint).
        exclude_categories: drop items having any of these categories.
        year_min: keep items released in or after this year (items without a year are dropped).
        year_max: keep items released in or before this year (items without a year are dropped).
        exclude_ids: original item ids never to return (seen items, items already shown).
    """

    include_categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    exclude_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def make(cls, filters: "Filters | None" = None, *, include_categories: Iterable[str] = (),
             exclude_categories: Iterable[str] = (), year_min: int | None = None, year_max: int | None = None,
             exclude_ids: Iterable[Any] = ()) -> "Filters":
        """Combine an optional ``Filters`` with keyword constraints (keywords add to it)."""
        base = filters or cls()
        return cls(
            include_categories=tuple(dict.fromkeys([*base.include_categories, *map(str, include_categories)])),
            exclude_categories=tuple(dict.fromkeys([*base.exclude_categories, *map(str, exclude_categories)])),
            year_min=year_min if year_min is not None else base.year_min,
            year_max=year_max if year_max is not None else base.year_max,
            exclude_ids=frozenset(base.exclude_ids) | frozenset(str(i) for i in exclude_ids),
        )

    def where(self) -> dict | None:
        """The Chroma ``where`` clause (categories are stored as a string-array metadata field)."""
        clauses: list[dict] = []
        inc = list(self.include_categories)
        if len(inc) == 1:
            clauses.append({"categories": {"$contains": inc[0]}})
        elif inc:
            clauses.append({"$or": [{"categories": {"$contains": c}} for c in inc]})
        clauses += [{"categories": {"$not_contains": c}} for c in self.exclude_categories]
        if self.year_min is not None:
            clauses.append({"year": {"$gte": int(self.year_min)}})
        if self.year_max is not None:
            clauses.append({"year": {"$lte": int(self.year_max)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def accepts(self, meta: dict) -> bool:
        """The same test in Python, on an item's stored metadata."""
        cats = set(meta.get("categories") or ())
        year = meta.get("year")
        if self.include_categories and not cats & set(self.include_categories):
            return False
        if cats & set(self.exclude_categories):
            return False
        if self.year_min is not None and (year is None or year < self.year_min):
            return False
        if self.year_max is not None and (year is None or year > self.year_max):
            return False
        return str(meta.get("item_id", "")) not in self.exclude_ids


    def accepts_cached(self, item_id: str, meta: tuple[frozenset, int | None] | None) -> bool:
        """``accepts`` on the index's cached ``(categories, year)`` of an item (None: unknown item)."""
        if meta is None or item_id in self.exclude_ids:
            return False
        cats, year = meta
        if self.include_categories and not cats.intersection(self.include_categories):
            return False
        if self.exclude_categories and cats.intersection(self.exclude_categories):
            return False
        if self.year_min is not None and (year is None or year < self.year_min):
            return False
        return not (self.year_max is not None and (year is None or year > self.year_max))


def merge_channels(per_channel: Sequence[list[Hit]], k: int) -> list[Hit]:
    """Interleave ranked lists rank by rank (scores of different encoders are not comparable),
    keeping each item once, under the channel that ranked it best."""
    out: list[Hit] = []
    seen: set[str] = set()
    depth = max((len(h) for h in per_channel), default=0)
    for r in range(depth):
        for hits in per_channel:
            if r < len(hits) and hits[r].item_id not in seen:
                seen.add(hits[r].item_id)
                out.append(hits[r])
                if len(out) == k:
                    return out
    return out
