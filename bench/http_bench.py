"""Requests/s of cached public pages as a share of the same bytes served with nothing to do.

Three stages, each with wrk on loopback:
- gunicorn: each page against bench_app's /_bench/raw/<name> (same server, same body);
- nginx: each page through the README's proxy_cache against the same body as a static file;
- mirror: each page from the static mirror (`flask registry mirror`, served as the README says)
  against the same file served by a plain alias location; a control row measures that file
  against itself (the noise of the measurement, no target).
The gunicorn and mirror rows (the targets of issue 13) run page and baseline at the same moment, on
two instances of one server configuration sharing one CPU, each driven by its own wrk: whatever
else the machine does slows both alike. Their ratio is the server's capacity for the page over its
capacity for the baseline, from each instance's CPU time per request (/proc/PID/schedstat, in
nanoseconds): the geometric mean of the medians of the pairs with the page on either instance.
The nginx proxy_cache rows interleave page and baseline runs (the order alternating) and keep the
median of each; the median of the pairs' ratios is shown beside.
Run alone with `python bench/http_bench.py`; bench/run.py runs it as part of `make bench`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
    from bench_app import PAGES, RAW_PREFIX
else:
    from .bench_app import PAGES, RAW_PREFIX

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.90
MIRROR_TARGET = 0.95
HOST = "127.0.0.1"
STATIC_EXTENSIONS = {"text/html; charset=utf-8": "html", "application/json": "json"}


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to measure."""


