"""CSV exports never hand a spreadsheet a formula."""

import pytest

from registry.domain.spreadsheet import safe_cell


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_starts_are_defused(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["", "Acme GmbH", "a=b", "2026-12-02T00:00:00+01:00", "ü"])
def test_ordinary_text_is_unchanged(text):
    assert safe_cell(text) == text
