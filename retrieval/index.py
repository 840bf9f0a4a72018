"""``ItemIndex``: a catalog's items in ChromaDB, one collection per channel, built incrementally.

Channels (one cosine-space HNSW collection each, named ``<dataset>-<channel>``):

* ``text``: the sentence-transformers embedding of ``catalog.describe(i)``;
* ``image``: the CLIP image embedding of the item's image (items with a readable image);
* ``clip_text``: the CLIP text embedding of ``describe(i)``, so CLIP queries also work on
  catalogs without images.

Every stored item carries ``hash`` = digest(encoder name, channel, content, metadata); a build
embeds only items whose hash is missing or different and deletes ids no longer in the catalog.
Batches are upserted as they are embedded, keyed by item id, so a killed build loses at most
the batch in flight, never duplicates an item, and the next build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlparse

import numpy as np

from recagent.errors import ConfigError, IndexError_
from recagent.retrieval.encoders import l2_normalize
from recagent.retrieval.filters import Filters, Hit, merge_channels

log = logging.getLogger("recagent.retrieval")

CHANNELS = ("text", "image", "clip_text")
_OVERFETCH = ((100, 10), (1000, 50))  # rounds of (min, x fetch) results post-filtered before Chroma's `where`
_META_TTL_S = 60.0  # how long a query process trusts its cached copy of the items' categories/years
_UNSET: Any = object()


@dataclass
class BuildReport:
    """What a build did, per channel, and which images could not be read."""

    dataset: str
    location: str
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    bad_images: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def embedded(self) -> int:
        return sum(c["added"] + c["updated"] for c in self.channels.values())

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "location": self.location, "channels": self.channels, "absent": self.absent,
                "bad_images": [{"item_id": i, "reason": r} for i, r in self.bad_images], "seconds": round(self.seconds, 3)}


class ItemIndex:
    """Items of one data set in Chroma; query by text, item ids, image or raw vector.

    Build with ``ItemIndex.open(cfg, "ml-100k").build(dataset)``; see ``recagent.retrieval``
    for the query API. Encoders load lazily from ``cfg`` unless passed in.

    Args:
        client: a chromadb client (``PersistentClient`` or ``HttpClient``).
        dataset: data set name; collections are named ``<dataset>-<channel>``.
        settings: the ``[retrieval]`` config section.
        text_encoder: encoder of the ``text`` channel (default: ``TextEncoder.from_config(cfg)``).
        clip_encoder: CLIP encoder of ``image``/``clip_text`` (default: ``ClipEncoder.from_config(cfg)``,
            ``None`` when no CLIP weights are configured).
        cfg: the full config (for lazy encoders).
        location: where the index lives, for messages.
    """

    def __init__(self, client, dataset: str, settings, text_encoder=_UNSET, clip_encoder=_UNSET, cfg=None,
                 location: str = ""):
        self.client = client
        self.dataset = dataset
        self.settings = settings
        self.cfg = cfg
        self.location = location
        self._text = text_encoder
        self._clip = clip_encoder
        self._cols: dict[str, Any] = {}
        self._meta: dict[str, tuple[float, dict]] = {}  # channel -> (loaded at, id -> (cats, year))
        self._ready: set[str] = set()  # channels known to be built (see _require)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, cfg, dataset: str | None = None, chroma_url: str | None = None, path: str | Path | None = None,
             text_encoder=_UNSET, clip_encoder=_UNSET) -> "ItemIndex":
        """Connect to the index of ``dataset`` (nothing is built or embedded here).

        Args:
            cfg: the resolved config.
            dataset: data set name (default ``cfg.data.dataset``).
            chroma_url: a Chroma server URL (default ``cfg.retrieval.chroma_url``); empty = embedded
                store under ``path``.
            path: embedded store folder (default ``<runs_dir>/<dataset>/index``).
            text_encoder, clip_encoder: encoders to use instead of the configured ones (``None``
                for ``clip_encoder`` disables the CLIP channels).
        """
        dataset = dataset or cfg.data.dataset
        url = cfg.retrieval.chroma_url if chroma_url is None else chroma_url
        if url:
            client, location = _http_client(url), url
        else:
            folder = Path(path) if path else Path(cfg.paths.runs) / dataset / "index"
            client, location = _persistent_client(folder), str(folder)
        return cls(client, dataset, cfg.retrieval, text_encoder, clip_encoder, cfg, location)

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

            self._clip = ClipEncoder.from_config(self.cfg) if self.cfg is not None else None
        return self._clip

    # ------------------------------------------------------------------ building
    def build(self, source, progress: bool = False, log_fn: Callable[[str], None] | None = None) -> BuildReport:
        """Bring every channel up to date with a catalog (incremental; safe to kill and rerun).

        Args:
            source: a ``Dataset`` or ``Catalog``.
            progress: show tqdm bars on stderr.
            log_fn: receives one line per channel.
        """
        catalog = getattr(source, "catalog", source)
        say = log_fn or log.info
        t0 = time.perf_counter()
        report = BuildReport(self.dataset, self.location)
        items = catalog.items
        ids = [str(i) for i in catalog.ids]
        metas = [_item_meta(i, t, c, y) for i, t, c, y in
                 zip(ids, items["title"].tolist(), items["categories"].tolist(), items["year"].tolist())]
        texts = [catalog.describe(i) for i in range(len(ids))]
        text_rows = list(zip(ids, texts, metas))
        report.channels["text"] = self._sync("text", self.text_encoder, text_rows, progress, report)
        clip = self.clip_encoder
        if clip is None:
            why = ("no CLIP weights configured; set models.clip_checkpoint (a file) or models.clip_pretrained "
                   "(a tag) to add image and cross-modal search")
            report.absent = {"image": why, "clip_text": why}
        else:
            report.channels["clip_text"] = self._sync("clip_text", clip, text_rows, progress, report)
            paths = items["image_path"].tolist()
            image_rows = [(ids[i], p, metas[i]) for i, p in enumerate(paths) if isinstance(p, str) and p]
            if image_rows:
                report.channels["image"] = self._sync("image", clip, image_rows, progress, report)
            else:
                report.absent["image"] = "the catalog has no images (no image_path values)"
                self._drop("image")
        report.seconds = time.perf_counter() - t0
        for ch, c in report.channels.items():
            say(f"{self.dataset}/{ch}: {c['total']} items ({c['added']} added, {c['updated']} updated, "
                f"{c['deleted']} deleted, {c['unchanged']} unchanged)")
        for ch, why in report.absent.items():
            say(f"{self.dataset}/{ch}: absent: {why}")
        if report.bad_images:
            shown = "; ".join(f"{i}: {r}" for i, r in report.bad_images[:5])
            say(f"{len(report.bad_images)} items have unreadable images and are indexed by text only ({shown}"
                f"{' ...' if len(report.bad_images) > 5 else ''})")
        return report

    def ensure_built(self, source, progress: bool = False, log_fn: Callable[[str], None] | None = None) -> BuildReport | None:
        """Build if the text channel is missing or empty (first use); else do nothing."""
        col = self._collection("text", create=False)
        if col is not None and col.count() > 0:
            return None
        return self.build(source, progress=progress, log_fn=log_fn)

    def _sync(self, channel: str, encoder, rows: list[tuple[str, Any, dict]], progress: bool,
              report: BuildReport) -> dict[str, int]:
        col = self._collection(channel, create=True, encoder=encoder)
        stored = self._stored_hashes(col)
        wanted: dict[str, str] = {}
        todo: list[tuple[str, Any, dict]] = []
        for iid, content, meta in rows:
            h = _content_hash(encoder.name, channel, content, meta)
            wanted[iid] = h
            if stored.get(iid) != h:
                todo.append((iid, content, {**meta, "hash": h}))
        gone = [i for i in stored if i not in wanted]
        stats = {"added": 0, "updated": 0, "deleted": 0, "unchanged": len(rows) - len(todo), "total": 0}
        for s in range(0, len(gone), 1000):
            col.delete(ids=gone[s:s + 1000])
        stats["deleted"] = len(gone)
        bs = self.settings.batch_size
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"{self.dataset}/{channel}", unit="item")
        # One writer thread: Chroma stores batch i while the encoder embeds batch i+1.
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending: Future | None = None
            for s in range(0, len(todo), bs):
                batch = todo[s:s + bs]
                if channel == "image":
                    batch, vecs = self._embed_images(encoder, batch, col, report)
                else:
                    vecs = encoder.embed_texts([c for _, c, _ in batch], batch_size=len(batch))
                if pending is not None:
                    pending.result()
                if batch:
                    pending = writer.submit(col.upsert, ids=[b[0] for b in batch], embeddings=vecs,
                                            metadatas=[b[2] for b in batch])
                for iid, _, _ in batch:
                    stats["updated" if iid in stored else "added"] += 1
                if bar is not None:
                    bar.update(len(todo[s:s + bs]))
            if pending is not None:
                pending.result()
        if bar is not None:
            bar.close()
        stats["total"] = col.count()
        self._meta.pop(channel, None)
        return stats

    def _embed_images(self, encoder, batch, col, report: BuildReport):
        from recagent.retrieval.clip import open_image

        good, images = [], []
        for iid, path, meta in batch:
            try:
                images.append(open_image(path))
                good.append((iid, path, meta))
            except FileNotFoundError:
                report.bad_images.append((iid, f"'{path}' not found"))
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files
                report.bad_images.append((iid, f"'{path}' unreadable ({type(exc).__name__})"))
        bad_ids = [b[0] for b in batch if b not in good]
        if bad_ids:  # an image that became unreadable must not keep its old embedding
            col.delete(ids=bad_ids)
        if not good:
            return [], np.zeros((0, encoder.dim), np.float32)
        return good, encoder.embed_images(images, batch_size=len(images))

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
        ids = [str(i) for i in item_ids]
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
        out = {}
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
        return list(self._stored_hashes(self._require(channel)))

    def embeddings(self, item_ids: Sequence[Any], channel: str = "text") -> dict[str, np.ndarray]:
        """Stored embeddings of some items (missing ids are left out)."""
        got = self._require(channel).get(ids=[str(i) for i in item_ids], include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}

    # ------------------------------------------------------------------ helpers
    def _clip_configured(self) -> bool:
        if self._clip is not _UNSET:
            return self._clip is not None
        m = getattr(self.cfg, "models", None)
        return bool(m and (m.clip_checkpoint or m.clip_pretrained))

    def _name(self, channel: str) -> str:
        slug = re.sub(r"[^a-zA-Z0-9._-]+", "_", self.dataset).strip("._-") or "items"
        return f"{slug}-{channel}"

    def _collection(self, channel: str, create: bool, encoder=None):
        if channel in self._cols and encoder is None:
            return self._cols[channel]
        name = self._name(channel)
        try:
            col = self.client.get_collection(name, embedding_function=None)
        except Exception:  # noqa: BLE001 - chromadb raises NotFoundError/ValueError by version
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
        if channel in self._ready:  # count() scans the collection (~15 ms at 100k): check once
            return self._cols[channel]
        col = self._collection(channel, create=False)
        if col is None or col.count() == 0:
            if channel != "text" and not self._clip_configured():
                raise IndexError_(f"index {self.location}: channel '{channel}' is absent (no CLIP weights); set "
                                  f"models.clip_checkpoint or models.clip_pretrained and rebuild.")
            raise IndexError_(f"index {self.location}: channel '{channel}' is not built; run "
                              f"`recagent index build --dataset {self.dataset}`.")
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
        if cached is not None and time.monotonic() - cached[0] < _META_TTL_S:
            return cached[1]
        table: dict[str, tuple[frozenset, int | None]] = {}
        offset, page = 0, 5000
        while True:
            got = col.get(include=["metadatas"], limit=page, offset=offset)
            for i, m in zip(got["ids"], got["metadatas"]):
                m = m or {}
                table[i] = (frozenset(m.get("categories") or ()), m.get("year"))
            if len(got["ids"]) < page:
                break
            offset += page
        self._meta[channel] = (time.monotonic(), table)
        return table

    @staticmethod
    def _stored_hashes(col, page: int = 5000) -> dict[str, str]:
        out: dict[str, str] = {}
        offset = 0
        while True:
            got = col.get(include=["metadatas"], limit=page, offset=offset)
            for i, m in zip(got["ids"], got["metadatas"]):
                out[i] = (m or {}).get("hash", "")
            if len(got["ids"]) < page:
                return out
            offset += page


def _channels(channels: str | Sequence[str]) -> list[str]:
    return [channels] if isinstance(channels, str) else list(channels)


def _item_meta(item_id: str, title: Any, categories: Any, year: Any) -> dict[str, Any]:
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


def _content_hash(encoder_name: str, channel: str, content: Any, meta: dict) -> str:
    if channel == "image":  # path + size + mtime: a rewritten file is re-embedded without reading every image
        p = Path(content)
        st = p.stat() if p.exists() else None
        content = f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}"
    blob = json.dumps([encoder_name, channel, str(content), meta], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=12).hexdigest()


def _persistent_client(folder: Path):
    import chromadb
    from chromadb.config import Settings

    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))


def _http_client(url: str):
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
