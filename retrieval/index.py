"""``ItemIndex``: a catalog's items in ChromaDB, one collection per channel, built incrementally,
one writer at a time, checked when opened.

Channels (one cosine-space HNSW collection each, named ``<data set key>-<channel>``):

* ``text``: the sentence-transformers embedding of ``catalog.describe(i)``;
* ``image``: the CLIP image embedding of the item's image (items with a readable image);
* ``clip_text``: the CLIP text embedding of ``describe(i)``, so CLIP queries also work on
  catalogs without images.

The embedded store lives in ``recagent.runs.layout(cfg, dataset).index``. Builds (incremental,
see ``retrieval/build.py``) hold an exclusive lock on ``index.lock`` beside it; opening holds a
shared one, so a reader waits for a build in progress instead of seeing half of it. Opening
checks the folder once per process (``retrieval/integrity.py``: build record, HNSW file sizes,
counts, a self-query probe, the catalog fingerprint); queries then run without extra checks.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from recagent.errors import ConfigError, IndexError_
from recagent.retrieval import integrity
from recagent.retrieval.build import BuildReport, catalog_rows, sync_channel
from recagent.retrieval.encoders import l2_normalize
from recagent.retrieval.filters import Filters, Hit, merge_channels
from recagent.retrieval.integrity import Health
from recagent.retrieval.store import (chroma_errors, collection_name, describe_error, forget_client, http_client,
                                      filter_table, is_chroma_error, missing_embeddings, persistent_client,
                                      stored_hashes)

log = logging.getLogger("recagent.retrieval")

CHANNELS = ("text", "image", "clip_text")
CLIP_CHANNELS = ("image", "clip_text")  # the channels a CLIP model embeds
_OVERFETCH = ((100, 10), (1000, 50))  # rounds of (min, x fetch) results post-filtered before Chroma's `where`
_META_TTL_S = 60.0  # how long a query process trusts its cached copy of the items' categories/years
_UNSET: Any = object()

__all__ = ["CHANNELS", "BuildReport", "Health", "ItemIndex"]


class ItemIndex:
    """Items of one data set in Chroma; query by text, item ids, image or raw vector.

    Build with ``ItemIndex.open(cfg, dataset).build(dataset)`` (or ``ensure_built``, which also
    finishes an interrupted build); see ``recagent.retrieval`` for the query API. Encoders load
    lazily from ``cfg`` unless passed in.

    Args:
        client: a chromadb client (``PersistentClient`` or ``HttpClient``); None when the store
            could not be opened (``health`` says why; only ``rebuild`` works then).
        dataset: the data set's run-folder key (``recagent.runs.dataset_key``); collections are
            named ``<key>-<channel>``.
        settings: the ``[retrieval]`` config section.
        text_encoder: encoder of the ``text`` channel (default: ``TextEncoder.from_config(cfg)``).
        clip_encoder: CLIP encoder of ``image``/``clip_text`` (default: ``ClipEncoder.from_config(cfg)``,
            ``None`` when no CLIP weights are configured).
        cfg: the full config (for lazy encoders).
        location: where the index lives, for messages.
        folder: the embedded store's folder (None for a Chroma server): enables the lock and checks.
        health: what opening found (None: not checked yet).
    """

    def __init__(self, client, dataset: str, settings, text_encoder=_UNSET, clip_encoder=_UNSET, cfg=None,
                 location: str = "", folder: Path | None = None, health: Health | None = None):
        self.client = client
        self.dataset = dataset
        self.settings = settings
        self.cfg = cfg
        self.location = location or (str(folder) if folder else "")
        self.folder = Path(folder) if folder else None
        self._text = text_encoder
        self._clip = clip_encoder
        self._cols: dict[str, Any] = {}
        self._meta: dict[str, tuple[float, dict]] = {}  # channel -> (loaded at, id -> (cats, year))
        self._ready: set[str] = set()  # channels checked once (see _require)
        self._health = health
        self._checked_source: Any = None  # the catalog the cached health was checked against
        self._open_wait_s = 0.0  # seconds open() waited for another process's build

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, cfg, dataset: Any = None, chroma_url: str | None = None, path: str | Path | None = None,
             text_encoder=_UNSET, clip_encoder=_UNSET, log_fn: Callable[[str], None] | None = None) -> "ItemIndex":
        """Connect to the index of ``dataset`` (nothing is built or embedded here).

        Waits (up to ``retrieval.lock_timeout``) while another process builds it. A damaged
        store does not raise here: ``health()`` reports it and ``rebuild()`` repairs it; every
        other use raises a one-line ``IndexError_`` naming the repair command.

        Args:
            cfg: the resolved config.
            dataset: a ``Dataset`` or a data set name (default ``cfg.data.dataset``); the folder is
                ``recagent.runs.layout(cfg, dataset).index``.
            chroma_url: a Chroma server URL (default ``cfg.retrieval.chroma_url``); empty = embedded
                store under ``path``.
            path: embedded store folder (default from the run layout).
            text_encoder, clip_encoder: encoders to use instead of the configured ones (``None``
                for ``clip_encoder`` disables the CLIP channels).
            log_fn: receives a line when this process has to wait for a build in another one.
        """
        from recagent.runs import dataset_key, layout

        dataset = dataset if dataset is not None else cfg.data.dataset
        key = dataset_key(dataset)
        url = cfg.retrieval.chroma_url if chroma_url is None else chroma_url
        if url:
            return cls(http_client(url), key, cfg.retrieval, text_encoder, clip_encoder, cfg, url)
        folder = Path(path) if path else layout(cfg, dataset).index
        index = cls(None, key, cfg.retrieval, text_encoder, clip_encoder, cfg, str(folder), folder)
        t = time.perf_counter()
        with index._lock(shared=True, log_fn=log_fn):
            index._open_wait_s = time.perf_counter() - t
            index._connect()
        return index

    @property
    def text_encoder(self):
        if self._text is _UNSET:
            from recagent.retrieval.encoders import TextEncoder

            self._text = TextEncoder.from_config(self.cfg)
        return self._text

    @property
    def clip_encoder(self):
        if self._clip is _UNSET:
            from recagent.retrieval.clip import ClipEncoder

            # the configured CLIP, else the one `recagent finetune clip` trained for this data set
            self._clip = ClipEncoder.from_config(self.cfg, self.dataset) if self.cfg is not None else None
        return self._clip

    # ------------------------------------------------------------------ checking
    def health(self, source=None) -> Health:
        """Whether the index is whole (checked once per process, under the read lock; a few ms).

        Args:
            source: a ``Dataset`` or ``Catalog``: also check that the index was built from this
                catalog (its fingerprint) with the configured text encoder.
        """
        cached = self._health
        if cached is not None and (cached.state == "damaged" or source is None or source is self._checked_source):
            return cached
        if self.folder is None:  # a Chroma server: no files to check, no build record
            col = self._collection("text", create=False)
            h = Health("ok") if col is not None and col.count() > 0 else Health("empty", "never built")
        else:
            with self._lock(shared=True):
                h = self._check(source)
        self._health, self._checked_source = h, source
        return h

    def ensure_built(self, source, progress: bool = False, log_fn: Callable[[str], None] | None = None) -> BuildReport | None:
        """Build on first use, finish an interrupted build, or update an index built from another
        catalog or encoder (each logged); do nothing when the index is whole and current.

        Raises:
            IndexError_: the index is damaged (the message names ``recagent index build --rebuild``).
        """
        h = self.health(source)
        if h.ok:
            return None
        if h.state == "damaged":
            raise IndexError_(self._message(h))
        if h.state != "empty":
            (log_fn or log.warning)(f"index {self.location}: {h.detail}; "
                                    f"{'updating it' if h.state == 'stale' else 'finishing the build'}")
        return self.build(source, progress=progress, log_fn=log_fn)

    # ------------------------------------------------------------------ building
    def build(self, source, progress: bool = False, log_fn: Callable[[str], None] | None = None) -> BuildReport:
        """Bring every channel up to date with a catalog (incremental; safe to kill and rerun).

        Holds the index's write lock: a second writer waits up to ``retrieval.lock_timeout``
        seconds (with a message), then fails with one line naming the holder.

        Args:
            source: a ``Dataset`` or ``Catalog``.
            progress: show tqdm bars on stderr.
            log_fn: receives one line per channel (and the lock wait, if any).
        """
        say = log_fn or log.info
        t0 = time.perf_counter()
        with self._lock(log_fn=say):
            waited = time.perf_counter() - t0
            if self.folder is not None:
                h = self._check(None)  # fresh: another process may have built it while we waited
                if h.state == "damaged":
                    self._health = h
                    raise IndexError_(self._message(h))
                integrity.mark_building(self.folder)
            with chroma_errors(self.location, self._command(rebuild=True)):
                report = self._build_locked(source, progress, say)
            report.lock_wait_s = waited + self._open_wait_s  # a build that waited while opening counts that too
            self._open_wait_s = 0.0
            self._health, self._checked_source = Health("ok"), source
        report.seconds = time.perf_counter() - t0
        for ch, c in report.channels.items():
            say(f"{self.dataset}/{ch}: {c['total']} items ({c['added']} added, {c['updated']} updated, "
                f"{c['deleted']} deleted, {c['unchanged']} unchanged)")
        for ch, why in report.absent.items():
            say(f"{self.dataset}/{ch}: absent: {why}")
        for ch, n in report.repaired.items():
            say(f"{self.dataset}/{ch}: {n} items had no embedding and were embedded again")
        if report.bad_images:
            shown = "; ".join(f"{i}: {r}" for i, r in report.bad_images[:5])
            say(f"{len(report.bad_images)} items have unreadable images and are indexed by text only ({shown}"
                f"{' ...' if len(report.bad_images) > 5 else ''})")
        return report

    def rebuild(self, source, progress: bool = False, log_fn: Callable[[str], None] | None = None) -> BuildReport:
        """Delete the index and build it again (under the write lock): the repair for a damaged store."""
        with self._lock(log_fn=log_fn or log.info):
            self._wipe(recreate=True)
            return self.build(source, progress=progress, log_fn=log_fn)

    def delete(self, log_fn: Callable[[str], None] | None = None) -> None:
        """Delete the index (under the write lock)."""
        with self._lock(log_fn=log_fn or log.info):
            self._wipe(recreate=False)

    def _build_locked(self, source, progress: bool, say) -> BuildReport:
        catalog = getattr(source, "catalog", source)
        report = BuildReport(self.dataset, self.location)
        text_rows, image_rows = catalog_rows(catalog)
        work = [("text", self.text_encoder, text_rows)]
        clip = self.clip_encoder
        if clip is None:
            why = ("no CLIP weights configured; set models.clip_checkpoint (a file) or models.clip_pretrained "
                   "(a tag) to add image and cross-modal search")
            report.absent = {"image": why, "clip_text": why}
        else:
            work.append(("clip_text", clip, text_rows))
            if image_rows:
                work.append(("image", clip, image_rows))
            else:
                report.absent["image"] = "the catalog has no images (no image_path values)"
                self._drop("image")
        record: dict[str, dict[str, Any]] = {}
        for ch, enc, rows in work:
            report.channels[ch] = self._sync(ch, enc, rows, progress, report)
            col = self._cols[ch]
            bad = missing_embeddings(col)  # every stored id must have a usable embedding
            if bad:
                col.delete(ids=bad)
                report.repaired[ch] = len(bad)
                again = self._sync(ch, enc, rows, progress, report)
                report.channels[ch] = {**report.channels[ch], "total": again["total"]}
            record[ch] = {"count": col.count(), "encoder": enc.name,
                          "probe": integrity.probe_of(col, integrity.probe_ids([r[0] for r in rows]))}
            if ch in CLIP_CHANNELS:  # which CLIP weights made these vectors: a new checkpoint makes them stale
                record[ch]["clip"] = _fingerprint_of(enc)
        if self.folder is not None:  # the fingerprint first: a kill between the two leaves "incomplete"
            integrity.write_fingerprint(self.folder, source, self.dataset)
            integrity.write_record(self.folder, record)
        return report

    def _sync(self, channel: str, encoder, rows, progress: bool, report: BuildReport) -> dict[str, int]:
        col = self._collection(channel, create=True, encoder=encoder)
        stats = sync_channel(col, channel, encoder, rows, self.settings.batch_size, report, progress,
                             desc=f"{self.dataset}/{channel}")
        self._meta.pop(channel, None)
        return stats

    # ------------------------------------------------------------------ queries
    def query_vector(self, vector: Sequence[float], k: int = 10, channel: str = "text",
                     filters: Filters | None = None) -> list[Hit]:
        """Nearest items to an embedding already in the channel's space.

        Args:
            vector: the query embedding (normalised here).
            k: number of hits.
            channel: ``text``, ``image`` or ``clip_text``.
            filters: metadata constraints and exclusion list.
        """
        col = self._require(channel)
        f = filters or Filters()
        q = l2_normalize(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        where = f.where()
        fetch = int(k) + len(f.exclude_ids)
        if where is not None:
            # Post-filter an unfiltered over-fetch first, against an in-memory copy of the items'
            # categories/years: Chroma's own `where` scans metadata (~190 ms at 100k items) and
            # fetching metadata with results costs ~40 us per row; this path takes a few ms and
            # gives the same answer whenever k accepted items are among the top m.
            meta = self._filter_meta(channel, col)
            for m in (max(lo, factor * fetch) for lo, factor in _OVERFETCH):
                res = col.query(query_embeddings=q, n_results=m, include=["distances"])
                ids, dists = res["ids"][0], res["distances"][0]
                hits = [Hit(i, float(1.0 - d), channel) for i, d in zip(ids, dists) if f.accepts_cached(i, meta.get(i))]
                if len(hits) >= k or len(ids) < m:  # enough, or every item was seen
                    return hits[:k]
        res = col.query(query_embeddings=q, n_results=fetch, where=where, include=["distances"])
        hits = [Hit(i, float(1.0 - d), channel) for i, d in zip(res["ids"][0], res["distances"][0])
                if i not in f.exclude_ids]
        return hits[:k]

    def query_text(self, text: str, k: int = 10, channels: str | Sequence[str] = "text", filters: Filters | None = None,
                   **filter_kwargs: Any) -> list[Hit]:
        """Items matching a text (a message, a profile, a title).

        Args:
            text: the query.
            k: number of hits.
            channels: ``text`` (sentence-transformers, default), ``image`` (CLIP text -> item images),
                ``clip_text`` (CLIP text -> item texts), or several (rank-interleaved, each item once).
            filters: a ``Filters``; keyword arguments (``include_categories``, ``exclude_categories``,
                ``year_min``, ``year_max``, ``exclude_ids``) add to it.
        """
        f = Filters.make(filters, **filter_kwargs)
        per = []
        for ch in _channels(channels):
            self._require(ch)
            enc = self.text_encoder if ch == "text" else self.clip_encoder
            per.append(self.query_vector(enc.embed_texts([text])[0], k, ch, f))
        return merge_channels(per, k)

    def query_items(self, item_ids: Iterable[Any], k: int = 10, channels: str | Sequence[str] = "text",
                    filters: Filters | None = None, exclude_query: bool = True, **filter_kwargs: Any) -> list[Hit]:
        """Neighbours of some items (e.g. a user's liked items): the normalised centroid of their
        stored embeddings, queried in each channel.

        Args:
            item_ids: original item ids; ids missing from a channel are skipped.
            k: number of hits.
            channels: as in ``query_text``.
            filters: as in ``query_text``.
            exclude_query: leave the query items out of the results.
        """
        ids = list(dict.fromkeys(str(i) for i in item_ids))  # Chroma's get() refuses repeated ids (re-bought items)
        f = Filters.make(filters, exclude_ids=ids if exclude_query else (), **filter_kwargs)
        per = []
        for ch in _channels(channels):
            got = self._require(ch).get(ids=ids, include=["embeddings"])
            if len(got["ids"]) == 0:
                continue
            centroid = l2_normalize(np.asarray(got["embeddings"], dtype=np.float32)).mean(axis=0)
            per.append(self.query_vector(centroid, k, ch, f))
        if not per:
            raise IndexError_(f"index {self.location}: none of the items {ids[:5]} is indexed; "
                              f"rebuild with `recagent index build --dataset {self.dataset}`.")
        return merge_channels(per, k)

    def query_image(self, image: Any, k: int = 10, channels: str | Sequence[str] = "image",
                    filters: Filters | None = None, **filter_kwargs: Any) -> list[Hit]:
        """Items like an image (a PIL image or a path): ``image`` channel = similar images,
        ``clip_text`` = items whose text matches the image.

        Args:
            image: a PIL image or a file path.
            k, channels, filters: as in ``query_text``.
        """
        f = Filters.make(filters, **filter_kwargs)
        per = []
        for ch in _channels(channels):
            if ch == "text":
                raise ConfigError("query_image: channel 'text' has no image tower; use 'image' or 'clip_text'.")
            self._require(ch)
            per.append(self.query_vector(self.clip_encoder.embed_images([image])[0], k, ch, f))
        return merge_channels(per, k)

    # ------------------------------------------------------------------ inspection
    def status(self) -> dict[str, dict[str, Any]]:
        """Per channel: ``{"count", "encoder"}`` when built, else ``{"absent": reason}``."""
        if self.client is None:
            return {ch: {"absent": f"damaged: {self.health().detail}"} for ch in CHANNELS}
        out = {}
        with chroma_errors(self.location, self._command(rebuild=True)):
            for ch in CHANNELS:
                col = self._collection(ch, create=False)
                if col is None:
                    why = "not built" if ch == "text" or self._clip_configured() else "no CLIP weights configured"
                    out[ch] = {"absent": why}
                else:
                    out[ch] = {"count": col.count(), "encoder": (col.metadata or {}).get("encoder", "")}
        return out

    def ids(self, channel: str = "text") -> list[str]:
        """Every item id stored in a channel."""
        return list(stored_hashes(self._require(channel)))

    def embeddings(self, item_ids: Sequence[Any], channel: str = "text") -> dict[str, np.ndarray]:
        """Stored embeddings of some items (missing ids are left out)."""
        got = self._require(channel).get(ids=[str(i) for i in item_ids], include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}

    # ------------------------------------------------------------------ helpers
    def _connect(self) -> None:
        """Open the embedded store, unless its files are damaged (then ``_health`` says so)."""
        problem = integrity.segment_problem(self.folder)
        if problem:  # before Chroma reads them: a truncated header.bin crashes the process inside Chroma
            self._health = Health("damaged", problem)
            return
        try:
            self.client = persistent_client(self.folder)
        except Exception as exc:  # noqa: BLE001 - only Chroma's own errors are caught
            if not is_chroma_error(exc):
                raise
            self._health = Health("damaged", describe_error(exc))

    def _check(self, source) -> Health:
        if self.client is None:
            return self._health or Health("damaged", "the store could not be opened")
        problem = integrity.segment_problem(self.folder)
        if problem:
            return Health("damaged", problem)
        rec = integrity.read_record(self.folder)
        try:
            cols = {ch: self._collection(ch, create=False) for ch in CHANNELS}
            return integrity.check_store(self.folder, cols, rec, source, self.dataset, self._text_encoder_name(),
                                         clip_fingerprint=self._clip_fingerprint() if source is not None else None)
        except Exception as exc:  # noqa: BLE001 - only Chroma's own errors are caught
            if not is_chroma_error(exc):
                raise
            return Health("damaged", describe_error(exc))

    def _message(self, h: Health) -> str:
        return integrity.message(h, self.location, self._command(), self._command(rebuild=True))

    def _command(self, rebuild: bool = False) -> str:
        return integrity.build_command(self.dataset, self.cfg, rebuild)

    def _lock(self, shared: bool = False, log_fn: Callable[[str], None] | None = None):
        from contextlib import nullcontext

        from recagent.locks import file_lock

        if self.folder is None:  # a Chroma server orders its own writes
            return nullcontext()
        return file_lock(self.folder.with_name(f"{self.folder.name}.lock"), shared=shared,
                         timeout=float(getattr(self.settings, "lock_timeout", 300.0)), what=f"index {self.location}",
                         on_wait=log_fn or log.warning,
                         fix="wait for it to finish, or wait longer with --set retrieval.lock_timeout=SECONDS")

    def _wipe(self, recreate: bool) -> None:
        self._cols.clear()
        self._ready.clear()
        self._meta.clear()
        self._health = self._checked_source = None
        if self.folder is None:
            for ch in CHANNELS:
                self._drop(ch)
            return
        forget_client(self.folder)
        self.client = None
        shutil.rmtree(self.folder, ignore_errors=True)
        if recreate:
            self.client = persistent_client(self.folder)

    def _text_encoder_name(self) -> str:
        if self._text is not _UNSET:
            return getattr(self._text, "name", "")
        from recagent.errors import RecagentError
        from recagent.models import resolve_model
        from recagent.retrieval.encoders import TextEncoder

        m = getattr(self.cfg, "models", None)
        if m is None:
            return ""
        try:  # the name TextEncoder.from_config would give, without loading the model
            return TextEncoder.name_for(resolve_model(m.text_encoder, self.cfg.paths.cache, pull=False))
        except RecagentError:
            return ""  # not cached: loading it will say so

    def _clip_fingerprint(self) -> str | None:
        # the CLIP weights the image/clip_text channels should hold, without loading a model
        if self._clip is not _UNSET:
            return _fingerprint_of(self._clip) if self._clip is not None else None
        if getattr(self.cfg, "models", None) is None:
            return None
        from recagent.retrieval.clip import configured_fingerprint

        return configured_fingerprint(self.cfg, self.dataset)

    def _clip_configured(self) -> bool:
        if self._clip is not _UNSET:
            return self._clip is not None
        m = getattr(self.cfg, "models", None)
        return bool(m and (m.clip_checkpoint or m.clip_pretrained))

    def _name(self, channel: str) -> str:
        return collection_name(self.dataset, channel)

    def _collection(self, channel: str, create: bool, encoder=None):
        if channel in self._cols and encoder is None:
            return self._cols[channel]
        if self.client is None:
            raise IndexError_(self._message(self.health()))
        name = self._name(channel)
        try:
            col = self.client.get_collection(name, embedding_function=None)
        except Exception as exc:  # noqa: BLE001 - chromadb raises NotFoundError/ValueError by version
            if "NotFound" not in type(exc).__name__ and "does not exist" not in str(exc):
                raise  # a damaged store, not a missing collection
            col = None
        if col is not None and encoder is not None and (col.metadata or {}).get("encoder") != encoder.name:
            log.info("%s: encoder changed (%s -> %s); re-embedding every item", name,
                     (col.metadata or {}).get("encoder"), encoder.name)
            self.client.delete_collection(name)
            col = None
        if col is None and create:
            s = self.settings
            col = self.client.create_collection(
                name, embedding_function=None, metadata={"encoder": encoder.name, "dim": int(encoder.dim), "channel": channel},
                configuration={"hnsw": {"space": "cosine", "max_neighbors": s.hnsw_m,
                                        "ef_construction": s.hnsw_ef_construction, "ef_search": s.hnsw_ef_search}})
        elif col is not None:
            ef = (col.configuration or {}).get("hnsw", {}).get("ef_search")
            if ef is not None and ef != self.settings.hnsw_ef_search:
                col.modify(configuration={"hnsw": {"ef_search": self.settings.hnsw_ef_search}})
        if col is not None:
            self._cols[channel] = col
        return col

    def _require(self, channel: str):
        if channel not in CHANNELS:
            raise ConfigError(f"unknown retrieval channel '{channel}'; use one of {', '.join(CHANNELS)}.")
        if channel in self._ready:  # checked once per process: queries pay nothing
            return self._cols[channel]
        h = self.health()
        if h.state not in ("ok", "empty"):
            raise IndexError_(self._message(h))
        col = self._collection(channel, create=False)
        if col is None or (self.folder is None and col.count() == 0):
            if channel != "text" and not self._clip_configured():
                raise IndexError_(f"index {self.location}: channel '{channel}' is absent (no CLIP weights); set "
                                  f"models.clip_checkpoint or models.clip_pretrained and rebuild.")
            raise IndexError_(f"index {self.location}: channel '{channel}' is not built; run `{self._command()}`.")
        self._ready.add(channel)
        return col

    def _drop(self, channel: str) -> None:
        if self._collection(channel, create=False) is not None:
            self.client.delete_collection(self._name(channel))
            self._cols.pop(channel, None)
            self._ready.discard(channel)

    def _filter_meta(self, channel: str, col) -> dict[str, tuple[frozenset, int | None]]:
        """Item id -> (categories, year) of a channel, cached; reloaded after a build in this
        process or after ``_META_TTL_S`` (another process may have rebuilt the index)."""
        cached = self._meta.get(channel)
        if cached is None or time.monotonic() - cached[0] >= _META_TTL_S:
            cached = self._meta[channel] = (time.monotonic(), filter_table(col))
        return cached[1]


def _fingerprint_of(encoder) -> str:
    # ClipEncoder.fingerprint; any other CLIP-like encoder is identified by its name
    return str(getattr(encoder, "fingerprint", None) or encoder.name)


def _channels(channels: str | Sequence[str]) -> list[str]:
    return [channels] if isinstance(channels, str) else list(channels)
