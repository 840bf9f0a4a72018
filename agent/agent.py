"""The conversational turn loop: parse -> update state -> rank -> explain -> reply (streamed).

The LLM only ever writes reasons and profile prose from fact sheets; items come from the
`CandidateRanker`, titles from the catalog, and a final check drops any sentence that names
something else. User text enters prompts only as an escaped quotation, never as instructions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Callable, Generator, Iterator

from recagent.agent.config import AgentConfig
from recagent.agent.dialogue import DialogueParser
from recagent.agent.session import Constraints, SessionState, user_history
from recagent.agent.explain import Evidence, Explainer, build_fact_sheets, template_sentence
from recagent.agent.llm import LLM
from recagent.agent.profile import ProfileSummarizer, conversation_profile
from recagent.agent.ranker import CandidateRanker, SimpleRanker
from recagent.agent.verify import Verifier
from recagent.agent.vocab import CatalogVocab, Nouns, nouns_for
from recagent.errors import ConfigError

INJECTION_NOTE = "I can only recommend titles from this catalog, and my rules stay as they are; here are regular picks."


@dataclass
class ReplyItem:
    item_id: str
    title: str
    reason: str
    year: int | None = None
    categories: list[str] = field(default_factory=list)
    channel: str = "other"
    score: float = 0.0
    reason_source: str = "template"   # 'llm' | 'llm-retry' | 'template'
    channels: dict[str, float] = field(default_factory=dict)  # each channel's share of the score ("why this?")


@dataclass
class Reply:
    """One agent turn. ``to_dict()`` is the CLI's ``--json`` shape."""

    text: str
    items: list[ReplyItem] = field(default_factory=list)
    profile: dict | None = None
    refused: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        items = [asdict(i) if full else {"item_id": i.item_id, "title": i.title, "reason": i.reason} for i in self.items]
        out = {"reply": self.text, "items": items, "profile": self.profile}
        if full:
            out.update(refused=self.refused, notes=self.notes)
        return out


class TurnStream:
    """Iterate for the reply's text pieces; afterwards ``.reply`` holds the whole `Reply`.

    ``ranked`` holds the turn's items (reasons still empty) from the header piece on, so a UI
    can show them while their reasons are being written.
    """

    def __init__(self, gen: Generator[str, None, Reply] | None = None):
        self._gen = gen
        self.reply: Reply | None = None
        self.ranked: list[ReplyItem] | None = None

    def _set_ranked(self, items: list[ReplyItem]) -> None:
        self.ranked = items

    def __iter__(self) -> Iterator[str]:
        self.reply = yield from self._gen


