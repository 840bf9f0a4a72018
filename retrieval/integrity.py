"""Is an index folder whole? The build record, HNSW file checks and a self-query probe.

A build writes ``build.json`` twice, under the index's write lock: ``complete: false`` before it
touches Chroma, and at the end (after checking that every stored id has an embedding) the
per-channel counts, encoders and a few *probe* items with their embeddings. Opening an index
then costs a few cheap checks instead of a walk over every item:

* the record says the last build finished (a killed build leaves ``complete: false``);
* each HNSW segment's files have the sizes its ``header.bin`` implies; this runs *before*
  Chroma reads them, because a truncated ``header.bin`` crashes the process inside Chroma and a
  truncated ``data_level0.bin`` silently returns wrong neighbours;
* each channel's count equals the record's;
* each probe item's stored embedding is unchanged and a query with it finds it at distance ~0.

A catalog change is caught by the catalog fingerprint (``data.json``, see ``recagent.runs``).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recagent.paths import atomic_write_text

RECORD_FILE = "build.json"
PROBES = 8  # probe items per channel: ~1 ms of queries on open, and a garbled graph rarely passes 8
_PROBE_DIST = 1e-3  # a stored vector queried against its own index: cosine distance ~1e-7
# header.bin of Chroma's persisted hnswlib segment (version int32, then hnswlib's saveIndex fields)
_HEADER = struct.Struct("<iQQQQQQiiQQQdQ")


@dataclass(frozen=True)
class Health:
    """What opening found.

    Attributes:
        state: ``ok``, ``empty`` (never built), ``incomplete`` (a build stopped midway or the
            record is missing), ``stale`` (built from another catalog or encoder) or ``damaged``.
        detail: one line saying what is wrong ("" when ok).
    """

    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def read_record(folder: Path) -> dict[str, Any] | None:
    """The build record of an index folder, or None when it has none (or it is unreadable)."""
    try:
        return json.loads((Path(folder) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def mark_building(folder: Path) -> None:
    """Record that a build is under way: until it finishes, readers treat the index as incomplete."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / RECORD_FILE, json.dumps(
        {"complete": False, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid()}))


def write_record(folder: Path, channels: dict[str, dict[str, Any]]) -> None:
    """Record a finished build: per channel ``count``, ``encoder`` and probes (see :func:`probe_of`)."""
    atomic_write_text(Path(folder) / RECORD_FILE, json.dumps(
        {"complete": True, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "channels": channels}, indent=1))


def segment_problem(folder: Path, retry_s: float = 0.2) -> str | None:
    """The first HNSW segment file whose size disagrees with its header (None: all agree).

    Reads only ``header.bin`` files and sizes: microseconds per segment, whatever the index size.
    A mismatch is looked at again after ``retry_s``: Chroma itself may be rewriting a segment in
    another reading process at that very moment.
    """
    problem = _segment_problem(Path(folder))
    if problem and retry_s > 0:
        time.sleep(retry_s)
        problem = _segment_problem(Path(folder))
    return problem


