"""One change fanned out to 10,000 webhook endpoints on a local receiver, 100 connections at once.

The receiver is its own process (a threaded HTTP server on 127.0.0.1 answering 204); the worker is
`flask registry tick` in its own process, which sends every due webhook and exits. Reports the time
from the worker's start to its exit and its peak RSS (VmHWM). Targets: under 60 s, under 200 MB.
PostgreSQL by default (REGISTRY_BENCH_DATABASE_URL); --sqlite for the embedded database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[:0] = [str(ROOT)]

from sqlalchemy import func, insert, select  # noqa: E402

from bench.dispatch_bench import Database, _high_water_kb  # noqa: E402
from registry import create_app  # noqa: E402
from registry.extensions import db  # noqa: E402
from registry.models import Endpoint, EndpointDelivery, EndpointTopic, Subscriber, Topic  # noqa: E402
from registry.services import endpoints  # noqa: E402
from registry.settings import Settings  # noqa: E402
from tests import factories  # noqa: E402

ENDPOINTS = 10_000
MAX_SECONDS = 60.0
MAX_RSS_MB = 200.0


def serve() -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def measure(backend: str, count: int, folder: Path) -> dict:
    receiver = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True)
    port = int(receiver.stdout.readline())
    database = Database(backend, folder)
    instance = folder / "instance"
    settings = Settings(env="test", secret_key="bench-" + "x" * 40, database_url=database.url,
                        instance_path=instance, mail_sender="recording", endpoints_allow_private=True)
    try:
        app = create_app(settings)
        with app.app_context():
            db.create_all()
            db.session.add(Topic(key="administrative", name="Administrative", is_administrative=True))
            owner = Subscriber(email="bench@customer.example", status="confirmed")
            db.session.add(owner)
            db.session.flush()
            now = datetime.now(UTC)
            db.session.execute(insert(Endpoint), [
                {"subscriber_id": owner.id, "url": f"http://127.0.0.1:{port}/hook/{n}",
                 "secret": "whsec_" + "QUJD" * 8, "is_enabled": True, "disabled_reason": "",
                 "created_at": now, "updated_at": now} for n in range(count)])
            db.session.execute(insert(EndpointTopic).from_select(
                ["endpoint_id", "topic_key"],
                select(Endpoint.id, func.cast("administrative", Topic.key.type))))
            change_set = factories.announced_change(now)
            start = time.perf_counter()
            endpoints.change_event(db.session, change_set, "change.announced", now=now)
            db.session.commit()
            fan_out = time.perf_counter() - start
            db.session.remove()
            db.engine.dispose()
        env = {**os.environ, "REGISTRY_ENV": "test", "REGISTRY_DATABASE_URL": database.url,
               "REGISTRY_SECRET_KEY": settings.secret_key, "REGISTRY_INSTANCE_PATH": str(instance),
               "REGISTRY_MAIL_SENDER": "recording", "REGISTRY_ENDPOINTS_ALLOW_PRIVATE": "1",
               "FLASK_APP": "wsgi"}
        peak_kb = 0
        with (folder / "worker.out").open("w") as out, (folder / "worker.err").open("w") as err:
            start = time.perf_counter()
            worker = subprocess.Popen([sys.executable, "-m", "flask", "registry", "tick"], cwd=ROOT, env=env,
                                      stdout=out, stderr=err)
            status = Path(f"/proc/{worker.pid}/status")
            while worker.poll() is None:
                try:
                    peak_kb = max(peak_kb, _high_water_kb(status.read_text()))
                except FileNotFoundError:
                    break
                time.sleep(0.05)
            seconds = time.perf_counter() - start
        if worker.returncode:
            raise RuntimeError((folder / "worker.err").read_text()[-2000:])
        with app.app_context():
            delivered = db.session.scalar(select(func.count()).select_from(EndpointDelivery)
                                          .where(EndpointDelivery.status == "delivered"))
            db.session.remove()
            db.engine.dispose()
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        database.drop()
    return {"backend": backend, "endpoints": count, "delivered": delivered,
            "fan_out_seconds": round(fan_out, 2),
            "seconds": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
            "per_second": round(delivered / seconds, 1), "load_average": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sqlite", action="store_true", help="the embedded database instead of PostgreSQL")
    parser.add_argument("--endpoints", type=int, default=ENDPOINTS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    with tempfile.TemporaryDirectory() as folder:
        result = measure("sqlite" if args.sqlite else "postgresql", args.endpoints, Path(folder))
    print(json.dumps(result))
    ok = (result["delivered"] == result["endpoints"] and result["seconds"] < MAX_SECONDS
          and result["peak_rss_mb"] < MAX_RSS_MB)
    print(f"{'PASS' if ok else 'MISS'}: {result['delivered']} of {result['endpoints']} delivered in "
          f"{result['seconds']} s (target {MAX_SECONDS:g} s), worker peak RSS {result['peak_rss_mb']} MB "
          f"(target {MAX_RSS_MB:g} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
