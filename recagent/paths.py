"""Where recagent keeps its cache (models, data sets) and its runs (indexes, checkpoints, reports).

Defaults: ``~/.cache/recagent`` and ``./runs``; override with ``RECAGENT_CACHE_DIR`` and
``RECAGENT_RUNS_DIR`` or the config's ``[paths]`` section.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RECAGENT_CACHE_DIR"
RUNS_ENV = "RECAGENT_RUNS_DIR"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "recagent"


def default_runs_dir() -> Path:
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else Path("runs")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
