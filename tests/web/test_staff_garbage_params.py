"""Garbage query parameters into every staff page, signed in (signed out they only redirect).

tests/web/test_routes.py does this for the public pages; there the staff URLs answer with the login
redirect before any parameter is read. Here an admin and an approver, with two-factor done, open every
GET rule of the staff blueprints with each parameter a staff view reads set to garbage.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    ChangeSet,
    Delivery,
    Endpoint,
    Notice,
    NoticePolicy,
    Objection,
    Organisation,
    Subscriber,
    Topic,
    User,
)
from registry.services import demo
from registry.web import STAFF_BLUEPRINTS

PARAMS = ["page", "status", "q", "action", "actor", "object_type", "object_id", "from", "to", "next"]
GARBAGE = ["", "0", "-1", "1e309", "99999999999999999999999", "2026-02-30", "\x00", "%00",
           "'; DROP TABLE x; --", "<script>alert(1)</script>", "\u202e\u0000", "a" * 5000, "ü日本", "[]",
           "{}", "true", "\N{ARABIC-INDIC DIGIT THREE}", "\N{FULLWIDTH DIGIT TWO}", "1 OR 1=1",
           "../../etc/passwd", "%", "_", "\\"]


@pytest.fixture
def staff_pages(app, login):
    demo.load(db.session, now_utc())
    db.session.commit()
    ids = {
        "change_set_id": db.session.scalar(select(Notice.change_set_id).order_by(Notice.id)),
        "subscriber_id": db.session.scalar(select(Subscriber.id).order_by(Subscriber.id)),
        "topic_id": db.session.scalar(select(Topic.id).order_by(Topic.id)),
        "policy_id": db.session.scalar(select(NoticePolicy.id).order_by(NoticePolicy.id)),
        "user_id": db.session.scalar(select(User.id).order_by(User.id)),
        "delivery_id": db.session.scalar(select(Delivery.id).order_by(Delivery.id)),
        "objection_id": db.session.scalar(select(Objection.id).order_by(Objection.id)),
        "organisation_id": db.session.scalar(select(Organisation.id).order_by(Organisation.id)),
        # The demo's endpoints belong to a subscriber: an organisation's endpoint page answers 404.
        "endpoint_id": db.session.scalar(select(Endpoint.id).order_by(Endpoint.id)) or 1,
    }
    assert db.session.get(ChangeSet, ids["change_set_id"]) is not None
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.split(".")[0] not in STAFF_BLUEPRINTS or "GET" not in rule.methods:
                continue
            if "token" in rule.arguments or "name" in rule.arguments:
                continue  # set-password links and mailbox files: no query parameters, own garbage tests
            values = {name: ids.get(name, "privacy-policy") for name in rule.arguments}
            urls.append(rule.build(values, append_unknown=False)[1])
    people = [login(db.session.scalar(select(User).where(User.role == role).order_by(User.id)))
              for role in ("admin", "approver")]
    return urls, people


def check(response, where: str) -> None:
    body = response.get_data(as_text=True)
    response.close()
    assert response.status_code < 500, where
    if response.status_code >= 400:
        assert "Traceback" not in body
        assert len(body) > 20, where  # a message, not an empty error


@pytest.mark.parametrize("offset", range(3))
def test_every_staff_page_survives_garbage_parameters(staff_pages, offset):
    urls, people = staff_pages
    assert len(urls) >= 20
    for url in urls:
        for index, name in enumerate(PARAMS):
            # Each run gives every parameter a different garbage value; three runs cover most of them.
            garbage = GARBAGE[(index * 3 + offset * 7) % len(GARBAGE)]
            for client in people:
                check(client.get(url, query_string={name: garbage}), f"{url} {name}={garbage!r}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(PARAMS), st.text(max_size=40), max_size=5),
       page=st.sampled_from(["/admin/change-sets/", "/admin/subscribers/", "/admin/audit/",
                             "/admin/audit/export.csv", "/admin/notices/mailbox/"]))
def test_staff_list_pages_fuzz(staff_pages, query, page):
    _urls, (admin, _approver) = staff_pages
    response = admin.get(page, query_string=query)
    assert response.status_code in (200, 400, 404), (page, query, response.status_code)
    response.close()
