"""A notice's recipients are written a chunk of subscribers at a time (issue 13, a million subscribers):
the request writes the first chunk, the worker the rest; the result is the same set of deliveries as
writing them all at once, never a duplicate, and the notice never settles before the last chunk."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import ChangeSet, Delivery, Notice, Subscriber
from registry.notify.dispatch import Dispatcher, Options
from registry.services import notices
from tests.services.test_notices import NOW, make_document, make_subscriber, make_topics, scheduled_change


def recipients(notice_id: int) -> Counter:
    return Counter(db.session.scalars(select(Delivery.email).where(Delivery.notice_id == notice_id)))


def audience(count: int, *, every: int = 4):
    """`count` subscribers; every `every`-th unconfirmed, every `every`-th + 1 deleted, some on documents."""
    topics = make_topics()
    for i in range(count):
        status = "pending" if i % every == 0 else "deleted" if i % every == 1 else "confirmed"
        make_subscriber(f"s{i:04d}@example.com", topics, ("documents",) if i % 3 else (), status=status)
    return topics


@pytest.mark.parametrize("material", [True, False])
def test_chunks_write_exactly_what_one_step_would(app, monkeypatch, material):
    audience(40)
    document = make_document()
    monkeypatch.setattr(notices, "FIRST_CHUNK", 1_000_000)
    whole = notices.start_notice(db.session, scheduled_change(material=material, document=document), now=NOW)
    assert not whole.is_expanding
    expected = recipients(whole.id)
    assert expected and sum(expected.values()) == len(expected)

    monkeypatch.setattr(notices, "FIRST_CHUNK", 7)
    chunked = notices.start_notice(db.session, scheduled_change(material=material, document=document,
                                                                title="Second"), now=NOW)
    steps = 1
    assert chunked.is_expanding and sum(recipients(chunked.id).values()) <= 7
    while True:
        steps += 1
        if notices.expand(db.session, chunked, chunk=7, now=NOW):
            break
    assert steps == 40 // 7 + 1  # ids are dense: one step per 7 subscribers, the last one closes it
    assert recipients(chunked.id) == expected


def test_a_notice_does_not_settle_while_recipients_are_still_being_written(app, monkeypatch):
    topics = make_topics()
    for i in range(10):
        make_subscriber(f"s{i}@example.com", topics)
    monkeypatch.setattr(notices, "FIRST_CHUNK", 4)
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    db.session.execute(Delivery.__table__.update().where(Delivery.notice_id == notice.id)
                       .values(status="sent"))
    assert sum(recipients(notice.id).values()) == 4
    assert notices.settle(db.session, [notice.id], now=NOW) == []
    assert notice.dispatch_completed_at is None and change_set.notice_completed_at is None
    assert notices.expand(db.session, notice, chunk=4, now=NOW) is False  # 5-8
    assert notices.expand(db.session, notice, chunk=4, now=NOW) is True  # 9-10, and the end
    assert notice.dispatch_completed_at is None  # two new rows are queued
    db.session.execute(Delivery.__table__.update().where(Delivery.notice_id == notice.id)
                       .values(status="sent"))
    assert notices.settle(db.session, [notice.id], now=NOW) == [change_set]


def test_a_withdrawal_stops_writing_recipients(app, monkeypatch):
    topics = make_topics()
    for i in range(9):
        make_subscriber(f"s{i}@example.com", topics)
    monkeypatch.setattr(notices, "FIRST_CHUNK", 3)
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    notices.cancel_unsent(db.session, change_set, now=NOW)
    db.session.refresh(notice)
    assert not notice.is_expanding
    assert notices.expand(db.session, notice, chunk=3, now=NOW) is True
    assert sum(recipients(notice.id).values()) == 3
    assert db.session.scalar(select(func.count()).select_from(Notice).where(Notice.is_expanding)) == 0


def test_the_worker_writes_the_rest_and_sends_it_all(app, monkeypatch, fake, sendgrid):
    topics = make_topics()
    for i in range(50):
        make_subscriber(f"s{i:02d}@example.com", topics)
    monkeypatch.setattr(notices, "FIRST_CHUNK", 8)
    now = now_utc()  # the worker's clock: a change due in the past would have its date moved
    change_set = scheduled_change(material=True, document=make_document(), now=now)
    notice = notices.start_notice(db.session, change_set, now=now)
    db.session.commit()
    stats = Dispatcher(db.session, sendgrid, Options(expand_chunk=8)).drain()
    assert stats.sent == 50
    assert sorted(email for email, _, _ in fake.accepted) == [f"s{i:02d}@example.com" for i in range(50)]
    db.session.refresh(notice)
    assert not notice.is_expanding and notice.dispatch_completed_at is not None
    assert change_set.notice_completed_at is not None


def test_two_workers_writing_the_same_notice_at_once_never_duplicate(app, monkeypatch, databases):
    topics = make_topics()
    for i in range(60):
        make_subscriber(f"s{i:02d}@example.com", topics)
    monkeypatch.setattr(notices, "FIRST_CHUNK", 5)
    notice = notices.start_notice(db.session, scheduled_change(material=True, document=make_document()),
                                  now=NOW)
    db.session.commit()
    notice_id = notice.id
    start, errors = threading.Barrier(2), []

    def work() -> None:
        with app.app_context():
            try:
                start.wait()
                while True:
                    row = db.session.get(Notice, notice_id)
                    done = notices.expand(db.session, row, chunk=5, now=NOW)
                    db.session.commit()
                    if done:
                        break
            except Exception as error:
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # SQLite has one writer: the loser of a race waits for the lock (or is told "database is locked",
    # which the worker retries); it never writes a row twice.
    assert all("locked" in str(e) for e in errors), errors
    db.session.expire_all()
    counts = recipients(notice_id)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert not db.session.get(Notice, notice_id).is_expanding
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 60


def test_two_workers_finishing_a_notice_at_once_settle_it(app, databases, fake, sendgrid):
    """Each worker marks its last rows sent and asks whether the notice is done, in one transaction;
    whichever asks second must see the other's rows committed, or nobody ever settles the notice."""
    if databases.backend != "postgresql":
        pytest.skip("SQLite has one writer: the second worker's update waits for the first's commit")
    topics = make_topics()
    for i in range(4):
        make_subscriber(f"s{i}@example.com", topics)
    now = now_utc()
    change_set = scheduled_change(material=True, document=make_document(), now=now)
    notice = notices.start_notice(db.session, change_set, now=now)
    db.session.execute(Delivery.__table__.update().where(Delivery.notice_id == notice.id)
                       .values(status="sending"))
    db.session.commit()
    notice_id, change_set_id = notice.id, change_set.id
    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.notice_id == notice_id)))
    first_updated, first_checked, errors = threading.Event(), threading.Event(), []

    def finish(mine: list[int], before=None, after=None) -> None:
        with app.app_context():
            try:
                worker = Dispatcher(db.session, sendgrid)
                if before:
                    before.wait(10)
                db.session.execute(Delivery.__table__.update().where(Delivery.id.in_(mine))
                                   .values(status="sent"))
                if after is first_updated:
                    first_updated.set()
                    first_checked.wait(10)
                worker._settle(notice_id, now)
                if after is first_checked:
                    first_checked.set()
                    threading.Event().wait(0.5)  # hold the transaction open a little
                db.session.commit()
            except Exception as error:
                errors.append(error)
            finally:
                db.session.remove()

    one = threading.Thread(target=finish, args=(ids[:2],), kwargs={"after": first_updated})
    two = threading.Thread(target=finish, args=(ids[2:],), kwargs={"before": first_updated,
                                                                   "after": first_checked})
    for thread in (one, two):
        thread.start()
    for thread in (one, two):
        thread.join(30)
    assert errors == []
    db.session.expire_all()
    assert db.session.get(Notice, notice_id).dispatch_completed_at is not None
    assert db.session.get(ChangeSet, change_set_id).notice_completed_at is not None


