"""make bench: HTTP, diff, Markdown, dispatch and webhook benchmarks; results in bench/results/latest.json.

Exits non-zero when any target is missed or a stage could not run.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import http_bench  # noqa: E402  (bench/ is a folder of scripts, not a package)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"


def stop_on_sigterm(_signum, _frame) -> None:
    # Unwinds through every `finally`, so gunicorn and nginx are stopped as on Ctrl-C.
    raise KeyboardInterrupt


def diff_bench() -> tuple[int, str]:
    return script_bench("Document comparison", "bench/diff_bench.py")


def markdown_bench() -> tuple[int, str]:
    return script_bench("Adversarial Markdown", "bench/markdown_bench.py")


def dispatch_bench() -> tuple[int, str]:
    return script_bench("Notice dispatch", "bench/dispatch_bench.py")


def endpoints_bench() -> tuple[int, str]:
    return script_bench("Customer webhooks (10,000 endpoints)", "bench/endpoints_bench.py")


def webhook_bench() -> tuple[int, str]:
    return script_bench("Event Webhook", "bench/webhook_bench.py")


def million_bench() -> tuple[int, str]:
    return script_bench("A million subscribers", "bench/million_bench.py")


def script_bench(title: str, script: str) -> tuple[int, str]:
    """Run another benchmark as its own process, echoing its output as it comes."""
    print(f"\n== {title}: {script}", flush=True)
    process = subprocess.Popen([sys.executable, script], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        return process.wait(), "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def main() -> int:
    parser = http_bench.parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--no-diff", action="store_true", help="skip bench/diff_bench.py")
    parser.add_argument("--no-dispatch", action="store_true", help="skip bench/dispatch_bench.py")
    parser.add_argument("--no-markdown", action="store_true", help="skip bench/markdown_bench.py")
    parser.add_argument("--no-webhook", action="store_true", help="skip bench/webhook_bench.py")
    parser.add_argument("--no-endpoints", action="store_true", help="skip bench/endpoints_bench.py")
    parser.add_argument("--no-million", action="store_true", help="skip bench/million_bench.py")
    args = parser.parse_args()
    load = http_bench.load_from(args)
    signal.signal(signal.SIGTERM, stop_on_sigterm)

    started = datetime.now(UTC)
    print(f"== Public pages: wrk -t{load.threads} -c{load.connections} -d{load.seconds}s, "
          f"median of {load.runs} interleaved runs", flush=True)
    try:
        rows, skipped = http_bench.run(load, with_nginx=not args.no_nginx)
    except http_bench.BenchError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    print()
    print(http_bench.table(rows))

    diff_code, diff_output = (None, "") if args.no_diff else diff_bench()
    markdown_code, markdown_output = (None, "") if args.no_markdown else markdown_bench()
    dispatch_code, dispatch_output = (None, "") if args.no_dispatch else dispatch_bench()
    webhook_code, webhook_output = (None, "") if args.no_webhook else webhook_bench()
    endpoints_code, endpoints_output = (None, "") if args.no_endpoints else endpoints_bench()
    million_code, million_output = (None, "") if args.no_million else million_bench()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version()},
        "load": asdict(load),
        "http": [row.as_json() for row in rows],
        "skipped": skipped,
        "diff": {"exit_code": diff_code, "output": diff_output},
        "markdown": {"exit_code": markdown_code, "output": markdown_output},
        "dispatch": {"exit_code": dispatch_code, "output": dispatch_output},
        "webhook": {"exit_code": webhook_code, "output": webhook_output},
        "endpoints": {"exit_code": endpoints_code, "output": endpoints_output},
        "million": {"exit_code": million_code, "output": million_output},
    }, indent=2) + "\n")
    print(f"\nResults written to {RESULTS.relative_to(ROOT)}")

    failed = [f"{row.stage} {row.endpoint}" for row in rows if not row.passed]
    if skipped:
        failed.append(f"skipped: {', '.join(skipped)}")
    if diff_code:
        failed.append(f"diff_bench exited with {diff_code}")
    if markdown_code:
        failed.append(f"markdown_bench exited with {markdown_code}")
    if dispatch_code:
        failed.append(f"dispatch_bench exited with {dispatch_code}")
    if webhook_code:
        failed.append(f"webhook_bench exited with {webhook_code}")
    if endpoints_code:
        failed.append(f"endpoints_bench exited with {endpoints_code}")
    if million_code:
        failed.append(f"million_bench exited with {million_code}")
    for failure in failed:
        print(f"MISS {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nInterrupted; the servers were stopped.", file=sys.stderr)
        sys.exit(130)
