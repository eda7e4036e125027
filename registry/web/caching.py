"""Public pages are rendered once per content change and served from memory with validators.

Every worker keeps its own cache of rendered bodies. It asks the database at most once per
`page_cache_seconds` whether public content changed, and also forgets everything when a scheduled
change becomes effective or the legal date turns, so a page is never older than its content.

A page is keyed on its path and on the query parameters its view reads, not on the whole query
string: each render records the names it asked `request.args` for, and the cache keys that view's
pages on the values of those names only. `?x=123` on a cached page is therefore a hit, served with
the bytes of the page without it (the view never looked at `x`, so it cannot depend on it). A view
that lists every parameter (iterates `request.args`) is keyed on the whole query string, as before.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from zoneinfo import ZoneInfo

from cachetools import LRUCache
from flask import Response, current_app, request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.http import http_date

from registry.domain.clock import now_utc
from registry.extensions import db, limiter
from registry.services.site import content_state

# Only these make a response conditional; skipping make_conditional otherwise saves a third
# of the time of a cached request.
CONDITIONAL_HEADERS = frozenset(
    {"HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_RANGE", "HTTP_RANGE"}
)


@dataclass(frozen=True)
class Epoch:
    key: tuple
    last_modified: datetime
    expires_at: datetime | None  # when the public content changes by itself next
    headers: tuple[tuple[str, str], ...]  # the same for every page of this epoch


@dataclass(frozen=True)
class Page:
    body: bytes
    mimetype: str
    headers: tuple[tuple[str, str], ...]  # the ETag and what the view set that must be kept


class ReadArgs(ImmutableMultiDict):
    """request.args that remembers which names a view read, and whether it looked at them all."""

    def __init__(self, mapping):
        super().__init__(mapping)
        self.names: set[str] = set()
        self.read_all = False

    def get(self, key, default=None, type=None):
        self.names.add(key)
        return super().get(key, default, type)

    def getlist(self, key, type=None):
        self.names.add(key)
        return super().getlist(key, type)

    def __getitem__(self, key):
        self.names.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.names.add(key)
        return super().__contains__(key)

    def _everything(self):
        self.read_all = True

    def items(self, multi=False):
        self._everything()
        return super().items(multi)

    def lists(self):
        self._everything()
        return super().lists()

    def keys(self):
        self._everything()
        return super().keys()

    def values(self):
        self._everything()
        return super().values()

    def listvalues(self):
        self._everything()
        return super().listvalues()

    def to_dict(self, flat=True):
        self._everything()
        return super().to_dict(flat)

    def __iter__(self):
        self._everything()
        return super().__iter__()

    def __len__(self):
        self._everything()
        return super().__len__()


ALL = None  # a view that read every parameter: its pages are keyed on the whole query string


class PageCache:
    def __init__(self, check_seconds: float, max_age: int, timezone: str, maxsize: int = 2048):
        self.check_seconds = check_seconds
        self.max_age = max_age
        self.zone = ZoneInfo(timezone)
        self.pages: LRUCache = LRUCache(maxsize=maxsize)
        # (names a view reads, query string) -> those names' values in it: parsed once.
        self.values: LRUCache = LRUCache(maxsize=maxsize)
        self.lock = threading.Lock()
        self.epoch: Epoch | None = None
        self.checked_at = 0.0
        # endpoint -> the query parameter names its view has ever read (ALL: it read them all).
        self.reads: dict[str, frozenset[str] | None] = {}

    def current_epoch(self) -> Epoch:
        now = now_utc()
        epoch = self.epoch
        fresh = time.monotonic() - self.checked_at < self.check_seconds
        if epoch and fresh and (epoch.expires_at is None or now < epoch.expires_at):
            return epoch
        state = content_state(db.session, now)
        local_midnight = now.astimezone(self.zone).replace(hour=0, minute=0, second=0, microsecond=0)
        last_modified = max(filter(None, (state.changed_at, state.last_boundary, local_midnight)))
        key = (state.revision, state.last_boundary, local_midnight.date())
        last_modified = last_modified.astimezone(UTC).replace(microsecond=0)
        headers = (("Last-Modified", http_date(last_modified)), ("Vary", "Accept-Encoding"))
        epoch = Epoch(key, last_modified, state.next_boundary, headers)
        with self.lock:
            if self.epoch is None or self.epoch.key != key:
                self.pages.clear()
            self.epoch = epoch
            self.checked_at = time.monotonic()
        return epoch

    def clear(self) -> None:
        with self.lock:
            self.pages.clear()
            self.epoch = None
            self.checked_at = 0.0

    def cache_control(self, epoch: Epoch) -> str:
        max_age = self.max_age
        if epoch.expires_at is not None:
            max_age = max(0, min(max_age, int((epoch.expires_at - now_utc()).total_seconds())))
        return f"public, max-age={max_age}, stale-if-error=86400"

    def key(self, names: frozenset[str] | None) -> tuple:
        """The page's path and the values of the parameters its view reads, in a fixed order.

        Called with the lock held. The values of a query string already seen are remembered, so a hit
        does not parse it again (parsing was a third of what a cached comparison cost over the trivial
        endpoint)."""
        if names is ALL:
            return (request.path, request.query_string)
        query = request.query_string
        values = self.values.get((names, query))
        if values is None:
            args = request.args
            values = tuple((name, tuple(args.getlist(name))) for name in sorted(names))
            self.values[(names, query)] = values
        return (request.path, values)

    def respond(self, render: Callable[[], Response]) -> Response:
        epoch = self.current_epoch()
        endpoint = request.endpoint or ""
        with self.lock:  # an LRU lookup reorders the cache, so it is a write too
            page = self.pages.get(self.key(self.reads.get(endpoint, frozenset())))
        if page is None:
            response, read = self._render_recording(render)
            if response.status_code != 200:
                return response
            body = response.get_data()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            kept = [(k, v) for k, v in response.headers.items()
                    if k.lower() in ("content-disposition", "link")]
            page = Page(body, response.content_type, (("ETag", etag), *kept))
            with self.lock:
                known = self.reads.get(endpoint, frozenset())
                names = ALL if known is ALL or read is ALL else known | read
                self.reads[endpoint] = names
                if self.epoch is epoch:
                    # Keyed on every name the view has read so far: a later request matches only
                    # when each of them has the same values, and a deterministic view then reads
                    # the same names and renders the same bytes.
                    self.pages[self.key(names)] = page
        response = Response(page.body, content_type=page.mimetype, headers=[
            *page.headers, *epoch.headers, ("Cache-Control", self.cache_control(epoch)),
        ])
        if CONDITIONAL_HEADERS.isdisjoint(request.environ):
            return response
        return response.make_conditional(request)


    @staticmethod
    def _render_recording(render: Callable[[], Response]) -> tuple[Response, frozenset[str] | None]:
        """Render, and return the names of the query parameters the view read (ALL: all of them)."""
        current = request._get_current_object()  # type: ignore[attr-defined]
        original = current.args
        recorder = ReadArgs(original)
        current.args = recorder
        try:
            response = render()
        finally:
            current.args = original
        return response, (ALL if recorder.read_all else frozenset(recorder.names))


@limiter.request_filter
def _cached_pages_have_no_limits() -> bool:
    """Flask-Limiter skips a cached page's GET at once instead of resolving its (empty) list of limits
    for the blueprint, a fifth of what a cached API answer cost. No cached view has a limit:
    tests/web/test_page_cache.py checks it for every one."""
    view = current_app.view_functions.get(request.endpoint or "")
    return request.method in ("GET", "HEAD") and getattr(view, "is_cached", False)


def content_last_modified() -> datetime:
    """When the public content last changed: the same in every worker, unlike the render time."""
    cache: PageCache = current_app.extensions["page_cache"]
    return cache.current_epoch().last_modified


def cached(view: Callable[..., Response | str]) -> Callable[..., Response]:
    """Serve a public GET view from the page cache; errors are never cached."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        cache: PageCache = current_app.extensions["page_cache"]
        return cache.respond(lambda: current_app.make_response(view(*args, **kwargs)))

    # A public page: the static mirror (registry/mirror) writes every such view's pages as files.
    wrapper.is_cached = True  # type: ignore[attr-defined]
    return wrapper
