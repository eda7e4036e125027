"""Times render_markdown() and compare() on adversarial documents against a 2 s target.

Run as `python bench/markdown_bench.py`; exits non-zero if an input that
check_limits() accepts takes 2 s or more (best of 3) to check, render and
compare with a changed version, or if an input is rejected without naming the
limit. Inputs come close to the 500,000-character limit of the editor; most are
shapes known to be slow for Markdown parsers (CommonMark's own pathological
tests) or for diffs, each once beyond the limits and once just inside them.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
    from diff_corpus import generate_blocks
else:
    from .diff_corpus import generate_blocks

from registry.domain.diff import compare
from registry.domain.markdown import (
    MAX_HEADINGS,
    MAX_MARKUP,
    DocumentTooLarge,
    check_limits,
    markup_count,
    render_markdown,
)

TARGET_SECONDS = 2.0
SIZE = 490_000


def _fill(unit: str, size: int = SIZE) -> str:
    return unit * (size // len(unit))


def _words(count: int, vocabulary: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"w{rng.randrange(vocabulary)}" for _ in range(count)]


def _legal(size: int = 420_000) -> list[str]:
    return generate_blocks(size, seed=9)


def _reworded(blocks: list[str], seed: int) -> list[str]:
    """Every paragraph changed: a third of its words replaced."""
    rng = random.Random(seed)
    out = []
    for block in blocks:
        words = block.split(" ")
        for k in range(0, len(words), 3):
            if rng.random() < 0.9 and not words[k].startswith("#"):
                words[k] = f"amended{rng.randrange(1000)}"
        out.append(" ".join(words))
    return out


def _lightly_edited(source: str) -> str:
    """The same text with a word added to every tenth line: the comparison's usual input."""
    lines = source.split("\n")
    return "\n".join(f"x {line}" if k % 10 == 5 else line for k, line in enumerate(lines))


def _pair(source: str) -> tuple[str, str]:
    return _lightly_edited(source), source


def _padded(head: str) -> str:
    """``head``, then legal text up to SIZE characters in paragraphs of about 5,000: the
    shape inside a document, adding few blocks and no headings to count against the limits."""
    room = SIZE - len(head) - 2
    if room < 1000:
        return head
    text = " ".join(block for block in _legal(room) if not block.startswith("#"))[:room]
    paragraphs = [text[k : k + 5000] for k in range(0, len(text), 5000)]
    return head + "\n\n" + "\n\n".join(paragraphs)