@pytest.mark.parametrize("material", [True, False])
def test_the_audience_counted_before_scheduling_is_who_the_notice_reaches(app, material):
    """The schedule page's count (services.notices.audience) against the rows the notice then writes,
    with unconfirmed, deleted, suppressed, topic-less subscribers and designated contacts in the mix."""
    from registry.models import Suppression
    from tests.factories import organisation

    audience(40)
    db.session.add_all([Suppression(email="s0002@example.com", reason="bounce", created_at=NOW),
                        Suppression(email="contact@bank.example", reason="bounce", created_at=NOW)])
    organisation(contacts=("s0006@example.com", "contact@bank.example", "new@bank.example"))
    change_set = scheduled_change(material=material, document=make_document())
    counted = notices.audience(db.session, change_set)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    while not notices.expand(db.session, notice, chunk=7, now=NOW):
        pass
    rows = db.session.execute(select(Delivery.email, Delivery.status)
                              .where(Delivery.notice_id == notice.id)).all()
    assert counted == (len(rows), sum(status == "suppressed" for _, status in rows))
    assert counted[0] > 0 and counted[1] >= 1


def run_together(*targets) -> None:
    """Each target in its own thread, started together; waits 30 s at most for each."""
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def in_app(app, errors: list):
    """A thread's target running the decorated work in an app context, its errors collected and its
    session removed."""
    def decorate(work):
        def target() -> None:
            with app.app_context():
                try:
                    work()
                except Exception as error:
                    errors.append(error)
                finally:
                    db.session.remove()
        return target
    return decorate


