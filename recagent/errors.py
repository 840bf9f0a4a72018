"""The errors recagent raises for problems a user can fix.

Every message says what was wrong, where (file, row, column or field) and ends with the fix.
The CLI prints them as one line with a non-zero exit; the UI shows them as `gr.Error`.
Real bugs are not `RecagentError`s and keep their traceback.
"""

from __future__ import annotations


class RecagentError(Exception):
    """Base class for user-facing errors; ``str(err)`` is the one-line message."""

    exit_code = 1


class ConfigError(RecagentError):
    """A config file, ``--set`` override or command-line option is invalid."""

    exit_code = 2


class DataError(RecagentError):
    """An input file (catalog, interactions, users) is missing, unreadable or malformed."""


class ModelError(RecagentError):
    """A model could not be found, fetched, verified or loaded."""


class IndexError_(RecagentError):
    """The item index is missing, stale or does not match the catalog."""


def where(file: str | None = None, row: int | None = None, column: str | None = None) -> str:
    """Format a location prefix: ``items.csv row 17, column 'year'``.

    Args:
        file: file name (shown as given).
        row: 1-based data row (the header is not counted).
        column: column or field name.
    """
    parts = []
    if file:
        parts.append(str(file))
    if row is not None:
        parts.append(f"row {row}")
    loc = " ".join(parts)
    if column:
        loc = f"{loc}, column '{column}'" if loc else f"column '{column}'"
    return loc
