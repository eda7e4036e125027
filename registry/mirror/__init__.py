"""The static mirror: the whole public site as files, rendered by the live views themselves.

`flask registry mirror DIR` (and the worker, when REGISTRY_MIRROR_DIR is set) asks the app for
every public page through its own test client, so a mirrored file is byte for byte what the site
answers: one renderer, two outputs. Which pages exist comes from the URL map and the data, not from
a list: every GET view wrapped in the page cache's `@cached` (and the static files) is mirrored, with
its URL arguments taken from the public documents, versions and sub-processors; then every link in
the pages, feeds and JSON answers that leads to such a view is followed, which brings in the query
strings the site itself links to (API pages, sort orders, redlines). Document comparisons are added
for every pair of versions up to MAX_COMPARE_VERSIONS per document. A view with a URL argument the
mirror has no values for is listed in the manifest as not mirrored, and served by the app.

Layout of DIR:

    DIR/current -> tree-20261201T120000Z-1a2b3c   (a symlink, replaced atomically)
    DIR/tree-.../site/...                         the files nginx or an object store serves
    DIR/tree-.../manifest.json                    every file's URL, path, content type and hash
    DIR/nginx-mirror.conf                         nginx's locations: one per page or folder, typed

A page's file is its path; a path that is also a folder (`/api/v1/subprocessors` and
`/api/v1/subprocessors/<slug>`), and a path ending in `/`, get `index.html` inside the folder. A
query string is part of the file name after a `?` (`compare/index.html?from=1&to=2`): nginx looks
for `$uri?$args`; only query strings made of SAFE_QUERY characters are written, exactly as the
pages link them. Anything else (a search, an as-of date nobody links, another order of parameters)
has no file and falls through to the app.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import secrets
import shutil
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect, Rule

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import reading
from registry.services.site import content_state
from registry.web import CSP

# Every pair among a document's newest 40 versions (at most 780 pairs, each in two views).
MAX_COMPARE_VERSIONS = 40
# A site past this many files is a crawl gone wrong (a link that makes links), not a registry.
MAX_FILES = 100_000
# Query strings written into a file name: no "/", no "%", no "+" (see nginx_server_conf()).
SAFE_QUERY = re.compile(r"[A-Za-z0-9_.=&-]{1,256}")
SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]*")
KEEP_TREES = 2
CURRENT = "current"
MANIFEST = "manifest.json"
VERSION = "version.json"  # the manifest's content key and expiry alone, read at every tick
NGINX_SNIPPET = "nginx-mirror.conf"  # the locations, for nginx's server { } block
LINK = re.compile(rb"""(?:href|src)\s*=\s*["']([^"'<>\s]+)["']""")
TEXT_TYPES = ("text/html", "application/json", "application/atom+xml", "application/rss+xml",
              "application/xml", "text/xml")
# A comparison's query strings besides those the pages link: both views of every pair.
COMPARE_ENDPOINT = "documents.compare"
COMPARE_VIEWS = ("redline", "side")


class MirrorError(RuntimeError):
    """The mirror could not be written; the current one stays as it was."""


@dataclass(frozen=True)
class MirroredFile:
    url: str
    path: str
    content_type: str
    content_disposition: str | None
    bytes: int
    sha256: str


@dataclass(frozen=True)
class NotMirrored:
    url: str
    reason: str


@dataclass
class Result:
    tree: Path
    files: list[MirroredFile]
    not_mirrored: list[NotMirrored]
    built_at: datetime
    content_key: dict
    expires_at: datetime | None
    requests: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclass
class _Page:
    url: str
    endpoint: str
    body: bytes
    content_type: str
    content_disposition: str | None


@dataclass
class _Crawl:
    pages: dict[str, _Page] = field(default_factory=dict)
    not_mirrored: dict[str, NotMirrored] = field(default_factory=dict)
    requests: int = 0


# What the site is: its content key, the URL map's mirrorable views and the values of their arguments.

def content_key(now: datetime, timezone: str) -> dict:
    """What public pages depend on: the content revision, the latest effective instant passed and the
    legal date (the same key as the page cache's epoch). A mirror with another key is stale."""
    state = content_state(db.session, now)
    return {"revision": state.revision,
            "last_boundary": state.last_boundary.isoformat() if state.last_boundary else None,
            "legal_date": now.astimezone(ZoneInfo(timezone)).date().isoformat(),
            "next_boundary": state.next_boundary.isoformat() if state.next_boundary else None}


def _mirrored_rules(app: Flask) -> Iterator[Rule]:
    """The GET rules whose pages the mirror writes."""
    return (rule for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or ()) and is_mirrored(app, rule.endpoint))


