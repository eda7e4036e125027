"""Readable redlines between two versions of a Markdown legal document."""

from __future__ import annotations

import gc
import html
import re
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, zip_longest

import fast_diff_match_patch
from rapidfuzz.distance import Indel

from registry.domain import redline
from registry.domain.markdown import HeadingAnchors, split_heading_id

__all__ = [
    "Comparison",
    "HeadingAnchors",
    "compare",
    "word_ops",
]


@dataclass(frozen=True)
class Comparison:
    """Everything a version-comparison page shows or offers for download."""

    redline_html: str
    side_by_side_html: str
    unified_diff: str
    words_inserted: int
    words_deleted: int
    blocks_changed: int
    # Changed blocks the comparison could not afford to mark word by word; each is
    # shown replaced whole, with a note saying so.
    blocks_compared_whole: int


# ---------------------------------------------------------------------------
# Heading anchors, shared with the Markdown renderer so links into a redline
# land on the same ids as links into the rendered document.

# Inline Markdown that does not reach a heading's plain text.
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*+|~~|`+|(?<!\w)_+|_+(?!\w)")
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_MARKUP = re.compile(r"[\[*_~`\\&]")


def _plain_heading_text(source: str) -> str:
    """What the renderer reads as a heading's text: its Markdown without the markup."""
    if not _MARKUP.search(source):
        return source
    text = _EMPHASIS.sub("", _LINK.sub(r"\1", source))
    return html.unescape(_MD_ESCAPE.sub(r"\1", text))


# ---------------------------------------------------------------------------
# Sequence diffs of blocks, lines and words: a longest common subsequence by
# rapidfuzz's bit-parallel C code, never cut short by a timeout, within a budget
# of work per comparison. A span the budget cannot pay for comes back as one
# "replace" opcode, which the LCS itself never produces, so that callers can say
# so instead of passing it off as a real edit script.

# Past this many cells the bit-parallel LCS matrix gets too large (16 MiB).
_MAX_LCS_CELLS = 1 << 27
# Steps of LCS work (a cell of rapidfuzz's matrix, a step of Myers's algorithm:
# both about 2 ns on the 2-core server) that one comparison may spend: about half
# a second. The 1 MB heavy rewrite of bench/diff_bench.py spends a twelfth of it.
_BUDGET_STEPS = 300_000_000
# Code points available once the surrogate range is skipped.
_ALPHABET = 0x110000 - 0x800
_SURROGATES = 0xD800

_Opcode = tuple[str, int, int, int, int]


class _Budget:
    """The LCS work a comparison may still do; nothing is spent on what it cannot pay for."""

    def __init__(self, steps: int | None = None) -> None:
        self.steps = _BUDGET_STEPS if steps is None else steps
        # Blocks of changed stretches too large to pair: shown deleted and inserted.
        self.unmatched = 0

    def spend(self, steps: int) -> bool:
        if steps > self.steps:
            return False
        self.steps -= steps
        return True


def _encode(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[str, str] | tuple[list[int], list[int]]:
    """Both sequences with each distinct item as one code point (or int), compared exactly."""
    distinct = dict.fromkeys(chain(a, b))
    n = len(distinct)
    if n <= _SURROGATES:
        codes = dict(zip(distinct, map(chr, range(n)), strict=True))
    elif n <= _ALPHABET:
        points = chain(range(_SURROGATES), range(_SURROGATES + 0x800, n + 0x800))
        codes = dict(zip(distinct, map(chr, points), strict=True))
    else:
        # Too many distinct items for code points; rapidfuzz compares ints exactly.
        ints = dict(zip(distinct, range(n), strict=True))
        return list(map(ints.__getitem__, a)), list(map(ints.__getitem__, b))
    get = codes.__getitem__
    return "".join(map(get, a)), "".join(map(get, b))


def _diff(a: Sequence[Hashable], b: Sequence[Hashable], budget: _Budget) -> list[_Opcode]:
    """A shortest insert/delete script between two sequences, or "replace" where unaffordable."""
    cells = len(a) * len(b)
    if cells > _MAX_LCS_CELLS or not budget.spend(cells):
        encoded_a, encoded_b = _encode(a, b)
        if isinstance(encoded_a, str) and isinstance(encoded_b, str):
            return _anchored_opcodes(encoded_a, encoded_b, budget)
        # Beyond the alphabet, only the budget bounds the matrix: at most 40 MB.
        if budget.spend(cells):
            return Indel.opcodes(encoded_a, encoded_b).as_list()
        return _replaced(0, len(a), 0, len(b))
    ops = Indel.opcodes(a, b).as_list()
    # rapidfuzz matches list items by hash, so a collision would pass unequal items as
    # equal; interning them as code points first is exact but slower.
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal" and a[i1:i2] != b[j1:j2]:
            return Indel.opcodes(*_encode(a, b)).as_list()
    return ops


def _replaced(i1: int, i2: int, j1: int, j2: int) -> list[_Opcode]:
    return [("replace", i1, i2, j1, j2)] if i2 > i1 or j2 > j1 else []


def _encoded_opcodes(a: str, b: str, budget: _Budget) -> list[_Opcode]:
    cells = len(a) * len(b)
    if cells <= _MAX_LCS_CELLS and budget.spend(cells):
        return Indel.opcodes(a, b).as_list()
    return _anchored_opcodes(a, b, budget)


def _anchored_opcodes(a: str, b: str, budget: _Budget) -> list[_Opcode]:
    """Patience-style split on items unique to both sides, for inputs too big for one LCS."""
    count_a, count_b = Counter(a), Counter(b)
    where_b = {c: j for j, c in enumerate(b) if count_b[c] == 1 and count_a[c] == 1}
    anchors = _longest_increasing([(i, where_b[c]) for i, c in enumerate(a) if c in where_b])
    if not anchors:
        return _unanchored_opcodes(a, b, budget)
    ops: list[_Opcode] = []
    i0 = j0 = 0
    for i, j in anchors:
        ops.extend(_shifted(_encoded_opcodes(a[i0:i], b[j0:j], budget), i0, j0))
        ops.append(("equal", i, i + 1, j, j + 1))
        i0, j0 = i + 1, j + 1
    ops.extend(_shifted(_encoded_opcodes(a[i0:], b[j0:], budget), i0, j0))
    return ops


def _unanchored_opcodes(a: str, b: str, budget: _Budget) -> list[_Opcode]:
    """Myers's algorithm between the common ends where affordable, else one "replace".

    Myers costs (len(a) + len(b)) steps per difference: two unrelated texts of
    80,000 words took 53 s. A banded LCS first checks, at the cost of the steps it
    allows, that the differences fit in half of what the budget has left.
    """
    start = _common_length(a, b, lambda n: a[:n] == b[:n])
    end = _common_length(a[start:], b[start:], lambda n: a[len(a) - n :] == b[len(b) - n :])
    inner_a, inner_b = a[start : len(a) - end], b[start : len(b) - end]
    length = len(inner_a) + len(inner_b)
    ops: list[_Opcode] = [("equal", 0, start, 0, start)] if start else []
    most = budget.steps // (2 * length) if length else 0
    if (
        length
        and budget.spend(length * most)
        and (distance := Indel.distance(inner_a, inner_b, score_cutoff=most)) <= most
        and budget.spend(length * distance)
    ):
        ops.extend(_shifted(_myers_opcodes(inner_a, inner_b), start, start))
    else:
        ops.extend(_replaced(start, len(a) - end, start, len(b) - end))
    if end:
        ops.append(("equal", len(a) - end, len(a), len(b) - end, len(b)))
    return ops


def _common_length(a: str, b: str, common: Callable[[int], bool]) -> int:
    """The largest n up to the shorter length with common(n); halving on slice
    comparisons, which run at memcmp speed rather than a loop per character."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if common(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _shifted(ops: list[_Opcode], di: int, dj: int) -> list[_Opcode]:
    return [(tag, i1 + di, i2 + di, j1 + dj, j2 + dj) for tag, i1, i2, j1, j2 in ops]


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Longest run of ``pairs`` (sorted by first item) whose second items increase."""
    tails: list[int] = []
    tail_index: list[int] = []
    previous = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tail_index.append(k)
        else:
            tails[pos] = j
            tail_index[pos] = k
        previous[k] = tail_index[pos - 1] if pos else -1
    out = []
    k = tail_index[-1] if tail_index else -1
    while k >= 0:
        out.append(pairs[k])
        k = previous[k]
    return out[::-1]


def _myers_opcodes(a: str, b: str) -> list[_Opcode]:
    # timelimit=0: never stop early and report everything as replaced.
    counts = fast_diff_match_patch.diff(a, b, timelimit=0, checklines=False, cleanup="No")
    ops: list[_Opcode] = []
    i = j = 0
    for op, n in counts:
        if op == "=":
            ops.append(("equal", i, i + n, j, j + n))
            i, j = i + n, j + n
        elif op == "-":
            ops.append(("delete", i, i + n, j, j))
            i += n
        else:
            ops.append(("insert", i, i, j, j + n))
            j += n
    return ops


def _hunks(ops: list[_Opcode]) -> list[_Opcode]:
    """Opcodes with neighbours merged: equal ones, and non-equal ones into a "replace"."""
    out: list[_Opcode] = []
    for tag, i1, i2, j1, j2 in ops:
        kind = "equal" if tag == "equal" else "replace"
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1], i2, out[-1][3], j2)
        else:
            out.append((kind, i1, i2, j1, j2))
    return out


