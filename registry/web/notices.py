"""Staff: dispatch progress, proof of notice and its exports, the local mailbox."""

from __future__ import annotations

import csv
import email.parser
import email.policy
import email.utils
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import nh3
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from registry.domain.spreadsheet import safe_cell
from registry.extensions import db
from registry.models import Notice
from registry.notify import messages
from registry.services import organisations
from registry.services import proof as proofs
from registry.web import params
from registry.web.access import permission_required

bp = Blueprint("notices", __name__, url_prefix="/admin/notices")

PER_PAGE = 100
MAILBOX_PER_PAGE = 50
MAX_MESSAGE = 10 * 1024 * 1024
# What the development outbox sender writes: <UTC time>-<pid>-<sequence>.eml, sortable by time.
OUTBOX_NAME = re.compile(r"[0-9]{8}T[0-9]{6,12}Z-[0-9]{1,10}-[0-9]{1,12}\.eml")
URL = re.compile(r"(https?://[^\s<>\"']+|mailto:[^\s<>\"']+)")
# The mail's own HTML is shown in a sandboxed frame: no scripts, no forms, links open a new tab.
MAIL_FRAME_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
                  "form-action 'none'; base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox")


def _cell(value: object) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection)."""
    return safe_cell("" if value is None else str(value))


@bp.get("/")
@permission_required("view")
def index():
    return render_template("notices/index.html", rows=proofs.overview(db.session))


def _proof_or_404(change_set_id: int) -> proofs.Proof:
    item = proofs.proof(db.session, change_set_id)
    if item is None or not item.notices:
        abort(404, description="This change set has no notice.")
    return item


@bp.get("/<int:change_set_id>/")
@permission_required("view")
def proof(change_set_id: int):
    item = _proof_or_404(change_set_id)
    status = params.choice("status", proofs.STATUSES)
    query = params.text("q", max_length=320)
    page = params.positive_int("page", 1)
    rows, total = proofs.recipients_page(db.session, change_set_id, page=page, per_page=PER_PAGE,
                                         status=status, email=query)
    pages = max(1, -(-total // PER_PAGE))
    if page > pages:
        abort(404, description=f"There are only {pages} pages of recipients.")
    return render_template("notices/proof.html", item=item, rows=rows, total=total, page=page, pages=pages,
                           status=status, query=query, statuses=proofs.STATUSES,
                           organisations=organisations.settlement(db.session, item.change_set))


@bp.get("/<int:change_set_id>/proof.csv")
@permission_required("view")
def proof_csv(change_set_id: int):
    _proof_or_404(change_set_id)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(proofs.EXPORT_FIELDS)
        for number, row in enumerate(proofs.export_rows(db.session, change_set_id), 1):
            writer.writerow([_cell(row[name]) for name in proofs.EXPORT_FIELDS])
            if number % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(stream_with_context(generate()), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="proof-of-notice-{change_set_id}.csv"'})


@bp.get("/<int:change_set_id>/proof.json")
@permission_required("view")
def proof_json(change_set_id: int):
    item = _proof_or_404(change_set_id)
    head = json.dumps(proofs.summary(item), ensure_ascii=False)

    def generate() -> Iterator[str]:
        yield '{"proof": ' + head + ', "recipients": ['
        separator = "\n"
        chunk = []
        for row in proofs.export_rows(db.session, change_set_id):
            chunk.append(separator + json.dumps(row, ensure_ascii=False))
            separator = ",\n"
            if len(chunk) == 500:
                yield "".join(chunk)
                chunk = []
        yield "".join(chunk) + "\n]}\n"

    return Response(stream_with_context(generate()), mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="proof-of-notice-{change_set_id}.json"'})


# -- what one recipient was sent, rebuilt from the message store ------------------------------------
# The rebuilt mail holds that recipient's live links, so only approvers and admins (who read the audit
# log) may open it.

def _sent_or_404(delivery_id: int) -> tuple:
    found = proofs.sent_message(db.session, delivery_id)
    if found is None:
        abort(404, description="No message was handed to the provider for this delivery.")
    delivery, body, values = found
    return delivery, body, messages.SentValues.from_json(values)


@bp.get("/deliveries/<int:delivery_id>/message")
@permission_required("audit")
def sent_message(delivery_id: int):
    delivery, body, sent = _sent_or_404(delivery_id)
    mail = messages.rebuild_message(body, delivery, sent)
    headers = [(key, linkify(str(value))) for key, value in mail.items()]
    notice = db.session.get(Notice, delivery.notice_id)
    return render_template("notices/sent_message.html", delivery=delivery, body=body, notice=notice,
                           subject=_header(mail, "Subject"), headers=headers,
                           text=linkify(messages.personalized(body, sent).text))


@bp.get("/deliveries/<int:delivery_id>/message.eml")
@permission_required("audit")
def sent_message_eml(delivery_id: int):
    delivery, body, sent = _sent_or_404(delivery_id)
    raw = bytes(messages.rebuild_message(body, delivery, sent))
    return Response(raw, mimetype="message/rfc822", headers={
        "Content-Disposition": f'attachment; filename="delivery-{delivery.id}.eml"'})


@bp.get("/deliveries/<int:delivery_id>/body.html")
@permission_required("audit")
def sent_message_html(delivery_id: int):
    """The HTML part as sent, sanitised, for the sandboxed frame on the message page."""
    _delivery, body, sent = _sent_or_404(delivery_id)
    return framed(messages.personalized(body, sent).html)


# -- the local outbox mailbox ----------------------------------------------------------------------

@dataclass(frozen=True)
class MailSummary:
    name: str
    sender: str
    to: str
    subject: str
    date: datetime | None


def _outbox() -> Path:
    return Path(current_app.config["REGISTRY"].instance_path) / "outbox"


def _names() -> list[str]:
    """The outbox's message files, newest first; anything not named like one is not shown."""
    try:
        names = [entry.name for entry in _outbox().iterdir()]
    except OSError:
        return []
    return sorted((n for n in names if OUTBOX_NAME.fullmatch(n)), reverse=True)


