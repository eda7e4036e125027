"""The SendGrid Event Webhook under concurrent posts: gunicorn + PostgreSQL, then the worker applies.

A notice's deliveries get SendGrid-like events (processed, deferred and delivered stamped in the same
second, a bounce a second later for every tenth address, a share of events posted twice), shuffled
into signed batches that 8 threads post at once to gunicorn (2 sync workers). Reports events/s
accepted, the POSTs' p95 latency and errors; then times `flask notices dispatch --once` applying every
stored batch, and checks that each event was applied exactly once and every delivery ended right.
Run as `python bench/webhook_bench.py`; bench/run.py runs it in `make bench`. Exits non-zero when a
target is missed: >= 2,000 events/s accepted, p95 < 1 s, no error, every final state right.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from dispatch_bench import Database  # noqa: E402
from http_bench import HOST, free_port, serving  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from registry import create_app  # noqa: E402
from registry.domain.clock import now_utc  # noqa: E402
from registry.extensions import db  # noqa: E402
from registry.models import Delivery, Suppression, WebhookBatch, WebhookEvent  # noqa: E402
from registry.settings import Settings  # noqa: E402
from tests.notify.factories import notice_with_deliveries  # noqa: E402

MIN_EVENTS_PER_SECOND = 2000.0
MAX_P95_SECONDS = 1.0
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


@dataclass
class Result:
    deliveries: int
    events: int  # distinct events
    posted_events: int  # with the duplicates
    posts: int
    posters: int
    gunicorn_workers: int
    post_seconds: float
    events_per_second: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    errors: int
    apply_seconds: float
    applied_per_second: float
    problems: list[str]


def plan(rows: list[tuple[int, str]], second: int, duplicates: float,
         rng: random.Random) -> tuple[list[dict], dict[str, str]]:
    """The events to post (shuffled, some twice) and each address's expected latest event."""
    events, expected = [], {}
    for delivery_id, email in rows:
        common = {"email": email, "delivery_id": str(delivery_id), "sg_message_id": f"m{delivery_id}.f1.0"}
        kinds = [("processed", second), ("deferred", second), ("delivered", second + 1)]
        if delivery_id % 10 == 0:
            kinds.append(("bounce", second + 2))
        events += [common | {"event": kind, "timestamp": at, "sg_event_id": uuid.uuid4().hex}
                   for kind, at in kinds]
        expected[email] = kinds[-1][0]
    posted = events + rng.sample(events, int(len(events) * duplicates))
    rng.shuffle(posted)
    return posted, expected


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp,
            "Content-Type": "application/json"}


Post = tuple[bytes, dict[str, str], int]  # body, signed headers, events in it


