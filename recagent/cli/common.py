"""Shared CLI plumbing: ``--config`` / ``--set`` / ``--json`` / ``--quiet`` on every command,
config resolution, output helpers and one-line errors."""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import click

from recagent.config import Config, load_config


@dataclass
class Run:
    """What every command receives: the resolved config and the output switches."""

    config: Config
    json: bool
    quiet: bool
    overrides: tuple[str, ...] = ()

    def serve_run(self, folder: str | None) -> Config:
        """With ``--run DIR``: the config that serves that run folder (its data, index, trained
        models and tuned LLM; this command's ``--set`` still wins); else the command's config."""
        if not folder:
            return self.config
        from recagent.runs import run_config

        self.config = run_config(self.config, folder, self.overrides)
        return self.config

    def log(self, msg: str) -> None:
        """Progress for people, on stderr (hidden by --quiet and --json)."""
        if not self.quiet and not self.json:
            click.echo(msg, err=True)

    def emit(self, data: Any, human: Callable[[Any], str] | str | None = None) -> None:
        """Print ``data`` as JSON with --json, else the human rendering."""
        if self.json:
            click.echo(json.dumps(data, indent=None, default=_json_default, ensure_ascii=False))
        elif human is not None:
            click.echo(human(data) if callable(human) else human)
        else:
            click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def common_options(func: Callable) -> Callable:
    """Add --config/--set/--json/--quiet; the command gets ``run: Run`` as first argument."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  envvar="RECAGENT_CONFIG", help="TOML config file (see `recagent config show`).")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config value, e.g. --set data.positive_threshold=3.5 (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress output.")
    @functools.wraps(func)
    def wrapper(config_path, overrides, as_json, quiet, **kwargs):
        cfg = load_config(config_path, overrides)
        if cfg.models.threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(cfg.models.threads))
        return func(Run(cfg, as_json, quiet, tuple(overrides)), **kwargs)

    return wrapper


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def run_option(func: Callable) -> Callable:
    """``--run DIR``: serve/evaluate a run folder (``recagent finetune --out``) instead of a data set."""
    return click.option("--run", "run_folder", default=None, type=click.Path(file_okay=False, exists=True),
                        help="A run folder (recagent finetune --out): its data, index, rankers and tuned LLM.")(func)


def fail(msg: str, code: int = 1) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)
