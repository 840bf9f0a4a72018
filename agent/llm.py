"""The `LLM` base class and `load_llm`: a backend supplies one method, ``_generate``; the base gives
``generate`` / ``generate_batch`` / ``stream``, budgets and Stop.

Backends, one module each: `agent.llm_ct2` (CTranslate2 int8, the default local backend),
`agent.llm_hf` (transformers: the reference, and what training uses), `agent.llm_openai` (an
OpenAI-compatible endpoint). A prompt is a plain string (one user message) or a list of chat
messages ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Union

from recagent.errors import ConfigError

log = logging.getLogger("recagent.agent.llm")

Messages = list[dict[str, str]]
Prompt = Union[str, Messages]

BACKENDS = ("ct2", "hf")  # models.llm_backend values; models.llm_endpoint selects the OpenAI client

_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("recagent_llm_stop", default=None)


@dataclass
class Request:
    """What one ``_generate`` call must honour.

    Attributes:
        max_new_tokens: token budget per prompt.
        temperature: 0 = greedy.
        deadline: ``time.monotonic()`` after which generation ends (the wall-time budget).
        stop: set by another thread to end generation at the next token (Stop).
        on_text: called as ``on_text(row, piece)`` with each new piece of text, when streaming.
    """

    max_new_tokens: int
    temperature: float
    deadline: float
    stop: threading.Event | None = None
    on_text: Callable[[int, str], None] | None = None

    def should_stop(self) -> bool:
        return (self.stop is not None and self.stop.is_set()) or time.monotonic() >= self.deadline


class LLM:
    """What the agent needs from a language model. Subclasses set ``name`` and implement
    ``_generate``; everything else is shared.

    ``max_new_tokens`` / ``temperature`` of ``None`` mean the instance defaults (from
    ``[agent]``); temperature 0 is greedy and deterministic. ``stop`` (a ``threading.Event``) ends
    a running generation at the next token when set; without one, the event of an enclosing
    ``with stopping(event):`` block is used.
    """

    name: str = "llm"
    max_new_tokens: int = 60
    max_seconds: float = 20.0
    temperature: float = 0.0

    def _generate(self, prompts: list[Messages], req: Request) -> list[str]:
        """The backend's one method: the new text of each prompt (same order)."""
        raise NotImplementedError

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int | None = None,
                       temperature: float | None = None, stop: threading.Event | None = None) -> list[str]:
        """The new text of each prompt, stripped; batched by the backend."""
        if not prompts:
            return []
        req = self._request(max_new_tokens, temperature, stop)
        msgs = [as_messages(p) for p in prompts]
        if req.stop is not None and req.stop.is_set():
            return [""] * len(msgs)  # stopped before it started
        return [t.strip() for t in self._generate(msgs, req)]

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None,
                 stop: threading.Event | None = None) -> str:
        return self.generate_batch([prompt], max_new_tokens, temperature, stop)[0]

    def stream(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None,
               stop: threading.Event | None = None) -> Iterator[str]:
        """Text pieces as they are generated (a worker thread runs the backend). Closing the
        iterator, or setting ``stop``, ends the generation at the next token."""
        own = threading.Event()
        outer = stop if stop is not None else _STOP.get()
        pieces: queue.Queue = queue.Queue()
        done = object()
        req = self._request(max_new_tokens, temperature, _AnyEvent(own, outer))
        req.on_text = lambda row, piece: pieces.put(piece)
        errors: list[BaseException] = []

        msgs = [as_messages(prompt)]

        def work() -> None:
            try:
                if not req.should_stop():
                    self._generate(msgs, req)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
            finally:
                pieces.put(done)

        thread = threading.Thread(target=work, daemon=True, name=f"llm-stream-{self.name}")
        thread.start()
        try:
            while True:
                piece = pieces.get()
                if piece is done:
                    break
                if piece:
                    yield piece
        finally:
            own.set()
            thread.join()
        if errors:
            raise errors[0]

    min_prefix: int = 32  # a shared prompt prefix shorter than this is not worth caching

    def shared_prefix(self, ids: list[list[int]]) -> int:
        """How many leading tokens of every prompt to serve from the backend's prefix cache: a
        batch's common prefix (remembered: the system prompt and few-shot examples of a turn's
        explanations), or for one prompt the longest remembered prefix it starts with; 0 = none."""
        with _PREFIX_LOCK:
            known: list[tuple] = self.__dict__.setdefault("_known_prefixes", [])
            if len(ids) > 1:
                n = common_prefix(ids)
                if n < self.min_prefix:
                    return 0
                key = tuple(ids[0][:n])
                if key in known:
                    known.remove(key)
                known.append(key)
                del known[:-4]
                return n
            x = ids[0]
            fits = [len(p) for p in known if self.min_prefix <= len(p) < len(x) and tuple(x[:len(p)]) == p]
            return max(fits, default=0)

    def _request(self, max_new_tokens: int | None, temperature: float | None, stop) -> Request:
        return Request(max_new_tokens=int(max_new_tokens or self.max_new_tokens),
                       temperature=float(self.temperature if temperature is None else temperature),
                       deadline=time.monotonic() + float(self.max_seconds),
                       stop=stop if stop is not None else _STOP.get())


