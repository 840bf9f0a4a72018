"""Config section ``[agent]``: generation budgets and the turn loop."""

from __future__ import annotations

from dataclasses import dataclass

from recagent.config import opt


@dataclass(frozen=True)
class AgentConfig:
    max_new_tokens: int = opt(60, "token budget of one generated reason or profile")
    max_seconds: float = opt(20.0, "wall-time budget of one generation")
    temperature: float = opt(0.0, "0 = greedy, deterministic")
    k: int = opt(5, "items recommended per turn")
    max_message_chars: int = opt(2000, "longer user messages are refused")
