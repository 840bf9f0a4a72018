"""The two evaluation protocols of DESIGN.md as train/valid/test splits.

- **A, general** (``random_split``): interactions with rating >= threshold are the positives;
  each user's positives are shuffled with a seeded generator and cut 8:1:1 with RecBole's
  rounding (valid and test are rounded down, and each gets one item when its share is between
  0 and 1 while train keeps at least 2), so split sizes match the peers' numbers.
- **B, sequential** (``leave_one_out_split``): all interactions, each user's ordered by time
  with ties broken by file row order; the last is test, the one before valid, the rest train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recagent.data.schema import Dataset
from recagent.errors import DataError


@dataclass
class Split:
    """Train/valid/test interactions (original ids plus ``uidx``/``iidx``) of one protocol.

    ``items`` is the item universe of the protocol (dense catalog indices an evaluation ranks
    over); ``users`` the dense indices of users that have a test item.
    """

    protocol: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int
    items: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    @property
    def users(self) -> np.ndarray:
        return np.unique(self.test["uidx"].to_numpy())

    def save(self, directory: str | Path) -> Path:
        """Write ``train.csv``, ``valid.csv``, ``test.csv`` with original ids.

        Ids a spreadsheet would run as formulas (``=cmd|...``) get a leading ``'`` (OWASP CSV
        injection); recagent's readers drop it again, so the files load back unchanged.
        """
        from recagent.data.tables import escape_cell

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in ("train", "valid", "test"):
            df = getattr(self, name)[["user_id", "item_id", "timestamp", "rating"]].copy()
            for col in ("user_id", "item_id"):
                df[col] = df[col].map(escape_cell)
            df.to_csv(d / f"{name}.csv", index=False)
        return d


def split_counts(total: int, ratios: list[float]) -> list[int]:
    """Part sizes for ``total`` items and ``ratios``, rounded as RecBole 1.2.1 does
    (``Dataset._calcu_split_ids``): every part but the first rounded down, then each small
    part whose share is in (0, 1) gets one item taken from the first while it has > 1."""
    s = sum(ratios)
    ratios = [r / s for r in ratios]
    cnt = [int(r * total) for r in ratios]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def random_split(dataset: Dataset, threshold: float = 4.0, ratios: list[float] | None = None, seed: int = 2020) -> Split:
    """Protocol A: positives (rating >= threshold), per-user seeded shuffle, 8:1:1 cut."""
    ratios = list(ratios or [0.8, 0.1, 0.1])
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise DataError(f"data.split_ratios = {ratios}: give three non-negative numbers (train, valid, test), e.g. [0.8, 0.1, 0.1].")
    df = dataset.encoded()
    if not dataset.interactions.has_ratings:
        raise DataError(
            f"{dataset.interactions.source or 'interactions'}: Protocol A needs ratings to pick positives but the log has none; "
            "use --protocol B, or add a rating column."
        )
    pos = df[df["rating"] >= threshold]
    if pos.empty:
        raise DataError(f"no rating is >= data.positive_threshold ({threshold:g}); lower the threshold.")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    # Group row positions by user, in order of first appearance (stable, reproducible).
    codes, _ = pd.factorize(pos["uidx"])
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for rows in np.split(order, bounds):
        rows = rows[rng.permutation(len(rows))]
        cnt = split_counts(len(rows), ratios)
        start = 0
        for p, c in enumerate(cnt):
            parts[p].append(rows[start:start + c])
            start += c
    train, valid, test = (pos.iloc[np.concatenate(p)] if p else pos.iloc[:0] for p in parts)
    items = np.unique(pos["iidx"].to_numpy())
    return Split("A", train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True),
                 dataset.n_users, dataset.n_items, items)


def leave_one_out_split(dataset: Dataset) -> Split:
    """Protocol B: per user by (timestamp, file row); last -> test, second-to-last -> valid.

    A user with 2 interactions gives one to train and one to test; a user with 1 only trains.
    """
    df = dataset.encoded().sort_values(["uidx", "timestamp", "row"], kind="stable")
    n = df.groupby("uidx", sort=False)["uidx"].transform("size").to_numpy()
    pos_from_end = df.groupby("uidx", sort=False).cumcount(ascending=False).to_numpy()
    is_test = (pos_from_end == 0) & (n >= 2)
    is_valid = (pos_from_end == 1) & (n >= 3)
    train = df[~is_test & ~is_valid]
    items = np.unique(df["iidx"].to_numpy())
    return Split("B", train.reset_index(drop=True), df[is_valid].reset_index(drop=True), df[is_test].reset_index(drop=True),
                 dataset.n_users, dataset.n_items, items)


def make_split(dataset: Dataset, protocol: str, data_cfg=None) -> Split:
    """``protocol`` 'A' or 'B', with Protocol A's threshold, ratios and seed from ``data_cfg``."""
    p = protocol.upper()
    if p == "A":
        if data_cfg is None:
            return random_split(dataset)
        return random_split(dataset, data_cfg.positive_threshold, data_cfg.split_ratios, data_cfg.split_seed)
    if p == "B":
        return leave_one_out_split(dataset)
    raise DataError(f"unknown protocol '{protocol}'; use A (random 8:1:1 of positives) or B (leave-one-out by time).")
