"""Characters a form must refuse: controls, and the invisible format characters that can disguise text."""

from __future__ import annotations

import unicodedata

# Tab and line breaks are layout; any other C0/C1 control is not (NUL above all: PostgreSQL cannot store it).
_ALLOWED_CONTROLS = frozenset("\n\r\t")


def describe(char: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: how a message names a character its reader cannot see."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'UNNAMED CHARACTER')}"


def control_characters(value: str) -> list[str]:
    """Each distinct C0/C1 control character other than tab and line breaks, described, in order."""
    return _distinct(c for c in value if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS)


def invisible_characters(value: str) -> list[str]:
    """Each distinct format character (Unicode category Cf), described, in order of appearance.

    Cf holds the bidirectional controls (U+202A-U+202E, U+2066-U+2069), which reorder what a reader
    sees (a title can read "txt.exe" as "exe.txt"), and the invisible ones (zero-width space and
    joiners, U+FEFF, the soft hyphen), which make two different strings look identical.
    """
    return _distinct(c for c in value if unicodedata.category(c) == "Cf")


def _distinct(chars) -> list[str]:
    seen: dict[str, None] = {}
    for char in chars:
        seen.setdefault(char, None)
    return [describe(c) for c in seen]


def invisible_message(found: list[str]) -> str:
    """The sentence every form shows; names at most three characters."""
    named = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    noun = "character" if len(found) == 1 else "characters"
    return f"Remove the invisible formatting {noun} {named}: it can disguise what the text says."