def is_mirrored(app: Flask, endpoint: str) -> bool:
    """A public page (a view served through the page cache) or a static file."""
    if endpoint == "static":
        return True
    return bool(getattr(app.view_functions.get(endpoint), "is_cached", False))


@dataclass(frozen=True)
class _Data:
    versions: dict[str, list[int]]   # document slug -> public version numbers, oldest first
    subprocessors: list[str]
    static: list[str]

    @property
    def slugs(self) -> list[str]:
        return sorted({*self.versions, *self.subprocessors})


def _data(app: Flask) -> _Data:
    versions = {d.slug: [v.number for v in reading.versions(db.session, d)]
                for d in reading.documents(db.session)}
    subprocessors = sorted({e.slug for e in reading.subprocessor_events(db.session)})
    static = []
    if app.static_folder and Path(app.static_folder).is_dir():
        root = Path(app.static_folder)
        static = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                        if p.is_file() and not p.name.startswith("."))
    return _Data(versions, subprocessors, static)


def _argument_values(rule: Rule, data: _Data) -> list[dict] | str:
    """Every combination of values for the rule's arguments, or why there are none."""
    names = set(rule.arguments) - set(rule.defaults or {})
    if not names:
        return [{}]
    if rule.endpoint == "static" and names == {"filename"}:
        return [{"filename": name} for name in data.static]
    unknown = names - {"slug", "number", "old_number", "new_number"}
    if unknown or ({"number", "old_number", "new_number"} & names and "slug" not in names) or (
            ("old_number" in names) != ("new_number" in names)):
        return f"no values for the URL argument(s) {', '.join(sorted(unknown or names))}"
    combinations = []
    for slug in data.slugs:
        numbers = data.versions.get(slug, [])
        if "number" in names and "old_number" in names:
            return "no values for number together with old_number and new_number"
        if "number" in names:
            combinations += [{"slug": slug, "number": n} for n in numbers]
        elif "old_number" in names:
            combinations += [{"slug": slug, "old_number": old, "new_number": new}
                             for old, new in _pairs(numbers)]
        else:
            combinations.append({"slug": slug})
    return combinations


def _pairs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    newest = numbers[-MAX_COMPARE_VERSIONS:]
    for i, old in enumerate(newest):
        for new in newest[i + 1:]:
            yield old, new


def _seeds(app: Flask, data: _Data) -> tuple[list[str], set[str], list[NotMirrored]]:
    """Every URL to try, those of them that must answer (rules without arguments), and the rules
    that cannot be enumerated."""
    adapter = app.url_map.bind("localhost")
    urls: list[str] = []
    required: set[str] = set()
    skipped: list[NotMirrored] = []
    for rule in _mirrored_rules(app):
        values = _argument_values(rule, data)
        if isinstance(values, str):
            skipped.append(NotMirrored(rule.rule, values))
            continue
        for arguments in values:
            urls.append(adapter.build(rule.endpoint, {**(rule.defaults or {}), **arguments}))
            if not arguments:
                required.add(urls[-1])
        if rule.endpoint == COMPARE_ENDPOINT:
            for slug, numbers in data.versions.items():
                path = adapter.build(rule.endpoint, {"slug": slug})
                for old, new in _pairs(numbers):
                    for view in COMPARE_VIEWS:
                        urls.append(f"{path}?{urlencode({'from': old, 'to': new, 'view': view})}")
    return list(dict.fromkeys(urls)), required, skipped


