"""Serving the chat app: bind-address and auth checks, building the backend once per process,
and `serve()`, the click-free function behind ``recagent chat`` (without ``--cli``).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

from recagent.errors import ConfigError
from recagent.ui.auth import ClientAddress, LoginThrottle, parse_auth, resolve_auth  # noqa: F401 (parse_auth: API)

log = logging.getLogger("recagent.ui")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WIDE_WARNING = ("warning: --host {host} makes the chat reachable from other machines; anyone who can reach "
                "port {port} and knows the --auth password can use it and its models (see docs/SECURITY.md).")
ARGV_WARNING = ("warning: a password given with --auth shows in `ps` to other users of this machine; "
                "prefer --auth-file FILE or ${env}.")


@dataclass
class Server:
    """A running app: its URL, the Blocks object and the backend (``close()`` stops it)."""

    url: str
    demo: Any
    backend: Any

    def close(self) -> None:
        self.demo.close()


def check_bind(host: str, port: int, auth: str | None, warn: Callable[[str], None] = print) -> tuple[str, str] | None:
    """Refuse a non-loopback bind without ``--auth``; warn when binding wide. Returns the parsed auth.

    Args:
        host: bind address (``127.0.0.1`` by default).
        port: TCP port (1-65535).
        auth: ``USER:PASS`` or None.
        warn: where the warning goes (stderr in the CLI).
    """
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"--port {port}: not a TCP port; use a number from 1 to 65535 (default ui.port = 7860).")
    creds = parse_auth(auth)
    if host not in LOOPBACK:
        if creds is None:
            raise ConfigError(f"--host {host}: serving beyond this machine needs a password; add --auth-file FILE "
                              "(or $RECAGENT_AUTH, or --auth USER:PASS) or keep the default --host 127.0.0.1.")
        warn(WIDE_WARNING.format(host=host, port=port))
    return creds


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def make_backend(cfg, dataset: str | None = None, run: str | None = None, kind: str = "agent",
                 log_fn: Callable[[str], None] | None = None):
    """Build the backend once per process (models load here, not per session).

    Args:
        cfg: the resolved `Config`.
        dataset: built-in data set name or 'custom' (default ``cfg.data.dataset``).
        run: a run directory with a trained model/index (agent backend only).
        kind: 'agent', the real recommender (tests pass their fake backend to `launch` directly).
        log_fn: progress messages.
    """
    if kind != "agent":
        raise ConfigError(f"backend '{kind}' is unknown; use 'agent' (tests pass their own fake to `launch`).")
    from recagent.ui.agent_backend import AgentBackend

    return AgentBackend.from_config(cfg, dataset=dataset, run=run, log_fn=log_fn)


def launch(backend, cfg, host: str = "127.0.0.1", port: int | None = None, auth: str | None = None,
           block: bool = True, warn: Callable[[str], None] = print, user: str | None = None,
           known_users: bool | None = None) -> Server:
    """Build the app around ``backend`` and serve it.

    Args:
        backend: a `ChatBackend`.
        cfg: the resolved `Config` (``[ui]`` and ``[agent]`` sections are read).
        host: bind address; non-loopback needs ``auth``.
        port: TCP port (default ``cfg.ui.port``).
        auth: ``USER:PASS`` or None.
        block: True = serve until interrupted; False = return while serving in the background.
        warn: where the wide-bind warning goes.
        user: the user picked when a page opens (None = new user); needs ``known_users``.
        known_users: let visitors chat as a user of the log (default ``cfg.ui.known_users``).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from starlette.middleware import Middleware

    from recagent.ui.app import build_app, css, theme

    port = int(port if port is not None else cfg.ui.port)
    creds = check_bind(host, port, auth, warn=warn)
    known = bool(cfg.ui.known_users if known_users is None else known_users)
    demo = build_app(backend, max_cards=cfg.ui.max_cards, max_message_chars=cfg.agent.max_message_chars,
                     concurrency=cfg.ui.concurrency, title=cfg.ui.title, default_user=user, known_users=known)
    demo.queue(default_concurrency_limit=cfg.ui.concurrency)
    login = LoginThrottle(creds, free=cfg.ui.login_attempts) if creds else None
    # Only the thumbnail folder: Gradio serves everything under an allowed path, recursively.
    media = [str(d) for d in (getattr(backend, "media_dirs", None) or [])]
    try:
        demo.launch(server_name=host, server_port=port, auth=login, prevent_thread_lock=True, theme=theme(),
                    css=css(), allowed_paths=media, quiet=True, app_kwargs={"middleware": [Middleware(ClientAddress)]},
                    show_error=False, share=False, footer_links=["api", "gradio"], run_history=False)
    except OSError as exc:
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc}); pick another port with --port.") from None
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    server = Server(url=url, demo=demo, backend=backend)
    if block:
        warn(f"recagent chat on {url}  (Ctrl+C stops it)")
        try:
            demo.block_thread()
        finally:
            demo.close()
    return server


def serve(cfg, dataset: str | None = None, host: str | None = None, port: int | None = None,
          auth: str | None = None, backend: str = "agent", block: bool = True, user: str | None = None,
          log_fn: Callable[[str], None] = print, auth_file: str | None = None,
          known_users: bool | None = None, run: str | None = None) -> Server:
    """What ``recagent chat [--dataset NAME | --run DIR] [--port N] [--host H] [--auth-file F]``
    does: check the bind, load the models once, serve the Gradio app.

    Args:
        cfg: the resolved `Config`.
        dataset: a built-in data set name or 'custom' (never read as a folder: a folder named
            ``ml-100k`` in the current directory is not a run).
        run: a run directory (``--run DIR``) whose config.toml is served instead.
        host: bind address (default ``cfg.ui.host``, 127.0.0.1).
        port: TCP port (default ``cfg.ui.port``, 7860).
        auth: ``USER:PASS`` from the command line (shows in ``ps``); else ``auth_file``, else
            ``$RECAGENT_AUTH``. One of them is required when ``host`` is not loopback.
        backend: 'agent' (the only backend the server builds itself).
        block: serve until interrupted (False returns a running `Server`).
        user: a known user id picked when a page opens (None = new user).
        log_fn: progress and warnings (stderr in the CLI).
        auth_file: a file whose first line is ``USER:PASS``.
        known_users: let visitors chat as a user of the log (default ``cfg.ui.known_users``).
    """
    from recagent.ui.auth import AUTH_ENV

    host = host or cfg.ui.host
    port = int(port if port is not None else cfg.ui.port)
    if auth:
        log_fn(ARGV_WARNING.format(env=AUTH_ENV))
    auth = resolve_auth(auth, auth_file)
    check_bind(host, port, auth, warn=lambda _m: None)  # fail fast, before loading models
    known = bool(cfg.ui.known_users if known_users is None else known_users)
    if user is not None and not known:
        raise ConfigError(f"--user {user}: chatting as a known user is off in the web UI; add --known-users "
                          "(or --set ui.known_users=true) to allow it.")
    be = make_backend(cfg, dataset=dataset, run=run, kind=backend, log_fn=log_fn)
    return launch(be, cfg, host=host, port=port, auth=auth, block=block, warn=log_fn, user=user, known_users=known)
