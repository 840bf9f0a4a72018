"""Contrastive CLIP training on a catalog's (image, text) pairs, resumable, CPU-friendly.

The model is an open_clip ``CustomTextCLIP``: a small ViT trained from scratch for the image
tower and, for the text tower, a Hugging Face encoder loaded from a local folder through
open_clip's HF text-tower config (``text_cfg.hf_model_name`` = the cached all-MiniLM-L6-v2), so
text queries start from real language knowledge. Only the last ``text_unlocked_layers`` of the
text encoder and its projection are trained (the frozen prefix costs no backward pass).

Outputs in ``out_dir``::

    clip.pt            the model in the format ``retrieval.clip.ClipEncoder`` loads (+ "step")
    train_state.pt     optimizer, step, losses: what ``resume=True`` continues from
    clip_train.json    the resolved training config, data fingerprint and the loss curve

Every ``checkpoint_every`` steps both ``.pt`` files are written atomically, so a killed run
resumes from its last checkpoint and (with one thread) reaches bit-identical weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recagent.errors import RecagentError

log = logging.getLogger("recagent.finetune")

CHECKPOINT = "clip.pt"
STATE = "train_state.pt"
META = "clip_train.json"
# open_clip's default normalisation (what its image transforms use unless a config says otherwise)
_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipTrainConfig:
    """CLIP training settings. On a quiet 2-core machine (2 threads) a Fashion-MNIST step of 256
    pairs took 0.65 s and loading 60,000 pairs 34 s, so the default 5 epochs (1,170 steps) take
    about 13 minutes (measured: 12.7 min; benchmarks/images.py, docs/images.md). Longer training
    keeps improving caption retrieval (text->image Recall@10 in a pool of 1,000: 0.56 after 1
    epoch, 0.77 after 5) but not zero-shot class accuracy (category names: 0.59, 0.70 after a
    2-epoch warm restart, 0.66 after 5)."""

    arch: str = "recagent-clip-vit-tiny"  # name the architecture is registered under in open_clip
    image_size: int = 28           # pixels per side the vision tower sees (Fashion-MNIST is 28x28)
    patch_size: int = 4            # 7x7 = 49 patches at 28 px: fine enough for 28-px product shots
    width: int = 128               # ViT width (2 heads of 64): ~0.8M vision parameters
    layers: int = 4                # ViT depth
    embed_dim: int = 256           # joint embedding size (index vectors)
    text_model: str = ""           # local HF text-encoder folder; "" = the cached all-MiniLM-L6-v2
    text_unlocked_layers: int = 0  # trained top layers of the text encoder; 0 = frozen encoder (its pooled
                                   # outputs are computed once, ~6x faster steps), only the projection learns
    context_length: int = 32       # tokens per caption (titles + one sentence fit)
    batch_size: int = 256          # contrastive batch: 255 negatives per pair
    epochs: float = 5.0            # passes over the pairs (ignored when max_steps is set)
    max_steps: int = 0             # 0 = derive from epochs
    lr: float = 2e-3               # AdamW learning rate of the new parts (vision tower, projections)
    text_lr: float = 3e-5          # learning rate of the unlocked text layers (small: keep MiniLM's knowledge)
    weight_decay: float = 0.05     # AdamW decay on matrices (not on norms, biases, embeddings)
    warmup_steps: int = 30         # linear warm-up, then cosine decay to 0
    flip: bool = True              # random horizontal flips (clothes and shoes read the same mirrored)
    prefix_p: float = 0.0          # share of pairs whose caption is cut to a random clause prefix ("A warm coat",
                                   # "A warm coat, wide cut."). 0.5 for 5 epochs on Fashion-MNIST: zero-shot 0.66 ->
                                   # 0.77 (names), 0.71 -> 0.85 (class phrases), but `search --channel image` P@10
                                   # 0.87 -> 0.66: a few "hub" pictures top every short query (docs/images.md)
    center_text: bool = False      # store the mean unit text embedding of the training texts (whole captions and
                                   # their prefixes) in clip.pt; ClipEncoder subtracts it from text embeddings,
                                   # so no picture is near every short query (what prefix_p=0.5 needs)
    checkpoint_every: int = 50     # steps between resumable checkpoints
    seed: int = 0                  # data order, initialisation

    def steps(self, n_pairs: int) -> int:
        if self.max_steps:
            return int(self.max_steps)
        per_epoch = max(1, n_pairs // min(self.batch_size, n_pairs))
        return max(1, int(math.ceil(self.epochs * per_epoch)))


@dataclass
class ClipPairs:
    """Training pairs: images (paths or PIL images) and their captions, one each."""

    images: Sequence[Any]
    captions: list[str]
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions):
            raise ValueError("ClipPairs: images and captions differ in length")

    def __len__(self) -> int:
        return len(self.captions)

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for i, c in zip(self.ids or range(len(self)), self.captions):
            h.update(f"{i}\x1f{c}\x1e".encode())
        return h.hexdigest()


@dataclass
class ClipTrainResult:
    checkpoint: Path
    step: int
    losses: list[float]
    seconds: float
    pairs_per_second: float
    cpu_seconds: float = 0.0  # process CPU time (all threads): on a busy machine, cpu_seconds / threads
                              # estimates the wall time on a quiet one


class ClipTrainError(RecagentError):
    """CLIP training cannot start (no images, mismatched resume state)."""


def caption_of(title: str, text: str = "", max_chars: int = 200) -> str:
    """The caption of an item: its title, then the first part of its text."""
    title, text = (title or "").strip(), (text or "").strip()
    cap = f"{title}. {text}" if text else title
    return cap[:max_chars]


CAPTIONS = ("title+text", "title", "text")


def pairs_from_catalog(catalog, caption: str = "title+text") -> ClipPairs:
    """The (image, caption) pairs of a catalog's items that have an image.

    Args:
        catalog: a ``Catalog``.
        caption: what the caption is made of: ``title+text`` (default), ``title``, or ``text``
            (the title where an item has no text); ``text`` suits catalogs whose titles add
            only names (e.g. the built-in Fashion-MNIST: "Vera dark wool pullover").
    """
    if caption not in CAPTIONS:
        raise ClipTrainError(f"caption='{caption}': use one of {', '.join(CAPTIONS)}.")
    df = catalog.items
    df = df[df["image_path"].notna()]
    if df.empty:
        raise ClipTrainError(f"catalog {catalog.source}: no item has a readable image; add an image_path column "
                             "(paths relative to the catalog file) before training CLIP.")
    caps = [caption_text(t, x, caption) for t, x in zip(df["title"], df["text"])]
    return ClipPairs(list(df["image_path"]), caps, [str(i) for i in df["item_id"]])


def caption_text(title: str, text: str, caption: str = "title+text") -> str:
    """One item's caption in the chosen form (see ``pairs_from_catalog``)."""
    if caption == "title":
        return caption_of(title)
    if caption == "text" and str(text or "").strip():
        return caption_of(str(text))
    return caption_of(title, text)


