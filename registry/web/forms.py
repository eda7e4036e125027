"""Validators every blueprint's forms share: what a text field may contain."""

from __future__ import annotations

from wtforms.validators import ValidationError

from registry.domain.text import control_characters, invisible_characters, invisible_message


def plain_text(form, field) -> None:
    """Refuse control characters (NUL above all: PostgreSQL cannot store it) and invisible format
    characters (bidirectional overrides, zero-width spaces...), naming the first ones found."""
    value = field.data or ""
    if found := control_characters(value):
        raise ValidationError(f"Remove the control character {found[0]} from this field "
                              "(such characters cannot be stored).")
    if found := invisible_characters(value):
        raise ValidationError(invisible_message(found))


def single_line(form, field) -> None:
    if any(c in (field.data or "") for c in "\n\r\t"):
        raise ValidationError("This field must fit on one line.")
