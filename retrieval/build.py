"""Embedding a catalog into the index's channels: the incremental sync of one channel.

Every stored item carries ``hash`` = digest(encoder name, channel, content, metadata); a sync
embeds only items whose hash is missing or different and deletes ids no longer in the catalog.
Batches are upserted as they are embedded, keyed by item id, so a killed build loses at most the
batch in flight, never duplicates an item, and the next build resumes where it stopped.
``ItemIndex.build`` runs it under the index's write lock (see ``recagent.retrieval.index``).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recagent.retrieval.store import content_hash, item_meta, stored_hashes


@dataclass
class BuildReport:
    """What a build did, per channel, and which images could not be read."""

    dataset: str
    location: str
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    bad_images: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    lock_wait_s: float = 0.0
    repaired: dict[str, int] = field(default_factory=dict)  # channel -> ids re-embedded for lack of an embedding

    @property
    def embedded(self) -> int:
        return sum(c["added"] + c["updated"] for c in self.channels.values())

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "location": self.location, "channels": self.channels, "absent": self.absent,
                "bad_images": [{"item_id": i, "reason": r} for i, r in self.bad_images],
                "seconds": round(self.seconds, 3), "lock_wait_s": round(self.lock_wait_s, 3), "repaired": self.repaired}


def catalog_rows(catalog) -> tuple[list[tuple[str, str, dict]], list[tuple[str, str, dict]]]:
    """``(text rows, image rows)``: ``(item id, content, metadata)`` per item (image rows only for
    items with an ``image_path``)."""
    items = catalog.items
    ids = [str(i) for i in catalog.ids]
    metas = [item_meta(i, t, c, y) for i, t, c, y in
             zip(ids, items["title"].tolist(), items["categories"].tolist(), items["year"].tolist())]
    text_rows = [(ids[i], catalog.describe(i), metas[i]) for i in range(len(ids))]
    paths = items["image_path"].tolist()
    image_rows = [(ids[i], p, metas[i]) for i, p in enumerate(paths) if isinstance(p, str) and p]
    return text_rows, image_rows


def sync_channel(col, channel: str, encoder, rows: list[tuple[str, Any, dict]], batch_size: int,
                 report: BuildReport, progress: bool = False, desc: str = "") -> dict[str, int]:
    """Bring one collection up to date with ``rows``; returns added/updated/deleted/unchanged/total."""
    stored = stored_hashes(col)
    wanted: dict[str, str] = {}
    todo: list[tuple[str, Any, dict]] = []
    for iid, content, meta in rows:
        h = content_hash(encoder.name, channel, content, meta)
        wanted[iid] = h
        if stored.get(iid) != h:
            todo.append((iid, content, {**meta, "hash": h}))
    gone = [i for i in stored if i not in wanted]
    stats = {"added": 0, "updated": 0, "deleted": 0, "unchanged": len(rows) - len(todo), "total": 0}
    for s in range(0, len(gone), 1000):
        col.delete(ids=gone[s:s + 1000])
    stats["deleted"] = len(gone)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc or channel, unit="item")
    # One writer thread: Chroma stores batch i while the encoder embeds batch i+1.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future | None = None
        for s in range(0, len(todo), batch_size):
            batch = todo[s:s + batch_size]
            if channel == "image":
                batch, vecs = _embed_images(encoder, batch, col, report)
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
                bar.update(len(todo[s:s + batch_size]))
        if pending is not None:
            pending.result()
    if bar is not None:
        bar.close()
    stats["total"] = col.count()
    return stats


def _embed_images(encoder, batch, col, report: BuildReport):
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
