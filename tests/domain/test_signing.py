"""Standard Webhooks signatures: the specification's test vector, and its reference verifier."""

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from registry.domain import signing

# The vector of the specification's reference libraries (standard-webhooks/standard-webhooks).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specification_vector():
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == EXPECTED


def test_the_reference_verifier_accepts_what_we_send():
    secret = signing.new_secret()
    now = int(time.time())
    headers = signing.headers([secret], MSG_ID, now, PAYLOAD)
    assert Webhook(secret).verify(PAYLOAD, headers) == {"test": 2432232314}


def test_during_a_rotation_both_secrets_verify_and_a_stranger_does_not():
    old, new = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    headers = signing.headers([new, old], MSG_ID, now, PAYLOAD)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(PAYLOAD, headers)
    Webhook(new).verify(PAYLOAD, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(PAYLOAD, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(PAYLOAD + b" ", headers)


def test_secrets_are_whsec_and_24_to_64_bytes():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert signing._key(secret) and len(signing._key(secret)) == 32
    for bad in ("abc", "whsec_!!!", "whsec_" + "QUJD"):
        with pytest.raises(signing.SignatureError):
            signing.sign(bad, MSG_ID, TIMESTAMP, PAYLOAD)


def test_our_verifier_refuses_old_timestamps_and_accepts_any_matching_entry():
    secret = signing.new_secret()
    header = "v1,bogus " + signing.sign(secret, MSG_ID, TIMESTAMP, PAYLOAD)
    signing.verify(secret, MSG_ID, TIMESTAMP, PAYLOAD, header, now=TIMESTAMP + 10)
    with pytest.raises(signing.SignatureError):
        signing.verify(secret, MSG_ID, TIMESTAMP, PAYLOAD, header, now=TIMESTAMP + 3600)
    with pytest.raises(signing.SignatureError):
        signing.verify(secret, MSG_ID, TIMESTAMP, PAYLOAD, "v1,bogus", now=TIMESTAMP)
