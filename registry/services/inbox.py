"""The approvers' inbox: mails when a change set waits for review, when a comment names someone, when an
objection arrives or goes unanswered, and once a day with what waits. Each user can turn a kind off.

Mails are queued (services.mail) in the caller's transaction; the worker sends them after the commit.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime, time
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.domain import objections as objection_rules
from registry.domain.roles import can
from registry.models import ChangeSet, ChangeStatus, InboxDigest, Objection, User
from registry.services import mail
from registry.services.sql import dialect_insert

KINDS = {
    "review": "A change set is submitted for review",
    "mention": "A comment names me (@my-address)",
    "objection": "A customer objects to a change",
    "objection_unanswered": "An objection is unanswered for 2 business days",
    "digest": "Once a day, what waits for approvers (only when something does)",
}
TEMPLATE = "approver_inbox"
DIGEST_TEMPLATE = "approver_digest"
# The digest goes out at this hour of the legal time zone, or at the first worker tick after it.
DIGEST_HOUR = 8
# "@anna@example.com" in a comment names the staff user with that address.
MENTION = re.compile(r"(?<![\w.+-])@([a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+)", re.I)



def staff_url(endpoint: str, **values) -> str:
    """An absolute staff address, from settings.base_url (the worker has no request)."""
    from registry.notify.messages import absolute_urls

    return absolute_urls([(endpoint, values)])[0]


def wants(user: User, kind: str) -> bool:
    return user.is_enabled and kind not in (user.inbox_muted or [])


def set_muted(session: Session, user: User, muted: Iterable[str]) -> None:
    unknown = set(muted) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown inbox mail kinds: {', '.join(sorted(unknown))}")
    user.inbox_muted = sorted(set(muted))
    session.flush()


def approvers(session: Session) -> list[User]:
    users = session.scalars(select(User).where(User.is_enabled.is_(True)).order_by(User.email))
    return [u for u in users if can(u.role, "approve")]


def _queue(session: Session, users: Iterable[User], *, kind: str, subject: str, text: str, url: str,
           now: datetime, exclude: Collection[int], template: str = TEMPLATE, extra: dict | None = None
           ) -> list[str]:
    settings = current_app.config["REGISTRY"]
    account = staff_url("users.account")
    sent = []
    for user in users:
        if user.id in exclude or not wants(user, kind):
            continue
        mail.queue(session, to=user.email, template=template, now=now, context={
            "kind": kind, "subject": subject, "text": text, "url": url, "account_url": account,
            "company": settings.company_name, "reason": KINDS[kind], **(extra or {})})
        sent.append(user.email)
    return sent


def notify_approvers(session: Session, *, kind: str, subject: str, text: str, url: str, now: datetime,
                     exclude: Collection[int] = ()) -> list[str]:
    """Queue one mail of `kind` to every enabled approver who has not turned that kind off, except the
    users in `exclude` (ids: the actor is never mailed about their own action); returns the addresses."""
    if kind not in KINDS:
        raise ValueError(f"unknown inbox mail kind {kind!r}")
    return _queue(session, approvers(session), kind=kind, subject=subject, text=text, url=url, now=now,
                  exclude=exclude)


def change_set_submitted(session: Session, change_set: ChangeSet, *, actor: User, now: datetime) -> list[str]:
    return notify_approvers(
        session, kind="review", now=now, exclude={actor.id},
        subject=f"For review: change set #{change_set.id} {change_set.title}",
        text=f"{actor.email} submitted change set #{change_set.id} “{change_set.title}” for review. "
             "An approver who did not create or edit it may approve it.",
        url=staff_url("admin.change_set", change_set_id=change_set.id))


def mentioned(body: str) -> list[str]:
    """The addresses a comment names with @address, lower-case, each once, in order."""
    found: list[str] = []
    for match in MENTION.finditer(body):
        address = match.group(1).lower().rstrip(".")
        if address not in found:
            found.append(address)
    return found


def comment_posted(session: Session, change_set: ChangeSet, *, body: str, actor: User,
                   now: datetime) -> list[str]:
    """Mail the staff users a comment names (any role), except its author."""
    addresses = mentioned(body)[:20]
    if not addresses:
        return []
    users = session.scalars(select(User).where(func.lower(User.email).in_(addresses)).order_by(User.email))
    excerpt = body if len(body) <= 500 else body[:500] + "…"
    return _queue(session, users, kind="mention", now=now, exclude={actor.id},
                  subject=f"{actor.email} mentioned you on change set #{change_set.id}",
                  text=(f"{actor.email} wrote on change set #{change_set.id} “{change_set.title}”:"
                        f"\n\n{excerpt}"),
                  url=staff_url("admin.change_set", change_set_id=change_set.id) + "#comments")


def waiting(session: Session, now: datetime) -> list[str]:
    """What waits for approvers, one line each: change sets in review, approved ones not yet scheduled,
    objections still open."""
    from registry.services import objections  # it mails approvers through this module
    lines = []
    for change_set in session.scalars(select(ChangeSet).where(ChangeSet.status.in_(
            (ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED))).order_by(ChangeSet.status, ChangeSet.id)):
        what = "in review" if change_set.status == ChangeStatus.IN_REVIEW else "approved, not yet scheduled"
        lines.append(f"Change set #{change_set.id} {change_set.title}: {what}")
    for objection in objections.register(session):
        if objection.kind == "objection" and objection.status in objection_rules.OPEN_STATES:
            lines.append(f"Objection {objection.reference} from {objection.organisation} on change set "
                         f"#{objection.change_set_id}: {objection.status.replace('_', ' ')}")
    return lines


def objection_received(session: Session, objection: Objection, *, now: datetime) -> list[str]:
    what = "approves" if objection.kind == "approval" else "objects to"
    return notify_approvers(
        session, kind="objection", now=now,
        subject=(f"{objection.reference}: {objection.organisation} {what} "
                 f"change set #{objection.change_set_id}"),
        text=(f"{objection.contact_name} ({objection.organisation}, {objection.email}) {what} change set "
              f"#{objection.change_set_id}. Acknowledge it and answer from the objection register."),
        url=staff_url("admin_objections.show", objection_id=objection.id))


def unanswered_objections(session: Session, now: datetime) -> list[str]:
    """Once per objection: remind approvers of those without a staff answer for 2 business days. The
    reminder is a step of the objection's (internal) timeline, which is how it is sent only once."""
    from registry.services import objections

    sent: list[str] = []
    for objection in objections.unanswered(session, now):
        if objections.was_reminded(session, objection):
            continue
        objections.record_reminder(session, objection, now=now)
        sent += notify_approvers(
            session, kind="objection_unanswered", now=now,
            subject=f"Unanswered for 2 business days: {objection.reference} ({objection.organisation})",
            text=(f"Nobody has answered objection {objection.reference} from {objection.organisation} to "
                  f"change set #{objection.change_set_id} since it arrived. Acknowledge it or reply."),
            url=staff_url("admin_objections.show", objection_id=objection.id))
    return sent


def daily_digest(session: Session, now: datetime, *, legal_timezone: str) -> list[str] | None:
    """Once a legal-zone day, from DIGEST_HOUR: mail approvers what waits, if anything does.

    Returns the addresses mailed, or None when today's digest was already considered (by this worker or
    another one: the day's row is written with ON CONFLICT DO NOTHING, so exactly one of them runs it).
    """
    local = now.astimezone(ZoneInfo(legal_timezone))
    if local.time() < time(DIGEST_HOUR):
        return None
    lines = waiting(session, now)
    claimed = session.scalar(dialect_insert(session)(InboxDigest).values(
        day=local.date(), run_at=now, items=len(lines)).on_conflict_do_nothing(index_elements=["day"])
        .returning(InboxDigest.day))
    if claimed is None:
        return None
    if not lines:
        return []
    return _queue(session, approvers(session), kind="digest", now=now, exclude=(), template=DIGEST_TEMPLATE,
                  subject=f"Waiting for approvers: {len(lines)} item{'s' if len(lines) != 1 else ''}",
                  text="\n".join(lines), url=staff_url("admin.dashboard"), extra={"items": lines})
