"""Render an email from its template folder: templates/email/<name>/subject.txt, body.txt, body.html."""

from __future__ import annotations

from dataclasses import dataclass

import css_inline
from flask import render_template

_INLINER = css_inline.CSSInliner()


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(template: str, context: dict) -> RenderedEmail:
    """Needs an app context. The subject is one line; the HTML gets its <style> inlined for mail clients."""
    folder = f"email/{template}"
    subject = " ".join(render_template(f"{folder}/subject.txt", **context).split())
    text = render_template(f"{folder}/body.txt", **context).strip() + "\n"
    html = _INLINER.inline(render_template(f"{folder}/body.html", **context))
    return RenderedEmail(subject=subject, text=text, html=html)
