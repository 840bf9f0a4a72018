"""Fakes for unit tests (kept out of the library): `FakeLLM`, a queue of canned replies, and
`FakeBackend`, a catalog-only `ChatBackend` (the UI tests' and the UI benchmark's fast backend)."""

from __future__ import annotations

import copy
import re
import time
from typing import Any, Iterable, Iterator

import numpy as np

from recagent.agent.llm import LLM, Messages, Request
from recagent.errors import RecagentError
from recagent.ui.backend import FEEDBACK_KINDS, Card, ProfileView, TurnUpdate, constraint_chips, drop_constraint


class FakeLLM(LLM):
    """A queue of canned replies behind the real `LLM` base class (so ``generate`` / ``stream`` /
    budgets / Stop are the library's own code).

    Args:
        replies: returned in order, one per generated text; a callable gets the prompt's
            messages and returns the reply.
        default: returned once the queue is empty.
    """

    name = "fake"

    def __init__(self, replies: Iterable[str] | Any = (), default: str = ""):
        self._fn = replies if callable(replies) else None
        self.replies = [] if callable(replies) else list(replies)
        self.default = default
        self.calls: list[Messages] = []

    def _generate(self, prompts: list[Messages], req: Request) -> list[str]:
        out = []
        for row, msgs in enumerate(prompts):
            self.calls.append(msgs)
            if self._fn is not None:
                text = str(self._fn(msgs))
            else:
                text = self.replies.pop(0) if self.replies else self.default
            if req.on_text is not None:  # streamed word by word, like a model's pieces
                for i, w in enumerate(text.split(" ")):
                    req.on_text(row, w if i == 0 else " " + w)
            out.append(text)
        return out


