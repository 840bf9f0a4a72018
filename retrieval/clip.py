"""``ClipEncoder``: an open_clip model (any architecture) as an image + text encoder.

Weights come from one of three places:

* a local checkpoint file (``models.clip_checkpoint``), in the format below;
* an open_clip pretrained tag (``models.clip_pretrained``, e.g. ``laion2b_s34b_b79k``) for
  online users (open_clip downloads it once into its own cache);
* nothing: ``ClipEncoder.from_config`` then returns ``None`` and the index has no image or
  cross-modal channel (random CLIP weights would only add noise).

Checkpoint format (what ``save_clip_checkpoint`` writes and what our CLIP fine-tuning saves)::

    torch.save({
        "arch": "ViT-B-32",            # open_clip architecture name
        "state_dict": model.state_dict(),  # an open_clip CLIP model's weights ("module." prefixes are stripped)
        "model_cfg": {...},            # optional: the architecture's config dict, for archs that
                                       # open_clip does not ship (embed_dim, vision_cfg, text_cfg)
        "text_center": [...],          # optional: mean unit text embedding, subtracted from every
                                       # text embedding before it is normalised (see ClipEncoder)
    }, path)

A bare state dict (a file of tensors, as open_clip's released ``.bin``/``.pt`` files) is accepted
too; its architecture is then ``models.clip_model``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recagent.errors import ModelError
from recagent.retrieval.encoders import BaseEncoder

log = logging.getLogger("recagent.retrieval")


class ClipEncoder(BaseEncoder):
    """Both towers of an open_clip model; texts and images land in one embedding space.

    Args:
        arch: open_clip architecture name (``ViT-B-32``, ``RN50``, ...); a checkpoint's own
            ``arch`` wins over it.
        checkpoint: a local checkpoint file (see the module docstring for the format).
        pretrained: an open_clip pretrained tag (needs internet the first time).
        device: torch device string.
        batch_size: images or texts per forward pass.
    """

    supports_images = True

    def __init__(self, arch: str = "ViT-B-32", checkpoint: str | Path | None = None, pretrained: str | None = None,
                 device: str = "cpu", batch_size: int = 32):
        import open_clip
        import torch

        self._torch = torch
        self.device = "cpu" if device == "auto" and not torch.cuda.is_available() else ("cuda" if device == "auto" else device)
        self.batch_size = batch_size
        state_dict = None
        extras: dict = {}
        if checkpoint:
            arch, state_dict, model_cfg = load_clip_checkpoint(checkpoint, arch, extras)
            if model_cfg is not None:
                register_model_config(arch, _local_text_tower(model_cfg, checkpoint))
            origin = checkpoint_fingerprint(checkpoint)
        elif pretrained:
            origin = pretrained
        else:
            origin = "random"
        if arch not in open_clip.list_models():
            raise ModelError(f"models.clip_model: unknown open_clip architecture '{arch}'; pick one of "
                             f"open_clip.list_models() (e.g. ViT-B-32) or put 'model_cfg' in the checkpoint.")
        # open_clip warns "initialized randomly" before we load the checkpoint's weights ourselves
        quiet = _DropMessage("No pretrained weights loaded") if checkpoint else None
        if quiet:
            logging.getLogger().addFilter(quiet)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=None if checkpoint else (pretrained or None), device=self.device, pretrained_text=False)
        except RuntimeError as exc:
            raise ModelError(f"models.clip_pretrained: could not load '{pretrained}' for {arch} ({exc}); "
                             f"check the tag with open_clip.list_pretrained() or use a local checkpoint.") from None
        finally:
            if quiet:
                logging.getLogger().removeFilter(quiet)
        if state_dict is not None:
            try:
                model.load_state_dict(state_dict)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise ModelError(f"{checkpoint}: weights do not fit architecture {arch} ({first}); "
                                 f"save the checkpoint with the 'arch' it was trained with.") from None
        model.eval()
        # a checkpoint may carry the mean (unit-length) text embedding of its training texts:
        # subtracting it keeps a few "hub" pictures from topping every short query
        centre = extras.get("text_center")
        self.text_center = None if centre is None else np.asarray(centre, np.float32)
        self.model = model
        # the learned softmax temperature: turns cosine similarities into the model's own logits
        self.logit_scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.arch = arch
        # what the index records to notice new weights (see configured_fingerprint)
        self.fingerprint = origin if checkpoint or not pretrained else f"{arch}:{pretrained}"
        self.name = f"clip:{arch}:{origin}"
        with torch.inference_mode():
            self.dim = int(model.encode_text(self.tokenizer(["x"]).to(self.device)).shape[-1])

    @classmethod
    def from_config(cls, cfg, dataset: Any = None) -> "ClipEncoder | None":
        """The configured CLIP model, or ``None`` when neither a checkpoint nor a tag is set.

        Args:
            cfg: the resolved config.
            dataset: a data set (or its name); without a configured checkpoint or tag, the one
                ``recagent finetune clip`` trained for it (``<runs>/<dataset>/clip/clip.pt``) is used.
        """
        m = cfg.models
        trained = trained_checkpoint(cfg, dataset) if not m.clip_checkpoint and not m.clip_pretrained else None
        if not m.clip_checkpoint and not m.clip_pretrained and trained is None:
            return None
        ckpt = Path(m.clip_checkpoint).expanduser() if m.clip_checkpoint else trained
        if ckpt is not None and not ckpt.is_file():
            raise ModelError(f"models.clip_checkpoint: '{ckpt}' not found; give an existing checkpoint file or leave it empty.")
        return cls(m.clip_model, checkpoint=ckpt, pretrained=m.clip_pretrained or None, device=m.device,
                   batch_size=min(32, cfg.retrieval.batch_size))

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        with self._torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            e = self.model.encode_text(tokens).float().cpu().numpy()
        if self.text_center is not None:
            e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12) - self.text_center
        return e

    def _embed_image_batch(self, images: list) -> np.ndarray:
        with self._torch.inference_mode():
            batch = self._torch.stack([self.preprocess(open_image(im)) for im in images]).to(self.device)
            return self.model.encode_image(batch).float().cpu().numpy()


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def trained_checkpoint(cfg, dataset: Any = None) -> Path | None:
    """The checkpoint ``recagent finetune clip`` wrote for ``dataset`` (default ``data.dataset``), if any."""
    from recagent.runs import layout

    try:
        path = layout(cfg, dataset if dataset is not None else cfg.data.dataset).clip / "clip.pt"
    except (AttributeError, TypeError, ValueError):
        return None
    return path if path.is_file() else None


def checkpoint_fingerprint(path: str | Path) -> str:
    """``<file name>#<content hash>`` of a checkpoint: changes whenever its weights do (re-training
    in place included). Hashed once per process per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _file_digest(p)
    return f"{p.name}#{_DIGESTS[key]}"


