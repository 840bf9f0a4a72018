"""``recagent config show``: the resolved configuration as commented TOML (or JSON)."""

from __future__ import annotations

import click

from recagent.cli.common import Run, common_options


@click.group("config", help="Inspect configuration.")
def config_group() -> None:
    pass


@config_group.command("show", help="Print the resolved config (defaults <- --config <- --set) as TOML with comments.")
@click.option("--no-comments", is_flag=True, help="Values only.")
@common_options
def show(run: Run, no_comments: bool) -> None:
    if run.json:
        run.emit(run.config.to_dict())
    else:
        click.echo(run.config.to_toml(comments=not no_comments))


COMMANDS = [config_group]
