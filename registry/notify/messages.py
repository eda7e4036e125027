"""Render emails from their template folders, and build a notice's one body and its per-recipient parts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import css_inline
from flask import current_app, render_template, url_for
from sqlalchemy.orm import Session

from registry.models import ChangeSet, Notice, Topic
from registry.services import reading

_INLINER = css_inline.CSSInliner()

# Placeholders in a notice body that SendGrid replaces per recipient (substitutions).
PREFERENCES_KEY = "-preferences_url-"
UNSUBSCRIBE_KEY = "-unsubscribe_url-"

RECORD_FIELDS = {
    "name": "name", "legal_entity": "legal entity", "address": "address", "contact": "contact",
    "purpose": "purpose", "description": "description", "data_categories": "data categories",
    "countries": "countries", "transfer_mechanism": "transfer mechanism", "website": "website",
    "feature": "feature",
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(template: str, context: dict) -> RenderedEmail:
    """Needs an app context. The subject is one line; the HTML gets its <style> inlined for mail clients."""
    folder = f"email/{template}"
    context = _PREPARE[template](context) if template in _PREPARE else context
    subject = " ".join(render_template(f"{folder}/subject.txt", **context).split())
    text = render_template(f"{folder}/body.txt", **context).strip() + "\n"
    html = _INLINER.inline(render_template(f"{folder}/body.html", **context))
    return RenderedEmail(subject=subject, text=text, html=html)


@dataclass(frozen=True)
class BatchMessage:
    """One notice body shared by every recipient; the two keys are replaced per recipient."""

    subject: str
    text: str
    html: str
    body_sha256: str


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    substitutions: dict[str, str]
    headers: dict[str, str]
    custom_args: dict[str, str]


def body_sha256(subject: str, text: str, html: str) -> str:
    """The fingerprint proof of notice shows: the three parts as sent, before per-recipient links."""
    digest = hashlib.sha256()
    for part in (subject, text, html):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def moment(value: datetime | None, timezone: str) -> dict[str, str] | None:
    """A date as the email shows it: in the legal time zone and in UTC."""
    if value is None:
        return None
    local, utc = value.astimezone(ZoneInfo(timezone)), value.astimezone(UTC)
    return {"local": f"{local.day} {local:%B %Y, %H:%M %Z}", "utc": f"{utc:%Y-%m-%d %H:%M} UTC",
            "iso": utc.isoformat()}


def absolute_urls(endpoints: list[tuple[str, dict]]) -> list[str]:
    """Absolute URLs from settings.base_url, with only an app context (the worker has no request)."""
    base_url = current_app.config["REGISTRY"].base_url
    with current_app.test_request_context("/", base_url=base_url):
        return [url_for(endpoint, _external=True, **values) for endpoint, values in endpoints]


def notice_context(session: Session, notice: Notice) -> dict:
    """Everything the notice templates show, read once per notice."""
    settings = current_app.config["REGISTRY"]
    change_set = session.get(ChangeSet, notice.change_set_id)
    topic = session.get(Topic, notice.topic_id) if notice.topic_id else None
    links: list[tuple[str, dict]] = [("public.changes", {})]
    documents = []
    for version in change_set.document_versions:
        number = version.number or 1
        before = reading.predecessor(session, version)
        documents.append({"title": version.document.title, "number": number, "summary": version.summary,
                          "is_material": version.is_material, "previous": before.number if before else None})
        if before is not None:
            links.append(("documents.compare", {"slug": version.document.slug, "from": before.number,
                                                "to": number, "view": "redline"}))
        else:
            links.append(("documents.version", {"slug": version.document.slug, "number": number}))
    subprocessors = []
    for record in change_set.subprocessor_records:
        changed = []
        if record.action == "change" and (previous := reading.previous_record(session, record)) is not None:
            changed = [label for name, label in RECORD_FIELDS.items()
                       if getattr(previous, name) != getattr(record, name)]
        subprocessors.append({"action": record.action, "name": record.name, "purpose": record.purpose,
                              "legal_entity": record.legal_entity, "countries": list(record.countries),
                              "summary": record.summary, "changed": changed})
        links.append(("subprocessors.entry", {"slug": record.subprocessor.slug}))
    urls = absolute_urls(links)
    home, item_urls = urls[0], urls[1:]
    for item, url in zip(documents + subprocessors, item_urls, strict=True):
        item["url"] = url
    zone = settings.legal_timezone
    return {
        "company": settings.company_name,
        "title": change_set.title,
        "summary": change_set.summary,
        "is_material": change_set.is_material,
        "topic": topic.name if topic else "",
        "is_administrative": bool(topic and topic.is_administrative) or change_set.is_material,
        "documents": documents,
        "subprocessors": subprocessors,
        "effective": moment(change_set.effective_at, zone),
        "effective_new_customers": moment(change_set.effective_new_customers_at, zone),
        "objection_deadline": moment(change_set.objection_deadline_at, zone),
        "timezone": zone,
        "announced": moment(change_set.published_at, zone),
        "withdrawn": moment(change_set.withdrawn_at, zone),
        "registry_url": home,
        "preferences_url": PREFERENCES_KEY,
        "unsubscribe_url": UNSUBSCRIBE_KEY,
    }


def _moved_context(context: dict) -> dict:
    """Approvers read the move in the legal time zone and in UTC, with a link to the notice's progress."""
    zone = current_app.config["REGISTRY"].legal_timezone
    values = {"change_set_id": context["change_set_id"]}
    proof, change_set = absolute_urls([("notices.proof", values), ("admin.change_set", values)])
    return {**context, "company": current_app.config["REGISTRY"].company_name, "timezone": zone,
            "before_at": moment(datetime.fromisoformat(context["before"]), zone),
            "after_at": moment(datetime.fromisoformat(context["after"]), zone), "proof_url": proof,
            "change_set_url": change_set}