# ---------------------------------------------------------------------------
# Word-level edits. A change is kept as (deleted, inserted) text, an unchanged
# stretch as plain text.

# A token is a word with the whitespace after it, as in git's word diff; a
# changed stretch is then trimmed to the characters that really differ.
_TOKEN = re.compile(r"\S+\s*|\s+")

_Region = str | tuple[str, str]
# Changes up to this many characters (both sides) are cut down to what differs.
_TRIMMED_CHANGE = 80
# For cutting a change between words, never inside one.
_WORD_CHARS_PAIR = re.compile(r"\w\w")
_WORD_END = re.compile(r"\w+$")
_WORD_START = re.compile(r"\w+")


def _word_regions(
    old: str, new: str, budget: _Budget, *, exact: bool = False, least_similarity: float = 0.0
) -> tuple[list[_Region] | None, float]:
    """Word-level regions of two texts, and the share of their words left unchanged.

    Below ``least_similarity`` the regions are not worked out, and come back empty;
    they come back None when the budget cannot pay for all of the word diff.
    """
    if old == new:
        return ([old] if old else []), 1.0
    if "\n" in old or "\n" in new:
        a, b = _TOKEN.findall(old), _TOKEN.findall(new)
        a_keys: list[Hashable] = a
        b_keys: list[Hashable] = b
        sep = ""
    else:
        # str.split is several times faster than the regex, and most paragraphs are one
        # line. Words are then joined by single spaces; each side's last word, which has
        # no space after it, is wrapped so that it can only match the other last word.
        a, b = old.split(" "), new.split(" ")
        a_keys, b_keys = [*a[:-1], (a[-1],)], [*b[:-1], (b[-1],)]
        sep = " "
    n_a, n_b = len(a), len(b)
    if not exact and n_a * n_b <= _MAX_LCS_CELLS and budget.spend(n_a * n_b):
        # Matched by hash, checked below: cheaper than checking every match here.
        ops = Indel.opcodes(a_keys, b_keys).as_list()
    else:
        ops = _diff(a_keys, b_keys, budget)
    similarity = 2 * sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag == "equal") / (n_a + n_b)
    if any(tag == "replace" for tag, *_ in ops):
        return None, similarity
    if similarity < least_similarity:
        return [], similarity
    regions: list[_Region] = []
    sizes: list[int] = []  # of each region, a change's being its longer side
    text = deleted = inserted = ""  # unchanged text not yet added; the change after it
    for tag, i1, i2, j1, j2 in ops:
        if tag != "equal":
            if i2 > i1:
                deleted += sep.join(a[i1:i2]) + (sep if i2 < n_a else "")
            if j2 > j1:
                inserted += sep.join(b[j1:j2]) + (sep if j2 < n_b else "")
            continue
        equal = sep.join(a[i1:i2]) + (sep if i2 < n_a else "")
        if deleted or inserted:
            if sep and deleted[-1:] == inserted[-1:] == sep:
                # The space before the next unchanged word is unchanged too.
                deleted, inserted, equal = deleted[:-1], inserted[:-1], sep + equal
            text = _add_change(regions, sizes, text, deleted, inserted, equal)
            deleted = inserted = ""
        else:
            text += equal
    if deleted or inserted:
        text = _add_change(regions, sizes, text, deleted, inserted, "")
    if text:
        regions.append(text)
    # Unchanged text is taken from the old side, so only the new side can come out
    # wrong, and only if two different words collided in rapidfuzz's hashing.
    if not exact and "".join([r if isinstance(r, str) else r[1] for r in regions]) != new:
        return _word_regions(old, new, budget, exact=True)
    return regions, similarity


def _add_change(
    regions: list[_Region], sizes: list[int], text: str, deleted: str, inserted: str, after: str
) -> str:
    """Add the unchanged ``text`` before a change, then the change, cleaned up; return
    the unchanged text after it: ``after``, or more.

    A short change is cut down to the characters that differ, between words; what
    it loses goes to the unchanged text around it. A short unchanged stretch
    between two changes is folded into them:
    "<del>the Processor shall</del><ins>a Controller must</ins>" reads better
    than a change for every word with single unchanged spaces in between. The
    rule is diff-match-patch's semantic cleanup, applied to whole words: an
    unchanged stretch goes when it is no longer than the changes on both sides.
    """
    # A long change is mostly new words anyway, and cutting costs a character loop.
    if (
        deleted
        and inserted
        and len(deleted) + len(inserted) <= _TRIMMED_CHANGE
        and (deleted[0] == inserted[0] or deleted[-1] == inserted[-1])
    ):
        start, end = _common_ends(deleted, inserted)
        text += deleted[:start]
        after = deleted[len(deleted) - end :] + after
        deleted, inserted = deleted[start : len(deleted) - end], inserted[start : len(inserted) - end]
    if text:
        regions.append(text)
        sizes.append(len(text))
    size = max(len(deleted), len(inserted))
    # regions alternate text and changes: regions[-2] is a change if regions[-1] is not.
    while len(regions) >= 2 and sizes[-1] <= size and sizes[-1] <= sizes[-2]:
        equal, left = regions.pop(), regions.pop()
        del sizes[-2:]
        deleted, inserted = left[0] + equal + deleted, left[1] + equal + inserted
        size = max(len(deleted), len(inserted))
    regions.append((deleted, inserted))
    sizes.append(size)
    return after


def _common_ends(deleted: str, inserted: str) -> tuple[int, int]:
    """Lengths of the common start and end of two texts, each cut between words."""
    limit = min(len(deleted), len(inserted))
    start = 0
    while start < limit and deleted[start] == inserted[start]:
        start += 1
    if _inside_word(deleted, start) or _inside_word(inserted, start):
        word = _WORD_END.search(deleted, 0, start)
        start = word.start() if word else start
    end = 0
    while end < limit - start and deleted[-1 - end] == inserted[-1 - end]:
        end += 1
    cut = len(deleted) - end
    if _inside_word(deleted, cut) or _inside_word(inserted, len(inserted) - end):
        word = _WORD_START.match(deleted, cut)
        end -= word.end() - cut if word else 0
    return start, end