def _parse(path: Path, *, headers_only: bool = False) -> EmailMessage | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(65536 if headers_only else MAX_MESSAGE)
    except OSError:
        return None
    parser = email.parser.BytesParser(policy=email.policy.default)
    return parser.parsebytes(raw, headersonly=headers_only)


def _date(message: EmailMessage) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        return None


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message[name] or "")
    except (TypeError, ValueError, IndexError):
        return ""


@bp.get("/mailbox/")
@permission_required("view")
def mailbox():
    names = _names()
    page = params.positive_int("page", 1)
    pages = max(1, -(-len(names) // MAILBOX_PER_PAGE))
    if page > pages:
        abort(404, description=f"The mailbox has only {pages} pages.")
    mails = []
    for name in names[(page - 1) * MAILBOX_PER_PAGE:page * MAILBOX_PER_PAGE]:
        message = _parse(_outbox() / name, headers_only=True)
        if message is not None:
            mails.append(MailSummary(name, _header(message, "From"), _header(message, "To"),
                                     _header(message, "Subject"), _date(message)))
    return render_template("notices/mailbox.html", mails=mails, total=len(names), page=page, pages=pages,
                           folder=_outbox())


def _message_or_404(name: str) -> EmailMessage:
    # Only names the outbox writes: no dots, slashes or anything else that could leave the folder.
    if not OUTBOX_NAME.fullmatch(name):
        abort(404, description="There is no such message in the outbox.")
    message = _parse(_outbox() / name)
    if message is None:
        abort(404, description="There is no such message in the outbox.")
    return message


def _part(message: EmailMessage, subtype: str) -> str:
    try:
        part = message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""
    except (KeyError, LookupError, UnicodeError, ValueError, AttributeError):
        return ""


def linkify(text: str) -> list[tuple[str, str]]:
    """Text split into ("text", ...) and ("link", url) pieces; the template escapes both."""
    pieces = []
    for index, piece in enumerate(URL.split(text)):
        if piece:
            pieces.append(("link" if index % 2 else "text", piece))
    return pieces


def _one_click_target(message: EmailMessage) -> str | None:
    """The https URL of List-Unsubscribe, when it is on this site (the form may only post here)."""
    if "One-Click" not in _header(message, "List-Unsubscribe-Post"):
        return None
    match = re.search(r"<(https?://[^>]+)>", _header(message, "List-Unsubscribe"))
    if match is None:
        return None
    target = urlsplit(match.group(1))
    here = urlsplit(request.host_url)
    return match.group(1) if (target.scheme, target.netloc) == (here.scheme, here.netloc) else None


@bp.get("/mailbox/<name>")
@permission_required("view")
def message(name: str):
    mail = _message_or_404(name)
    headers = []
    for key in dict.fromkeys(mail.keys()):
        for value in mail.get_all(key) or []:
            try:
                headers.append((key, linkify(str(value))))
            except (TypeError, ValueError):
                continue
    return render_template("notices/message.html", name=name, subject=_header(mail, "Subject"),
                           sender=_header(mail, "From"), to=_header(mail, "To"), date=_date(mail),
                           headers=headers, text=linkify(_part(mail, "plain")),
                           has_html=bool(_part(mail, "html")), one_click=_one_click_target(mail))


@bp.get("/mailbox/<name>/body.html")
@permission_required("view")
def message_html(name: str):
    """The HTML part, sanitised, for the sandboxed frame on the message page."""
    return framed(_part(_message_or_404(name), "html"))


def framed(html: str) -> Response:
    """Mail HTML, sanitised, for a sandboxed frame (its own strict CSP; framed only by this site)."""
    html = nh3.clean(
        html,
        tags=nh3.ALLOWED_TAGS - {"img"},
        clean_content_tags={"script", "style", "title"},
        attributes={**nh3.ALLOWED_ATTRIBUTES, "*": {"style", "class", "lang", "dir", "title"}},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes={"http", "https", "mailto"},
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.app_template_global()
def notices_page_url(endpoint: str, page: int, **values) -> str:
    return url_for(endpoint, page=page, **{k: v for k, v in values.items() if v})
