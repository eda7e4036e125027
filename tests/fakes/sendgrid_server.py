"""A fake SendGrid Mail Send endpoint on 127.0.0.1 that records every accepted recipient durably.

In a test: `with FakeSendGrid(record=path) as fake: ...` (fake.url for REGISTRY_SENDGRID_API_HOST).
Alone:     python -m tests.fakes.sendgrid_server --port 0 --record FILE   (prints the port)

Addresses SendGrid's schema refuses (non-ASCII, as in `zoë@example.com` or `user@exämple.pl`, an
emoji local part, `double..dot@example.com`) get SendGrid's 400 naming each refused personalization, and
nothing of that request is accepted.

Each accepted request appends one JSON line per personalization to the record file (flushed before the
202 is written), so counts survive a worker that was killed. Behaviour can be scripted per request:
`fake.script("500", "429:2", "sleep:0.5", "garbage", "drop", "418")`, each entry used by one request,
then back to normal.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API_KEY = "SG.test"
MAX_BODY = 30 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic() when it arrived
    status: int
    recipients: int


class FakeSendGrid:
    def __init__(self, *, record: Path | None = None, api_key: str = API_KEY, port: int = 0,
                 delay: float = 0.0, keep_bodies: bool = False):
        self.api_key = api_key
        # Every accepted Mail Send body, when a test wants to see exactly what a recipient was sent.
        self.keep_bodies = keep_bodies
        self.bodies: list[dict] = []
        self.record = Path(record) if record else None
        self.delay = delay
        self.lock = threading.Lock()
        self.accepted: list[tuple[str, str | None, str]] = []  # (email, delivery_id, message id)
        self.requests: list[Request] = []
        self._script: deque[str] = deque()
        # An outage: every request is answered with this status (and Retry-After) until then.
        self._down: tuple[float, int, str | None] | None = None
        self._file = self.record.open("a", encoding="utf-8") if self.record else None
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *actions: str) -> None:
        """Queue behaviours for the next requests: "429[:retry_after]", "500", "418", "sleep:S",
        "garbage" (not HTTP), "drop" (close without answering), "nonjson:STATUS"."""
        with self.lock:
            self._script.extend(actions)

    def fail_for(self, seconds: float, status: int = 503, retry_after: str | None = None) -> None:
        """An outage: answer every request with `status` for the next `seconds`."""
        with self.lock:
            self._down = (time.monotonic() + seconds, status, retry_after)

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def acceptances(self) -> Counter[str]:
        """How many times each address was accepted."""
        with self.lock:
            return Counter(email for email, _, _ in self.accepted)

    def delivery_ids(self) -> list[str]:
        with self.lock:
            return [d for _, d, _ in self.accepted if d is not None]

    def processed_events(self, delivery_ids: set[str]) -> list[dict]:
        """What SendGrid's Event Webhook would post for these accepted recipients."""
        with self.lock:
            rows = [(e, d, m) for e, d, m in self.accepted if d in delivery_ids]
        return [{"email": email, "event": "processed", "timestamp": int(time.time()),
                 "sg_event_id": uuid.uuid4().hex, "sg_message_id": f"{message_id}.filter0001.1.0",
                 "delivery_id": delivery_id} for email, delivery_id, message_id in rows]

    def start(self) -> FakeSendGrid:
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-sendgrid", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._file:
            self._file.close()

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _next_action(self) -> str | None:
        with self.lock:
            return self._script.popleft() if self._script else None

    def _accept(self, personalizations: list[dict]) -> str:
        message_id = uuid.uuid4().hex[:22]
        rows = []
        for p in personalizations:
            delivery_id = (p.get("custom_args") or {}).get("delivery_id")
            for to in p["to"]:
                rows.append((to["email"], delivery_id, message_id))
        with self.lock:
            self.accepted.extend(rows)
            if self._file:
                self._file.write("".join(json.dumps({"email": e, "delivery_id": d, "message_id": m}) + "\n"
                                         for e, d, m in rows))
                self._file.flush()
        return message_id