def _inside_word(text: str, cut: int) -> bool:
    return 0 < cut < len(text) and _WORD_CHARS_PAIR.match(text, cut - 1) is not None


# Characters other than "\n" that str.splitlines also breaks lines at.
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _split_lines(text: str) -> list[str]:
    """Lines with their "\\n" kept; only "\\n" ends a line, as for diff(1)."""
    # splitlines is fast but also breaks at other characters; when there are none it
    # gives the same lines. For an ASCII string, "in" checks for them at memchr speed.
    if not (
        any(char in text for char in "\r\x0b\x0c\x1c\x1d\x1e")
        if text.isascii()
        else _OTHER_BREAKS.search(text)
    ):
        return text.splitlines(keepends=True)
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return lines


def word_ops(old: str, new: str) -> list[tuple[str, str]]:
    """The token-level edit script: a list of (op, text) with op in {"equal","insert","delete"};
    joining the equal+delete texts gives old, equal+insert gives new."""
    if old == new:
        return [("equal", old)] if old else []
    # Lines first, as git's word diff does: it keeps the token diff to the changed lines.
    a, b = _split_lines(old), _split_lines(new)
    budget = _Budget()
    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in _hunks(_diff(a, b, budget)):
        deleted, inserted = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal":
            regions: list[_Region] = [deleted]
        else:
            # Past the budget, the changed lines are given as deleted and inserted whole.
            regions = _word_regions(deleted, inserted, budget)[0] or [(deleted, inserted)]
        for region in regions:
            if isinstance(region, str):
                parts = [("equal", region)]
            else:
                parts = [("delete", region[0]), ("insert", region[1])]
            for op, text in parts:
                if not text:
                    continue
                if ops and ops[-1][0] == op:
                    ops[-1] = (op, ops[-1][1] + text)
                else:
                    ops.append((op, text))
    return ops


# ---------------------------------------------------------------------------
# Markdown blocks: paragraphs, headings, list items, quotes, tables, code.

# What a line that does not just continue a paragraph starts with.
_OPENER = re.compile(
    r" {0,3}(?:(?P<fence>`{3,}|~{3,})"
    r"|(?P<setext>=+|-+)[ \t]*$"
    r"|(?P<rule>(?P<ch>[-*_])(?:[ \t]*(?P=ch)){2,}[ \t]*$)"
    r"|(?P<item>[-+*]|\d{1,9}[.)])(?:[ \t]|$))"
)
_ORDERED = re.compile(r"\d{1,9}[.)](?:[ \t]|$)")
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r" {0,3}[-+*](?:[ \t]+|$)")
_QUOTE_MARK = re.compile(r"^ {0,3}> ?", re.M)
# A line starting with anything else can only start or continue a paragraph.
_BLOCK_START = frozenset("#>|`~=-*+_ \t0123456789")


# A block is (kind, key, body, level, anchor, start, end): kind is p, h, li, quote,
# table, code or hr; key is its source, which alignment compares; body is what a reader
# sees, which word marks apply to; level and anchor are a heading's; start and end are
# the numbers of its first line and of the line after its last. A plain tuple, because
# one is built per paragraph of both documents: a class or a NamedTuple costs several
# times more, and tuples of strings and ints also drop out of the garbage collector's scans.
_Block = tuple[str, str, str, int, str, int, int]
_KIND, _KEY, _BODY, _ANCHOR, _START, _END = 0, 1, 2, 4, 5, 6


def _atx(line: str) -> tuple[int, str] | None:
    """Level and text of an ATX heading line ("## Title ##"), or None."""
    stripped = line.lstrip(" ")
    level = len(stripped) - len(stripped.lstrip("#"))
    rest = stripped[level:]
    if len(line) - len(stripped) > 3 or not 1 <= level <= 6 or rest[:1] not in ("", " ", "\t"):
        return None
    text = rest.strip(" \t")
    if text.endswith("#"):
        # A closing run of "#" counts only after a space.
        unclosed = text.rstrip("#")
        if not unclosed or unclosed[-1] in " \t":
            text = unclosed.rstrip(" \t")
    return level, text


class _BlockParser:
    """Splits Markdown into blocks close enough to CommonMark's for headings to match.

    Heading anchors depend on every earlier heading, so this must find the same
    headings as the renderer: ATX and setext headings, but not "#" lines inside
    fenced code.
    """

    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self.anchors = HeadingAnchors()
        self.lines: list[str] = []  # of the block being read
        self.start = 0  # its first line's number
        self.number = 0  # the current line's number
        self.kind = "p"
        self.fence = ""

    def parse(self, text: str) -> list[_Block]:
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        # Chunks between empty lines. Most are one-line paragraphs or list items,
        # handled inline here: this loop runs once per block of both documents. Lines of
        # spaces, and the extra newlines of runs of empty lines, go to the line loop.
        blocks = self.blocks
        number = 0
        for chunk in text.split("\n\n"):
            if self.fence:
                self.lines.append("")
            elif "\n" not in chunk:
                first = chunk[:1]
                if not first:
                    pass
                elif first not in _BLOCK_START:
                    blocks.append(("p", chunk, chunk, 0, "", number, number + 1))
                elif first == "#" and (atx := _atx(chunk)):
                    self.heading(*atx, chunk, number, number + 1)
                elif first.isdigit():
                    kind = "li" if _ORDERED.match(chunk) else "p"
                    blocks.append((kind, chunk, chunk, 0, "", number, number + 1))
                # "- - -" and "***" are rules, not list items.
                elif first in "-*+" and chunk[1:2] in (" ", "\t") and chunk.strip("-*_ \t"):
                    blocks.append(("li", chunk, chunk[2:].lstrip(" \t"), 0, "", number, number + 1))
                else:
                    self.number = number
                    self.line(chunk)
                    self.flush()
                number += 2
                continue
            for self.number, line in enumerate(chunk.split("\n"), number):
                self.line(line)
            if not self.fence:
                self.flush()
            number = self.number + 2
        self.flush()
        return blocks

    def add(self, line: str) -> None:
        if not self.lines:
            self.start = self.number
        self.lines.append(line)

    def line(self, line: str) -> None:
        if self.fence:
            self.code_line(line)
        elif not line or line.isspace():
            self.flush()
        elif line[0] in _BLOCK_START:
            self.special_line(line)
        else:
            self.add(line)

    def code_line(self, line: str) -> None:
        self.lines.append(line)
        stripped = line.strip()
        if (
            len(line) - len(line.lstrip(" ")) <= 3
            and len(stripped) >= len(self.fence)
            and stripped == self.fence[0] * len(stripped)
        ):
            self.flush(closed=True)

    def special_line(self, line: str) -> None:
        if atx := _atx(line):
            self.flush()
            self.heading(*atx, line, self.number, self.number + 1)
            return
        opener = _OPENER.match(line)
        if opener is None:
            lead = line.lstrip()[:1]
            kind = "table" if lead == "|" else "quote" if lead == ">" else ""
            if kind and kind != self.kind:
                self.flush()
                self.kind = kind
            self.add(line)
        elif opener["fence"]:
            self.flush()
            self.kind, self.fence = "code", opener["fence"]
            self.add(line)
        elif opener["setext"] and self.kind == "p" and self.lines:
            text = "\n".join(self.lines)
            self.lines = []
            level = 1 if opener["setext"][0] == "=" else 2
            self.heading(level, text, f"{text}\n{line}", self.start, self.number + 1)
        elif opener["rule"] or (opener["setext"] and _RULE.match(line)):
            self.flush()
            self.blocks.append(("hr", line, line, 0, "", self.number, self.number + 1))
        elif opener["item"]:
            self.flush()
            self.kind = "li"
            self.add(line)
        else:
            self.add(line)

    def heading(self, level: int, text: str, key: str, start: int, end: int) -> None:
        text, custom_id = split_heading_id(text.strip())
        anchor = self.anchors.anchor(_plain_heading_text(text), custom_id)
        self.blocks.append(("h", key, text, level, anchor, start, end))

    def flush(self, *, closed: bool = False) -> None:
        if not self.lines:
            return
        key = "\n".join(self.lines)
        if self.kind == "code":
            body = "\n".join(self.lines[1:-1] if closed else self.lines[1:])
        elif self.kind == "quote":
            body = _QUOTE_MARK.sub("", key)
        elif self.kind == "li" and (bullet := _BULLET.match(key)):
            body = key[bullet.end() :]
        else:
            body = key
        self.blocks.append((self.kind, key, body, 0, "", self.start, self.start + len(self.lines)))
        self.lines, self.kind, self.fence = [], "p", ""