# Fetching through the app and following links.

def _links(page: _Page, base_url: str) -> Iterator[str]:
    """Same-site URLs a page links to, as path?query."""
    if not page.content_type.startswith(TEXT_TYPES):
        return
    if page.content_type.startswith("application/json"):
        candidates = list(_json_strings(json.loads(page.body)))
    else:
        candidates = [_unescape(m.group(1).decode("utf-8", "replace")) for m in LINK.finditer(page.body)]
    for link in candidates:
        if link.startswith(base_url + "/"):
            link = link[len(base_url):]
        if link.startswith("/") and not link.startswith("//"):
            yield link.split("#", 1)[0]


def _unescape(text: str) -> str:
    """A link's URL: a feed's HTML content is escaped twice (HTML inside XML)."""
    for _ in range(3):
        plain = html.unescape(text)
        if plain == text:
            break
        text = plain
    return text


def _json_strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def _mirrorable_url(app: Flask, url: str) -> tuple[str | None, str]:
    """(endpoint, "") when `url` is a public page the mirror can write as a file, else (None, why)."""
    path, _, query = url.partition("?")
    if query and not SAFE_QUERY.fullmatch(query):
        return None, "its query string is not one nginx maps to a file name"
    segments = path.strip("/").split("/") if path.strip("/") else []
    if any(not SAFE_SEGMENT.fullmatch(s) for s in segments):
        return None, "its path is not one the mirror writes as a file name"
    try:
        endpoint, _args = app.url_map.bind("localhost").match(path, method="GET")
    except RequestRedirect:
        return None, "the app redirects it"
    except HTTPException:
        return None, "no public view answers it"
    if not is_mirrored(app, endpoint):
        return None, "not a public page (forms, staff pages and searches go to the app)"
    return endpoint, ""


def _crawl(app: Flask, data: _Data) -> _Crawl:
    crawl = _Crawl()
    seeds, required, skipped = _seeds(app, data)
    crawl.not_mirrored.update({s.url: s for s in skipped})
    base_url = app.config["REGISTRY"].base_url
    queue = deque(seeds)
    seen = set(seeds)
    # The seeds try every slug with every view: a 404 there means "not this kind of thing".
    quiet = set(seeds) - required
    client = app.test_client()
    while queue:
        url = queue.popleft()
        endpoint, why = _mirrorable_url(app, url)
        if endpoint is None:
            crawl.not_mirrored.setdefault(url, NotMirrored(url, why))
            continue
        with client.get(url) as response:  # closes a static file's handle
            crawl.requests += 1
            status = response.status_code
            page = _Page(url, endpoint, response.get_data(), response.content_type,
                         response.headers.get("Content-Disposition"))
        if status >= 500:
            raise MirrorError(f"{url} answered {status}; the mirror was not switched")
        if status != 200:
            if url not in quiet:
                crawl.not_mirrored.setdefault(url, NotMirrored(url, f"answers {status}"))
            continue
        crawl.pages[url] = page
        if len(crawl.pages) > MAX_FILES:
            raise MirrorError(f"more than {MAX_FILES} pages: is a page linking to ever new URLs?")
        for link in _links(page, base_url):
            if link not in seen:
                seen.add(link)
                queue.append(link)
    return crawl


# Writing a tree and switching to it.

def file_names(urls: list[str]) -> dict[str, str]:
    """Each URL's file, relative to the site folder (see the module's docstring)."""
    paths = {url.partition("?")[0] for url in urls}
    folders = {p[:i] for p in paths for i in range(1, len(p)) if p[i] == "/"}
    names = {}
    for url in urls:
        path, _, query = url.partition("?")
        if path.endswith("/"):
            name = path + "index.html"
        elif path in folders:
            name = path + "/index.html"
        else:
            name = path
        names[url] = name.lstrip("/") + (f"?{query}" if query else "")
    return names


