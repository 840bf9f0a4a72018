"""``recagent finetune``: adapt recagent to a new domain's logs in one resumable command.

Stages, each writing its outputs and then a marker ``stages/<stage>.json`` into the run folder
(``recagent.runs.layout(cfg, run=out)``); a rerun with ``--resume`` skips the stages with a
marker, and the LoRA stage continues from its last checkpoint::

    validate  load + validate the files (the data layer's one-line errors; nothing is written
              before this passes), record the resolved config and the data fingerprint
    index     the ChromaDB item index of the catalog            -> index/
    rankers   the recommenders + fusion ranker (ranking.train)  -> models/B/<name>/
    clip      CLIP on the catalog's image-text pairs, if any    -> clip/
    llm_data  profile + reason SFT examples                     -> llm_data/
    lora      the LoRA adapter, merged model                    -> adapter/, merged/
    eval      base vs adapter on held-out users                 -> eval.json
    report    Markdown + PNG + JSON                             -> report/

``run_config(out)`` gives the config that serves a finished run (its data, index, rankers and
adapter): what ``chat --run``, ``eval --run`` and ``recommend --run`` need.

Under a multi-process launcher (``accelerate launch``, ``torchrun``: ``WORLD_SIZE`` > 1) the
first process runs every stage; the others wait for the data stages' markers, join it in the
LoRA stage (each takes its share of every batch) and stop there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from recagent.errors import RecagentError

log = logging.getLogger("recagent.finetune")

STAGES = ("validate", "index", "rankers", "clip", "llm_data", "lora", "eval", "report")
RANKER_MODELS = ("pop", "itemknn", "ease", "fusion")


class RunFolderError(RecagentError):
    """The --out folder holds something this run must not change."""


def finetune(cfg: Any, out: str | Path, *, dataset: str | None = None, items: str | None = None,
             interactions: str | None = None, users: str | None = None, images: str | None = None,
             steps: int | None = None, resume: bool = False, quiet: bool = False,
             log_fn: Callable[[str], None] = log.info, text_encoder: Any = None,
             stop_after: str | None = None) -> dict:
    """Run (or continue) every stage for one domain; returns ``{stage: marker}``.

    Args:
        cfg: the resolved config.
        out: the run folder (``runs/NAME``).
        dataset: a built-in data set name, instead of files.
        items, interactions, users: the domain's files.
        images: folder the catalog's ``image_path`` values are relative to (CLIP stage).
        steps: LoRA optimizer steps (a quick run); None = ``finetune.steps`` / epochs.
        resume: continue the run already in ``out`` (required when it exists).
        quiet: no progress bars.
        text_encoder: an encoder to use instead of the configured one (tests).
        stop_after: run the stages up to and including this one.
    """
    from recagent.runs import check_fingerprint, layout, record_run, write_fingerprint

    lay = layout(cfg, run=out)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        _check_launcher(world)
    if world > 1 and rank > 0:
        return _lora_worker(cfg, lay, steps, rank, world, log_fn)
    if resume and not (dataset or items or interactions) and (lay.root / "config.toml").is_file():
        cfg = _saved_data(cfg, lay.root / "config.toml")  # `--out X --resume` alone continues X's data
    cfg = _data_config(cfg, dataset, items, interactions, users)
    if images:
        if not Path(images).is_dir():
            from recagent.errors import ConfigError

            raise ConfigError(f"--images {images}: not a folder; give the folder the catalog's image_path values are in.")
        cfg = cfg.replace("data", images_dir=str(Path(images).resolve()))
    _check_out(lay.root, resume)
    ds = _load(cfg, log_fn)  # the data layer's one-line errors; nothing written yet
    from recagent.agent.vocab import nouns_for

    nouns = nouns_for(ds, cfg.data)
    if images and not ds.catalog.has_images:
        log_fn(f"finetune: --images {images}: no catalog image was found there, so the CLIP stage has nothing to train on")
    if not cfg.data.item_noun:  # the run records what its items are called, for chat --run
        cfg = cfg.replace("data", item_noun=nouns.item, category_noun=nouns.category)
    if (lay.root / "data.json").is_file():
        check_fingerprint(lay.root, ds, "this finetune run", f"choose another --out for these files (or delete {lay.root}).")
    lay.stages.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}

    def stage(name: str, fn: Callable[[], dict]) -> None:
        marker = lay.stages / f"{name}.json"
        if marker.is_file():
            done[name] = json.loads(marker.read_text(encoding="utf-8"))
            log_fn(f"finetune: {name}: done earlier, skipped")
            return
        log_fn(f"finetune: {name} ...")
        t0 = time.time()
        info = fn() or {}
        _release_memory()  # what a stage left behind is garbage; give it back before the next (LoRA peaks)
        info = {"stage": name, "seconds": round(time.time() - t0, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        marker.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        done[name] = info

    def validate() -> dict:
        record_run(cfg, lay.root, "recagent finetune", {"out": str(lay.root), "steps": steps, "images": images})
        write_fingerprint(lay.root, ds)
        return {"dataset": ds.name, "users": int(ds.n_users), "items": int(ds.n_items),
                "interactions": int(len(ds.interactions.df)), "warnings": list(ds.warnings),
                "item_noun": nouns.item, "category_noun": nouns.category}

    def index() -> dict:
        from recagent.retrieval import ItemIndex

        kw = {} if text_encoder is None else {"text_encoder": text_encoder, "clip_encoder": None}
        idx = ItemIndex.open(cfg, ds, path=lay.index, log_fn=log_fn, **kw)
        return idx.build(ds, progress=not quiet, log_fn=log_fn).to_dict()

    def rankers() -> dict:
        from recagent.ranking.train import train

        info: dict[str, Any] = {}
        try:
            t = train(cfg, ds, "B", list(RANKER_MODELS), layout=lay, log=log_fn, encoder=text_encoder,
                      command="recagent finetune")
        except Exception as exc:  # noqa: BLE001 - a tiny log may not support fusion; keep the baselines
            log_fn(f"finetune: rankers: fusion failed ({exc}); training the baselines only")
            info["fusion_error"] = str(exc)
            t = train(cfg, ds, "B", [m for m in RANKER_MODELS if m != "fusion"], layout=lay, log=log_fn,
                      encoder=text_encoder, command="recagent finetune")
        info["valid_ndcg@10"] = {k: round(float(v), 4) for k, v in t.valid.items()}
        return info

    def clip() -> dict:
        from recagent.finetune.clip_train import ClipTrainError, pairs_from_catalog, train_catalog_clip

        try:
            n = len(pairs_from_catalog(ds.catalog))
        except ClipTrainError:
            n = 0
        if n < 2:
            return {"skipped": "the catalog has fewer than 2 items with images"}
        # the run's CLIP goes to its own clip/ folder; models.clip_checkpoint points chat --run at it
        res = train_catalog_clip(cfg, None, out_dir=lay.clip, resume=True, progress=not quiet, log_fn=log_fn)
        return {"result": res}

    def llm_data() -> dict:
        from recagent.finetune.llm_data import build_llm_data

        llm = _base_llm(cfg) if cfg.finetune.reason_sample_sheets > 0 else None
        return build_llm_data(ds, cfg.finetune, nouns, lay.root / "llm_data", llm=llm,
                              like_threshold=cfg.agent.like_threshold, quiet=quiet, log_fn=log_fn,
                              encoder=text_encoder if text_encoder is not None else _text_encoder(cfg),
                              embed_cache=cfg.paths.cache / "embeddings")

    def lora() -> dict:
        res, meta = _train_lora(cfg, lay, steps, quiet, log_fn)
        record_run(cfg, lay.adapter, "recagent finetune (lora)", {"data_hash": meta["data_hash"]})
        fast = _convert_fast(lay.merged, log_fn)
        # the run's config.toml now names the tuned model: whatever serves the run (chat --run reads
        # config.toml) gets the merged model, for either backend
        run_config(cfg, lay.root).save(lay.root / "config.toml")
        return {k: v for k, v in res.items() if k != "losses"} | {"fast_backend": fast}

    def evaluate() -> dict:
        from recagent.finetune.report import evaluate_llm

        res = evaluate_llm(cfg, ds, nouns, _base_llm(cfg, temperature=0.0), _base_llm(cfg, 0.0, tuned=lay),
                           lay.root / "llm_data", encoder=text_encoder, quiet=quiet, log_fn=log_fn)
        (lay.root / "eval.json").write_text(json.dumps(res, indent=2), encoding="utf-8")
        return {"summary": res.get("summary", {})}

    def report() -> dict:
        from recagent.finetune.report import write_report

        paths = write_report(lay, done)
        return {"files": [str(p) for p in paths]}

    plan = [("validate", validate), ("index", index), ("rankers", rankers), ("clip", clip), ("llm_data", llm_data),
            ("lora", lora), ("eval", evaluate), ("report", report)]
    for name, fn in plan:
        stage(name, fn)
        if stop_after == name:
            break
    return done


def _train_lora(cfg: Any, lay: Any, steps: int | None, quiet: bool, log_fn: Callable[[str], None]) -> tuple[dict, dict]:
    """The LoRA stage's training on the run's ``llm_data`` (every process of a launcher runs it)."""
    from recagent.finetune.llm_data import META_FILE, TRAIN_FILE, read_examples
    from recagent.finetune.lora import train_lora
    from recagent.models import resolve_model

    meta = json.loads((lay.root / "llm_data" / META_FILE).read_text(encoding="utf-8"))
    examples = read_examples(lay.root / "llm_data" / TRAIN_FILE)
    base = resolve_model(cfg.models.llm, cfg.paths.cache)
    res = train_lora(base, examples, lay.adapter, lay.root / "checkpoints", cfg.finetune, meta["data_hash"],
                     merged_dir=lay.merged, steps=steps, resume=True, quiet=quiet, log_fn=log_fn)
    return res, meta


def _check_launcher(world: int) -> None:
    """Before any stage: accelerate runs CPU processes together only with ACCELERATE_USE_CPU
    (what `accelerate launch --cpu` sets); without it each would train alone, over the others."""
    import torch

    if not torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        from recagent.finetune.lora import FinetuneError

        raise FinetuneError(f"WORLD_SIZE is {world} on a machine without GPUs: set ACCELERATE_USE_CPU=1 so the "
                            f"processes train together (or run one process).")


def _lora_worker(cfg: Any, lay: Any, steps: int | None, rank: int, world: int, log_fn: Callable[[str], None],
                 poll_s: float = 1.0) -> dict:
    """A launcher's process ``rank`` > 0: wait until the first process has finished the stages
    before LoRA, then train with it. (If the first process fails, the launcher stops this one.)"""
    before = STAGES[:STAGES.index("lora")]
    log_fn(f"finetune: process {rank} of {world}: waiting for the first process's {', '.join(before)} stages")
    while not (lay.stages / "lora.json").is_file():
        if all((lay.stages / f"{name}.json").is_file() for name in before):
            res, _ = _train_lora(cfg, lay, steps, True, log_fn)
            return {"lora": {"process": rank, "processes": res.get("processes"), "trained_steps": res.get("trained_steps")}}
        time.sleep(poll_s)
    return {}


def run_config(cfg: Any, run: str | Path) -> Any:
    """The config that serves a finetune run (see `recagent.runs.run_config`)."""
    from recagent.runs import run_config as serving_config

    return serving_config(cfg, run)


def stage_status(run: str | Path) -> dict[str, bool]:
    """Which stages of a run folder have finished."""
    d = Path(run) / "stages"
    return {s: (d / f"{s}.json").is_file() for s in STAGES}


def _saved_data(cfg: Any, path: Path) -> Any:
    from dataclasses import asdict

    from recagent.config import load_config

    return cfg.replace("data", **asdict(load_config(path).data))


def _data_config(cfg: Any, dataset: str | None, items: str | None, interactions: str | None, users: str | None) -> Any:
    from recagent.errors import ConfigError

    if dataset and (items or interactions):
        raise ConfigError("--dataset and --items/--interactions: give one of them.")
    if items or interactions:
        if not (items and interactions):
            raise ConfigError("finetune needs both --items FILE and --interactions FILE (or --dataset NAME).")
        return cfg.replace("data", dataset="custom", items=str(Path(items).resolve()),
                           interactions=str(Path(interactions).resolve()),
                           users=str(Path(users).resolve()) if users else "")
    if dataset:
        return cfg.replace("data", dataset=dataset)
    return cfg


def _check_out(root: Path, resume: bool) -> None:
    """An existing --out is continued only with --resume, and only if it is a finetune run."""
    if not root.exists() or not any(root.iterdir()):
        return
    if not (root / "stages").is_dir():
        raise RunFolderError(f"{root} exists and is not a finetune run folder; choose another --out.")
    if not resume:
        finished = [p.stem for p in sorted((root / "stages").glob("*.json"))]
        raise RunFolderError(f"{root} already holds a finetune run (finished: {', '.join(finished) or 'none'}); "
                             f"add --resume to continue it, or choose another --out.")


def _load(cfg: Any, log_fn: Callable[[str], None]) -> Any:
    from recagent.data import load_dataset
    from recagent.errors import DataError

    ds = load_dataset(cfg, log_fn=log_fn)
    if ds.n_users == 0 or len(ds.interactions.df) == 0:
        raise DataError(f"{cfg.data.interactions or ds.name}: no interactions left to learn from; "
                        "check that its item ids are the catalog's.")
    return ds


def _base_llm(cfg: Any, temperature: float | None = None, tuned: Any = None) -> Any:
    """The local LLM for sampling and evaluation, on the chat's configured backend: 'ct2' (the
    fast int8 path the chat serves; a tuned run is its merged model, converted by the lora
    stage) or 'hf' (transformers; a tuned run is its adapter over the base).

    Args:
        temperature: sampling temperature (None = ``finetune.reason_temperature``).
        tuned: the `RunLayout` whose adapter / merged model to load; None = the base.
    """
    t = cfg.finetune.reason_temperature if temperature is None else temperature
    if cfg.models.llm_backend == "ct2":
        from recagent.agent.llm_ct2 import CT2Model

        c = cfg if tuned is None else cfg.replace("models", llm=str(tuned.merged), llm_adapter="")
        c = c.replace("agent", temperature=t, max_new_tokens=cfg.agent.explain_max_new_tokens)
        return CT2Model.from_config(c)
    from recagent.agent.llm import HFModel
    from recagent.models import resolve_model

    path = resolve_model(cfg.models.llm, cfg.paths.cache)
    adapter = str(tuned.adapter) if tuned is not None else cfg.models.llm_adapter
    return HFModel(path, adapter=adapter, device=cfg.models.device,
                   max_new_tokens=cfg.agent.explain_max_new_tokens, max_seconds=cfg.agent.max_seconds, temperature=t)


def _release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise, so
    the rankers' and sampler's memory would stay in the LoRA stage's peak RSS)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def _text_encoder(cfg: Any) -> Any:
    from recagent.retrieval.encoders import TextEncoder

    return TextEncoder.from_config(cfg)


def _convert_fast(merged: Path, log_fn: Callable[[str], None]) -> str:
    """The merged model converted for the fast CPU backend, when that backend is installed."""
    try:
        from recagent.models import convert_for_fast_backend
    except ImportError:
        return "not available (recagent.models.convert_for_fast_backend missing)"
    try:
        return str(convert_for_fast_backend(merged, log_fn=log_fn))
    except Exception as exc:  # noqa: BLE001 - the transformers path still serves the run
        log_fn(f"finetune: fast backend conversion failed ({exc}); the chat uses the adapter with transformers")
        return f"failed: {exc}"
