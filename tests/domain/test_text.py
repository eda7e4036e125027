"""Invisible format characters and controls, found and named for the forms' messages."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain.text import control_characters, describe, invisible_characters, invisible_message

BIDI = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]


INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u061c"]


@pytest.mark.parametrize("char", [*BIDI, *INVISIBLE])
def test_every_bidi_control_and_invisible_character_is_found(char):
    assert invisible_characters(f"Acme{char} Ltd") == [describe(char)]


def test_the_description_names_the_character():
    assert describe("\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    assert invisible_characters("exe.\u202etxt\u202c\u202e") == ["U+202E RIGHT-TO-LEFT OVERRIDE",
                                                                   "U+202C POP DIRECTIONAL FORMATTING"]
    message = invisible_message(invisible_characters("a\u200bb"))
    assert "U+200B ZERO WIDTH SPACE" in message and message.startswith("Remove the invisible")
    many = invisible_message(invisible_characters("".join(BIDI)))
    assert "and 6 more" in many and "characters" in many


def test_ordinary_text_in_any_script_passes():
    for text in ["Zoë Łódź", "株式会社", "שלום עולם", "مرحبا", "Ünïcödé — “quotes” 😀", "line\nbreak\ttab"]:
        assert invisible_characters(text) == [] and control_characters(text) == []


def test_controls_other_than_layout_are_found():
    assert control_characters("a\x00b\x1b\x7f\x85") == [describe(c) for c in "\x00\x1b\x7f\x85"]
    assert describe("\x00") == "U+0000 UNNAMED CHARACTER"  # unicodedata has no name for controls


@given(st.text())
def test_exactly_the_format_characters_are_reported(text):
    expected = list(dict.fromkeys(c for c in text if unicodedata.category(c) == "Cf"))
    assert invisible_characters(text) == [describe(c) for c in expected]
