"""The SendGrid Event Webhook: a signed batch of delivery events is verified, stored and answered.

Nothing else happens in the request: the worker applies stored batches (notify.webhook), so that
SendGrid's concurrent posts never wait on each other's row locks, and a slow database never makes
SendGrid retry a batch it had already delivered.
"""

from __future__ import annotations

import binascii
import json
import time

from flask import Blueprint, abort, current_app, jsonify, request
from sendgrid.helpers.eventwebhook import EventWebhook
from werkzeug.exceptions import HTTPException

from registry.extensions import csrf, db
from registry.services import provider_events

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

MAX_BODY = 1024 * 1024
# SendGrid signs the moment it sends; older signatures are replays. A little skew is allowed ahead.
MAX_AGE_SECONDS = 5 * 60
MAX_FUTURE_SECONDS = 60
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def _raw_body() -> bytes:
    """The body, refused with 413 before it is read when it says it is too big, and capped when read."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        abort(413, description="The body is larger than 1 MB.")
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        abort(413, description="The body is larger than 1 MB.")
    return body


def _verified(payload: str) -> bool:
    key = current_app.config["REGISTRY"].sendgrid_webhook_public_key
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not key:
        current_app.logger.error("SendGrid event refused: REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
        return False
    if not signature or len(signature) > 200 or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if len(timestamp) > 12 or not -MAX_FUTURE_SECONDS <= time.time() - int(timestamp) <= MAX_AGE_SECONDS:
        return False
    webhook = EventWebhook()
    try:
        public_key = webhook.convert_public_key_to_ecdsa(key)
    except (ValueError, TypeError):
        current_app.logger.error("SendGrid event refused: the configured public key cannot be read")
        return False
    try:
        return webhook.verify_signature(payload, signature, timestamp, public_key)
    except (ValueError, TypeError, binascii.Error):
        return False


@bp.errorhandler(HTTPException)
def json_error(error: HTTPException):
    """SendGrid (and whoever reads its delivery log) gets the reason as JSON, not an HTML page."""
    response = jsonify(error={"status": error.code, "title": error.name, "message": error.description})
    response.status_code = error.code or 500
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/sendgrid")
@csrf.exempt
def sendgrid():
    body = _raw_body()
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="The body must be UTF-8 JSON.")
    if not _verified(payload):
        abort(403, description="The event signature is missing, invalid or too old.")
    try:
        events = json.loads(payload)
    except (ValueError, RecursionError):
        abort(400, description="The body must be a JSON list of events.")
    if not isinstance(events, list):
        abort(400, description="The body must be a JSON list of events.")
    provider_events.store_batch(db.session, payload, len(events))
    db.session.commit()
    return jsonify(received=len(events))
