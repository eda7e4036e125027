"""nginx serves every mirrored page with no app and no database behind it (@app is a closed port)."""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from registry import mirror
from tests.conftest import IN_CI

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_config(tmp: Path, directory: Path, port: int, app_port: int) -> Path:
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    temp = " ".join(f"{kind}_temp_path {tmp}/{kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = tmp / "nginx.conf"
    config.write_text(f"""{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port};
{mirror.nginx_locations(str(directory), f"http://127.0.0.1:{app_port}")}
    }}
}}
""")
    return config


def request(port: int, url: str, method: str = "GET") -> tuple[int, list[tuple[str, str]], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, url)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


@pytest.fixture
def nginx(tmp_path):
    if NGINX is None:
        if IN_CI:
            pytest.fail("nginx is not installed: apt-get install nginx-light")
        pytest.skip("nginx is not installed: apt-get install nginx-light")

    def start(directory: Path) -> int:
        port, app_port = free_port(), free_port()  # nothing listens on app_port: the app is down
        config = nginx_config(tmp_path, directory, port, app_port)
        checked = subprocess.run([NGINX, "-p", str(tmp_path), "-c", str(config), "-t"],
                                 capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        processes.append(subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        for _ in range(100):
            try:
                request(port, "/")
                return port
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start: " + (tmp_path / "error.log").read_text())

    processes: list[subprocess.Popen] = []
    yield start
    for process in processes:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_nginx_serves_every_mirrored_page_with_the_app_and_database_away(demo_app, tmp_path, nginx):
    directory = tmp_path / "mirror"
    with demo_app.app_context():
        mirror.build(demo_app, directory)
    port = nginx(directory)
    manifest = json.loads((directory / "current" / "manifest.json").read_text())
    assert len(manifest["files"]) > 100
    # Pages with a query string at a path without a final "/" (the alias with $is_args$args).
    assert {"/api/v1/subprocessors?page=1", "/documents/dpa/compare?from=1&to=2&view=side"} <= {
        entry["url"] for entry in manifest["files"]}
    for entry in manifest["files"]:
        status, headers, body = request(port, entry["url"])
        assert status == 200, entry["url"]
        assert body == (directory / "current" / "site" / entry["path"]).read_bytes(), entry["url"]
        types = [value for name, value in headers if name.lower() == "content-type"]
        assert types == [entry["content_type"]], entry["url"]
        assert ("X-Frame-Options", "DENY") in headers
    # What the mirror has no file for goes to the app, which is down: nginx answers 502.
    for url in ("/subprocessors/?q=acme", "/subprocessors/?x=123", "/api/v1/subprocessors?x=123",
                "/api/v1/subprocessors?page=1&x=1", "/admin/", "/auth/login",
                "/subscriptions/", "/api/v1/subprocessors/changes?since=2020-01-01T00:00:00Z",
                "/documents/privacy-policy/compare?from=../../../../etc/passwd",
                "/documents/privacy-policy/compare?from=1/../../x&to=2", "/subprocessors/nobody-here"):
        assert request(port, url)[0] == 502, url
    assert request(port, "/subscriptions/", "POST")[0] == 502
    # An empty query string is no query string.
    assert request(port, "/changes?")[::2] == request(port, "/changes")[::2] == (
        200, (directory / "current" / "site" / "changes").read_bytes())


def test_nginx_follows_the_symlink_switch(app, tmp_path, nginx):
    from datetime import timedelta

    from registry.domain.clock import now_utc
    from tests.mirror.test_mirror import add_acme

    directory = tmp_path / "mirror"
    mirror.build(app, directory)
    port = nginx(directory)
    assert b"Acme Hosting" not in request(port, "/subprocessors/")[2]
    assert request(port, "/subprocessors/acme")[0] == 502
    add_acme(now_utc() - timedelta(days=1))
    mirror.build(app, directory)
    mirror.build(app, directory)  # the first tree nginx served is pruned now
    time.sleep(1.1)  # open_file_cache_valid: nginx looks at the path again after a second
    status, _headers, body = request(port, "/subprocessors/")
    assert status == 200 and b"Acme Hosting" in body
    assert request(port, "/subprocessors/acme")[0] == 200
