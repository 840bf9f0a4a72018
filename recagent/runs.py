"""Run directories: where a command's outputs go, with the resolved config written beside them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from recagent.paths import atomic_write_text


def run_dir(cfg: Any, *parts: str, create: bool = True) -> Path:
    """``<runs>/<parts...>`` (e.g. ``runs/ml-100k/index``); created on demand."""
    d = cfg.paths.runs.joinpath(*parts)
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
