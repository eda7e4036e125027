"""CORS: the read-only API and the feeds may be read from any page (no credentials); nothing else."""

from __future__ import annotations

import pytest

PUBLIC_READS = ["/api/v1/subprocessors", "/api/v1/documents/privacy-policy", "/api/v1/openapi.json",
                "/feeds/all.atom", "/feeds/subprocessors.rss", "/calendar.ics",
                "/calendar/documents/privacy-policy.ics"]
ORIGIN = {"Origin": "https://tools.example"}


@pytest.mark.parametrize("path", PUBLIC_READS)
def test_the_api_and_feeds_allow_any_origin_without_credentials(demo_client, path):
    response = demo_client.get(path, headers=ORIGIN)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("path", PUBLIC_READS)
def test_a_preflight_for_get_is_answered(demo_client, path):
    response = demo_client.options(path, headers={
        **ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "If-None-Match" in response.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_errors_of_the_api_are_readable_too(demo_client):
    """A client on another site sees why its request failed, not an opaque CORS error."""
    for path in ("/api/v1/subprocessors?per_page=", "/api/v1/nowhere", "/feeds/documents/nope.atom"):
        response = demo_client.get(path, headers=ORIGIN)
        assert response.status_code in (400, 404)
        assert response.headers["Access-Control-Allow-Origin"] == "*", path


@pytest.mark.parametrize("path", ["/", "/subprocessors/", "/subprocessors/export.csv", "/subscriptions/",
                                  "/auth/login", "/admin/", "/documents/privacy-policy/"])
def test_pages_forms_and_staff_get_no_cors(demo_client, path):
    for response in (demo_client.get(path, headers=ORIGIN),
                     demo_client.options(path, headers={**ORIGIN, "Access-Control-Request-Method": "POST"})):
        assert not [name for name, _ in response.headers if name.startswith("Access-Control-")], path
