"""Read one input file into a raw table of values, and write CSV cells safely.

Formats by suffix: ``.csv``, ``.tsv``/``.txt``, ``.parquet``, ``.jsonl``/``.ndjson``/``.json``,
and RecBole atomic files (``.item``, ``.inter``, ``.user``: tab-separated, ``name:type`` headers);
anything else is an "unsupported format" error. Before pandas parses a CSV or TSV file, every
row's field count is checked against the header: pandas would take a row with one extra field
(an unquoted comma in a title, a trailing comma) as an index column and shift every value one
column to the right, silently.

Spreadsheet formulas: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return may be run by a spreadsheet that opens the file (OWASP "CSV injection"). ``escape_cell``
prefixes such cells with ``'``, the spreadsheet's own "this is text" marker, when recagent
writes CSV; the readers here drop that one leading ``'`` again, so our own files read back
unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".item": "\t", ".inter": "\t", ".user": "\t"}
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
SUPPORTED = [".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".ndjson", ".json", ".item", ".inter", ".user"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection: cells starting with these
MAX_ROWS_LISTED = 5  # ragged rows listed before "... and N more"

csv.field_size_limit(max(csv.field_size_limit(), 1 << 27))  # long descriptions: allow 128 MiB per field


def read_table(path: Path, errors: list[str], encoding: str) -> pd.DataFrame | None:
    """The file as a table of raw values (strings for text formats), or None after an error
    (appended to ``errors`` as one line naming the file, line or row, and the fix).

    Rows of a CSV/TSV file with fewer fields than the header are padded with "" and listed in
    ``df.attrs["short_rows"]`` (0-based row -> number of fields) for the caller to judge: that
    is an error when a required column falls in the missing part.
    """
    if not path.exists():
        errors.append(f"{path}: file not found; check the path (relative paths start at {Path.cwd()}).")
        return None
    if path.is_dir():
        errors.append(f"{path}: is a folder, not a file; give the path of the file itself.")
        return None
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        errors.append(f"unsupported format: {path}; use CSV, TSV, Parquet, JSONL or RecBole atomic files "
                      f"({', '.join(SUPPORTED)}).")
        return None
    if not path.is_file():  # a FIFO, socket or device: opening it may block forever
        errors.append(f"{path.name}: not a regular file (a pipe or device); save the table to a file and give its path.")
        return None
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
            df.columns = [str(c) for c in df.columns]
        else:
            text = _decode(path, encoding, errors)
            if text is None:
                return None
            if suffix in JSON_SUFFIXES:
                df = _read_jsonl(path, text, errors)
            else:
                if not text.strip():
                    errors.append(f"{path.name}: the file is empty (no header, no rows); export the table with a header line and at least one row.")
                    return None
                df = _read_delimited(path, text, TEXT_SUFFIXES[suffix], errors)
                if df is not None and suffix in (".inter", ".item", ".user"):
                    df.columns = [str(c).split(":", 1)[0] for c in df.columns]
            if df is None:
                return None
    except (OSError, ValueError) as exc:
        errors.append(f"{path.name}: cannot be read ({short(exc)}); check that it is a valid {suffix.lstrip('.')} file.")
        return None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if len(df) == 0:
        errors.append(f"{path.name}: has a header but 0 rows; add data rows or point to the right file.")
        return None
    if suffix == ".parquet" or suffix in JSON_SUFFIXES:
        if not _check_nul_cells(df, path, errors):
            return None
    return df


def escape_cell(value: Any) -> Any:
    """``value`` made safe for a spreadsheet (OWASP CSV injection): a string starting with
    = + - @ tab or CR (after any leading ') gets one more leading '; plain numbers stay as they are."""
    if not isinstance(value, str) or not value.lstrip("'").startswith(FORMULA_START) or _is_number(value):
        return value
    return "'" + value


def unescape_column(col: pd.Series) -> pd.Series:
    """Drop the one leading ' that ``escape_cell`` (or a spreadsheet user) put before = + - @ tab CR."""
    marked = col.str.startswith("'") & col.str.lstrip("'").str.startswith(FORMULA_START)
    return col.where(~marked, col.str[1:]) if marked.any() else col


def looks_like_formula(value: str) -> bool:
    """A cell a spreadsheet would likely run: '=...', or + - @ followed by a function call or a
    DDE reference ('+cmd|...!A0', '@SUM(A1)'); signed numbers and ordinary text are not."""
    if len(value) < 2 or not value.startswith(("=", "+", "-", "@")) or _is_number(value):
        return False
    return value[0] == "=" or any(ch in value for ch in "(|!")


# ----------------------------------------------------------------------------- helpers


def short(exc: Exception) -> str:
    """The first line of an exception's message (at most 200 characters)."""
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _decode(path: Path, encoding: str, errors: list[str]) -> str | None:
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        errors.append(
            f"{path.name} line {line}: byte 0x{data[exc.start]:02x} is not valid {encoding}; "
            f"re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8) or set data.encoding (e.g. --set data.encoding=latin-1)."
        )
        return None
    except LookupError:
        errors.append(f"{path.name}: unknown encoding '{encoding}' in data.encoding; use e.g. utf-8 or latin-1.")
        return None
    nul = text.find("\x00")
    if nul >= 0:
        errors.append(
            f"{path.name} line {text.count(chr(10), 0, nul) + 1}: contains a NUL byte (\\x00); remove it "
            "(a UTF-16 file? re-save it as UTF-8 or set data.encoding=utf-16)."
        )
        return None
    return text.lstrip("\ufeff")


def _read_delimited(path: Path, text: str, sep: str, errors: list[str]) -> pd.DataFrame | None:
    """CSV/TSV with every row's field count checked: extra fields are errors, short rows are padded."""
    header = text.split("\n", 1)[0]
    if sep == "\t" and "\t" not in header and "," in header:
        errors.append(f"{path.name}: the header has ',' but no tab, and {path.suffix} files are tab-separated; "
                      "rename the file to .csv or save it with tabs.")
        return None
    counts = _field_counts(text, sep, path, errors)
    if counts is None:
        return None
    n = counts[0]
    sep_name = "a tab" if sep == "\t" else f"'{sep}'"
    too_long = [r for r, k in enumerate(counts[1:]) if k > n]
    if too_long:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                         header=None, skiprows=1, names=range(max(counts)), index_col=False)
        names = ", ".join(str(h).strip() for h in pd.read_csv(io.StringIO(text), sep=sep, nrows=0).columns)
        for r in too_long[:MAX_ROWS_LISTED]:
            rec = [str(v) for v in df.iloc[r, : counts[r + 1]]]
            head = f"{path.name} row {r + 1}: {len(rec)} fields but the header has {n} ({names})"
            if not any(v.strip() for v in rec[n:]):
                errors.append(f"{head}; remove the trailing {sep_name}.")
            else:
                shown = (sep if sep != "\t" else " | ").join(rec)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                errors.append(f"{head} in '{shown}'; quote any value that contains {sep_name} so it stays one field "
                              f"(e.g. \"a{sep} b\").")
        if len(too_long) > MAX_ROWS_LISTED:
            errors.append(f"{path.name}: {len(too_long) - MAX_ROWS_LISTED} more rows with more fields than the header; "
                          f"give every row one value per column (quote values that contain {sep_name}).")
        return None
    # index_col=False: never take a first column as the index (the silent shift this module prevents)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False, index_col=False)
    except pd.errors.ParserError as exc:
        errors.append(f"{path.name}: cannot be parsed ({short(exc)}); check the quoting: a value that starts with \" "
                      "needs a closing \".")
        return None
    if "'" in text:
        for c in df.columns:
            df[c] = unescape_column(df[c])
    df.attrs["short_rows"] = {r: k for r, k in enumerate(counts[1:]) if k < n}
    return df


