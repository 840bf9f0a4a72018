"""Feedback given while a reply is still being written (issue 11: cards first).

Cards appear as soon as a turn is ranked, so a Like / Dislike / Seen can arrive while the turn
is still streaming. The click's handler and the turn run as two Gradio events, each with its own
copy of the session's `gr.State`, and the turn's final state would overwrite the click.
`Mailbox` queues such feedback and merges it into the turn's final state; it also remembers each
session's newest state (a numbered version), so a handler that started from an older copy
builds on the newest one instead. Keyed by a random per-session id (``ui["sid"]``, given here on
first use, since every page starts from a copy of one template state); bounded (oldest forgotten).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

# Sessions remembered at once (a few KB each); an older one falls back to its gr.State copy.
MAX_SESSIONS = 2000


@dataclass
class _Entry:
    latest: dict | None = None                              # newest ui state (highest "seq")
    pending: list[tuple[str, str]] | None = None            # feedback queued during a turn; None = no turn


@dataclass
class Mailbox:
    """Per-session queue of feedback given during a turn, and each session's newest state.

    Args:
        max_sessions: how many sessions are remembered.
    """

    max_sessions: int = MAX_SESSIONS
    _entries: "OrderedDict[str, _Entry]" = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, ui: dict) -> dict:
        """The newest state of ``ui``'s session (``ui`` itself unless a newer one was stored)."""
        with self._lock:
            e = self._entries.get(ui["sid"]) if ui.get("sid") else None
            return e.latest if e and e.latest and e.latest.get("seq", 0) > ui.get("seq", 0) else ui

    def store(self, ui: dict) -> dict:
        """Remember ``ui`` as its session's newest state (its ``seq`` is set one past the newest)."""
        with self._lock:
            return self._store(ui)

    def begin(self, ui: dict, apply: Callable[[dict, str, str], dict] | None = None) -> dict:
        """A turn starts: feedback from now on is queued. Returns the state to start from (the
        newest one, plus feedback still queued by a turn that never finished, e.g. stopped)."""
        with self._lock:
            ui = _with_sid(ui)
            e = self._entry(ui["sid"])
            base = e.latest if e.latest and e.latest.get("seq", 0) > ui.get("seq", 0) else ui
            left, e.pending = e.pending or [], []
            if left and apply is not None:
                for item_id, kind in left:
                    base = apply(base, item_id, kind)
                base = self._store(base)
            return base

    def queued(self, ui: dict) -> dict[str, str]:
        """item id -> kind of the feedback queued in the running turn (for the card badges)."""
        with self._lock:
            e = self._entries.get(ui["sid"]) if ui.get("sid") else None
            return dict(e.pending) if e and e.pending else {}

    def give(self, ui: dict, item_id: str, kind: str, apply: Callable[[dict, str, str], dict]) -> tuple[dict, bool]:
        """Feedback on an item. During a turn it is queued and ``(shown, False)`` is returned:
        ``shown`` is for display only (the turn's final state will carry it), so the caller must
        not save it. Otherwise it is applied to the newest state: ``(new state, True)``."""
        with self._lock:
            ui = _with_sid(ui)
            e = self._entry(ui["sid"])
            if e.pending is not None:
                shown = apply(ui, item_id, kind)  # validates (unknown item or kind raises) before queueing
                e.pending.append((item_id, kind))
                return shown, False
            base = e.latest if e.latest and e.latest.get("seq", 0) > ui.get("seq", 0) else ui
            return self._store(apply(base, item_id, kind)), True

    def finish(self, ui: dict, apply: Callable[[dict, str, str], dict]) -> dict:
        """A turn ends with state ``ui``: queued feedback is applied to it, in order; returns
        (and stores) the merged state. Also used when a turn is stopped, with its starting state."""
        with self._lock:
            ui = _with_sid(ui)
            e = self._entry(ui["sid"])
            pending, e.pending = e.pending or [], None
            for item_id, kind in pending:
                ui = apply(ui, item_id, kind)
            return self._store(ui)

    def running(self, ui: dict) -> bool:
        with self._lock:
            e = self._entries.get(ui["sid"]) if ui.get("sid") else None
            return bool(e and e.pending is not None)

    # -- private (callers hold the lock) ---------------------------------------------------------
    def _entry(self, sid: str) -> _Entry:
        e = self._entries.get(sid)
        if e is None:
            e = self._entries[sid] = _Entry()
            while len(self._entries) > self.max_sessions:
                self._entries.popitem(last=False)
        self._entries.move_to_end(sid)
        return e

    def _store(self, ui: dict) -> dict:
        ui = _with_sid(ui)
        e = self._entry(ui["sid"])
        seq = max(ui.get("seq", 0), e.latest.get("seq", 0) if e.latest else 0) + 1
        ui = {**ui, "seq": seq}
        e.latest = ui
        return ui


def _with_sid(ui: dict) -> dict:
    return ui if ui.get("sid") else {**ui, "sid": uuid.uuid4().hex}


class StopSignals:
    """The stop event of each session's running turn: the Stop button sets it, and every LLM
    call of the turn (run under ``agent.llm.stopping``) returns within a fraction of a second."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, sid: str) -> threading.Event:
        """A turn of session ``sid`` starts: its fresh stop event."""
        ev = threading.Event()
        with self._lock:
            self._events[sid] = ev
        return ev

    def end(self, sid: str, ev: threading.Event) -> None:
        with self._lock:
            if self._events.get(sid) is ev:
                del self._events[sid]

    def stop(self, sid: str | None) -> bool:
        """Stop session ``sid``'s running turn; False when none is running."""
        with self._lock:
            ev = self._events.get(sid) if sid else None
        if ev is None:
            return False
        ev.set()
        return True