def _cases() -> Iterator[tuple[str, Callable[[], tuple[str, str]]]]:
    """(name, a function returning the old and the new version); the new one is rendered.

    Each shape comes at a size the limits refuse, then near the largest size they accept.
    """
    yield "16,000 identical headings", lambda: _pair("# a\n\n" * 16_000)
    yield "2,000 identical headings, legal text", lambda: _pair(_padded("# a\n\n" * MAX_HEADINGS))
    # Real headings on the numbers that repeats would get: each repeat must skip them.
    yield "8,000 headings a-2...a-8001, then 8,000 a", lambda: _pair(
        "".join(f"# a-{k}\n\n" for k in range(2, 8002)) + "# a\n\n" * 8_000
    )
    yield "1,000 headings a-2...a-1001, then 1,000 a", lambda: _pair(
        _padded("".join(f"# a-{k}\n\n" for k in range(2, 1002)) + "# a\n\n" * 1_000)
    )
    yield "headings a, a-1, a-1-1... to 490 KB", lambda: _pair(
        "".join(f"# a{'-1' * k}\n\n" for k in range(700))
    )
    yield "headings a, a-1, a-1-1... to the symbol limit", lambda: _pair(
        _padded("".join(f"# a{'-1' * k}\n\n" for k in range(300)))
    )
    yield "nested block quotes x 10,000", lambda: _pair("> " * 10_000 + "a\n")
    yield "nested block quotes x 245,000", lambda: _pair("> " * (SIZE // 2) + "a\n")
    yield "deeply nested list x 1,000", lambda: _pair("".join("  " * k + "* a\n" for k in range(1000)))
    yield "deeply nested list x 690", lambda: _pair("".join("  " * k + "* a\n" for k in range(690)))
    for char in "*_[`":
        yield f"100,000 {char}", lambda char=char: _pair(char * 100_000)
        yield f"{char}a x 15,000, legal text", lambda char=char: _pair(_padded(f"{char}a" * MAX_MARKUP))
    # CommonMark's pathological tests (cmark's test/pathological_tests.py), at 490 KB
    # and at the markup limit.
    shapes = {
        "nested strong emph": ("*a **a ", " a** a*"),
        "emph closers without openers": ("a_ ", ""),
        "emph openers without closers": ("_a ", ""),
        "link closers without openers": ("a]", ""),
        "link openers without closers": ("[a", ""),
        "mismatched openers and closers": ("*a_ ", ""),
        "openers and closers multiple of 3": ("c* ", ""),
        "link openers and emph closers": ("[ a_", ""),
        "nested brackets": ("[", "]"),
        "unclosed links A": ("[a](<b", ""),
        "unclosed links B": ("[a](b", ""),
        "backticks": ("e`", ""),
    }
    for name, (opening, closing) in shapes.items():
        yield name, lambda o=opening, c=closing: _pair(_nested(o, c, SIZE))
        yield f"{name}, markup limit", lambda o=opening, c=closing: _pair(_padded(_nested(o, c, None)))
    yield "many references", lambda: _pair(
        "".join(f"[{k}]: u\n" for k in range(1, 40_000)) + "[0] " * 10_000
    )
    yield "4,000 references", lambda: _pair(
        _padded("".join(f"[{k}]: u\n" for k in range(1, 4_000)) + "[0] " * 1_000)
    )
    yield "one 490 KB line", lambda: _pair(" ".join(_words(SIZE // 7, 50_000, 1)))
    yield "490 KB table", lambda: _pair(
        "| a | b | c |\n|---|---|---|\n" + _fill("| x1 | y2 | z3 |\n", SIZE - 30)
    )
    yield "table of 4,803 cells, legal text", lambda: _pair(
        _padded("| a | b | c |\n|---|---|---|\n" + "| x1 | y2 | z3 |\n" * 1_600)
    )
    yield "490 KB of one-word paragraphs", lambda: _pair(_fill("w\n\n"))
    yield "legal text, every paragraph changed", lambda: (
        "\n\n".join(_legal(380_000)),
        "\n\n".join(_reworded(_legal(380_000), 1)),
    )
    yield "legal text, paragraphs shuffled", lambda: _shuffled(_legal())
    yield "one paragraph: all-unique words, rewritten", lambda: (
        " ".join(f"u{k}" for k in range(SIZE // 8)),
        " ".join(f"v{k}" for k in range(SIZE // 8)),
    )
    yield "one paragraph: all-identical words vs other", lambda: (
        "the " * (SIZE // 4),
        "and " * (SIZE // 4),
    )
    yield "one paragraph: random words rewritten", lambda: (
        " ".join(_words(SIZE // 7, 5000, 2)),
        " ".join(_words(SIZE // 7, 5000, 3)),
    )
    yield "16,000 short paragraphs, every one rewritten", lambda: (
        "\n\n".join(" ".join(_words(5, 5000, k)) for k in range(16_000)),
        "\n\n".join(" ".join(_words(5, 5000, k + 99_999)) for k in range(16_000)),
    )
    yield "4,999 paragraphs, every one rewritten", lambda: (
        "\n\n".join(" ".join(_words(15, 5000, k)) for k in range(4_999)),
        "\n\n".join(" ".join(_words(15, 5000, k + 99_999)) for k in range(4_999)),
    )
    yield "40,000 lines, every one rewritten", lambda: (
        "\n".join(f"line {k} old" for k in range(40_000)),
        "\n".join(f"row {k} new" for k in range(45_000)),
    )
    yield "9,999 lines, every one rewritten", lambda: (
        "\n".join(f"line {k} old text" for k in range(9_999)),
        "\n".join(f"row {k} new text" for k in range(9_999)),
    )


def _nested(opening: str, closing: str, size: int | None) -> str:
    """``opening`` n times, then "b" and ``closing`` n times if given: ``size`` characters,
    or, with None, MAX_MARKUP pieces of markup."""
    unit = opening + closing
    n = MAX_MARKUP // markup_count(unit) if size is None else size // len(unit)
    return opening * n + ("b" + closing * n if closing else "")


def _shuffled(blocks: list[str]) -> tuple[str, str]:
    new = list(blocks)
    random.Random(4).shuffle(new)
    return "\n\n".join(blocks), "\n\n".join(new)


class _TimedOut(Exception):
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Abandon a run that takes far past the target, so that one slow case cannot hang the run."""

    def stop(_signum: int, _frame: object) -> None:
        raise _TimedOut

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _best_of(runs: int, old: str, new: str) -> tuple[float, float]:
    """The best times of the editor's preview of ``new`` (check_limits, then render_markdown)
    and of compare(); other load on a shared machine only adds time."""
    best_render = best_compare = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        check_limits(new)
        render_markdown(new)
        rendered = time.perf_counter()
        compare(old, new)
        compared = time.perf_counter()
        best_render = min(best_render, rendered - start)
        best_compare = min(best_compare, compared - rendered)
    return best_render, best_compare


def run(give_up_after: float, runs: int) -> int:
    failures = []
    header = f"{'input':<46} {'chars':>8} {'render s':>9} {'compare s':>10} {'total s':>8}  verdict"
    # "render" includes check_limits(), which the editor's preview runs first.
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(header)
    print("-" * len(header))
    for name, make in _cases():
        old, new = make()
        limited = None
        for source in (old, new):
            try:
                check_limits(source)
            except DocumentTooLarge as error:
                limited = error
                break
        if limited is not None:
            # Rejected input is never rendered by the editor; the message must name the limit.
            verdict = f"rejected: {limited}"
            if limited.limit not in ("characters", "lines", "markup", "symbols", "headings", "blocks"):
                failures.append(f"{name}: rejected without naming a limit")
            print(f"{name:<46} {len(new):>8} {'-':>9} {'-':>10} {'-':>8}  {verdict}", flush=True)
            continue
        try:
            with _time_limit(give_up_after):
                render_s, compare_s = _best_of(runs, old, new)
        except _TimedOut:
            failures.append(f"{name}: more than {give_up_after:.0f} s")
            gave_up = f">{give_up_after:.0f}"
            print(f"{name:<46} {len(new):>8} {'':>9} {'':>10} {gave_up:>8}  FAIL", flush=True)
            continue
        total = render_s + compare_s
        verdict = "ok" if total < TARGET_SECONDS else "FAIL"
        if total >= TARGET_SECONDS:
            failures.append(f"{name}: {total:.2f} s")
        times = f"{render_s:9.3f} {compare_s:10.3f} {total:8.3f}"
        print(f"{name:<46} {len(new):>8} {times}  {verdict}", flush=True)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--give-up-after", type=float, default=60.0, help="seconds before a case is abandoned (default 60)"
    )
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs (default 3)")
    args = parser.parse_args()
    return run(args.give_up_after, args.runs)


if __name__ == "__main__":
    sys.exit(main())
