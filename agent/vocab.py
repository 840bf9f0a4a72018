"""The catalog's own vocabulary for the agent: fuzzy title lookup and category words with
common synonyms. Shared by the dialogue parser (what the user names) and the verifier (what
the LLM names), so both read text the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from recagent.data.schema import Catalog

# Common words for a category -> the canonical name of a movie-style vocabulary. Only
# synonyms whose canonical name is in the catalog's vocabulary are used, so a catalog of
# books or products simply gets its own words.
SYNONYMS: dict[str, str] = {
    "sci-fi": "Sci-Fi", "sci fi": "Sci-Fi", "scifi": "Sci-Fi", "science fiction": "Sci-Fi", "space": "Sci-Fi",
    "science-fiction": "Sci-Fi",
    "scary": "Horror", "horror": "Horror", "horrors": "Horror", "frightening": "Horror", "spooky": "Horror",
    "funny": "Comedy", "comedy": "Comedy", "comedies": "Comedy", "comic": "Comedy", "hilarious": "Comedy",
    "cartoon": "Animation", "cartoons": "Animation", "animated": "Animation", "animation": "Animation",
    "kids": "Children's", "kid": "Children's", "family": "Children's", "children": "Children's",
    "children's": "Children's", "childrens": "Children's",
    "romance": "Romance", "romantic": "Romance", "romances": "Romance", "love story": "Romance",
    "thriller": "Thriller", "thrillers": "Thriller", "suspense": "Thriller", "suspenseful": "Thriller",
    "action": "Action", "drama": "Drama", "dramas": "Drama", "dramatic": "Drama",
    "adventure": "Adventure", "adventures": "Adventure",
    "crime": "Crime", "gangster": "Crime", "heist": "Crime",
    "war": "War", "wartime": "War", "western": "Western", "westerns": "Western", "cowboy": "Western",
    "musical": "Musical", "musicals": "Musical", "mystery": "Mystery", "mysteries": "Mystery",
    "whodunit": "Mystery", "documentary": "Documentary", "documentaries": "Documentary",
    "fantasy": "Fantasy", "film-noir": "Film-Noir", "film noir": "Film-Noir", "noir": "Film-Noir",
}

# Words that are everyday English too: the verifier does not treat them as genre claims.
_LOOSE = {"space", "family", "kid", "kids", "children", "comic", "love story", "heist", "cowboy", "action",
          "adventure", "adventures", "dramatic"}

_EMB_LOCK = __import__("threading").Lock()

_ARTICLES = re.compile(r"^(the|a|an|la|le|les|il|el|der|die|das)\s+")

# Words too general to name a category or an ask on their own ("no frozen food" is about
# "frozen"; "food" alone must not exclude "Baby Food").
GENERIC = {
    "food", "foods", "item", "items", "product", "products", "stuff", "thing", "things", "kind", "kinds", "type",
    "types", "one", "ones", "something", "anything", "everything", "some", "any", "more", "less", "other", "else",
    "good", "great", "best", "nice", "new", "old", "older", "newer", "recent", "please", "want", "need", "like",
    "liked", "love", "show", "give", "find", "get", "recommend", "recommendation", "recommendations", "suggest",
    "maybe", "really", "very", "with", "without", "about", "from", "that", "this", "these", "those", "them", "what",
    "which", "have", "has", "would", "could", "should", "just", "also", "than", "then", "there", "here", "into",
    "your", "mine", "some", "much", "many", "lot", "lots", "bit", "little", "make", "made", "style", "general",
    "movie", "movies", "film", "films", "book", "books", "song", "songs", "track", "tracks", "recipe", "recipes",
    "dish", "dishes", "list", "shorter", "longer", "fewer", "instead", "rather", "prefer", "not", "no", "none",
    "all", "every", "each", "and", "but", "for", "the", "are", "was", "were", "been", "being", "it's", "its",
    "i'd", "i'm", "let", "lets", "let's", "can", "you", "our", "their", "his", "her", "day", "time", "today",
    "tonight", "night", "year", "years", "era", "decade", "genre", "genres", "category", "categories",
    "seen", "saw", "watched", "watch", "read", "hate", "hated", "boring", "awful", "loved", "enjoyed", "pick",
    "picks", "option", "options", "choice", "choices", "similar", "different", "same", "another", "already", "yes",
    "nope", "thanks", "thank", "okay", "cool", "hmm", "number", "item", "let's", "try", "trying", "look", "looking",
    "before", "after", "since", "until", "till", "earlier", "later", "between", "during", "around", "released",
    "next", "again", "buy", "bought", "purchase", "order", "ordered", "suggestion", "suggestions",
}


@dataclass(frozen=True)
class Nouns:
    """What a catalog's items and categories are called in replies ('movie'/'genre',
    'recipe'/'cuisine'); generic by default, so no catalog is described as films."""

    item: str = "item"
    category: str = "category"

    @property
    def items(self) -> str:
        return plural(self.item)

    @property
    def categories(self) -> str:
        return plural(self.category)

    @property
    def story(self) -> str:
        """What an item's text tells: a 'story' for movies, books, shows; a 'description' for
        products, recipes and the rest (no grocery has a story)."""
        return "story" if stem(self.item) in NARRATIVE else "description"


# Items whose text is a plot.
NARRATIVE = frozenset({"movie", "film", "book", "novel", "show", "serie", "episode", "podcast", "game", "comic", "manga",
                       "anime", "play", "story", "audiobook", "video"})


def plural(noun: str) -> str:
    """'movie' -> 'movies', 'category' -> 'categories', 'dish' -> 'dishes' (regular English)."""
    n = noun.strip()
    if re.search(r"[^aeiou]y$", n):
        return n[:-1] + "ies"
    return n + ("es" if re.search(r"(s|sh|ch|x|z)$", n) else "s")


# What a catalog file's name may say its items are ('books.csv', 'amazon_products.parquet').
FILE_NOUNS = frozenset({
    "book", "product", "recipe", "movie", "film", "song", "track", "album", "artist", "article", "game", "podcast",
    "episode", "course", "hotel", "restaurant", "dish", "wine", "beer", "app", "video", "show", "paper", "poem",
    "comic", "toy", "shoe", "car", "listing", "event", "job", "place", "plant", "perfume",
})


def noun_from_file(path: str) -> str:
    """'book' for 'my_books.csv': the last word of a catalog file's name, when it is a common noun
    for items (`FILE_NOUNS`); '' otherwise ('catalog.csv', 'data.jsonl')."""
    from pathlib import Path

    for word in reversed(re.findall(r"[a-z]+", Path(str(path)).stem.lower())):
        if stem(word) in FILE_NOUNS:
            return stem(word)
    return ""


def nouns_for(dataset, data_cfg=None) -> Nouns:
    """The nouns of a data set: ``data.item_noun`` / ``data.category_noun`` when set, else the
    built-in data set's own ('movie' / 'genre' for ml-100k), else what a custom catalog's file
    name says ('books.csv': 'book'), else 'item' / 'category'."""
    from recagent.data.builtin import BUILTIN

    spec = BUILTIN.get(getattr(dataset, "name", "")) if getattr(dataset, "builtin", False) else None
    named = noun_from_file(getattr(data_cfg, "items", "") or "") if spec is None else ""
    item = (getattr(data_cfg, "item_noun", "") or getattr(spec, "item_noun", "") or named or "item").strip()
    cat = (getattr(data_cfg, "category_noun", "") or getattr(spec, "category_noun", "") or "category").strip()
    return Nouns(item, cat)


def stem(word: str) -> str:
    """A light English stem for matching words: lower case, no possessive, singular
    ('Robots' -> 'robot', 'dishes' -> 'dish', "children's" -> 'children'); a final consonant +
    'y' and 'ies' meet at 'ie' ('berry' and 'berries' -> 'berrie', 'cookies' -> 'cookie')."""
    w = word.lower().strip("'’")
    w = re.sub(r"['’]s$", "", w)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-1]
    if len(w) > 3 and re.search(r"[^aeiou]y$", w):
        return w[:-1] + "ie"
    if len(w) > 4 and re.search(r"(ss|sh|ch|x|z)es$", w):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def skeleton(word: str) -> str:
    """The consonant skeleton catalogs abbreviate with ('frozen' -> 'frzn', 'vegetable' -> 'vgtbl')."""
    w = word.lower()
    return w[:1] + re.sub(r"[aeiou]", "", w[1:])


def words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for every word of ``text`` (letters, digits, inner apostrophes)."""
    return [(m.group(0), m.start(), m.end()) for m in re.finditer(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?", text)]


def item_word_rows(catalog: Catalog) -> dict[str, frozenset[int]]:
    """Stemmed word -> catalog rows whose title, text or categories contain it (cached on the
    catalog; built once, about 50 ms per 10k items)."""
    cached = catalog.__dict__.get("_agent_word_rows")
    if cached is not None:
        return cached
    index: dict[str, set[int]] = {}
    items = catalog.items
    texts = items["title"].astype(str) + " " + items["text"].fillna("").astype(str) + " " + items["categories"].map(" ".join)
    for row, text in enumerate(texts):
        for w, _s, _e in words(text):
            if len(w) >= 3:
                for key in {stem(w), *_base_forms(w)}:
                    index.setdefault(key, set()).add(row)
    out = {w: frozenset(rows) for w, rows in index.items()}
    catalog.__dict__["_agent_word_rows"] = out
    return out


def _base_forms(word: str) -> set[str]:
    """Verb forms an ask may use for a catalog's '-ing' / '-ed' word: 'cooking' -> 'cook', 'baking'
    -> 'bake', 'running' -> 'run' (so "something to cook" finds the Cooking shelf)."""
    w = word.lower()
    for end in ("ing", "ed"):
        if w.endswith(end) and len(w) - len(end) >= 3:
            root = w[:-len(end)]
            out = {root, root + "e"}
            if len(root) >= 4 and root[-1] == root[-2] and root[-1] not in "lsz":
                out.add(root[:-1])
            return out
    return set()


def norm_title(text: str) -> str:
    """Lower case, no punctuation, no leading article: 'The Usual Suspects!' -> 'usual suspects'."""
    t = re.sub(r"[^\w\s]", " ", str(text).lower().replace("&", " and "))
    t = re.sub(r"\s+", " ", t).strip()
    return _ARTICLES.sub("", t)


@dataclass(frozen=True)
class TitleHit:
    """A title found in text: the catalog row, the matched span and the match score (0-100)."""

    idx: int
    span: str
    score: float


class CatalogVocab:
    """Title and category lookup over one catalog.

    Args:
        catalog: the items.
        threshold: rapidfuzz score (0-100) a phrase needs to count as a title.
        nouns: what the items and categories are called in generated text.
    """

    def __init__(self, catalog: Catalog, threshold: float = 88.0, nouns: Nouns | None = None):
        self.catalog = catalog
        self.nouns = nouns or Nouns()
        self.threshold = threshold
        self.titles = [str(t) for t in catalog.items["title"]]

    @cached_property
    def _aliases(self) -> tuple[list[str], list[int]]:
        """Normalised title forms (full title, and the title without its '(alternate title)')."""
        keys, rows = [], []
        for i, t in enumerate(self.titles):
            forms = {norm_title(t)}
            bare = re.sub(r"\s*\([^)]*\)\s*", " ", t).strip()
            if bare and bare != t:
                forms.add(norm_title(bare))
            for f in forms:
                if f:
                    keys.append(f)
                    rows.append(i)
        return keys, rows

    @cached_property
    def exact(self) -> dict[str, int]:
        keys, rows = self._aliases
        out: dict[str, int] = {}
        for k, r in zip(keys, rows):
            out.setdefault(k, r)
        return out

    @cached_property
    def categories(self) -> list[str]:
        return list(self.catalog.category_vocabulary)

    @cached_property
    def category_words(self) -> dict[str, str]:
        """lower-case word or phrase -> canonical category, for this catalog only."""
        canon = {c.lower(): c for c in self.categories}
        words = {c.lower(): c for c in self.categories}
        for w, c in SYNONYMS.items():
            if c.lower() in canon:
                words.setdefault(w, canon[c.lower()])
        for w in self._verb_forms:
            words.setdefault(w, self._verb_forms[w])
        return words

    @cached_property
    def _verb_forms(self) -> dict[str, str]:
        """'cook' / 'bake' for the categories 'Cooking' / 'Baking': an ask says the verb ("something
        to cook"). Everyday words, so the verifier's strict reading skips them."""
        out: dict[str, str] = {}
        for c in self.categories:
            if " " not in c.strip():
                for form in _base_forms(c):
                    if len(form) >= 4 and form not in GENERIC:
                        out.setdefault(form, c)
        return out

    @cached_property
    def _category_re(self) -> re.Pattern:
        alts = sorted(self.category_words, key=len, reverse=True)
        return re.compile(r"(?<![\w-])(" + "|".join(re.escape(a) for a in alts) + r")(?![\w-])", re.IGNORECASE)

    def find_categories(self, text: str, strict: bool = False) -> list[tuple[str, int, int]]:
        """(canonical category, start, end) for every category word in ``text``.

        Args:
            strict: skip words that are everyday English too ('space', 'family', 'action').
        """
        out = []
        for m in self._category_re.finditer(text):
            w = m.group(1).lower()
            if strict and (w in _LOOSE or w in self._verb_forms):
                continue
            out.append((self.category_words[w], m.start(), m.end()))
        return out

    @cached_property
    def _category_by_word(self) -> dict[str, list[str]]:
        """Stemmed word or abbreviation skeleton -> the categories that contain it: 'frozen'
        finds 'Frozen Pizza' and 'Frzn Breakfast', 'breakfast' finds 'Breakfast Cereal'."""
        out: dict[str, list[str]] = {}
        for cat in self.categories:
            for w, _s, _e in words(cat):
                if len(w) < 3 or w.lower() in GENERIC:
                    continue
                for key in {stem(w), w.lower()}:
                    if cat not in out.setdefault(key, []):
                        out[key].append(cat)
        return out

    def find_category_words(self, text: str) -> list[tuple[list[str], int, int]]:
        """Categories named by a single word of ``text`` (by stem, or as the abbreviation a
        category uses: 'frozen' -> 'Frzn Breakfast'): ([categories], start, end) per word.
        Generic words ('food', 'something') name nothing."""
        table = self._category_by_word
        out = []
        for w, s, e in words(text):
            low = w.lower()
            if len(low) < 3 or low in GENERIC:
                continue
            cats: list[str] = []
            for key in (stem(low), low, skeleton(stem(low))):
                for c in table.get(key, []):
                    if c not in cats:
                        cats.append(c)
            if cats:
                out.append((cats, s, e))
        return out

    def similar_categories(self, word: str, encoder, threshold: float) -> list[str]:
        """Categories whose name is close in meaning to ``word``: cosine similarity of the text
        encoder's embeddings >= ``threshold`` ('frozen' -> 'Ice Cream' with a real encoder).

        Args:
            encoder: anything with ``embed_texts(list[str]) -> L2-normalised array`` (a `TextEncoder`).
            threshold: 0..1; 1 or more finds nothing.
        """
        if encoder is None or threshold >= 1 or not self.categories:
            return []
        import numpy as np

        with _EMB_LOCK:  # one embedding of the category names per vocabulary, shared by sessions
            emb = self.__dict__.get("_category_emb")
            if emb is None:
                emb = self.__dict__["_category_emb"] = np.asarray(encoder.embed_texts(self.categories), dtype=np.float32)
        q = np.asarray(encoder.embed_texts([word]), dtype=np.float32)[0]
        sims = emb @ q
        return [c for c, s in zip(self.categories, sims) if s >= threshold]

    def unmatched_words(self, text: str) -> list[str]:
        """Content words of an ask that no item's title, text or categories contain."""
        index = item_word_rows(self.catalog)
        return [w for w, _s, _e in words(text)
                if len(w) >= 4 and not w.isdigit() and w.lower() not in GENERIC and stem(w) not in index
                and w.lower() not in self.category_words]

    def matching_rows(self, text: str) -> set[int]:
        """Rows whose title, text or categories contain a content word of ``text``."""
        index = item_word_rows(self.catalog)
        rows: set[int] = set()
        for w, _s, _e in words(text):
            if len(w) >= 3 and w.lower() not in GENERIC:
                rows |= index.get(stem(w), frozenset())
        return rows

    def canonical(self, idx: int) -> int:
        """The first row with the same normalised title (catalogs repeat titles: ML-100K lists
        'Chasing Amy' twice), so a title names the same thing whichever row it came from."""
        return self.exact.get(norm_title(self.titles[int(idx)]), int(idx))

    def match(self, phrase: str, threshold: float | None = None) -> TitleHit | None:
        """The best catalog title for a phrase (exact normalised form first, then fuzzy)."""
        from rapidfuzz import fuzz, process

        key = norm_title(phrase)
        if not key:
            return None
        if key in self.exact:
            return TitleHit(self.exact[key], phrase, 100.0)
        if len(key) < 4:
            return None
        keys, rows = self._aliases
        best = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=threshold or self.threshold)
        if best is None:
            return None
        return TitleHit(rows[best[2]], phrase, float(best[1]))

    def find_titles(self, text: str, max_words: int = 8, capitalised_only: bool = False) -> list[TitleHit]:
        """Catalog titles named in free text: quoted spans (fuzzy) and word n-grams whose
        normalised form is exactly a title. Single-word titles count only when capitalised
        and not at the start of a sentence (so 'speed' or 'Heat is...' are not titles).

        Args:
            capitalised_only: only n-grams that start with a capital letter (for LLM output).
        """
        hits: list[TitleHit] = []
        taken: list[tuple[int, int]] = []
        for m in re.finditer(r"[\"“”]([^\"“”]{2,120})[\"“”]", text):
            h = self.match(m.group(1))
            if h:
                hits.append(h)
                taken.append(m.span())
        words = list(re.finditer(r"[\w'&.:*/-]+", text))
        i = 0
        while i < len(words):
            found = None
            for n in range(min(max_words, len(words) - i), 0, -1):
                start, end = words[i].start(), words[i + n - 1].end()
                if any(s <= start < e for s, e in taken):
                    break
                span = text[start:end]
                key = norm_title(span)
                if key not in self.exact:
                    continue
                first = words[i].group(0)
                if capitalised_only and not first[:1].isupper():
                    continue
                if len(key.split()) == 1 and n == 1 and (not first[:1].isupper() or _sentence_start(text, start) or len(key) < 4
                               or key in self.category_words):
                    continue
                if len(key.split()) == 1 and n > 1 and (not re.match(r"(?i)the\s", span) or not re.search("[a-z]", key)):
                    continue
                found = TitleHit(self.exact[key], span, 100.0)
                i += n
                break
            if found:
                hits.append(found)
            else:
                i += 1
        return hits


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip()
    return not before or before[-1] in ".!?:\n"