def _write_tree(directory: Path, pages: dict[str, _Page]) -> tuple[Path, list[MirroredFile]]:
    stamp = now_utc().strftime("%Y%m%dT%H%M%S%fZ")
    tree = directory / f"tree-{stamp}-{secrets.token_hex(3)}"
    site = tree / "site"
    site.mkdir(parents=True)
    files = []
    for url, name in sorted(file_names(list(pages)).items()):
        page = pages[url]
        target = site / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(page.body)
        files.append(MirroredFile(url=url, path=name, content_type=page.content_type,
                                  content_disposition=page.content_disposition, bytes=len(page.body),
                                  sha256=hashlib.sha256(page.body).hexdigest()))
    return tree, files


def _switch(directory: Path, tree: Path) -> None:
    """Point DIR/current at `tree` in one rename: a reader sees the old site or the new, never half."""
    link = directory / CURRENT
    if link.exists() and not link.is_symlink():
        raise MirrorError(f"{link} is not a symlink; move it away (the mirror replaces a symlink)")
    temporary = directory / f".{CURRENT}-{secrets.token_hex(4)}"
    os.symlink(tree.name, temporary)
    os.replace(temporary, link)


def _prune(directory: Path) -> None:
    """Keep the current tree and the one before it (readers may still be in it); remove the rest."""
    current = os.readlink(directory / CURRENT)
    trees = sorted((p for p in directory.glob("tree-*") if p.is_dir() and not p.is_symlink()),
                   key=lambda p: p.name, reverse=True)
    kept = [t for t in trees if t.name == current] + [t for t in trees if t.name != current]
    for old in kept[KEEP_TREES:]:
        shutil.rmtree(old, ignore_errors=True)


def current_version(directory: Path) -> dict | None:
    """The current mirror's content key, build time and expiry; None when there is no mirror."""
    try:
        return json.loads((Path(directory) / CURRENT / VERSION).read_text())
    except (OSError, ValueError):
        return None


def expires_at(directory: Path) -> datetime | None:
    """When the current mirror's content changes by itself: the next effective instant."""
    version = current_version(directory)
    return datetime.fromisoformat(version["expires_at"]) if version and version["expires_at"] else None


def build(app: Flask, directory: Path, *, attempts: int = 3) -> Result:
    """Write the public site into a new tree of `directory` and switch `current` to it.

    Runs in an app context. The content key is read before and after: a publish or an effective
    instant during the build makes it start again, so a tree never mixes two states of the site.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    timezone = app.config["REGISTRY"].legal_timezone
    for _attempt in range(attempts):
        built_at = now_utc()
        key = content_key(built_at, timezone)
        db.session.rollback()  # the views read in their own sessions; this one holds no snapshot
        crawl = _crawl(app, _data(app))
        after = content_key(now_utc(), timezone)
        db.session.rollback()
        if after == key:
            break
    else:
        raise MirrorError(f"the public content changed during each of {attempts} builds")
    tree, files = _write_tree(directory, crawl.pages)
    expires_at = datetime.fromisoformat(key["next_boundary"]) if key["next_boundary"] else None
    result = Result(tree=tree, files=files, not_mirrored=sorted(crawl.not_mirrored.values(),
                                                                 key=lambda n: n.url),
                    built_at=built_at, content_key=key, expires_at=expires_at, requests=crawl.requests)
    (tree / MANIFEST).write_text(json.dumps({
        "format": 1,
        "built_at": built_at.isoformat(),
        "content_key": key,
        "expires_at": expires_at.isoformat() if expires_at else None,
        "max_compare_versions": MAX_COMPARE_VERSIONS,
        "files": [asdict(f) for f in files],
        "not_mirrored": [asdict(n) for n in result.not_mirrored],
    }, indent=1) + "\n")
    (tree / VERSION).write_text(json.dumps({
        "built_at": built_at.isoformat(), "content_key": key,
        "expires_at": expires_at.isoformat() if expires_at else None}) + "\n")
    snippet = directory / f".{NGINX_SNIPPET}-{secrets.token_hex(4)}"
    snippet.write_text(nginx_server_conf(app, files, f"{directory.resolve()}/{CURRENT}/site"))
    os.replace(snippet, directory / NGINX_SNIPPET)  # an nginx reload never reads half of it
    _switch(directory, tree)
    _prune(directory)
    return result


def is_stale(app: Flask, directory: Path, now: datetime) -> bool:
    """Whether the mirror in `directory` shows another state of the site than the database's now."""
    version = current_version(directory)
    if version is None:
        return True
    key = content_key(now, app.config["REGISTRY"].legal_timezone)
    db.session.rollback()
    return key != version["content_key"]