# ---------------------------------------------------------------------------
# Block alignment. Blocks are matched whole first; a changed stretch pairs its
# old and new blocks by shared words, and only paired blocks get word marks.

# Share of words two blocks must have in common, in order, to count as versions of each other.
_PAIR_SIMILARITY = 0.5
# Hunks up to this many old x new blocks compare every pair; larger ones only likely pairs.
_ALL_PAIRS_LIMIT = 400
# A word found in more new blocks of a hunk than this says nothing about which one matches.
_RARE_WORD_BLOCKS = 8
# Likely pairs per old block: 3 by rare words, 5 near the diagonal.
_LIKELY_PAIRS = 8
# What scoring one candidate pair costs in Python beyond its LCS, in budget steps
# (about 4 microseconds): a stretch of 160,000 one-word paragraphs took 15 s to pair.
_CANDIDATE_STEPS = 2_000

# A row is (state, old block, new block, word regions); a "changed" row whose regions
# are None was too costly to mark word by word and is shown replaced whole.
_Row = tuple[str, _Block | None, _Block | None, list[_Region] | None]


def _align(
    old_blocks: list[_Block], new_blocks: list[_Block], block_ops: list[_Opcode], budget: _Budget
) -> list[_Row]:
    rows: list[_Row] = []
    for tag, i1, i2, j1, j2 in block_ops:
        if tag == "equal":
            rows.extend(
                ("equal", o, n, None) for o, n in zip(old_blocks[i1:i2], new_blocks[j1:j2], strict=True)
            )
        else:
            rows.extend(_hunk_rows(old_blocks[i1:i2], new_blocks[j1:j2], budget))
    return rows


def _hunk_rows(olds: list[_Block], news: list[_Block], budget: _Budget) -> list[_Row]:
    if len(olds) != len(news):
        return _matched_rows(olds, news, budget)
    if len(olds) == 1:
        return [("changed", olds[0], news[0], _word_regions(olds[0][_BODY], news[0][_BODY], budget)[0])]
    # The usual case: as many blocks came as went, each a version of the one it replaced.
    diffs = [
        _word_regions(o[_BODY], n[_BODY], budget, least_similarity=_PAIR_SIMILARITY)
        for o, n in zip(olds, news, strict=True)
    ]
    # Pairs in place stay paired if similar, or if too costly to tell; blocks between
    # them are matched afresh.
    paired = [regions is None or similarity >= _PAIR_SIMILARITY for regions, similarity in diffs]
    rows: list[_Row] = []
    k = 0
    while k < len(olds):
        if paired[k]:
            rows.append(("changed", olds[k], news[k], diffs[k][0]))
            k += 1
            continue
        end = k + 1
        while end < len(olds) and not paired[end]:
            end += 1
        if end - k == 1:
            rows += [("deleted", olds[k], None, None), ("inserted", None, news[k], None)]
        else:
            rows += _matched_rows(olds[k:end], news[k:end], budget)
        k = end
    return rows


def _matched_rows(olds: list[_Block], news: list[_Block], budget: _Budget) -> list[_Row]:
    """Rows of a changed stretch whose blocks are paired by similarity, not position."""
    rows: list[_Row] = []
    pairs = _pair_blocks(olds, news, budget) if olds and news else []
    if pairs is None:
        budget.unmatched += len(olds) + len(news)
        pairs = []
    i0 = j0 = 0
    for i, j in [*pairs, (len(olds), len(news))]:
        rows.extend(("deleted", o, None, None) for o in olds[i0:i])
        rows.extend(("inserted", None, n, None) for n in news[j0:j])
        if i < len(olds):
            regions = _word_regions(olds[i][_BODY], news[j][_BODY], budget)[0]
            rows.append(("changed", olds[i], news[j], regions))
        i0, j0 = i + 1, j + 1
    return rows


def _pair_blocks(olds: list[_Block], news: list[_Block], budget: _Budget) -> list[tuple[int, int]] | None:
    """Which old block became which new block, as increasing (old, new) index pairs;
    None if the budget cannot pay for trying."""
    m, n = len(olds), len(news)
    if not budget.spend(min(m * n, max(_ALL_PAIRS_LIMIT, _LIKELY_PAIRS * m)) * _CANDIDATE_STEPS):
        return None
    old_words = [b[_BODY].split() for b in olds]
    new_words = [b[_BODY].split() for b in news]
    old_bags: dict[int, Counter[str]] = {}
    new_bags: dict[int, Counter[str]] = {}

    def similarity(i: int, j: int) -> float:
        if not old_words[i] and not new_words[j]:
            return 1.0 if olds[i][_KIND] == news[j][_KIND] else 0.0
        if budget.spend(len(old_words[i]) * len(new_words[j])):
            # Matches by hash: a collision could only make a pairing a little more likely.
            return Indel.normalized_similarity(old_words[i], new_words[j], score_cutoff=_PAIR_SIMILARITY)
        # Past the budget, the words shared in any order: an upper bound of the above,
        # in linear time, and only a pairing, which the word diff then judges.
        old_bag = old_bags.get(i) or old_bags.setdefault(i, Counter(old_words[i]))
        new_bag = new_bags.get(j) or new_bags.setdefault(j, Counter(new_words[j]))
        shared = 2 * (old_bag & new_bag).total() / (len(old_words[i]) + len(new_words[j]))
        return shared if shared >= _PAIR_SIMILARITY else 0.0

    if m * n <= _ALL_PAIRS_LIMIT:
        candidates = [(i, j) for i in range(m) for j in range(n)]
    else:
        candidates = sorted(_likely_pairs(old_words, new_words))
    scored = []
    for i, j in candidates:
        if score := similarity(i, j):
            scored.append((-score, abs(i * n - j * m), i, j))
    scored.sort()
    chosen: list[int] = []
    partner: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in scored:
        if i in partner or j in taken:
            continue
        k = bisect_left(chosen, i)
        if (k and partner[chosen[k - 1]] > j) or (k < len(chosen) and partner[chosen[k]] < j):
            continue
        insort(chosen, i)
        partner[i] = j
        taken.add(j)
    return [(i, partner[i]) for i in chosen]


