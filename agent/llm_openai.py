"""OpenAI-compatible backend (`OpenAIClient`): ``/v1/chat/completions`` of vLLM, Ollama, a
llama.cpp server... over plain ``urllib``."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from recagent.agent.llm import LLM, Messages, Request
from recagent.errors import ConfigError, ModelError


class OpenAIClient(LLM):
    """An OpenAI-compatible endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000`` or ``http://host:11434/v1``.
        model: the served model name.
        api_key: sent as a Bearer token when given.
        timeout: seconds per request.
        max_new_tokens, temperature: defaults per call.
        key_env: the environment variable the key came from (named in errors).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 max_new_tokens: int = 60, temperature: float = 0.0, key_env: str = "OPENAI_API_KEY"):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"models.llm_endpoint={base_url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1.")
        base = base_url.rstrip("/")
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.max_new_tokens, self.temperature, self.max_seconds = max_new_tokens, temperature, timeout
        self.name = f"openai:{model}"
        self.key_env = key_env

    @classmethod
    def from_config(cls, cfg: Any) -> "OpenAIClient":
        return cls(cfg.models.llm_endpoint, cfg.models.llm, api_key=os.environ.get(cfg.models.llm_api_key_env) or None,
                   timeout=cfg.agent.http_timeout, max_new_tokens=cfg.agent.max_new_tokens,
                   temperature=cfg.agent.temperature, key_env=cfg.models.llm_api_key_env)

    def _generate(self, prompts: list[Messages], req: Request) -> list[str]:
        """One request per prompt (concurrent; servers batch on their side); streamed with
        server-sent events when the caller streams, so Stop ends it between chunks."""
        if len(prompts) == 1:
            return [self._one(prompts[0], req, 0)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(prompts))) as pool:
            return list(pool.map(lambda ip: self._one(ip[1], req, ip[0]), enumerate(prompts)))

    def _one(self, messages: Messages, req: Request, row: int) -> str:
        stream = req.on_text is not None
        with self._post(messages, req, stream) as resp:
            if not stream:
                try:
                    data = json.loads(resp.read())
                    return str(data["choices"][0]["message"]["content"] or "")
                except (ValueError, KeyError, IndexError, TypeError):
                    raise ModelError(f"{self.url}: reply is not an OpenAI chat completion; "
                                     "is this an OpenAI-compatible server?") from None
            out = []
            for raw in resp:  # ``data: {json}`` lines until ``data: [DONE]``
                if req.should_stop():
                    break
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    delta = json.loads(payload)["choices"][0].get("delta", {}).get("content")
                except (ValueError, KeyError, IndexError):
                    continue
                if delta:
                    out.append(delta)
                    req.on_text(row, delta)
            return "".join(out)

    def _post(self, messages: Messages, req: Request, stream: bool):
        body = {"model": self.model, "messages": messages, "stream": stream,
                "max_tokens": req.max_new_tokens, "temperature": req.temperature}
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - the user's own endpoint
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise ModelError(f"{self.url}: HTTP {exc.code} ({detail.strip()}); check models.llm_endpoint, models.llm "
                             f"and the API key (${self.key_env}).") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ModelError(f"{self.url}: cannot reach the endpoint ({exc}); start the server or fix models.llm_endpoint.") from None
