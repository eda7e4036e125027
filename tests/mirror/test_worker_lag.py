"""The worker keeps the mirror current: the lag from an effective instant to the mirror showing it,
measured on the worker's own loop with a fake clock."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from registry import mirror
from registry.cli import notices as worker_cli
from registry.domain import clock as clock_module
from registry.domain.clock import now_utc
from tests.mirror.test_mirror import add_acme


class FakeClock:
    """Wall clock and monotonic clock that move only when the worker sleeps."""

    def __init__(self, start: datetime):
        self.at = start
        self.monotonic_at = 1000.0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.monotonic_at

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.monotonic_at += seconds


def use_fake_clock(monkeypatch, fake: FakeClock) -> None:
    original = clock_module.now_utc
    for name, module in list(sys.modules.items()):
        if name.startswith("registry") and getattr(module, "now_utc", None) is original:
            monkeypatch.setattr(module, "now_utc", fake.now)
    monkeypatch.setattr(worker_cli.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(worker_cli.time, "sleep", fake.sleep)


class IdleWorker:
    """No mail to send: the loop only ticks, refreshes the mirror and sleeps."""

    worker = "mirror-test:1"  # the name its heartbeat is recorded under

    def cycle(self):
        return 0

    def survive(self, step, failures):
        return True, step()


def shows_acme(directory: Path) -> bool:
    """Acme is in force in the mirror: in the API's list, which holds only what is in effect (the HTML
    list also shows an announced entry, as "Joins on …")."""
    page = directory / "current" / "site" / "api" / "v1" / "subprocessors" / "index.html"
    return page.exists() and "Acme Hosting" in page.read_text()


POLL = 5.0


def test_an_effective_instant_reaches_the_mirror_within_one_tick(app, tmp_path, monkeypatch):
    effective = now_utc().replace(microsecond=0) + timedelta(hours=1)
    add_acme(effective)
    # The worst case for a once-a-minute tick: the worker ticked just before the change took effect.
    fake = FakeClock(effective - timedelta(seconds=1))
    use_fake_clock(monkeypatch, fake)
    monkeypatch.setitem(app.config, "REGISTRY", app.config["REGISTRY"].with_overrides(
        mirror_dir=str(tmp_path)))
    observed: list[tuple[datetime, bool, float]] = []
    refresh = mirror.refresh

    def recording(app_, directory, now):
        started = time.perf_counter()
        result = refresh(app_, directory, now)
        observed.append((now, shows_acme(directory), time.perf_counter() - started))
        return result

    monkeypatch.setattr(mirror, "refresh", recording)
    worker_cli._loop(IdleWorker(), POLL, should_stop=lambda: fake.at > effective + timedelta(minutes=3))

    assert observed[0][:2] == (effective - timedelta(seconds=1), False)  # before: not yet in force
    first_shown = next(at for at, shown, _seconds in observed if shown)
    lag = (first_shown - effective).total_seconds()
    # The mirror knows its next effective instant, so the loop does not wait for the next tick:
    # the lag is at most one idle poll of the loop (and always within one tick).
    assert 0 < lag <= POLL < worker_cli.TICK_SECONDS
    assert all(shown for at, shown, _seconds in observed if at >= first_shown)
    build_seconds = max(seconds for _at, _shown, seconds in observed)
    print(f"\nmirror lag after an effective instant: {lag:.0f} s of fake time (a poll is {POLL:.0f} s, "
          f"one tick is "
          f"{worker_cli.TICK_SECONDS:.0f} s), plus a build of {build_seconds:.2f} s")


def test_a_worker_without_a_mirror_directory_writes_none(app, tmp_path, monkeypatch):
    fake = FakeClock(now_utc())
    use_fake_clock(monkeypatch, fake)
    calls = []
    monkeypatch.setattr(mirror, "refresh", lambda *args: calls.append(args))
    turns = iter([False, False, True])
    worker_cli._loop(IdleWorker(), 5.0, should_stop=lambda: next(turns))
    assert calls == []
    assert list(tmp_path.iterdir()) == []


def test_a_mirror_that_cannot_be_written_is_logged_and_the_worker_goes_on(app, tmp_path, monkeypatch,
                                                                           caplog):
    (tmp_path / "current").mkdir()  # not a symlink: every build is refused
    fake = FakeClock(now_utc())
    use_fake_clock(monkeypatch, fake)
    monkeypatch.setitem(app.config, "REGISTRY", app.config["REGISTRY"].with_overrides(
        mirror_dir=str(tmp_path)))
    cycles = []

    class Worker(IdleWorker):
        def cycle(self):
            cycles.append(fake.at)
            return 0

    worker_cli._loop(Worker(), 30.0, should_stop=lambda: len(cycles) >= 4)
    assert len(cycles) == 4  # the mail kept going
    assert "the static mirror in" in caplog.text and "is not a symlink" in caplog.text
