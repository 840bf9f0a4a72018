"""Fakes for unit tests (kept out of the library): `FakeLLM`, a queue of canned replies."""

from __future__ import annotations

from typing import Any, Iterable

from recagent.agent.llm import LLM, Messages, Request


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