def _segment_problem(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    for seg in sorted(p for p in folder.iterdir() if p.is_dir() and len(p.name) == 36 and p.name.count("-") == 4):
        files = {p.name: p.stat().st_size for p in seg.iterdir() if p.is_file()}
        if not files:
            continue
        if "header.bin" not in files:
            return f"{seg.name}/header.bin is missing"
        if files["header.bin"] != _HEADER.size:
            return f"{seg.name}/header.bin has {files['header.bin']} bytes, expected {_HEADER.size}"
        (version, _, max_el, cur, per_el, label_off, _, _, _, _, _, _, _, _) = _HEADER.unpack(
            (seg / "header.bin").read_bytes())
        if version != 1 or not 0 < per_el < 1 << 24 or label_off + 8 != per_el or cur > max_el or max_el > 1 << 34:
            return f"{seg.name}/header.bin is garbled"
        want = {"data_level0.bin": max_el * per_el, "length.bin": max_el * 4}
        for name, size in want.items():
            if files.get(name) != size:
                have = "missing" if name not in files else f"{files[name]} bytes"
                return f"{seg.name}/{name} is {have}, expected {size} bytes"
        if cur and "link_lists.bin" not in files:
            return f"{seg.name}/link_lists.bin is missing"
    return None


def probe_of(col, ids: Sequence[str]) -> dict[str, Any]:
    """The probe entry for a channel: a few ids and their stored embeddings (float32, base64)."""
    got = col.get(ids=list(ids), include=["embeddings"])
    if got.get("embeddings") is None or not len(got["ids"]):
        return {"ids": [], "vecs": ""}
    vecs = np.asarray(got["embeddings"], dtype=np.float32)
    return {"ids": list(got["ids"]), "vecs": base64.b64encode(vecs.tobytes()).decode("ascii")}


def probe_problem(col, probe: dict[str, Any]) -> str | None:
    """Check a channel against its probe: the embeddings are unchanged and each is its own
    nearest neighbour. None when all pass."""
    ids = list(probe.get("ids") or ())
    if not ids:
        return None
    want = np.frombuffer(base64.b64decode(probe["vecs"]), dtype=np.float32).reshape(len(ids), -1)
    got = col.get(ids=ids, include=["embeddings"])
    have = dict(zip(got["ids"], got["embeddings"] if got.get("embeddings") is not None else [None] * len(got["ids"])))
    for i, v in zip(ids, want):
        e = have.get(i)
        if e is None:
            return f"item {i} has no embedding"
        if not np.allclose(np.asarray(e, dtype=np.float32), v, atol=1e-5):
            return f"the stored embedding of item {i} changed"
    # top 10, not top 1: at a low ef_search HNSW may rank a near-twin first; a damaged graph loses the item
    res = col.query(query_embeddings=want, n_results=10, include=["distances"])
    for i, found, d in zip(ids, res["ids"], res["distances"]):
        if i not in found and (not d or d[0] > _PROBE_DIST):
            return f"a search with item {i}'s own embedding does not find it (nearest at distance {d[0] if d else 'none'})"
    return None


def probe_ids(ids: Sequence[str], n: int = PROBES) -> list[str]:
    """``n`` ids spread over a channel's items, always with the last one (written last)."""
    if len(ids) <= n:
        return list(ids)
    picks = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return [ids[i] for i in dict.fromkeys(picks.tolist())]


def check_store(folder: Path, cols: dict[str, Any], rec: dict | None, source, key: str, encoder_name: str,
                clip_fingerprint: str | None = None) -> Health:
    """The health of an opened store: record, counts, probes and (with ``source``) freshness.

    Args:
        folder: the index folder (holds the record and ``data.json``).
        cols: channel -> collection (None when absent).
        rec: the build record (None when missing).
        source: the ``Dataset``/``Catalog`` in use, or None to skip the freshness checks.
        key: the data set's run-folder key.
        encoder_name: the configured text encoder's name ("" to skip that check).
        clip_fingerprint: the configured CLIP weights' fingerprint (``retrieval.clip.configured_fingerprint``;
            None: no CLIP configured, skip that check).
    """
    if rec is None and all(c is None for c in cols.values()):
        return Health("empty", "never built")
    catalog = getattr(source, "catalog", source)
    of = f" of {len(catalog)}" if catalog is not None else ""
    if rec is None or not rec.get("complete"):
        n = cols["text"].count() if cols.get("text") is not None else 0
        why = ("a build stopped before it finished" if rec is not None else
               "it has no record of a finished build (interrupted, or built by an older recagent)")
        return Health("incomplete", f"{why} ({n}{of} items stored)")
    for ch, info in rec.get("channels", {}).items():
        col = cols.get(ch)
        if col is None:
            return Health("incomplete", f"channel '{ch}' is missing")
        n = col.count()  # ~15 ms at 100k items, once per process
        if n != info.get("count"):
            return Health("incomplete", f"channel '{ch}' holds {n}{of} items, the last build stored {info.get('count')}")
        problem = probe_problem(col, info.get("probe") or {})
        if problem:
            return Health("damaged", f"channel '{ch}': {problem}")
    if source is not None:
        from recagent.runs import is_current

        if not is_current(folder, fingerprint_source(source, key), parts=("catalog",)):
            return Health("stale", "the catalog changed since it was built")
        built = rec.get("channels", {}).get("text", {}).get("encoder")
        if encoder_name and built != encoder_name:
            return Health("stale", f"it was embedded with {built}, the text encoder is now {encoder_name}")
        stale = clip_problem(rec, clip_fingerprint)
        if stale:
            return Health("stale", stale)
    return Health("ok")


def clip_problem(rec: dict, fingerprint: str | None) -> str | None:
    """Why the index's CLIP channels do not hold ``fingerprint``'s vectors (None: they do, or no CLIP)."""
    if not fingerprint:
        return None
    channels = rec.get("channels", {})
    if "clip_text" not in channels:
        return f"it has no image or cross-modal channels, and a CLIP model is now configured ({fingerprint})"
    for ch in ("clip_text", "image"):
        info = channels.get(ch)
        if info is None:
            continue
        # records written before "clip" existed: the encoder name is clip:<arch>:<fingerprint>
        built = info.get("clip") or str(info.get("encoder", "")).split(":", 2)[-1]
        if built != fingerprint:
            return f"its '{ch}' channel was embedded with CLIP {built}, the CLIP checkpoint is now {fingerprint}"
    return None


def message(h: Health, location: str, build: str, rebuild: str) -> str:
    """The one-line error for an index that cannot be used as it is, ending with the fix."""
    if h.state == "damaged":
        return f"index {location} is damaged ({h.detail}); repair it: `{rebuild}`."
    if h.state == "stale":
        return f"index {location} is out of date ({h.detail}); update it: `{build}`."
    if h.state == "incomplete":
        return f"index {location} is incomplete ({h.detail}); finish it: `{build}`."
    return f"index {location} is not built; run `{build}`."


def build_command(key: str, cfg: Any, rebuild: bool = False) -> str:
    """The command that builds (or rebuilds) the index of data set ``key``."""
    from recagent.data.builtin import BUILTIN

    cmd = "recagent index build" + (" --rebuild" if rebuild else "")
    if key in BUILTIN:
        return f"{cmd} --dataset {key}"
    data = getattr(cfg, "data", None)
    items, inter = getattr(data, "items", ""), getattr(data, "interactions", "")
    if items and inter:
        return f"{cmd} --dataset custom --set data.items={items} --set data.interactions={inter}"
    return f"{cmd} --dataset {key}"


def fingerprint_source(source, key: str):
    """What ``recagent.runs`` fingerprints: the ``Dataset``, or a stand-in around a bare ``Catalog``."""
    if hasattr(source, "catalog") and hasattr(source, "n_items"):
        return source
    from types import SimpleNamespace

    from recagent.data.builtin import BUILTIN

    return SimpleNamespace(name=key, builtin=key in BUILTIN, catalog=source, n_items=len(source))


def write_fingerprint(folder: Path, source, key: str) -> None:
    """Save the catalog's fingerprint (``data.json``) beside the index."""
    from recagent.runs import write_fingerprint as write

    write(folder, fingerprint_source(source, key), parts=("catalog",))
