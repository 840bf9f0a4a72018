"""ChromaDB plumbing for the item index: clients, collection names, per-item hashes and metadata,
and the translation of Chroma's own errors into one-line ``IndexError_`` messages."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import numpy as np

from recagent.errors import ConfigError, IndexError_, RecagentError

_PAGE = 5000  # rows per `get` page when listing a collection
_opened: dict[str, tuple[int, int] | None] = {}  # folder -> its sqlite file's (device, inode) when this process opened it


def collection_name(key: str, channel: str) -> str:
    """``<data set key>-<channel>`` with characters Chroma rejects replaced."""
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "_", key).strip("._-") or "items"
    return f"{slug}-{channel}"


@contextmanager
def chroma_errors(location: str, fix: str) -> Iterator[None]:
    """Turn an exception raised inside Chroma (a damaged sqlite file, an unreadable HNSW segment)
    into one ``IndexError_`` line naming the index folder and the command that repairs it."""
    try:
        yield
    except RecagentError:
        raise
    except Exception as exc:  # noqa: BLE001 - chromadb raises its own types and sqlite3's
        if not is_chroma_error(exc):
            raise
        raise IndexError_(f"index {location} is damaged or unreadable ({describe_error(exc)}); "
                          f"repair it: {fix}") from None


def is_chroma_error(exc: BaseException) -> bool:
    """An exception raised by Chroma itself (or its sqlite), not by recagent's own code."""
    if isinstance(exc, sqlite3.DatabaseError):
        return True
    return (type(exc).__module__ or "").startswith(("chromadb", "chromadb_rust_bindings", "hnswlib"))


def describe_error(exc: BaseException) -> str:
    """``Type: last line of the message`` (Chroma's messages nest the cause last), shortened."""
    last = (str(exc).strip().splitlines() or [""])[-1].strip()
    return f"{type(exc).__name__}: {last[:160]}"


def stored_hashes(col, page: int = _PAGE) -> dict[str, str]:
    """Item id -> content hash of every item stored in a collection."""
    out: dict[str, str] = {}
    offset = 0
    while True:
        got = col.get(include=["metadatas"], limit=page, offset=offset)
        for i, m in zip(got["ids"], got["metadatas"]):
            out[i] = (m or {}).get("hash", "")
        if len(got["ids"]) < page:
            return out
        offset += page


def missing_embeddings(col, page: int = 1000) -> list[str]:
    """Ids stored without a usable embedding (absent, wrong length, not finite, zero): what two
    concurrent writers left behind before the index was locked."""
    bad: list[str] = []
    dim = int((col.metadata or {}).get("dim", 0))
    offset = 0
    while True:
        got = col.get(include=["embeddings"], limit=page, offset=offset)
        embs = got.get("embeddings")
        if embs is None or len(embs) != len(got["ids"]):
            return bad + list(got["ids"])
        for i, e in zip(got["ids"], embs):
            v = np.asarray(e, dtype=np.float32) if e is not None else np.zeros(0, np.float32)
            if v.size == 0 or (dim and v.size != dim) or not np.isfinite(v).all() or not v.any():
                bad.append(i)
        if len(got["ids"]) < page:
            return bad
        offset += page


def item_meta(item_id: str, title: Any, categories: Any, year: Any) -> dict[str, Any]:
    """The metadata stored with an item (filters read ``categories`` and ``year``)."""
    meta: dict[str, Any] = {"item_id": item_id, "title": str(title)}
    cats = [str(c) for c in (categories if categories is not None else ())]
    if cats:  # Chroma rejects empty arrays; a missing key passes $not_contains and fails $contains
        meta["categories"] = cats
    try:
        if year is not None and not (isinstance(year, float) and np.isnan(year)) and str(year) != "<NA>":
            meta["year"] = int(year)
    except (TypeError, ValueError):
        pass
    return meta


def content_hash(encoder_name: str, channel: str, content: Any, meta: dict) -> str:
    """digest(encoder, channel, content, metadata): a build re-embeds an item when this changes."""
    if channel == "image":  # path + size + mtime: a rewritten file is re-embedded without reading every image
        p = Path(content)
        st = p.stat() if p.exists() else None
        content = f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}"
    blob = json.dumps([encoder_name, channel, str(content), meta], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=12).hexdigest()


def persistent_client(folder: Path):
    """An embedded Chroma store in ``folder`` (created).

    Chroma keeps one store per path and process; when another process has deleted and rebuilt
    the folder since (``index build --rebuild``), the kept one reads deleted files, so it is
    dropped first (the sqlite file's inode tells)."""
    import chromadb
    from chromadb.config import Settings

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "chroma.sqlite3"
    before = _inode(db)
    if str(folder) in _opened and _opened[str(folder)] != before:
        forget_client(folder)
    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    _opened[str(folder)] = _inode(db)
    return client


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def forget_client(folder: Path) -> None:
    """Drop this process's cached Chroma system for ``folder`` (before the folder is deleted and
    recreated: Chroma keeps one system per path and would keep using the deleted files)."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient as shared
    except ImportError:  # pragma: no cover - other chromadb layouts
        return
    key = str(folder)
    _opened.pop(key, None)
    system = shared._identifier_to_system.pop(key, None)
    shared._identifier_to_refcount.pop(key, None)
    if system is not None:
        try:
            system.stop()
        except Exception:  # noqa: BLE001 - a damaged store may fail to stop; it is being deleted anyway
            pass


def http_client(url: str):
    """A client of a Chroma server (``chroma run``), checked with a heartbeat."""
    import chromadb
    from chromadb.config import Settings

    u = urlparse(url if "://" in url else f"http://{url}")
    if not u.hostname:
        raise ConfigError(f"retrieval.chroma_url: '{url}' is not a URL; use e.g. http://127.0.0.1:8000.")
    port = u.port or (443 if u.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(host=u.hostname, port=port, ssl=u.scheme == "https",
                                     settings=Settings(anonymized_telemetry=False))
        client.heartbeat()
    except Exception as exc:  # noqa: BLE001 - connection errors vary by transport
        raise IndexError_(f"retrieval.chroma_url: cannot reach Chroma at {url} ({type(exc).__name__}); start it with "
                          f"`chroma run --host 127.0.0.1 --port {port} --path DIR` or leave chroma_url empty.") from None
    return client


def filter_table(col, page: int = _PAGE) -> dict[str, tuple[frozenset, int | None]]:
    """Item id -> (categories, year) of every item in a collection (what post-filtering reads)."""
    table: dict[str, tuple[frozenset, int | None]] = {}
    offset = 0
    while True:
        got = col.get(include=["metadatas"], limit=page, offset=offset)
        for i, m in zip(got["ids"], got["metadatas"]):
            m = m or {}
            table[i] = (frozenset(m.get("categories") or ()), m.get("year"))
        if len(got["ids"]) < page:
            return table
        offset += page
