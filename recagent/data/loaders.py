"""Read and validate catalogs, interaction logs and user files.

Files are read by ``recagent.data.tables`` (formats by suffix: CSV, TSV, Parquet, JSONL and
RecBole atomic files; ragged rows and NUL bytes are caught there); this module maps and checks
the columns. Every problem becomes one line naming file, row and column and ending with the fix. Problems
that can be worked around (interactions of unknown items, unreadable images) are warnings
with a count; the rest are errors. ``validate_files`` collects them all; the ``load_*``
functions raise the first error as a ``DataError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from recagent.data.tables import looks_like_formula, read_table
from recagent.data.tables import short as _short
from recagent.errors import DataError

MAX_PER_PROBLEM = 5  # rows listed for one kind of problem before "... and N more"

ITEM_ALIASES = {
    "item_id": ["item_id", "item", "id", "itemid", "movie_id", "product_id"],
    "title": ["title", "name", "movie_title", "item_name"],
    "text": ["text", "description", "overview", "plot", "summary"],
    "categories": ["categories", "category", "genres", "genre", "class", "tags"],
    "year": ["year", "release_year"],
    "image_path": ["image_path", "image", "image_file", "poster"],
}
INTER_ALIASES = {
    "user_id": ["user_id", "user", "userid"],
    "item_id": ["item_id", "item", "itemid", "movie_id", "product_id"],
    "timestamp": ["timestamp", "time", "ts", "datetime", "date"],
    "rating": ["rating", "score", "stars"],
}
USER_ALIASES = {"user_id": ["user_id", "user", "userid", "id"]}

TS_MIN, TS_MAX = -2208988800.0, 7258118400.0  # 1900-01-01 and 2200-01-01 UTC in Unix seconds: nothing in a log is older or newer
ITEM_REQUIRED = ["item_id", "title"]
INTER_REQUIRED = ["user_id", "item_id", "timestamp"]


@dataclass
class Report:
    """Problems found in the inputs: one line each."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_first(self) -> None:
        if self.errors:
            raise DataError(self.errors[0])


@dataclass(frozen=True)
class ReadOptions:
    """How text inputs are read (from the ``[data]`` config section)."""

    encoding: str = "utf-8"
    category_separator: str = "|"
    rating_min: float = 0.0
    rating_max: float = 5.0
    check_images: bool = True
    allow_outside_images: bool = False  # image paths may leave the catalog's folder (data.allow_outside_images)
    images_dir: str = ""  # folder relative image paths resolve against (data.images_dir); "" = the catalog's folder

    @classmethod
    def from_config(cls, data_cfg: Any) -> "ReadOptions":
        return cls(
            encoding=data_cfg.encoding,
            category_separator=data_cfg.category_separator,
            rating_min=float(data_cfg.rating_min),
            rating_max=float(data_cfg.rating_max),
            allow_outside_images=bool(getattr(data_cfg, "allow_outside_images", False)),
            images_dir=str(getattr(data_cfg, "images_dir", "") or ""),
        )


# ----------------------------------------------------------------------------- public API