def read_record(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _problems(body: object) -> list[str]:
    """The shape SendGrid insists on, enough to catch a malformed request from our side."""
    if not isinstance(body, dict):
        return ["The request body must be a JSON object."]
    problems = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= 1000:
        problems.append("personalizations must be an array of 1 to 1000 items")
        personalizations = []
    for p in personalizations:
        if not isinstance(p, dict) or not isinstance(p.get("to"), list) or not p["to"]:
            problems.append("every personalization needs a non-empty 'to'")
            break
        if not all(isinstance(t, dict) and isinstance(t.get("email"), str) and "@" in t["email"]
                   for t in p["to"]):
            problems.append("every 'to' needs an email address")
            break
        for key in ("substitutions", "headers", "custom_args"):
            value = p.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                problems.append(f"personalization {key} must map strings to strings")
                break
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str):
        problems.append("from.email is required")
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        problems.append("subject is required")
    content = body.get("content")
    if not isinstance(content, list) or not content or not all(
            isinstance(c, dict) and isinstance(c.get("type"), str) and isinstance(c.get("value"), str)
            for c in content):
        problems.append("content must be a non-empty array of {type, value}")
    return problems


# RFC 5322 dot-atom in ASCII, as SendGrid's schema checks it: no leading, trailing or doubled dot.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
INVALID_ADDRESS = "Does not contain a valid address."
ADDRESS_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"


def refused_addresses(personalizations: list[dict]) -> list[dict]:
    """SendGrid's errors for addresses its schema refuses, one per address, by field path."""
    return [{"message": INVALID_ADDRESS, "field": f"personalizations.{i}.to.{j}.email", "help": ADDRESS_HELP}
            for i, p in enumerate(personalizations) for j, to in enumerate(p["to"])
            if not _ADDRESS.fullmatch(to["email"])]


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeSendGrid
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:
        pass

    def _answer(self, status: int, payload: dict | None = None, headers: dict | None = None,
                raw: bytes | None = None, recipients: int = 0) -> None:
        fake = self.server_fake
        with fake.lock:
            fake.requests.append(Request(at=self._arrived, status=status, recipients=recipients))
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._answer(status, {"errors": [{"message": message, "field": None, "help": None}]}, headers)

    def do_POST(self) -> None:
        self._arrived = time.monotonic()
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY))
        if self.path != "/v3/mail/send":
            return self._error(404, "not found")
        with fake.lock:
            down = fake._down if fake._down and fake._down[0] > self._arrived else None
        if down is not None:
            _, status, retry_after = down
            headers = {"Retry-After": retry_after} if retry_after else None
            return self._error(status, "service unavailable", headers)
        action = fake._next_action()
        if fake.delay:
            time.sleep(fake.delay)
        if action:
            kind, _, argument = action.partition(":")
            if kind == "sleep":
                time.sleep(float(argument))
            elif kind == "429":
                return self._error(429, "too many requests", {"Retry-After": argument or "1"})
            elif kind == "garbage":
                with fake.lock:
                    fake.requests.append(Request(at=self._arrived, status=0, recipients=0))
                self.wfile.write(b"this is not HTTP\r\n\r\n")
                self.close_connection = True
                return None
            elif kind == "drop":
                with fake.lock:
                    fake.requests.append(Request(at=self._arrived, status=0, recipients=0))
                self.close_connection = True
                return None
            elif kind == "nonjson":
                return self._answer(int(argument), raw=b"<html>Bad Gateway \xff</html>")
            else:
                return self._error(int(kind), f"scripted {kind}")
        if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return self._error(401, "The provided authorization grant is invalid, expired, or revoked")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._error(415, "Content-Type must be application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(400, "Bad Request: the body is not JSON")
        problems = _problems(body)
        if problems:
            return self._error(400, "; ".join(problems))
        refused = refused_addresses(body["personalizations"])
        if refused:
            return self._answer(400, {"errors": refused}, recipients=len(body["personalizations"]))
        message_id = fake._accept(body["personalizations"])
        if fake.keep_bodies:
            with fake.lock:
                fake.bodies.append(body)
        return self._answer(202, headers={"X-Message-Id": message_id},
                            recipients=len(body["personalizations"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    args = parser.parse_args(argv)
    fake = FakeSendGrid(record=args.record, api_key=args.api_key, port=args.port, delay=args.delay)
    print(fake.port, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
