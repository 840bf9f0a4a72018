"""`AgentBackend`: the `ChatBackend` the UI uses in production, an adapter over
`recagent.agent.Agent` (one agent per process, shared by every session; each session's
`SessionState` travels as a plain dict in the UI's `gr.State`; nothing per session is kept here).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable, Iterator


from recagent.errors import ConfigError, RecagentError
from recagent.ui.backend import FEEDBACK_KINDS, Card, ProfileView, TurnUpdate, constraint_chips, drop_constraint

log = logging.getLogger("recagent.ui")


class AgentBackend:
    """The real recommender behind the UI.

    Args:
        agent: a `recagent.agent.agent.Agent` (models loaded).
        dataset: its data set (users for the picker, images, titles).
        thumbs: where card images are served from (a `Thumbnails`; default a temporary folder).
        user_attributes: label users in the picker with their attribute columns (off by default:
            ids and rating counts only; issue 9).
    """

    name = "agent"

    def __init__(self, agent, dataset, thumbs=None, user_attributes: bool = False):
        from recagent.ui.media import Thumbnails

        self.agent = agent
        self.ds = dataset
        self.catalog = dataset.catalog
        self.user_attributes = user_attributes
        self.thumbs = thumbs or Thumbnails()
        self.media_dirs = [str(self.thumbs.root)]

    @classmethod
    def from_config(cls, cfg, dataset: str | None = None, run: str | None = None,
                    log_fn: Callable[[str], None] | None = None) -> "AgentBackend":
        """Load the data set and build the agent once (LLM, text encoder, item embeddings).

        Args:
            cfg: the resolved config.
            dataset: data set name (default ``cfg.data.dataset``).
            run: a run directory whose ``config.toml`` (written by every command) is used instead of ``cfg``.
            log_fn: progress messages.
        """
        from recagent.agent.service import build_agent, select_ranker
        from recagent.data import load_dataset
        from recagent.runs import layout
        from recagent.ui.media import Thumbnails

        say = log_fn or log.info
        if run and not cfg.paths.run:  # `recagent chat --run` has already resolved the run's config
            cfg = _run_config(run, cfg)
        ds = load_dataset(cfg, dataset, log_fn=say)
        say(f"loading the agent for {ds.name} (LLM {cfg.models.llm}, encoder {cfg.models.text_encoder}) ...")
        ranker = select_ranker(cfg, ds)
        thumbs = Thumbnails(layout(cfg, ds, run).cache / "thumbs")
        return cls(build_agent(cfg, ds, ranker=ranker), ds, thumbs=thumbs,
                   user_attributes=bool(getattr(cfg.ui, "user_attributes", False)))

    # -- ChatBackend -----------------------------------------------------------------------
    def users(self) -> list[tuple[str, str]]:
        counts = self.ds.interactions.df["user_id"].value_counts()
        attrs = None
        if self.user_attributes and self.ds.users is not None and "user_id" in self.ds.users:
            attrs = self.ds.users.set_index("user_id")
        out = []
        for uid in self.ds.user_ids:
            extra = ""
            if attrs is not None and uid in attrs.index:
                vals = [str(v) for v in attrs.loc[uid].tolist()[:3] if v is not None and str(v) not in ("", "nan", "<NA>")]
                extra = f" · {' '.join(vals)}" if vals else ""
            out.append((str(uid), f"user {uid}{extra} · {int(counts.get(uid, 0))} ratings"))
        return out

    def examples(self) -> list[str]:
        from recagent.ui.render import example_prompts

        counts = self.ds.interactions.df["item_id"].value_counts()
        top = [self.catalog.title(i) for i in counts.index[:1]]
        return example_prompts(self.catalog.category_vocabulary, top)

    def new_session(self, user_id: str | None) -> dict:
        return self.agent.new_session(user_id).to_dict()

    def profile(self, state: dict) -> ProfileView:
        p = state.get("profile") or {}
        who = f"User {state['user_id']}" if state.get("user_id") else "New user"
        if p.get("prose"):
            summary = f"{who}: {p['prose']}"
        elif p.get("liked_categories"):
            summary = f"{who}: enjoys {', '.join(c for c, _ in p['liked_categories'][:3])}."
        else:
            summary = f"{who}: no preferences yet; tell me what you like or name a title you loved."
        titles = [self.catalog.title(i) for i in state.get("likes", []) if i in self.catalog.index]
        favourites = [t for t in p.get("exemplars", []) if t not in titles]
        return ProfileView(summary=summary, likes=(favourites + titles)[-10:],
                           dislikes=[self.catalog.title(i) for i in state.get("dislikes", []) if i in self.catalog.index],
                           constraints=constraint_chips(state.get("constraints", {})))

    def respond_stream(self, state: dict, message: str) -> Iterator[TurnUpdate]:
        """Cards as soon as the turn is ranked (reasons pending), each reason as it is written,
        then the final update with the new state (issue 11: cards first)."""
        from recagent.agent.dialogue import SessionState

        session = SessionState.from_dict(copy.deepcopy(state))
        stream = self.agent.respond_stream(session, message)
        text = ""
        cards: list[Card] | None = None
        for piece in stream:
            text += piece
            if cards is None and stream.ranked is not None:
                cards = self._cards(stream.ranked, pending=True)
                yield TurnUpdate(text=text, cards=[Card(**c.to_dict()) for c in cards])  # snapshots: filled below
                continue
            if cards and _fill_reason(cards, piece):
                yield TurnUpdate(text=text, cards=[Card(**c.to_dict()) for c in cards])
                continue
            yield TurnUpdate(text=text)
        reply = stream.reply
        if reply is None:
            raise RecagentError("the agent stopped before finishing its reply; send the message again.")
        new = session.to_dict()
        yield TurnUpdate(text=reply.text, done=True, cards=self._cards(reply.items), profile=self.profile(new), state=new)

    def feedback(self, state: dict, item_id: str, kind: str) -> dict:
        from recagent.agent.dialogue import Feedback, Parsed, SessionState
        from recagent.agent.profile import conversation_profile

        if kind not in FEEDBACK_KINDS:
            raise RecagentError(f"feedback kind '{kind}' is unknown; use one of {', '.join(FEEDBACK_KINDS)}.")
        if str(item_id) not in self.catalog.index:
            raise RecagentError(f"item '{item_id}' is not in the catalog; feedback applies to shown items.")
        session = SessionState.from_dict(copy.deepcopy(state))
        turn = session.turn
        session.apply(Parsed(feedback=[Feedback(kind, str(item_id))]))
        session.turn = turn  # a click is not a conversational turn
        if session.user_id is None and (session.likes or session.dislikes):
            idx = self.catalog.index
            session.profile = conversation_profile(self.agent.profiles, [idx[i] for i in session.likes if i in idx],
                                                   [idx[i] for i in session.dislikes if i in idx]).to_dict()
        return session.to_dict()

    def remove_constraint(self, state: dict, key: str) -> dict:
        state = copy.deepcopy(state)
        state["constraints"] = drop_constraint(state.get("constraints", {}), key)
        return state

    # -- helpers ---------------------------------------------------------------------------
    def _cards(self, items, pending: bool = False) -> list[Card]:
        """Cards for reply items; "why this?" shows each channel's share of the score, carried
        by the reply itself (``ReplyItem.channels``), else the channel that found the item."""
        cards = []
        for it in items:
            rec = self.catalog.row(self.catalog.index[it.item_id])
            shares = dict(getattr(it, "channels", None) or {})
            scores = {**shares, "score": float(it.score)} if shares else {it.channel: float(it.score)}
            cards.append(Card(item_id=it.item_id, title=it.title, year=it.year, categories=list(it.categories),
                              image_path=self.thumbs.get(rec.get("image_path")), reason=it.reason, scores=scores,
                              pending=pending and not it.reason))
        return cards


def _fill_reason(cards: list[Card], piece: str) -> bool:
    """Put the reason of one streamed item line (``"\nN. Title (year) — reason"``) on its card."""
    line = piece.lstrip("\n")
    num, dot, rest = line.partition(". ")
    if not dot or not num.isdigit() or not 1 <= int(num) <= len(cards):
        return False
    card = cards[int(num) - 1]
    head = f"{card.title}{f' ({card.year})' if card.year else ''} — "
    reason = rest[len(head):] if rest.startswith(head) else rest.partition(" — ")[2]
    if not reason:
        return False
    card.reason, card.pending = reason, False
    return True


def _run_config(run: str, cfg):
    from recagent.runs import run_config

    return run_config(cfg, run)
