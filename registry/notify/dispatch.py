"""The dispatch worker: claims queued deliveries and mails, sends them, records the outcome.

Crash safety, the design in one place:
- a claim (status "sending", claimed_at, a fresh claim token, and a dispatch_claims row with a heartbeat)
  of a few requests' worth is committed before its Mail Send requests; each request renews the
  heartbeat and is logged (send_attempts) before it leaves, and its result is committed right after
  it, by claim token;
- so the only rows whose outcome can be unknown are those of a request whose answer never came (a
  timeout, a dropped connection, a worker that died). They stay "sending". A webhook event (processed,
  delivered...) carrying the delivery id settles them as sent; if none came within the sending timeout
  after the claim's last heartbeat, they are queued again with `is_resent` set, so the proof of notice
  says that this recipient may have the notice twice. Each such unknown outcome counts against
  `max_attempts`: at the last one the delivery fails instead of going out again. A claim whose heartbeat
  is recent belongs to a live worker and is never taken over, however long its requests take;
- a request known not to have been taken (a 429 or 5xx answer, a refused connection) is retried with
  capped exponential backoff until the provider takes it: the notice is not complete meanwhile, so the
  notice period does not start and a late notice moves the effective date. Staff are alerted at the
  first such failure of a notice. A Retry-After pauses every worker (provider_pauses);
- a 400 naming personalizations (addresses SendGrid's schema refuses) is split in halves, recursively,
  so that only the refused recipients fail, each with the provider's reason, and staff are alerted;
- the database work around a request survives lost connections and lock timeouts: it is rolled back
  and done again (the claim token makes it idempotent), so a 202 is recorded even if its first commit
  fails;
- several workers share the queue: PostgreSQL claims with FOR UPDATE SKIP LOCKED inside one UPDATE,
  SQLite (no row locks, one writer) with the same single atomic UPDATE ... WHERE id IN (SELECT ... LIMIT).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import jinja2
from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import (
    Delivery,
    DispatchClaim,
    Notice,
    OutgoingMail,
    ProviderPause,
    SendAttempt,
    User,
)
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
from registry.services.sql import dialect_insert

log = logging.getLogger(__name__)

DELIVERIES = Delivery.__table__
ATTEMPTS = SendAttempt.__table__
MAILS = OutgoingMail.__table__
CLAIMS = DispatchClaim.__table__
PAUSES = ProviderPause.__table__
PROVIDER = "sendgrid"
# The deliveries' statistics are refreshed after a worker's first chunk of recipients and every this many.
ANALYZE_EVERY = 10

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    # Deliveries per claim: a few requests' worth, so that sending and database work overlap. After a
    # crash the whole claim is sent again (flagged) unless webhook events say what was accepted.
    batch_size: int = 4 * MAX_PERSONALIZATIONS
    # Personalizations per Mail Send request; 1 is the slow per-recipient way, kept for the benchmark.
    request_size: int = MAX_PERSONALIZATIONS
    # Requests without an answer (each may have been accepted) before a delivery or mail fails.
    max_attempts: int = 3
    # A claim whose heartbeat is this old belongs to a dead worker: its rows are resolved or sent again.
    sending_timeout: float = 600.0
    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    # A single mail (confirmation, staff alert) is retried this long through provider failures.
    # Notice deliveries are retried until the provider takes them.
    retry_window: float = 72 * 3600.0
    mail_batch_size: int = 100
    # Subscribers per step of writing a notice's recipients (services.notices.expand).
    expand_chunk: int = notice_service.EXPAND_CHUNK
    # How long the database work of one step is retried through lost connections and lock timeouts.
    # Longer than the sending timeout is fine: a result recorded late is only written if the claim is
    # still this worker's (by token), and one recorded at all is a recipient not sent twice.
    database_patience: float = 300.0


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
    database_errors: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        names = ("sent", "failed", "retried", "unknown", "resent", "requests", "mails_sent", "mails_failed",
                 "database_errors")
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

    prepared: _Prepared
    future: Future[SendResult]

    @property
    def mine(self) -> ColumnElement[bool]:
        return self.prepared.mine

    @property
    def notice_id(self) -> int:
        return self.prepared.notice_id

    @property
    def group(self) -> list[Claimed]:
        return self.prepared.group


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
    ceiling = min(options.backoff_cap, options.backoff_base * 2 ** max(0, min(attempts - 1, 60)))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


def is_transient_database_error(error: BaseException) -> bool:
    """A lost connection (a terminated session, a restarted server) or a lock timeout (SQLite's
    "database is locked"): the same work, done again on a new connection, can succeed."""
    return isinstance(error, DBAPIError) and (error.connection_invalidated
                                              or isinstance(error, OperationalError))


class Dispatcher:
    def __init__(self, session: Session, sender: Sender, options: Options | None = None, *,
                 rng: random.Random | None = None, clock: Callable[[], datetime] = now_utc,
                 on_progress: Callable[[int], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.session = session
        self.sender = sender
        self.options = options or Options()
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not a secret)
        self.clock = clock
        self.on_progress = on_progress
        self.sleep = sleep
        self.stats = Stats()
        self._chunks_written = 0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"[:200]
        self._batches: OrderedDict[int, messages.BatchMessage] = OrderedDict()
        # A delivery id of each request (and each mail) whose outcome this worker could not learn.
        self._unknown: set[int] = set()
        self._unknown_mails: set[int] = set()
        # One request at a time goes to the provider, from this thread, while the main thread works on.
        self._requests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-send")

    # --- the database, through lost connections and locks -------------------------------------

    def durably(self, work: Callable[[], T]) -> T:
        """Run `work` (statements ending in a commit) until it succeeds.

        A lost connection or a lock timeout rolls back, waits (growing, up to 5 s) and runs it again
        on a fresh connection, for up to `database_patience` seconds. Every such piece of work is
        idempotent (it acts by claim token and on the status it expects), so a commit that succeeded
        though its answer was lost does no harm when done again.
        """
        deadline = time.monotonic() + self.options.database_patience
        delay = 0.05
        while True:
            try:
                return work()
            except DBAPIError as error:
                self.rollback()
                if not is_transient_database_error(error) or time.monotonic() >= deadline:
                    raise
                self.stats.database_errors += 1
                log.warning("database unavailable (%s); trying again in %.2fs", error.orig, delay)
                self.sleep(delay)
                delay = min(delay * 2, 5.0)

    def rollback(self) -> None:
        try:
            self.session.rollback()
        except DBAPIError:
            # The connection is gone: the pool replaces it at the next statement.
            self.session.close()

    # --- the queue -------------------------------------------------------------------------------

    def pending(self) -> int:
        """Deliveries not yet settled: queued (now or later) or being sent."""
        return self.session.scalar(select(func.count()).select_from(DELIVERIES).where(
            DELIVERIES.c.status.in_(("queued", "sending")))) or 0

    def paused_until(self) -> datetime | None:
        """The end of a provider-wide pause (a Retry-After any worker received), if it has not passed."""
        until = self.session.scalar(select(PAUSES.c.until).where(PAUSES.c.provider == PROVIDER))
        return until if until is not None and until > self.clock() else None

    def pause(self, seconds: float, reason: str) -> None:
        """Make every worker wait `seconds` before its next request; a longer pause already set stays."""
        until = self.clock() + timedelta(seconds=seconds)

        def work() -> None:
            statement = dialect_insert(self.session)(ProviderPause).values(
                provider=PROVIDER, until=until, reason=reason[:1000])
            self.session.execute(statement.on_conflict_do_update(
                index_elements=[PAUSES.c.provider],
                set_={"until": statement.excluded.until, "reason": statement.excluded.reason},
                where=PAUSES.c.until < statement.excluded.until))
            self.session.commit()

        self.durably(work)
        log.warning("the provider asked for a pause: no worker sends for %.1fs (%s)", seconds, reason)

    def next_due(self) -> datetime | None:
        """When the next queued row may be sent, or this worker's unknown outcomes be recovered."""
        def work() -> datetime | None:
            times = []
            if self.session.scalar(notice_service.unexpanded().with_only_columns(Notice.id).limit(1)):
                times.append(self.clock())
            for table in (DELIVERIES, MAILS):
                count, dated, earliest = self.session.execute(
                    select(func.count(), func.count(table.c.next_attempt_at),
                           func.min(table.c.next_attempt_at))
                    .where(table.c.status == "queued")).one()
                if count > dated:
                    times.append(self.clock())
                elif earliest is not None:
                    times.append(earliest)
            paused = self.paused_until()
            if paused is not None:
                times = [max(t, paused) for t in times]
            for table, ids in ((DELIVERIES, self._unknown), (MAILS, self._unknown_mails)):
                if not ids:
                    continue
                # From the claim's last heartbeat, as recover() counts.
                alive = func.coalesce(CLAIMS.c.heartbeat_at, table.c.claimed_at)
                joined = table.outerjoin(CLAIMS, CLAIMS.c.token == table.c.claim_token)
                claimed = self.session.scalar(
                    select(func.min(alive)).select_from(joined)
                    .where(table.c.id.in_(sorted(ids)), table.c.status == "sending"))
                if claimed is not None:
                    times.append(claimed + timedelta(seconds=self.options.sending_timeout))
            self.session.commit()
            return min(times) if times else None

        return self.durably(work)

    def recover(self) -> int:
        """Queue again what a dead worker left "sending": rows of claims whose heartbeat is older than
        the sending timeout.

        Rows a webhook event proved accepted are already "sent" (services.provider_events).
        Rows of a request that had gone out are flagged as possibly sent twice, and that unknown outcome
        counts: at the `max_attempts`-th one the row fails instead (it may well have been delivered, the
        staff are told). Rows that were claimed but never handed to the provider are simply queued again.
        """
        return self.durably(self._recover)

    def _recover(self) -> int:
        now = self.clock()
        cutoff = now - timedelta(seconds=self.options.sending_timeout)
        limit = self.options.max_attempts
        handed_over = notice_service.HANDED_OVER
        stale = and_(DELIVERIES.c.status == "sending", DELIVERIES.c.claimed_at < cutoff,
                     ~_alive(DELIVERIES, cutoff))
        reason = (f"no answer from the provider to {limit} request(s) (each may have been accepted): "
                  "not sent again")
        exhausted = self.session.execute(
            update(DELIVERIES).where(stale, handed_over, DELIVERIES.c.unknown_outcomes + 1 >= limit)
            .values(status="failed", next_attempt_at=None, error=reason,
                    unknown_outcomes=DELIVERIES.c.unknown_outcomes + 1)
            .returning(DELIVERIES.c.notice_id)
        ).scalars().all()
        # The rows whose request went out keep its claim token: it names the request (send_attempts) and
        # so the message that may have reached them, until a new claim sends them again.
        requeued = self.session.execute(
            update(DELIVERIES).where(stale, handed_over)
            .values(status="queued", is_resent=True, next_attempt_at=None,
                    unknown_outcomes=DELIVERIES.c.unknown_outcomes + 1,
                    error="outcome unknown after the sending timeout: sent again")
        ).rowcount
        never_sent = self.session.execute(
            update(DELIVERIES).where(stale)
            .values(status="queued", claim_token=None, next_attempt_at=None)
        ).rowcount
        mails = self.session.execute(
            update(MAILS)
            .where(MAILS.c.status == "sending", MAILS.c.claimed_at < cutoff, ~_alive(MAILS, cutoff))
            .values(status="queued", is_resent=True, claim_token=None, next_attempt_at=None)
        ).rowcount
        # Every row of these claims was just queued again or is settled: the claims are over.
        self.session.execute(delete(CLAIMS).where(CLAIMS.c.heartbeat_at < cutoff))
        failed_by_notice: dict[int, int] = {}
        for notice_id in exhausted:
            failed_by_notice[notice_id] = failed_by_notice.get(notice_id, 0) + 1
        for notice_id, count in sorted(failed_by_notice.items()):
            alert_staff(self.session, notice_id=notice_id, count=count, reason=reason, now=now)
        notice_service.settle(self.session, sorted(failed_by_notice), now=now)
        self.session.commit()
        self.stats.resent += requeued + mails
        self.stats.failed += len(exhausted)
        if requeued or mails or never_sent or exhausted:
            log.warning("queued again %d deliveries and %d mails whose outcome is unknown, and %d "
                        "deliveries claimed by a dead worker but never sent; %d failed after %d unknown "
                        "outcomes", requeued, mails, never_sent, len(exhausted), limit)
        return requeued + mails + never_sent + len(exhausted)

    def claim(self) -> tuple[str, list[Claimed]]:
        """Claim up to `batch_size` due deliveries and commit the claim."""
        return self.durably(self._claim)

    def _claim(self) -> tuple[str, list[Claimed]]:
        now = self.clock()
        token = uuid.uuid4().hex
        size = self.options.batch_size
        due = select(DELIVERIES.c.id).where(
            DELIVERIES.c.status == "queued",
            or_(DELIVERIES.c.next_attempt_at.is_(None), DELIVERIES.c.next_attempt_at <= now),
        ).order_by(DELIVERIES.c.id).limit(size).with_for_update(skip_locked=True)
        rows = self.session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(materialized(due)), DELIVERIES.c.status == "queued")
            .values(status="sending", claimed_at=now, claim_token=token,
                    attempts=DELIVERIES.c.attempts + 1)
            .returning(DELIVERIES.c.id, DELIVERIES.c.notice_id, DELIVERIES.c.email,
                       DELIVERIES.c.subscriber_id, DELIVERIES.c.topic_id, DELIVERIES.c.attempts)
        ).all()
        if rows:
            self.session.execute(insert(CLAIMS).values(token=token, worker=self.worker, claimed_at=now,
                                                       heartbeat_at=now))
        self.session.commit()
        return token, sorted((Claimed(*row) for row in rows), key=lambda c: (c.notice_id, c.id))

    def _heartbeat(self, token: str) -> None:
        self.session.execute(update(CLAIMS).where(CLAIMS.c.token == token).values(heartbeat_at=self.clock()))

    # --- deliveries ------------------------------------------------------------------------------

    def batch_message(self, notice_id: int) -> messages.BatchMessage:
        """One rendered body per notice and plan, shared by every request; a few notices kept.

        The plan is read (and its row share-locked) for every request, so a date moved meanwhile is
        never sent from the cache. The body is stored in the same transaction as the request's
        attempt, before the request leaves (_submit).
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
        return batch

    def send_deliveries(self) -> int:
        """One claim, its requests and their results. Returns how many deliveries it handled.

        The database work overlaps with the provider: while one request is out, the next one's
        recipients are built, and once it answers the next request leaves before its result is recorded.
        Nothing is claimed while the provider asked every worker to pause.
        """
        if self.durably(self.paused_until) is not None:
            self.rollback()
            return 0
        token, claimed = self.claim()
        if not claimed:
            return 0
        in_flight: _Request | None = None
        try:
            for notice_id, group in _group(claimed, self.options.request_size):
                prepared = self._prepare(token, notice_id, group)
                if in_flight is not None:
                    self._wait(in_flight)
                request = self._submit(prepared) if prepared is not None else None
                done, in_flight = in_flight, request
                if done is not None:
                    self._finish(done)
        finally:
            # Whatever went wrong meanwhile, the answer of a request that went out is recorded.
            if in_flight is not None:
                self._wait(in_flight)
                self._finish(in_flight)
        self.session.expire_all()
        if self.on_progress:
            self.on_progress(len(claimed))
        return len(claimed)

    def _mine(self, token: str, notice_id: int, group: list[Claimed]) -> ColumnElement[bool]:
        # One notice's part of one claim: an id range, narrowed by the token (a PK range scan).
        return and_(DELIVERIES.c.id.between(group[0].id, group[-1].id), self._notice_id() == notice_id,
                    DELIVERIES.c.claim_token == token)

    def _notice_id(self) -> ColumnElement[int]:
        """The deliveries' notice id, for conditions that other indexes serve better.

        SQLite, without statistics, chose the (notice_id, email) index for every condition naming the
        notice and walked all its rows: 18 ms a request for the settling check, 10 ms for recording a
        result, at 100,000 recipients. `notice_id + 0` keeps it on the primary key's range or the partial
        index of the status. PostgreSQL plans from statistics and gets the plain column.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            return DELIVERIES.c.notice_id + 0
        return DELIVERIES.c.notice_id

    def _prepare(self, token: str, notice_id: int, group: list[Claimed]) -> _Prepared | None:
        mine = self._mine(token, notice_id, group)
        try:
            batch = self.batch_message(notice_id)
            recipients = messages.recipients((c.id, c.email, c.subscriber_id, c.topic_id) for c in group)
        except (jinja2.TemplateError, LookupError, ValueError) as error:
            self.rollback()
            self._fail(mine, notice_id, len(group), f"could not render the notice: {error}")
            return None
        if batch.plan is not None and batch.plan.is_withheld:
            # Withdrawn after these were claimed: like the queued ones (cancel_unsent), they never go out.
            self.session.execute(update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending").values(
                status="failed", error="not sent: the change was withdrawn", next_attempt_at=None))
            self._settle(notice_id, self.clock())
            self.session.commit()
            return None
        return _Prepared(mine, token, notice_id, group, batch, recipients)

    def _submit(self, prepared: _Prepared) -> _Request | None:
        """Record that the request goes out (so recovery knows it may have been accepted), renew the
        claim's heartbeat, then send it.

        A claim that another worker recovered meanwhile (this one was stalled past the sending timeout)
        is no longer ours: it is not sent. While the provider asked for a pause (another worker got a
        Retry-After), the rows go back to the queue until it ends, at no cost of an attempt.
        """
        group = prepared.group

        def work() -> bool:
            still_ours = self.session.scalar(select(DELIVERIES.c.id).where(
                prepared.mine, DELIVERIES.c.status == "sending").limit(1))
            if still_ours is None:
                self.session.rollback()
                log.warning("notice %s: a stale claim of %d deliveries was not sent", prepared.notice_id,
                            len(group))
                return False
            paused = self.paused_until()
            if paused is not None:
                self.session.execute(
                    update(DELIVERIES).where(prepared.mine, DELIVERIES.c.status == "sending")
                    .values(status="queued", claim_token=None, next_attempt_at=paused,
                            attempts=DELIVERIES.c.attempts - 1))
                self.session.commit()
                return False
            if messages.current_plan(self.session, prepared.notice_id) != prepared.batch.plan:
                # Only after a retry (the plan's lock was lost with the rollback): the date moved since
                # the body was built, so these rows go back to the queue and get the new body.
                self.session.execute(
                    update(DELIVERIES).where(prepared.mine, DELIVERIES.c.status == "sending")
                    .values(status="queued", claim_token=None, attempts=DELIVERIES.c.attempts - 1))
                self.session.commit()
                return False
            # What the provider is handed, kept before it goes: the body and each recipient's values.
            messages.store_body(self.session, prepared.batch, now=self.clock())
            self._heartbeat(prepared.token)
            self.session.execute(insert(ATTEMPTS).values(
                claim_token=prepared.token, notice_id=prepared.notice_id, first_delivery_id=group[0].id,
                last_delivery_id=group[-1].id, recipients=len(group), started_at=self.clock(),
                message_sha256=prepared.batch.body_sha256,
                personalizations=messages.personalizations(prepared.recipients)))
            self.session.commit()
            return True

        if not self.durably(work):
            return None
        self.stats.requests += 1
        future = self._requests.submit(self.sender.send, prepared.batch, prepared.recipients)
        return _Request(prepared, future)

    def _wait(self, request: _Request) -> None:
        """Wait for the answer; a Retry-After pauses every worker before this one sends again."""
        error = request.future.exception()
        if isinstance(error, TemporaryFailure) and error.retry_after:
            self.pause(error.retry_after, error.reason)

    def _finish(self, request: _Request, refused: list[tuple[str, str]] | None = None) -> None:
        """Record a request's answer (it has come: see _wait).

        `refused` collects the addresses the provider refused while a 400 is being split, so that the
        staff get one alert for them all.
        """
        mine, notice_id, group = request.mine, request.notice_id, request.group
        try:
            result = request.future.result()
        except TemporaryFailure as failure:
            self._retry(mine, notice_id, group, failure)
            return
        except PermanentFailure as failure:
            if failure.per_recipient and len(group) > 1:
                self._split(request, refused)
            elif failure.per_recipient and refused is not None:
                self._refuse(mine, notice_id, group, failure.reason)
                refused.extend((c.email, failure.reason) for c in group)
            else:
                self._fail(mine, notice_id, len(group), failure.reason)
            return

        def work() -> int:
            now = self.clock()
            # A webhook may already have said "sent" (SendGrid is quick); the message id is still ours.
            done = self.session.execute(
                update(DELIVERIES).where(mine, DELIVERIES.c.status.in_(("sending", "sent")))
                .values(status="sent", sent_at=func.coalesce(DELIVERIES.c.sent_at, now),
                        provider_message_id=result.message_id, next_attempt_at=None, error=None)
            ).rowcount
            self._settle(notice_id, now)
            self.session.commit()
            return done

        self.stats.sent += self.durably(work)

    def _split(self, request: _Request, refused: list[tuple[str, str]] | None) -> None:
        """A 400 about some personalizations: send each half on its own, recursively, so that only the
        refused recipients fail (one bad address in 1,000 costs about 20 requests)."""
        top = refused is None
        refused = [] if top else refused
        prepared = request.prepared
        half = len(prepared.group) // 2
        for part, people in ((prepared.group[:half], prepared.recipients[:half]),
                             (prepared.group[half:], prepared.recipients[half:])):
            sub = self._submit(_Prepared(self._mine(prepared.token, prepared.notice_id, part), prepared.token,
                                         prepared.notice_id, part, prepared.batch, people))
            if sub is not None:
                self._wait(sub)
                self._finish(sub, refused)
        if top and refused:
            reason = (f"the provider refused {len(refused)} address{'' if len(refused) == 1 else 'es'}: "
                      + "; ".join(f"{email}: {why}" for email, why in refused))

            def work() -> None:
                alert_staff(self.session, notice_id=prepared.notice_id, count=len(refused), reason=reason,
                            now=self.clock())
                self.session.commit()

            self.durably(work)
            log.error("notice %s: %s", prepared.notice_id, reason[:2000])

    def _settle(self, notice_id: int, now: datetime) -> None:
        """services.notices.settle, skipped (cheaply) while the notice still has rows to send.

        Called in the transaction that recorded this worker's rows. The notice's settling lock is
        taken first (services.notices.hold_settling): of two workers finishing a notice's last rows at
        the same moment, the second to get it sees the first's rows committed. Without it each saw the
        other's rows still "sending", neither settled, and the notice never completed (the
        million-subscriber bench with 4 workers found it)."""
        notice_service.hold_settling(self.session, [notice_id])
        notice = self._notice_id()
        for status in ("queued", "sending"):
            # The status as a constant in the SQL, as the partial indexes' conditions name it.
            unsettled = DELIVERIES.c.status == literal(status, literal_execute=True)
            if self.session.scalar(select(DELIVERIES.c.id).where(unsettled, notice == notice_id)
                                   .limit(1)) is not None:
                return
        notice_service.settle(self.session, [notice_id], now=now)

    def _retry(self, mine, notice_id: int, group: list[Claimed], failure: TemporaryFailure) -> None:
        """The provider failed for its own reasons: the rows wait and go again, however long it takes,
        and the staff hear of it at the notice's first such failure."""
        reason = failure.reason[:1000]
        if failure.outcome_unknown:
            # The provider may have taken it: leave it "sending" for a webhook event to settle, or for
            # `recover` to send again, flagged, once the sending timeout has passed.
            def unknown() -> None:
                self.session.execute(update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
                                     .values(error=f"outcome unknown: {reason}"))
                self._delayed(notice_id, len(group), reason)
                self.session.commit()

            self.durably(unknown)
            self._unknown.add(group[0].id)
            self.stats.unknown += len(group)
            log.warning("notice %s: outcome of %d deliveries unknown (%s)", notice_id, len(group), reason)
            return
        attempts = max(c.attempts for c in group)
        delay = backoff(attempts, self.options, self.rng, failure.retry_after)

        def again() -> int:
            count = self.session.execute(
                update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
                .values(status="queued", claim_token=None, error=reason,
                        next_attempt_at=self.clock() + timedelta(seconds=delay))
            ).rowcount
            self._delayed(notice_id, count, reason)
            self.session.commit()
            return count

        count = self.durably(again)
        self.stats.retried += count
        log.warning("notice %s: %d deliveries retry in %.1fs (%s)", notice_id, count, delay, reason)

    def _delayed(self, notice_id: int, count: int, reason: str) -> None:
        """The first provider failure of a notice: mark it (one statement, so two workers cannot both)
        and alert the staff, in the caller's transaction."""
        now = self.clock()
        first = self.session.execute(
            update(Notice.__table__).where(Notice.__table__.c.id == notice_id,
                                           Notice.__table__.c.delayed_at.is_(None))
            .values(delayed_at=now)).rowcount
        if first:
            alert_staff(self.session, notice_id=notice_id, count=count, reason=reason, now=now,
                        template="dispatch_delayed")

    def _fail(self, mine, notice_id: int, count: int, reason: str) -> None:
        def work() -> int:
            now = self.clock()
            failed = self.session.execute(
                update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
                .values(status="failed", error=reason[:1000], next_attempt_at=None)
            ).rowcount
            alert_staff(self.session, notice_id=notice_id, count=failed, reason=reason, now=now)
            self._settle(notice_id, now)
            self.session.commit()
            return failed

        failed = self.durably(work)
        self.stats.failed += failed
        log.error("notice %s: %d deliveries failed: %s", notice_id, failed, reason)

    def _refuse(self, mine, notice_id: int, group: list[Claimed], reason: str) -> None:
        """One address the provider refuses: it fails for good with the provider's reason (the alert
        comes once the whole request is split)."""
        def work() -> int:
            failed = self.session.execute(
                update(DELIVERIES).where(mine, DELIVERIES.c.status == "sending")
                .values(status="failed", error=reason[:1000], next_attempt_at=None)
            ).rowcount
            self._settle(notice_id, self.clock())
            self.session.commit()
            return failed

        self.stats.failed += self.durably(work)

    # --- single mails ----------------------------------------------------------------------------

    def send_mails(self) -> int:
        if self.durably(self.paused_until) is not None:
            self.rollback()
            return 0
        token = uuid.uuid4().hex

        def claim() -> list[int]:
            now = self.clock()
            due = select(MAILS.c.id).where(
                MAILS.c.status == "queued",
                or_(MAILS.c.next_attempt_at.is_(None), MAILS.c.next_attempt_at <= now),
            ).order_by(MAILS.c.id).limit(self.options.mail_batch_size).with_for_update(skip_locked=True)
            claimed = self.session.execute(
                update(MAILS).where(MAILS.c.id.in_(materialized(due)), MAILS.c.status == "queued")
                .values(status="sending", claimed_at=now, claim_token=token, attempts=MAILS.c.attempts + 1)
                .returning(MAILS.c.id)
            ).scalars().all()
            if claimed:
                self.session.execute(insert(CLAIMS).values(token=token, worker=self.worker, claimed_at=now,
                                                           heartbeat_at=now))
            self.session.commit()
            return claimed

        claimed = self.durably(claim)
        for mail_id in sorted(claimed):
            self._send_mail(mail_id, token)
        self.session.expire_all()
        return len(claimed)

    def _send_mail(self, mail_id: int, token: str) -> None:
        def load() -> OutgoingMail | None:
            mail = self.session.get(OutgoingMail, mail_id, populate_existing=True)
            if mail is None or mail.claim_token != token or mail.status != "sending":
                self.session.rollback()
                return None
            paused = self.paused_until()
            if paused is not None:
                # A Retry-After came meanwhile (to any worker): back to the queue, no attempt spent.
                mail.status, mail.claim_token, mail.next_attempt_at = "queued", None, paused
                mail.attempts -= 1
                self.session.commit()
                return None
            self._heartbeat(token)
            self.session.commit()
            return mail

        mail = self.durably(load)
        if mail is None:
            return
        try:
            rendered = messages.render_email(mail.template, dict(mail.context or {}))
        except (jinja2.TemplateError, LookupError, TypeError, ValueError) as error:
            self._mail_done(mail_id, token, status="failed",
                            error=f"could not render {mail.template!r}: {error}")
            return
        batch = messages.BatchMessage(
            subject=rendered.subject, text=rendered.text, html=rendered.html,
            body_sha256=messages.body_sha256(rendered.subject, rendered.text, rendered.html))
        recipient = messages.Recipient(email=mail.to, substitutions={}, headers={},
                                       custom_args={"outgoing_mail_id": str(mail.id)})
        attempts, created_at = mail.attempts, mail.created_at
        self.stats.requests += 1
        try:
            result = self.sender.send(batch, [recipient])
        except TemporaryFailure as failure:
            if failure.retry_after:
                self.pause(failure.retry_after, failure.reason)
            self._mail_retry(mail_id, token, attempts, created_at, failure)
            return
        except PermanentFailure as failure:
            self._mail_done(mail_id, token, status="failed", error=failure.reason)
            return
        self._mail_done(mail_id, token, status="sent", message_id=result.message_id)

    def _mail_retry(self, mail_id: int, token: str, attempts: int, created_at: datetime,
                    failure: TemporaryFailure) -> None:
        now = self.clock()
        reason = failure.reason[:1000]
        if failure.outcome_unknown:
            if attempts >= self.options.max_attempts:
                error = f"no answer to {attempts} requests (each may have been accepted): {reason}"
                self._mail_done(mail_id, token, status="failed", error=error)
                return
            values: dict = {"error": f"outcome unknown: {reason}"}
            self._unknown_mails.add(mail_id)
        elif now - created_at > timedelta(seconds=self.options.retry_window):
            self._mail_done(mail_id, token, status="failed",
                            error=f"gave up after {self.options.retry_window / 3600:g} hours: {reason}")
            return
        else:
            delay = backoff(attempts, self.options, self.rng, failure.retry_after)
            values = {"status": "queued", "claim_token": None, "error": reason,
                      "next_attempt_at": now + timedelta(seconds=delay)}

        def work() -> None:
            self.session.execute(update(MAILS).where(MAILS.c.id == mail_id, MAILS.c.claim_token == token,
                                                     MAILS.c.status == "sending").values(**values))
            self.session.commit()

        self.durably(work)

    def _mail_done(self, mail_id: int, token: str, *, status: str, error: str | None = None,
                   message_id: str | None = None) -> None:
        # The context may hold live links (a confirmation token, a signed preferences link): once the
        # mail is settled the database keeps no copy of them.
        values: dict = {"status": status, "error": (error or "")[:1000] or None, "next_attempt_at": None,
                        "context": {}}
        if status == "sent":
            values |= {"sent_at": self.clock(), "provider_message_id": message_id}

        def work() -> int:
            done = self.session.execute(
                update(MAILS).where(MAILS.c.id == mail_id, MAILS.c.claim_token == token,
                                    MAILS.c.status == "sending").values(**values)).rowcount
            self.session.commit()
            return done

        self.durably(work)
        if status == "sent":
            self.stats.mails_sent += 1
        else:
            # No alert mail about an alert mail: a failing staff alert would queue another one.
            self.stats.mails_failed += 1
            log.error("mail %s failed: %s", mail_id, error)

    # --- loops -----------------------------------------------------------------------------------

    def cycle(self) -> int:
        """Recover stale claims, write one chunk of a notice's recipients, then send one claim of
        deliveries and one of mails."""
        apply_stored_batches(self.session, clock=self.clock)  # first: events settle what recover() re-sends
        self.recover()
        return self.expand() + self.send_deliveries() + self.send_mails()

    def expand(self) -> int:
        """Write the next chunk of recipients of the oldest notice that has some left (1 if it did).

        A notice another worker is expanding is skipped (PostgreSQL's SKIP LOCKED); on SQLite the
        conditional UPDATE in services.notices.expand makes the second writer a no-op. The lock is
        FOR NO KEY UPDATE: a plain FOR UPDATE, held for the whole chunk, also blocks every insert
        that references the notice (each request's send_attempts row checks its foreign key with
        FOR KEY SHARE), and the other workers' sending stalled behind each chunk of 10,000."""
        def work() -> int:
            notice = self.session.scalar(notice_service.unexpanded().limit(1)
                                         .with_for_update(skip_locked=True, key_share=True))
            if notice is None:
                self.session.commit()
                return 0
            last = notice_service.expand(self.session, notice, chunk=self.options.expand_chunk,
                                         now=self.clock())
            self.session.commit()
            return 2 if last else 1

        written = self.durably(work)
        if written:
            self._chunks_written += 1
            if written == 2 or self._chunks_written % ANALYZE_EVERY == 1:
                self.durably(self._analyze)
        return min(written, 1)

    def _analyze(self) -> None:
        """Refresh the planner's statistics of the deliveries (PostgreSQL), after this worker's first
        chunk of a notice's recipients, every tenth after it and the last.

        The claim asks for the lowest queued ids; the planner picks its plan from the share of rows it
        believes queued. Statistics from before a notice of 1,000,000 recipients was written said "few",
        so every claim read and sorted every queued row through a bitmap (0.94 s a claim, measured
        mid-way through bench/million_bench.py) instead of walking the partial index in id order. The
        database's autovacuum would analyze the table eventually; a notice does not wait for it."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("ANALYZE deliveries"))
        self.session.commit()

    def survive(self, step: Callable[[], T], failures: int) -> tuple[bool, T | None]:
        """Run one step of a loop; a database that stays unavailable past `database_patience` costs a
        pause (growing with `failures`, the failures in a row), not the worker."""
        try:
            return True, step()
        except DBAPIError as error:
            self.rollback()
            if not is_transient_database_error(error):
                raise
            self.stats.database_errors += 1
            delay = min(60.0, 0.5 * 2 ** min(failures, 7))
            log.error("database unavailable (%s); the worker goes on in %.1fs", error.orig, delay)
            self.sleep(delay)
            return False, None

    def drain(self, *, max_wait: float = 900.0, sleep: Callable[[float], None] = time.sleep,
              should_stop: Callable[[], bool] = lambda: False) -> Stats:
        """Send everything due, waiting for retries due within `max_wait` seconds; then return."""
        failures = 0
        while not should_stop():
            ok, handled = self.survive(self.cycle, failures)
            if not ok:
                failures += 1
                continue
            failures = 0
            if handled:
                continue
            ok, due = self.survive(self.next_due, failures)
            if not ok:
                failures += 1
                continue
            if due is None:
                break
            wait = (due - self.clock()).total_seconds()
            if wait > max_wait:
                break
            sleep(min(max(wait, 0.01), 5.0))
        return self.stats


def _alive(table, cutoff: datetime) -> ColumnElement[bool]:
    """The row's claim has a heartbeat newer than the cutoff: its worker is still sending it."""
    return exists().where(CLAIMS.c.token == table.c.claim_token, CLAIMS.c.heartbeat_at >= cutoff)


