"""Typed tables: the item ``Catalog``, the ``Interactions`` log and a ``Dataset`` that ties them.

Item and user ids are kept as the strings found in the files ("original ids"); models work on
dense integer indices (``Dataset.item_index`` / ``user_index``) and map back at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

import numpy as np
import pandas as pd

ITEM_COLUMNS = ["item_id", "title", "text", "categories", "year", "image_path"]
INTER_COLUMNS = ["user_id", "item_id", "timestamp", "rating"]


@dataclass
class Catalog:
    """The items. ``items`` has one row per item, in catalog order, with the columns
    ``item_id`` (str), ``title`` (str), ``text`` (str, may be ""), ``categories`` (list of str),
    ``year`` (nullable Int64), ``image_path`` (str or None) and any extra fields.
    """

    items: pd.DataFrame
    source: str = ""

    def __post_init__(self) -> None:
        self.items = self.items.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=object)

    @cached_property
    def index(self) -> dict[str, int]:
        """Original item id -> row (dense item index)."""
        return {iid: i for i, iid in enumerate(self.ids)}

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.items.columns if c not in ITEM_COLUMNS]

    @cached_property
    def category_vocabulary(self) -> list[str]:
        """Every category used by some item, most frequent first."""
        counts: dict[str, int] = {}
        for cats in self.items["categories"]:
            for c in cats:
                counts[c] = counts.get(c, 0) + 1
        return sorted(counts, key=lambda c: (-counts[c], c))

    @property
    def has_images(self) -> bool:
        return bool(self.items["image_path"].notna().any())

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the catalog (ids in order and every field): saved models and indexes
        record it and are refused when it changes (a reordered catalog changes it too)."""
        return _frame_hash(self.items, ["item_id", "title", "text", "categories", "year", "image_path"])

    def get(self, item_id: str) -> dict[str, Any]:
        """One item as a plain dict (KeyError for an unknown id)."""
        return self.row(self.index[str(item_id)])

    def row(self, idx: int) -> dict[str, Any]:
        rec = self.items.iloc[int(idx)].to_dict()
        rec["categories"] = list(rec["categories"])
        rec["year"] = None if pd.isna(rec["year"]) else int(rec["year"])
        return rec

    def title(self, item_id: str) -> str:
        return str(self.items.at[self.index[str(item_id)], "title"])

    def describe(self, idx: int) -> str:
        """The text used to embed an item: title, year, categories and free text."""
        rec = self.items.iloc[int(idx)]
        parts = [str(rec["title"])]
        if not pd.isna(rec["year"]):
            parts[0] += f" ({int(rec['year'])})"
        if len(rec["categories"]):
            parts.append("Genres: " + ", ".join(rec["categories"]))
        if rec["text"]:
            parts.append(str(rec["text"]))
        return ". ".join(parts)


@dataclass
class Interactions:
    """The log: ``df`` has ``user_id`` (str), ``item_id`` (str), ``timestamp`` (float, Unix
    seconds), ``rating`` (float, NaN when the log has none) and ``row`` (0-based position in
    the source file, used to break timestamp ties)."""

    df: pd.DataFrame
    source: str = ""

    def __len__(self) -> int:
        return len(self.df)

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the log (users, items, times, ratings, in file order)."""
        return _frame_hash(self.df, ["user_id", "item_id", "timestamp", "rating"])

    @property
    def has_ratings(self) -> bool:
        return bool(self.df["rating"].notna().any())


@dataclass
class Dataset:
    """A catalog, its interaction log and optional user attributes, with dense id mappings."""

    name: str
    catalog: Catalog
    interactions: Interactions
    users: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    builtin: bool = False  # a built-in data set (its run folder is its name), not the user's files

    @cached_property
    def user_ids(self) -> np.ndarray:
        """Original user ids in index order: users of the log (sorted by first appearance)."""
        return pd.unique(self.interactions.df["user_id"]).astype(object)

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @property
    def item_ids(self) -> np.ndarray:
        return self.catalog.ids

    @property
    def item_index(self) -> dict[str, int]:
        return self.catalog.index

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.catalog)

    def encoded(self, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """``df`` (default: the whole log) with integer ``uidx`` / ``iidx`` columns added."""
        df = self.interactions.df if df is None else df
        out = df.copy()
        out["uidx"] = df["user_id"].map(self.user_index).astype(np.int64)
        out["iidx"] = df["item_id"].map(self.item_index).astype(np.int64)
        return out

    def user_attributes(self, user_id: str) -> dict[str, Any]:
        if self.users is None:
            return {}
        rows = self.users[self.users["user_id"] == str(user_id)]
        return {} if rows.empty else {k: v for k, v in rows.iloc[0].to_dict().items() if k != "user_id"}

    def history(self, user_id: str) -> pd.DataFrame:
        """A user's interactions in time order (ties by file row)."""
        df = self.interactions.df
        return df[df["user_id"] == str(user_id)].sort_values(["timestamp", "row"], kind="stable")

    def summary(self) -> dict[str, Any]:
        df = self.interactions.df
        return {
            "name": self.name,
            "users": int(df["user_id"].nunique()),
            "items": len(self.catalog),
            "interactions": len(df),
            "items_with_interactions": int(df["item_id"].nunique()),
            "has_ratings": self.interactions.has_ratings,
            "has_images": self.catalog.has_images,
            "categories": len(self.catalog.category_vocabulary),
            "density": round(len(df) / max(1, df["user_id"].nunique() * len(self.catalog)), 6),
            "time_range": [float(df["timestamp"].min()), float(df["timestamp"].max())] if len(df) else None,
            "user_attributes": [c for c in self.users.columns if c != "user_id"] if self.users is not None else [],
        }


def _frame_hash(df: pd.DataFrame, columns: list[str]) -> str:
    """A 16-hex-digit sha256 over the named columns (missing ones count as empty), row order included."""
    import hashlib

    h = hashlib.sha256()
    h.update(str(len(df)).encode())
    for col in columns:
        h.update(col.encode())
        if col not in df.columns:
            continue
        values = df[col].map(lambda v: "|".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else str(v))
        h.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def as_str_list(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]
