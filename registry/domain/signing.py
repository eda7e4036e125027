"""Standard Webhooks signatures (https://www.standardwebhooks.com): secrets, signing, verifying."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes
MAX_TOLERANCE = 5 * 60


class SignatureError(ValueError):
    """A secret that is not `whsec_` + base64, or a signature that does not match."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise SignatureError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except ValueError:
        raise SignatureError("a webhook secret is whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise SignatureError("a webhook secret holds 24 to 64 bytes")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` entry over `id.timestamp.body`."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated entries, one per secret: during a rotation's overlap, both verify."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_)


def headers(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets_, message_id, timestamp, body)}


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str, *, now: int,
           tolerance: int = MAX_TOLERANCE) -> None:
    """What a receiver does (the development receiver, the tests): any one entry may match."""
    if abs(now - timestamp) > tolerance:
        raise SignatureError("the timestamp is too old or too new")
    expected = sign(secret, message_id, timestamp, body)
    for entry in header.split(" "):
        if hmac.compare_digest(entry.encode(), expected.encode()):
            return
    raise SignatureError("no signature matches")