def materialized(due: Select) -> Select:
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


def alert_staff(session: Session, *, notice_id: int, count: int, reason: str, now: datetime,
                template: str = "dispatch_failed") -> None:
    """Tell every approver and admin that deliveries failed for good ("dispatch_failed"), or that the
    provider is failing them for now ("dispatch_delayed": retried, the notice waits)."""
    if not count:
        return
    change_set_id = session.scalar(select(Notice.change_set_id).where(Notice.id == notice_id))
    staff = session.scalars(select(User).where(User.role.in_((Role.APPROVER, Role.ADMIN)),
                                               User.is_enabled.is_(True)).order_by(User.id))
    context = {"notice_id": notice_id, "change_set_id": change_set_id, "count": count,
               "reason": reason[:1000]}
    if template == "dispatch_delayed":
        (proof,) = messages.absolute_urls([("notices.proof", {"change_set_id": change_set_id})])
        context |= {"proof_url": proof, "company": current_app.config["REGISTRY"].company_name}
    for user in staff:
        mail_service.queue(session, to=user.email, template=template, context=context, now=now)


def tick_workflow(session: Session, now: datetime) -> None:
    """Scheduled changes: postpone the overdue, record the effective (the loop does it once a minute)."""
    workflow.tick(session, now)
    session.commit()