def refresh(app: Flask, directory: Path, now: datetime | None = None) -> Result | None:
    """Rebuild the mirror when something was published, moved, withdrawn or took effect, or the legal
    date turned, since it was written; None when it is current."""
    if not is_stale(app, directory, now or now_utc()):
        return None
    return build(app, directory)


# nginx.

def _exten(name: str) -> str:
    """What nginx takes for a file's extension (ngx_http_set_exten): after the last '.' of the last
    segment, a query string included (`index.html?from=1` has `html?from=1`, which no `types` names)."""
    segment = name.rpartition("/")[2]
    dot = segment.rfind(".")
    return segment[dot + 1:] if dot > 0 else ""


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The type of a page under a folder location, by its file's extension (ngx_http_set_exten) or, with
# none nginx can name, by the folder: what the app answers, checked against every file at each build.
EXTENSION_TYPES = {
    "atom": "application/atom+xml; charset=utf-8", "css": "text/css; charset=utf-8",
    "csv": "text/csv; charset=utf-8", "diff": "text/x-diff; charset=utf-8",
    "ics": "text/calendar; charset=utf-8", "js": "text/javascript; charset=utf-8",
    "json": "application/json", "rss": "application/rss+xml; charset=utf-8",
    "svg": "image/svg+xml; charset=utf-8",
}
FOLDER_TYPES = {"/api/": "application/json"}
HTML = "text/html; charset=utf-8"


def _folder_type(folder: str, name: str) -> str:
    exten = _exten(name)
    if exten in EXTENSION_TYPES:
        return EXTENSION_TYPES[exten]
    return next((kind for prefix, kind in FOLDER_TYPES.items() if folder.startswith(prefix)), HTML)


