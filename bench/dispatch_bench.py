"""Times `flask notices dispatch --once` sending one notice to 100,000 subscribers to a fake SendGrid.

For each database (PostgreSQL, SQLite): the worker runs as its own process against the fake SendGrid
(tests/fakes/sendgrid_server.py, another process) over HTTP through the real sendgrid client, batched
(1000 personalizations per request), then one request per recipient on a smaller sample to give the
ratio. Reports wall time (the worker's process, start-up included and shown apart), recipients/s and
the worker's peak RSS. Run as `python bench/dispatch_bench.py`; bench/run.py runs it in `make bench`.
Exits non-zero when a target is missed: >= 50x per-recipient, < 150 MB, 100,000 in < 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[:0] = [str(ROOT)]

import psycopg  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from registry import create_app  # noqa: E402
from registry.extensions import db  # noqa: E402
from registry.models import Delivery  # noqa: E402
from registry.settings import Settings  # noqa: E402
from tests.fakes.sendgrid_server import API_KEY, read_record  # noqa: E402
from tests.notify.factories import notice_with_deliveries  # noqa: E402

POSTGRES_URL = os.environ.get("REGISTRY_BENCH_DATABASE_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MIN_RATIO = 50.0
MAX_RSS_MB = 150.0
MAX_SECONDS = 10.0


@dataclass
class Run:
    backend: str
    mode: str  # "batched" or "per-recipient"
    recipients: int
    setup_seconds: float
    seconds: float  # the worker process, start to exit
    startup_seconds: float  # the same worker with nothing to send
    peak_rss_mb: float
    requests: int
    accepted: int

    @property
    def per_second(self) -> float:
        return self.recipients / self.seconds

    def as_json(self) -> dict:
        return {**asdict(self), "recipients_per_second": round(self.per_second, 1)}


class Fake:
    """The fake SendGrid in its own process, so it does not share the worker's CPU time accounting."""

    def __init__(self, folder: Path):
        self.record = folder / f"accepted-{uuid.uuid4().hex[:6]}.jsonl"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.sendgrid_server", "--port", "0",
             "--record", str(self.record)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=10)


class Database:
    def __init__(self, backend: str, folder: Path):
        self.backend, self.name = backend, f"registry_bench_{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            self.url = f"sqlite:///{folder / self.name}.db"
            return
        server = make_url(POSTGRES_URL)
        self.admin = psycopg.connect(host=server.host, port=server.port or 5432, user=server.username,
                                     password=server.password, dbname=server.database, autocommit=True)
        self.admin.execute(f'CREATE DATABASE "{self.name}"')
        self.url = server.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.backend == "postgresql":
            self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.close()


def worker(env: dict[str, str], batch_size: int, folder: Path) -> tuple[float, float, dict[str, int]]:
    """Wall seconds, peak RSS in MB and the counts the worker printed.

    The peak is the worker's VmHWM, read while it runs: rusage's ru_maxrss would carry over the high-water
    mark of this (much bigger) benchmark process, which Linux keeps across fork and exec.
    """
    out, err = folder / "worker.out", folder / "worker.err"
    peak_kb = 0
    with out.open("w") as stdout, err.open("w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "notices", "dispatch", "--once", "--batch-size", str(batch_size)],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # it may exit between poll and read
                peak_kb = max(peak_kb, _high_water_kb(status.read_text()))
            time.sleep(0.01)
        seconds = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"the worker failed ({process.returncode}): {err.read_text()[-2000:]}")
    last = out.read_text().strip().splitlines()[-1]
    counts = {k: int(v) for k, v in (pair.split("=") for pair in last.split())}
    return seconds, peak_kb / 1024, counts


