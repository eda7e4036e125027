"""A notice to 1,000,000 subscribers on PostgreSQL: schedule, expand, dispatch with 4 workers, proof export.

1. 1,000,000 confirmed subscribers (INSERT ... SELECT generate_series) and a material change set,
   approved by one approver; another schedules it: `services.workflow.schedule` and the commit, timed
   (the service call and the commit the schedule view makes; its form parsing and redirect are not).
   The scheduling transaction writes the notice and its first chunk of recipients only.
2. 4 workers (`flask notices dispatch --once`, each its own process) write the remaining recipients in
   chunks and send everything to the fake SendGrid (tests/fakes/sendgrid_server.py, its own process)
   over HTTP through the real sendgrid client. Wall time until the last exits; each worker's peak RSS.
3. The proof of notice as CSV (services.proof.export_rows, what the staff CSV view streams), written
   to /dev/null by its own process: time and peak RSS, beside the same export of 100,000 recipients'
   worth of rows (the first 100,000) to show the memory does not grow with the size.
Checks every recipient was accepted exactly once. Targets (issue 13): schedule < 1 s, whole dispatch
< 100 s, each worker < 200 MB, the proof export in constant memory. Exits 1 when one is missed.
Run as `python bench/million_bench.py [--subscribers N] [--workers N]`.
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
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[:0] = [str(ROOT)]

from dispatch_bench import Database, Fake, _high_water_kb  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from registry import create_app  # noqa: E402
from registry.domain.clock import now_utc  # noqa: E402
from registry.extensions import db  # noqa: E402
from registry.models import ChangeSet, Delivery, Document, Notice, NoticePolicy, Topic, User  # noqa: E402
from registry.services import workflow  # noqa: E402
from registry.settings import Settings  # noqa: E402
from tests.fakes.sendgrid_server import API_KEY, read_record  # noqa: E402

MAX_SCHEDULE_SECONDS = 1.0
MAX_DISPATCH_SECONDS = 100.0
MAX_WORKER_MB = 200.0
# The export's peak may grow this much from 100,000 rows to all of them and still count as constant.
MAX_EXPORT_GROWTH_MB = 20.0

EXPORT = """
import csv, os, sys, time
from registry import create_app
from registry.extensions import db
from registry.services import proof
from registry.settings import Settings
limit = int(sys.argv[2])
app = create_app(Settings.from_env())
with app.app_context(), open(os.devnull, "w", newline="") as out:
    writer = None
    start = time.perf_counter()
    for number, row in enumerate(proof.export_rows(db.session, int(sys.argv[1])), 1):
        writer = writer or csv.DictWriter(out, fieldnames=list(row))
        writer.writerow(row)
        if number == limit:
            break
    print(number, round(time.perf_counter() - start, 2))