def chunk_held_open(app, errors: list, monkeypatch, order: list[str], sendgrid):
    """A worker's thread target that writes a notice's next chunk (Dispatcher.expand, chunks of 4) and
    holds the chunk's transaction open until another worker has done its part (an entry in `order`),
    10 s at most, then notes "chunk committed"; and an event set once the chunk is written."""
    chunk_open, write = threading.Event(), notices.expand

    def slow_expand(session, locked, **kwargs):
        last = write(session, locked, **kwargs)
        chunk_open.set()
        for _ in range(100):
            if order:
                break
            threading.Event().wait(0.1)
        order.append("chunk committed")
        return last

    monkeypatch.setattr(notices, "expand", slow_expand)

    @in_app(app, errors)
    def write_chunk() -> None:
        assert Dispatcher(db.session, sendgrid, Options(expand_chunk=4)).expand() == 1

    return chunk_open, write_chunk


def first_chunk_written(subscribers: int, monkeypatch) -> Notice:
    """A material notice to `subscribers` whose first chunk (4) is written (queued), not committed."""
    topics = make_topics()
    for i in range(subscribers):
        make_subscriber(f"s{i:02d}@example.com", topics)
    monkeypatch.setattr(notices, "FIRST_CHUNK", 4)
    notice = notices.start_notice(db.session, scheduled_change(material=True, document=make_document()),
                                  now=NOW)
    assert notice.is_expanding
    return notice


def first_chunk_sending(subscribers: int, monkeypatch) -> tuple[int, int, list[int]]:
    """A material notice to `subscribers` whose first chunk (4) is written and being sent; committed.
    (notice id, change set id, the chunk's delivery ids)"""
    notice = first_chunk_written(subscribers, monkeypatch)
    change_set = db.session.get(ChangeSet, notice.change_set_id)
    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.notice_id == notice.id)))
    db.session.execute(Delivery.__table__.update().where(Delivery.id.in_(ids)).values(status="sending"))
    db.session.commit()
    return notice.id, change_set.id, ids


def test_a_worker_finishing_rows_does_not_wait_for_the_worker_writing_the_next_chunk(app, databases,
                                                                                    monkeypatch, fake,
                                                                                    sendgrid):
    """While one worker writes a notice's next chunk of recipients (its transaction holds the notice
    row), another records its sent rows and asks whether the notice is done: it must not wait for the
    chunk. With 4 workers it did, and sending stalled behind every chunk of 10,000."""
    if databases.backend != "postgresql":
        pytest.skip("SQLite has one writer: the chunk's transaction excludes every other write anyway")
    notice_id, _change_set_id, first = first_chunk_sending(12, monkeypatch)
    order, errors = [], []
    chunk_open, write_chunk = chunk_held_open(app, errors, monkeypatch, order, sendgrid)

    @in_app(app, errors)
    def finish() -> None:
        worker = Dispatcher(db.session, sendgrid)
        chunk_open.wait(10)
        db.session.execute(Delivery.__table__.update().where(Delivery.id.in_(first)).values(status="sent"))
        worker._settle(notice_id, NOW)
        db.session.commit()
        order.append("rows recorded")

    run_together(write_chunk, finish)
    assert errors == []
    assert order == ["rows recorded", "chunk committed"]
    db.session.expire_all()
    # Not complete: the chunk's rows (and the last chunk's) are still to send.
    assert db.session.get(Notice, notice_id).dispatch_completed_at is None
    assert sum(recipients(notice_id).values()) == 8


