"""The worker's webhook deliveries: claim due ones, send them signed from a thread pool, record each
attempt, retry on the schedule of domain/backoff.py, disable an endpoint that failed for 72 hours.

At least once: a delivery is claimed (status "sending", a claim token) and committed before any request
goes out; a worker that dies leaves it "sending", and after STALE_AFTER any worker claims it again, so
the receiver may see one event twice, always with the same webhook-id. Two workers never claim one row
at once: PostgreSQL skips rows another claim has locked (FOR UPDATE SKIP LOCKED), SQLite's single
writer makes the conditional UPDATE the arbiter.

Each attempt resolves the host, checks every address (domain/netguard.py) and connects to the checked
address itself, with the host name in the Host header and for TLS (SNI and certificate), so a DNS
answer that changes after the check is never used. Redirects are not followed.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import urllib3
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from registry.domain import backoff, netguard, signing
from registry.domain.clock import now_utc
from registry.models import Endpoint, EndpointAttempt, EndpointDelivery, EndpointEvent
from registry.models.endpoints import message_id
from registry.notify.dispatch import materialized
from registry.services import endpoints as service

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0
MAX_BODY = 64 * 1024
STALE_AFTER = timedelta(seconds=120)  # longer than any attempt may take
USER_AGENT = "registry-webhooks/1"

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


@dataclass(frozen=True)
class Job:
    delivery_id: int
    endpoint_id: int
    url: str
    secrets: tuple[str, ...]
    message_id: str
    body: bytes
    attempts: int
    first_attempt_at: datetime


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str
    latency_ms: int
    address: str


def post(job: Job, *, resolver: Resolver, allow_private: bool, timestamp: int) -> Outcome:
    """One attempt. Never raises: every failure is an Outcome with its reason."""
    started = time.monotonic()

    def outcome(ok: bool, code: int | None, error: str, address: str = "") -> Outcome:
        return Outcome(ok, code, error[:1000], int((time.monotonic() - started) * 1000), address)

    try:
        target = netguard.parse_url(job.url, allow_http=allow_private)
        try:
            addresses = [str(netguard.ipaddress.ip_address(target.host))]
        except ValueError:
            addresses = resolver(target.host, target.port)
        address = netguard.choose(addresses, allow_loopback=allow_private)
    except netguard.AddressRefused as error:
        return outcome(False, None, f"refused: {error}")
    except OSError as error:
        return outcome(False, None, f"could not resolve the host: {error}")
    headers = signing.headers(list(job.secrets), job.message_id, timestamp, job.body) | {
        "Host": target.host_header, "Content-Type": "application/json", "User-Agent": USER_AGENT}
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=TOTAL_TIMEOUT)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, target.port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host,
            ssl_context=ssl.create_default_context())
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen("POST", target.path, body=job.body, headers=headers, redirect=False,
                                retries=False, preload_content=False, assert_same_host=False)
        try:
            read = 0
            # The body is read, at most 64 KB, so the connection ends cleanly; it is not kept.
            while read < MAX_BODY and time.monotonic() - started < TOTAL_TIMEOUT:
                chunk = response.read(min(8192, MAX_BODY - read))
                if not chunk:
                    break
                read += len(chunk)
        finally:
            response.release_conn()
            response.close()
        code = response.status
    except urllib3.exceptions.HTTPError as error:
        return outcome(False, None, f"{type(error).__name__}: {error}", address)
    except OSError as error:
        return outcome(False, None, f"{type(error).__name__}: {error}", address)
    finally:
        pool.close()
    if time.monotonic() - started > TOTAL_TIMEOUT:
        return outcome(False, code, f"took longer than {TOTAL_TIMEOUT:g} s", address)
    if 200 <= code < 300:
        return outcome(True, code, "", address)
    if 300 <= code < 400:
        return outcome(False, code, f"HTTP {code}: redirects are not followed", address)
    return outcome(False, code, f"HTTP {code}", address)


class Deliverer:
    """Sends due webhook deliveries; the dispatch loop calls `cycle` each turn."""

    def __init__(self, session: Session, *, resolver: Resolver = system_resolver, allow_private: bool = False,
                 concurrency: int = 100, batch_size: int = 500, clock: Callable[[], datetime] = now_utc,
                 rng: random.Random | None = None):
        self.session = session
        self.resolver = resolver
        self.allow_private = allow_private
        self.batch_size = batch_size
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not a secret)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook")
        self.delivered = 0
        self.failed = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def claim(self) -> tuple[str, list[Job]]:
        """Claim up to batch_size due deliveries of enabled endpoints, and commit the claim."""
        now = self.clock()
        token = uuid.uuid4().hex
        due = select(EndpointDelivery.id).join(Endpoint, Endpoint.id == EndpointDelivery.endpoint_id).where(
            Endpoint.is_enabled.is_(True),
            or_((EndpointDelivery.status == "queued")
                & (EndpointDelivery.next_attempt_at.is_(None) | (EndpointDelivery.next_attempt_at <= now)),
                (EndpointDelivery.status == "sending") & (EndpointDelivery.claimed_at < now - STALE_AFTER)),
        ).order_by(EndpointDelivery.id).limit(self.batch_size).with_for_update(skip_locked=True,
                                                                              of=EndpointDelivery)
        rows = self._claim_rows(due, token, now)
        jobs = self._jobs(rows, now)
        self.session.commit()
        return token, jobs

    def _claim_rows(self, due, token: str, now: datetime) -> list[int]:
        table = EndpointDelivery.__table__
        stale = now - STALE_AFTER
        return list(self.session.execute(
            update(table).where(table.c.id.in_(materialized(due)),
                                or_(table.c.status == "queued",
                                    (table.c.status == "sending") & (table.c.claimed_at < stale)))
            .values(status="sending", claimed_at=now, claim_token=token, attempts=table.c.attempts + 1)
            .returning(table.c.id)).scalars())

    def _jobs(self, ids: list[int], now: datetime) -> list[Job]:
        if not ids:
            return []
        table = EndpointDelivery.__table__
        self.session.execute(update(table).where(table.c.id.in_(ids), table.c.first_attempt_at.is_(None))
                             .values(first_attempt_at=now))
        rows = self.session.execute(
            select(EndpointDelivery.id, EndpointDelivery.attempts, EndpointDelivery.first_attempt_at,
                   Endpoint.id, Endpoint.url, Endpoint.secret, Endpoint.previous_secret,
                   Endpoint.previous_secret_expires_at, EndpointEvent.uid, EndpointEvent.id)
            .join(Endpoint, Endpoint.id == EndpointDelivery.endpoint_id)
            .join(EndpointEvent, EndpointEvent.id == EndpointDelivery.event_id)
            .where(EndpointDelivery.id.in_(ids)).order_by(EndpointDelivery.id)).all()
        event_ids = {row[9] for row in rows}
        # One body per event, the same bytes for every endpoint.
        bodies = {event_id: json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
                  for event_id, payload in self.session.execute(
                      select(EndpointEvent.id, EndpointEvent.payload).where(EndpointEvent.id.in_(event_ids)))}
        jobs = []
        for delivery_id, attempts, first, endpoint_id, url, secret, previous, expires, uid, event_id in rows:
            secrets_ = (secret, previous) if previous and expires and expires > now else (secret,)
            jobs.append(Job(delivery_id, endpoint_id, url, secrets_, message_id(uid, endpoint_id),
                            bodies[event_id], attempts, first or now))
        return jobs

    def cycle(self) -> int:
        """One claim, sent concurrently, its outcomes recorded in one transaction. Returns its size."""
        token, jobs = self.claim()
        if not jobs:
            return 0
        timestamp = int(self.clock().timestamp())
        outcomes = list(self.pool.map(
            lambda job: post(job, resolver=self.resolver, allow_private=self.allow_private,
                             timestamp=timestamp), jobs))
        self.record(token, list(zip(jobs, outcomes, strict=True)))
        return len(jobs)

    def record(self, token: str, results: list[tuple[Job, Outcome]]) -> None:
        now = self.clock()
        table = EndpointDelivery.__table__
        self.session.execute(insert(EndpointAttempt), [
            {"delivery_id": job.delivery_id, "endpoint_id": job.endpoint_id, "at": now, "is_success": out.ok,
             "status_code": out.status_code, "error": out.error, "latency_ms": out.latency_ms,
             "address": out.address} for job, out in results])
        delivered = [job.delivery_id for job, out in results if out.ok]
        if delivered:
            self.session.execute(update(table).where(table.c.id.in_(delivered), table.c.claim_token == token)
                                 .values(status="delivered", delivered_at=now, next_attempt_at=None,
                                         claim_token=None, error=""))
        given_up: list[tuple[Job, Outcome]] = []
        for job, out in results:
            if out.ok:
                continue
            due = backoff.next_attempt(job.attempts, job.first_attempt_at, now, self.rng)
            if due is None:
                given_up.append((job, out))
                values = {"status": "failed", "next_attempt_at": None}
            else:
                values = {"status": "queued", "next_attempt_at": due}
            self.session.execute(update(table).where(table.c.id == job.delivery_id,
                                                     table.c.claim_token == token)
                                 .values(claim_token=None, error=out.error, **values))
        for job, out in given_up:
            service.disable(self.session, job.endpoint_id, now=now, actor="system", tell_owner=True,
                            reason=f"every attempt failed for {backoff.WINDOW.days} days (last: {out.error})")
        self.session.commit()
        self.delivered += len(delivered)
        self.failed += len(results) - len(delivered)

    def drain(self) -> int:
        """Send everything due now (for `flask registry tick` and tests)."""
        total = 0
        while handled := self.cycle():
            total += handled
        return total


def deliverer_for(settings, session: Session) -> Deliverer:
    return Deliverer(session, allow_private=settings.endpoints_allow_private)
