"""transformers backend (`HFModel`): float32 PyTorch decoding, the reference for the fast backend
and the model training loads (``--set models.llm_backend=hf``)."""

from __future__ import annotations

import copy
import inspect
import os
import threading
from typing import Any

from recagent.agent.llm import LLM, Messages, Request, TextPieces
from recagent.errors import ModelError


class HFModel(LLM):
    """A local transformers causal LM (+ optional peft LoRA adapter), loaded once.

    Args:
        path: a folder or hub id accepted by ``from_pretrained`` (see ``resolve_model``).
        adapter: optional LoRA adapter folder (``recagent finetune`` output).
        device: torch device string ('cpu', 'cuda', 'auto').
        max_new_tokens: default token budget per generation.
        max_seconds: wall-time budget per generation.
        temperature: default temperature; 0 = greedy.
        model: an already loaded model to wrap instead of loading ``path`` (benchmarks use it for
            quantised variants); ``path`` then only supplies the tokenizer.
    """

    def __init__(self, path: str, adapter: str = "", device: str = "cpu", max_new_tokens: int = 60,
                 max_seconds: float = 20.0, temperature: float = 0.0, model: Any = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.name = f"hf:{str(path).rstrip('/').split('/')[-1]}" + (f"+{os.path.basename(adapter.rstrip('/'))}" if adapter else "")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.max_new_tokens, self.max_seconds, self.temperature = max_new_tokens, max_seconds, temperature
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            if model is None:
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
        self._lock = threading.Lock()  # one generate at a time: the model object is shared
        self._prefixes: dict[tuple, Any] = {}
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

    def _generate(self, prompts: list[Messages], req: Request) -> list[str]:
        """Batched generation (left padding keeps batched greedy output equal to single runs).

        Prompts that share a long token prefix (the system prompt and few-shot examples of one
        turn's explanations) reuse that prefix's key/value cache, computed once per process:
        rows are laid out as [prefix][padding][rest] with the padding masked, so the output is
        the same as without the cache.
        """
        from transformers import StoppingCriteriaList

        torch = self._torch
        ids = [self.tokenizer(self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                              add_special_tokens=False)["input_ids"] for p in prompts]
        pieces = TextPieces(self.tokenizer, len(ids), req.on_text)
        kw: dict[str, Any] = {"max_new_tokens": req.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id,
                              "stopping_criteria": StoppingCriteriaList([_Steps(req, pieces)])}
        if req.temperature > 0:
            kw.update(do_sample=True, temperature=req.temperature, top_p=0.95)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        n = self.shared_prefix(ids)
        with self._lock, torch.inference_mode():
            if n:
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
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

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


class _Steps:
    """A StoppingCriteria called after every decoding step: passes the new tokens on (streaming)
    and ends every row once Stop is set or the wall-time budget is spent."""

    def __init__(self, req: Request, pieces: TextPieces):
        self.req, self.pieces = req, pieces
        self.finished: set[int] = set()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if self.pieces.on_text is not None:
            for row, tok in enumerate(input_ids[:, -1].tolist()):
                if row in self.finished:
                    continue
                if tok in self.pieces.eos:
                    self.finished.add(row)
                self.pieces.push(row, tok)
        done = self.req.should_stop()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)