def model_config(cfg: ClipTrainConfig, text_model: str) -> dict:
    """The open_clip model config dict (what the checkpoint's ``model_cfg`` holds)."""
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {"image_size": cfg.image_size, "patch_size": cfg.patch_size, "width": cfg.width,
                       "layers": cfg.layers, "head_width": 64, "mlp_ratio": 4.0},
        "text_cfg": {"hf_model_name": text_model, "hf_tokenizer_name": text_model, "hf_pooler_type": "mean_pooler",
                     "hf_proj_type": "mlp", "context_length": cfg.context_length},
        "custom_text": True,
    }


def default_text_model(cache: Path) -> str:
    """The cached all-MiniLM-L6-v2 folder (fetched by ``recagent models pull`` if missing)."""
    from recagent.models import resolve_model

    return resolve_model("all-minilm-l6-v2", Path(cache), pull=True)


def build_model(cfg: ClipTrainConfig, text_model: str, init_checkpoint: str | Path | None = None):
    """``(model, model_cfg)``: a fresh CLIP with MiniLM's weights in the text tower, or the
    weights of ``init_checkpoint`` (a user's checkpoint to continue from)."""
    import open_clip
    import torch

    from recagent.retrieval.clip import load_clip_checkpoint, register_model_config

    if init_checkpoint:
        arch, state_dict, mcfg = load_clip_checkpoint(init_checkpoint, cfg.arch)
        if mcfg is None and arch not in open_clip.list_models():
            raise ClipTrainError(f"{init_checkpoint}: no 'model_cfg' and unknown arch '{arch}'; save it with save_clip_checkpoint.")
    else:
        arch, state_dict, mcfg = cfg.arch, None, model_config(cfg, text_model)
    if mcfg is not None:
        register_model_config(arch, mcfg)
    torch.manual_seed(cfg.seed)
    with _quiet_loading():
        model = open_clip.create_model(arch, pretrained=None, pretrained_text=state_dict is None)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model, arch, mcfg