def _likely_pairs(old_words: list[list[str]], new_words: list[list[str]]) -> set[tuple[int, int]]:
    """Pairs sharing rare words, plus pairs near the diagonal, for hunks too big for all pairs."""
    m, n = len(old_words), len(new_words)
    index: defaultdict[str, list[int]] = defaultdict(list)
    for j, words in enumerate(new_words):
        for word in set(words):
            index[word].append(j)
    pairs: set[tuple[int, int]] = set()
    for i, words in enumerate(old_words):
        shared: Counter[int] = Counter()
        for word in set(words):
            blocks = index.get(word)
            if blocks is not None and len(blocks) <= _RARE_WORD_BLOCKS:
                shared.update(blocks)
        pairs.update((i, j) for j, _ in shared.most_common(3))
        diagonal = i * n // m
        pairs.update((i, j) for j in range(max(0, diagonal - 2), min(n, diagonal + 3)))
    return pairs


# ---------------------------------------------------------------------------
# HTML. Blocks read as in the rendered document (registry/domain/redline.py draws
# the word marks on their formatting); every piece of input text is escaped there
# or by esc here, and markup comes only from these two modules.

# Runs of fewer unchanged blocks than this stay visible: a fold would hide too little.
_MIN_FOLD = 2
# Blocks of text that read as inline Markdown; code, rules and tables do not.
_INLINE = frozenset({"p", "h", "li", "quote"})
_ORDERED_ITEM = re.compile(r" {0,3}(\d{1,9})[.)](?:[ \t]+|$)")
_SECTION_NUMBER = re.compile(r"(?:§\s*)?(\d+(?:\.\d+)*)\.?(?:\s|$)")
# How many new rows of a table an old row may be paired across.
_TABLE_ROW_REACH = 20


def _item(block: _Block) -> tuple[str, str]:
    """A list item's list ("ul", or the number of an ordered one) and its text."""
    body = block[_BODY]
    if _ORDERED_ITEM.match(block[_KEY]) and (number := _ORDERED_ITEM.match(body)):
        return number.group(1), body[number.end() :]
    return "ul", body


def _text(block: _Block) -> str:
    """The Markdown of what a block reads as: a list item without its number."""
    return _item(block)[1] if block[_KIND] == "li" else block[_BODY]


def _runs_of(block: _Block) -> list[redline.Run]:
    text = _text(block)
    if block[_KIND] in _INLINE:
        return redline.runs(text)
    return [(text, ())] if text else []


def _wrap(block: _Block, inner: str, state: str, anchor: str = "", *, cell: bool = False) -> str:
    """A block's element around its rendered text; in a side-by-side cell, headings are
    paragraphs (headings there would break the page's outline) and items their own list."""
    kind, level = block[_KIND], block[3]
    class_attr = f' class="{state}"' if state else ""
    if kind == "h":
        if cell:
            return f'<p class="heading h{level}">{inner}</p>'
        id_attr = f' id="{html.escape(anchor)}"' if anchor else ""
        return f"<h{level}{id_attr}{class_attr}>{inner}</h{level}>"
    if kind == "li":
        number = _item(block)[0]
        value = "" if number == "ul" else f' value="{int(number)}"'
        item = f"<li{class_attr}{value}>{inner}</li>"
        tag = "ul" if number == "ul" else "ol"
        return f"<{tag}>{item}</{tag}>" if cell else item
    if kind == "quote":
        return f"<blockquote{class_attr}><p>{inner}</p></blockquote>"
    if kind == "code":
        return f'<pre class="{" ".join(filter(None, ("code", state)))}"><code>{inner}</code></pre>'
    if kind == "hr":
        return "<hr>" if not state else f'<p class="rule {state}">{inner}</p>'
    if kind == "table" and inner.startswith('<div class="table-scroll"'):
        return inner if not state or cell else f'<div class="table-block {state}">{inner}</div>'
    return f"<p{class_attr}>{inner}</p>"


def _list_of(block: _Block | None) -> str:
    if block is None or block[_KIND] != "li":
        return ""
    return "ul" if _item(block)[0] == "ul" else "ol"


# Before a block compared whole; the comparison's budget ran out on it.
_WHOLE_NOTE = (
    '<p class="compared-whole">Compared as a whole: this block changed too much to mark'
    " word by word, so all of its old text is shown deleted and all of its new text inserted.</p>"
)

_WHOLE_CELLS_NOTE = (
    '<p class="compared-whole">Compared as a whole: some cells of this table changed too much to'
    " mark word by word, so all of their old text is shown deleted and all of their new text inserted.</p>"
)

# A row rendered: old cell, new cell and redline, each built once; the words deleted
# and inserted; and the list ("ul", "ol" or "") the redline's element belongs in.
_Html = tuple[str, str, str, int, int, str]
# A moved block: its state ("moved-out" where it was, "moved-in" where it is), the
# number of its group of blocks moved together, and the group's note, on its first block.
_Move = tuple[str, int, str]


def _whole(block: _Block, tag: str) -> tuple[str, int]:
    """A block's text all deleted or all inserted, and its words."""
    if block[_KIND] == "table" and (cells := redline.table_cells(block[_BODY])) is not None:
        rows = [("", [redline.render_runs_as(redline.runs(c), tag) for c in row]) for row in cells]
        return redline.table_html(rows), sum(redline.count_words(c) for row in cells for c in row)
    block_runs = _runs_of(block)
    if block[_KIND] == "hr":
        block_runs = [(block[_BODY].strip(), ())]
    return redline.render_runs_as(block_runs, tag), redline.count_words(redline.plain(block_runs))


def _plain_html(block: _Block) -> str:
    if block[_KIND] == "table" and (cells := redline.table_cells(block[_BODY])) is not None:
        rows = [("", [redline.render_runs(redline.runs(cell)) for cell in row]) for row in cells]
        return redline.table_html(rows)
    return redline.render_runs(_runs_of(block))


def _render(row: _Row, new_anchors: set[str], budget: _Budget, move: _Move | None, markup: bool) -> _Html:
    """A row's HTML; ``markup`` says whether either document has any character that may
    be inline Markdown: when neither has, no block needs checking for it."""
    state, old, new, regions = row
    if state == "equal":
        kind = new[_KIND]
        # Most blocks: paragraphs, headings and list items of plain text, built directly.
        plain = not markup or not redline.may_be_markup(new[_BODY])
        if kind == "p" and plain:
            cell = f"<p>{_esc(new[_BODY])}</p>"
            return cell, cell, cell, 0, 0, ""
        if kind == "h" and plain:
            inner, level = _esc(new[_BODY]), new[3]
            heading = f'<h{level} id="{html.escape(new[_ANCHOR])}">{inner}</h{level}>'
            cell = f'<p class="heading h{level}">{inner}</p>'
            return cell, cell, heading, 0, 0, ""
        if kind == "li" and plain and new[_KEY][:1] in "-*+":
            item = f"<li>{_esc(new[_BODY])}</li>"
            cell = f"<ul>{item}</ul>"
            return cell, cell, item, 0, 0, "ul"
        inner = _plain_html(new)
        cell = _wrap(new, inner, "", cell=True)
        if new[_KIND] == "p" or new[_KIND] == "table":
            return cell, cell, cell, 0, 0, ""
        return cell, cell, _wrap(new, inner, "", new[_ANCHOR]), 0, 0, _list_of(new)
    if move is not None:
        moved_state, group, note = move
        block = old if moved_state == "moved-out" else new
        tag, side = ("del", "old") if moved_state == "moved-out" else ("ins", "new")
        inner, _ = _whole(block, tag)
        inner = inner.replace(f"<{tag}>", f'<{tag} class="moved">')
        if note:
            note = f'<span class="move-note" id="move-{group}-{side}">{note}</span>'
        anchor = block[_ANCHOR] if moved_state == "moved-in" else ""
        html_block = _wrap(block, note + inner, moved_state, anchor)
        cell = _wrap(block, note + inner, "", cell=True)
        old_cell, new_cell = (cell, "") if moved_state == "moved-out" else ("", cell)
        return old_cell, new_cell, html_block, 0, 0, _list_of(block)
    if state == "changed":
        return _render_changed(old, new, regions, budget, markup)
    block = old if state == "deleted" else new
    if block[_KIND] == "p" and (not markup or not redline.may_be_markup(block[_BODY])):
        # A paragraph of plain text deleted or inserted whole, built directly.
        body, tag = block[_BODY], "del" if state == "deleted" else "ins"
        inner = f"<{tag}>{redline.changed(body)}</{tag}>" if body else ""
        cell, words = f"<p>{inner}</p>", redline.count_words(body)
        redline_html = f'<p class="{state}">{inner}</p>'
        if state == "deleted":
            return cell, "", redline_html, words, 0, ""
        return "", cell, redline_html, 0, words, ""
    if state == "deleted":
        inner, words = _whole(old, "del")
        # The old anchor stays only where the new document does not use it.
        anchor = old[_ANCHOR] if old[_ANCHOR] not in new_anchors else ""
        redline_html = _wrap(old, inner, state, anchor)
        return _wrap(old, inner, "", cell=True), "", redline_html, words, 0, _list_of(old)
    inner, words = _whole(new, "ins")
    redline_html = _wrap(new, inner, state, new[_ANCHOR])
    return "", _wrap(new, inner, "", cell=True), redline_html, 0, words, _list_of(new)


