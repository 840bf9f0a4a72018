"""The run-folder layout (the one place that builds run paths) and data fingerprints.

Every command that saves or loads something under the runs folder asks this module where::

    <runs>/<dataset key>/index/                          ChromaDB (one writer at a time)
    <runs>/<dataset key>/models/<protocol>/<model>/      weights + model.json + config.toml + data.json
    <runs>/<name>/  (a finetune run, ``--run DIR``)       the same sub-layout, plus stages/,
                                                         adapter/ (peft), merged/, report/

A dataset's key is its built-in name (``ml-100k``) or ``custom-<folder>`` for the user's own
files, so custom data in a folder that happens to be called ``ml-100k`` never meets the built-in
models. Whatever is saved carries ``data.json``, the fingerprint of the catalog and log it was
built from; :func:`check_fingerprint` refuses a saved thing whose data has changed since.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from recagent.errors import RecagentError
from recagent.paths import atomic_write_text

FINGERPRINT_FILE = "data.json"


class StaleRunError(RecagentError):
    """A saved model or index was built from other data than the data set in use."""


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run root (a data set's folder under ``<runs>`` or a named run)."""

    root: Path

    @property
    def index(self) -> Path:
        return self.root / "index"

    def models(self, protocol: str) -> Path:
        return self.root / "models" / protocol.upper()

    def model(self, protocol: str, name: str) -> Path:
        return self.models(protocol) / name

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def clip(self) -> Path:
        return self.root / "clip"

    @property
    def cache(self) -> Path:
        """Derived per-run caches (embedding matrices, profiles); safe to delete."""
        return self.root / "cache"


def dataset_key(dataset: Any) -> str:
    """The run-folder name of a data set: its built-in name, or ``custom-<slug>``."""
    from recagent.data.builtin import BUILTIN

    name = str(getattr(dataset, "name", dataset))
    if getattr(dataset, "builtin", name in BUILTIN) and name in BUILTIN:
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "data"
    return slug if slug.startswith("custom") else f"custom-{slug}"


def layout(cfg: Any, dataset: Any = None, run: str | Path | None = None) -> RunLayout:
    """The layout of a named run (``--run DIR``) or of ``dataset``'s folder under ``<runs>``."""
    if run is not None:
        return RunLayout(Path(run))
    if getattr(cfg.paths, "run", ""):  # serving a named run (`--run DIR`): its own index and models
        return RunLayout(Path(cfg.paths.run))
    if dataset is None:
        raise ValueError("layout() needs a dataset or a run folder")
    return RunLayout(Path(cfg.paths.runs) / dataset_key(dataset))


def run_config(cfg: Any, run: str | Path, overrides: Sequence[str] = ()) -> Any:
    """The config that serves a run folder (``--run DIR``): the run's recorded ``config.toml``
    (its data, nouns and models) with ``paths.run`` pointing at the folder, so its own index and
    trained models are used; its tuned LLM once the LoRA stage has finished (the merged folder
    as ``models.llm``; the adapter alone, with the transformers backend, if only that exists);
    its CLIP checkpoint if one was trained. ``overrides`` (the command's ``--set``) apply last.
    """
    from recagent.config import load_config
    from recagent.errors import ConfigError

    lay = RunLayout(Path(run).expanduser())
    saved = lay.root / "config.toml"
    if not saved.is_file():
        raise ConfigError(f"--run {run}: no config.toml in that folder; pass a folder written by `recagent finetune "
                          f"--out` (or another recagent command).")
    rc = load_config(saved).replace("paths", cache_dir=str(cfg.paths.cache), run=str(lay.root.resolve()))
    if (lay.merged / "config.json").is_file():
        # base + adapter merged: both backends load it (ct2 from merged/ct2-int8, converted by the lora stage)
        rc = rc.replace("models", llm=str(lay.merged.resolve()), llm_adapter="")
    elif (lay.adapter / "adapter_config.json").is_file():
        rc = rc.replace("models", llm_adapter=str(lay.adapter.resolve()), llm_backend="hf")
    clip = lay.clip / "clip.pt"
    if clip.is_file() and not rc.models.clip_checkpoint:
        rc = rc.replace("models", clip_checkpoint=str(clip.resolve()))
    if overrides:
        from recagent.config import apply_overrides

        rc = apply_overrides(rc, overrides)
    return rc


def run_dir(cfg: Any, *parts: str, create: bool = True) -> Path:
    """``<runs>/<parts...>``; created on demand (for outputs that are not per data set)."""
    d = Path(cfg.paths.runs).joinpath(*parts)
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def record_run(cfg: Any, directory: Path, command: str, extra: dict | None = None) -> Path:
    """Write ``config.toml`` (the resolved config) and ``run.json`` (what ran, when) into
    ``directory``, so every output can be traced back to the settings that produced it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg.save(directory / "config.toml")
    from recagent import __version__

    meta = {"command": command, "recagent": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {})}
    atomic_write_text(directory / "run.json", json.dumps(meta, indent=2, default=str))
    return directory


def fingerprint(dataset: Any, parts: tuple[str, ...] = ("catalog", "interactions")) -> dict[str, Any]:
    """What a saved thing records about its data: content hashes and sizes."""
    fp: dict[str, Any] = {"dataset": dataset_key(dataset)}
    if "catalog" in parts:
        fp["catalog"] = dataset.catalog.fingerprint
        fp["n_items"] = int(dataset.n_items)
    if "interactions" in parts:
        fp["interactions"] = dataset.interactions.fingerprint
        fp["n_users"] = int(dataset.n_users)
    return fp


def write_fingerprint(directory: Path, dataset: Any, parts: tuple[str, ...] = ("catalog", "interactions")) -> None:
    """Save ``data.json`` beside a model or index."""
    atomic_write_text(Path(directory) / FINGERPRINT_FILE, json.dumps(fingerprint(dataset, parts), indent=2))


def check_fingerprint(directory: Path, dataset: Any, what: str, fix: str,
                      parts: tuple[str, ...] = ("catalog", "interactions")) -> None:
    """Raise :class:`StaleRunError` when ``directory`` was built from other data.

    Args:
        directory: the saved model or index folder.
        dataset: the data set in use now.
        what: what is saved there, for the message ("the fusion model").
        fix: the command that rebuilds it, ending the message.
        parts: which parts of the data it depends on (an index only on the catalog).
    """
    path = Path(directory) / FINGERPRINT_FILE
    if not path.is_file():
        raise StaleRunError(f"{what} in {directory} has no data fingerprint ({FINGERPRINT_FILE}); it may come from "
                            f"other data. Rebuild it: {fix}")
    saved = json.loads(path.read_text(encoding="utf-8"))
    now = fingerprint(dataset, parts)
    for key in parts:
        if saved.get(key) != now.get(key):
            raise StaleRunError(f"{what} in {directory} was built from a different {key} "
                                f"({saved.get(key)} there, {now.get(key)} now); rebuild it: {fix}")


def is_current(directory: Path, dataset: Any, parts: tuple[str, ...] = ("catalog", "interactions")) -> bool:
    """True when ``directory`` holds a fingerprint that matches ``dataset``."""
    try:
        check_fingerprint(directory, dataset, "", "", parts)
    except StaleRunError:
        return False
    return True
