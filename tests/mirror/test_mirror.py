"""flask registry mirror: every public page as a file, byte for byte the live answer."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from registry import mirror
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import publishing, reading

FIELDS = dict(name="Acme Hosting", legal_entity="Acme GmbH", address="Street 1, Berlin",
              contact="privacy@acme.example", purpose="Hosting", transfer_mechanism="Within the EEA",
              countries=["DE"])


def add_acme(effective_at, slug="acme"):
    change_set = publishing.create_change_set(db.session, title=f"{slug} added")
    publishing.draft_subprocessor_change(db.session, change_set, slug, "add",
                                         fields={**FIELDS, "name": f"{slug.title()} Hosting"})
    publishing.publish(db.session, change_set, published_at=now_utc() - timedelta(days=20),
                       notice_completed_at=now_utc() - timedelta(days=20), effective_at=effective_at)
    db.session.commit()
    return change_set


def build(app, directory: Path) -> mirror.Result:
    with app.app_context():
        return mirror.build(app, directory)


@pytest.fixture(scope="module")
def demo_mirror(demo_app, tmp_path_factory):
    """The demo site mirrored once per database."""
    directory = tmp_path_factory.mktemp("mirror")
    result = build(demo_app, directory)
    return directory, result, json.loads((directory / "current" / "manifest.json").read_text())


def test_every_mirrored_file_is_the_live_answer(demo_app, demo_mirror):
    directory, result, manifest = demo_mirror
    client = demo_app.test_client()
    assert len(manifest["files"]) == len(result.files) > 100
    for entry in manifest["files"]:
        body = (directory / "current" / "site" / entry["path"]).read_bytes()
        with client.get(entry["url"]) as live:
            live_body = live.get_data()
        assert live.status_code == 200, entry["url"]
        assert body == live_body, entry["url"]
        assert entry["content_type"] == live.content_type, entry["url"]
        assert entry["content_disposition"] == live.headers.get("Content-Disposition"), entry["url"]
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
        assert entry["bytes"] == len(body)


def test_the_mirror_holds_every_public_page_of_the_data(demo_app, demo_mirror):
    _directory, _result, manifest = demo_mirror
    urls = {entry["url"] for entry in manifest["files"]}
    # The pages without arguments, whatever their number (the URL map says which they are).
    for page in ("/", "/upcoming", "/changes", "/subprocessors/", "/subprocessors/export.csv",
                 "/subprocessors/compare", "/documents/", "/api/v1/subprocessors", "/api/v1/documents",
                 "/api/v1/changes/upcoming", "/api/v1/openapi.json", "/feeds/all.atom", "/feeds/all.rss",
                 "/feeds/subprocessors.atom", "/feeds/subprocessors.rss", "/static/css/site.css",
                 "/api/v1/exports/dora"):
        assert page in urls, page
    dora = next(entry for entry in manifest["files"] if entry["url"] == "/api/v1/exports/dora")
    assert dora["content_type"] == "application/zip" and dora["path"].endswith("exports/dora")
    with demo_app.app_context():
        slugs = {e.slug for e in reading.subprocessor_events(db.session)}
        documents = {d.slug: [v.number for v in reading.versions(db.session, d)]
                     for d in reading.documents(db.session)}
    assert len(slugs) > 10 and len(documents) >= 3
    for slug in slugs:
        assert {f"/subprocessors/{slug}", f"/api/v1/subprocessors/{slug}"} <= urls, slug
    compared = {(path, frozenset(parse_qsl(query))) for path, _, query in
                (url.partition("?") for url in urls) if query}
    for slug, numbers in documents.items():
        assert {f"/documents/{slug}/", f"/documents/{slug}/versions/", f"/api/v1/documents/{slug}",
                f"/api/v1/documents/{slug}/versions", f"/feeds/documents/{slug}.atom",
                f"/feeds/documents/{slug}.rss"} <= urls, slug
        for number in numbers:
            assert {f"/documents/{slug}/versions/{number}",
                    f"/api/v1/documents/{slug}/versions/{number}"} <= urls
        pairs = [(a, b) for a in numbers for b in numbers if a < b]
        assert pairs
        for old, new in pairs:  # every pair, in both views, and its unified diff
            assert f"/documents/{slug}/compare/{old}-{new}.diff" in urls
            for view in ("redline", "side"):
                wanted = frozenset({("from", str(old)), ("to", str(new)), ("view", view)})
                assert (f"/documents/{slug}/compare", wanted) in compared
    # The query strings the pages themselves link to are files too, in the order they are linked.
    page = (_directory / "current" / "site" / "documents" / "privacy-policy" / "index.html").read_text()
    linked = [url for url in urls if url.startswith("/documents/privacy-policy/compare?")
              and url.replace("&", "&amp;") in page]
    assert linked


def test_views_that_cannot_be_enumerated_are_listed_and_left_to_the_app(demo_mirror):
    manifest = demo_mirror[2]
    reasons = {entry["url"]: entry["reason"] for entry in manifest["not_mirrored"]}
    assert "/api/v1/subprocessors/changes" in reasons  # it needs ?since=
    assert "answers 400" in reasons["/api/v1/subprocessors/changes"]
    urls = {entry["url"] for entry in manifest["files"]}
    assert not any(url.startswith(("/admin", "/auth", "/subscriptions")) for url in urls)
    assert "/subscriptions/" in reasons  # linked from the pages; a form, so the app's


def test_pages_of_an_api_list_are_files(demo_app, tmp_path, monkeypatch):
    monkeypatch.setattr("registry.web.api.DEFAULT_PER_PAGE", 5)
    demo_app.extensions["page_cache"].clear()
    try:
        result = build(demo_app, tmp_path)
    finally:
        demo_app.extensions["page_cache"].clear()
    files = {f.url: f for f in result.files}
    with demo_app.app_context():
        count = len({e.slug for e in reading.subprocessor_events(db.session)})
    pages = -(-count // 5)
    assert pages >= 3
    for number in range(2, pages + 1):
        entry = files[f"/api/v1/subprocessors?page={number}"]
        assert entry.path == f"api/v1/subprocessors/index.html?page={number}"
        body = json.loads((tmp_path / "current" / "site" / entry.path).read_bytes())
        assert body["meta"]["page"] == number
    assert f"/api/v1/subprocessors?page={pages + 1}" not in files


def test_file_names_keep_a_path_that_is_also_a_folder_inside_it():
    names = mirror.file_names(["/a", "/a/b", "/c/", "/c/?x=1", "/a?page=2", "/d"])
    assert names == {"/a": "a/index.html", "/a/b": "a/b", "/c/": "c/index.html",
                     "/c/?x=1": "c/index.html?x=1", "/a?page=2": "a/index.html?page=2", "/d": "d"}


def test_the_switch_is_a_symlink_replaced_in_one_rename_and_two_trees_are_kept(app, tmp_path):
    add_acme(now_utc() - timedelta(days=1))
    trees = []
    for _ in range(3):
        result = build(app, tmp_path)
        trees.append(result.tree)
        current = tmp_path / "current"
        assert current.is_symlink() and os.readlink(current) == result.tree.name
    assert sorted(p.name for p in tmp_path.glob("tree-*")) == sorted(t.name for t in trees[1:])
    assert not list(tmp_path.glob(".current-*"))
    assert "Acme Hosting" in (tmp_path / "current" / "site" / "subprocessors" / "index.html").read_text()


def test_a_directory_in_place_of_the_symlink_is_refused_and_left_alone(app, tmp_path):
    (tmp_path / "current").mkdir()
    with pytest.raises(mirror.MirrorError, match="not a symlink"):
        build(app, tmp_path)
    assert (tmp_path / "current").is_dir() and not (tmp_path / "current").is_symlink()


def test_refresh_rebuilds_only_when_the_public_content_changed(app, tmp_path):
    assert mirror.refresh(app, tmp_path) is not None  # no mirror yet
    assert mirror.refresh(app, tmp_path) is None
    add_acme(now_utc() - timedelta(days=1))
    result = mirror.refresh(app, tmp_path)
    assert result is not None
    assert "/subprocessors/acme" in {f.url for f in result.files}
    assert mirror.refresh(app, tmp_path) is None


def test_the_cli_writes_the_mirror_and_names_what_it_left_to_the_app(app, runner, tmp_path):
    add_acme(now_utc() - timedelta(days=1))
    result = runner.invoke(args=["registry", "mirror", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert " files, " in result.output.splitlines()[0]
    assert "current -> tree-" in result.output
    assert "not mirrored, served by the app: /api/v1/subprocessors/changes" in result.output
    snippet = (tmp_path / "site" / "nginx-mirror.conf").read_text()
    exact = 'location = /api/v1/subprocessors {\n    types { }\n    default_type "application/json";'
    assert exact in snippet
    assert "location ^~ /subprocessors/ {" in snippet


def test_the_cli_reports_a_mirror_it_cannot_switch(app, runner, tmp_path):
    (tmp_path / "current").mkdir()
    result = runner.invoke(args=["registry", "mirror", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not a symlink" in result.output


SITE = "/srv/mirror/current/site"


def _file(url: str, path: str, content_type: str) -> mirror.MirroredFile:
    return mirror.MirroredFile(url=url, path=path, content_type=content_type, content_disposition=None,
                               bytes=1, sha256="0" * 64)


def test_nginx_locations_come_from_the_url_map_and_need_no_pattern(app):
    # No page at all: the folders are there already, so a sub-processor published later is a file
    # nginx serves without a reload (test_nginx.py serves one with the app down).
    snippet = mirror.nginx_server_conf(app, [], SITE)
    assert "location ^~ /subprocessors/ {" in snippet and "location ^~ /documents/ {" in snippet
    # Nothing on the way to a file evaluates a regular expression, a map or a `set`.
    directives = {line.split()[0] for line in snippet.splitlines() if line.strip() and line[0] != "#"}
    assert "try_files" in directives and not {"map", "set", "rewrite", "if"} & directives
    assert "location ~" not in snippet


def test_a_page_of_another_type_than_its_folder_gives_is_refused(app):
    pages = [_file("/subprocessors/acme", "subprocessors/acme", "text/html; charset=utf-8"),
             _file("/documents/dpa/compare/1-2.diff", "documents/dpa/compare/1-2.diff",
                   "text/x-diff; charset=utf-8")]
    assert "location ^~ /subprocessors/" in mirror.nginx_server_conf(app, pages, SITE)
    with pytest.raises(mirror.MirrorError, match="/subprocessors/beta is application/json"):
        mirror.nginx_server_conf(app, [*pages, _file("/subprocessors/beta", "subprocessors/beta",
                                                     "application/json")], SITE)
    with pytest.raises(mirror.MirrorError, match="several content types"):
        mirror.nginx_server_conf(app, [_file("/changes", "changes", "text/html; charset=utf-8"),
                                       _file("/changes?page=2", "changes?page=2", "application/json")], SITE)


def test_each_page_of_the_build_is_opened_once(app):
    """A page whose path does not end in "/" is its location's alias, the query string appended
    (one file lookup; a query string without a file is a 404 the app answers); a path ending in "/"
    and the folders (pages published later) keep try_files. A "$" in the site's path is refused."""
    pages = [_file("/subprocessors/acme", "subprocessors/acme", "text/html; charset=utf-8"),
             _file("/subprocessors/", "subprocessors/index.html", "text/html; charset=utf-8"),
             _file("/documents/dpa/compare?from=1&to=2", "documents/dpa/compare/index.html?from=1&to=2",
                   "text/html; charset=utf-8")]
    snippet = mirror.nginx_server_conf(app, pages, SITE)
    block = snippet[snippet.index("location = /documents/dpa/compare {"):]
    block = block[:block.index("\n}\n")]
    assert f'alias "{SITE}/documents/dpa/compare/index.html$is_args$args";' in block
    assert "error_page 404 = @app;" in block and "try_files" not in block
    assert f'alias "{SITE}/subprocessors/acme$is_args$args";' in snippet
    listing = snippet[snippet.index("location = /subprocessors/ {"):]
    listing = listing[:listing.index("\n}\n")]
    assert listing.count("try_files /subprocessors/index.html$is_args$args @app;") == 1
    with pytest.raises(mirror.MirrorError, match="variable"):
        mirror.nginx_server_conf(app, pages, "/srv/$mirror/current/site")
