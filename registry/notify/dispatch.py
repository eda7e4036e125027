"""The dispatch worker: claims queued deliveries and mails, sends them, records the outcome.

Crash safety, the design in one place:
- a claim (status "sending", claimed_at, a fresh claim token) of a few requests' worth is committed
  before its Mail Send requests, and each request's result is committed right after it, by claim token;
- so the only rows whose outcome can be unknown are those of the claim a worker was sending when it
  died (or of a request whose answer was lost). They stay "sending". A webhook event (processed,
  delivered...) carrying the delivery id settles them as sent; if none came within the sending timeout,
  they are queued again with `is_resent` set, so the proof of notice says that this recipient may have
  the notice twice. A request known not to have been taken (a 429 or 500 answer, a refused connection)
  is retried without the flag;
- several workers share the queue: PostgreSQL claims with FOR UPDATE SKIP LOCKED inside one UPDATE,
  SQLite (no row locks, one writer) with the same single atomic UPDATE ... WHERE id IN (SELECT ... LIMIT).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jinja2
from sqlalchemy import ColumnElement, Select, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import Delivery, Notice, OutgoingMail, SendAttempt, User
from registry.models.users import Role
from registry.notify import messages
from registry.notify.senders import (
    MAX_PERSONALIZATIONS,
    PermanentFailure,
    Sender,
    SendResult,
    TemporaryFailure,
)
from registry.notify.webhook import apply_stored_batches
from registry.services import mail as mail_service
from registry.services import notices as notice_service
from registry.services import workflow

log = logging.getLogger(__name__)

DELIVERIES = Delivery.__table__
ATTEMPTS = SendAttempt.__table__
MAILS = OutgoingMail.__table__


@dataclass(frozen=True)
class Options:
    # Deliveries per claim: a few requests' worth, so that sending and database work overlap. After a
    # crash the whole claim is sent again (flagged) unless webhook events say what was accepted.
    batch_size: int = 4 * MAX_PERSONALIZATIONS
    # Personalizations per Mail Send request; 1 is the slow per-recipient way, kept for the benchmark.
    request_size: int = MAX_PERSONALIZATIONS
    max_attempts: int = 8
    # A row left "sending" this long by a dead worker is resolved (webhook) or sent again.
    sending_timeout: float = 600.0
    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    mail_batch_size: int = 100


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    resent: int = 0
    unknown: int = 0
    requests: int = 0
    mails_sent: int = 0
    mails_failed: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        names = ("sent", "failed", "retried", "unknown", "resent", "requests", "mails_sent", "mails_failed")
        return " ".join(f"{name}={getattr(self, name)}" for name in names)


@dataclass(frozen=True)
class _Prepared:
    """A Mail Send request ready to go: its rows, body and recipients."""

    mine: ColumnElement[bool]
    token: str
    notice_id: int
    group: list[Claimed]
    batch: messages.BatchMessage
    recipients: list[messages.Recipient]


@dataclass(frozen=True)
class _Request:
    """A Mail Send request handed to the sending thread, and what to record when it answers."""

    mine: ColumnElement[bool]
    notice_id: int
    group: list[Claimed]
    future: Future[SendResult]


@dataclass(frozen=True)
class Claimed:
    id: int
    notice_id: int
    email: str
    subscriber_id: int | None
    topic_id: int | None
    attempts: int


def backoff(attempts: int, options: Options, rng: random.Random, retry_after: float | None = None) -> float:
    """Exponential with "equal jitter" (half fixed, half random), never sooner than Retry-After."""
    ceiling = min(options.backoff_cap, options.backoff_base * 2 ** max(0, attempts - 1))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


class Dispatcher:
    def __init__(self, session: Session, sender: Sender, options: Options | None = None, *,
                 rng: random.Random | None = None, clock: Callable[[], datetime] = now_utc,
                 on_progress: Callable[[int], None] | None = None):
        self.session = session
        self.sender = sender
        self.options = options or Options()
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not a secret)
        self.clock = clock
        self.on_progress = on_progress
        self.stats = Stats()
        self._batches: OrderedDict[int, messages.BatchMessage] = OrderedDict()
        # A delivery id of each request (and each mail) whose outcome this worker could not learn.
        self._unknown: set[int] = set()
        self._unknown_mails: set[int] = set()
        # One request at a time goes to the provider, from this thread, while the main thread works on.
        self._requests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-send")

    # --- the queue -------------------------------------------------------------------------------

    def pending(self) -> int:
        """Deliveries not yet settled: queued (now or later) or being sent."""
        return self.session.scalar(select(func.count()).select_from(DELIVERIES).where(
            DELIVERIES.c.status.in_(("queued", "sending")))) or 0

    def next_due(self) -> datetime | None:
        """When the next queued row may be sent, or this worker's unknown outcomes be recovered."""
        times = []
        for table in (DELIVERIES, MAILS):
            count, dated, earliest = self.session.execute(
                select(func.count(), func.count(table.c.next_attempt_at), func.min(table.c.next_attempt_at))
                .where(table.c.status == "queued")).one()
            if count > dated:
                times.append(self.clock())
            elif earliest is not None:
                times.append(earliest)
        for table, ids in ((DELIVERIES, self._unknown), (MAILS, self._unknown_mails)):
            claimed = self.session.scalar(select(func.min(table.c.claimed_at)).where(
                table.c.id.in_(sorted(ids)), table.c.status == "sending")) if ids else None
            if claimed is not None:
                times.append(claimed + timedelta(seconds=self.options.sending_timeout))
        self.session.commit()
        return min(times) if times else None

    def recover(self) -> int:
        """Queue again what a dead worker left "sending" past the timeout.

        Rows a webhook event proved accepted are already "sent" (services.provider_events).
        Rows of a request that had gone out are flagged as possibly sent twice; rows that were claimed
        but never handed to the provider are simply queued again.
        """
        cutoff = self.clock() - timedelta(seconds=self.options.sending_timeout)
        handed_over = exists().where(
            ATTEMPTS.c.claim_token == DELIVERIES.c.claim_token,
            ATTEMPTS.c.notice_id == DELIVERIES.c.notice_id,
            DELIVERIES.c.id.between(ATTEMPTS.c.first_delivery_id, ATTEMPTS.c.last_delivery_id))
        stale = and_(DELIVERIES.c.status == "sending", DELIVERIES.c.claimed_at < cutoff)
        requeued = self.session.execute(
            update(DELIVERIES).where(stale, handed_over)
            .values(status="queued", is_resent=True, claim_token=None, next_attempt_at=None,
                    error="outcome unknown after the sending timeout: sent again")
        ).rowcount
        never_sent = self.session.execute(
            update(DELIVERIES).where(stale)
            .values(status="queued", claim_token=None, next_attempt_at=None)
        ).rowcount
        mails = self.session.execute(
            update(MAILS).where(MAILS.c.status == "sending", MAILS.c.claimed_at < cutoff)
            .values(status="queued", is_resent=True, claim_token=None, next_attempt_at=None)
        ).rowcount
        self.session.commit()
        self.stats.resent += requeued + mails
        if requeued or mails or never_sent:
            log.warning("queued again %d deliveries and %d mails whose outcome is unknown, and %d "
                        "deliveries claimed by a dead worker but never sent", requeued, mails, never_sent)
        return requeued + mails + never_sent

    def claim(self) -> tuple[str, list[Claimed]]:
        """Claim up to `batch_size` due deliveries and commit the claim."""
        now = self.clock()
        token = uuid.uuid4().hex
        size = self.options.batch_size
        due = select(DELIVERIES.c.id).where(
            DELIVERIES.c.status == "queued",
            or_(DELIVERIES.c.next_attempt_at.is_(None), DELIVERIES.c.next_attempt_at <= now),
        ).order_by(DELIVERIES.c.id).limit(size).with_for_update(skip_locked=True)
        rows = self.session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(_materialized(due)), DELIVERIES.c.status == "queued")
            .values(status="sending", claimed_at=now, claim_token=token,
                    attempts=DELIVERIES.c.attempts + 1)
            .returning(DELIVERIES.c.id, DELIVERIES.c.notice_id, DELIVERIES.c.email,
                       DELIVERIES.c.subscriber_id, DELIVERIES.c.topic_id, DELIVERIES.c.attempts)
        ).all()
        self.session.commit()
        return token, sorted((Claimed(*row) for row in rows), key=lambda c: (c.notice_id, c.id))

    # --- deliveries ------------------------------------------------------------------------------

    def batch_message(self, notice_id: int) -> messages.BatchMessage:
        """One rendered body per notice and plan, shared by every request; a few notices kept.

        The plan is read (and its row share-locked) for every request, so a date moved meanwhile is
        never sent from the cache. The body is stored in the same transaction as the request's
        attempt, before the request leaves.
        """
        plan = messages.current_plan(self.session, notice_id)
        batch = self._batches.get(notice_id)
        if batch is not None and batch.plan == plan:
            self._batches.move_to_end(notice_id)
        else:
            notice = self.session.get(Notice, notice_id)
            batch = messages.notice_batch_message(self.session, notice, plan)  # also records the hash
            self._batches[notice_id] = batch
            while len(self._batches) > 16:
                self._batches.popitem(last=False)
        messages.store_body(self.session, batch, now=self.clock())
        return batch

    def send_deliveries(self) -> int:
        """One claim, its requests and their results. Returns how many deliveries it handled.

        The database work overlaps with the provider: while one request is out, the next one's
        recipients are built, and once it answers the next request leaves before its result is recorded.
        """
        token, claimed = self.claim()
        if not claimed:
            return 0
        in_flight: _Request | None = None
        for notice_id, group in _group(claimed, self.options.request_size):
            prepared = self._prepare(token, notice_id, group)
            if in_flight is not None:
                in_flight.future.exception()  # wait for its answer, whatever it is; recorded below
            request = self._submit(prepared) if prepared is not None else None
            if in_flight is not None:
                self._finish(in_flight)
            in_flight = request
        if in_flight is not None:
            self._finish(in_flight)
        self.session.expire_all()
        if self.on_progress:
            self.on_progress(len(claimed))
        return len(claimed)

    def _prepare(self, token: str, notice_id: int, group: list[Claimed]) -> _Prepared | None:
        # The group is one notice's part of one claim: an id range, narrowed by the token (a PK range scan).
        mine = and_(DELIVERIES.c.id.between(group[0].id, group[-1].id), DELIVERIES.c.notice_id == notice_id,
                    DELIVERIES.c.claim_token == token)
        try:
            batch = self.batch_message(notice_id)
            recipients = messages.recipients((c.id, c.email, c.subscriber_id, c.topic_id) for c in group)
        except (jinja2.TemplateError, LookupError, ValueError) as error:
            self.session.rollback()
            self._fail(mine, notice_id, len(group), f"could not render the notice: {error}")
            return None
        if batch.plan is not None and batch.plan.is_withheld:
            # Withdrawn after these were claimed: like the queued ones (cancel_unsent), they never go out.
            self.session.execute(update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending").values(
                status="failed", error="not sent: the change was withdrawn", next_attempt_at=None))
            self._settle(notice_id, self.clock())
            self.session.commit()
            return None
        messages.record_sent_values(self.session, token, batch, recipients)
        return _Prepared(mine, token, notice_id, group, batch, recipients)

    def _submit(self, prepared: _Prepared) -> _Request | None:
        """Record that the request goes out (so recovery knows it may have been accepted), then send it.

        A claim that another worker recovered meanwhile (this one was stalled past the sending timeout)
        is no longer ours: it is not sent.
        """
        still_ours = self.session.scalar(select(DELIVERIES.c.id).where(
            prepared.mine, DELIVERIES.c.status == "sending").limit(1))
        if still_ours is None:
            self.session.rollback()
            log.warning("notice %s: a stale claim of %d deliveries was not sent", prepared.notice_id,
                        len(prepared.group))
            return None
        group = prepared.group
        self.session.execute(insert(ATTEMPTS).values(
            claim_token=prepared.token, notice_id=prepared.notice_id, first_delivery_id=group[0].id,
            last_delivery_id=group[-1].id, recipients=len(group), started_at=self.clock()))
        self.session.commit()
        self.stats.requests += 1
        future = self._requests.submit(self.sender.send, prepared.batch, prepared.recipients)
        return _Request(prepared.mine, prepared.notice_id, group, future)

    def _finish(self, request: _Request) -> None:
        mine, notice_id, group = request.mine, request.notice_id, request.group
        try:
            result = request.future.result()
        except TemporaryFailure as failure:
            self._retry(mine, notice_id, group, failure)
            return
        except PermanentFailure as failure:
            self._fail(mine, notice_id, len(group), failure.reason)
            return
        now = self.clock()
        # A webhook may already have said "sent" (SendGrid is quick); the message id is still ours.
        done = self.session.execute(
            update(DELIVERIES).where(mine, DELIVERIES.c.status.in_(("sending", "sent")))
            .values(status="sent", sent_at=func.coalesce(DELIVERIES.c.sent_at, now),
                    provider_message_id=result.message_id, next_attempt_at=None, error=None)
        ).rowcount
        self._settle(notice_id, now)
        self.session.commit()
        self.stats.sent += done

    def _settle(self, notice_id: int, now: datetime) -> None:
        """services.notices.settle, skipped (cheaply) while the notice still has rows to send."""
        for status in ("queued", "sending"):
            if self.session.scalar(select(DELIVERIES.c.id).where(
                    DELIVERIES.c.status == status, DELIVERIES.c.notice_id == notice_id).limit(1)) is not None:
                return
        notice_service.settle(self.session, [notice_id], now=now)

    def _retry(self, mine, notice_id: int, group: list[Claimed], failure: TemporaryFailure) -> None:
        reason = failure.reason[:1000]
        if failure.outcome_unknown:
            # The provider may have taken it: leave it "sending" for a webhook event to settle, or for
            # `recover` to send again, flagged, once the sending timeout has passed.
            self.session.execute(update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
                                 .values(error=f"outcome unknown: {reason}"))
            self.session.commit()
            self._unknown.add(group[0].id)
            self.stats.unknown += len(group)
            log.warning("notice %s: outcome of %d deliveries unknown (%s)", notice_id, len(group), reason)
            return
        attempts = max(c.attempts for c in group)
        if attempts >= self.options.max_attempts:
            self._fail(mine, notice_id, len(group), f"gave up after {attempts} attempts: {reason}")
            return
        delay = backoff(attempts, self.options, self.rng, failure.retry_after)
        count = self.session.execute(
            update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
            .values(status="queued", claim_token=None, error=reason,
                    next_attempt_at=self.clock() + timedelta(seconds=delay))
        ).rowcount
        self.session.commit()
        self.stats.retried += count
        log.warning("notice %s: %d deliveries retry in %.1fs (%s)", notice_id, count, delay, reason)

    def _fail(self, mine, notice_id: int, count: int, reason: str) -> None:
        now = self.clock()
        failed = self.session.execute(
            update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
            .values(status="failed", error=reason[:1000], next_attempt_at=None)
        ).rowcount
        alert_staff(self.session, notice_id=notice_id, count=failed, reason=reason, now=now)
        self._settle(notice_id, now)
        self.session.commit()
        self.stats.failed += failed
        log.error("notice %s: %d deliveries failed: %s", notice_id, failed, reason)

    # --- single mails ----------------------------------------------------------------------------

    def send_mails(self) -> int:
        now = self.clock()
        token = uuid.uuid4().hex
        due = select(MAILS.c.id).where(
            MAILS.c.status == "queued",
            or_(MAILS.c.next_attempt_at.is_(None), MAILS.c.next_attempt_at <= now),
        ).order_by(MAILS.c.id).limit(self.options.mail_batch_size).with_for_update(skip_locked=True)
        claimed = self.session.execute(
            update(MAILS).where(MAILS.c.id.in_(_materialized(due)), MAILS.c.status == "queued")
            .values(status="sending", claimed_at=now, claim_token=token, attempts=MAILS.c.attempts + 1)
            .returning(MAILS.c.id)
        ).scalars().all()
        self.session.commit()
        for mail_id in sorted(claimed):
            self._send_mail(self.session.get(OutgoingMail, mail_id), token)
        self.session.expire_all()
        return len(claimed)

    def _send_mail(self, mail: OutgoingMail, token: str) -> None:
        if mail is None or mail.claim_token != token or mail.status != "sending":
            return
        try:
            rendered = messages.render_email(mail.template, dict(mail.context or {}))
        except (jinja2.TemplateError, LookupError, TypeError, ValueError) as error:
            self._mail_done(mail, status="failed", error=f"could not render {mail.template!r}: {error}")
            return
        batch = messages.BatchMessage(
            subject=rendered.subject, text=rendered.text, html=rendered.html,
            body_sha256=messages.body_sha256(rendered.subject, rendered.text, rendered.html))
        recipient = messages.Recipient(email=mail.to, substitutions={}, headers={},
                                       custom_args={"outgoing_mail_id": str(mail.id)})
        self.stats.requests += 1
        try:
            result = self.sender.send(batch, [recipient])
        except TemporaryFailure as failure:
            if mail.attempts >= self.options.max_attempts:
                self._mail_done(mail, status="failed", error=f"gave up after {mail.attempts} attempts: "
                                                             f"{failure.reason}")
                return
            if failure.outcome_unknown:
                mail.error = f"outcome unknown: {failure.reason[:1000]}"
                self._unknown_mails.add(mail.id)
            else:
                delay = backoff(mail.attempts, self.options, self.rng, failure.retry_after)
                mail.status, mail.claim_token, mail.error = "queued", None, failure.reason[:1000]
                mail.next_attempt_at = self.clock() + timedelta(seconds=delay)
            self.session.commit()
            return
        except PermanentFailure as failure:
            self._mail_done(mail, status="failed", error=failure.reason)
            return
        self._mail_done(mail, status="sent", message_id=result.message_id)

    def _mail_done(self, mail: OutgoingMail, *, status: str, error: str | None = None,
                   message_id: str | None = None) -> None:
        mail.status, mail.error, mail.next_attempt_at = status, (error or "")[:1000] or None, None
        # The context may hold live links (a confirmation token, a signed preferences link): once the
        # mail is settled the database keeps no copy of them.
        mail.context = {}
        if status == "sent":
            mail.sent_at, mail.provider_message_id = self.clock(), message_id
            self.stats.mails_sent += 1
        else:
            # No alert mail about an alert mail: a failing staff alert would queue another one.
            self.stats.mails_failed += 1
            log.error("mail %s (%s) to %s failed: %s", mail.id, mail.template, mail.to, error)
        self.session.commit()

    # --- loops -----------------------------------------------------------------------------------

    def cycle(self) -> int:
        """Recover stale claims, then send one claim of deliveries and one of mails."""
        apply_stored_batches(self.session, clock=self.clock)  # first: events settle what recover() re-sends
        self.recover()
        return self.send_deliveries() + self.send_mails()

    def drain(self, *, max_wait: float = 900.0, sleep: Callable[[float], None] = time.sleep,
              should_stop: Callable[[], bool] = lambda: False) -> Stats:
        """Send everything due, waiting for retries due within `max_wait` seconds; then return."""
        while not should_stop():
            if self.cycle():
                continue
            due = self.next_due()
            if due is None:
                break
            wait = (due - self.clock()).total_seconds()
            if wait > max_wait:
                break
            sleep(min(max(wait, 0.01), 5.0))
        return self.stats


