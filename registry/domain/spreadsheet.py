"""Cells for CSV exports that staff and customers open in spreadsheets."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """The text, with a leading apostrophe where a spreadsheet would read a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


# Excel opens a CSV file as UTF-8 only when it starts with this mark; other tools show it as a stray
# character in the first column's name, so it is added only when asked for.
UTF8_BOM = "\ufeff"


def moment_cells(moment: datetime | None, zone: ZoneInfo) -> tuple[str, str]:
    """A moment as two cells: the exact UTC timestamp, and the date it falls on in the legal time zone.

    Empty for no moment: a date still waiting for a notice to go out has neither.
    """
    if moment is None:
        return "", ""
    return moment.astimezone(UTC).isoformat(), moment.astimezone(zone).date().isoformat()