def _render_changed(
    old: _Block, new: _Block, regions: list[_Region] | None, budget: _Budget, markup: bool
) -> _Html:
    whole = regions is None
    if (
        not whole
        and old[_KIND] == new[_KIND] == "p"
        and (not markup or not (redline.may_be_markup(old[_BODY]) or redline.may_be_markup(new[_BODY])))
    ):
        # Most changed blocks: paragraphs of plain text, the regions already those of what reads.
        old_inner, new_inner, both, deleted, inserted = redline.marked_unstyled(regions)
        redline_html = f'<p class="changed">{both}</p>'
        return f"<p>{old_inner}</p>", f"<p>{new_inner}</p>", redline_html, deleted, inserted, ""
    state = "changed whole" if whole else "changed"
    if old[_KIND] == new[_KIND] == "table":
        old_cells, new_cells = redline.table_cells(old[_BODY]), redline.table_cells(new[_BODY])
        if old_cells is not None and new_cells is not None and old_cells and new_cells:
            old_html, new_html, both, deleted, inserted = _table_marked(old_cells, new_cells, budget)
            return old_html, new_html, _wrap(new, both, state), deleted, inserted, ""
    if (old[_KIND] in _INLINE) != (new[_KIND] in _INLINE) or "table" in (old[_KIND], new[_KIND]):
        # A paragraph that became a table or code: not comparable word by word.
        old_inner, deleted = _whole(old, "del")
        new_inner, inserted = _whole(new, "ins")
        both = _wrap(old, old_inner, "deleted") + _wrap(new, new_inner, "inserted", new[_ANCHOR])
        return (_wrap(old, old_inner, "", cell=True), _wrap(new, new_inner, "", cell=True),
                both, deleted, inserted, "")
    old_runs, new_runs = _runs_of(old), _runs_of(new)
    unstyled = len(old_runs) <= 1 and len(new_runs) <= 1 and not any(r[1] for r in (*old_runs, *new_runs))
    old_text, new_text = redline.plain(old_runs), redline.plain(new_runs)
    if regions is not None and not (unstyled and old_text == old[_BODY] and new_text == new[_BODY]):
        # The regions were found on the Markdown source; what a reader sees is its text.
        regions = _word_regions(old_text, new_text, budget)[0]
        if regions is None:
            # Past the budget now: shown whole, with the note, and counted as such.
            budget.unmatched += 1
            whole, state = True, "changed whole"
    old_inner, new_inner, both, deleted, inserted = redline.marked(old_runs, new_runs, regions)
    old_cell, new_cell = _wrap(old, old_inner, "", cell=True), _wrap(new, new_inner, "", cell=True)
    redline_html = _wrap(new, both, state, new[_ANCHOR])
    if whole:
        new_cell, redline_html = _WHOLE_NOTE + new_cell, _WHOLE_NOTE + redline_html
    return old_cell, new_cell, redline_html, deleted, inserted, "" if whole else _list_of(new)


def _table_marked(
    olds: list[list[str]], news: list[list[str]], budget: _Budget
) -> redline.Marked:
    """Two versions of a table, rows aligned: inserted, deleted and changed rows,
    word marks in changed cells."""
    old_rows: list[tuple[str, list[str]]] = []
    new_rows: list[tuple[str, list[str]]] = []
    both_rows: list[tuple[str, list[str]]] = []
    counts = [0, 0]
    # Changed cells the budget could not pay to mark word by word: shown whole, and said so.
    whole_cells = [0]

    def pair(o: list[str], n: list[str]) -> None:
        old_cells, new_cells, both_cells = [], [], []
        for old_cell, new_cell in zip_longest(o, n):
            old_runs = redline.runs(old_cell) if old_cell is not None else []
            new_runs = redline.runs(new_cell) if new_cell is not None else []
            a, b = redline.plain(old_runs), redline.plain(new_runs)
            regions = [a] if a == b and old_cell == new_cell else _word_regions(a, b, budget)[0]
            if regions is None:
                whole_cells[0] += 1
            marked = redline.marked(old_runs, new_runs, [a] if not a and not b else regions)
            old_cells.append(marked[0])
            new_cells.append(marked[1])
            both_cells.append(marked[2])
            counts[0] += marked[3]
            counts[1] += marked[4]
        state = "" if o == n else "changed"
        old_rows.append((state, old_cells))
        new_rows.append((state, new_cells))
        both_rows.append((state, both_cells))

    def alone(cells: list[str], tag: str) -> None:
        rendered = [redline.render_runs_as(redline.runs(c), tag) for c in cells]
        state = "deleted" if tag == "del" else "inserted"
        (old_rows if tag == "del" else new_rows).append((state, rendered))
        both_rows.append((state, rendered))
        counts[tag == "ins"] += sum(redline.count_words(c) for c in cells)

    pair(olds[0], news[0])
    body_old, body_new = olds[1:], news[1:]
    keys_old, keys_new = list(map(redline.row_key, body_old)), list(map(redline.row_key, body_new))
    def similar(i: int, j: int) -> bool:
        found = _word_regions(keys_old[i], keys_new[j], budget, least_similarity=_PAIR_SIMILARITY)
        return found[1] >= _PAIR_SIMILARITY

    for tag, i1, i2, j1, j2 in _hunks(_diff(keys_old, keys_new, budget)):
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                pair(body_old[i], body_new[j])
            continue
        # Each old row pairs with the first similar new row after the last pair, if any
        # within a few rows; rows left over were deleted or inserted.
        j = j1
        for i in range(i1, i2):
            match = next((k for k in range(j, min(j2, j + _TABLE_ROW_REACH)) if similar(i, k)), None)
            if match is None:
                alone(body_old[i], "del")
                continue
            for k in range(j, match):
                alone(body_new[k], "ins")
            pair(body_old[i], body_new[match])
            j = match + 1
        for k in range(j, j2):
            alone(body_new[k], "ins")
    budget.unmatched += whole_cells[0]
    note = _WHOLE_CELLS_NOTE if whole_cells[0] else ""
    return (redline.table_html(old_rows), note + redline.table_html(new_rows),
            note + redline.table_html(both_rows), counts[0], counts[1])


