"""LoRA supervised fine-tuning of the chat LLM (profile + reason tasks in one adapter).

One loop, written against 🤗 accelerate's ``Accelerator``, so the same code runs on this CPU and
unchanged under ``accelerate launch`` on GPUs (each process takes its share of every batch).
The loss covers only the reply tokens (the prompt is masked with -100).

Outputs::

    <adapter>/adapter_config.json, adapter_model.safetensors   peft's format (PeftModel.from_pretrained)
    <adapter>/training.json      resolved settings, base model, data hash, losses, steps/s, tokens/s, peak RSS
    <merged>/                    base + adapter merged, a plain transformers folder (fast inference path)
    <checkpoints>/last/          adapter weights + optimizer + scheduler + step, every ``checkpoint_every``
                                 steps, replaced atomically: what ``resume=True`` continues from
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recagent.errors import RecagentError

log = logging.getLogger("recagent.finetune")

TRAINING_FILE = "training.json"
STATE_FILE = "state.json"


class FinetuneError(RecagentError):
    """A LoRA run cannot start or continue as asked."""


def encode_examples(tokenizer: Any, examples: list[dict], max_len: int) -> list[tuple[list[int], int]]:
    """(token ids, number of prompt tokens) per example: the chat prompt, then the target and
    the end-of-turn token. Too long: the prompt is cut from the left, the target kept."""
    out = []
    eos = tokenizer.eos_token or ""
    for ex in examples:
        prompt = tokenizer.apply_chat_template(ex["messages"], tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        t_ids = tokenizer(ex["target"] + eos, add_special_tokens=False)["input_ids"]
        t_ids = t_ids[:max_len // 2]
        p_ids = p_ids[-(max_len - len(t_ids)):]
        out.append((p_ids + t_ids, len(p_ids)))
    return out


def total_steps(n_examples: int, settings: Any, steps: int | None) -> int:
    """``steps`` when given (> 0), else ``finetune.steps``, else epochs x batches per epoch."""
    if steps:
        return int(steps)
    if settings.steps:
        return int(settings.steps)
    return max(1, settings.epochs * math.ceil(n_examples / settings.batch_size))


def train_lora(base: str | Path, examples: list[dict], adapter_dir: Path, checkpoint_dir: Path, settings: Any,
               data_hash: str, merged_dir: Path | None = None, steps: int | None = None, resume: bool = False,
               quiet: bool = False, log_fn: Callable[[str], None] = log.info) -> dict:
    """Train a LoRA adapter on ``examples`` and save it (and the merged model).

    Args:
        base: the base model folder (``resolve_model(cfg.models.llm)``).
        examples: dicts with ``messages`` (chat prompt) and ``target`` (the reply).
        adapter_dir: where the peft adapter goes.
        checkpoint_dir: where the resumable checkpoint lives.
        settings: the ``[finetune]`` section.
        data_hash: hash of the examples (recorded, and checked on resume).
        merged_dir: where base + adapter merged go; None = not written.
        steps: optimizer steps (overrides the settings; the ``--steps`` option).
        resume: continue from ``checkpoint_dir/last`` when it exists.
        quiet: no progress bar.

    Returns:
        what ``training.json`` holds.
    """
    import torch
    from accelerate import Accelerator
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not examples:
        raise FinetuneError("no LLM training examples were built; the log needs users with liked items "
                            "(check data.positive_threshold / agent.like_threshold).")
    acc = Accelerator()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and acc.num_processes != world:  # each process would train and save alone, over the others
        raise FinetuneError(f"WORLD_SIZE is {world} but accelerate started {acc.num_processes} training process: on "
                            f"CPUs set ACCELERATE_USE_CPU=1 for torchrun; on GPUs use `accelerate launch --multi_gpu`.")
    torch.manual_seed(settings.seed)
    tok = AutoTokenizer.from_pretrained(str(base))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    lcfg = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(settings.lora_targets), task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    if settings.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    n_total = total_steps(len(examples), settings, steps)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate, weight_decay=0.0)
    warm = max(1, n_total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.1, 1 - s / max(1, n_total)))
    config = _settings_dict(settings) | {"steps": n_total, "base": str(base), "data_hash": data_hash}
    start, losses, tokens_done = 0, [], 0
    last = Path(checkpoint_dir) / "last"
    if resume and (last / STATE_FILE).is_file():
        start, losses, tokens_done = _load_checkpoint(last, model, opt, sched, config)
        log_fn(f"lora: resuming from step {start} of {n_total} ({last})")
    model, opt = acc.prepare(model, opt)
    enc = encode_examples(tok, examples, settings.max_seq_len)
    per_epoch = max(1, math.ceil(len(enc) / settings.batch_size))
    t0, done_here, tok_here = time.perf_counter(), 0, 0
    model.train()
    lengths = np.array([len(ids) for ids, _ in enc])
    plan: dict[int, list] = {}
    with tqdm(total=n_total, initial=start, desc="LoRA", unit="step", disable=quiet or not acc.is_main_process) as bar:
        for step in range(start, n_total):
            epoch, b = divmod(step, per_epoch)
            if epoch not in plan:
                plan = {epoch: epoch_batches(lengths, settings.batch_size, settings.seed + 1000 + epoch,
                                             getattr(settings, "group_by_length", True))}
            idx = plan[epoch][b]
            idx = idx[acc.process_index::acc.num_processes] if len(idx) >= acc.num_processes else idx
            batch = _collate([enc[i] for i in idx], tok.pad_token_id, acc.device)
            loss = reply_loss(model, batch)
            acc.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            n_tok = int(batch["attention_mask"].sum())
            losses.append(round(float(loss.detach()), 4))
            tokens_done += n_tok
            tok_here += n_tok
            done_here += 1
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update(1)
            if (step + 1) % settings.checkpoint_every == 0 and step + 1 < n_total and acc.is_main_process:
                save_checkpoint(last, acc.unwrap_model(model), opt, sched, step + 1, losses, tokens_done, config)
    wall = time.perf_counter() - t0
    acc.wait_for_everyone()
    result = {
        **config, "trained_steps": n_total, "resumed_from": start, "losses": losses,
        "loss_first": float(np.mean(losses[:5])) if losses else None,
        "loss_last": float(np.mean(losses[-5:])) if losses else None,
        "examples": len(enc), "tokens": tokens_done,
        "wall_s": round(wall, 2), "steps_per_s": round(done_here / wall, 4) if wall > 0 else None,
        "tokens_per_s": round(tok_here / wall, 1) if wall > 0 else None, "peak_rss_gib": peak_rss_gib(),
        "device": str(acc.device), "processes": acc.num_processes,
    }
    if acc.is_main_process:
        save_adapter(acc.unwrap_model(model), tok, Path(adapter_dir), result)
        if merged_dir is not None:
            save_merged(acc.unwrap_model(model), tok, Path(merged_dir))
    return result


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, group: bool = True,
                  window: int = 16) -> list[np.ndarray]:
    """One epoch's batches of example indices (seeded, so a resumed run replays the same ones).

    ``group``: shuffle, then sort each window of ``window`` batches by length and shuffle the
    batches, so a batch holds examples of similar length (HF's ``group_by_length``). On the
    ML-100K training data this cut the padded tokens from 1.16x to 1.01x the real ones.
    """
    perm = np.random.default_rng(seed).permutation(len(lengths))
    if not group:
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
    out: list[np.ndarray] = []
    span = batch_size * window
    for s in range(0, len(perm), span):
        chunk = perm[s:s + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = np.random.default_rng(seed + 1).permutation(len(out))
    return [out[i] for i in order]


def save_checkpoint(path: Path, model: Any, opt: Any, sched: Any, step: int, losses: list, tokens: int,
                    config: dict) -> None:
    """Adapter weights, optimizer and scheduler at ``step``; written beside, then swapped in."""
    import torch
    from peft import get_peft_model_state_dict

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(get_peft_model_state_dict(model), tmp / "adapter.pt")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "optim.pt")
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, "losses": losses, "tokens": tokens, "config": config}),
                                  encoding="utf-8")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(path: Path, model: Any, opt: Any, sched: Any, config: dict) -> tuple[int, list, int]:
    import torch
    from peft import set_peft_model_state_dict

    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    saved = state.get("config", {})
    diff = [k for k in config if k != "base" and saved.get(k) != config[k]]
    if diff:
        raise FinetuneError(f"{path}: the checkpoint was trained with other settings or data ({', '.join(diff)}); "
                            f"delete {path.parent} to start the LoRA stage again, or restore those settings.")
    set_peft_model_state_dict(model, torch.load(path / "adapter.pt", weights_only=True))
    o = torch.load(path / "optim.pt", weights_only=False)
    opt.load_state_dict(o["optimizer"])
    sched.load_state_dict(o["scheduler"])
    torch.set_rng_state(o["torch_rng"])
    return int(state["step"]), list(state["losses"]), int(state["tokens"])


def save_adapter(model: Any, tokenizer: Any, adapter_dir: Path, result: dict) -> None:
    """peft's standard adapter files plus ``training.json`` (settings, data hash, curve)."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    (adapter_dir / TRAINING_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")


def save_merged(model: Any, tokenizer: Any, merged_dir: Path) -> None:
    """Base + adapter merged into plain weights (for the fast inference backend)."""
    import copy

    merged = copy.deepcopy(model).merge_and_unload()
    merged_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))


