"""LLM backends behind one small protocol: local transformers (`HFModel`), an OpenAI-compatible
endpoint (`OpenAIClient`) and a queue of canned replies for tests (`FakeLLM`).

A prompt is either a plain string (one user message) or a list of chat messages
``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterable, Iterator, Protocol, Sequence, Union, runtime_checkable

from recagent.errors import ConfigError, ModelError

log = logging.getLogger("recagent.agent.llm")

Messages = list[dict[str, str]]
Prompt = Union[str, Messages]


@runtime_checkable
class LLM(Protocol):
    """What the agent needs from a language model.

    ``max_new_tokens`` / ``temperature`` of ``None`` mean the backend's defaults (from
    ``[agent]``); temperature 0 is greedy and deterministic.
    """

    name: str

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> str: ...

    def stream(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> Iterator[str]: ...

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[str]: ...


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


class FakeLLM:
    """A queue of canned replies (for unit tests); implements the `LLM` protocol.

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

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> str:
        msgs = as_messages(prompt)
        self.calls.append(msgs)
        if self._fn is not None:
            return str(self._fn(msgs))
        return self.replies.pop(0) if self.replies else self.default

    def stream(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> Iterator[str]:
        text = self.generate(prompt, max_new_tokens, temperature)
        words = text.split(" ")
        for i, w in enumerate(words):
            yield w if i == 0 else " " + w

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[str]:
        return [self.generate(p, max_new_tokens, temperature) for p in prompts]


class HFModel:
    """A local transformers causal LM (+ optional peft LoRA adapter), loaded once.

    Args:
        path: a folder or hub id accepted by ``from_pretrained`` (see ``resolve_model``).
        adapter: optional LoRA adapter folder (``recagent finetune`` output).
        device: torch device string ('cpu', 'cuda', 'auto').
        max_new_tokens: default token budget per generation.
        max_seconds: wall-time budget per generation (a stopping criterion ends it early).
        temperature: default temperature; 0 = greedy.
    """

    def __init__(self, path: str, adapter: str = "", device: str = "cpu", max_new_tokens: int = 60,
                 max_seconds: float = 20.0, temperature: float = 0.0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.name = f"hf:{str(path).rstrip('/').split('/')[-1]}" + (f"+{os.path.basename(adapter.rstrip('/'))}" if adapter else "")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.max_new_tokens, self.max_seconds, self.temperature = max_new_tokens, max_seconds, temperature
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: could not load the LLM ({str(exc).splitlines()[0]}); "
                             "check models.llm or run `recagent models pull`.") from None
        if adapter:
            if not os.path.isfile(os.path.join(adapter, "adapter_config.json")):
                raise ModelError(f"{adapter}: no adapter_config.json; set models.llm_adapter to a LoRA adapter folder.")
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._lock = threading.Lock()  # one generate at a time: the model is shared
        self._prefixes: dict[tuple, Any] = {}
        self.min_prefix = 32  # shorter shared prefixes are not worth a cache
        import inspect

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # transformers 5 renamed `past_key_values` to `cache`
        self._cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    @classmethod
    def from_config(cls, cfg: Any) -> "HFModel":
        from recagent.models import resolve_model

        path = resolve_model(cfg.models.llm, cfg.paths.cache)
        return cls(path, adapter=cfg.models.llm_adapter, device=cfg.models.device,
                   max_new_tokens=cfg.agent.max_new_tokens, max_seconds=cfg.agent.max_seconds,
                   temperature=cfg.agent.temperature)

    def _text(self, prompt: Prompt) -> str:
        return self.tokenizer.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)

    def _gen_kwargs(self, max_new_tokens: int | None, temperature: float | None) -> dict:
        from transformers import StoppingCriteriaList

        temp = self.temperature if temperature is None else temperature
        kw: dict[str, Any] = {
            "max_new_tokens": int(max_new_tokens or self.max_new_tokens),
            "pad_token_id": self.tokenizer.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([_Deadline(time.monotonic() + self.max_seconds)]),
        }
        if temp and temp > 0:
            kw.update(do_sample=True, temperature=float(temp), top_p=0.95)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> str:
        return self.generate_batch([prompt], max_new_tokens, temperature)[0]

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[str]:
        """Batched generation; returns the new text of each prompt, stripped.

        Prompts that share a long token prefix (the system prompt and few-shot examples of one
        turn's explanations) reuse that prefix's key/value cache, computed once per process:
        rows are laid out as [prefix][padding][rest] with the padding masked, so the output is
        the same as without the cache, and the prefix is never recomputed.
        """
        if not prompts:
            return []
        ids = [self.tokenizer(self._text(p), add_special_tokens=False)["input_ids"] for p in prompts]
        kw = self._gen_kwargs(max_new_tokens, temperature)
        torch = self._torch
        n = _common_prefix(ids)
        with self._lock, torch.inference_mode():
            if n >= self.min_prefix:
                cache = self._prefix_cache(tuple(ids[0][:n]))
                rest = [x[n:] for x in ids]
                width = max(len(r) for r in rest)
                pad = self.tokenizer.pad_token_id
                rows = [ids[0][:n] + [pad] * (width - len(r)) + r for r in rest]
                mask = [[1] * n + [0] * (width - len(r)) + [1] * len(r) for r in rest]
                past = copy.deepcopy(cache)
                if len(rows) > 1:
                    past.batch_repeat_interleave(len(rows))
                enc = {"input_ids": torch.tensor(rows, device=self.device),
                       "attention_mask": torch.tensor(mask, device=self.device)}
                out = self.model.generate(**enc, **{self._cache_kw: past}, **kw)
            else:
                enc = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt", padding_side="left").to(self.device)
                out = self.model.generate(**enc, **kw)
        new = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def _prefix_cache(self, prefix: tuple):
        """The key/value cache of a token prefix (a few recent prefixes are kept)."""
        from transformers import DynamicCache

        if prefix not in self._prefixes:
            cache = DynamicCache()
            self.model(input_ids=self._torch.tensor([list(prefix)], device=self.device), use_cache=True,
                       **{self._cache_kw: cache})
            self._prefixes[prefix] = cache
            while len(self._prefixes) > 4:
                self._prefixes.pop(next(iter(self._prefixes)))
        return self._prefixes[prefix]

    def stream(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> Iterator[str]:
        """Text pieces as they are generated (a background thread runs ``generate``)."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=self.max_seconds + 30)
        enc = self.tokenizer([self._text(prompt)], return_tensors="pt", add_special_tokens=False).to(self.device)
        kwargs = {**enc, **self._gen_kwargs(max_new_tokens, temperature), "streamer": streamer}
        stop = threading.Event()  # set when the caller stops reading: generation ends at the next token
        kwargs["stopping_criteria"][0].stop = stop
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with self._lock, self._torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            stop.set()
            thread.join()
        if errors:
            raise errors[0]


def _common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest common token prefix, leaving each sequence at least one token."""
    n = min(len(x) for x in seqs) - 1
    first = seqs[0]
    for x in seqs[1:]:
        i = 0
        while i < n and x[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


class _Deadline:
    """A StoppingCriteria: stop every sequence once the wall-time budget is spent."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.stop: threading.Event | None = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = time.monotonic() >= self.deadline or (self.stop is not None and self.stop.is_set())
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class OpenAIClient:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, Ollama, llama.cpp server...)
    over plain ``urllib``.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000`` or ``http://host:11434/v1``.
        model: the served model name.
        api_key: sent as a Bearer token when given.
        timeout: seconds per request.
        max_new_tokens, temperature: defaults per call.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 max_new_tokens: int = 60, temperature: float = 0.0, key_env: str = "OPENAI_API_KEY"):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"models.llm_endpoint={base_url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1.")
        base = base_url.rstrip("/")
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.name = f"openai:{model}"
        self.key_env = key_env

    @classmethod
    def from_config(cls, cfg: Any) -> "OpenAIClient":
        return cls(cfg.models.llm_endpoint, cfg.models.llm, api_key=os.environ.get(cfg.models.llm_api_key_env) or None,
                   timeout=cfg.agent.http_timeout, max_new_tokens=cfg.agent.max_new_tokens,
                   temperature=cfg.agent.temperature, key_env=cfg.models.llm_api_key_env)

    def _request(self, prompt: Prompt, max_new_tokens: int | None, temperature: float | None, stream: bool):
        body = {
            "model": self.model, "messages": as_messages(prompt), "stream": stream,
            "max_tokens": int(max_new_tokens or self.max_new_tokens),
            "temperature": float(self.temperature if temperature is None else temperature),
        }
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - the user's own endpoint
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise ModelError(f"{self.url}: HTTP {exc.code} ({detail.strip()}); check models.llm_endpoint, models.llm "
                             f"and the API key (${self.key_env}).") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ModelError(f"{self.url}: cannot reach the endpoint ({exc}); start the server or fix models.llm_endpoint.") from None

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> str:
        with self._request(prompt, max_new_tokens, temperature, stream=False) as resp:
            try:
                data = json.loads(resp.read())
                return str(data["choices"][0]["message"]["content"] or "").strip()
            except (ValueError, KeyError, IndexError, TypeError):
                raise ModelError(f"{self.url}: reply is not an OpenAI chat completion; is this an OpenAI-compatible server?") from None

    def stream(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float | None = None) -> Iterator[str]:
        """Server-sent events: ``data: {json}`` lines until ``data: [DONE]``."""
        with self._request(prompt, max_new_tokens, temperature, stream=True) as resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                try:
                    delta = json.loads(payload)["choices"][0].get("delta", {}).get("content")
                except (ValueError, KeyError, IndexError):
                    continue
                if delta:
                    yield delta

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[str]:
        """Concurrent requests (servers batch them on their side)."""
        from concurrent.futures import ThreadPoolExecutor

        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(prompts))) as pool:
            return list(pool.map(lambda p: self.generate(p, max_new_tokens, temperature), prompts))


_LOADED: dict[tuple, Any] = {}


def load_llm(cfg: Any) -> LLM:
    """The configured LLM: ``models.llm_endpoint`` set -> `OpenAIClient`, else a local `HFModel`,
    loaded once per process (later calls with the same settings reuse it)."""
    if cfg.models.llm_endpoint:
        return OpenAIClient.from_config(cfg)
    key = (cfg.models.llm, cfg.models.llm_adapter, cfg.models.device, str(cfg.paths.cache))
    model = _LOADED.get(key)
    if model is None:
        model = _LOADED[key] = HFModel.from_config(cfg)
    model.max_new_tokens, model.max_seconds = cfg.agent.max_new_tokens, cfg.agent.max_seconds
    model.temperature = cfg.agent.temperature
    return model