def _field_counts(text: str, sep: str, path: Path, errors: list[str]) -> list[int] | None:
    """Fields of the header, then of every data row, skipping blank lines as pandas does."""
    if '"' not in text and "\r" not in text.replace("\r\n", ""):
        # No quoting and plain line ends: a record is a line (10x faster than the csv module).
        return [line.count(sep) + 1 for line in text.split("\n") if line.strip() or sep in line]
    counts = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        for rec in reader:
            if len(rec) > 1 or "".join(rec).strip():
                counts.append(len(rec))
    except csv.Error as exc:
        errors.append(f"{path.name} line {reader.line_num}: cannot be parsed ({short(exc)}); fix the quoting of that line.")
        return None
    return counts


def _read_jsonl(path: Path, text: str, errors: list[str]) -> pd.DataFrame | None:
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path.name} line {n}: not valid JSON ({exc.msg}); each line must be one JSON object.")
            return None
        if not isinstance(rec, dict):
            errors.append(f"{path.name} line {n}: expected a JSON object ({{...}}), got {type(rec).__name__}; write one object per line.")
            return None
        records.append(rec)
    if not records:
        errors.append(f"{path.name}: 0 rows; add one JSON object per line.")
        return None
    return pd.DataFrame.from_records(records)


def _check_nul_cells(df: pd.DataFrame, path: Path, errors: list[str]) -> bool:
    """JSONL and Parquet can carry NUL characters inside strings (the raw-text check cannot see them)."""
    for c in df.columns:
        if not (df[c].dtype == object or pd.api.types.is_string_dtype(df[c])):
            continue
        has = df[c].map(lambda v: isinstance(v, str) and "\x00" in v).to_numpy()
        if has.any():
            r = int(has.nonzero()[0][0])
            errors.append(f"{path.name} row {r + 1}, column '{c}': contains a NUL byte (\\x00); remove it.")
            return False
    return True
