"""The worker's heartbeat and its daily tick: what the dashboard's health line and the digest rely on."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from registry.cli import notices as notices_cli
from registry.extensions import db
from registry.models import InboxDigest, WorkerBeat
from registry.services import health

NINE_IN_WARSAW = datetime(2026, 12, 18, 8, 0, tzinfo=UTC)


def test_dispatch_once_records_a_heartbeat(app, runner):
    result = runner.invoke(args=["notices", "dispatch", "--once"])
    assert result.exit_code == 0, result.output
    beats = db.session.scalars(select(WorkerBeat)).all()
    assert len(beats) == 1 and ":" in beats[0].worker
    assert health.worker_health(db.session, beats[0].beat_at).is_alive


class OneTurn:
    """A stand-in Dispatcher for one turn of the loop: every step runs, nothing is sent."""

    worker = "test-host:42"

    def __init__(self):
        self.turns = 0

    def survive(self, step, failures):
        return True, step()

    def cycle(self) -> int:
        self.turns += 1
        return 0


def test_the_loop_beats_and_its_tick_runs_the_daily_digest(app, monkeypatch):
    monkeypatch.setattr(notices_cli, "now_utc", lambda: NINE_IN_WARSAW)
    worker = OneTurn()
    notices_cli._loop(worker, 0.01, should_stop=lambda: worker.turns >= 1)
    assert db.session.get(WorkerBeat, "test-host:42").beat_at == NINE_IN_WARSAW
    # The day's digest was considered (nothing waited, so no mail went out).
    assert db.session.get(InboxDigest, date(2026, 12, 18)).items == 0


def test_a_second_beat_of_the_same_worker_moves_its_row(app):
    health.beat(db.session, "w:1", datetime(2026, 12, 18, 8, 0, tzinfo=UTC))
    health.beat(db.session, "w:1", datetime(2026, 12, 18, 8, 1, tzinfo=UTC))
    assert [b.beat_at for b in db.session.scalars(select(WorkerBeat))] == [datetime(2026, 12, 18, 8, 1,
                                                                                    tzinfo=UTC)]
