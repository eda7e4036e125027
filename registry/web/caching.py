"""Public pages are rendered once per content change and served from memory with validators.

Every worker keeps its own cache of rendered bodies. It asks the database at most once per
`page_cache_seconds` whether public content changed, and also forgets everything when a scheduled
change becomes effective or the legal date turns, so a page is never older than its content.
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
from werkzeug.http import http_date

from registry.domain.clock import now_utc
from registry.extensions import db
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


class PageCache:
    def __init__(self, check_seconds: float, max_age: int, timezone: str, maxsize: int = 2048):
        self.check_seconds = check_seconds
        self.max_age = max_age
        self.zone = ZoneInfo(timezone)
        self.pages: LRUCache = LRUCache(maxsize=maxsize)
        self.lock = threading.Lock()
        self.epoch: Epoch | None = None
        self.checked_at = 0.0

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

    def respond(self, render: Callable[[], Response]) -> Response:
        epoch = self.current_epoch()
        key = (request.path, request.query_string)
        with self.lock:  # an LRU lookup reorders the cache, so it is a write too
            page = self.pages.get(key)
        if page is None:
            response = render()
            if response.status_code != 200:
                return response
            body = response.get_data()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            kept = [(k, v) for k, v in response.headers.items()
                    if k.lower() in ("content-disposition", "link")]
            page = Page(body, response.content_type, (("ETag", etag), *kept))
            with self.lock:
                if self.epoch is epoch:
                    self.pages[key] = page
        response = Response(page.body, content_type=page.mimetype, headers=[
            *page.headers, *epoch.headers, ("Cache-Control", self.cache_control(epoch)),
        ])
        if CONDITIONAL_HEADERS.isdisjoint(request.environ):
            return response
        return response.make_conditional(request)


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

    return wrapper
