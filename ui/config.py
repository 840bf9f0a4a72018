"""Config section ``[ui]``: the Gradio chat server."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class UIConfig:
    host: str = opt("127.0.0.1", "bind address; anything but loopback requires --auth")
    port: int = opt(7860, "port of the chat server", min=1, max=65535)
    concurrency: int = opt(2, "chat turns processed at once (2 cores: more only queues)", min=1)
    max_cards: int = opt(6, "item-card slots on screen (a reply with more items shows the first ones)", min=1)
    title: str = opt("recagent", "browser tab title of the chat app")
    known_users: bool = opt(False, "let visitors chat as a user of the log (a demo feature for public data such as "
                                   "ML-100K: it shows that user's history); off = new users only")
    user_attributes: bool = opt(False, "label users in the picker and /users with their attribute columns "
                                       "(age, occupation, ...); off = ids and rating counts only")
    login_attempts: int = opt(3, "failed logins per user name or address before each further try must wait "
                                 "(1 s, doubling up to 5 min)", min=0)
