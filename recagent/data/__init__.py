"""Data layer: typed tables, loaders with actionable validation, splits, built-in data sets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from recagent.data.loaders import ReadOptions, Report, read_interactions, read_items, read_users, validate_files
from recagent.data.schema import Catalog, Dataset, Interactions
from recagent.data.splits import Split, leave_one_out_split, make_split, random_split
from recagent.errors import DataError

__all__ = [
    "Catalog", "Dataset", "Interactions", "Split", "ReadOptions", "Report",
    "load_dataset", "load_files", "make_split", "random_split", "leave_one_out_split", "validate_files",
]

log = logging.getLogger("recagent.data")


def load_files(
    items: str | Path,
    interactions: str | Path,
    users: str | Path | None = None,
    opts: ReadOptions = ReadOptions(),
    name: str = "custom",
    builtin: bool = False,
    clean_items: Callable | None = None,
    clean_users: Callable | None = None,
) -> Dataset:
    """Load a data set from files; raises ``DataError`` (one line) on the first real problem and
    keeps work-around warnings in ``Dataset.warnings``."""
    report = Report()
    item_df = read_items(items, opts, report, clean=clean_items)
    inter_df = read_interactions(interactions, opts, report, set(item_df["item_id"]) if item_df is not None else None) if item_df is not None else None
    user_df = read_users(users, opts, report, clean=clean_users) if users else None
    report.raise_first()
    for w in report.warnings:
        log.warning(w)
    return Dataset(
        name=name,
        catalog=Catalog(item_df, source=str(items)),
        interactions=Interactions(inter_df, source=str(interactions)),
        users=user_df,
        warnings=list(report.warnings),
        builtin=builtin,
    )


def load_dataset(cfg: Any, name: str | None = None, log_fn: Callable[[str], None] | None = None) -> Dataset:
    """The data set named by ``name`` (or ``cfg.data.dataset``): a built-in one (fetched into
    the cache on first use) or ``custom`` from ``cfg.data.items`` / ``interactions`` / ``users``.
    """
    from recagent.data.builtin import BUILTIN, builtin_cleaners, builtin_files

    name = name or cfg.data.dataset
    opts = ReadOptions.from_config(cfg.data)
    if name in BUILTIN:
        mine = [f"data.{k} = {v!r}" for k, v in (("items", cfg.data.items), ("interactions", cfg.data.interactions)) if v]
        if mine:  # the files would be ignored silently: a chat over the wrong catalog
            raise DataError(f"{' and '.join(mine)} set, but the data set is '{name}': add --set data.dataset=custom "
                            f"(or --dataset custom) to use your files, or clear them to use '{name}'.")
        files = builtin_files(name, cfg.paths.cache, log=log_fn or log.info)
        clean_items, clean_users = builtin_cleaners(name)
        return load_files(files["items"], files["interactions"], files["users"], opts, name=name, builtin=True,
                          clean_items=clean_items, clean_users=clean_users)
    if name == "custom" or Path(name).suffix:
        items, inter = cfg.data.items, cfg.data.interactions
        if not items or not inter:
            raise DataError("custom data set needs both files: --items FILE --interactions FILE "
                            "(or data.items / data.interactions in the config).")
        return load_files(items, inter, cfg.data.users or None, opts,
                          name="custom-" + (Path(items).resolve().parent.name or "data"))
    raise DataError(f"unknown data set '{name}'; use one of: {', '.join(BUILTIN)}, or 'custom' with --items/--interactions.")
