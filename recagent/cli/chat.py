"""``recagent chat``: talk to the recommender. ``--cli`` is the terminal chat (one message per
line on stdin; interactive at a terminal); without it the web UI starts (built in ``ui/``)."""

from __future__ import annotations

import sys

import click

from recagent.cli.common import Run, common_options
from recagent.errors import ConfigError

HELP = """Chat with the recommender.

\b
Examples:
  recagent chat --cli                                  new user, interactive
  recagent chat --cli --user 196                       a known ML-100K user
  echo "funny sci-fi from the 80s" | recagent chat --cli --json
  recagent chat --dataset ml-100k --known-users         web UI; visitors may pick a known user
  RECAGENT_AUTH=alice:s3cret recagent chat --host 0.0.0.0   web UI for the network, with a login
\b
With --json, one object per turn: {"reply", "items": [{"item_id", "title", "reason"}], "profile"}.
Type 'quit' (or Ctrl-D) to leave; 'reset' starts a new session.
"""


@click.command("chat", help=HELP)
@click.option("--cli", "use_cli", is_flag=True, help="Terminal chat instead of the web UI.")
@click.option("--dataset", default=None, help="Data set (default: data.dataset, e.g. ml-100k).")
@click.option("--user", "user_id", default=None, help="A known user id from the log; omit for a new user.")
@click.option("--no-llm", is_flag=True, help="Template reasons and profile only (no LLM loaded).")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False, exists=True),
              help="Serve a run folder (recagent finetune --out): its data, index, rankers and tuned LLM.")
@click.option("--host", default=None, help="Web UI bind address (default ui.host = 127.0.0.1); other hosts need --auth.")
@click.option("--port", default=None, type=int, help="Web UI port (default ui.port = 7860).")
@click.option("--auth", default=None, metavar="USER:PASS", help="Web UI login; required with a non-loopback --host "
              "(shows in `ps`: prefer --auth-file or $RECAGENT_AUTH).")
@click.option("--auth-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Web UI login read from FILE's first line (USER:PASS); or set $RECAGENT_AUTH.")
@click.option("--known-users/--no-known-users", default=None,
              help="Web UI: let visitors chat as a user of the log (default ui.known_users = off; a demo feature "
                   "for public data).")
@common_options
def chat(run: Run, use_cli: bool, dataset: str | None, user_id: str | None, no_llm: bool, **ui_options) -> None:
    if dataset and ui_options.get("run_dir"):
        raise ConfigError("--dataset and --run: give one of them (a run directory names its own data set).")
    run.serve_run(ui_options.get("run_dir"))
    if not use_cli:
        _launch_ui(run, dataset, user_id, no_llm=no_llm, **ui_options)
        return
    run_terminal_chat(run, dataset, user_id, no_llm)


def _launch_ui(run: Run, dataset: str | None, user_id: str | None, **ui_options) -> None:
    """The web UI path (owned by ui/): `recagent.ui.serve.serve` does the work."""
    from recagent.ui.serve import serve

    cfg = run.config
    if ui_options.get("no_llm"):
        cfg = cfg.replace("agent", explain_with_llm=False, profile_with_llm=False)
    serve(cfg, dataset, run=ui_options.get("run_dir"), host=ui_options.get("host"), port=ui_options.get("port"),
          auth=ui_options.get("auth"), auth_file=ui_options.get("auth_file"), known_users=ui_options.get("known_users"),
          user=user_id, log_fn=lambda m: click.echo(m, err=True))


def run_terminal_chat(run: Run, dataset: str | None, user_id: str | None, no_llm: bool = False,
                      stdin=None, out=None) -> None:
    """The terminal loop: build the agent once, then one turn per input line.

    Args:
        run: resolved config and output switches (--json, --quiet).
        dataset: data set name (None = ``data.dataset``).
        user_id: a known user id or None (cold start).
        no_llm: templates only.
        stdin, out: streams (default: sys.stdin / click.echo to stdout), for tests.
    """
    from recagent.agent.service import build_agent
    from recagent.data import load_dataset

    cfg = run.config
    if no_llm:
        cfg = cfg.replace("agent", explain_with_llm=False, profile_with_llm=False)
    stdin = stdin or sys.stdin
    interactive = stdin.isatty() and not run.json
    ds = load_dataset(cfg, dataset, log_fn=run.log)
    run.log(f"loading the agent for {ds.name} ...")
    agent = build_agent(cfg, ds)
    session = agent.new_session(user_id)
    write = (lambda s, nl=True: click.echo(s, nl=nl)) if out is None else (lambda s, nl=True: out.write(s + ("\n" if nl else "")))
    if interactive:
        who = f"user {user_id}" if user_id else "a new user"
        write(f"recagent chat ({ds.name}, {who}). Tell me what you feel like; 'quit' to leave.")
        if session.profile:
            write(f"Your profile: {session.profile['prose']}")
    while True:
        if interactive:
            write("> ", nl=False)
            sys.stdout.flush()
        line = stdin.readline()
        if not line:
            break
        message = line.rstrip("\n")
        if not message.strip():
            continue
        if message.strip().lower() in ("quit", "exit", ":q"):
            break
        if message.strip().lower() == "reset":
            session = agent.new_session(user_id)
            if not run.json:
                write("(new session)")
            continue
        stream = agent.respond_stream(session, message)
        if run.json:
            for _ in stream:
                pass
            run.emit(stream.reply.to_dict())
        else:
            for piece in stream:
                write(piece, nl=False)
                if hasattr(sys.stdout, "flush"):
                    sys.stdout.flush()
            write("")


COMMANDS = [chat]
