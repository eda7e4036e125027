"""Mail senders behind one interface: SendGrid in production, a local outbox folder, a recording list."""

from __future__ import annotations

import email.policy
import email.utils
import http.client
import itertools
import json
import os
import threading
import urllib.error
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from python_http_client import exceptions as http_errors

if TYPE_CHECKING:
    from registry.notify.messages import BatchMessage, Recipient
    from registry.settings import Settings

# SendGrid's limit of personalizations in one Mail Send request.
MAX_PERSONALIZATIONS = 1000


@dataclass(frozen=True)
class SendResult:
    # SendGrid's X-Message-Id for the whole request; each recipient's event ids derive from it.
    message_id: str | None


class TemporaryFailure(Exception):
    """Try again later. `outcome_unknown`: the request may have been accepted (timeout, dropped answer)."""

    def __init__(self, reason: str, retry_after: float | None = None, *, outcome_unknown: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class PermanentFailure(Exception):
    """The provider refused the request for good (a 4xx other than 429): retrying cannot help.

    `per_recipient`: a 400 whose errors name personalizations (an address SendGrid's schema refuses,
    such as a non-ASCII one): the rest of the request is fine, and a smaller request without the
    refused recipients would be taken.
    """

    def __init__(self, reason: str, *, per_recipient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.per_recipient = per_recipient


class Sender(Protocol):
    def send(self, batch: BatchMessage, recipients: list[Recipient]) -> SendResult: ...


def mail_send_body(batch: BatchMessage, recipients: list[Recipient], *, from_email: str,
                   from_name: str = "") -> dict:
    """The v3 Mail Send JSON: one shared body, one personalization per recipient."""
    if not 1 <= len(recipients) <= MAX_PERSONALIZATIONS:
        raise ValueError(f"a Mail Send request takes 1 to {MAX_PERSONALIZATIONS} recipients")
    personalizations = []
    for r in recipients:
        item: dict = {"to": [{"email": r.email}]}
        if r.substitutions:
            item["substitutions"] = r.substitutions
        if r.headers:
            item["headers"] = r.headers
        if r.custom_args:
            item["custom_args"] = r.custom_args
        personalizations.append(item)
    sender = {"email": from_email, "name": from_name} if from_name else {"email": from_email}
    return {
        "personalizations": personalizations,
        "from": sender,
        "subject": batch.subject,
        "content": [{"type": "text/plain", "value": batch.text}, {"type": "text/html", "value": batch.html}],
    }


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either seconds or an HTTP date; anything else is ignored."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, 24 * 3600.0))


def _errors(body: bytes | str | None) -> tuple[str, list[dict]]:
    """The body as text, and SendGrid's `errors` list when the body is its JSON error."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return text, []
    return text, [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_reason(status: int, body: bytes | str | None) -> str:
    text, errors = _errors(body)
    messages = [str(e.get("message", "")) for e in errors]
    detail = "; ".join(m for m in messages if m) or text
    detail = " ".join(detail.split())[:500]
    return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"


def _names_personalizations(body: bytes | str | None) -> bool:
    """SendGrid's field path of a refused address is `personalizations.N.to.M.email`."""
    _, errors = _errors(body)
    return any(str(e.get("field") or "").startswith("personalizations") for e in errors)


class SendGridSender:
    """Mail Send through the official client; up to 1000 personalizations per request."""

    def __init__(self, *, api_key: str, host: str, from_email: str, from_name: str = "",
                 timeout: float = 30.0):
        import sendgrid

        self.client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        self.from_email = from_email
        self.from_name = from_name
        self.timeout = timeout

    def send(self, batch: BatchMessage, recipients: list[Recipient]) -> SendResult:
        body = mail_send_body(batch, recipients, from_email=self.from_email, from_name=self.from_name)
        try:
            response = self.client.client.mail.send.post(request_body=body, timeout=self.timeout)
        except http_errors.HTTPError as error:
            raise _classify(error.status_code, error.body, error.headers) from None
        except urllib.error.URLError as error:
            # Refused before anything was sent: known not delivered. Anything else may have gone out.
            refused = isinstance(error.reason, ConnectionRefusedError)
            raise TemporaryFailure(f"network error: {error.reason}", outcome_unknown=not refused) from None
        except (TimeoutError, http.client.HTTPException, OSError) as error:
            raise TemporaryFailure(f"network error: {type(error).__name__}: {error}",
                                   outcome_unknown=True) from None
        if not 200 <= response.status_code < 300:
            raise TemporaryFailure(f"unexpected HTTP {response.status_code}", outcome_unknown=True)
        return SendResult(message_id=response.headers.get("X-Message-Id"))


def _classify(status: int, body, headers) -> Exception:
    reason = _error_reason(status, body)
    if status == 429:
        retry_after = retry_after_seconds(headers.get("Retry-After") if headers is not None else None)
        return TemporaryFailure(reason, retry_after)
    if status in (500, 503):
        # SendGrid answered: it did not take the request.
        retry_after = retry_after_seconds(headers.get("Retry-After") if headers is not None else None)
        return TemporaryFailure(reason, retry_after)
    if status >= 500 or status == 408:
        # A gateway gave up waiting: the request may still have been accepted behind it.
        return TemporaryFailure(reason, outcome_unknown=True)
    if 400 <= status < 500:
        return PermanentFailure(reason, per_recipient=status == 400 and _names_personalizations(body))
    return TemporaryFailure(reason, outcome_unknown=True)


def personalize(text: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


class OutboxSender:
    """Development: one .eml file per recipient in <instance>/outbox/, names sortable by time."""

    def __init__(self, folder: Path, *, from_email: str, from_name: str = ""):
        self.folder = Path(folder)
        self.from_email = from_email
        self.from_name = from_name
        self._sequence = itertools.count()
        self._lock = threading.Lock()

    def send(self, batch: BatchMessage, recipients: list[Recipient]) -> SendResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        request_id = f"outbox-{uuid.uuid4().hex}"
        for recipient in recipients:
            message = self.message(batch, recipient)
            with self._lock:
                number = next(self._sequence)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            name = f"{stamp}-{os.getpid()}-{number:06d}.eml"
            partial = self.folder / f".{name}.tmp"
            partial.write_bytes(bytes(message))
            # The staff mailbox lists the folder: a rename makes each file appear whole.
            partial.replace(self.folder / name)
        return SendResult(message_id=request_id)

    def message(self, batch: BatchMessage, recipient: Recipient) -> EmailMessage:
        # Long header lines stay whole: folding a List-Unsubscribe URL would turn it into RFC 2047
        # encoded words, which mail clients do not read as a URL (RFC 5322 allows 998 characters).
        message = EmailMessage(policy=_EML_POLICY)
        message["From"] = email.utils.formataddr((self.from_name, self.from_email)) if self.from_name \
            else self.from_email
        message["To"] = recipient.email
        message["Subject"] = personalize(batch.subject, recipient.substitutions)
        message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(domain=self.from_email.rpartition("@")[2] or None)
        for name, value in recipient.headers.items():
            message[name] = value
        for name, value in recipient.custom_args.items():
            message[f"X-Registry-{name.replace('_', '-').title()}"] = str(value)
        message.set_content(personalize(batch.text, recipient.substitutions))
        message.add_alternative(personalize(batch.html, recipient.substitutions), subtype="html")
        return message


_EML_POLICY = email.policy.SMTP.clone(max_line_length=998)


@dataclass
class RecordingSender:
    """Tests: keeps every request; `messages` lists (recipient, personalized subject) pairs."""

    requests: list[tuple[BatchMessage, list[Recipient]]] = field(default_factory=list)

    def send(self, batch: BatchMessage, recipients: list[Recipient]) -> SendResult:
        self.requests.append((batch, list(recipients)))
        return SendResult(message_id=f"recorded-{len(self.requests)}")

    @property
    def recipients(self) -> list[Recipient]:
        return [r for _, rs in self.requests for r in rs]


_RECORDING: dict[str, RecordingSender] = {}


def sender_for(settings: Settings, *, timeout: float = 30.0) -> Sender:
    """`timeout`: how long a SendGrid request may wait for its answer (the worker's --client-timeout)."""
    if settings.mail_sender == "sendgrid":
        return SendGridSender(api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_host,
                              from_email=settings.mail_from, from_name=settings.mail_from_name,
                              timeout=timeout)
    if settings.mail_sender == "outbox":
        return OutboxSender(settings.instance_path / "outbox", from_email=settings.mail_from,
                            from_name=settings.mail_from_name)
    if settings.mail_sender == "recording":
        # One per instance folder, so a test can look at what a CLI run in its app sent.
        return _RECORDING.setdefault(str(settings.instance_path), RecordingSender())
    raise ValueError(f"unknown mail sender {settings.mail_sender!r}")