def train_clip(pairs: ClipPairs, out_dir: str | Path, cfg: ClipTrainConfig = ClipTrainConfig(), *,
               text_model: str | None = None, cache: Path | None = None, init_checkpoint: str | Path | None = None,
               resume: bool = False, progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> ClipTrainResult:
    """Train CLIP on ``pairs`` and write ``out_dir/clip.pt`` (``ClipEncoder``'s format).

    Args:
        pairs: images and captions.
        out_dir: where checkpoints and the training record go.
        cfg: training settings.
        text_model: HF text-encoder folder for a fresh model (default: cached all-MiniLM-L6-v2).
        cache: recagent's cache dir (to find the cached text encoder).
        init_checkpoint: continue from this CLIP checkpoint instead of a fresh model.
        resume: continue an interrupted run in ``out_dir`` from its ``train_state.pt``.
        progress: show a tqdm bar on stderr.
        on_step: called after every step with (step, loss).
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from recagent.retrieval.clip import save_clip_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(pairs) < 2:
        raise ClipTrainError(f"CLIP training needs at least 2 (image, text) pairs, got {len(pairs)}; add items with images.")
    state_path = out / STATE
    state = None
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["pairs"] != pairs.fingerprint():
            raise ClipTrainError(f"{state_path}: was trained on other pairs ({state['pairs']} != {pairs.fingerprint()}); "
                                 "drop --resume or use a new output folder.")
        cfg = ClipTrainConfig(**{"prefix_p": 0.0, **state["config"]})  # runs saved before prefix_p had none
        text_model = state["text_model"]
    if text_model is None and init_checkpoint is None:
        text_model = default_text_model(cache or _default_cache())
    if text_model and not init_checkpoint and not Path(text_model).is_dir():
        raise ClipTrainError(f"text model '{text_model}' is not a local folder; run `recagent models pull` or pass --text-model DIR.")

    torch.manual_seed(cfg.seed)
    model, arch, mcfg = build_model(cfg, text_model or "", init_checkpoint)
    _lock_text(model, cfg.text_unlocked_layers)
    if state is not None:
        model.load_state_dict(state["model"])
    image_size = _image_size(model)
    images = load_image_tensor(pairs.images, image_size, progress=progress)
    views = CaptionViews.of(pairs.captions)
    tokens = tokenize(arch, views.texts)
    frozen_text = pooled_text(model, tokens, progress=progress) if cfg.text_unlocked_layers == 0 else None

    text_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("text.transformer.")]
    text_ids = {id(p) for p in text_params}
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad or id(p) in text_ids:
            continue
        (decay if p.ndim >= 2 and "embedding" not in n and "class_embedding" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([
        {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
        {"params": text_params, "lr": cfg.text_lr, "weight_decay": cfg.weight_decay},
    ])
    base_lrs = [g["lr"] for g in opt.param_groups]
    n = len(pairs)
    batch = min(cfg.batch_size, n)
    total = cfg.steps(n)
    per_epoch = max(1, n // batch)
    step, losses = 0, []
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)

    def save(final: bool = False) -> None:
        extra = {"step": step, "train": {"pairs": n, "loss": losses[-1] if losses else None, "final": final}}
        if final and cfg.center_text:
            extra["text_center"] = text_center(model, tokenize(arch, views.texts))
        save_clip_checkpoint(model, arch, out / CHECKPOINT, model_cfg=mcfg, **extra)
        tmp = state_path.with_name(f".{STATE}.tmp-{os.getpid()}")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "losses": losses,
                    "config": asdict(cfg), "text_model": text_model, "pairs": pairs.fingerprint()}, tmp)
        os.replace(tmp, state_path)
        (out / META).write_text(json.dumps({"arch": arch, "step": step, "total_steps": total, "pairs": n,
                                            "data": pairs.fingerprint(), "config": asdict(cfg), "text_model": text_model,
                                            "losses": [round(x, 4) for x in losses]}, indent=1), encoding="utf-8")

    model.train()
    t0, start_step = time.perf_counter(), step
    c0 = time.process_time()
    bar = tqdm(total=total, initial=step, desc="CLIP training", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        while step < total:
            epoch, within = divmod(step, per_epoch)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen)
            idx = perm[within * batch:(within + 1) * batch]
            x = images[idx].float().div_(255.0)
            if cfg.flip:
                flip = torch.rand(len(idx), generator=gen.manual_seed(cfg.seed * 7919 + step)) < 0.5
                x[flip] = x[flip].flip(-1)
            x = (x - mean) / std
            uid = views.sample(idx, cfg.prefix_p, torch.Generator().manual_seed(cfg.seed * 104_729 + step))
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * _lr_factor(step, total, cfg.warmup_steps)
            img = F.normalize(model.encode_image(x), dim=-1)
            txt = model.text.proj(frozen_text[uid]) if frozen_text is not None else model.encode_text(tokens[uid])
            txt = F.normalize(txt, dim=-1)
            logits = model.logit_scale.exp() * img @ txt.t()
            loss = contrastive_loss(logits, uid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if on_step:
                on_step(step, losses[-1])
            if step % cfg.checkpoint_every == 0 and step < total:
                save()
    finally:
        bar.close()
    model.eval()
    save(final=True)
    secs = time.perf_counter() - t0
    done = step - start_step
    return ClipTrainResult(out / CHECKPOINT, step, losses, secs, done * batch / secs if secs > 0 and done else 0.0,
                           round(time.process_time() - c0, 1))


def text_center(model, tokens, batch: int = 256):
    """The mean of the model's unit-length text embeddings of ``tokens`` (a float tensor)."""
    import torch
    import torch.nn.functional as F

    was = model.training
    model.eval()
    total = None
    with torch.inference_mode():
        for i in range(0, len(tokens), batch):
            e = F.normalize(model.encode_text(tokens[i:i + batch]).float(), dim=-1).sum(0)
            total = e if total is None else total + e
    model.train(was)
    return (total / len(tokens)).clone()


def center_checkpoint(checkpoint: str | Path, captions: Sequence[str]) -> Path:
    """Add ``text_center`` (see ``ClipTrainConfig.center_text``) to a trained checkpoint, computed
    from ``captions`` and their clause prefixes as training would; rewrites the file atomically."""
    import torch

    from recagent.retrieval.clip import load_clip_checkpoint, register_model_config, save_clip_checkpoint

    extras: dict = {}
    arch, sd, mcfg = load_clip_checkpoint(checkpoint, "", extras)
    if mcfg is not None:
        register_model_config(arch, mcfg)
    import open_clip

    with _quiet_loading():
        model = open_clip.create_model(arch, pretrained=None, pretrained_text=False)
    model.load_state_dict(sd)
    extras["text_center"] = text_center(model, tokenize(arch, CaptionViews.of(list(captions)).texts))
    return save_clip_checkpoint(model, arch, checkpoint, model_cfg=mcfg, **extras)


def contrastive_loss(logits, text_ids):
    """CLIP's symmetric InfoNCE where pairs with the same caption are all positives.

    Catalogs repeat captions (the built-in one has ~30 pairs per distinct text; a clause prefix
    such as "A warm coat" is shared by a whole class), and plain InfoNCE would push an image away
    from its own caption's duplicates. Targets spread evenly over the identical captions; with
    distinct captions this is the usual loss.

    Args:
        logits: (B, B) scaled image-text similarities (rows images, columns texts).
        text_ids: (B,) id of each pair's caption text (equal ids = identical text).
    """
    import torch.nn.functional as F

    same = (text_ids[:, None] == text_ids[None, :]).float()
    target = same / same.sum(1, keepdim=True)  # symmetric, so it serves both directions
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@dataclass
class CaptionViews:
    """Each pair's caption and its clause prefixes, as ids into one table of distinct texts.

    A prefix ends at a clause or sentence boundary (``,`` ``;`` ``.``): "A warm coat, wide cut.
    Dark tone." gives "A warm coat", "A warm coat, wide cut." and "A warm coat, wide cut. Dark
    tone". Distinct texts are encoded once.
    """

    texts: list[str]   # distinct texts
    full: Any          # (N,) long: id of each pair's whole caption
    prefixes: Any      # (N, P) long: ids of its prefixes, padded by repeating the last one
    n_prefixes: Any    # (N,) long: how many it has (0: the caption is one clause)

    @classmethod
    def of(cls, captions: Sequence[str]) -> "CaptionViews":
        import torch

        ids: dict[str, int] = {}
        full, pre = [], []
        for c in captions:
            full.append(ids.setdefault(c, len(ids)))
            pre.append([ids.setdefault(p, len(ids)) for p in caption_prefixes(c)])
        width = max(1, max(len(p) for p in pre))
        pad = [p + [p[-1] if p else f] * (width - len(p)) for p, f in zip(pre, full)]
        return cls(list(ids), torch.tensor(full), torch.tensor(pad), torch.tensor([len(p) for p in pre]))

    def sample(self, idx, prefix_p: float, gen):
        """Text ids for the pairs ``idx``: the whole caption, or with probability ``prefix_p``
        one of its prefixes chosen uniformly (deterministic given ``gen``)."""
        import torch

        out = self.full[idx].clone()
        if prefix_p <= 0:
            return out
        cut = (torch.rand(len(idx), generator=gen) < prefix_p) & (self.n_prefixes[idx] > 0)
        pick = (torch.rand(len(idx), generator=gen) * self.n_prefixes[idx].clamp(min=1)).long()
        out[cut] = self.prefixes[idx[cut], pick[cut]]
        return out


def caption_prefixes(caption: str) -> list[str]:
    """The proper prefixes of a caption that end at a clause boundary, trailing ``,;`` dropped."""
    import re

    out = []
    for m in re.finditer(r"[,;.](?=\s)", caption):
        p = caption[:m.end()].rstrip(",; ")
        if p and p != caption.strip():
            out.append(p)
    return out


def train_catalog_clip(cfg, dataset: str | None = None, tcfg: ClipTrainConfig = ClipTrainConfig(), *,
                       out_dir: str | Path | None = None, resume: bool = False, init_checkpoint: str | Path | None = None,
                       text_model: str | None = None, split: str | None = None, caption: str = "title+text",
                       progress: bool = True, log_fn: Callable[[str], None] = log.info) -> dict:
    """The CLIP stage for a data set: load it, train on its (image, text) pairs and write the
    checkpoint to its run layout's ``clip/`` folder (where ``ClipEncoder.from_config`` finds it).

    Args:
        cfg: the resolved recagent config.
        dataset: data set name (default ``cfg.data.dataset``).
        tcfg: training settings.
        out_dir: output folder instead of ``layout(cfg, dataset).clip``.
        split: train only on items whose ``split`` column equals this (e.g. ``train``).
        caption: what captions are made of (see ``pairs_from_catalog``).
        (other args as :func:`train_clip`.)

    Returns:
        A JSON-ready summary (checkpoint, step, losses, seconds, throughput).
    """
    from recagent.data import load_dataset
    from recagent.runs import dataset_key, layout, record_run

    t_all, c_all = time.perf_counter(), time.process_time()
    ds = load_dataset(cfg, dataset, log_fn=log_fn)
    catalog = ds.catalog
    if split is not None:
        if "split" not in catalog.items.columns:
            raise ClipTrainError(f"--split {split}: the catalog {catalog.source} has no 'split' column; drop --split.")
        from recagent.data.schema import Catalog

        catalog = Catalog(catalog.items[catalog.items["split"] == split].reset_index(drop=True), source=catalog.source)
    pairs = pairs_from_catalog(catalog, caption)
    out = Path(out_dir) if out_dir else layout(cfg, ds).clip
    log_fn(f"CLIP training on {len(pairs):,} image-text pairs of {ds.name} -> {out}")
    res = train_clip(pairs, out, tcfg, text_model=text_model, cache=Path(cfg.paths.cache), init_checkpoint=init_checkpoint,
                     resume=resume, progress=progress)
    record_run(cfg, out, "finetune clip", {"dataset": dataset_key(ds), "pairs": len(pairs), "caption": caption,
                                           "split": split, "seconds": round(res.seconds, 1), "cpu_seconds": res.cpu_seconds})
    return {"dataset": dataset_key(ds), "checkpoint": str(res.checkpoint), "step": res.step, "pairs": len(pairs),
            "loss_first": res.losses[0] if res.losses else float("nan"),
            "loss_last": res.losses[-1] if res.losses else float("nan"),
            "seconds": round(res.seconds, 1), "cpu_seconds": res.cpu_seconds,
            "total_seconds": round(time.perf_counter() - t_all, 1), "total_cpu_seconds": round(time.process_time() - c_all, 1),
            "pairs_per_second": round(res.pairs_per_second, 1), "caption": caption, "split": split}


def load_image_tensor(images: Sequence[Any], size: int, progress: bool = False):
    """uint8 tensor (N, 3, size, size): each image resized and centre-cropped exactly as
    open_clip's eval transform does before ``ToTensor`` (so training sees what ``ClipEncoder``
    sees at inference, minus the normalisation, applied per batch)."""
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from recagent.retrieval.clip import open_image

    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for i, im in enumerate(tqdm(images, desc="loading images", unit="img", disable=not progress or len(images) < 2000)):
        try:
            pil = open_image(im)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types
            raise ClipTrainError(f"image {im}: unreadable ({type(exc).__name__}); fix or remove it from the catalog.") from None
        out[i] = torch.from_numpy(np.asarray(_resize_crop(pil, size, Image), dtype=np.uint8).copy()).permute(2, 0, 1)
    return out


def pooled_text(model, tokens, batch: int = 256, progress: bool = False):
    """The frozen HF text encoder's pooled outputs (before the trained projection) for every caption."""
    import torch
    from tqdm.auto import tqdm

    text = model.text
    uniq, inverse = torch.unique(tokens, dim=0, return_inverse=True)  # catalogs repeat captions: encode each once
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(uniq), batch), desc="encoding captions", unit="batch",
                      disable=not progress or len(uniq) < 20 * batch):
            x = uniq[i:i + batch]
            mask = (x != text.config.pad_token_id).long()
            out.append(text.pooler(text.transformer(input_ids=x, attention_mask=mask), mask).float())
    return torch.cat(out)[inverse].clone()