def read_items(
    path: str | Path,
    opts: ReadOptions = ReadOptions(),
    report: Report | None = None,
    clean: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame | None:
    """Read and check a catalog file; returns the normalised table, or None after an error.

    ``clean`` (used by built-in data sets) may fix known blemishes of the raw table first.
    """
    return _read_checked(path, opts, report, clean, lambda raw, p, r: _check_items(raw, p, opts, r))


def read_interactions(
    path: str | Path,
    opts: ReadOptions = ReadOptions(),
    report: Report | None = None,
    known_items: set[str] | None = None,
) -> pd.DataFrame | None:
    """Read and check an interaction log; rows naming items outside ``known_items`` are dropped
    with a warning."""
    return _read_checked(path, opts, report, None, lambda raw, p, r: _check_interactions(raw, p, opts, r, known_items))


def read_users(
    path: str | Path,
    opts: ReadOptions = ReadOptions(),
    report: Report | None = None,
    clean: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame | None:
    """Read a user-attribute file (``user_id`` plus any columns, kept as strings)."""
    return _read_checked(path, opts, report, clean, _check_users)


def validate_files(
    items: str | Path | None,
    interactions: str | Path | None,
    users: str | Path | None = None,
    opts: ReadOptions = ReadOptions(),
) -> Report:
    """Check the given files together and collect every problem (used by ``data validate``)."""
    report = Report()
    known = None
    if items is not None:
        df = read_items(items, opts, report)
        known = set(df["item_id"]) if df is not None else None
    if interactions is not None:
        read_interactions(interactions, opts, report, known)
    if users is not None:
        read_users(users, opts, report)
    return report


# ----------------------------------------------------------------------------- columns


def _map_columns(df: pd.DataFrame, aliases: dict[str, list[str]], required: list[str], path: Path, report: Report) -> dict[str, str] | None:
    """canonical name -> column found in the file; None (with an error) if a required one is missing."""
    found: dict[str, str] = {}
    for canon, names in aliases.items():
        for name in names:
            if name in df.columns and name not in found.values():
                found[canon] = name
                break
    missing = [c for c in required if c not in found]
    if missing:
        c = missing[0]
        report.errors.append(
            f"{path.name}: missing column '{c}' (found: {', '.join(map(str, df.columns))}); "
            f"add it or rename a column to one of: {', '.join(aliases[c])}."
        )
        return None
    _check_short_rows(df, [found[c] for c in required], path, report)
    return found


def _check_short_rows(df: pd.DataFrame, required: list[str], path: Path, report: Report) -> None:
    """CSV/TSV rows with fewer fields than the header (padded with "" by the reader): an error
    when a required column is in the missing part, else a warning naming the empty columns."""
    short_rows: dict[int, int] = df.attrs.get("short_rows") or {}
    columns = list(df.columns)
    listed = {True: 0, False: 0}
    for r, k in short_rows.items():
        missing = columns[k:]
        needed = [c for c in missing if c in required]
        is_error = bool(needed)
        listed[is_error] += 1
        if listed[is_error] > MAX_PER_PROBLEM:
            continue
        head = f"{path.name} row {r + 1}: {k} field{'s' if k != 1 else ''} but the header has {len(columns)}"
        if is_error:
            report.errors.append(f"{head}; required column '{needed[0]}' is missing; add the missing values "
                                 "(or fix the row's separators).")
        else:
            report.warnings.append(f"{head}; {', '.join(repr(c) for c in missing)} read as empty; add the missing "
                                   "separators if a value landed in the wrong column.")
    for is_error, count in listed.items():
        if count > MAX_PER_PROBLEM:
            (report.errors if is_error else report.warnings).append(
                f"{path.name}: {count - MAX_PER_PROBLEM} more rows with fewer fields than the header; give every row "
                "one value per column.")


def _loc(path: Path, row: int, column: str) -> str:
    return f"{path.name} row {row + 1}, column '{column}'"


def _report_rows(report: Report, path: Path, rows: np.ndarray, column: str, what, fix: str, errors: bool = True) -> None:
    """One line per bad row (up to MAX_PER_PROBLEM), then a count of the rest."""
    target = report.errors if errors else report.warnings
    for r in rows[:MAX_PER_PROBLEM]:
        target.append(f"{_loc(path, int(r), column)}: {what(int(r))}; {fix}")
    if len(rows) > MAX_PER_PROBLEM:
        target.append(f"{path.name}, column '{column}': {len(rows) - MAX_PER_PROBLEM} more rows with the same problem; {fix}")


def _as_text(col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.StringDtype) and not col.isna().any():
        return col.str.strip()  # the common case (CSV/TSV): 5x faster than the map below
    return col.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).str.strip()


def _read_checked(path, opts: ReadOptions, report: Report | None, clean, check) -> pd.DataFrame | None:
    """Read ``path``, optionally ``clean`` the raw table, then ``check(raw, path, report)``.
    Without a caller's ``report`` the first error is raised as a ``DataError``."""
    own = report is None
    report = report or Report()
    path = Path(path)
    raw = read_table(path, report.errors, opts.encoding)
    if raw is not None and clean is not None:
        raw = clean(raw)
    df = None if raw is None else check(raw, path, report)
    if own:
        report.raise_first()
    return df


def _check_users(raw: pd.DataFrame, path: Path, report: Report) -> pd.DataFrame | None:
    cols = _map_columns(raw, USER_ALIASES, ["user_id"], path, report)
    if cols is None:
        return None
    df = raw.rename(columns={v: k for k, v in cols.items()})
    df["user_id"] = df["user_id"].astype(str).str.strip()
    dup = df["user_id"].duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        report.errors.append(f"{path.name} row {r + 1}, column 'user_id': '{df['user_id'].iat[r]}' appears twice; user ids must be unique.")
        return None
    _warn_formulas(raw, list(raw.columns), path, report)
    return df


def _warn_formulas(raw: pd.DataFrame, columns: list[str], path: Path, report: Report) -> None:
    """A warning per text cell that a spreadsheet would run as a formula (OWASP CSV injection)."""
    for c in columns:
        text = _as_text(raw[c])
        candidate = text.str.startswith(("=", "+", "-", "@"))
        if not candidate.any():
            continue
        bad = candidate.copy()
        bad[candidate] = text[candidate].map(looks_like_formula).astype(bool)
        _report_rows(
            report, path, np.flatnonzero(bad.to_numpy()), c,
            lambda r: f"'{_clip(text.iat[r])}' looks like a spreadsheet formula",
            "a spreadsheet that opens the file may run it; check the value (recagent writes such cells with a "
            "leading ' so spreadsheets show them as text).", errors=False,
        )


def _clip(value: str, n: int = 60) -> str:
    return value if len(value) <= n else value[: n - 3] + "..."


# ----------------------------------------------------------------------------- items


def _check_items(raw: pd.DataFrame, path: Path, opts: ReadOptions, report: Report) -> pd.DataFrame | None:
    n_err = len(report.errors)
    cols = _map_columns(raw, ITEM_ALIASES, ITEM_REQUIRED, path, report)
    if cols is None:
        return None
    out = pd.DataFrame(index=raw.index)
    ids = _as_text(raw[cols["item_id"]])
    empty = np.flatnonzero((ids == "").to_numpy())
    _report_rows(report, path, empty, "item_id", lambda r: "empty item id", "every item needs an id.")
    dup = ids.duplicated(keep="first") & (ids != "")
    if dup.any():
        first_row = {}
        for r, v in enumerate(ids):
            first_row.setdefault(v, r)
        _report_rows(
            report, path, np.flatnonzero(dup.to_numpy()), "item_id",
            lambda r: f"'{ids.iat[r]}' appears twice (first at row {first_row[ids.iat[r]] + 1})",
            "item ids must be unique.",
        )
    out["item_id"] = ids

    titles = _as_text(raw[cols["title"]])
    _report_rows(report, path, np.flatnonzero((titles == "").to_numpy()), cols["title"], lambda r: "empty title", "every item needs a title.")
    out["title"] = titles
    out["text"] = _as_text(raw[cols["text"]]) if "text" in cols else ""

    if "categories" in cols:
        sep = " " if path.suffix.lower() == ".item" else opts.category_separator
        out["categories"] = [_split_categories(v, sep) for v in raw[cols["categories"]]]
    else:
        out["categories"] = [[] for _ in range(len(raw))]

    if "year" in cols:
        years_txt = _as_text(raw[cols["year"]])
        years = pd.to_numeric(years_txt.where(years_txt != ""), errors="coerce")
        bad = (years_txt != "") & (years.isna() | (years % 1 != 0) | (years < 1000) | (years > 2200))
        _report_rows(
            report, path, np.flatnonzero(bad.to_numpy()), cols["year"],
            lambda r: f"'{years_txt.iat[r]}' is not a year", "use a 4-digit year such as 1995, or leave the cell empty.",
        )
        out["year"] = years.where(~bad).astype("Int64")
    else:
        out["year"] = pd.array([pd.NA] * len(raw), dtype="Int64")

    if "image_path" in cols:
        out["image_path"] = _check_images(_as_text(raw[cols["image_path"]]), path, cols["image_path"], opts, report)
    else:
        out["image_path"] = None

    for c in raw.columns:
        if c not in cols.values():
            out[c] = raw[c].to_numpy()
    if len(report.errors) > n_err:
        return None
    _warn_formulas(raw, [c for c in raw.columns if c != cols.get("image_path")], path, report)
    return out.reset_index(drop=True)


def _split_categories(value: Any, sep: str) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [str(v) for v in value]
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        parts = []
    else:
        parts = str(value).split(sep) if sep != " " else str(value).split()
    seen: list[str] = []
    for p in parts:
        p = p.strip()
        if p and p not in seen:
            seen.append(p)
    return seen


def _check_images(paths: pd.Series, table: Path, column: str, opts: ReadOptions, report: Report) -> list[str | None]:
    """Absolute image paths; unreadable ones become None with a warning (the item stays, text only)."""
    from PIL import Image, UnidentifiedImageError

    base = Path(opts.images_dir).expanduser().resolve() if opts.images_dir else table.resolve().parent
    out: list[str | None] = []
    bad: list[tuple[int, str]] = []
    for r, rel in enumerate(paths):
        if not rel:
            out.append(None)
            continue
        p = Path(rel).expanduser()
        p = p if p.is_absolute() else base / p
        if not opts.allow_outside_images and not p.resolve().is_relative_to(base):
            # The chat server serves item images: a path leaving the catalog's folder could expose other files.
            bad.append((r, f"'{rel}' is outside the image folder {base} (allow it with --set data.allow_outside_images=true)"))
            out.append(None)
            continue
        if opts.check_images:
            if not p.is_file():  # missing, or a FIFO or device that would block Image.open forever
                bad.append((r, f"'{rel}' is not a regular file" if p.exists() else f"'{rel}' not found"))
                out.append(None)
                continue
            try:
                with Image.open(p) as im:
                    im.verify()
            except FileNotFoundError:
                bad.append((r, f"'{rel}' not found"))
                out.append(None)
                continue
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                bad.append((r, f"'{rel}' is not a readable image ({_short(exc)})"))
                out.append(None)
                continue
        out.append(str(p))
    for r, what in bad[:MAX_PER_PROBLEM]:
        report.warnings.append(f"{_loc(table, r, column)}: {what}; the item is kept without an image (fix or remove the path).")
    if len(bad) > MAX_PER_PROBLEM:
        report.warnings.append(f"{table.name}, column '{column}': {len(bad) - MAX_PER_PROBLEM} more unreadable images; those items are kept without images.")
    if bad:
        report.warnings.append(f"{table.name}: {len(bad)} of {len(paths)} images unreadable; those items are indexed by text only.")
    return out


# ----------------------------------------------------------------------------- interactions


def _check_timestamps(txt: pd.Series, path: Path, column: str, report: Report) -> pd.Series:
    """Unix seconds (numbers) or ISO 8601 dates (converted to Unix seconds), within 1900-2200."""
    ts = pd.to_numeric(txt.where(txt != ""), errors="coerce").astype(float)
    # Only text that starts like a date is parsed as one: pandas reads "now" and "today" as
    # the current time, even with format="ISO8601".
    datelike = txt.str.match(r"\d{4}-\d\d") & ts.isna()
    if datelike.any():
        parsed = pd.to_datetime(txt[datelike], errors="coerce", utc=True, format="ISO8601")
        ts[datelike] = ((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).astype(float)
    fix = "give a Unix time in seconds or an ISO 8601 date (2024-05-01T12:00:00)."
    empty = np.flatnonzero((txt == "").to_numpy())
    _report_rows(report, path, empty, column, lambda r: "empty timestamp", fix)
    number = txt.str.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", case=False)
    unparsed = (txt != "") & ts.isna() & ~number
    _report_rows(report, path, np.flatnonzero(unparsed.to_numpy()), column,
                 lambda r: f"'{txt.iat[r]}' is not a number or an ISO 8601 date", fix)
    out_of_range = (txt != "") & ~unparsed & ~ts.between(TS_MIN, TS_MAX)
    _report_rows(
        report, path, np.flatnonzero(out_of_range.to_numpy()), column,
        lambda r: f"{txt.iat[r]} is outside 1900-2200 (Unix seconds {TS_MIN:.0f} to {TS_MAX:.0f})"
        + (" and looks like milliseconds (divide by 1000)" if TS_MIN * 1000 <= ts.iat[r] <= TS_MAX * 1000 else ""),
        "give Unix seconds or an ISO 8601 date (2024-05-01T12:00:00).",
    )
    return ts


def _check_interactions(raw: pd.DataFrame, path: Path, opts: ReadOptions, report: Report, known_items: set[str] | None) -> pd.DataFrame | None:
    n_err = len(report.errors)
    cols = _map_columns(raw, INTER_ALIASES, INTER_REQUIRED, path, report)
    if cols is None:
        return None
    out = pd.DataFrame(index=raw.index)
    for canon in ("user_id", "item_id"):
        vals = _as_text(raw[cols[canon]])
        _report_rows(report, path, np.flatnonzero((vals == "").to_numpy()), cols[canon], lambda r, c=canon: f"empty {c}", f"every interaction needs a {canon}.")
        out[canon] = vals

    out["timestamp"] = _check_timestamps(_as_text(raw[cols["timestamp"]]), path, cols["timestamp"], report)

    if "rating" in cols:
        r_txt = _as_text(raw[cols["rating"]])
        ratings = pd.to_numeric(r_txt.where(r_txt != ""), errors="coerce").astype(float)
        bad = np.flatnonzero(((r_txt != "") & ratings.isna()).to_numpy())
        _report_rows(report, path, bad, cols["rating"], lambda r: f"'{r_txt.iat[r]}' is not a number", "ratings must be numbers (leave the cell empty for no rating).")
        out_of = ratings.notna() & ((ratings < opts.rating_min) | (ratings > opts.rating_max))
        _report_rows(
            report, path, np.flatnonzero(out_of.to_numpy()), cols["rating"],
            lambda r: f"{r_txt.iat[r]} is outside [{opts.rating_min:g}, {opts.rating_max:g}]",
            "fix the value or set data.rating_min / data.rating_max to your scale.",
        )
        out["rating"] = ratings
    else:
        out["rating"] = np.nan
    out["row"] = np.arange(len(raw), dtype=np.int64)
    if len(report.errors) > n_err:
        return None
    _warn_formulas(raw, [cols["user_id"], cols["item_id"]], path, report)

    if known_items is not None:
        unknown = ~out["item_id"].isin(known_items)
        if unknown.any():
            rows = np.flatnonzero(unknown.to_numpy())
            examples = ", ".join(f"'{out['item_id'].iat[r]}' (row {r + 1})" for r in rows[:3])
            report.warnings.append(
                f"{path.name}, column '{cols['item_id']}': {len(rows)} of {len(out)} interactions name items not in the catalog "
                f"(e.g. {examples}); they were dropped. Add those items to the catalog to keep them."
            )
            out = out[~unknown]
            if out.empty:
                report.errors.append(f"{path.name}: no interaction names an item of the catalog; check that both files use the same item ids.")
                return None
    return out.reset_index(drop=True)