@dataclass
class Row:
    stage: str
    endpoint: str
    baseline: str
    page_runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    # Server CPU per request (master and workers), steadier than req/s on a shared machine.
    page_cpu_us: list[float] = field(default_factory=list)
    baseline_cpu_us: list[float] = field(default_factory=list)
    target: float | None = TARGET  # None: a control row, information only
    # Page and baseline measured at the same moment on two server instances (gunicorn's and the
    # mirror's rows): the ratio is then the capacity's, from CPU per request; req/s is information.
    together: bool = False
    note: str = ""  # why the row could not be measured
    warnings: list[str] = field(default_factory=list)

    @property
    def page_rps(self) -> float | None:
        return statistics.median(self.page_runs) if self.page_runs else None

    @property
    def baseline_rps(self) -> float | None:
        return statistics.median(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        """The target's statistic: page req/s over baseline req/s (medians), or for a row measured
        together, the page's capacity over the baseline's (`capacity_ratio`)."""
        if self.together:
            return self.capacity_ratio
        if self.page_rps is None or not self.baseline_rps:
            return None
        return self.page_rps / self.baseline_rps

    @property
    def capacity_pairs(self) -> list[float | None]:
        """Each pair's baseline CPU per request over the page's: the requests a second one CPU serves
        of the page, as a share of what it serves of the baseline (None where one is missing)."""
        return [baseline / page if page and baseline else None
                for page, baseline in zip(self.page_cpu_us, self.baseline_cpu_us, strict=True)]

    @property
    def capacity_ratio(self) -> float | None:
        """The pairs alternate which instance serves the page, so this is the geometric mean of the
        two orientations' medians of `capacity_pairs`: a difference between the instances cancels (a
        median of all the pairs would take the side of whichever orientation ran more often)."""
        pairs = self.capacity_pairs
        sides = [[ratio for ratio in pairs[start::2] if ratio] for start in (0, 1)]
        medians = [statistics.median(side) for side in sides if side]
        return math.prod(medians) ** (1 / len(medians)) if medians else None

    @property
    def paired_ratio(self) -> float | None:
        """The median of each pair's page/baseline: information beside `ratio` (the target's), steadier
        when the machine's speed drifts between pairs, since each pair shares the same moment."""
        pairs = [page / baseline for page, baseline in zip(self.page_runs, self.baseline_runs, strict=True)
                 if baseline]
        return statistics.median(pairs) if pairs else None

    @property
    def cpu_ratio(self) -> float | None:
        """Baseline CPU per request over the page's: like `ratio`, 1.0 when they cost the same."""
        page = [c for c in self.page_cpu_us if c]
        baseline = [c for c in self.baseline_cpu_us if c]
        if not page or not baseline:
            return None
        return statistics.median(baseline) / statistics.median(page)

    @property
    def passed(self) -> bool:
        """Met its target; a control row has none and fails only when it could not be measured."""
        if self.target is None:
            return self.ratio is not None and not self.note
        return self.ratio is not None and self.ratio >= self.target and not self.note

    @property
    def result(self) -> str:
        if self.target is None:
            return "info" if self.passed else "MISS"
        return "PASS" if self.passed else "MISS"

    def as_json(self) -> dict:
        return {**asdict(self), "page_rps": self.page_rps, "baseline_rps": self.baseline_rps,
                "ratio": self.ratio, "paired_ratio": self.paired_ratio, "cpu_ratio": self.cpu_ratio,
                "capacity_ratio": self.capacity_ratio, "result": self.result}


@dataclass(frozen=True)
class Load:
    # Short runs, many of them, page and baseline alternating: the machine's other tenants change its
    # speed over seconds, and nine 2-second pairs cancel that better than three 5-second ones.
    seconds: int = 2
    connections: int = 8
    threads: int = 1
    runs: int = 9


# Processes and plain HTTP on loopback.

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def fetch(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@contextmanager
def serving(args: list[str], *, port: int, log: Path, env: dict[str, str] | None = None,
            startup_seconds: float = 60) -> Iterator[subprocess.Popen]:
    """Start a server, wait until it answers on `port`, and always stop it (by its pid) after."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if process.poll() is not None:
                raise BenchError(f"{args[0]} exited with {process.returncode}:\n{_tail(log)}")
            try:
                fetch(port, "/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"{args[0]} did not answer in {startup_seconds}s:\n"
                                     f"{_tail(log)}") from None
                time.sleep(0.2)
        yield process
    finally:
        # SIGINT is a quick shutdown for both gunicorn and nginx.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


# wrk.

REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
REQUESTS = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def server_cpu_ns(pid: int) -> int:
    """CPU time a server has run so far, in nanoseconds: its master and every live child
    (/proc/PID/schedstat, exact where /proc/PID/stat counts 10 ms ticks)."""
    pids = [pid] + [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
                    if _ppid(stat) == pid]
    total = 0
    for each in pids:
        try:
            total += int(Path(f"/proc/{each}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _ppid(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def pinned(args: list[str], *, server: bool) -> list[str]:
    """wrk on the first CPU, the server under test on the last: on two cores they no longer take turns
    on the same one, which made a run's page and baseline differ by up to 20% by chance."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        return args
    return ["taskset", "-c", str(cpus[-1] if server else cpus[0]), *args]


def start_wrk(url: str, load: Load, seconds: int | None = None) -> subprocess.Popen:
    seconds = seconds or load.seconds
    args = pinned(["wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{seconds}s", "--timeout", "2s",
                   url], server=False)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_result(process: subprocess.Popen, url: str, seconds: int) -> tuple[float, int]:
    """A wrk run's requests/s and number of requests, once it has ended; a BenchError if any failed."""
    try:
        stdout, stderr = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    found, requests = REQUESTS_PER_SEC.search(stdout), REQUESTS.search(stdout)
    if process.returncode != 0 or not found or not requests:
        raise BenchError(f"{' '.join(process.args)} failed:\n{stdout}{stderr}")
    non_2xx = NON_2XX.search(stdout)
    if non_2xx:
        raise BenchError(f"{url}: {non_2xx.group(1)} responses were not 2xx/3xx")
    errors = SOCKET_ERRORS.search(stdout)
    # Sync gunicorn closes every connection, which wrk may count as a read error; timeouts are real.
    if errors and int(errors.group(4)):
        raise BenchError(f"{url}: {errors.group(4)} requests timed out")
    return float(found.group(1)), max(1, int(requests.group(1)))


def wrk(url: str, load: Load, seconds: int | None = None, server_pid: int | None = None
        ) -> tuple[float, float | None]:
    """Requests/s, and the server's CPU microseconds per request when its pid is given."""
    seconds = seconds or load.seconds
    cpu_before = server_cpu_ns(server_pid) if server_pid else 0
    rps, requests = wrk_result(start_wrk(url, load, seconds), url, seconds)
    cpu_ns = server_cpu_ns(server_pid) - cpu_before if server_pid else None
    return rps, None if cpu_ns is None else cpu_ns / 1000 / requests


def measure(row: Row, port: int, load: Load, server_pid: int) -> None:
    """Pairs of page and baseline, side by side, the first of each pair alternating (page first, then
    baseline first...) so that neither always runs on the heels of the other: the median of each."""
    page, baseline = f"http://{HOST}:{port}{row.endpoint}", f"http://{HOST}:{port}{row.baseline}"
    wrk(page, load, seconds=1)  # warm every worker's cache and connections
    wrk(baseline, load, seconds=1)
    for run in range(load.runs):
        pair = [(page, row.page_runs, row.page_cpu_us), (baseline, row.baseline_runs, row.baseline_cpu_us)]
        for url, runs, cpu in pair if run % 2 == 0 else reversed(pair):
            rps, cpu_us = wrk(url, load, server_pid=server_pid)
            runs.append(rps)
            cpu.append(cpu_us)
    print(f"  {row.stage:<8} {row.endpoint:<60} page {row.page_rps:8.0f}/s  "
          f"trivial {row.baseline_rps:8.0f}/s  ratio {row.ratio:6.1%}", flush=True)


def measure_together(row: Row, ports: tuple[int, int], load: Load, pids: tuple[int, int]) -> None:
    """Pairs run at the same moment: the page on one server instance (gunicorn or nginx, `pids`)
    and the baseline on the other, each with its own wrk, the instances swapping roles from pair to
    pair (so that neither instance's luck goes to one side). Each side's CPU per request is its
    instance's own CPU time over its requests in that pair."""
    row.together = True
    urls = (row.endpoint, row.baseline)
    for port in ports:  # warm both instances' caches and connections for both URLs
        for url in urls:
            wrk(f"http://{HOST}:{port}{url}", load, seconds=1)
    for run in range(load.runs):
        sides = (0, 1) if run % 2 == 0 else (1, 0)  # sides[i]: the instance that serves urls[i]
        before = [server_cpu_ns(pid) for pid in pids]
        processes = [start_wrk(f"http://{HOST}:{ports[side]}{url}", load)
                     for url, side in zip(urls, sides, strict=True)]
        results = [wrk_result(process, url, load.seconds)
                   for process, url in zip(processes, urls, strict=True)]
        spent = [server_cpu_ns(pid) - start for pid, start in zip(pids, before, strict=True)]
        for (rps, requests), side, runs, cpu in zip(results, sides, (row.page_runs, row.baseline_runs),
                                                    (row.page_cpu_us, row.baseline_cpu_us), strict=True):
            runs.append(rps)
            cpu.append(spent[side] / 1000 / requests)
    pairs = [ratio for ratio in row.capacity_pairs if ratio]
    print(f"  {row.stage:<8} {row.endpoint:<60} page {row.page_rps:8.0f}/s  "
          f"baseline {row.baseline_rps:8.0f}/s  capacity {row.ratio:6.1%} "
          f"(pairs {min(pairs):.1%} to {max(pairs):.1%})", flush=True)


# The instance: a fresh SQLite database with the demo content.

def app_environment(instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(REGISTRY_ENV="development", REGISTRY_INSTANCE_PATH=str(instance),
               REGISTRY_COMPANY_NAME="Ferncastle Teamworks")
    return env


def build_instance(instance: Path) -> dict[str, str]:
    """Migrate a new SQLite database in `instance` and load the demo; return the app's environment."""
    from flask_migrate import upgrade

    from registry import create_app
    from registry.domain.clock import now_utc
    from registry.extensions import db
    from registry.services import demo
    from registry.settings import Settings

    env = app_environment(instance)
    app = create_app(Settings.from_env(env))
    with app.app_context():
        upgrade()
        demo.load(db.session, now_utc())
        db.session.commit()
        db.engine.dispose()
    return env


def gunicorn_args(port: int) -> list[str]:
    return pinned([sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
                   "--bind", f"{HOST}:{port}", "bench.bench_app:create_bench_app()"], server=True)


# The two stages.

def distinct_etags(port: int, path: str, requests: int = 40) -> set[str]:
    """ETags seen over concurrent requests, which reach every worker."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: fetch(port, path), range(requests)))
    return {headers.get("etag", "") for _status, headers, _body in answers}


def gunicorn_stage(app_ports: tuple[int, int], app_pids: tuple[int, int], load: Load) -> list[Row]:
    """Each page against the trivial endpoint, at the same moment on two gunicorn instances."""
    rows = []
    for name, path in PAGES.items():
        row = Row("gunicorn", path, RAW_PREFIX + name)
        rows.append(row)
        for app_port in app_ports:
            status, headers, body = fetch(app_port, path)
            if status != 200:
                row.note = f"page answers {status}"
                break
            # bench_app copies each worker's own cached page, so a worker's raw bytes are its page's
            # bytes; over HTTP the two requests may reach different workers, so compare type and size.
            raw_status, raw_headers, raw_body = fetch(app_port, row.baseline)
            if (raw_status, raw_headers["content-type"], len(raw_body)) != (
                    200, headers["content-type"], len(body)):
                raise BenchError(f"{row.baseline} does not return the bytes of {path}")
            etags = distinct_etags(app_port, path)
            if len(etags) > 1:
                row.warnings.append(f"{len(etags)} different ETags across workers for the same content")
        if row.note:
            print(f"  gunicorn {path:<60} {row.note}: not measured", flush=True)
        else:
            measure_together(row, app_ports, load, app_pids)
    # The trivial endpoint against itself on the two instances: the spread of the method here.
    measured = [row for row in rows if not row.note]
    if measured:
        control = Row("control", measured[-1].baseline, measured[-1].baseline, target=None)
        rows.append(control)
        measure_together(control, app_ports, load, app_pids)
    return rows


def build_mirror(env: dict[str, str], directory: Path) -> None:
    """The demo site as the static mirror, written by the app's own `flask registry mirror`."""
    from registry import create_app, mirror
    from registry.extensions import db
    from registry.settings import Settings

    app = create_app(Settings.from_env(env))
    with app.app_context():
        result = mirror.build(app, directory)
        db.engine.dispose()
    print(f"Mirrored the demo site: {len(result.files)} files in {directory}", flush=True)


def nginx_config(tmp: Path, port: int, upstream_port: int, mirror_port: int, instance: int = 0) -> Path:
    """The bench's nginx configuration; each instance keeps its own pid, logs and cache in
    tmp/nginx-INSTANCE and differs from the others only in that and its ports."""
    from registry.mirror import nginx_headers, nginx_locations

    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    text = (ROOT / "bench" / "nginx.conf.template").read_text()
    mirror = tmp / "mirror"
    state = tmp / f"nginx-{instance}"
    state.mkdir(exist_ok=True)
    locations = nginx_locations(str(mirror), f"http://127.0.0.1:{upstream_port}")
    for key, value in {"user": user, "tmp": str(tmp), "state": str(state), "port": str(port),
                       "upstream_port": str(upstream_port), "mirror": str(mirror),
                       "mirror_port": str(mirror_port), "mirror_locations": locations,
                       "mirror_headers": nginx_headers()}.items():
        text = text.replace(f"@{key}@", value)
    path = state / "nginx.conf"
    path.write_text(text)
    return path


def baseline_name(endpoint: str, extension: str) -> str:
    """A static file's URL for a page's bytes: its last path segment and query, as a file name."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", endpoint.rstrip("/").rsplit("/", 1)[-1]).strip("-")
    return f"/_static/{name}.{extension}"


def warm(row: Row, port: int, static: Path) -> None:
    """Fill nginx's cache until a HIT, then put the bytes it serves into the baseline's file."""
    cache_status = ""
    for _ in range(10):
        status, headers, body = fetch(port, row.endpoint)
        cache_status = headers.get("x-cache-status", "")
        if status != 200:
            row.note = f"page answers {status}"
            return
        if cache_status == "HIT":
            break
        time.sleep(0.2)
    if cache_status != "HIT":
        row.note = f"X-Cache-Status {cache_status or 'absent'}, never HIT"
        return
    extension = STATIC_EXTENSIONS.get(headers["content-type"])
    if extension is None:
        raise BenchError(f"add {headers['content-type']!r} to bench/nginx.conf.template's types")
    row.baseline = baseline_name(row.endpoint, extension)
    (static / Path(row.baseline).name).write_bytes(body)
    status, static_headers, static_body = fetch(port, row.baseline)
    if (status, static_headers.get("content-type"), static_body) != (200, headers["content-type"], body):
        raise BenchError(f"nginx's {row.baseline} is not the bytes and type of {row.endpoint}: "
                         f"{status} {static_headers.get('content-type')}")


def mirror_baseline(row: Row, port: int, site: Path, files: dict[str, str]) -> None:
    """The mirror's file for the page (`files`: URL -> path in `site`, from the manifest) through the
    plain alias location of its type: the same bytes at the same path, so the rows compare the ways
    of finding it. A file with a query string in its name gets a hard link beside it whose `?` is an
    `@`: the same length and folder, and a URL nginx need not decode (`%3F` made the baseline's
    request line cost 1,700 more instructions than the page's)."""
    status, headers, body = fetch(port, row.endpoint)
    if status != 200:
        row.note = f"the mirror answers {status}"
        return
    kind = STATIC_EXTENSIONS.get(headers.get("content-type", ""))
    if kind is None:
        raise BenchError(f"add {headers.get('content-type')!r} to bench/nginx.conf.template's /_files/")
    name = files[row.endpoint]
    linked = name.replace("?", "@")
    if linked != name and not (site / linked).exists():
        os.link(site / name, site / linked)
    row.baseline = f"/_files/{kind}/{linked}"
    status, static_headers, static_body = fetch(port, row.baseline)
    if (status, static_headers.get("content-type"), static_body) != (200, headers["content-type"], body):
        raise BenchError(f"nginx's {row.baseline} is not the bytes and type of the mirror's "
                         f"{row.endpoint}: {status} {static_headers.get('content-type')}")
    if _fixed(static_headers) != _fixed(headers):
        raise BenchError(f"nginx's {row.baseline} answers other headers than the mirror's {row.endpoint}: "
                         f"{_fixed(static_headers)} != {_fixed(headers)}")


def _fixed(headers: dict[str, str]) -> dict[str, str]:
    """A response's headers but those that name the moment or the file (Date, Last-Modified, ETag)."""
    return {name: value for name, value in headers.items() if name not in ("date", "last-modified", "etag")}


def nginx_stage(tmp: Path, app_port: int, load: Load) -> list[Row]:
    static = tmp / "static"
    static.mkdir()
    ports = [(free_port(), free_port()) for _instance in range(2)]  # (proxy_cache, mirror) of each
    rows = []
    with ExitStack() as stack:
        servers = []
        for instance, (port, mirror_port) in enumerate(ports):
            config = nginx_config(tmp, port, app_port, mirror_port, instance)
            state = config.parent
            args = pinned(["/usr/sbin/nginx", "-p", str(state), "-e", str(state / "error.log"),
                           "-c", str(config), "-g", "daemon off;"], server=True)
            servers.append(stack.enter_context(serving(args, port=port, log=state / "nginx.out")))
        port, mirror_port = ports[0]
        for path in PAGES.values():
            row = Row("nginx", path, "")
            rows.append(row)
            warm(row, port, static)
            if row.note:
                print(f"  nginx    {path:<60} {row.note}: not measured", flush=True)
            else:
                measure(row, port, load, servers[0].pid)
        manifest = json.loads((tmp / "mirror" / "current" / "manifest.json").read_text())
        files = {entry["url"]: entry["path"] for entry in manifest["files"]}
        mirror_ports = (ports[0][1], ports[1][1])
        pids = (servers[0].pid, servers[1].pid)
        for path in PAGES.values():
            row = Row("mirror", path, "", target=MIRROR_TARGET)
            rows.append(row)
            mirror_baseline(row, mirror_port, tmp / "mirror" / "current" / "site", files)
            if row.note:
                print(f"  mirror   {path:<60} {row.note}: not measured", flush=True)
            else:
                measure_together(row, mirror_ports, load, pids)
        # The last page's baseline (the JSON list, the fastest) against itself: how far apart two
        # equal things measure on this machine.
        measured = [row for row in rows if row.stage == "mirror" and not row.note]
        if measured:
            baseline = measured[-1].baseline
            control = Row("control", baseline, baseline, target=None)
            rows.append(control)
            measure_together(control, mirror_ports, load, pids)
    return rows


def missing_tools() -> list[str]:
    """Install wrk and nginx when root; otherwise name what is missing so its stage is skipped."""
    tools = {"wrk": "wrk", "nginx": "nginx-light"}
    missing = [tool for tool in tools if not (shutil.which(tool) or Path("/usr/sbin", tool).exists())]
    if missing and os.getuid() == 0:
        packages = [tools[tool] for tool in missing]
        print(f"Installing {' '.join(packages)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        missing = [tool for tool in missing if not (shutil.which(tool) or Path("/usr/sbin", tool).exists())]
    for tool in missing:
        print(f"SKIP: {tool} is not installed: sudo apt-get install -y {tools[tool]}", file=sys.stderr)
    return missing


def run(load: Load, with_nginx: bool = True) -> tuple[list[Row], list[str]]:
    """Every row measured, and the stages that could not run because a tool is missing."""
    missing = missing_tools()
    if "wrk" in missing:
        return [], ["gunicorn", "nginx"]
    skipped = ["nginx"] if with_nginx and "nginx" in missing else []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as name:
        tmp = Path(name)
        instance = tmp / "instance"
        print(f"Building the demo database in {instance}", flush=True)
        env = build_instance(instance)
        if with_nginx and not skipped:
            build_mirror(env, tmp / "mirror")
        app_ports = (free_port(), free_port())
        with ExitStack() as stack:
            apps = [stack.enter_context(serving(gunicorn_args(port), port=port, env=env,
                                                log=tmp / f"gunicorn-{instance}.log"))
                    for instance, port in enumerate(app_ports)]
            rows += gunicorn_stage(app_ports, (apps[0].pid, apps[1].pid), load)
            if with_nginx and not skipped:
                rows += nginx_stage(tmp, app_ports[0], load)
    return rows, skipped


def table(rows: list[Row]) -> str:
    def number(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = (f"{'stage':<9}{'endpoint':<60}{'req/s page':>11}{'req/s trivial':>14}"
              f"{'ratio':>8}{'target':>7}  {'result':<7}{'paired':>8}{'cpu ratio':>10}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.stage:<9}{row.endpoint:<60}{number(row.page_rps, '.0f'):>11}"
            f"{number(row.baseline_rps, '.0f'):>14}{number(row.ratio, '.1%'):>8}"
            f"{number(row.target, '.0%'):>7}  {row.result:<7}"
            f"{number(row.paired_ratio, '.1%'):>8}{number(row.cpu_ratio, '.1%'):>10}"
            + (f"  ({row.note})" if row.note else "")
        )
    lines.append("paired: the median of each pair's req/s ratio; cpu ratio: the server's CPU time per "
                 "trivial request over per page request, medians (information, not targets). gunicorn, "
                 "mirror and control: page and baseline at the same moment on two instances sharing a "
                 "CPU; ratio: the server's capacity for the page over the baseline's (each pair's CPU "
                 "per request; the geometric mean of the medians with the page on either instance); "
                 "control: a baseline against itself (gunicorn's trivial "
                 "endpoint, the mirror's file), the spread a ratio shows with nothing to tell apart")
    lines += [f"warning: {row.stage} {row.endpoint}: {warning}"
              for row in rows for warning in row.warnings]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=Load.seconds, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=Load.connections)
    parser.add_argument("--threads", type=int, default=Load.threads)
    parser.add_argument("--runs", type=int, default=Load.runs, help="median of this many runs")
    parser.add_argument("--no-nginx", action="store_true", help="only the gunicorn stage")
    return parser


def load_from(args: argparse.Namespace) -> Load:
    return Load(seconds=args.seconds, connections=args.connections, threads=args.threads,
                runs=args.runs)


def main() -> int:
    args = parser().parse_args()
    rows, skipped = run(load_from(args), with_nginx=not args.no_nginx)
    print(table(rows))
    return 0 if rows and not skipped and all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