def tokenize(arch: str, captions: list[str]):
    import open_clip

    tok = open_clip.get_tokenizer(arch)
    return tok(captions)


def _resize_crop(pil, size: int, Image):
    # open_clip eval transform: Resize(shortest side -> size, bicubic) then CenterCrop(size)
    w, h = pil.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = pil.size
        left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
        pil = pil.crop((left, top, left + size, top + size))
    return pil


class _quiet_loading:
    # MiniLM's unused pooler weights make transformers print a load report and open_clip warn
    # "initialized partially"; both are expected here (the CLIP text tower mean-pools).
    def __enter__(self):
        import transformers

        self._verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self._filter = _Drop(("initialized partially", "No pretrained weights"))
        logging.getLogger().addFilter(self._filter)
        return self

    def __exit__(self, *exc):
        import transformers

        transformers.logging.set_verbosity(self._verbosity)
        transformers.utils.logging.enable_progress_bar()
        logging.getLogger().removeFilter(self._filter)
        return False


class _Drop(logging.Filter):
    def __init__(self, texts: tuple[str, ...]):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(t in msg for t in self.texts)


def _lock_text(model, unlocked: int) -> None:
    # open_clip's lock_text_tower has no layer map for BERT-style encoders (MiniLM): freeze the
    # HF encoder except its last ``unlocked`` layers; the pooler projection stays trainable.
    import re

    layer = re.compile(r"^text\.transformer\.encoder\.layer\.(\d+)\.")
    n_layers = 1 + max([int(m.group(1)) for k, _ in model.named_parameters() if (m := layer.match(k))], default=-1)
    for name, p in model.named_parameters():
        if not name.startswith("text.transformer."):
            continue
        m = layer.match(name)
        p.requires_grad = bool(m) and int(m.group(1)) >= n_layers - unlocked


def _image_size(model) -> int:
    s = model.visual.image_size
    return int(s[0] if isinstance(s, (tuple, list)) else s)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))


def _default_cache() -> Path:
    from recagent.config import load_config

    return Path(load_config(None, ()).paths.cache)


__all__ = ["ClipTrainConfig", "ClipPairs", "CaptionViews", "caption_prefixes", "contrastive_loss", "text_center", "center_checkpoint", "ClipTrainResult", "ClipTrainError", "caption_of", "pairs_from_catalog",
           "model_config", "build_model", "train_clip", "load_image_tensor"]
