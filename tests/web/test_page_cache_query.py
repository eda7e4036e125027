"""The page cache keys a page on the query parameters its view reads: `?x=123` does not bypass it."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, request

from registry.web.caching import Epoch, PageCache, cached


def test_an_unknown_parameter_is_served_from_the_cache_with_the_same_bytes(demo_app):
    cache = demo_app.extensions["page_cache"]
    cache.clear()
    client = demo_app.test_client()
    plain = client.get("/subprocessors/")
    pages = len(cache.pages)
    for query in ("?x=123", "?x=456&utm_source=mail", "?_=1700000000"):
        noisy = client.get("/subprocessors/" + query)
        assert noisy.status_code == 200
        assert noisy.data == plain.data
        assert noisy.headers["ETag"] == plain.headers["ETag"]
    assert len(cache.pages) == pages  # no new entry: each was a hit on the page without them


def test_a_parameter_the_view_reads_still_makes_its_own_page(demo_app):
    cache = demo_app.extensions["page_cache"]
    cache.clear()
    client = demo_app.test_client()
    by_name = client.get("/subprocessors/?sort=name")
    by_added = client.get("/subprocessors/?sort=added&x=1")
    assert by_name.status_code == by_added.status_code == 200
    assert client.get("/subprocessors/?x=2&sort=added").data == by_added.data
    assert client.get("/subprocessors/?sort=name&x=3").data == by_name.data
    # A bad value of a parameter the view reads is still refused, never answered from the cache.
    assert client.get("/subprocessors/?sort=nonsense&x=1").status_code == 400


def test_api_links_repeat_the_list_parameters_only_so_noise_is_a_cache_hit(demo_app):
    cache = demo_app.extensions["page_cache"]
    cache.clear()
    client = demo_app.test_client()
    plain = client.get("/api/v1/subprocessors?per_page=5&sort=added")
    pages = len(cache.pages)
    noisy = client.get("/api/v1/subprocessors?x=1&sort=added&per_page=5")
    assert noisy.data == plain.data
    assert len(cache.pages) == pages
    links = plain.get_json()["links"]
    assert links["next"].endswith("/api/v1/subprocessors?per_page=5&sort=added&page=2")
    assert "x=1" not in links["self"]


def test_the_csv_link_repeats_the_list_parameters_only(demo_app):
    page = demo_app.test_client().get("/subprocessors/?purpose=Hosting&x=1").get_data(as_text=True)
    assert 'href="/subprocessors/export.csv?purpose=Hosting"' in page


def _app_with(views) -> tuple[Flask, list[str]]:
    """A bare app with the page cache and a fixed content epoch: only the keying is under test."""
    app = Flask(__name__)
    cache = PageCache(check_seconds=3600, max_age=60, timezone="UTC")
    epoch = Epoch(("fixed",), datetime(2026, 1, 1, tzinfo=UTC), None, ())
    cache.epoch = epoch
    cache.current_epoch = lambda: epoch
    app.extensions["page_cache"] = cache
    renders: list[str] = []
    for name, view in views.items():
        def counted(view=view, name=name):
            renders.append(name)
            return view()
        counted.__name__ = name
        app.add_url_rule(f"/{name}", name, cached(counted))
    return app, renders


def test_a_parameter_read_only_for_some_values_of_another_is_never_answered_wrongly():
    def conditional():
        first = request.args.get("a", "")
        return f"{first}-{request.args.get('b', '')}" if first == "1" else first

    app, renders = _app_with({"conditional": conditional})
    client = app.test_client()
    assert client.get("/conditional?a=2&b=9").text == "2"
    assert client.get("/conditional?a=2&b=8").text == "2"
    assert renders == ["conditional"]  # b is not read when a is 2: one render for both
    assert client.get("/conditional?a=1&b=2").text == "1-2"
    assert client.get("/conditional?a=1&b=3").text == "1-3"
    assert client.get("/conditional?a=1&b=2&c=0").text == "1-2"
    assert len(renders) == 3


def test_a_view_that_lists_every_parameter_is_keyed_on_the_whole_query():
    def echo():
        return "&".join(f"{k}={v}" for k, v in request.args.items())

    app, renders = _app_with({"echo": echo})
    client = app.test_client()
    assert client.get("/echo?x=1").text == "x=1"
    assert client.get("/echo?x=2").text == "x=2"
    assert client.get("/echo?x=1").text == "x=1"
    assert renders == ["echo", "echo"]


def test_the_same_query_string_is_read_by_each_view_for_its_own_names():
    """Parsed values are remembered per (names read, query string): two views reading different names
    of the same query, and one query spelled two ways, each get the page their values make."""
    app, renders = _app_with({"first": lambda: request.args.get("a", ""),
                              "second": lambda: request.args.get("b", "")})
    client = app.test_client()
    for _ in range(2):
        assert client.get("/first?a=1&b=2").text == "1"
        assert client.get("/second?a=1&b=2").text == "2"
    assert client.get("/first?a=%31&b=9").text == "1"  # the same value of a, spelled otherwise: a hit
    assert client.get("/first?b=2&a=3").text == "3"
    assert renders == ["first", "second", "first"]


def test_no_cached_view_has_a_rate_limit(demo_app):
    """Cached pages' GETs skip Flask-Limiter (registry.web.caching); that is only right while none of
    their views has a limit, by decorator, blueprint or default."""
    from flask_limiter.util import get_qualified_name

    from registry.extensions import limiter

    views = demo_app.view_functions
    cached_views = {rule.endpoint: views[rule.endpoint] for rule in demo_app.url_map.iter_rules()
                    if getattr(views[rule.endpoint], "is_cached", False)}
    assert {"documents.compare", "subprocessors.index", "api.subprocessors"} <= set(cached_views)
    with demo_app.test_request_context():
        for endpoint, view in cached_views.items():
            blueprint = endpoint.rpartition(".")[0] or None
            defaults, decorated = limiter.limit_manager.resolve_limits(
                demo_app, endpoint, blueprint, get_qualified_name(view), False, True)
            assert (list(defaults), list(decorated)) == ([], []), endpoint
        # The same question finds the subscribe form's limit: the check above can fail.
        subscribe = demo_app.view_functions["subscriptions.subscribe"]
        _defaults, decorated = limiter.limit_manager.resolve_limits(
            demo_app, "subscriptions.subscribe", "subscriptions", get_qualified_name(subscribe), False, True)
        assert decorated and not getattr(subscribe, "is_cached", False)
