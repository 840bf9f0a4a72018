"""The narrow interface the chat UI needs from a recommender (`ChatBackend`), the plain data
it exchanges (`Card`, `ProfileView`, `TurnUpdate`). The real implementation is
`agent_backend.AgentBackend`; a catalog-only fake for tests lives in ``tests/fakes.py``.

Session state is an opaque, JSON-serialisable dict owned by the backend. Every method takes a
state and returns a new one (the input is never mutated), so the UI can keep it in `gr.State`
and two browser sessions can never share it.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from recagent.errors import RecagentError

FEEDBACK_KINDS = ("like", "dislike", "seen")


@dataclass
class Card:
    """One recommended item as the UI shows it.

    ``scores`` are the ranker's per-channel scores (channel name -> value) behind "why this?".
    """

    item_id: str
    title: str
    year: int | None = None
    categories: list[str] = field(default_factory=list)
    image_path: str | None = None
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    pending: bool = False   # shown before its reason is written (the reason fills in later)

    def __post_init__(self) -> None:
        # Catalog rows carry NaN / "" for "no image"; the UI needs None to draw a text card.
        if not isinstance(self.image_path, str) or not self.image_path:
            self.image_path = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProfileView:
    """What the profile panel shows: a summary sentence, liked/disliked titles and the active
    constraints as ``(key, label)`` pairs (``key`` is what `remove_constraint` takes)."""

    summary: str = ""
    likes: list[str] = field(default_factory=list)
    dislikes: list[str] = field(default_factory=list)
    constraints: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["constraints"] = [list(c) for c in self.constraints]
        return d


@dataclass
class TurnUpdate:
    """One step of a streamed reply. ``text`` is the whole reply so far; ``cards`` / ``profile``
    are None while unchanged; the last update has ``done=True`` and the new session ``state``.

    Cards may come before their reasons (``Card.pending``): the same items again, with reasons,
    as they are written."""

    text: str
    done: bool = False
    cards: list[Card] | None = None
    profile: ProfileView | None = None
    state: dict | None = None


@runtime_checkable
class ChatBackend(Protocol):
    """What the UI calls. Implementations load their models once and are shared by all sessions;
    they must not keep per-session data anywhere but in the state dicts they return."""

    name: str
    media_dirs: list[str]   # the one folder of image thumbnails (the only files the web server may serve)

    def users(self) -> list[tuple[str, str]]:
        """Known users as ``(user_id, label)`` for the user picker."""
        ...

    def examples(self) -> list[str]:
        """Example prompts for this catalog."""
        ...

    def new_session(self, user_id: str | None) -> dict:
        """A fresh state for a known user (their history shapes the profile) or None = new user."""
        ...

    def profile(self, state: dict) -> ProfileView:
        """The profile panel for a state."""
        ...

    def respond_stream(self, state: dict, message: str) -> Iterator[TurnUpdate]:
        """Answer one message; the last update is ``done`` and carries the new state."""
        ...

    def feedback(self, state: dict, item_id: str, kind: str) -> dict:
        """Record 'like' / 'dislike' / 'seen' on an item; returns the new state."""
        ...

    def remove_constraint(self, state: dict, key: str) -> dict:
        """Drop one active constraint (a key from `ProfileView.constraints`); returns the new state."""
        ...


def constraint_chips(c: dict) -> list[tuple[str, str]]:
    """``(key, label)`` pairs for a constraints dict with ``include`` / ``exclude`` / ``year_min``
    / ``year_max`` (the agent's `Constraints` as a dict)."""
    chips = [(f"include:{x}", x) for x in c.get("include", [])]
    chips += [(f"exclude:{x}", f"no {x}") for x in c.get("exclude", [])]
    chips += [(f"exclude_word:{w}", f"nothing “{w}”") for w in c.get("exclude_words", [])]
    lo, hi = c.get("year_min"), c.get("year_max")
    if lo is not None or hi is not None:
        label = f"{lo}-{hi}" if lo is not None and hi is not None else (f"{lo} on" if lo is not None else f"up to {hi}")
        chips.append(("years", label if lo != hi else str(lo)))
    return chips


def drop_constraint(c: dict, key: str) -> dict:
    """A copy of constraints dict ``c`` without the constraint named by ``key``.

    Args:
        c: ``{"include": [...], "exclude": [...], "year_min": int|None, "year_max": int|None}``.
        key: ``include:<cat>``, ``exclude:<cat>``, ``exclude_word:<word>`` or ``years``.
    """
    c = copy.deepcopy(c)
    kind, _, value = key.partition(":")
    if kind in ("include", "exclude") and value in c.get(kind, []):
        c[kind].remove(value)
    elif kind == "exclude_word" and value in c.get("exclude_words", []):
        c["exclude_words"].remove(value)
    elif kind == "years":
        c["year_min"] = c["year_max"] = None
    else:
        raise RecagentError(f"constraint '{key}' is not active; refresh the profile panel and try again.")
    return c