def test_a_worker_sending_a_notice_does_not_wait_for_the_worker_writing_its_next_chunk(app, databases,
                                                                                      monkeypatch, fake,
                                                                                      sendgrid):
    """Dispatcher.expand holds the notice's row while it writes a chunk; another worker claims, sends
    and records the notice's first rows meanwhile. Each request's send_attempts row references the
    notice (its foreign key check takes FOR KEY SHARE), so a FOR UPDATE on the notice made every sender
    wait for every chunk of 10,000 (bench/million_bench.py, 4 workers); FOR NO KEY UPDATE does not."""
    if databases.backend != "postgresql":
        pytest.skip("SQLite has one writer: the chunk's transaction excludes every other write anyway")
    from registry.notify import messages

    notice = first_chunk_written(12, monkeypatch)
    notice_id = notice.id
    # The notice's hash of its message, as the first worker to render it records: that one UPDATE of
    # the notice row does wait for a chunk being written, once per notice and plan.
    messages.notice_batch_message(db.session, notice)
    db.session.commit()
    order, errors = [], []
    chunk_open, write_chunk = chunk_held_open(app, errors, monkeypatch, order, sendgrid)

    @in_app(app, errors)
    def send() -> None:
        chunk_open.wait(10)
        assert Dispatcher(db.session, sendgrid).send_deliveries() == 4
        order.append("first rows sent")

    run_together(write_chunk, send)
    assert errors == []
    assert order == ["first rows sent", "chunk committed"]
    assert fake.count() == 4
    assert sum(recipients(notice_id).values()) == 8


def test_the_last_chunk_and_a_worker_finishing_the_rows_before_it_settle_the_notice(app, databases,
                                                                                   monkeypatch, fake,
                                                                                   sendgrid):
    """The last step of writing recipients finds nothing more to write while a worker records the
    notice's last sent rows: whichever counts second sees the other's work, and the notice completes."""
    if databases.backend != "postgresql":
        pytest.skip("SQLite has one writer: the two transactions cannot overlap")
    # Exactly 4 subscribers in a first chunk of 4: the notice is still expanding, with nothing left.
    notice_id, change_set_id, ids = first_chunk_sending(4, monkeypatch)
    both_written, errors = threading.Barrier(2, timeout=10), []

    def last_chunk() -> None:
        with app.app_context():
            try:
                locked = db.session.scalar(notices.unexpanded().limit(1).with_for_update(skip_locked=True))
                assert notices.expand(db.session, locked, chunk=4, now=NOW)
                both_written.wait()
                db.session.commit()
            except Exception as error:
                errors.append(error)
            finally:
                db.session.remove()

    def finish() -> None:
        with app.app_context():
            try:
                worker = Dispatcher(db.session, sendgrid)
                db.session.execute(Delivery.__table__.update().where(Delivery.id.in_(ids))
                                   .values(status="sent"))
                both_written.wait()
                worker._settle(notice_id, NOW)
                db.session.commit()
            except Exception as error:
                errors.append(error)
            finally:
                db.session.remove()

    run_together(last_chunk, finish)
    assert errors == []
    db.session.expire_all()
    assert not db.session.get(Notice, notice_id).is_expanding
    assert db.session.get(Notice, notice_id).dispatch_completed_at is not None
    assert db.session.get(ChangeSet, change_set_id).notice_completed_at is not None


def test_the_worker_refreshes_the_deliveries_statistics_before_it_claims(app, databases, monkeypatch,
                                                                        fake, sendgrid):
    """PostgreSQL plans the claim from the share of rows it believes queued: the worker analyzes the
    table after its first chunk of a notice's recipients (then every tenth and the last), so its
    first claim of those rows is planned with them counted. SQLite: never."""
    from sqlalchemy import event

    notice = first_chunk_written(12, monkeypatch)
    db.session.commit()
    statements = []

    def record(_conn, _cursor, statement, *_args):
        statement = " ".join(statement.split())
        if statement.upper().startswith("ANALYZE"):
            statements.append("analyze")
        elif "FOR UPDATE SKIP LOCKED" in statement.upper() and "FROM deliveries" in statement:
            statements.append("claim")
        elif statement.startswith("INSERT INTO deliveries"):
            statements.append("chunk")

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        worker = Dispatcher(db.session, sendgrid, Options(expand_chunk=4))
        worker.drain()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert worker._chunks_written >= 3 and "chunk" in statements
    if databases.backend == "postgresql":
        first_chunk = statements.index("chunk")
        assert statements[first_chunk + 1] == "analyze"
        # Every tenth and each notice's last: far fewer than the chunks.
        assert 2 <= statements.count("analyze") <= worker._chunks_written // 2 + 1
    else:
        assert "analyze" not in statements
    db.session.expire_all()
    assert db.session.get(Notice, notice.id).dispatch_completed_at is not None
    assert sum(recipients(notice.id).values()) == 12
