"""The chat server's login: where the password comes from (``--auth``, ``--auth-file``, or
``$RECAGENT_AUTH``, so it need not show in ``ps``) and `LoginThrottle`, Gradio's ``auth=``
callable that makes each failed try after the first few wait longer (per user name and per
client address).
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from recagent.errors import ConfigError

log = logging.getLogger("recagent.ui")

AUTH_ENV = "RECAGENT_AUTH"
# Backoff after the free failures: 1 s, 2 s, 4 s, ... up to 5 minutes (an online guesser gets
# about 300 tries a day per name and per address instead of thousands a second).
BASE_DELAY_S = 1.0
MAX_DELAY_S = 300.0

# The client address of the login request being checked (set by `ClientAddress`, read by
# `LoginThrottle`): Gradio calls ``auth(user, password)`` without the request.
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("recagent_login_client", default="?")


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """``"USER:PASS"`` -> ``("USER", "PASS")``; None stays None.

    Args:
        auth: the ``--auth`` value (or a file's first line, or ``$RECAGENT_AUTH``).
    """
    if auth is None or auth == "":
        return None
    user, sep, password = str(auth).partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth: expected USER:PASS with a non-empty user and password, e.g. --auth alice:s3cret.")
    return user, password


def resolve_auth(auth: str | None = None, auth_file: str | Path | None = None,
                 environ: dict | None = None) -> str | None:
    """The ``USER:PASS`` to serve with: ``--auth``, else the first line of ``--auth-file``, else
    ``$RECAGENT_AUTH``; None when none is given.

    Args:
        auth: the ``--auth`` value (visible to other local users in ``ps``; prefer the others).
        auth_file: a file whose first line is ``USER:PASS`` (keep it ``chmod 600``).
        environ: the environment (default ``os.environ``).
    """
    if auth:
        return auth
    if auth_file:
        p = Path(auth_file).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--auth-file {p}: cannot read it ({exc.strerror or exc}); write USER:PASS on its "
                              "first line.") from None
        line = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not line:
            raise ConfigError(f"--auth-file {p}: the file is empty; write USER:PASS on its first line.")
        parse_auth(line)
        return line
    env = os.environ if environ is None else environ
    return env.get(AUTH_ENV) or None


class LoginThrottle:
    """Gradio's ``auth=`` callable for one ``USER:PASS``: a constant-time comparison, and after
    ``free`` failures for a user name or a client address, every further try within the backoff
    window is refused without checking (even the right password), the window doubling per failure.

    Args:
        creds: ``(user, password)``.
        free: failures allowed before backoff starts (``ui.login_attempts``).
        clock: seconds (monotonic); a fake in tests.
    """

    def __init__(self, creds: tuple[str, str], free: int = 3, clock: Callable[[], float] = time.monotonic):
        self.user, self.password = creds
        self.free = max(0, int(free))
        self.clock = clock
        self._fails: dict[str, tuple[int, float]] = {}   # key -> (failures, locked until)
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        keys = [f"user:{username}", f"addr:{CLIENT.get()}"]
        now = self.clock()
        with self._lock:
            if any(self._fails.get(k, (0, 0.0))[1] > now for k in keys):
                log.warning("login for %r from %s refused: too many failed tries, backing off", username, CLIENT.get())
                return False
            ok = hmac.compare_digest(username.encode(), self.user.encode()) & \
                hmac.compare_digest(password.encode(), self.password.encode())
            if ok:
                for k in keys:
                    self._fails.pop(k, None)
                return True
            for k in keys:
                n = self._fails.get(k, (0, 0.0))[0] + 1
                wait = 0.0 if n <= self.free else min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (n - self.free - 1))
                self._fails[k] = (n, now + wait)
            return False

    def wait_s(self, username: str, address: str = "?") -> float:
        """Seconds until ``username`` from ``address`` may try again (0.0 = now)."""
        now = self.clock()
        with self._lock:
            return max([0.0] + [self._fails.get(k, (0, 0.0))[1] - now for k in (f"user:{username}", f"addr:{address}")])


class ClientAddress:
    """ASGI middleware: remembers the client address of each request in `CLIENT` for the login check."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and scope.get("client"):
            token = CLIENT.set(str(scope["client"][0]))
            try:
                await self.app(scope, receive, send)
            finally:
                CLIENT.reset(token)
            return
        await self.app(scope, receive, send)
