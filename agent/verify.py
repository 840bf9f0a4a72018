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
                   r"misunderstanding|the facts|fact sheet|instructions?|prompt|the user|liked nothing)\b", re.IGNORECASE)
# "a memoir, not a cooking book": a category the facts give, denied.
_DENY = re.compile(r"\b(?:not|isn'?t|aren'?t|never|nor|rather than|instead of)\s+(?:(?:an?|the|really|quite|exactly)\s+)?$",
                   re.IGNORECASE)
# Labels of the fact sheet's lines copied into a reason ('You liked: "X" also liked: ...').
_NOTATION = re.compile(r"\b(?:you liked|also liked|evidence|why)\s*:", re.IGNORECASE)
# Claims about the user: what follows (or, for 'which you liked', precedes) must be a liked item.
_CLAIM = re.compile(r"\b(?:(?:since|because|as|if|like)\s+)?you(?:'ve| have)?\s+(?:really\s+|also\s+)?(?:liked|loved|enjoyed|rated|"
                    r"watched|read|bought|saved|cooked|adored)\b|\byour\s+(?:favou?rites?|top[- ]rated|highly[- ]rated)\b|"
                    r"\b(?:which|that)\s+you(?:'ve| have)?\s+(?:liked|loved|enjoyed|rated)\b", re.IGNORECASE)
# Phrases that give another item as the reason: their object may not be the item itself.
_BASIS = re.compile(r"\b(?:fans of|people who (?:liked|loved|enjoyed)|anyone who (?:liked|loved|enjoyed)|"
                    r"(?:just |much )?like|similar to|in the spirit of)\b", re.IGNORECASE)
_LIKE_VERB_BEFORE = {"you", "you'd", "you'll", "you’d", "you’ll", "would", "will", "may", "might", "to", "also", "really",
                     "probably", "surely", "should", "could", "i", "we", "they"}
_SMALL = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_N = r"(\d[\d,]*|" + "|".join(_SMALL) + r")"
_COUNT = re.compile(r"\b" + _N + r"\s+(?:out\s+)?of\s+(?:the\s+|its\s+|their\s+)?" + _N + r"\b", re.IGNORECASE)
_SUBORDINATE = re.compile(r"^(?:since|because|as|if|when|for fans of)\b", re.IGNORECASE)
_VERB_BASES = ("be like love enjoy try fit match share offer bring mix blend deliver feature combine echo follow pair make "
               "keep give watch read cook play listen check add pick suit appeal stand rate save buy wear use explore "
               "tell show star set capture turn take find get go come mean find charm thrill please call reward "
               "satisfy hit land earn top round lean carry recommend suggest expect want need love serve build "
               "blend balance open move help put win count include sound look feel seem remain stay belong").split()
_AUX = set("is are was were be been being am has have had do does did can could will would may might should must "
           "'s 're 've 'll isn't aren't wasn't doesn't don't didn't won't can't it's that's there's here's".split())


def _forms(base: str) -> tuple[str, str]:
    """Third person and past of a regular English verb ('try' -> 'tries', 'tried')."""
    stem = base[:-1] if base.endswith("e") else base
    if base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ies", base[:-1] + "ied"
    return (base + "es" if base.endswith(("s", "sh", "ch", "x", "o")) else base + "s"), stem + "ed"


_BASES = set(_VERB_BASES)
_FINITE = set().union(*(_forms(b) for b in _VERB_BASES)) | _AUX | {
    "made", "gave", "took", "found", "got", "came", "went", "meant", "won", "kept", "brought", "saw", "told"}
_SUBJECTS = {"it", "this", "that", "which", "who", "he", "she", "fans", "people", "everyone", "one", "many", "they", "you"}
_BEFORE_BASE = {"you", "they", "we", "i", "to", "will", "would", "can", "could", "may", "might", "should", "must",
                "you'll", "you'd", "you’ll", "you’d", "also", "really", "probably", "do", "does", "did"}


def _has_verb(words: list[str]) -> bool:
    """A finite verb among the words (base forms only as an imperative or after a subject)."""
    for i, w in enumerate(words):
        prev = words[i - 1] if i else ""
        if w in _FINITE or (w in _BASES and (i == 0 or prev in _BEFORE_BASE)):
            return True
        if prev in _SUBJECTS and len(w) > 3 and w.endswith(("s", "ed")):
            return True
    return False