class FakeBackend:
    """A catalog-only recommender for tests and benchmarks: category words in the message become
    constraints, items are ranked by category overlap with the liked items plus popularity.

    Args:
        dataset: a `recagent.data.Dataset`.
        k: cards per reply.
        delay: seconds between streamed words (to exercise streaming and the stop button).
        thumbs: where card images are served from (default: a fresh temporary folder).
    """

    name = "fake"

    def __init__(self, dataset, k: int = 5, delay: float = 0.0, thumbs=None):
        from recagent.ui.media import Thumbnails

        self.dataset = dataset
        self.catalog = dataset.catalog
        self.k = k
        self.delay = delay
        items = self.catalog.items
        self._cats = [set(c) for c in items["categories"]]
        self._years = items["year"].to_numpy(dtype="float64", na_value=np.nan)
        counts = dataset.interactions.df["item_id"].value_counts()
        pop = np.array([counts.get(i, 0) for i in self.catalog.ids], dtype=float)
        self._pop = pop / pop.max() if pop.max() > 0 else pop
        self._vocab = {c.lower(): c for c in self.catalog.category_vocabulary}
        self.thumbs = thumbs or Thumbnails()
        self.media_dirs = [str(self.thumbs.root)]
        df = dataset.interactions.df
        self._history = {u: g for u, g in df.groupby("user_id", sort=False)}

    def users(self) -> list[tuple[str, str]]:
        sizes = {u: len(g) for u, g in self._history.items()}
        return [(str(u), f"user {u} · {n} ratings") for u, n in sizes.items()]

    def examples(self) -> list[str]:
        from recagent.ui.render import example_prompts

        top = [self.catalog.title(self.catalog.ids[i]) for i in np.argsort(-self._pop, kind="stable")[:1]]
        return example_prompts(self.catalog.category_vocabulary, top)

    def new_session(self, user_id: str | None) -> dict:
        state = {"user_id": None, "likes": [], "dislikes": [], "seen": [], "shown": [], "queries": [],
                 "constraints": {"include": [], "exclude": [], "year_min": None, "year_max": None}, "turn": 0}
        if user_id is not None:
            if str(user_id) not in self._history:
                raise RecagentError(f"user '{user_id}' is not in data set {self.dataset.name}; pick one from the list or 'new user'.")
            g = self._history[str(user_id)]
            liked = g[g["rating"].isna() | (g["rating"] >= 4)]["item_id"].tolist()
            state["user_id"] = str(user_id)
            state["likes"] = [str(i) for i in liked][-20:]
            state["seen"] = [str(i) for i in g["item_id"]]
        return state

    def profile(self, state: dict) -> ProfileView:
        likes = [self.catalog.title(i) for i in state["likes"]]
        top = self._top_categories(state["likes"])
        who = f"User {state['user_id']}" if state["user_id"] else "New user"
        summary = f"{who}: enjoys {', '.join(top)}." if top else f"{who}: no preferences yet; tell me what you like."
        return ProfileView(summary=summary, likes=likes[-8:], dislikes=[self.catalog.title(i) for i in state["dislikes"]],
                           constraints=constraint_chips(state["constraints"]))

    def respond_stream(self, state: dict, message: str) -> Iterator[TurnUpdate]:
        message = " ".join(str(message).split())
        if not message:
            raise RecagentError("empty message; type what you would like to watch, e.g. 'funny sci-fi from the 80s'.")
        state = copy.deepcopy(state)
        self._parse(message, state["constraints"])
        state["queries"].append(message)
        state["turn"] += 1
        cards = self._rank(state, message)
        state["shown"] = [c.item_id for c in cards]
        profile = self.profile(state)
        wanted = ", ".join(label for _, label in profile.constraints) or "your taste"
        reply = (f"Here are {len(cards)} picks for {wanted}." if cards else
                 "Nothing in the catalog matches all of that; try removing a constraint.")
        text = ""
        words = reply.split(" ")
        for i, w in enumerate(words):
            text = f"{text} {w}" if text else w
            if self.delay:
                time.sleep(self.delay)
            last = i == len(words) - 1
            yield TurnUpdate(text=text, done=last, cards=cards if i == 0 else None,
                             profile=profile if i == 0 else None, state=state if last else None)

    def feedback(self, state: dict, item_id: str, kind: str) -> dict:
        if kind not in FEEDBACK_KINDS:
            raise RecagentError(f"feedback kind '{kind}' is unknown; use one of {', '.join(FEEDBACK_KINDS)}.")
        if str(item_id) not in self.catalog.index:
            raise RecagentError(f"item '{item_id}' is not in the catalog; feedback applies to shown items.")
        state = copy.deepcopy(state)
        item_id = str(item_id)
        for name in ("likes", "dislikes"):
            if item_id in state[name]:
                state[name].remove(item_id)
        target = {"like": "likes", "dislike": "dislikes", "seen": "seen"}[kind]
        if item_id not in state[target]:
            state[target].append(item_id)
        return state

    def remove_constraint(self, state: dict, key: str) -> dict:
        state = copy.deepcopy(state)
        state["constraints"] = drop_constraint(state["constraints"], key)
        return state

    # -- private helpers ---------------------------------------------------------------------

    def _top_categories(self, item_ids: list[str], n: int = 3) -> list[str]:
        counts: dict[str, int] = {}
        for iid in item_ids:
            for c in self._cats[self.catalog.index[iid]]:
                counts[c] = counts.get(c, 0) + 1
        return sorted(counts, key=lambda c: (-counts[c], c))[:n]

    def _parse(self, message: str, c: dict) -> None:
        low = message.lower()
        for word, cat in self._vocab.items():
            m = re.search(rf"(\b(no|not|without|except)\s+)?\b{re.escape(word)}s?\b", low)
            if not m:
                continue
            add, other = ("exclude", "include") if m.group(1) else ("include", "exclude")
            if cat in c[other]:
                c[other].remove(cat)
            if cat not in c[add]:
                c[add].append(cat)
        if m := re.search(r"\b(?:19)?([0-9])0s\b", low):
            c["year_min"] = 1900 + 10 * int(m.group(1))
            c["year_max"] = c["year_min"] + 9

    def _rank(self, state: dict, message: str) -> list[Card]:
        c = state["constraints"]
        inc, exc = set(c["include"]), set(c["exclude"])
        liked = set(self._top_categories(state["likes"], n=5))
        words = set(re.findall(r"\w{4,}", message.lower()))
        blocked = set(state["seen"]) | set(state["likes"]) | set(state["dislikes"]) | set(state["shown"])
        rows = []
        for i, iid in enumerate(self.catalog.ids):
            cats = self._cats[i]
            year = self._years[i]
            if iid in blocked or (inc and not inc & cats) or exc & cats:
                continue
            if c["year_min"] is not None and not (year >= c["year_min"]):
                continue
            if c["year_max"] is not None and not (year <= c["year_max"]):
                continue
            title = str(self.catalog.items.at[i, "title"]).lower()
            scores = {"profile": len(liked & cats) / 5.0, "query": float(len(words & set(re.findall(r"\w+", title)))),
                      "constraint": float(len(inc & cats)), "popularity": float(self._pop[i])}
            rows.append((sum(scores.values()), i, scores))
        rows.sort(key=lambda r: (-r[0], r[1]))
        cards = []
        for _, i, scores in rows[: self.k]:
            rec = self.catalog.row(i)
            shared = sorted((liked | inc) & set(rec["categories"]))
            reason = (f"Matches {', '.join(shared)}, which you asked for or liked." if shared
                      else "Popular with people in this catalog.")
            cards.append(Card(item_id=str(rec["item_id"]), title=str(rec["title"]), year=rec["year"],
                              categories=list(rec["categories"]), image_path=self.thumbs.get(rec["image_path"]), reason=reason,
                              scores={k: round(v, 3) for k, v in scores.items()}))
        return cards