"""


def watch(processes: list[subprocess.Popen]) -> list[float]:
    """Wait for every process; the peak RSS (VmHWM) of each in MB, read while it runs."""
    peaks = [0] * len(processes)
    while any(p.poll() is None for p in processes):
        for i, process in enumerate(processes):
            with contextlib.suppress(OSError, ValueError):
                peaks[i] = max(peaks[i], _high_water_kb(Path(f"/proc/{process.pid}/status").read_text()))
        time.sleep(0.02)
    return [kb / 1024 for kb in peaks]


def prepare(subscribers: int) -> tuple[int, float]:
    """The audience and an approved change set; then the schedule, timed. (change set id, seconds)"""
    now = now_utc()
    db.session.add(Topic(key="administrative", name="Administrative", is_administrative=True))
    policy = NoticePolicy(key="dpa", name="DPA", length=3, unit="business_days", calendars=[],
                          timezone="Europe/Berlin", objection_days=0)
    document = Document(slug="dpa", title="Data Processing Agreement", notice_policy=policy)
    editor = User(email="editor@example.com", role="editor", password_hash="-")
    approver = User(email="approver@example.com", role="approver", password_hash="-")
    scheduler = User(email="scheduler@example.com", role="approver", password_hash="-")
    db.session.add_all([policy, document, editor, approver, scheduler])
    db.session.flush()
    db.session.execute(text(
        "INSERT INTO subscribers (email, status, source, name, company, created_at, confirmed_at, "
        "generation) "
        "SELECT 'million-' || n || '@example.com', 'confirmed', 'import', '', '', now(), now(), 1 "
        "FROM generate_series(1, :n) AS n"), {"n": subscribers})
    change_set = workflow.create(db.session, title="New sub-processor for backups", summary="Backups.",
                                 is_material=True, actor=editor, now=now)
    workflow.save_document_version(db.session, change_set, document, source_md="# DPA\n\nVersion 2.",
                                   summary="Backups move.", is_material=True, actor=editor, now=now)
    workflow.submit(db.session, change_set, actor=editor, now=now)
    workflow.approve(db.session, change_set, actor=approver, now=now)
    db.session.commit()
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    change_set = db.session.get(ChangeSet, change_set.id)
    scheduler = db.session.get(User, scheduler.id)
    start = time.perf_counter()
    workflow.schedule(db.session, change_set, effective_at=now + timedelta(days=30), actor=scheduler,
                      legal_timezone="Europe/Berlin")
    db.session.commit()
    return change_set.id, time.perf_counter() - start


def run(subscribers: int, workers: int, output: Path | None) -> int:
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="million-bench-") as tmp:
        folder = Path(tmp)
        database, fake = Database("postgresql", folder), Fake(folder)
        settings = Settings(env="test", secret_key="bench-" + "x" * 40, database_url=database.url,
                            instance_path=folder / "instance", mail_sender="sendgrid",
                            sendgrid_api_key=API_KEY, sendgrid_api_host=fake.url)
        env = {**os.environ, "REGISTRY_ENV": "test", "REGISTRY_DATABASE_URL": database.url,
               "REGISTRY_SECRET_KEY": settings.secret_key, "REGISTRY_INSTANCE_PATH": str(folder / "instance"),
               "REGISTRY_MAIL_SENDER": "sendgrid", "REGISTRY_SENDGRID_API_KEY": API_KEY,
               "REGISTRY_SENDGRID_API_HOST": fake.url, "FLASK_APP": "wsgi"}
        try:
            app = create_app(settings)
            with app.app_context():
                db.create_all()
                start = time.perf_counter()
                print(f"{subscribers:,} subscribers and an approved change set...", flush=True)
                change_set_id, schedule_seconds = prepare(subscribers)
                setup_seconds = time.perf_counter() - start - schedule_seconds
                written = db.session.scalar(select(func.count()).select_from(Delivery))
                db.session.remove()
                db.engine.dispose()
            print(f"scheduled in {schedule_seconds:.3f} s ({written:,} recipients written in the request); "
                  f"{workers} workers...", flush=True)
            logs = [(folder / f"worker-{i}.out").open("w") for i in range(workers)]
            start = time.perf_counter()
            processes = [subprocess.Popen([sys.executable, "-m", "flask", "notices", "dispatch", "--once"],
                                          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                         for log in logs]
            peaks = watch(processes)
            dispatch_seconds = time.perf_counter() - start
            for log in logs:
                log.close()
            failed = [i for i, p in enumerate(processes) if p.returncode]
            if failed:
                tail = (folder / f"worker-{failed[0]}.out").read_text()[-2000:]
                code = processes[failed[0]].returncode
                raise RuntimeError(f"worker {failed[0]} exited with {code}: {tail}")
            sent_by = [(folder / f"worker-{i}.out").read_text().strip().splitlines()[-1]
                       for i in range(workers)]
            # Single mails (the approvers' "for review" mails of the change set) carry no delivery id.
            accepted = Counter(r["delivery_id"] for r in read_record(fake.record) if r["delivery_id"])
            with app.app_context():
                sent = db.session.scalar(select(func.count()).select_from(Delivery)
                                         .where(Delivery.status == "sent"))
                completed = db.session.scalar(select(ChangeSet.notice_completed_at)
                                              .where(ChangeSet.id == change_set_id))
                expanding = db.session.scalar(select(func.count()).select_from(Notice)
                                              .where(Notice.is_expanding))
                db.session.remove()
                db.engine.dispose()
            if len(accepted) != subscribers or set(accepted.values()) != {1} or sent != subscribers:
                twice = sorted(int(d) for d, n in accepted.items() if n > 1)[:20]
                with app.app_context():
                    rows = db.session.execute(select(
                        Delivery.id, Delivery.attempts, Delivery.is_resent, Delivery.unknown_outcomes,
                        Delivery.error, Delivery.provider_message_id).where(Delivery.id.in_(twice))).all()
                    db.session.remove()
                    db.engine.dispose()
                logs = [line for i in range(workers)
                        for line in (folder / f"worker-{i}.out").read_text().splitlines()
                        if "WARNING" in line or "ERROR" in line or "unknown" in line][:40]
                raise RuntimeError(f"{len(accepted):,} accepted ({max(accepted.values(), default=0)} at most "
                                   f"for one), {sent:,} sent of {subscribers:,}; accepted twice: {rows}; "
                                   f"worker warnings: {logs}")
            if completed is None or expanding:
                raise RuntimeError("the notice did not complete")
            print(f"dispatched in {dispatch_seconds:.1f} s; worker peaks "
                  + ", ".join(f"{p:.0f} MB" for p in peaks), flush=True)
            exports = []
            for limit in (min(100_000, subscribers), subscribers):
                process = subprocess.Popen([sys.executable, "-c", EXPORT, str(change_set_id), str(limit)],
                                           cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
                [peak] = watch([process])
                rows, seconds = process.stdout.read().split()
                if process.returncode or int(rows) != limit:
                    raise RuntimeError(f"the proof export failed: {rows} rows")
                exports.append({"rows": int(rows), "seconds": float(seconds), "peak_rss_mb": round(peak, 1)})
                print(f"proof CSV, {int(rows):,} rows: {float(seconds):.1f} s, peak RSS {peak:.0f} MB",
                      flush=True)
        finally:
            fake.stop()
            database.drop()
    if schedule_seconds > MAX_SCHEDULE_SECONDS:
        misses.append(f"schedule took {schedule_seconds:.2f} s, target {MAX_SCHEDULE_SECONDS} s")
    if dispatch_seconds > MAX_DISPATCH_SECONDS:
        misses.append(f"dispatch took {dispatch_seconds:.1f} s, target {MAX_DISPATCH_SECONDS} s")
    if max(peaks) > MAX_WORKER_MB:
        misses.append(f"a worker peaked at {max(peaks):.0f} MB, target {MAX_WORKER_MB} MB")
    if exports[1]["peak_rss_mb"] - exports[0]["peak_rss_mb"] > MAX_EXPORT_GROWTH_MB:
        misses.append(f"the proof export grew from {exports[0]['peak_rss_mb']} MB to "
                      f"{exports[1]['peak_rss_mb']} MB")
    result = {"subscribers": subscribers, "workers": workers, "setup_seconds": round(setup_seconds, 1),
              "schedule_seconds": round(schedule_seconds, 3), "recipients_written_in_request": written,
              "dispatch_seconds": round(dispatch_seconds, 1),
              "worker_peak_rss_mb": [round(p, 1) for p in peaks],
              "worker_lines": sent_by, "proof_export": exports, "misses": misses}
    print(json.dumps(result, indent=2))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
    for miss in misses:
        print(f"MISS {miss}", file=sys.stderr)
    return 1 if misses else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    return run(args.subscribers, args.workers, args.json)


if __name__ == "__main__":
    sys.exit(main())
