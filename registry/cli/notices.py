"""flask notices ...: the dispatch worker."""

from __future__ import annotations

import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from registry import mirror
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.notify import dispatch
from registry.notify import endpoints as webhooks
from registry.notify.senders import MAX_PERSONALIZATIONS, sender_for
from registry.services import health, inbox, objections, retention

notices_cli = AppGroup("notices", help="Send notices and queued mail.")

TICK_SECONDS = 60.0
PURGE_SECONDS = 24 * 3600.0


@notices_cli.command("dispatch")
@click.option("--once", is_flag=True,
              help="Send everything queued (waiting for retries due soon), then exit: for cron.")
@click.option("--batch-size", type=click.IntRange(1, MAX_PERSONALIZATIONS), default=MAX_PERSONALIZATIONS,
              show_default=True, help="Deliveries per Mail Send request.")
@click.option("--claim-requests", type=click.IntRange(1, 20), default=4, show_default=True,
              help="Requests' worth of deliveries claimed at once; their sending overlaps database work.")
@click.option("--client-timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds a Mail Send request waits for SendGrid's answer; without one its outcome is "
                   "unknown.")
@click.option("--sending-timeout", type=click.FloatRange(0), default=600.0, show_default=True,
              help="Seconds after a claim's last heartbeat when its deliveries still 'sending' "
                   "(a dead worker) are resolved or re-sent. At least --client-timeout times "
                   "--claim-requests.")
@click.option("--max-attempts", type=click.IntRange(1), default=3, show_default=True,
              help="Requests without an answer (each may have been accepted) before a delivery fails "
                   "rather than going out again. Failures SendGrid reports (429, 5xx) are retried until "
                   "it takes the request.")
@click.option("--backoff-base", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Seconds before the first retry; doubles with each attempt (plus jitter).")
@click.option("--poll", type=click.FloatRange(0.01), default=5.0, show_default=True,
              help="Seconds between looks at an empty queue (loop mode).")
@click.option("--max-wait", type=click.FloatRange(0), default=900.0, show_default=True,
              help="With --once: the longest wait for a retry before exiting.")
def dispatch_command(once: bool, batch_size: int, claim_requests: int, client_timeout: float,
                     sending_timeout: float, max_attempts: int, backoff_base: float, poll: float,
                     max_wait: float) -> None:
    """Send queued notice deliveries and single mails. Several workers may run at once."""
    if sending_timeout < client_timeout * claim_requests:
        # A live worker's claim could be taken over while its last request still waits for an answer,
        # and every recipient of it sent twice.
        least = client_timeout * claim_requests
        raise click.BadParameter(
            f"must be at least --client-timeout times --claim-requests ({least:g} s), "
            "or a live worker's requests would be sent again", param_hint="--sending-timeout")
    options = dispatch.Options(batch_size=batch_size * claim_requests, request_size=batch_size,
                               max_attempts=max_attempts, sending_timeout=sending_timeout,
                               backoff_base=backoff_base)
    stopping = []

    def stop(_signum, _frame) -> None:
        # Finish the request in flight and record it, then exit.
        stopping.append(True)

    previous = signal.signal(signal.SIGTERM, stop)
    sender = sender_for(current_app.config["REGISTRY"], timeout=client_timeout)
    worker = dispatch.Dispatcher(db.session, sender, options)
    bar = None
    if sys.stdout.isatty():
        total = worker.durably(worker.pending)
        db.session.commit()
        bar = click.progressbar(length=max(total, 1), label="Dispatching", show_pos=True)
        bar.__enter__()
        worker.on_progress = bar.update
    try:
        worker.durably(lambda: health.beat(db.session, worker.worker, now_utc()))
        if once:
            worker.drain(max_wait=max_wait, should_stop=lambda: bool(stopping))
        else:
            deliverer = webhooks.deliverer_for(current_app.config["REGISTRY"], db.session)
            try:
                _loop(worker, poll, should_stop=lambda: bool(stopping), deliverer=deliverer)
            finally:
                deliverer.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.__exit__(None, None, None)
        db.session.remove()
    click.echo(worker.stats.line())


def _purge() -> None:
    retention.purge(db.session)
    # Objection drafts whose address was never confirmed: nothing was sent, nothing is kept.
    objections.expire_drafts(db.session)
    db.session.commit()


def _refresh_mirror() -> datetime | None:
    """After a tick: rewrite the static mirror if anything was published, moved, withdrawn or took
    effect (or the legal date turned) since it was written. Returns when its content changes by
    itself next (the next effective instant), when the loop ticks again without waiting a whole
    tick. A mirror that cannot be written is logged and tried again at the next tick; it never
    stops the mail."""
    directory = current_app.config["REGISTRY"].mirror_dir
    if not directory:
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        result = mirror.refresh(app, Path(directory), now_utc())
    except Exception:
        db.session.rollback()
        current_app.logger.exception("the static mirror in %s was not rewritten", directory)
        return None
    if result is not None:
        current_app.logger.info("static mirror: %d files in %s", len(result.files), result.tree)
    return mirror.expires_at(Path(directory))
def _tick() -> None:
    """Once a minute: move dates and record changes in force; remind approvers of objections unanswered
    for 2 business days; the approvers' daily digest when due."""
    now = now_utc()
    dispatch.tick_workflow(db.session, now)
    inbox.unanswered_objections(db.session, now)
    inbox.daily_digest(db.session, now, legal_timezone=current_app.config["REGISTRY"].legal_timezone)
    db.session.commit()


def _loop(worker: dispatch.Dispatcher, poll: float, should_stop,
          deliverer: webhooks.Deliverer | None = None) -> None:
    """Until SIGTERM. A database that is away (a lost connection, a lock held too long) costs a pause,
    not the worker; any other error ends it, and its supervisor (systemd, `make run`) starts it again.
    Each turn records the worker's heartbeat (at most every health.BEAT_SECONDS) for the dashboard."""
    last_tick, last_purge, last_beat = 0.0, None, None
    mirror_expires_at: datetime | None = None  # the mirror's next effective instant
    failures = 0
    while not should_stop():
        if last_beat is None or time.monotonic() - last_beat >= health.BEAT_SECONDS:
            ok, _ = worker.survive(lambda: health.beat(db.session, worker.worker, now_utc()), failures)
            if not ok:
                failures += 1
                continue
            last_beat = time.monotonic()
        if last_purge is None or time.monotonic() - last_purge >= PURGE_SECONDS:
            # The subscriber retention job, daily (cron users run `flask subscribers purge`).
            ok, _ = worker.survive(lambda: _purge(), failures)
            if not ok:
                failures += 1
                continue
            last_purge = time.monotonic()
        if time.monotonic() - last_tick >= TICK_SECONDS or (
                mirror_expires_at is not None and now_utc() >= mirror_expires_at):
            ok, _ = worker.survive(_tick, failures)
            if not ok:
                failures += 1
                continue
            last_tick = time.monotonic()
            mirror_expires_at = _refresh_mirror()
        ok, handled = worker.survive(worker.cycle, failures)
        failures = 0 if ok else failures + 1
        if ok and handled:
            continue
        # Customers' webhooks, after the mail: a notice is never late because an endpoint is slow.
        if deliverer is not None:
            ok, handled = worker.survive(deliverer.cycle, failures)
            failures = 0 if ok else failures + 1
            if ok and handled:
                continue
        time.sleep(poll)
