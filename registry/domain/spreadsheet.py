"""Cells for CSV exports that staff and customers open in spreadsheets."""

from __future__ import annotations

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """The text, with a leading apostrophe where a spreadsheet would read a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text