def _failed_context(context: dict) -> dict:
    (proof,) = absolute_urls([("notices.proof", {"change_set_id": context["change_set_id"]})])
    return {**context, "company": current_app.config["REGISTRY"].company_name, "proof_url": proof}


# Emails whose queued context (JSON: ids and strings) needs more before it can be shown.
_PREPARE = {"effective_date_moved": _moved_context, "dispatch_failed": _failed_context}


def notice_batch_message(session: Session, notice: Notice) -> BatchMessage:
    """Render a notice once for all its recipients and record the bodies' hash on the notice."""
    template = "notice_withdrawn" if notice.kind == "withdrawal" else "notice"
    rendered = render_email(template, notice_context(session, notice))
    digest = body_sha256(rendered.subject, rendered.text, rendered.html)
    notice.body_sha256 = digest
    return BatchMessage(subject=rendered.subject, text=rendered.text, html=rendered.html, body_sha256=digest)


def recipient(delivery_id: int, email: str, subscriber_id: int, topic_id: int | None) -> Recipient:
    """One recipient's links and headers (RFC 8058 one-click unsubscribe); no database, HMAC only."""
    return recipients([(delivery_id, email, subscriber_id, topic_id)])[0]


def recipients(rows: Iterable[tuple[int, str, int, int | None]]) -> list[Recipient]:
    """Recipients for (delivery id, email, subscriber id, topic id) rows; reads the settings once."""
    from registry.services import subscriptions

    settings, secret = current_app.config["REGISTRY"], current_app.config["SECRET_KEY"]
    preferences_base = settings.base_url + subscriptions.PREFERENCES_PATH
    unsubscribe_base = settings.base_url + subscriptions.UNSUBSCRIBE_PATH
    mailto = settings.unsubscribe_mailto
    made = []
    for delivery_id, email, subscriber_id, topic_id in rows:
        preferences = preferences_base + subscriptions.preferences_token(subscriber_id, secret)
        if topic_id is None:
            # No topic to turn off (a material notice without an Administrative topic): the page.
            unsubscribe = preferences
            headers = {"List-Unsubscribe": f"<{preferences}>"}
        else:
            token = subscriptions.unsubscribe_token(subscriber_id, topic_id, secret)
            unsubscribe = unsubscribe_base + token
            headers = {"List-Unsubscribe": f"<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe-{token}>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        made.append(Recipient(email=email, headers=headers, custom_args={"delivery_id": str(delivery_id)},
                              substitutions={PREFERENCES_KEY: preferences, UNSUBSCRIBE_KEY: unsubscribe}))
    return made