def _materialized(due: Select) -> Select:
    """The claim's row choice, evaluated exactly once. Inside `IN (SELECT ... LIMIT n FOR UPDATE SKIP
    LOCKED)` PostgreSQL may run the subquery again per row and so claim more than n rows."""
    chosen = due.cte("chosen").prefix_with("MATERIALIZED")
    return select(chosen.c.id)


def _group(claimed: Iterable[Claimed], size: int) -> Iterable[tuple[int, list[Claimed]]]:
    """Per notice, in chunks of at most `size` recipients."""
    group: list[Claimed] = []
    for item in claimed:
        if group and (item.notice_id != group[0].notice_id or len(group) >= size):
            yield group[0].notice_id, group
            group = []
        group.append(item)
    if group:
        yield group[0].notice_id, group


def alert_staff(session: Session, *, notice_id: int, count: int, reason: str, now: datetime) -> None:
    """Tell every approver and admin that deliveries failed for good."""
    if not count:
        return
    change_set_id = session.scalar(select(Notice.change_set_id).where(Notice.id == notice_id))
    staff = session.scalars(select(User).where(User.role.in_((Role.APPROVER, Role.ADMIN)),
                                               User.is_enabled.is_(True)).order_by(User.id))
    context = {"notice_id": notice_id, "change_set_id": change_set_id, "count": count,
               "reason": reason[:1000]}
    for user in staff:
        mail_service.queue(session, to=user.email, template="dispatch_failed", context=context, now=now)


def tick_workflow(session: Session, now: datetime) -> None:
    """Scheduled changes: postpone the overdue, record the effective (the loop does it once a minute)."""
    workflow.tick(session, now)
    session.commit()