@contextlib.contextmanager
def stopping(event: threading.Event):
    """Generations started inside this block (in this thread or context) end when ``event`` is
    set: the UI wraps a turn in it and sets the event on Stop, without passing it through the agent."""
    token = _STOP.set(event)
    try:
        yield event
    finally:
        _STOP.reset(token)


def as_messages(prompt: Prompt) -> Messages:
    """A plain string becomes one user message; message lists are checked and copied."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    out = []
    for m in prompt:
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise ValueError(f"bad chat message {m!r}: needs role system/user/assistant and string content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest common token prefix, leaving each sequence at least one token."""
    n = min(len(x) for x in seqs) - 1
    first = seqs[0]
    for x in seqs[1:]:
        i = 0
        while i < n and x[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


class TextPieces:
    """Token ids in, text pieces out, per row (for backends that decode locally): decodes each
    row's ids so far and emits what is new, so multi-token characters come out whole."""

    def __init__(self, tokenizer: Any, rows: int, on_text: Callable[[int, str], None] | None):
        self.tok, self.on_text = tokenizer, on_text
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.sent = [0] * rows
        self.eos = {i for i in (getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "pad_token_id", None)) if i is not None}

    def push(self, row: int, token_id: int) -> None:
        if self.on_text is None or token_id in self.eos:
            return
        self.ids[row].append(int(token_id))
        text = self.tok.decode(self.ids[row], skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return  # a character split across tokens: wait for the rest
        if len(text) > self.sent[row]:
            self.on_text(row, text[self.sent[row]:])
            self.sent[row] = len(text)


_LOADED: dict[tuple, LLM] = {}
_LOAD_LOCK = threading.Lock()
_PREFIX_LOCK = threading.Lock()


def load_llm(cfg: Any) -> LLM:
    """The configured LLM: ``models.llm_endpoint`` set -> `OpenAIClient`; else the local backend
    ``models.llm_backend`` ('ct2' = CTranslate2 int8, converted once and cached; 'hf' =
    transformers float32), loaded once per process (later calls with the same settings reuse it;
    backends are safe to share between sessions)."""
    if cfg.models.llm_endpoint:
        from recagent.agent.llm_openai import OpenAIClient

        return OpenAIClient.from_config(cfg)
    backend = getattr(cfg.models, "llm_backend", "ct2")
    if backend not in BACKENDS:
        raise ConfigError(f"models.llm_backend = '{backend}': use one of {', '.join(BACKENDS)} "
                          "(or set models.llm_endpoint for an OpenAI-compatible server).")
    key = (backend, cfg.models.llm, cfg.models.llm_adapter, cfg.models.device, str(cfg.paths.cache))
    with _LOAD_LOCK:
        model = _LOADED.get(key)
        if model is None:
            if backend == "ct2":
                from recagent.agent.llm_ct2 import CT2Model as cls
            else:
                from recagent.agent.llm_hf import HFModel as cls
            model = _LOADED[key] = cls.from_config(cfg)
            model.generate("Hello", max_new_tokens=1)  # warm-up: the first call's one-off setup is paid at load, not in a turn
    model.max_new_tokens, model.max_seconds = cfg.agent.max_new_tokens, cfg.agent.max_seconds
    model.temperature = cfg.agent.temperature
    return model


class _AnyEvent:
    """Looks like a ``threading.Event`` for ``is_set``: set when either event is."""

    def __init__(self, a: threading.Event, b: threading.Event | None):
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or (self.b is not None and self.b.is_set())


def __getattr__(name: str):  # the backends moved to their own modules; keep the old imports working
    if name == "HFModel":
        from recagent.agent.llm_hf import HFModel

        return HFModel
    if name == "CT2Model":
        from recagent.agent.llm_ct2 import CT2Model

        return CT2Model
    if name == "OpenAIClient":
        from recagent.agent.llm_openai import OpenAIClient

        return OpenAIClient
    raise AttributeError(name)