def _high_water_kb(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(backend: str, mode: str, recipients: int, folder: Path) -> Run:
    database = Database(backend, folder)
    fake = Fake(folder)
    instance = folder / f"instance-{uuid.uuid4().hex[:6]}"
    settings = Settings(env="test", secret_key="bench-" + "x" * 40, database_url=database.url,
                        instance_path=instance, mail_sender="sendgrid", sendgrid_api_key=API_KEY,
                        sendgrid_api_host=fake.url)
    try:
        app = create_app(settings)
        with app.app_context():
            db.create_all()
            start = time.perf_counter()
            notice_with_deliveries(db.session, recipients, prefix=f"bench-{mode}")
            if backend == "postgresql":
                # Written here all at once, as no notice is in production (the request writes 1,000,
                # the worker the rest, analyzing after its first chunk): the statistics it would have.
                db.session.execute(text("ANALYZE deliveries"))
                db.session.commit()
            setup = time.perf_counter() - start
            db.session.remove()
            db.engine.dispose()
        env = {**os.environ, "REGISTRY_ENV": "test", "REGISTRY_DATABASE_URL": database.url,
               "REGISTRY_SECRET_KEY": settings.secret_key, "REGISTRY_INSTANCE_PATH": str(instance),
               "REGISTRY_MAIL_SENDER": "sendgrid", "REGISTRY_SENDGRID_API_KEY": API_KEY,
               "REGISTRY_SENDGRID_API_HOST": fake.url, "FLASK_APP": "wsgi"}
        seconds, rss, counts = worker(env, 1000 if mode == "batched" else 1, folder)
        startup, _, _ = worker(env, 1000, folder)
        accepted = Counter(r["delivery_id"] for r in read_record(fake.record))
        with app.app_context():
            sent = db.session.scalar(select(func.count()).where(Delivery.status == "sent"))
            db.session.remove()
            db.engine.dispose()
        if len(accepted) != recipients or set(accepted.values()) != {1} or sent != recipients:
            raise RuntimeError(f"{backend} {mode}: {len(accepted)} accepted, {sent} sent of {recipients}")
        return Run(backend=backend, mode=mode, recipients=recipients, setup_seconds=round(setup, 2),
                   seconds=round(seconds, 2), startup_seconds=round(startup, 2), peak_rss_mb=round(rss, 1),
                   requests=counts["requests"], accepted=sum(accepted.values()))
    finally:
        fake.stop()
        database.drop()


def table(runs: list[Run]) -> str:
    lines = [f"{'database':<11}{'mode':<15}{'recipients':>11}{'setup s':>9}{'worker s':>10}{'start-up s':>12}"
             f"{'recipients/s':>14}{'peak RSS MB':>13}{'requests':>10}"]
    for r in runs:
        lines.append(f"{r.backend:<11}{r.mode:<15}{r.recipients:>11,}{r.setup_seconds:>9.2f}{r.seconds:>10.2f}"
                     f"{r.startup_seconds:>12.2f}{r.per_second:>14,.0f}{r.peak_rss_mb:>13.1f}{r.requests:>10,}")
    return "\n".join(lines)


def run(recipients: int, sample: int, backends: list[str], output: Path | None) -> int:
    runs: list[Run] = []
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmp:
        for backend in backends:
            for mode, count in (("batched", recipients), ("per-recipient", sample)):
                print(f"{backend}: {mode}, {count:,} recipients...", flush=True)
                runs.append(measure(backend, mode, count, Path(tmp)))
    print()
    print(table(runs))
    print(f"\n(per-recipient is measured on {sample:,} recipients: one Mail Send request each)")
    summary = {}
    for backend in backends:
        batched, single = (r for r in runs if r.backend == backend)
        ratio = batched.per_second / single.per_second
        summary[backend] = round(ratio, 1)
        print(f"{backend}: batched is {ratio:,.0f}x per-recipient; {batched.recipients:,} in "
              f"{batched.seconds:.2f} s ({batched.seconds - batched.startup_seconds:.2f} s after start-up), "
              f"peak RSS {batched.peak_rss_mb:.0f} MB (per-recipient run: {single.peak_rss_mb:.0f} MB)")
        if ratio < MIN_RATIO:
            misses.append(f"{backend}: {ratio:.0f}x per-recipient, target {MIN_RATIO:.0f}x")
        if batched.seconds > MAX_SECONDS:
            misses.append(f"{backend}: {batched.seconds:.1f} s for {batched.recipients:,}, "
                          f"target {MAX_SECONDS} s")
        if max(batched.peak_rss_mb, single.peak_rss_mb) > MAX_RSS_MB:
            misses.append(f"{backend}: peak RSS {batched.peak_rss_mb:.0f} MB, target {MAX_RSS_MB:.0f} MB")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"runs": [r.as_json() for r in runs], "ratio": summary,
                                      "misses": misses}, indent=2) + "\n")
    for miss in misses:
        print(f"MISS {miss}", file=sys.stderr)
    return 1 if misses else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=3_000, help="recipients for the per-recipient run")
    parser.add_argument("--backend", action="append", choices=["postgresql", "sqlite"],
                        help="default: both")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    return run(args.recipients, args.sample, args.backend or ["postgresql", "sqlite"], args.json)


if __name__ == "__main__":
    sys.exit(main())