def _as_int(token: str) -> int:
    return _SMALL.get(token.lower(), None) or int(token.replace(",", ""))


def _objects(m: re.Match, spans: list[tuple[int, int, int]], text: str) -> list[int]:
    """The titles a claim or basis phrase is about: the next title within a few words after it,
    or for 'which you liked' the title just before it."""
    if m.group(0).lower().startswith(("which", "that")):
        before = [r for r, s, e in spans if e <= m.start() and len(text[e:m.start()].split()) <= 3]
        return before[-1:]
    after = [(r, s) for r, s, e in spans if s >= m.end() and len(text[m.end():s].split()) <= 3]
    return [after[0][0]] if after else []


_QUOTED = re.compile(r"[\"“”]([^\"“”]{1,150})[\"“”]")
# A full stop that ends no sentence: dotted initials ('E.T.', 'L.A.', 'U.S.') and honorifics
# ('Mrs.', 'Dr.', 'St.'), common in titles ("L.A. Confidential", "Mrs. Doubtfire").
_ABBREV = re.compile(r"(?:(?<![\w.])(?:[A-Za-z]\.){2,}|(?<![\w.])(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|Ft|Vol|vs|Bros|Inc|Ltd)\.)$")
_BOUNDARY = re.compile(r"[.!?]+[\"”’')\]]*(?=\s+)")
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
    item: int | None = None           # the item being explained: never its own reason
    liked: set[int] | None = None     # what the user liked; None = claims about the user are not checked
    counts: set[tuple[int, int]] = field(default_factory=set)  # the only allowed "N of M" pairs
    require_clause: bool = True       # every sentence needs a verb and a main clause (no fragments)


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
        rest = self._without_allowed_titles(t, facts.titles)  # what the text says besides its titles
        meta = _META.search(rest)  # a title may say "Instructions"
        if meta:
            problems.append(f"meta or apology text ('{meta.group(0)}')")
        for phrase in facts.forbidden:
            if phrase.lower() in low:
                problems.append(f"copies example phrase '{phrase}'")
        allowed = {self.vocab.canonical(i) for i in facts.titles}
        for idx in self.named_items(t):
            if self.vocab.canonical(idx) not in allowed:
                problems.append(f"names '{self.vocab.titles[idx]}', not in the facts")
        if open_quote(t):
            problems.append("unbalanced quotation marks (a title cut off)")
        for q in self.unknown_quoted(t):
            problems.append(f"quotes '{q}', which is not a catalog title")
        for cat, start, _e in self.vocab.find_categories(rest, strict=True):
            if cat not in facts.categories:
                problems.append(f"says '{cat}', not a category of the item")
            elif _DENY.search(rest[max(0, start - 30):start]):
                problems.append(f"denies '{cat}', which the facts give")
        if m := _NOTATION.search(rest):
            problems.append(f"copies the fact sheet's notation ('{m.group(0)}')")
        for m in re.finditer(r"\b\w+(?:-\w+)+\b", rest):  # 'Genre-Fantasy', 'Comedy-Rebel': a category in a compound
            if self.vocab.find_categories(m.group(0), strict=True):
                continue  # the compound is itself a category name ('Sci-Fi', 'Film-Noir'), checked above
            for part in m.group(0).split("-"):
                for cat, _s, _e in self.vocab.find_categories(part, strict=True):
                    if cat not in facts.categories:
                        problems.append(f"says '{cat}' (in '{m.group(0)}'), not a category of the item")
        years = {int(y) for y in _YEAR.findall(rest)}
        for y in sorted(years - facts.years):
            problems.append(f"says {y}, not a year in the facts")
        decades = {y // 10 * 10 for y in facts.years}
        for d in _DECADE.findall(rest):
            val = int(d) if len(d) == 4 else (1900 + int(d) if int(d) > 20 else 2000 + int(d))
            if val not in decades:
                problems.append(f"says the {d}s, not an era in the facts")
        problems += self.honesty(t, facts)
        stripped = _DECADE.sub(" ", _YEAR.sub(" ", _COUNT.sub(" ", rest)))
        for n in _NUMBER.findall(stripped):
            val = int(n.replace(",", ""))
            if val > 2 and val not in facts.numbers:  # 'one or two' style small numbers are harmless
                problems.append(f"says {n}, not a number in the facts")
        return Verdict(not problems, problems)

    def honesty(self, text: str, facts: Facts) -> list[str]:
        """Checks a grounded text can still fail: false claims about the user, the item as its own
        reason, wrong "N of M" counts, and fragments that give no reason."""
        problems: list[str] = []
        spans = self.title_spans(text)
        canon = self.vocab.canonical
        item = canon(facts.item) if facts.item is not None else None
        liked = None if facts.liked is None else {canon(i) for i in facts.liked}
        for m in _CLAIM.finditer(text):
            objs = _objects(m, spans, text)
            if liked is not None:
                if not liked:
                    problems.append(f"claims '{m.group(0).strip()}', but the user has liked nothing yet")
                for row in objs if liked else ():
                    if canon(row) != item and canon(row) not in liked:
                        problems.append(f"claims the user liked '{self.vocab.titles[row]}', which they did not")
            if item is not None and any(canon(r) == item for r in objs):
                problems.append(f"gives '{self.vocab.titles[facts.item]}' as its own reason")
        if item is not None:
            for m in _BASIS.finditer(text):
                prev = re.findall(r"[\w'’]+", text[:m.start()].lower())[-1:]
                if m.group(0).lower().endswith("like") and prev and prev[0] in _LIKE_VERB_BEFORE:
                    continue  # 'you'll like X' recommends X; it does not give X as a reason
                if any(canon(r) == item for r in _objects(m, spans, text)):
                    problems.append(f"gives '{self.vocab.titles[facts.item]}' as its own reason")
        for row, _item, _liked in self_compared(text, spans, canon):
            problems.append(f"compares '{self.vocab.titles[row]}' with itself")
        for m in _COUNT.finditer(text):
            pair = (_as_int(m.group(1)), _as_int(m.group(2)))
            if pair not in facts.counts:
                allowed = ", ".join(f"{a} of {b}" for a, b in sorted(facts.counts)) or "none"
                problems.append(f"says '{m.group(0).strip()}', not a count in the facts ({allowed})")
        if facts.require_clause:
            problems += self.fragments(text, spans)
        return list(dict.fromkeys(problems))

    def fragments(self, text: str, spans: list[tuple[int, int, int]] | None = None) -> list[str]:
        """Sentences that give no reason: no verb outside the titles, or only a 'Since you liked X.'."""
        spans = self.title_spans(text) if spans is None else spans
        plain = list(text)
        for _row, s, e in spans:  # titles may contain verbs ('Dead Man Walking'); blank them
            plain[s:e] = " " * (e - s)
        plain_text = _QUOTED.sub(" T ", "".join(plain))
        out = []
        for sent in split_sentences(plain_text.strip()):
            words = re.findall(r"[a-z][a-z'’-]*", sent.lower())
            if not words:
                continue
            if _SUBORDINATE.match(sent.strip()) and not re.search(r"[,;:—–-]\s*\w", sent.strip().rstrip(".!? ")):
                out.append(f"fragment: '{sent.strip()}' has no main clause")
            elif not _has_verb(words):
                out.append(f"fragment: '{sent.strip()}' has no verb")
        return out

    def title_spans(self, text: str) -> list[tuple[int, int, int]]:
        """(catalog row, start, end) of every title a text names, in text order."""
        out: list[tuple[int, int, int]] = []
        for m in _QUOTED.finditer(text):
            hit = self.vocab.match(m.group(1))
            if hit is not None:
                out.append((hit.idx, m.start(), m.end()))
        for h in self.vocab.find_titles(text):
            for m in re.finditer(re.escape(h.span), text):
                if not any(s <= m.start() < e for _r, s, e in out):
                    out.append((h.idx, m.start(), m.end()))
        for m in _TITLE_CASE.finditer(text):
            span = m.group(1).strip(" .:")
            if any(s <= m.start() < e or m.start() <= s < m.end() for _r, s, e in out):
                continue
            if len(norm_title(span)) < 6 or self.vocab.category_words.get(span.lower()):
                continue
            hit = self.vocab.match(span, self.fuzzy)
            if hit is not None:
                out.append((hit.idx, m.start(), m.start() + len(span)))
        return sorted(out, key=lambda x: x[1])

    def _without_allowed_titles(self, text: str, rows: Iterable[int]) -> str:
        """Blank out the allowed titles so 'Star Wars' is not read as the genre War."""
        out = text
        for idx in sorted(rows, key=lambda i: -len(self.vocab.titles[i])):
            title = self.vocab.titles[idx]
            for form in {title, re.sub(r"\s*\([^)]*\)", "", title).strip()}:
                if form:
                    out = re.sub(re.escape(form), " ", out, flags=re.IGNORECASE)
        return _QUOTED.sub(" ", out)


def self_compared(text: str, spans: list[tuple[int, int, int]], canon=lambda r: r) -> list[tuple[int, tuple, tuple]]:
    """Titles a sentence compares with themselves: one that opens the sentence and is named again
    in it ('"Ghost" is a Romance movie for fans of "Ghost"', '"Liar Liar" shares the story of
    "Liar Liar"'), or whose fans are said to like it ('14 of the 196 fans of "Liar Liar" also
    liked "Liar Liar"'). A small model that swaps the item and the liked title writes these.

    Args:
        spans: (catalog row, start, end) of the titles in ``text`` (`Verifier.title_spans`).
        canon: row -> canonical row (duplicate titles count as one).

    Returns:
        (row, the mention in the item's place, the mention in the liked title's place) per case.
    """
    out = []
    for j, (row, s, e) in enumerate(spans):
        before = text[:s].rstrip(" \"“")
        opens = not before or before[-1] in ".!?"
        fans = re.search(r"(?:fans of|who (?:also )?(?:liked|loved|enjoyed))\s*$", before, re.IGNORECASE)
        if not opens and not fans:
            continue
        for row2, s2, e2 in spans[j + 1:]:
            between = text[e:s2]
            if re.search(r"[.!?][\"”’')]*\s+[A-Z\"“0-9]", between):
                break  # the next sentence
            if canon(row2) != canon(row) or any(r == row for r, _a, _b in out):
                continue
            if opens:
                out.append((row, (s, e), (s2, e2)))
            elif re.search(r"\b(?:liked|loved|enjoyed)\b", between, re.IGNORECASE):
                out.append((row, (s2, e2), (s, e)))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, split after . ! ? and a space, but never inside a quotation, after an
    abbreviation ('"E.T. the Extra-Terrestrial" is...', 'set in L.A. with...') or before a
    lower-case word ('"Who Framed Roger Rabbit?" is...')."""
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        piece = text[start:m.end()]
        if _ABBREV.search(piece.rstrip("\"”’')]")) or open_quote(piece) or text[m.end():].lstrip()[:1].islower():
            continue
        out.append(piece.strip())
        start = m.end()
    out.append(text[start:].strip())
    return [x for x in out if x]


def open_quote(text: str) -> bool:
    """True inside a quotation: an odd number of straight quotes, or more “ than ”."""
    return text.count('"') % 2 == 1 or text.count("“") > text.count("”")


def sentence_frame(text: str, vocab: CatalogVocab | None = None, words: int = 3) -> str:
    """How a reason opens, with titles, numbers and categories abstracted: 'since you liked T'.
    A turn may open at most two of its reasons with the same frame."""
    t = _QUOTED.sub(" T ", text or "")
    t = re.sub(r"\d[\d,]*", " N ", t)
    if vocab is not None:
        for cat, s, e in sorted(vocab.find_categories(t), key=lambda x: -x[1]):
            t = t[:s] + " C " + t[e:]
    toks = re.findall(r"[A-Za-z][A-Za-z'’-]*", t)
    return " ".join(w.lower() for w in toks[:words])


def repeated_frames(texts: list[str], vocab: CatalogVocab | None = None, limit: int = 2) -> list[int]:
    """Positions of the texts whose opening frame already opened ``limit`` earlier texts."""
    seen: dict[str, int] = {}
    out = []
    for i, text in enumerate(texts):
        f = sentence_frame(text, vocab)
        seen[f] = seen.get(f, 0) + 1
        if f and seen[f] > limit:
            out.append(i)
    return out


def strip_unknown_titles(text: str, verifier: Verifier, allowed: set[int]) -> str:
    """Last line of defence: drop every sentence that names a title outside ``allowed`` or quotes
    a non-title. Used on the final reply; templates never trip it."""
    sentences = split_sentences(text)
    canon = {verifier.vocab.canonical(i) for i in allowed}
    keep = [s for s in sentences if not verifier.outside(s, canon) and not verifier.unknown_quoted(s)]
    return " ".join(keep)
