"""The validators shared by every form: control and invisible format characters are refused by name."""

import pytest
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from registry.web.forms import plain_text, single_line


class TitleForm(FlaskForm):
    class Meta:
        csrf = False

    title = StringField("Title", validators=[plain_text, single_line])
    body = TextAreaField("Body", validators=[plain_text])


def errors_for(app, **data) -> dict:
    with app.test_request_context("/", method="POST", data=data):
        form = TitleForm()
        form.validate()
        return form.errors


@pytest.mark.parametrize(("value", "named"), [
    ("Invoice \u202egpj.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066isolate\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("Acme\u200b Ltd", "U+200B ZERO WIDTH SPACE"),
    ("\ufeffTitle", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("soft\u00adhyphen", "U+00AD SOFT HYPHEN"),
    ("nul\x00byte", "U+0000"),
    ("escape\x1b[31m", "U+001B"),
])
def test_disguising_characters_are_refused_by_name(app, value, named):
    errors = errors_for(app, title=value, body=value)
    assert named in errors["title"][0] and named in errors["body"][0]


def test_ordinary_text_in_any_script_passes(app):
    assert errors_for(app, title="Zoë — Łódź 株式会社 שלום", body="Line one\r\nLine two\ttabbed") == {}


def test_single_line(app):
    assert errors_for(app, title="two\nlines")["title"] == ["This field must fit on one line."]