# ---------------------------------------------------------------------------
# Moves: a block deleted in one place and inserted unchanged in another.


def _section_label(block: _Block) -> str:
    text = _plain_heading_text(block[_BODY])
    if number := _SECTION_NUMBER.match(text):
        return f"§\u00a0{number.group(1)}"
    return f"\u201c{text if len(text) <= 60 else text[:57] + '…'}\u201d"


def _locations(rows: list[_Row]) -> tuple[list[str], list[str]]:
    """Where each row's old and new block stand, as a reader would say it: "§ 6"."""
    out: tuple[list[str], list[str]] = ([], [])
    current: list[str | None] = [None, None]
    for row in rows:
        for side in (0, 1):
            block = row[1 + side]
            here = current[side]
            if block is not None and block[_KIND] == "h":
                out[side].append(f"after {here}" if here else "at the beginning")
                current[side] = _section_label(block)
            else:
                out[side].append(here or "the beginning")
    return out


def _moves(rows: list[_Row]) -> dict[int, _Move]:
    """Rows of blocks that moved unchanged, paired, in groups of blocks moved together."""
    def key(block: _Block) -> tuple[str, str] | None:
        kind, body = block[_KIND], block[_BODY]
        # A single word moving says little; it is more likely two unrelated edits.
        if kind == "hr" or (kind != "h" and " " not in body.strip()):
            return None
        return kind, body

    deleted: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for k, (state, old, _, _) in enumerate(rows):
        if state == "deleted" and (found := key(old)) is not None:  # type: ignore[arg-type]
            deleted[found].append(k)
    pairs: list[tuple[int, int]] = []
    for k, (state, _, new, _) in enumerate(rows):
        if state == "inserted" and (found := key(new)) is not None and deleted.get(found):  # type: ignore[arg-type]
            pairs.append((deleted[found].pop(0), k))
    if not pairs:
        return {}
    old_at, new_at = _locations(rows)
    moves: dict[int, _Move] = {}
    group = 0
    previous = (-2, -2)
    for out, into in pairs:
        first = (out, into) != (previous[0] + 1, previous[1] + 1)
        if first:
            group += 1
        out_note = in_note = ""
        if first:
            # A group led by a heading is a section, placed after another section.
            what = "Section moved" if rows[out][1][_KIND] == "h" else "Moved"  # type: ignore[index]
            out_note = f'{what} to <a href="#move-{group}-new">{_esc(new_at[into])}</a>'
            in_note = f'{what} from <a href="#move-{group}-old">{_esc(old_at[out])}</a>'
        moves[out] = ("moved-out", group, out_note)
        moves[into] = ("moved-in", group, in_note)
        previous = (out, into)
    return moves


def _esc(text: str) -> str:
    return redline.esc(text)


def _runs(states: list[str], context: int, headings: list[bool]) -> list[tuple[bool, int, int]]:
    """(folded, start, stop) runs of rows: unchanged rows further than ``context`` from a
    change fold, but the heading of the section holding the next change stays visible."""
    shown: list[list[int]] = []
    for k, state in enumerate(states):
        if state == "equal":
            continue
        start, stop = max(0, k - context), min(len(states), k + context + 1)
        if shown and start - shown[-1][1] < _MIN_FOLD:
            shown[-1][1] = stop
        else:
            shown.append([start, stop])
    runs: list[tuple[bool, int, int]] = []
    position = 0
    for start, stop in [*shown, [len(states), len(states)]]:
        heading = next((h for h in range(start - 1, position - 1, -1) if headings[h]), None)
        if start - position >= _MIN_FOLD and stop > start and heading is not None:
            _gap(runs, position, heading)
            runs.append((False, heading, heading + 1))
            _gap(runs, heading + 1, start)
        else:
            _gap(runs, position, start)
        if stop > start:
            runs.append((False, start, stop))
        position = stop
    return runs


def _gap(runs: list[tuple[bool, int, int]], start: int, stop: int) -> None:
    if stop - start >= _MIN_FOLD:
        runs.append((True, start, stop))
    elif stop > start:
        runs.append((False, start, stop))


def _summary(count: int) -> str:
    return f"<summary>{count} unchanged section{'' if count == 1 else 's'}</summary>"


def _whole_summary(count: int) -> str:
    blocks = "1 changed block was" if count == 1 else f"{count} changed blocks were"
    return (
        f"{blocks} too large to compare word by word and"
        f" {'is' if count == 1 else 'are'} shown deleted and inserted whole;"
        " a block paired with its new version is marked \u201ccompared as a whole\u201d."
    )


def _with_lists(html_rows: list[_Html]) -> list[str]:
    """The redline's elements, consecutive list items inside one list element."""
    out: list[str] = []
    add = out.append
    current = ""
    for row in html_rows:
        in_list = row[5]
        if in_list != current:
            if current:
                add(f"</{current}>")
            if in_list:
                add(f'<{in_list} class="items">')
            current = in_list
        add(row[2])
    if current:
        add(f"</{current}>")
    return out


def _redline_html(
    html_rows: list[_Html], runs: list[tuple[bool, int, int]], changed: bool, whole: int
) -> str:
    parts = ['<div class="redline">']
    if not changed:
        parts.append('<p class="no-changes">No differences.</p>')
    if whole:
        parts.append(f'<p class="compared-whole-summary">{_whole_summary(whole)}</p>')
    for folded, start, stop in runs:
        if folded:
            parts.append(f'<details class="fold">{_summary(stop - start)}')
        parts.extend(_with_lists(html_rows[start:stop]))
        if folded:
            parts.append("</details>")
    parts.append("</div>")
    return "\n".join(parts)


def _side_by_side_html(
    html_rows: list[_Html],
    states: list[str],
    runs: list[tuple[bool, int, int]],
    changed: bool,
    old_label: str,
    new_label: str,
    whole: int,
) -> str:
    old_label, new_label = _esc(old_label), _esc(new_label)
    caption = f"Comparison of {old_label} (old text) with {new_label} (new text)"
    if whole:
        caption += f'<span class="compared-whole-summary"> {_whole_summary(whole)}</span>'
    parts = [
        '<table class="side-by-side">',
        f"<caption>{caption}</caption>",
        f'<thead><tr><th scope="col">{old_label}</th><th scope="col">{new_label}</th></tr></thead>',
        "<tbody>",
    ]
    if not changed:
        parts.append('<tr class="no-changes"><td colspan="2">No differences.</td></tr>')
    for folded, start, stop in runs:
        if folded:
            # Unchanged text is the same on both sides: shown once, across both columns.
            cells = "".join(row[1] for row in html_rows[start:stop])
            parts.append(
                f'<tr class="fold"><td colspan="2"><details class="fold">'
                f"{_summary(stop - start)}{cells}</details></td></tr>"
            )
        else:
            parts.extend(_table_rows(html_rows[start:stop], states[start:stop], (old_label, new_label)))
    parts.append("</tbody>\n</table>")
    return "\n".join(parts)


