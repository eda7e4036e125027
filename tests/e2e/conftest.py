"""Browser fixtures: the demo site served on SQLite, Debian's Chromium, and pages that leave screenshots."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import IN_CI, dispose, migrated_app

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = HERE / "artifacts"
# The machine has no network: without these flags Chromium keeps trying to reach Google.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


def _require(path: Path, what: str) -> Path:
    """Skip when a browser tool is missing, except in CI, where that is a failure."""
    if path.exists():
        return path
    message = (f"{what} needs {path}: run `make browser` (as root it installs Debian's chromium; "
               "with npm, axe-core into tests/e2e/node_modules).")
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class QuietRequestHandler(WSGIRequestHandler):
    """Keep the test output free of one access-log line per request; errors are still logged."""

    def log_request(self, code="-", size="-") -> None:
        pass


@pytest.fixture(scope="session")
def live_app(tmp_path_factory) -> Iterator[Flask]:
    """The demo content on a fresh SQLite database, mail going to the local outbox folder."""
    from registry.domain.clock import now_utc
    from registry.extensions import db
    from registry.services import demo

    folder = tmp_path_factory.mktemp("e2e")
    # page_cache_seconds stays 0 (make_settings): every request checks whether content changed,
    # as the page-level tests do; the rendered pages are still served from the cache.
    app: Flask = migrated_app(f"sqlite:///{folder / 'registry.db'}", folder / "instance",
                              mail_sender="outbox")
    with app.app_context():
        demo.load(db.session, now_utc())
        db.session.commit()
        db.session.remove()
    yield app
    dispose(app)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Each browser test is a visitor of its own; all of them come from 127.0.0.1, and together they
    sign in more often than the 10-a-5-minutes limit allows one address (tests/security tests it)."""
    from registry.extensions import limiter

    limiter.reset()


@pytest.fixture
def dispatch_mail(live_app: Flask) -> Callable[[], str]:
    """Run the mail worker once, as `flask notices dispatch --once` would; returns its output."""

    def run() -> str:
        result = live_app.test_cli_runner().invoke(args=["notices", "dispatch", "--once"])
        assert result.exit_code == 0, result.output
        return result.output

    return run


@pytest.fixture(scope="session")
def live_server(live_app: Flask) -> Iterator[str]:
    """The demo site served from a background thread."""
    app = live_app
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    _require(CHROMIUM, "The browser tests")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _artifact_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", node_name).strip("-")


@pytest.fixture
def new_page(browser: Browser, live_server: str, request) -> Iterator[Callable[..., Page]]:
    """Open pages in fresh contexts (desktop size unless told); each is screenshotted at teardown.

    Uncaught JavaScript errors and Content-Security-Policy violations fail the test.
    """
    opened: list[tuple[Page, list[str]]] = []

    def open_page(**context_options) -> Page:
        options = {"viewport": DESKTOP, "base_url": live_server, **context_options}
        context = browser.new_context(**options)
        context.set_default_timeout(5_000)
        page = context.new_page()
        problems: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                problems.append(f"console: {message.text}")

        page.on("pageerror", lambda error: problems.append(f"uncaught error: {error}"))
        page.on("console", on_console)
        opened.append((page, problems))
        return page

    yield open_page

    ARTIFACTS.mkdir(exist_ok=True)
    name = _artifact_name(request.node.name)
    errors = []
    for index, (page, problems) in enumerate(opened):
        suffix = "" if index == 0 else f"-{index + 1}"
        errors.extend(problems)
        try:
            if page.url != "about:blank":
                page.screenshot(path=ARTIFACTS / f"{name}{suffix}.png", full_page=True)
        finally:
            page.context.close()
    assert not errors, "the browser reported:\n" + "\n".join(errors)


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A desktop-sized page in its own context, with the site's Content-Security-Policy enforced."""
    return new_page()


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
def axe() -> Callable[[Page], list[dict]]:
    """Run axe-core on a loaded page and return its violations.

    The site's Content-Security-Policy (script-src 'self') blocks the injected inline script,
    so the page's context must be opened with bypass_csp=True.
    """
    script = _require(AXE, "The accessibility checks")

    def violations(page: Page, tags: list[str] = AXE_TAGS) -> list[dict]:
        page.add_script_tag(path=str(script))
        result = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", tags
        )
        return result["violations"]

    return violations


def describe_violations(violations: list[dict]) -> str:
    lines = [f"{len(violations)} accessibility violation(s):"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            target = " ".join(" >> ".join(part) if isinstance(part, list) else part
                              for part in node["target"])
            lines.append(f"    {target}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", "\n      "))
    return "\n".join(lines)
