"""Inter-process file locks (``fcntl.flock``) with a timeout and a one-line error naming the holder.

One writer at a time, many readers::

    from recagent.locks import file_lock

    with file_lock(folder.with_name("index.lock"), timeout=300, what=f"index {folder}"):
        ...  # write; readers taking file_lock(..., shared=True) wait until this block ends

The lock lives in a small file beside what it protects (so the protected folder can be deleted
and recreated while the lock is held). The exclusive holder writes its pid, command line and
start time into the file, so a process that gives up waiting can say who holds the lock. A lock
dies with its process (also on SIGKILL): no stale locks to clean up. Re-taking a lock this thread
already holds (same or weaker mode) is a no-op, so locked functions may call each other.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from recagent.errors import RecagentError

_POLL_S = 0.1  # how often a waiting process retries (flock has no timed wait)
_SAY_EVERY_S = 30.0  # how often a waiting process repeats its progress message
_held = threading.local()  # path -> "shared" | "exclusive", per thread (re-entrancy)


class LockTimeout(RecagentError):
    """Another process held a lock for longer than the caller was willing to wait."""


@contextmanager
def file_lock(path: str | Path, *, shared: bool = False, timeout: float = 300.0, what: str = "",
              on_wait: Callable[[str], None] | None = None, fix: str = "") -> Iterator[None]:
    """Hold an exclusive (or shared) ``flock`` on ``path`` for the ``with`` block.

    Args:
        path: the lock file (created, with its folder, if missing).
        shared: a reader's lock: any number of readers, no writer.
        timeout: seconds to wait for the lock before raising :class:`LockTimeout` (0: do not wait).
        what: what the lock protects, for messages ("index runs/ml-100k/index").
        on_wait: receives a progress line when this process has to wait (and every 30 s after).
        fix: the end of the timeout message (default: wait for the holder to finish and try again).
    """
    import fcntl

    path = Path(path)
    key = str(path.resolve())
    table = _table()
    mode = "shared" if shared else "exclusive"
    if table.get(key) == "exclusive" or table.get(key) == mode:
        yield  # this thread already holds it (re-entrant call)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, path, timeout, what or str(path), on_wait, fix)
        if not shared:
            _write_holder(fd)
        table[key] = mode
        try:
            yield
        finally:
            del table[key]
            if not shared:
                os.ftruncate(fd, 0)  # the next waiter must not blame a process that has finished
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(path: str | Path) -> str:
    """Who holds the exclusive lock on ``path``: ``pid 123 (recagent index build, since 21:30:02)``,
    or ``another process`` when the file names nobody (readers do not write their names)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid") or not _alive(int(info["pid"])):  # a killed writer leaves its name behind
        return "another process (reading it)"
    return f"pid {info['pid']} ({info.get('command', '?')}, since {info.get('since', '?')})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _table() -> dict[str, str]:
    if not hasattr(_held, "table"):
        _held.table = {}
    return _held.table


def _acquire(fd: int, op: int, path: Path, timeout: float, what: str, on_wait, fix: str) -> None:
    import fcntl

    t0 = time.monotonic()
    said = None
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - t0
        if waited >= timeout:
            end = fix or "wait for it to finish and try again"
            raise LockTimeout(f"{what} is locked by {holder(path)}; gave up after {waited:.0f} s "
                              f"(lock file {path}); {end}.")
        if on_wait is not None and (said is None or time.monotonic() - said >= _SAY_EVERY_S):
            on_wait(f"{what} is in use by {holder(path)}; waiting up to {timeout:.0f} s ...")
            said = time.monotonic()
        time.sleep(min(_POLL_S, max(0.0, timeout - waited)))


def _write_holder(fd: int) -> None:
    argv = [os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]
    cmd = " ".join(argv)
    info = {"pid": os.getpid(), "command": cmd[:120] + ("..." if len(cmd) > 120 else ""),
            "since": time.strftime("%H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