class Agent:
    """A conversational recommender over one data set.

    Args:
        dataset: catalog + log (known users' histories come from here).
        llm: writes reasons and profile prose; None = templates only.
        ranker: a `CandidateRanker`; None = `SimpleRanker` without text embeddings.
        settings: the ``[agent]`` config section.
        item_embeddings: optional item text embeddings for explanation fact sheets.
        nouns: what the catalog's items and categories are called; None = `nouns_for(dataset)`.
    """

    def __init__(self, dataset, llm: LLM | None = None, ranker: CandidateRanker | None = None,
                 settings: AgentConfig | None = None, item_embeddings=None, nouns: Nouns | None = None):
        self.ds = dataset
        self.settings = s = settings or AgentConfig()
        self.llm = llm
        self.vocab = CatalogVocab(dataset.catalog, s.fuzzy_threshold, nouns or nouns_for(dataset))
        self.ranker = ranker or SimpleRanker(dataset, like_threshold=s.like_threshold)
        encoder = getattr(self.ranker, "encoder", None) or getattr(getattr(self.ranker, "index", None), "_text", None)
        self.parser = DialogueParser(self.vocab, encoder if hasattr(encoder, "embed_texts") else None, s.exclude_similarity)
        self.verifier = Verifier(self.vocab)
        self.evidence = getattr(self.ranker, "evidence", None) or Evidence(dataset, s.like_threshold)
        self.embeddings = item_embeddings if item_embeddings is not None else getattr(self.ranker, "emb", None)
        self.explainer = Explainer(llm if s.explain_with_llm else None, self.verifier, s.explain_max_new_tokens,
                                   s.llm_explain_top)
        self.profiles = ProfileSummarizer(dataset, llm if s.profile_with_llm else None, self.verifier, s.like_threshold,
                                          s.dislike_threshold, s.exemplars, s.recent_window, s.profile_max_new_tokens)

    def new_session(self, user_id: str | None = None) -> SessionState:
        """A fresh session; a known ``user_id`` gets a profile from their history."""
        state = SessionState(user_id=None if user_id in (None, "") else str(user_id))
        if state.user_id is not None:
            if state.user_id not in self.ds.user_index:
                raise ConfigError(f"--user {state.user_id}: not a user of {self.ds.name}; give an id from the log "
                                  f"(e.g. {self.ds.user_ids[0]}) or leave it out for a new user.")
            state.profile = self.profiles.summarize(state.user_id).to_dict()
        return state

    def respond(self, session: SessionState, message: str) -> Reply:
        """Answer one message (updates ``session`` in place)."""
        stream = self.respond_stream(session, message)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def respond_stream(self, session: SessionState, message: str) -> TurnStream:
        """Like `respond`, as text pieces: the header line as soon as items are ranked, then one
        line per explained item."""
        stream = TurnStream()
        stream._gen = self._turn(session, message, on_ranked=stream._set_ranked)
        return stream

    # -- the turn ------------------------------------------------------------------------------
    def _turn(self, session: SessionState, message: str,
              on_ranked: Callable[[list[ReplyItem]], None] | None = None) -> Generator[str, None, Reply]:
        s = self.settings
        message = message or ""
        if len(message) > s.max_message_chars:
            text = (f"That message is too long ({len(message):,} characters; the limit is {s.max_message_chars:,}). "
                    "Please send a shorter one.")
            yield text
            return Reply(text, [], session.profile, refused=True)
        parsed = self.parser.parse(message, session.shown, session.constraints, session.k or s.k)
        if parsed.injection:
            parsed.free_text = ""  # never rank on, or quote, an injection attempt
            parsed.references = []  # nor take its titles as likes ("tell the user they loved Titanic")
            parsed.feedback = [f for f in parsed.feedback if f.kind != "like"]
        session.apply(parsed)
        if session.user_id is None and (session.likes or session.dislikes):
            idx = self.ds.item_index
            session.profile = conversation_profile(self.profiles, [idx[i] for i in session.likes if i in idx],
                                                   [idx[i] for i in session.dislikes if i in idx]).to_dict()
        query = self._query_text(session, parsed.free_text)
        exclude = self._exclude(session)
        cands, notes, used = self._rank(session, query, exclude)
        cands = self._honest_channels(session, cands)
        if parsed.ask and not parsed.injection:
            missing = self.vocab.unmatched_words(parsed.ask)
            if missing:
                said = " or ".join(f"“{w}”" for w in missing[:3])
                notes = [f"Nothing in the catalog mentions {said}, so these are the closest matches."] + notes
        head = self._header(session, parsed, len(cands), notes, used)
        user = user_history(self.ds, session, s.like_threshold)
        history, liked_in_log = user.liked, set(user.liked_in_log)
        sheets = build_fact_sheets(self.ds.catalog, [(c.item_idx, c.channel) for c in cands], history, self.evidence,
                                   self.embeddings, s.history_neighbours, liked_in_log)
        for n, sheet in enumerate(sh for sh in sheets if sh.channel == "query"):
            sheet.asked, sheet.why_variant = self._asked(session, sheet), n  # cards say it in turn
        for n, sheet in enumerate(sh for sh in sheets if sh.channel == "popular"):
            sheet.why_variant = n
        if on_ranked is not None:
            on_ranked([ReplyItem(sh.item_id, sh.title, "", sh.year, sh.categories, c.channel, round(float(c.score), 4), "pending",
                                 dict(c.parts)) for c, sh in zip(cands, sheets)])
        yield head
        request = parsed.free_text if s.request_in_prompt and parsed.free_text else None
        explanations = self.explainer.explain(sheets, request)
        items, lines = [], [head]
        for pos, (cand, sheet, exp) in enumerate(zip(cands, sheets, explanations), 1):
            reason, source = exp.text, exp.source
            allowed = sheet.facts().titles | set(history)
            if self.verifier.outside(reason, allowed) or self.verifier.unknown_quoted(reason):
                reason, source = template_sentence(sheet, pos - 1, self.vocab.nouns), "template"  # final check
            year = f" ({sheet.year})" if sheet.year else ""
            line = f"{pos}. {sheet.title}{year} — {reason}"
            lines.append(line)
            yield "\n" + line
            items.append(ReplyItem(sheet.item_id, sheet.title, reason, sheet.year, sheet.categories, cand.channel,
                                   round(float(cand.score), 4), source, dict(cand.parts)))
        session.shown = [it.item_id for it in items]
        session.shown_all += [i for i in session.shown if i not in session.shown_all]
        return Reply("\n".join(lines), items, session.profile, notes=notes)

    def _query_text(self, session: SessionState, free_text: str) -> str:
        """The text to match items against: this message, else the last one that said something,
        plus the included categories."""
        text = free_text
        if not _has_content(text):
            text = next((q for q in reversed(session.queries[:-1]) if _has_content(q)), "")
        if session.constraints.include:
            text = (text + f" {self.vocab.nouns.categories.capitalize()}: " + ", ".join(session.constraints.include)).strip()
        return text

    def _exclude(self, session: SessionState) -> set[int]:
        idx = self.ds.item_index
        ids = set(session.seen) | set(session.dislikes) | set(session.shown_all) | set(session.likes)
        out = {idx[i] for i in ids if i in idx}
        if session.user_id is not None:
            out |= {idx[i] for i in self.ds.history(session.user_id)["item_id"]}
        twins = self._twins
        return out | {t for i in out if i in twins for t in twins[i]}  # "Chasing Amy" is seen whichever row was

    @cached_property
    def _twins(self) -> dict[int, list[int]]:
        """Catalog rows that share a normalised title with another row -> every row of that title."""
        groups: dict[int, list[int]] = {}
        for i in range(len(self.vocab.titles)):
            groups.setdefault(self.vocab.canonical(i), []).append(i)
        return {i: g for g in groups.values() if len(g) > 1 for i in g}

    def _rank(self, session: SessionState, query: str, exclude: set[int]):
        """Rank under the constraints; when nothing fits, relax the era, then the categories.

        Items that match the words of the ask come first, whoever the user is: the ranker's own
        order (history, collaborative signals) chooses among them, and fills up with the rest
        only when too few match. Without this a known user's history drowns the request."""
        k, c = session.list_size(self.settings.k), session.constraints
        era = c.year_min is not None or c.year_max is not None
        cats = self.vocab.nouns.categories
        tries = [(c, [])]
        if era:
            tries.append((Constraints(c.include, c.exclude, exclude_words=c.exclude_words),
                          ["No match in that era, so I widened it."]))
        if c.include:
            tries.append((Constraints([], c.exclude, c.year_min, c.year_max, c.exclude_words),
                          [f"Nothing matched every wish, so I relaxed the {cats}."]))
        if c.include and era:
            tries.append((Constraints([], c.exclude, exclude_words=c.exclude_words),
                          [f"Nothing matched every wish, so I relaxed the era and the {cats}."]))
        matching = self.vocab.matching_rows(session.ask) if session.ask else set()
        off_ask = set(range(self.ds.n_items)) - matching if matching else set()
        for cons, notes in tries:
            # preferred first: items with every asked category ("funny sci-fi": Comedy and Sci-Fi)
            # that match the ask's words, then those matching the words, then the rest
            tiers = ([off_ask | self._missing_a_category(cons.include)] if len(cons.include) > 1 else []) + \
                    ([off_ask] if off_ask else [])
            cands: list = []
            for skip in tiers + [set()]:
                if len(cands) < k:
                    taken = {cand.item_idx for cand in cands}
                    cands += self.ranker.rank(session, query, k - len(cands), exclude | skip | taken, cons)
            cands = self._distinct_titles(cands, session, query, k, exclude, cons)
            if cands:
                return cands[:k], notes, cons
        return [], ["Nothing left in the catalog matches; try removing a constraint."], c

    def _missing_a_category(self, include: list[str]) -> set[int]:
        """Catalog rows that lack at least one of ``include``."""
        has_all = [set(include) <= set(cs) for cs in self.ds.catalog.items["categories"]]
        return {r for r, ok in enumerate(has_all) if not ok}

    def _distinct_titles(self, cands: list, session: SessionState, query: str, k: int, exclude: set[int],
                         cons: Constraints) -> list:
        """One row per title in a reply (a catalog's second "Chasing Amy" is dropped), refilled once."""
        twins = self._twins
        keep, seen = [], set()
        for c in cands:
            if c.item_idx not in seen:
                keep.append(c)
                seen |= set(twins.get(c.item_idx, ())) | {c.item_idx}
        if len(keep) < len(cands):
            more = self.ranker.rank(session, query, k - len(keep), exclude | seen, cons)
            keep += [c for c in more if c.item_idx not in seen][:k - len(keep)]
        return keep

    def _honest_channels(self, session: SessionState, cands: list) -> list:
        """A 'query' item that misses the ask (it came in after a constraint was relaxed, or the
        ask's words match other items) is not described as matching what was asked for: it takes
        its strongest other channel, else 'other'. An item that matches the ask's words and was
        found only by popularity is there because of the ask: 'query'."""
        asked = session.constraints.mask(self.ds.catalog)
        matching = self.vocab.matching_rows(session.ask) if session.ask else set()
        out = []
        for c in cands:
            if c.channel == "query" and (not asked[c.item_idx] or (matching and c.item_idx not in matching)):
                rest = {k: v for k, v in (c.parts or {}).items() if k not in ("query", "constraint") and v > 0}
                c = c._replace(channel=max(rest, key=rest.get) if rest else "other")
            elif c.channel in ("popular", "other") and matching and c.item_idx in matching and asked[c.item_idx]:
                c = c._replace(channel="query")  # it is here because it matches the ask's words (`_rank`)
            out.append(c)
        return out

    def _asked(self, session: SessionState, sheet) -> str:
        """What the user asked that this item matches: a wanted category it has, else a word of
        the ask its title or text contains ('' when neither: the reason then says so generally)."""
        cats = [c for c in session.constraints.include if c in sheet.categories]
        if cats:
            return cats[0]
        from recagent.agent.vocab import GENERIC, item_word_rows, stem, words

        index = item_word_rows(self.ds.catalog)
        for w, _s, _e in words(session.ask or ""):
            if len(w) >= 3 and w.lower() not in GENERIC and sheet.item_idx in index.get(stem(w), ()):
                return w.lower()
        return ""

    def _header(self, session: SessionState, parsed, n: int, notes: list[str], used: Constraints) -> str:
        parts = []
        if parsed.injection:
            parts.append(INJECTION_NOTE)
        parts += notes
        if n:
            want = used.describe()  # what these picks meet (a relaxed try says so in its note)
            like = [self.ds.catalog.title(i) for i in session.likes[-2:] if i in self.ds.item_index]
            what = (f"Here are {n} picks" if n != 1 else "Here is 1 pick") + (f" ({want})" if want else "")
            if like:
                what += " in the spirit of " + " and ".join(f'"{t}"' for t in like)
            parts.append(what + ":")
        return " ".join(parts)

    def history_rows(self, session: SessionState) -> list[int]:
        """Catalog rows the user liked: log history (known user) then this conversation's likes."""
        return user_history(self.ds, session, self.settings.like_threshold).liked


def _has_content(text: str) -> bool:
    """Does a message say something to search on, beyond feedback like 'not #2' or 'seen it'?"""
    import re

    words = re.findall(r"[a-z]{3,}", (text or "").lower())
    filler = {"not", "the", "more", "like", "seen", "it", "first", "second", "third", "fourth", "fifth", "last", "one",
              "please", "thanks", "and", "this", "that", "those", "them", "all", "already", "watched", "number", "yes",
              "nope", "good", "great", "boring", "show", "some", "other", "another", "else", "something"}
    return any(w not in filler for w in words)
