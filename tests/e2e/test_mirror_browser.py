"""The static mirror in a browser: nginx serves it with the app down; styles, scripts and links work."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page

from registry import mirror
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.mirror.test_nginx import NGINX, free_port, nginx_config, request


@pytest.fixture(scope="module")
def mirror_server(live_app: Flask, tmp_path_factory) -> Iterator[str]:
    if NGINX is None:
        pytest.skip("nginx is not installed: apt-get install nginx-light")
    tmp = tmp_path_factory.mktemp("mirror-nginx")
    directory = tmp / "mirror"
    with live_app.app_context():
        mirror.build(live_app, directory)
    port, app_port = free_port(), free_port()  # nothing listens on app_port: the app is down
    config = nginx_config(tmp, directory, port, app_port)
    process = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(config), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        for _ in range(100):
            try:
                request(port, "/")
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def mirror_page(browser: Browser, mirror_server: str, request) -> Iterator[Callable[..., Page]]:
    opened: list[tuple[Page, list[str], str]] = []

    def open_page(viewport=DESKTOP, name="", failed_loads_expected=False) -> Page:
        context = browser.new_context(viewport=viewport, base_url=mirror_server)
        context.set_default_timeout(5_000)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"uncaught error: {error}"))
        page.on("console", lambda message: problems.append(f"console: {message.text}")
                if "Content Security Policy" in message.text
                or (message.type == "error" and not failed_loads_expected) else None)
        opened.append((page, problems, name))
        return page

    yield open_page
    ARTIFACTS.mkdir(exist_ok=True)
    errors = []
    for page, problems, name in opened:
        errors += problems
        page.screenshot(path=ARTIFACTS / f"mirror-{name}.png", full_page=True)
        page.context.close()
    assert not errors, "the browser reported:\n" + "\n".join(errors)


def styled(page: Page) -> bool:
    """The site's stylesheet and its rules reached the page (a bare page keeps the default margin)."""
    return page.evaluate("""() => document.styleSheets.length > 0
        && [...document.styleSheets].every(sheet => sheet.cssRules.length > 0)
        && getComputedStyle(document.body).margin !== '8px'""")


def test_the_mirrored_list_reads_and_filters_as_on_the_live_site(mirror_page):
    page = mirror_page(name="subprocessors")
    response = page.goto("/subprocessors/")
    assert response.status == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert styled(page)
    rows = page.locator("#subprocessor-table tbody tr")
    assert rows.count() > 10
    # An entry's page is a file too: following the link works with the app down.
    first = rows.first.locator("a").first
    name = first.inner_text()
    first.click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text().strip().startswith(name.strip())
    assert styled(page)


def test_a_mirrored_document_and_its_redline(mirror_page):
    page = mirror_page(name="document")
    assert page.goto("/documents/privacy-policy/").status == 200
    assert styled(page)
    redline = page.locator("a[href*='/documents/privacy-policy/compare?']").first
    redline.click()
    page.wait_for_load_state()
    assert "/documents/privacy-policy/compare?" in page.url
    assert page.locator("ins, del").count() > 0
    phone = mirror_page(viewport=PHONE, name="compare-phone")
    assert phone.goto("/documents/privacy-policy/compare?from=1&to=2&view=side").status == 200
    assert styled(phone)


def test_what_has_no_file_goes_to_the_app_which_is_down(mirror_page):
    page = mirror_page(name="search-app-down", failed_loads_expected=True)
    assert page.goto("/subprocessors/?q=mail").status == 502
