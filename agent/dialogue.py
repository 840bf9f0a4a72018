"""Dialogue: parse one user message into structured intent (`Parsed`) that the session state
(`agent.session`) folds in. The parser uses only the catalog's titles and category vocabulary (plus
common synonyms); the LLM is never asked to interpret or invent items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recagent.agent.session import Constraints, Feedback, SessionState
from recagent.agent.vocab import CatalogVocab

__all__ = ["Constraints", "DialogueParser", "Feedback", "Parsed", "SessionState"]

ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
            "eighth": 8, "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5,
            "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "last": -1}
DECADE_WORDS = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
                "seventies": 1970, "eighties": 1980, "nineties": 1990}

# Prompt-injection and out-of-catalog requests: answered normally from the catalog, with a note.
INJECTION = re.compile(
    r"ignore (all |any |the )?(previous|prior|above|earlier|your) (instructions|rules|prompts?)|"
    r"(reveal|show|print|repeat|tell me) (me )?(your|the) (system )?(prompt|instructions|rules)|system prompt|"
    r"you are now|pretend (to be|you)|jailbreak|developer mode|"
    r"(not|isn't|outside|beyond) (in )?(the|your) catalog|(make|made) (one |something )?up|invent(ed)? (a |an )?(movie|film|title|item)",
    re.IGNORECASE)

_NEG = re.compile(r"\b(no|not|without|except|avoid|hate|hated|dislike|don'?t want|do not want|nothing|never|"
                  r"no more|anything but|skip|exclude|less)\b", re.IGNORECASE)
_SCOPE_BREAK = re.compile(r"[.;!?,]|\b(but|instead|rather|prefer|want|something|maybe|please|and (?:some|a|an))\b",
                          re.IGNORECASE)
_ADDS = re.compile(r"\b(also|as well|plus|additionally|in addition|on top)\b|\btoo\s*(?:[.,!?;]|$)", re.IGNORECASE)
_POS = r"(?:#\s*(\d+)|(?:number|no\.?|item|option)\s*(\d+)|(?:the\s+)?(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|1st|2nd|3rd|4th|5th|last)(?:\s+one)?)"


@dataclass
class Parsed:
    """What one message says."""

    references: list[str] = field(default_factory=list)   # item ids named as "like X"
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    feedback: list[Feedback] = field(default_factory=list)
    free_text: str = ""
    injection: bool = False
    reset: bool = False
    exclude_words: list[str] = field(default_factory=list)
    ask: str = ""                 # the free text less titles, categories, eras and feedback: what to match items on
    k: int | None = None          # "just 3", "shorter list": the list size the user asked for
    list_size: str | None = None  # 'shorter' / 'longer' (relative to the current size)
    include_adds: bool = False    # "also French" / "and French": add to the wanted categories (else replace them)


class DialogueParser:
    """Turns a message into `Parsed`, resolving "#2" / "the first" against the last shown items.

    Args:
        vocab: the catalog's titles and categories.
        encoder: a text encoder (``embed_texts``) for exclusions by meaning; None = by word only.
        exclude_similarity: cosine similarity a category name needs to an excluded word.
        max_year: the catalog's latest year (for "recent").
    """

    def __init__(self, vocab: CatalogVocab, encoder=None, exclude_similarity: float = 1.0):
        self.vocab = vocab
        self.encoder, self.exclude_similarity = encoder, exclude_similarity
        years = vocab.catalog.items["year"].dropna()
        self.max_year = int(years.max()) if len(years) else 2020

    def parse(self, message: str, shown: list[str] | None = None, current: Constraints | None = None,
              k: int | None = None) -> Parsed:
        """Parse one message.

        Args:
            message: the user's text.
            shown: item ids of the last reply, in display order (for "#2", "the first", "seen it").
            current: the session's constraints, for relative asks ("older" than the current era).
            k: the current list size, for "shorter list" / "more options".
        """
        shown = shown or []
        text = " ".join(message.split())
        p = Parsed(free_text=text, injection=bool(INJECTION.search(text)))
        p.reset = bool(re.search(r"\b(start over|reset|forget (that|everything|it all)|something (completely )?different)\b", text, re.I))
        ids = self.vocab.catalog.ids
        low = text.lower()
        self._feedback(low, shown, p)
        # Titles: "I liked X" / "like X" are likes; "hated X" / "not X" are dislikes.
        for hit in self.vocab.find_titles(text):
            iid = str(ids[hit.idx])
            before = low[:low.find(hit.span.lower())][-40:] if hit.span.lower() in low else ""
            if re.search(r"\b(hate[d]?|didn'?t like|did not like|dislike[d]?|not like|boring|awful|no more like)\b\W*(\w+\W+){0,3}$", before):
                p.feedback.append(Feedback("dislike", iid))
            elif re.search(r"\b(seen|watched)\b\W*(\w+\W+){0,2}$", before) and not re.search(r"\b(liked|loved|enjoyed)\b", before):
                p.feedback.append(Feedback("seen", iid))
            elif iid not in p.references:
                p.references.append(iid)
        title_spans = [h.span.lower() for h in self.vocab.find_titles(text)]
        cat_text = low
        for span in title_spans:  # "Star Wars" must not say "War"
            cat_text = cat_text.replace(span, " " * len(span))
        ask_text = cat_text
        first_include = len(cat_text)
        for cat, start, end in self.vocab.find_categories(cat_text):
            negated = _negated(cat_text, start)
            target = p.exclude if negated else p.include
            if cat not in target:
                target.append(cat)
            if not negated:
                first_include = min(first_include, start)
            ask_text = ask_text[:start] + " " * (end - start) + ask_text[end:]
        # single words of multi-word or abbreviated categories: "no frozen food" -> Frozen Pizza, Frzn Breakfast
        for cats, start, end in self.vocab.find_category_words(ask_text):
            negated = _negated(cat_text, start)
            target = p.exclude if negated else p.include
            target += [c for c in cats if c not in target]
            if negated:
                p.exclude_words.append(ask_text[start:end].lower())
            else:
                first_include = min(first_include, start)
            ask_text = ask_text[:start] + " " * (end - start) + ask_text[end:]
        # "not that one, something French" after "Thai" replaces Thai; "also French", "and
        # something French", "French too" add to it
        p.include_adds = bool(_ADDS.search(cat_text) or re.search(r"\b(and|or)\b", cat_text[:first_include]))
        p.include = [c for c in p.include if c not in p.exclude]
        rel = self._relative_years(cat_text, shown, current)
        p.year_min, p.year_max = self._years(cat_text) if rel is None else _both(rel, self._years(_RELATIVE.sub(" ", cat_text)))
        p.k, p.list_size = self._list_size(low, k)
        p.ask = _ask_words(ask_text, negated=lambda pos: _negated(cat_text, pos))
        p.exclude_words += [w.lower() for w in _ask_words(ask_text, negated=lambda pos: not _negated(cat_text, pos)).split()
                            if w.lower() not in p.exclude_words]
        # by meaning: categories whose name is close to an excluded word ('no frozen food' -> 'Ice Cream')
        for w in p.exclude_words:
            p.exclude += [c for c in self.vocab.similar_categories(w, self.encoder, self.exclude_similarity)
                          if c not in p.exclude]
        p.include = [c for c in p.include if c not in p.exclude]
        return p

    def _relative_years(self, low: str, shown: list[str], current: Constraints | None) -> tuple[int | None, int | None] | None:
        """'older' / 'newer' / 'more recent' move the current era (or the shown items' years)."""
        older = _OLDER.search(low)
        newer = _NEWER.search(low)
        if not older and not newer:
            return None
        years = [y for y in (self._year_of(i) for i in shown) if y is not None]
        cur_min = current.year_min if current else None
        cur_max = current.year_max if current else None
        if older:
            ref = cur_min if cur_min is not None else (min(years) if years else None)
            return (None, ref - 1) if ref is not None else None
        ref = cur_max if cur_max is not None else (max(years) if years else None)
        return (ref + 1, None) if ref is not None else None

    def _year_of(self, item_id: str) -> int | None:
        row = self.vocab.catalog.index.get(str(item_id))
        if row is None:
            return None
        y = self.vocab.catalog.items["year"].iloc[row]
        return None if y is None or y != y or str(y) == "<NA>" else int(y)

    @staticmethod
    def _list_size(low: str, k: int | None) -> tuple[int | None, str | None]:
        if m := re.search(r"\b(?:only|just|top|give me|show me)\s+(\d{1,2})\b(?!\s*s\b)", low):
            n = int(m.group(1))
            if 1 <= n <= 10:
                return n, None
        if re.search(r"\b(shorter list|fewer|less options|fewer options|not so many|too many)\b", low):
            return max(1, (k or 5) - 2), "shorter"
        if re.search(r"\b(longer list|more options|more choices|show more|more of them)\b", low):
            return min(10, (k or 5) + 3), "longer"
        return None, None

    def _feedback(self, low: str, shown: list[str], p: Parsed) -> None:
        def pick(m: re.Match) -> str | None:
            num = m.group("n1") or m.group("n2")
            pos = int(num) if num else ORDINALS[m.group("w").lower()]
            if pos == -1:
                pos = len(shown)
            return shown[pos - 1] if 1 <= pos <= len(shown) else None

        pos = _POS.replace("(\\d+)", "(?P<n1>\\d+)", 1).replace("(\\d+)", "(?P<n2>\\d+)", 1)
        pos = pos.replace("(first|", "(?P<w>first|", 1)
        rules = [
            ("seen", [rf"\b(?:seen|watched|saw)\s+(?:it\s+)?{pos}", rf"{pos}\s+(?:i'?ve|i have|already)\s+(?:seen|watched)"]),
            ("dislike", [rf"\b(?:not|no|skip|drop|hate|dislike|don'?t like|didn'?t like|not into)\s+{pos}",
                         rf"{pos}\s+(?:is\s+)?(?:bad|boring|no|nope|awful)"]),
            ("like", [rf"\b(?:more like|like|love|loved|liked|more of|similar to|yes to|good)\s+{pos}",
                      rf"{pos}\s+(?:is\s+|looks\s+)?(?:great|good|nice|perfect|interesting)"]),
        ]
        claimed: set[str] = set()
        for kind, patterns in rules:
            for m in (m for rx in patterns for m in re.finditer(rx, low)):
                iid = pick(m)
                if iid and iid not in claimed:
                    claimed.add(iid)
                    p.feedback.append(Feedback(kind, iid))
        if shown and re.search(r"\bnone of (these|those|them)\b|\bnot (these|those)\b", low):
            p.feedback += [Feedback("dislike", i) for i in shown if i not in claimed]
            return
        if shown and not claimed and re.search(r"\b(not|no|don'?t like) (that|this) one\b", low):
            p.feedback.append(Feedback("dislike", shown[0]))
            claimed.add(shown[0])
        if shown and re.search(r"\b(seen (them|those|these|all)|watched (them|those|these|all)|seen (every|all) of)\b", low):
            p.feedback += [Feedback("seen", i) for i in shown if i not in claimed]
        elif shown and not claimed and re.search(r"\b(seen it|seen that|watched it|watched that|already seen)\b", low):
            p.feedback.append(Feedback("seen", shown[0]))

    def _years(self, low: str) -> tuple[int | None, int | None]:
        def dec(tok: str) -> int | None:
            tok = tok.lower().lstrip("'’")
            if tok in DECADE_WORDS:
                return DECADE_WORDS[tok]
            m = re.fullmatch(r"(1[89]|20)?(\d)0s", tok)
            if not m:
                return None
            century = m.group(1)
            d = int(m.group(2)) * 10
            return int(century) * 100 + d if century else (2000 + d if d <= 20 else 1900 + d)

        y = r"(1[89]\d\d|20\d\d)"
        d = r"('?(?:1[89]|20)?\d0s|twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties)"
        if m := re.search(rf"\bbetween\s+{y}\s+and\s+{y}|\bfrom\s+{y}\s+(?:to|until|till|-)\s+{y}|\b{y}\s*[-–]\s*{y}\b", low):
            a, b = [int(g) for g in m.groups() if g]
            return min(a, b), max(a, b)
        decades = [v for v in (dec(t) for t in re.findall(rf"(?<![\w]){d}(?!\w)", low)) if v is not None]
        if m := re.search(rf"\b(after|since|newer than|later than|post-?)\s*(?:the\s+)?({y[1:-1]}|{d[1:-1]})", low):
            val = dec(m.group(2)) if not m.group(2).isdigit() else int(m.group(2))
            if val is not None:
                after = m.group(1).startswith(("after", "newer", "later", "post"))
                return (val + (10 if not m.group(2).isdigit() and after else int(after))), None
        if m := re.search(rf"\b(before|until|older than|earlier than|pre-?)\s*(?:the\s+)?({y[1:-1]}|{d[1:-1]})", low):
            val = dec(m.group(2)) if not m.group(2).isdigit() else int(m.group(2))
            if val is not None:
                before = m.group(1).startswith(("before", "older", "earlier", "pre"))
                return None, val - int(before)
        if decades:
            return min(decades), max(decades) + 9
        if m := re.search(rf"\b(?:from|in|of|made in|released in)\s+{y}\b", low):
            return int(m.group(1)), int(m.group(1))
        if re.search(r"\b(classic|old|older|oldies|black and white)\b", low):
            return None, 1969
        if re.search(r"\b(recent|newer|latest|modern)\b", low):
            return self.max_year - 3, None
        return None, None


def _negated(text: str, start: int) -> bool:
    """True when a negation word governs the word at ``start`` ('no horror', 'not romance or war')."""
    window = text[max(0, start - 60):start]
    last_neg = None
    for m in _NEG.finditer(window):
        last_neg = m
    if last_neg is None:
        return False
    between = window[last_neg.end():]
    return not _SCOPE_BREAK.search(between)


_OLDER = re.compile(r"\b(older|earlier|less recent)\b(?!\s+than)")
_NEWER = re.compile(r"\b(newer|more recent|later|more modern)\b(?!\s+than)")
_RELATIVE = re.compile(f"{_OLDER.pattern}|{_NEWER.pattern}")


def _both(a: tuple[int | None, int | None], b: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    """Both year ranges at once ("older, but after 1990"): the later start, the earlier end."""
    lo = [x for x in (a[0], b[0]) if x is not None]
    hi = [x for x in (a[1], b[1]) if x is not None]
    return (max(lo) if lo else None), (min(hi) if hi else None)


_ERA_WORD = re.compile(r"^(?:'?(?:1[89]|20)?\d0s|1[89]\d\d|20\d\d|" + "|".join(DECADE_WORDS) + r")$", re.IGNORECASE)


def _ask_words(text: str, negated) -> str:
    """The words of an ask that say what to look for: no era words, numbers, ordinals or
    negated words ('no frozen food' asks for nothing)."""
    from recagent.agent.vocab import GENERIC, words

    keep = []
    for w, start, _end in words(text):
        low = w.lower()
        if (len(low) < 3 or low in GENERIC or low in ORDINALS or _ERA_WORD.match(low) or low.isdigit()
                or _NEG.fullmatch(low) or negated(start)):
            continue
        keep.append(w)
    return " ".join(keep)
