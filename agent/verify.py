"""Grounding checks for generated text: every title it names must be allowed (the item, the
user's history, its fact sheet), every genre word, year, decade and number must come from the
facts. Text that fails is regenerated or replaced by a template upstream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from recagent.agent.vocab import CatalogVocab, norm_title

_YEAR = re.compile(r"(?<![\w-])(1[89]\d\d|20\d\d)(?!\w)")
_DECADE = re.compile(r"(?<![\w])'?((?:1[89]|20)?\d0)'?s(?!\w)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,7}(?:,\d{3})*)(?![\w])")
# Chatty or meta text from a small model: never a good reason even when it names nothing wrong.
_META = re.compile(r"\b(i'?m sorry|i apologi[sz]e|as an ai|language model|i can'?t|i cannot|i'?m not (familiar|sure)|"
                   r"misunderstanding|the facts|fact sheet|instructions?|prompt)\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“”]([^\"“”]{1,150})[\"“”]")
# Runs of capitalised words (with short lower-case joiners): candidate titles in LLM text.
_TITLE_CASE = re.compile(r"\b([A-Z][\w'’&.:-]*(?:\s+(?:of|the|and|in|on|a|an|to|for|at|with|from|[A-Z0-9][\w'’&.:-]*))+)")


@dataclass
class Facts:
    """What a text may mention. Titles are catalog rows; categories canonical names."""

    titles: set[int] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    years: set[int] = field(default_factory=set)
    numbers: set[int] = field(default_factory=set)
    forbidden: tuple[str, ...] = ()   # phrases that must not appear (e.g. few-shot example titles)


@dataclass
class Verdict:
    ok: bool
    problems: list[str]


class Verifier:
    """Checks generated text against `Facts`.

    Args:
        vocab: the catalog's titles and categories.
        fuzzy: rapidfuzz score a capitalised phrase needs to count as naming a catalog title.
    """

    def __init__(self, vocab: CatalogVocab, fuzzy: float = 90.0):
        self.vocab = vocab
        self.fuzzy = fuzzy

    def named_items(self, text: str) -> list[int]:
        """Catalog rows a text names (quoted spans, exact titles, fuzzy title-cased phrases)."""
        rows = [h.idx for h in self.vocab.find_titles(text)]
        for m in _TITLE_CASE.finditer(text):
            span = m.group(1).strip(" .:")
            if len(norm_title(span)) < 6 or self.vocab.category_words.get(span.lower()):
                continue
            hit = self.vocab.match(span, self.fuzzy)
            if hit is not None and hit.idx not in rows:
                rows.append(hit.idx)
        return rows

    def outside(self, text: str, allowed: set[int]) -> list[int]:
        """Catalog rows a text names that are not in ``allowed`` (duplicate titles count as one)."""
        canon = {self.vocab.canonical(i) for i in allowed}
        return [i for i in self.named_items(text) if self.vocab.canonical(i) not in canon]

    def unknown_quoted(self, text: str) -> list[str]:
        """Quoted spans that are not catalog titles (an invented title, or a quote of something)."""
        return [m.group(1) for m in _QUOTED.finditer(text) if self.vocab.match(m.group(1)) is None]

    def check(self, text: str, facts: Facts) -> Verdict:
        """Every problem found; ``ok`` when there are none."""
        problems: list[str] = []
        t = (text or "").strip()
        if len(t) < 12 or not re.search(r"[a-zA-Z]{3}", t):
            return Verdict(False, ["empty or too short"])
        low = t.lower()
        if _META.search(t):
            problems.append(f"meta or apology text ('{_META.search(t).group(0)}')")
        for phrase in facts.forbidden:
            if phrase.lower() in low:
                problems.append(f"copies example phrase '{phrase}'")
        allowed = {self.vocab.canonical(i) for i in facts.titles}
        for idx in self.named_items(t):
            if self.vocab.canonical(idx) not in allowed:
                problems.append(f"names '{self.vocab.titles[idx]}', not in the facts")
        for q in self.unknown_quoted(t):
            problems.append(f"quotes '{q}', which is not a catalog title")
        rest = self._without_allowed_titles(t, facts.titles)
        for cat, _s, _e in self.vocab.find_categories(rest, strict=True):
            if cat not in facts.categories:
                problems.append(f"says '{cat}', not a category of the item")
        years = {int(y) for y in _YEAR.findall(rest)}
        for y in sorted(years - facts.years):
            problems.append(f"says {y}, not a year in the facts")
        decades = {y // 10 * 10 for y in facts.years}
        for d in _DECADE.findall(rest):
            val = int(d) if len(d) == 4 else (1900 + int(d) if int(d) > 20 else 2000 + int(d))
            if val not in decades:
                problems.append(f"says the {d}s, not an era in the facts")
        stripped = _DECADE.sub(" ", _YEAR.sub(" ", rest))
        for n in _NUMBER.findall(stripped):
            val = int(n.replace(",", ""))
            if val > 2 and val not in facts.numbers:  # 'one or two' style small numbers are harmless
                problems.append(f"says {n}, not a number in the facts")
        return Verdict(not problems, problems)

    def _without_allowed_titles(self, text: str, rows: Iterable[int]) -> str:
        """Blank out the allowed titles so 'Star Wars' is not read as the genre War."""
        out = text
        for idx in sorted(rows, key=lambda i: -len(self.vocab.titles[i])):
            title = self.vocab.titles[idx]
            for form in {title, re.sub(r"\s*\([^)]*\)", "", title).strip()}:
                if form:
                    out = re.sub(re.escape(form), " ", out, flags=re.IGNORECASE)
        return _QUOTED.sub(" ", out)


def strip_unknown_titles(text: str, verifier: Verifier, allowed: set[int]) -> str:
    """Last line of defence: drop every sentence that names a title outside ``allowed`` or quotes
    a non-title. Used on the final reply; templates never trip it."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    canon = {verifier.vocab.canonical(i) for i in allowed}
    keep = [s for s in sentences if not verifier.outside(s, canon) and not verifier.unknown_quoted(s)]
    return " ".join(keep)