def configured_fingerprint(cfg, dataset: Any = None) -> str | None:
    """The fingerprint of the CLIP weights ``ClipEncoder.from_config(cfg, dataset)`` would load,
    without loading them (None: no CLIP configured or trained). The index records it and
    re-embeds its ``image`` and ``clip_text`` channels when it changes."""
    m = cfg.models
    if m.clip_checkpoint:
        p = Path(m.clip_checkpoint).expanduser()
        return checkpoint_fingerprint(p) if p.is_file() else None  # missing: loading it will say so
    if m.clip_pretrained:
        return f"{m.clip_model}:{m.clip_pretrained}"
    trained = trained_checkpoint(cfg, dataset)
    return checkpoint_fingerprint(trained) if trained is not None else None


def open_image(image: Any):
    """A PIL RGB image from a PIL image or a path; raises ``OSError``/``ValueError`` if unreadable."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    with Image.open(Path(image)) as im:
        im.load()
        return im.convert("RGB")


def load_clip_checkpoint(path: str | Path, arch: str, extras: dict | None = None) -> tuple[str, dict, dict | None]:
    """Read a checkpoint file: ``(arch, state_dict, model_cfg or None)``.

    Args:
        path: the file (format in the module docstring).
        arch: the architecture to assume for a bare state dict.
        extras: if given, receives the file's other keys (``step``, ``text_center``, ...).
    """
    import torch

    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ModelError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}); "
                         f"save it with torch.save({{'arch': ..., 'state_dict': ...}}).") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a dict with 'state_dict' and 'arch'; re-save it in that format.")
    if "state_dict" in obj:
        sd, ckpt_arch, model_cfg = obj["state_dict"], obj.get("arch"), obj.get("model_cfg")
        if extras is not None:
            extras.update({k: v for k, v in obj.items() if k not in ("state_dict", "arch", "model_cfg")})
    else:
        sd, ckpt_arch, model_cfg = obj, None, None
    if ckpt_arch and ckpt_arch != arch:
        log.info("CLIP checkpoint %s is a %s model; using that instead of models.clip_model=%s", path, ckpt_arch, arch)
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    return ckpt_arch or arch, sd, model_cfg


def save_clip_checkpoint(model, arch: str, path: str | Path, model_cfg: dict | None = None, **extra: Any) -> Path:
    """Save an open_clip model in the format ``ClipEncoder`` loads (written atomically).

    Args:
        model: the open_clip CLIP model (or a wrapper exposing ``state_dict()``).
        arch: its architecture name.
        path: destination file.
        model_cfg: the architecture config dict, needed only for archs open_clip does not ship.
        extra: more keys to keep in the file (e.g. training step, metrics).
    """
    import os

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"arch": arch, "state_dict": model.state_dict(), **extra}
    if model_cfg is not None:
        payload["model_cfg"] = model_cfg
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def register_model_config(arch: str, model_cfg: dict) -> None:
    """Make a custom architecture known to open_clip under ``arch`` (idempotent)."""
    import open_clip

    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ModelError(f"CLIP model_cfg for '{arch}' lacks {', '.join(missing)}; give open_clip's config dict.")
    folder = Path(tempfile.mkdtemp(prefix="recagent-clipcfg-"))
    (folder / f"{arch}.json").write_text(json.dumps(model_cfg), encoding="utf-8")
    open_clip.add_model_config(folder)


def _local_text_tower(model_cfg: dict, checkpoint: Any) -> dict:
    # A checkpoint trained here names its HF text tower by a local folder (the cached MiniLM).
    # On another machine that folder lives under that machine's cache: look for it there.
    text = dict(model_cfg.get("text_cfg", {}))
    name = text.get("hf_model_name") or ""
    if not name.startswith(("/", "~")) or Path(name).expanduser().is_dir():
        return model_cfg
    from recagent.paths import default_cache_dir

    local = Path(default_cache_dir()) / "models" / Path(name).name
    if not local.is_dir():
        raise ModelError(f"{checkpoint}: its text tower '{name}' is not here; run `recagent models pull` "
                         f"(it caches {Path(name).name}) or copy that folder to {local}.")
    text["hf_model_name"] = text["hf_tokenizer_name"] = str(local)
    return {**model_cfg, "text_cfg": text}


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path, chunk: int = 1 << 20) -> str:
    # The encoder's name carries the checkpoint's content hash, so re-training in place
    # invalidates stored embeddings (the index keys its content hashes on the encoder name).
    h = hashlib.blake2b(digest_size=6)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def zero_shot_scores(image_emb: np.ndarray, prompt_emb: Sequence[np.ndarray], how: str = "marginal",
                     scale: float = 100.0, weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Class scores ``(n_images, n_classes)`` of unit image embeddings against several prompts per class.

    Args:
        image_emb: ``(N, d)`` unit-length image embeddings.
        prompt_emb: one ``(P_k, d)`` array of unit text embeddings per class (its prompts).
        how: ``"mean"``: cosine with the normalised mean of the class's prompt embeddings (CLIP's
            prompt ensembles); ``"marginal"``: ``log sum_j w_j exp(scale * cos(image, prompt_j))``,
            the class's share of the model's softmax over every prompt, so an image is scored by
            the prompts that describe it (a slim dark coat by "A warm coat, slim cut. Dark tone")
            rather than by the class average.
        scale: softmax temperature for ``marginal`` (a CLIP model's ``logit_scale.exp()``;
            ``ClipEncoder.logit_scale``).
        weights: optional per-class prompt weights (e.g. how often each caption occurs in the
            training data); normalised per class; uniform when ``None``.
    """
    if how not in ("mean", "marginal"):
        raise ValueError(f"how='{how}': use 'mean' or 'marginal'")
    img = np.asarray(image_emb, np.float32)
    out = np.empty((len(img), len(prompt_emb)), np.float32)
    for k, e in enumerate(prompt_emb):
        e = np.asarray(e, np.float32)
        w = np.full(len(e), 1.0 / len(e)) if weights is None else np.asarray(weights[k], np.float64)
        w = w / w.sum()
        if how == "mean":
            m = (e * w[:, None].astype(np.float32)).sum(0)
            out[:, k] = img @ (m / max(float(np.linalg.norm(m)), 1e-12))
        else:
            z = scale * (img @ e.T).astype(np.float64)
            top = z.max(1, keepdims=True)
            out[:, k] = (top[:, 0] + np.log(np.exp(z - top) @ w + 1e-300)).astype(np.float32)
    return out


def check_images(paths: Sequence[Any]) -> list[str | None]:
    """For each path, ``None`` if it opens as an image, else a short reason."""
    out: list[str | None] = []
    for p in paths:
        try:
            open_image(p)
            out.append(None)
        except FileNotFoundError:
            out.append("not found")
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files
            out.append(f"unreadable ({type(exc).__name__})")
    return out