def nginx_server_conf(app: Flask, files: list[MirroredFile], site: str, max_age: int = 60) -> str:
    """The `server { }` part: one location per page of a mirrored rule without arguments, one per
    folder of the others (`^~ /documents/`), each with its content type fixed, and one per page of
    this build whose path does not end in "/" (`site` is the mirror's current/site directory).

    No `map` on the path, no regular expression and no `set` on the way to a file: nginx finds the
    location in its prefix tree, the type is `default_type` (or, in a folder, `types` by extension).
    A page of this build is its location's `alias` (the query string appended): nginx opens it once,
    and a query string without a file is a 404 that `error_page` hands to the app. `try_files`
    looked each file up twice (once to try it, once to serve it), and that second lookup was most of
    what the mirror cost over a plain static file (callgrind, README). A path ending in "/" keeps
    `try_files` (nginx's static module leaves such a URI to the index module), and so do the folders,
    which come from the URL map, not from the content: a page that appears later (a new
    sub-processor) is served without a reload, found with one `try_files` lookup when it has the
    folder's usual form (a file, or `index.html` in a folder), two otherwise. A file whose type is not
    the one its folder gives it is a MirrorError, never a wrong Content-Type.
    """
    exact: dict[str, list[MirroredFile]] = {}
    folders: set[str] = set()
    rule_texts = [rule.rule for rule in _mirrored_rules(app)]
    for text in rule_texts:
        if "<" in text:
            folder = text[:text.index("<")]
            folders.add(folder[:folder.rfind("/") + 1])
    for mirrored in files:
        path = mirrored.url.partition("?")[0]
        folder = max((f for f in folders if path.startswith(f)), key=len, default=None)
        if path in rule_texts or folder is None or not path.endswith("/"):
            exact.setdefault(path, []).append(mirrored)
        # A page of an argument rule must also be what its folder would serve (a later one is).
        if (folder is not None and path not in rule_texts
                and mirrored.content_type != (served := _folder_type(folder, mirrored.path))):
            raise MirrorError(f"{mirrored.url} is {mirrored.content_type}, but nginx would serve it as "
                              f"{served}: see registry.mirror.EXTENSION_TYPES")
    # A query string is part of the file's name. Any query string is looked up: files exist only
    # for SAFE_QUERY ones, and one with a "/" can reach no other file, since no folder's name has a
    # "?" (the name before its "/" would have to be one).
    query = "$is_args$args"
    headers = nginx_headers(max_age).replace("        add_header", "    add_header")
    blocks = []
    for path, pages in sorted(exact.items()):
        kinds = {page.content_type for page in pages}
        if len(kinds) > 1:
            raise MirrorError(f"{path} answered several content types: {sorted(kinds)}")
        if path.endswith("/"):
            serve = f"    try_files {path}index.html{query} @app;\n"
        else:
            # Every file of a path has the same name before its query string (file_names()).
            (name,) = {page.path.partition("?")[0] for page in pages}
            file = f"{site}/{name}"
            if "$" in file:
                raise MirrorError(f"{file}: nginx would read the $ in this path as a variable")
            serve = f"    alias {_quoted(file)[:-1]}{query}\";\n    error_page 404 = @app;\n"
        blocks.append(f"location = {path} {{\n    types {{ }}\n    default_type {_quoted(kinds.pop())};\n"
                      f"{headers}{serve}}}")
    for folder in sorted(folders):
        rules = [text for text in rule_texts if text.startswith(folder) and "<" in text]
        default = _folder_type(folder, "")
        types = " ".join(f"{_quoted(kind)} {exten};" for exten, kind in sorted(EXTENSION_TYPES.items())
                         if kind != default)
        # Folder form first where pages end in "/" or contain others: `$uri` alone would find the
        # folder itself (the slash doubles harmlessly for those ending in "/": `/documents/dpa//index.html`).
        if any(text.endswith("/") or any(other.startswith(text + "/") for other in rules) for text in rules):
            candidates = f"$uri/index.html{query} $uri{query}"
        else:
            candidates = f"$uri{query} $uri/index.html{query}"
        blocks.append(f"location ^~ {folder} {{\n    types {{ {types} }}\n"
                      f"    default_type {_quoted(default)};\n{headers}    try_files {candidates} @app;\n}}")
    blocks.append("# Nothing else has a file (searches, forms, staff pages, POSTs): the app answers.\n"
                  "# No folder the mirror writes is named '?', so the first name is never found.\n"
                  "location / {\n    try_files /?/ @app;\n}")
    lines = [
        "# Written by `flask registry mirror`: include it in the server { } block (see the README).",
        "# Open files, their metadata and missing names kept for a second: a new tree shows within 1 s.",
        "open_file_cache max=10000 inactive=60s;",
        "open_file_cache_valid 1s;",
        "open_file_cache_errors on;",
    ]
    return "\n".join(lines + blocks) + "\n"


def nginx_headers(max_age: int = 60) -> str:
    """The response headers nginx adds to every mirrored file: the live app's security headers and a
    cache lifetime that lets a CDN keep serving the last copy while the origin is down."""
    return f"""\
        add_header Cache-Control "public, max-age={max_age}, stale-if-error=86400" always;
        add_header Content-Security-Policy "{CSP}" always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy strict-origin-when-cross-origin always;
        add_header X-Frame-Options DENY always;
"""


def nginx_locations(directory: str, app_url: str) -> str:
    """The `server { }` lines that serve the mirror in `directory` (its current/site) and send
    everything else to the app at `app_url`."""
    return f"""\
    root {directory}/{CURRENT}/site;
    include {directory}/{NGINX_SNIPPET};
    location @app {{
        proxy_pass {app_url};
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
"""