def post_all(port: int, bodies: list[Post], posters: int) -> tuple[list[float], int, int, float]:
    """Latencies of the 200s, events they carried, the number of errors, and the wall time."""
    latencies: list[float] = []
    errors = accepted = 0
    lock = threading.Lock()

    def poster(share: list[Post]) -> None:
        nonlocal errors, accepted
        for body, headers, count in share:
            start = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
                connection.request("POST", "/webhooks/sendgrid", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                connection.close()
            except OSError:
                ok = False
            elapsed = time.perf_counter() - start
            with lock:
                if ok:
                    latencies.append(elapsed)
                    accepted += count
                else:
                    errors += 1

    threads = [threading.Thread(target=poster, args=(bodies[i::posters],)) for i in range(posters)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, accepted, errors, time.perf_counter() - start


def check(app, expected: dict[str, str], distinct: int) -> list[str]:
    """Every batch applied, every event once, every delivery on its latest event."""
    problems = []
    with app.app_context():
        batches = list(db.session.scalars(select(WebhookBatch)))
        unapplied = [b.id for b in batches if b.applied_at is None or b.error]
        if unapplied:
            problems.append(f"{len(unapplied)} batches not applied")
        applied = sum(b.outcome["applied"] for b in batches if b.outcome)
        if applied != distinct:
            problems.append(f"{applied} events applied, {distinct} distinct posted")
        recorded = db.session.scalar(select(func.count()).select_from(WebhookEvent))
        if recorded != distinct:
            problems.append(f"{recorded} event ids recorded, {distinct} distinct posted")
        final = dict(db.session.execute(select(Delivery.email, Delivery.last_event)).all())
        wrong = sum(1 for email, kind in expected.items() if final.get(email) != kind)
        if wrong:
            problems.append(f"{wrong} deliveries not on their latest event")
        unsent = db.session.scalar(select(func.count()).where(Delivery.status != "sent"))
        if unsent:
            problems.append(f"{unsent} deliveries not settled as sent")
        bounced = sum(1 for kind in expected.values() if kind == "bounce")
        suppressed = db.session.scalar(select(func.count()).select_from(Suppression))
        if suppressed != bounced:
            problems.append(f"{suppressed} suppressions, {bounced} bounced addresses")
        db.session.remove()
    return problems


def run(deliveries: int, batch: int, posters: int, workers: int, duplicates: float) -> Result:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    rng = random.Random(22)
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as name:
        tmp = Path(name)
        database = Database("postgresql", tmp)
        try:
            settings = Settings(env="test", secret_key="bench-" + "x" * 40, database_url=database.url,
                                instance_path=tmp / "instance", mail_sender="outbox",
                                sendgrid_webhook_public_key=public)
            app = create_app(settings)
            with app.app_context():
                db.create_all()
                dispatch = notice_with_deliveries(db.session, deliveries, prefix="hook")
                db.session.execute(update(Delivery).values(status="sending", claimed_at=now_utc()))
                rows = db.session.execute(select(Delivery.id, Delivery.email)
                                          .where(Delivery.notice_id == dispatch.notice_id)).all()
                db.session.commit()
                db.session.remove()
                db.engine.dispose()
            posted, expected = plan(rows, int(time.time()) - 60, duplicates, rng)
            distinct = len({e["sg_event_id"] for e in posted})
            chunks = [posted[i:i + batch] for i in range(0, len(posted), batch)]
            env = {**os.environ, "REGISTRY_ENV": "test", "REGISTRY_DATABASE_URL": database.url,
                   "REGISTRY_SECRET_KEY": settings.secret_key,
                   "REGISTRY_INSTANCE_PATH": str(tmp / "instance"),
                   "REGISTRY_MAIL_SENDER": "outbox", "REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY": public,
                   "FLASK_APP": "wsgi"}
            port = free_port()
            args = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
                    "--bind", f"{HOST}:{port}", "wsgi:app"]
            with serving(args, port=port, log=tmp / "gunicorn.log", env=env):
                # Signed just before posting: a signature is valid for 5 minutes.
                bodies = [(body, sign(key, body), len(chunk))
                          for chunk in chunks for body in [json.dumps(chunk).encode()]]
                latencies, accepted, errors, seconds = post_all(port, bodies, posters)
            start = time.perf_counter()
            worker = subprocess.run([sys.executable, "-m", "flask", "notices", "dispatch", "--once"],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
            apply_seconds = time.perf_counter() - start
            problems = [] if worker.returncode == 0 else [f"the worker failed: {worker.stderr[-2000:]}"]
            problems += check(app, expected, distinct)
            with app.app_context():
                db.engine.dispose()
        finally:
            database.drop()
    latencies.sort()
    return Result(
        deliveries=deliveries, events=distinct, posted_events=len(posted), posts=len(chunks),
        posters=posters,
        gunicorn_workers=workers, post_seconds=round(seconds, 2),
        events_per_second=round(accepted / seconds, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
        p95_ms=round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1) if latencies else 0.0,
        max_ms=round(latencies[-1] * 1000, 1) if latencies else 0.0, errors=errors,
        apply_seconds=round(apply_seconds, 2), applied_per_second=round(len(posted) / apply_seconds, 1),
        problems=problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--posters", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of events posted twice")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    print(f"{args.deliveries:,} deliveries, {args.posters} posters, {args.batch} events per POST, "
          f"gunicorn with {args.workers} workers, PostgreSQL...", flush=True)
    result = run(args.deliveries, args.batch, args.posters, args.workers, args.duplicates)
    print(f"posted {result.posted_events:,} events ({result.events:,} distinct) in {result.posts:,} POSTs "
          f"in {result.post_seconds:.2f} s: {result.events_per_second:,.0f} events/s accepted")
    print(f"latency per POST: p50 {result.p50_ms:.0f} ms, p95 {result.p95_ms:.0f} ms, "
          f"max {result.max_ms:.0f} ms; errors: {result.errors}")
    print(f"the worker applied every batch in {result.apply_seconds:.2f} s (start-up included): "
          f"{result.applied_per_second:,.0f} posted events/s")
    misses = list(result.problems)
    if result.events_per_second < MIN_EVENTS_PER_SECOND:
        misses.append(f"{result.events_per_second:,.0f} events/s accepted, "
                      f"target {MIN_EVENTS_PER_SECOND:,.0f}")
    if result.p95_ms > MAX_P95_SECONDS * 1000:
        misses.append(f"p95 {result.p95_ms:.0f} ms, target under {MAX_P95_SECONDS * 1000:.0f} ms")
    if result.errors:
        misses.append(f"{result.errors} POSTs failed")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**asdict(result), "misses": misses}, indent=2) + "\n")
    for miss in misses:
        print(f"MISS {miss}", file=sys.stderr)
    if not misses:
        print("all targets met: every event applied once, every delivery on its latest event")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
