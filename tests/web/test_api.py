"""The JSON API under /api/v1 on the demo content, and its OpenAPI description."""

import copy
import re
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from registry.domain import subprocessors as domain
from registry.domain.clock import end_of_day, now_utc
from registry.extensions import db
from registry.services import reading

API = "/api/v1"
BASE = "http://localhost"  # base_url in the test settings


def get_json(client, path, status=200, **kwargs):
    response = client.get(path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    return response.get_json()


def error_message(client, path, status):
    body = get_json(client, path, status)
    assert body["error"]["status"] == status
    assert body["error"]["title"]
    return body["error"]["message"]


def events_of(app):
    with app.app_context():
        return reading.subprocessor_events(db.session)


def html_rows(client, query=""):
    html = client.get(f"/subprocessors/?{query}").get_data(as_text=True)
    return html.count('<th scope="row" data-label="Sub-processor">')


def all_pages(client, url):
    items = []
    while url:
        body = get_json(client, url)
        items += body["data"]
        url = body["links"]["next"]
    return items


def is_utc_timestamp(value):
    return isinstance(value, str) and value.endswith("+00:00") and datetime.fromisoformat(value)


# Sub-processors

def test_list_is_the_current_state_with_every_field(demo_app, demo_client):
    body = get_json(demo_client, f"{API}/subprocessors?per_page=200")
    current = domain.listing_at(events_of(demo_app), now_utc())
    assert {item["slug"] for item in body["data"]} == {item.entry.slug for item in current}
    # The 16 entries existing customers are under, and the announced one new customers already have.
    assert body["meta"]["total"] == len(current) == html_rows(demo_client) == 17
    for_new = [item for item in body["data"] if item["new_customers"]]
    assert [item["slug"] for item in for_new] == ["kestrel-messaging"]
    assert for_new[0]["new_customers"]["action"] == "add"
    assert body["meta"]["pages"] == 1 and body["links"]["next"] is None
    assert is_utc_timestamp(body["meta"]["as_of"])

    cortexa = next(item for item in body["data"] if item["slug"] == "cortexa-ai")
    assert cortexa["applies_to"] == {"all_customers": False, "feature": "AI Assistant"}
    assert cortexa["countries"] == ["US"] and cortexa["data_categories"]
    assert is_utc_timestamp(cortexa["added_at"]) and is_utc_timestamp(cortexa["changed_at"])
    assert cortexa["added_at"] < cortexa["changed_at"]
    assert cortexa["url"] == f"{BASE}/subprocessors/cortexa-ai"
    assert cortexa["api_url"] == f"{BASE}{API}/subprocessors/cortexa-ai"
    assert get_json(demo_client, cortexa["api_url"])["data"]["name"] == cortexa["name"]
    assert demo_client.get(cortexa["url"]).status_code == 200
    names = [item["name"].casefold() for item in body["data"]]
    assert names == sorted(names)


def test_pages_and_their_links_cover_the_list_once(demo_client):
    first = get_json(demo_client, f"{API}/subprocessors?per_page=5&sort=added")
    assert first["meta"] | {"as_of": None} == {
        "as_of": None, "total": 17, "page": 1, "per_page": 5, "pages": 4}
    assert first["links"]["prev"] is None
    assert parse_qs(urlsplit(first["links"]["next"]).query) == {
        "per_page": ["5"], "sort": ["added"], "page": ["2"]}
    everything = all_pages(demo_client, first["links"]["self"])
    assert len(everything) == 17 == len({item["slug"] for item in everything})
    added = [item["added_at"] for item in everything]
    assert added == sorted(added, reverse=True)

    last = get_json(demo_client, f"{API}/subprocessors?per_page=5&page=4&sort=added")
    assert len(last["data"]) == 2 and last["links"]["next"] is None
    assert last["links"]["prev"].endswith("page=3")
    message = error_message(demo_client, f"{API}/subprocessors?per_page=5&page=5", 404)
    assert "past the last page" in message and "4 pages" in message


def test_list_as_of_a_past_date_is_that_day_state(demo_app, demo_client):
    day = date.today() - timedelta(days=600)
    body = get_json(demo_client, f"{API}/subprocessors?as_of={day}&per_page=200")
    zone = demo_app.config["REGISTRY"].legal_timezone
    then = domain.state_at(events_of(demo_app), end_of_day(day, zone))
    slugs = {item["slug"] for item in body["data"]}
    assert slugs == set(then)
    assert len(slugs) < 16 and "funnelbird" in slugs and "metricula" not in slugs
    assert body["meta"]["as_of"].startswith(day.isoformat())  # 23:59:59 in Warsaw is still that day
    assert body["meta"]["total"] == html_rows(demo_client, f"as_of={day}")

    upcoming = date.today() + timedelta(days=30)
    later = get_json(demo_client, f"{API}/subprocessors?as_of={upcoming}&per_page=200")
    assert "kestrel-messaging" in {item["slug"] for item in later["data"]}


@pytest.mark.parametrize("query", [
    "q=assistant", "purpose=Payments", "country=SG", "mechanism=Within+the+EEA", "sort=changed",
])
def test_filters_give_what_the_html_list_gives(demo_client, query):
    body = get_json(demo_client, f"{API}/subprocessors?{query}")
    assert body["meta"]["total"] == len(body["data"]) == html_rows(demo_client, query)
    assert 0 < body["meta"]["total"] <= 17
    assert parse_qs(urlsplit(body["links"]["self"]).query)["page"] == ["1"]


def test_entry_has_its_whole_history_with_field_changes(demo_client):
    data = get_json(demo_client, f"{API}/subprocessors/metricula")["data"]
    assert data["status"] == "active" and data["removed_at"] is None
    assert [event["action"] for event in data["history"]] == ["add", "change"]
    renamed = data["history"][1]
    assert renamed["scheduled"] is False and renamed["summary"]
    fields = {change["field"]: change for change in renamed["changes"]}
    assert fields["name"]["label"] == "Name"
    assert fields["name"]["old"] == "Metricula" and fields["name"]["new"] == data["name"]
    assert data["changed_at"] == renamed["effective_at"]


def test_removed_entry_shows_its_last_state(demo_client):
    data = get_json(demo_client, f"{API}/subprocessors/lettermint")["data"]
    assert data["status"] == "removed"
    assert [event["action"] for event in data["history"]] == ["add", "change", "remove"]
    assert data["removed_at"] == data["history"][-1]["effective_at"]
    assert data["changed_at"] == data["history"][1]["effective_at"]
    assert data["transfer_mechanism"] == "EU-US Data Privacy Framework"


def test_announced_entry_is_scheduled(demo_client):
    data = get_json(demo_client, f"{API}/subprocessors/kestrel-messaging")["data"]
    assert data["status"] == "scheduled"
    assert data["added_at"] > now_utc().isoformat()
    assert [(e["action"], e["scheduled"]) for e in data["history"]] == [("add", True)]


def test_changes_since_a_recent_moment(demo_client):
    since = (now_utc() - timedelta(days=50)).isoformat()
    body = get_json(demo_client, f"{API}/subprocessors/changes", query_string={"since": since})
    changes = body["data"]
    assert [(c["subprocessor"]["slug"], c["action"], c["scheduled"]) for c in changes] == [
        ("lettermint", "remove", False),
        ("bastionet", "change", False),
        ("logwarden", "change", False),
        ("kestrel-messaging", "add", True),
    ]
    assert all(c["effective_at"] > since for c in changes)
    assert [c["effective_at"] for c in changes] == sorted(c["effective_at"] for c in changes)
    edge = next(c for c in changes if c["subprocessor"]["slug"] == "bastionet")
    assert "countries" in {change["field"] for change in edge["changes"]}
    assert edge["subprocessor"]["api_url"] == f"{BASE}{API}/subprocessors/bastionet"
    assert body["meta"]["total"] == 4


def test_changes_since_accepts_z_and_an_unencoded_plus(demo_client):
    recent = get_json(demo_client, f"{API}/subprocessors/changes?since=2000-01-01T00:00:00Z")
    assert recent["meta"]["total"] > 20
    plus = get_json(demo_client, f"{API}/subprocessors/changes?since=2000-01-01T01:00:00+01:00")
    assert plus["meta"]["total"] == recent["meta"]["total"]


def test_changes_always_include_the_scheduled_ones(demo_client):
    since = (now_utc() + timedelta(days=365)).isoformat()
    body = get_json(demo_client, f"{API}/subprocessors/changes", query_string={"since": since})
    assert [(c["subprocessor"]["slug"], c["scheduled"]) for c in body["data"]] == [
        ("kestrel-messaging", True)]


def test_changes_are_paginated(demo_client):
    url = f"{API}/subprocessors/changes?since=2000-01-01T00:00:00Z&per_page=7"
    first = get_json(demo_client, url)
    everything = all_pages(demo_client, url)
    assert len(everything) == first["meta"]["total"]
    assert first["meta"]["pages"] == -(-first["meta"]["total"] // 7)
    assert "since=2000-01-01T00%3A00%3A00Z" in first["links"]["next"]


# Documents and change sets

def test_documents_with_current_and_upcoming_versions(demo_client):
    data = get_json(demo_client, f"{API}/documents")["data"]
    assert [d["slug"] for d in data] == ["privacy-policy", "cookie-policy", "dpa", "terms"]
    privacy = data[0]
    assert privacy["current_version"]["number"] == 3
    assert [v["number"] for v in privacy["upcoming_versions"]] == [4]
    assert privacy["upcoming_versions"][0]["effective_at"] > now_utc().isoformat()
    assert privacy["versions_url"] == f"{BASE}{API}/documents/privacy-policy/versions"
    assert privacy["url"] == f"{BASE}/documents/privacy-policy/"
    assert all(d["current_version"] and is_utc_timestamp(d["current_version"]["effective_at"])
               for d in data)
    assert get_json(demo_client, privacy["api_url"])["data"]["slug"] == "privacy-policy"


def test_document_has_its_notice_policy(demo_client):
    data = get_json(demo_client, f"{API}/documents/dpa")["data"]
    assert data["notice_policy"] == {"length": 14, "unit": "calendar_days", "calendars": ["PL"],
                                     "timezone": "Europe/Warsaw", "objection_days": 14}
    assert data["current_version"]["number"] == 2 and data["upcoming_versions"] == []


def test_versions_are_numbered_one_to_n_with_their_status(demo_app, demo_client):
    body = get_json(demo_client, f"{API}/documents/privacy-policy/versions")
    with demo_app.app_context():
        count = len(reading.versions(db.session, reading.document(db.session, "privacy-policy")))
    assert [v["number"] for v in body["data"]] == list(range(1, count + 1)) == [1, 2, 3, 4]
    assert [v["status"] for v in body["data"]] == [
        "superseded", "superseded", "in_effect", "upcoming"]
    # The demo's upcoming version applies to new customers from the day notice was given.
    upcoming = body["data"][-1]
    assert upcoming["effective_new_customers_at"] == upcoming["published_at"]
    assert body["data"][0]["effective_new_customers_at"] is None
    assert all(is_utc_timestamp(v["published_at"]) and v["published_at"] <= v["effective_at"]
               for v in body["data"])
    cookie = get_json(demo_client, f"{API}/documents/cookie-policy/versions")["data"]
    assert [v["is_material"] for v in cookie] == [True, True, False]


def test_versions_are_paginated(demo_client):
    url = f"{API}/documents/privacy-policy/versions?per_page=3"
    first = get_json(demo_client, url)
    assert first["meta"]["pages"] == 2 and len(first["data"]) == 3
    assert [v["number"] for v in all_pages(demo_client, url)] == [1, 2, 3, 4]
    assert first["links"]["next"].startswith(f"{BASE}{API}/documents/privacy-policy/versions?")


def test_a_version_has_its_source_and_sanitised_text(demo_client):
    data = get_json(demo_client, f"{API}/documents/privacy-policy/versions/2")["data"]
    assert data["number"] == 2 and data["status"] == "superseded"
    assert data["markdown"].lstrip().startswith("#")
    assert "<h1" in data["html"] or "<h2" in data["html"]
    assert "<script" not in data["html"]
    assert data["headings"] and {"level", "text", "anchor"} <= set(data["headings"][0])
    assert f'id="{data["headings"][0]["anchor"]}"' in data["html"]
    assert data["url"] == f"{BASE}/documents/privacy-policy/versions/2"


def test_upcoming_changes(demo_client):
    data = get_json(demo_client, f"{API}/changes/upcoming")["data"]
    assert len(data) == 1
    change = data[0]
    assert "SMS" in change["title"] and change["is_material"] is True
    assert change["published_at"] < now_utc().isoformat() < change["effective_at"]
    assert is_utc_timestamp(change["objection_deadline_at"])
    assert [(i["kind"], i.get("document") or i.get("slug")) for i in change["items"]] == [
        ("document_version", "privacy-policy"), ("subprocessor", "kestrel-messaging")]
    assert change["items"][0]["number"] == 4 and change["items"][1]["action"] == "add"
    # The id a client keeps to recognise the same change on its next poll, and in the feeds' ids.
    assert isinstance(change["id"], int)
    feed = demo_client.get("/feeds/all.atom").get_data(as_text=True)
    assert f"<id>tag:localhost,2025:change-sets/{change['id']}</id>" in feed


def test_an_empty_registry_answers_empty_lists(client):
    body = get_json(client, f"{API}/subprocessors")
    assert body["data"] == [] and body["meta"]["total"] == 0 and body["meta"]["pages"] == 1
    assert body["links"]["next"] is None and body["links"]["prev"] is None
    assert "past the last page" in error_message(client, f"{API}/subprocessors?page=2", 404)
    assert get_json(client, f"{API}/documents")["data"] == []
    assert get_json(client, f"{API}/changes/upcoming")["data"] == []
    changes = get_json(client, f"{API}/subprocessors/changes?since=2020-01-01T00:00:00Z")
    assert changes["data"] == []


def test_a_country_no_entry_has_matches_nothing(demo_client):
    body = get_json(demo_client, f"{API}/subprocessors?country=BR")
    assert body["data"] == [] and body["meta"]["total"] == 0


@pytest.mark.parametrize(("name", "value"), [("purpose", "Teleportation"), ("mechanism", "Handshake"),
                                             ("purpose", "hosting and infrastructure"),
                                             ("mechanism", " Within the EEA")])
def test_purpose_and_mechanism_take_the_values_the_description_lists(demo_client, name, value):
    """One source: the enum the description shows is what the validation accepts, exactly."""
    spec = get_json(demo_client, f"{API}/openapi.json")
    parameter = spec["components"]["parameters"][name.title()]
    allowed = parameter["schema"]["enum"]
    assert allowed and value not in allowed
    message = error_message(demo_client, f"{API}/subprocessors?{name}={value}", 400)
    assert f"Unknown value for '{name}'" in message and allowed[0] in message
    for good in allowed:
        assert get_json(demo_client, f"{API}/subprocessors?{name}={good}")["meta"]["total"] >= 1, good
    assert parameter["example"] in allowed


@pytest.mark.parametrize(("query", "words"), [
    ("per_page=", "'per_page' is empty"),
    ("sort=", "'sort' is empty"),
    ("q=", "'q' is empty"),
    ("per_page=&per_page=abc", "'per_page' is given 2 times"),
    ("page=1&page=1", "'page' is given 2 times"),
    ("country=de", "ISO 3166-1 alpha-2 code in upper case"),
    ("per_page=%202", "whole number"),
    ("as_of=20260131", "YYYY-MM-DD"),
])
def test_empty_repeated_and_loose_values_are_400(demo_client, query, words):
    assert words in error_message(demo_client, f"{API}/subprocessors?{query}", 400)


@pytest.mark.parametrize("since", ["20260101T000000Z", "2026-W01-1T00:00Z", "2026-01-01%2B01:00"])
def test_since_is_rfc_3339(demo_client, since):
    assert "ISO 8601" in error_message(demo_client, f"{API}/subprocessors/changes?since={since}", 400)


# Errors

@pytest.mark.parametrize(("path", "words"), [
    ("/subprocessors?as_of=2025-13-45", "YYYY-MM-DD"),
    ("/subprocessors?as_of=yesterday", "YYYY-MM-DD"),
    ("/subprocessors?as_of=0001-01-01", "between 1970 and 2200"),
    ("/subprocessors?country=XX", "ISO 3166-1 country code"),
    ("/subprocessors?country=Germany", "ISO 3166-1 country code"),
    ("/subprocessors?sort=random", "Unknown value for 'sort'"),
    ("/subprocessors?q=%00", "control characters"),
    ("/subprocessors?page=0", "whole number"),
    ("/subprocessors?page=-1", "whole number"),
    ("/subprocessors?page=1.5", "whole number"),
    (f"/subprocessors?page={10**30}", "'page'"),
    ("/subprocessors?per_page=10000", "from 1 to 200"),
    ("/subprocessors?per_page=0", "from 1 to 200"),
    ("/subprocessors/changes", "'since' is required"),
    ("/subprocessors/changes?since=2026-01-01T00:00:00", "needs a UTC offset"),
    ("/subprocessors/changes?since=2026-01-01", "needs a UTC offset"),
    ("/subprocessors/changes?since=last+week", "ISO 8601"),
    ("/subprocessors/changes?since=2026-01-01T00:00:00%2B25:00", "ISO 8601"),
    ("/subprocessors/changes?since=2026-01-01T00:00:00Z&page=0", "whole number"),
    ("/documents/privacy-policy/versions?per_page=201", "from 1 to 200"),
])
def test_bad_parameters_are_400_with_a_message(demo_client, path, words):
    assert words in error_message(demo_client, API + path, 400)


@pytest.mark.parametrize(("path", "words"), [
    ("/subprocessors/no-such-vendor", "no sub-processor"),
    ("/subprocessors/%00", "not found"),
    ("/subprocessors/%FF%FE", "not found"),
    ("/subprocessors/" + "x" * 300, "not found"),
    ("/documents/no-such-document", "no document"),
    ("/documents/%00/versions", "not found"),
    ("/documents/no-such-document/versions", "no document"),
    ("/documents/privacy-policy/versions/99", "no version 99"),
    # Numbers outside 1..2^31-1 never match a route (registry.web.IdConverter): the generic 404.
    ("/documents/privacy-policy/versions/0", "not found"),
    (f"/documents/privacy-policy/versions/{10**30}", "not found"),
    ("/documents/privacy-policy/versions/-1", "not found"),
    ("/documents/privacy-policy/versions?page=3", "past the last page"),
    ("/nowhere", "not found"),
])
def test_unknown_resources_are_404_with_a_message(demo_client, path, words):
    assert words in error_message(demo_client, API + path, 404).lower()


def test_errors_are_not_cached(demo_client):
    response = demo_client.get(f"{API}/subprocessors/no-such-vendor")
    assert response.headers["Cache-Control"] == "no-store"
    assert "ETag" not in response.headers


def test_writes_are_not_allowed(demo_client):
    response = demo_client.post(f"{API}/subprocessors")
    assert response.status_code == 405
    assert response.get_json()["error"]["status"] == 405


# Conditional requests

@pytest.mark.parametrize("path", [
    "/subprocessors?per_page=3", "/subprocessors/metricula",
    "/subprocessors/changes?since=2020-01-01T00:00:00Z", "/documents", "/documents/dpa",
    "/documents/dpa/versions", "/documents/dpa/versions/1", "/changes/upcoming", "/openapi.json",
])
def test_answers_carry_validators_and_honour_them(demo_client, path):
    first = demo_client.get(API + path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert first.headers["Last-Modified"]
    cache_control = first.headers["Cache-Control"]
    assert "public" in cache_control and "max-age=" in cache_control

    again = demo_client.get(API + path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag

    since = demo_client.get(API + path,
                            headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    assert demo_client.get(API + path, headers={"If-None-Match": '"other"'}).status_code == 200


# The OpenAPI document

@pytest.fixture(scope="module")
def spec(demo_app):
    response = demo_app.test_client().get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    return response.get_json()


def resolve(spec, ref):
    assert ref.startswith("#/"), ref
    node = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def deref(spec, node):
    return resolve(spec, node["$ref"]) if "$ref" in node else node


def test_spec_is_openapi_3_1_with_a_server(spec):
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["servers"] == [{"url": API}]


def test_spec_paths_are_exactly_the_routes(demo_app, spec):
    routes = {}
    for rule in demo_app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            template = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(API):])
            routes[template] = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == {path: set(operations) for path, operations in spec["paths"].items()}


def test_every_ref_resolves(spec):
    refs = [node["$ref"] for node in walk(spec) if isinstance(node, dict) and "$ref" in node]
    assert len(refs) > 50
    for ref in refs:
        assert isinstance(resolve(spec, ref), dict), ref
    used = {ref.rsplit("/", 1)[1] for ref in refs}
    assert set(spec["components"]["schemas"]) - used == set()


def test_operations_are_complete(spec):
    operation_ids = []
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            operation_ids.append(operation["operationId"])
            parameters = [deref(spec, p) for p in operation["parameters"]]
            in_path = {p["name"] for p in parameters if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", path)), path
            for parameter in parameters:
                assert parameter["in"] in ("query", "path")
                assert parameter["in"] != "path" or parameter["required"] is True
                schema = parameter["schema"]
                assert "type" in schema and "example" in parameter, parameter["name"]
                validator = Draft202012Validator(schema, format_checker=FORMATS)
                assert validator.is_valid(parameter["example"]), parameter["name"]
                # Left out for its default; sent empty, it is refused (a client's mistake).
                assert not validator.is_valid(""), parameter["name"]
            ok = operation["responses"]["200"]
            # Every answer is JSON but the DORA export, a zip.
            media = "application/zip" if path == "/exports/dora" else "application/json"
            assert ok["content"][media]["schema"]["$ref" if media == "application/json" else "type"]
            assert "default" in operation["responses"]
    assert len(operation_ids) == len(set(operation_ids))
    parameters = spec["components"]["parameters"]
    assert parameters["AsOf"]["schema"]["format"] == "date"
    assert parameters["Since"]["schema"]["format"] == "date-time"


def test_component_schemas_are_valid_json_schema(spec):
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_aware_timestamp(value):
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


@FORMATS.checks("uri")
def _is_absolute_url(value):
    return not isinstance(value, str) or (
        urlsplit(value).scheme in ("http", "https") and bool(urlsplit(value).netloc))


def strict(node):
    """The schemas as published, but rejecting any property the document does not declare."""
    node = copy.deepcopy(node)
    for schema in walk(node):
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            schema.setdefault("additionalProperties", False)
    return node


def validator(spec, path, status):
    operation = spec["paths"][path]["get"]
    response = deref(spec, operation["responses"].get(str(status))
                     or operation["responses"]["default"])
    schema = response["content"]["application/json"]["schema"]
    root = {**schema, "components": strict(spec["components"])}
    return Draft202012Validator(root, format_checker=FORMATS)


@pytest.mark.parametrize(("url", "path"), [
    ("/subprocessors?per_page=4&page=2", "/subprocessors"),
    ("/subprocessors?as_of=2020-01-01", "/subprocessors"),
    ("/subprocessors/changes?since=2000-01-01T00:00:00Z&per_page=200", "/subprocessors/changes"),
    ("/subprocessors/nordlicht-cloud", "/subprocessors/{slug}"),
    ("/subprocessors/lettermint", "/subprocessors/{slug}"),
    ("/subprocessors/kestrel-messaging", "/subprocessors/{slug}"),
    ("/documents", "/documents"),
    ("/documents/privacy-policy", "/documents/{slug}"),
    ("/documents/privacy-policy/versions", "/documents/{slug}/versions"),
    ("/documents/privacy-policy/versions/4", "/documents/{slug}/versions/{number}"),
    ("/changes/upcoming", "/changes/upcoming"),
    ("/openapi.json", "/openapi.json"),
    ("/subprocessors?sort=nonsense", "/subprocessors"),
    ("/subprocessors/changes", "/subprocessors/changes"),
    ("/subprocessors/nobody", "/subprocessors/{slug}"),
    ("/documents/nothing", "/documents/{slug}"),
    ("/documents/dpa/versions/7", "/documents/{slug}/versions/{number}"),
])
def test_answers_match_their_schema(demo_client, spec, url, path):
    response = demo_client.get(API + url)
    assert str(response.status_code) in spec["paths"][path]["get"]["responses"]
    errors = list(validator(spec, path, response.status_code).iter_errors(response.get_json()))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def test_every_answer_has_an_example_that_matches_its_schema(spec):
    for path, operations in spec["paths"].items():
        for status, response in operations["get"]["responses"].items():
            response = deref(spec, response)
            if "content" not in response or path in ("/openapi.json", "/exports/dora"):
                continue
            example = response["content"]["application/json"]["example"]
            errors = list(validator(spec, path, status).iter_errors(example))
            assert errors == [], (path, status, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]])


def test_the_strict_schemas_catch_an_undeclared_field(demo_client, spec):
    body = demo_client.get(f"{API}/documents").get_json()
    body["data"][0]["surprise"] = True
    assert not validator(spec, "/documents", 200).is_valid(body)


# Fuzz

KEYS = st.sampled_from(["q", "purpose", "country", "mechanism", "sort", "as_of", "page",
                        "per_page", "since", "other"])
VALUES = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["Payments", "DE", "US", "Within the EEA", "name", "changed", "2024-02-29",
                     "1970-01-01", "2200-12-31", "0", "1", "2", "200", "201", "", " "]),
    st.integers(min_value=-10, max_value=10**35).map(str),
)
RAW_PIECES = st.sampled_from(["%00", "%FF", "%2B", "%C3%A9", "%", "+", "-", ":", "T", "Z", "0",
                              "1", "9", "2024-02-29", "a", "&", "=", ";", "[]", "#", "?"])
RAW = st.lists(
    st.tuples(KEYS, st.lists(RAW_PIECES, max_size=8).map("".join)), max_size=4,
).map(lambda pairs: "&".join(f"{key}={value}" for key, value in pairs))


def assert_json_answer(response):
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 404), response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = response.get_json()
    assert ("data" in body) if response.status_code == 200 else body["error"]["message"]


# The only function-scoped fixture here is the autouse SendGrid guard, which holds no state.
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(KEYS, VALUES, max_size=4))
def test_fuzzed_parameters_never_break_the_list(demo_app, query):
    assert_json_answer(demo_app.test_client().get(f"{API}/subprocessors", query_string=query))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=RAW)
def test_fuzzed_query_strings_never_break_the_list(demo_app, raw):
    assert_json_answer(demo_app.test_client().get(f"{API}/subprocessors?{raw}"))