def _table_rows(html_rows: list[_Html], states: list[str], labels: tuple[str, str]) -> list[str]:
    """Table rows; the whole blocks deleted and inserted by one change share rows. Each
    cell of a change carries its column's label, shown above it where the columns stack."""
    rows: list[str] = []
    deleted: list[str] = []
    inserted: list[str] = []
    old_td, new_td = (f'<td data-label="{label}">' for label in labels)

    def cell(td: str, html_cell: str | None) -> str:
        return '<td class="empty"></td>' if html_cell is None else f"{td}{html_cell}</td>"

    def flush() -> None:
        for old, new in zip_longest(deleted, inserted):
            state = "replaced" if old and new else "deleted" if old else "inserted"
            rows.append(f'<tr class="{state}">{cell(old_td, old)}{cell(new_td, new)}</tr>')
        deleted.clear()
        inserted.clear()

    for (old_cell, new_cell, *_), state in zip(html_rows, states, strict=True):
        if state == "deleted":
            deleted.append(old_cell)
        elif state == "inserted":
            inserted.append(new_cell)
        elif state.startswith("moved"):
            flush()
            old_html, new_html = cell(old_td, old_cell or None), cell(new_td, new_cell or None)
            rows.append(f'<tr class="{state}">{old_html}{new_html}</tr>')
        elif state == "equal":
            flush()
            rows.append(f'<tr class="same"><td>{old_cell}</td><td>{new_cell}</td></tr>')
        else:
            flush()
            rows.append(f'<tr class="changed">{old_td}{old_cell}</td>{new_td}{new_cell}</td></tr>')
    flush()
    return rows


def _cell(html_cell: str | None) -> str:
    return '<td class="empty"></td>' if html_cell is None else f"<td>{html_cell}</td>"

# ---------------------------------------------------------------------------
# Unified diff of the Markdown source, as difflib.unified_diff writes it, plus
# the "\ No newline at end of file" marker that patch(1) and git apply need.


def _unified_diff(
    old: str,
    new: str,
    labels: tuple[str, str],
    blocks: tuple[list[_Block], list[_Block]],
    block_ops: list[_Opcode],
    budget: _Budget,
    context: int = 3,
) -> str:
    if old == new:
        return ""
    a, b = _split_lines(old), _split_lines(new)
    # The block alignment already says which lines are unchanged: those of unchanged
    # blocks. Only the lines between them are compared line by line.
    old_blocks, new_blocks = blocks
    ops: list[_Opcode] = []
    i = j = 0
    for tag, i1, i2, j1, j2 in block_ops:
        if tag != "equal":
            continue
        start_a, end_a = old_blocks[i1][_START], old_blocks[i2 - 1][_END]
        start_b, end_b = new_blocks[j1][_START], new_blocks[j2 - 1][_END]
        # Blocks alike once "\r\n" is read as "\n" may still differ as lines.
        if a[start_a:end_a] == b[start_b:end_b]:
            ops.extend(_line_span_opcodes(a, b, i, start_a, j, start_b, budget))
            ops.append(("equal", start_a, end_a, start_b, end_b))
            i, j = end_a, end_b
    ops.extend(_line_span_opcodes(a, b, i, len(a), j, len(b), budget))
    out = [f"--- {_one_line(labels[0])}\n", f"+++ {_one_line(labels[1])}\n"]
    for group in _grouped(_hunks(ops), context):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                _diff_lines(out, " ", a, i1, i2)
            else:
                _diff_lines(out, "-", a, i1, i2)
                _diff_lines(out, "+", b, j1, j2)
    return "".join(out)


def _line_span_opcodes(
    a: list[str], b: list[str], i1: int, i2: int, j1: int, j2: int, budget: _Budget
) -> list[_Opcode]:
    """Line opcodes of the lines between two runs of unchanged blocks."""
    if a[i1:i2] == b[j1:j2]:
        return [("equal", i1, i2, j1, j2)] if i2 > i1 else []
    if i2 - i1 != j2 - j1:
        return _shifted(_diff(a[i1:i2], b[j1:j2], budget), i1, j1)
    # The usual case: as many lines came as went, paragraphs in the same places. Lines
    # matched by position make a valid diff; the empty lines between stay unchanged.
    ops: list[_Opcode] = []
    for k in range(i2 - i1):
        tag = "equal" if a[i1 + k] == b[j1 + k] else "replace"
        if ops and ops[-1][0] == tag:
            ops[-1] = (tag, ops[-1][1], i1 + k + 1, ops[-1][3], j1 + k + 1)
        else:
            ops.append((tag, i1 + k, i1 + k + 1, j1 + k, j1 + k + 1))
    return ops


def _one_line(label: str) -> str:
    return label.replace("\r", " ").replace("\n", " ")


def _diff_lines(out: list[str], prefix: str, lines: list[str], start: int, stop: int) -> None:
    if start == stop:
        return
    # Every line but a file's last ends with "\n", so one join prefixes them all.
    out.append(prefix + prefix.join(lines[start:stop]))
    if stop == len(lines) and not lines[-1].endswith("\n"):
        out.append("\n\\ No newline at end of file\n")


def _range(start: int, stop: int) -> str:
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _grouped(codes: list[_Opcode], n: int) -> list[list[_Opcode]]:
    """Hunks with ``n`` lines of context, split as difflib.SequenceMatcher.get_grouped_opcodes."""
    codes = list(codes)
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    groups: list[list[_Opcode]] = []
    group: list[_Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            groups.append(group)
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        groups.append(group)
    return groups


# ---------------------------------------------------------------------------


def compare(
    old: str,
    new: str,
    *,
    old_label: str = "old",
    new_label: str = "new",
    context_blocks: int = 1,
) -> Comparison:
    """Compare two versions of a Markdown document.

    Blocks (paragraphs, headings, list items...) are aligned first, then the
    words of each changed block against the block it became. Runs of unchanged
    blocks further than ``context_blocks`` from a change are folded.
    """
    if context_blocks < 0:
        raise ValueError("context_blocks must not be negative")
    with _collector_paused():
        return _compare(old, new, old_label, new_label, context_blocks)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, which costs a tenth of a big comparison.

    A comparison builds tens of thousands of tuples and lists that all live until
    it returns, so the collector's repeated scans of them free nothing. Another
    thread's comparison may switch it back on early, which only costs time; if
    the application switched it off, it stays off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _compare(old: str, new: str, old_label: str, new_label: str, context_blocks: int) -> Comparison:
    old_blocks, new_blocks = _BlockParser().parse(old), _BlockParser().parse(new)
    budget = _Budget()
    block_ops = _hunks(_diff([b[_KEY] for b in old_blocks], [b[_KEY] for b in new_blocks], budget))
    rows = _align(old_blocks, new_blocks, block_ops, budget)
    new_anchors = {b[_ANCHOR] for b in new_blocks if b[_KIND] == "h"}
    moves = _moves(rows)
    markup = redline.has_markup_characters(old) or redline.has_markup_characters(new)
    if moves:
        html_rows = [_render(row, new_anchors, budget, moves.get(k), markup) for k, row in enumerate(rows)]
        states = [moves[k][0] if k in moves else row[0] for k, row in enumerate(rows)]
    else:
        html_rows = [_render(row, new_anchors, budget, None, markup) for row in rows]
        states = [row[0] for row in rows]
    headings = [row[2] is not None and row[2][_KIND] == "h" for row in rows]
    runs = _runs(states, context_blocks, headings)

    changed = len(rows) - states.count("equal")
    compared_whole = sum(1 for state, _, _, regions in rows if state == "changed" and regions is None)
    whole = compared_whole + budget.unmatched
    return Comparison(
        redline_html=_redline_html(html_rows, runs, bool(changed), whole),
        side_by_side_html=_side_by_side_html(
            html_rows, states, runs, bool(changed), old_label, new_label, whole
        ),
        unified_diff=_unified_diff(
            old, new, (old_label, new_label), (old_blocks, new_blocks), block_ops, budget
        ),
        words_inserted=sum(row[4] for row in html_rows),
        words_deleted=sum(row[3] for row in html_rows),
        blocks_changed=changed,
        blocks_compared_whole=whole,
    )
