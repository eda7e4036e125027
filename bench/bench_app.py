"""The registry app plus /_bench/raw/<name>: each benchmarked page's bytes, returned as-is.

The raw route is the baseline the page cache is measured against: the same server, the same
body and content type, and nothing else to do. gunicorn builds it with the factory syntax:
`gunicorn -w 2 --bind 127.0.0.1:8000 'bench.bench_app:create_bench_app()'`.
"""

from __future__ import annotations

from flask import Flask, Response, abort

from registry import create_app
from registry.settings import Settings

# name -> path of every page the HTTP benchmark measures.
PAGES = {
    "subprocessors": "/subprocessors/",
    "privacy-policy": "/documents/privacy-policy/",
    "privacy-policy-compare": "/documents/privacy-policy/compare?from=1&to=2&view=redline",
    "api-subprocessors": "/api/v1/subprocessors",
}
RAW_PREFIX = "/_bench/raw/"


def create_bench_app(settings: Settings | None = None) -> Flask:
    app = create_app(settings)
    raw: dict[str, tuple[bytes, str]] = {}

    @app.get(RAW_PREFIX + "<name>")
    def bench_raw(name: str) -> Response:
        if name not in raw:
            abort(404)
        body, content_type = raw[name]
        return Response(body, content_type=content_type)

    with app.test_client() as client:
        for name, path in PAGES.items():
            response = client.get(path)
            # A page that does not exist yet keeps its 404 on the raw route too.
            if response.status_code == 200:
                raw[name] = (response.get_data(), response.content_type)
    return app