def peak_rss_gib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def reply_loss(model: Any, batch: dict) -> Any:
    """Mean cross-entropy over the reply tokens only. Rows are left-padded, so every reply lies
    in the last ``keep`` positions and the vocabulary projection runs on those alone (the
    logits of a 49k vocabulary over whole prompts would cost GiBs)."""
    import torch.nn.functional as F

    keep = int(batch["keep"])
    kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "logits_to_keep": keep + 1}
    pos = batch.get("position_ids")
    if pos is not None:
        kw["position_ids"] = pos
    logits = model(**kw).logits[:, :-1, :]            # predicts tokens at positions -keep..-1
    labels = batch["labels"][:, -keep:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def _collate(rows: list[tuple[list[int], int]], pad: int, device: Any) -> dict:
    """Left-padded ids, mask, positions and labels (-100 outside the replies)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(rows):
        t = torch.tensor(ids, dtype=torch.long)
        off = width - len(ids)
        input_ids[i, off:] = t
        mask[i, off:] = 1
        pos[i, off:] = torch.arange(len(ids))
        labels[i, off + n_prompt:] = t[n_prompt:]
    keep = max(len(ids) - n for ids, n in rows)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device),
            "labels": labels.to(device), "keep": keep}


def _settings_dict(settings: Any) -> dict:
    d = asdict(settings) if is_dataclass(settings) else dict(settings)
    keys = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets", "learning_rate", "batch_size", "max_seq_len", "seed",
            "epochs", "gradient_checkpointing")
    return {k: d[k] for k in keys if k in d}
