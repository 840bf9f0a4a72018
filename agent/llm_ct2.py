"""CTranslate2 backend (`CT2Model`): int8 decoding of a converted model, the default local LLM.

The model is converted once (``recagent models pull``, or `convert_for_fast_backend` on a
fine-tuned run's merged model) and cached with a manifest. CTranslate2's ``Generator`` is
thread-safe: concurrent sessions queue on its worker(s); ``inter_threads`` > 1 runs that many
generations at once.
"""

from __future__ import annotations

import os
from typing import Any

from recagent.agent.llm import LLM, Messages, Request, TextPieces
from recagent.errors import ModelError


class CT2Model(LLM):
    """A CTranslate2 generator over a converted folder (``model.bin`` + tokenizer files).

    Args:
        path: the converted folder (see `recagent.models.resolve_fast_model`).
        compute_type: 'int8' (default: fastest on CPU), 'int8_float32', 'int16', 'float32'.
        threads: threads per generation (``intra_threads``); 0 = ``$OMP_NUM_THREADS``, else the cores (at most 4).
        inter_threads: generations run at once (each with ``threads``); others wait in a queue.
        device: 'cpu', 'cuda' or 'auto'.
        max_new_tokens, max_seconds, temperature: defaults per call.
    """

    def __init__(self, path: str, compute_type: str = "int8", threads: int = 0, inter_threads: int = 1,
                 device: str = "cpu", max_new_tokens: int = 60, max_seconds: float = 20.0, temperature: float = 0.0):
        import ctranslate2
        from transformers import AutoTokenizer

        if not os.path.isfile(os.path.join(path, "model.bin")):
            raise ModelError(f"{path}: no model.bin (not a CTranslate2 model); run `recagent models pull` "
                             "or set models.llm_backend=hf.")
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or min(4, os.cpu_count() or 1)
        self.path = str(path)
        self.name = f"ct2:{os.path.basename(str(path).rstrip('/'))}"
        self.compute_type, self.threads, self.inter_threads = compute_type, threads, inter_threads
        self.max_new_tokens, self.max_seconds, self.temperature = max_new_tokens, max_seconds, temperature
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.generator = ctranslate2.Generator(path, device=device, compute_type=compute_type,
                                                   intra_threads=threads, inter_threads=inter_threads)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: could not load the CTranslate2 model ({str(exc).splitlines()[0]}); "
                             "run `recagent models pull --force` or set models.llm_backend=hf.") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_config(cls, cfg: Any) -> "CT2Model":
        from recagent.models import resolve_fast_model

        if cfg.models.llm_adapter:
            raise ModelError(f"models.llm_adapter = '{cfg.models.llm_adapter}': the ct2 backend needs a merged model; "
                             "set models.llm to the run's merged folder, or models.llm_backend=hf.")
        path = resolve_fast_model(cfg.models.llm, cfg.paths.cache)
        return cls(str(path), device=cfg.models.device, threads=cfg.models.threads, max_new_tokens=cfg.agent.max_new_tokens,
                   max_seconds=cfg.agent.max_seconds, temperature=cfg.agent.temperature)

    def _generate(self, prompts: list[Messages], req: Request) -> list[str]:
        """One batch; a token prefix shared by every prompt (one turn's system prompt and
        few-shot examples) is passed as CTranslate2's cached static prompt, computed once."""
        tok = self.tokenizer
        ids = [tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
               for p in prompts]
        n = self.shared_prefix(ids)  # passed as CTranslate2's cached static prompt
        pieces = TextPieces(tok, len(ids), req.on_text)

        def step(s) -> bool:  # called per generated token and row; True ends that row
            pieces.push(s.batch_id, s.token_id)
            return req.should_stop()

        kw: dict[str, Any] = {"max_length": req.max_new_tokens, "include_prompt_in_result": False, "callback": step}
        if req.temperature > 0:
            kw.update(sampling_topk=50, sampling_topp=0.95, sampling_temperature=req.temperature)
        else:
            kw.update(sampling_topk=1)
        if n:
            kw.update(static_prompt=tok.convert_ids_to_tokens(ids[0][:n]), cache_static_prompt=True)
            ids = [x[n:] for x in ids]
        results = self.generator.generate_batch([tok.convert_ids_to_tokens(x) for x in ids], **kw)
        return [tok.decode(r.sequences_ids[0], skip_special_tokens=True) for r in results]
