"""Every public GET route answers garbage with a 4xx and a message, never a 500."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import IntegerConverter

SAMPLE_VALUES = {"slug": "privacy-policy", "number": 1, "old_number": 1, "new_number": 2,
                 "filename": "css/site.css"}
GARBAGE = ["", "0", "-1", "1e309", "99999999999999999999999", "2025-02-30", "%00", "'; DROP TABLE x; --",
           "<script>alert(1)</script>", "\u202e\u0000", "a" * 5000, "ü日本", "[]", "{}", "true"]
PARAMS = ["q", "purpose", "country", "mechanism", "sort", "as_of", "from", "to", "view", "page",
          "per_page", "since"]


def _sample(rule, name: str):
    """Any integer argument gets 1 (a missing row is a fine 404); any other a plausible slug."""
    return 1 if isinstance(rule._converters.get(name), IntegerConverter) else "nordlicht-cloud"


def public_urls(app):
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static":
                continue
            values = {name: SAMPLE_VALUES.get(name, _sample(rule, name)) for name in rule.arguments}
            urls.append(rule.build(values, append_unknown=False)[1])
    return urls


def test_the_url_map_has_the_public_routes(demo_app):
    urls = public_urls(demo_app)
    assert "/subprocessors/" in urls and "/documents/privacy-policy/" in urls


@pytest.mark.parametrize("offset", range(3))
def test_every_route_survives_garbage_parameters(demo_app, offset):
    client = demo_app.test_client()
    for url in public_urls(demo_app):
        for index, name in enumerate(PARAMS):
            # Each run gives every parameter a different garbage value; three runs cover them all.
            garbage = GARBAGE[(index * 3 + offset * 5) % len(GARBAGE)]
            response = client.get(url, query_string={name: garbage})
            assert response.status_code < 500, (url, name, garbage, response.status_code)
            if response.status_code >= 400:
                body = response.get_data(as_text=True)
                assert "Traceback" not in body
                assert len(body) > 20  # a message, not an empty error


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(PARAMS), st.text(max_size=40), max_size=4))
def test_list_page_fuzz(demo_client, query):
    response = demo_client.get("/subprocessors/", query_string=query)
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("path", [
    "/subprocessors/%00", "/documents/%00/", "/subprocessors/UPPER", "/subprocessors/" + "a" * 81,
    "/documents/privacy-policy%0A/", "/api/v1/subprocessors/%00", "/api/v1/documents/%C0%AF",
])
def test_impossible_slugs_are_404_before_the_database(demo_client, path):
    assert demo_client.get(path).status_code == 404
