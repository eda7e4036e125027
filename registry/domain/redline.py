"""A block of Markdown as it reads (its text with formatting), and word marks drawn on it.

The comparison (registry/domain/diff.py) aligns blocks and finds the changed words;
this module turns a block's inline Markdown into styled runs of text, marks words
deleted and inserted on them, labels a change of formatting alone ("now bold",
"link changed to …"), makes characters a reader cannot see or tell apart visible,
and lays out tables cell by cell. Every piece of input text goes through ``esc`` or
``changed``; markup comes only from here.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from itertools import pairwise

from registry.domain.markdown import inline_tokens

# A style is the formatting of a run of text, outermost first: "strong", "em",
# "code", "s", or "a <href>" for a link (its target checked by the renderer's rules).
Style = tuple[str, ...]
Run = tuple[str, Style]
# (deleted, inserted) for a change, plain text for an unchanged stretch.
Region = str | tuple[str, str]
Regions = Callable[[str, str], list[Region] | None]

# What may start inline markup; text without any is its own single unstyled run.
_MAYBE_MARKUP = re.compile(r"[\[\]*_`~<\\&!]")
_TAGS = {"strong_open": "strong", "em_open": "em", "s_open": "s"}


def may_be_markup(source: str) -> bool:
    return _MAYBE_MARKUP.search(source) is not None


def has_markup_characters(document: str) -> bool:
    """Whether a whole document has any character that may start inline Markdown;
    one memchr-speed scan per character, several times faster than the regex on 1 MB."""
    return any(char in document for char in "[]*_`~<\\&!")


def runs(source: str) -> list[Run]:
    """The text of a block's inline Markdown in runs of one style each."""
    if not _MAYBE_MARKUP.search(source):
        return [(source, ())] if source else []
    out: list[Run] = []
    stack: list[str] = []

    def add(text: str, style: Style) -> None:
        if not text:
            return
        if out and out[-1][1] == style:
            out[-1] = (out[-1][0] + text, style)
        else:
            out.append((text, style))

    for token in inline_tokens(source):
        kind = token.type
        if kind in ("text", "text_special", "html_inline"):
            add(token.content, tuple(stack))
        elif kind == "code_inline":
            add(token.content, (*stack, "code"))
        elif kind in ("softbreak", "hardbreak"):
            add("\n", tuple(stack))
        elif kind == "image":
            # Images are shown as their alt text, as in the rendered document.
            add("".join(child.content for child in token.children or []), tuple(stack))
        elif kind == "link_open":
            stack.append(f"a {token.attrs.get('href', '')}")
        elif kind in _TAGS:
            stack.append(_TAGS[kind])
        elif kind.endswith("_close") and stack:
            stack.pop()
    return out


def plain(block_runs: list[Run]) -> str:
    return "".join(text for text, _ in block_runs)


# ---------------------------------------------------------------------------
# Escaping, and markers for what a reader cannot see.


def esc(text: str) -> str:
    # html.escape(text, quote=False), several times faster on the usual text that needs
    # no escaping: "in" scans with memchr, str.replace with a slower counting loop.
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


# Characters a reader cannot see, or cannot tell from a space: format characters
# (bidirectional controls such as U+202E, zero-width spaces, soft hyphens),
# spaces other than U+0020 (no-break spaces), other controls, line and paragraph
# separators. Within a change each is shown as a labelled marker instead: a bidi
# override would otherwise reorder the redline itself, and a change made of one
# would look like no change. Letters of another script that look like Latin ones
# (Cyrillic "\u0421" for "C") keep their place and get a label. This pattern finds the
# candidates; str.isprintable is false for exactly the invisible ones (and for
# unassigned and private-use code points).
_MAYBE_INVISIBLE = re.compile(r"[^\t\n -~]")

# Letters that look like a Latin letter: Cyrillic and Greek capitals and small
# letters drawn alike in common fonts, and the fullwidth forms.
_LOOKALIKES = {
    **dict(zip((
        "\u0410\u0412\u0415\u0405\u0406\u0408\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423"
        "\u0430\u0435\u0456\u0458\u043e\u0455\u0440\u0441\u0445\u0443\u0501\u04bb\u051b\u051d"
    ), "ABESIJKMHOPCTXYaeijospcxydhqw", strict=True)),
    **dict(zip((
        "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
        "\u039f\u03a1\u03a4\u03a5\u03a7\u03bf\u03bd\u03b1\u03c1"
    ), "ABEZHIKMNOPTYXovap", strict=True)),
}


def _marker(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "") or _UNNAMED.get(unicodedata.category(char), "control character")
    return f'<span class="invisible-char" title="{code} {name}">\u27e8{code}\u27e9</span>'


def _lookalike(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    script = name.split(" ", 1)[0].capitalize()
    latin = _LOOKALIKES[char]
    return (
        f'<span class="lookalike" title="{code} {name}, not the Latin letter {latin}">{char}'
        f'<span class="lookalike-note">\u27e8{script}, not Latin {latin}\u27e9</span></span>'
    )


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _LOOKALIKES:
        return _lookalike(char)
    return char if char.isprintable() else _marker(char)


_UNNAMED = {"Co": "private-use character", "Cn": "unassigned code point", "Cs": "surrogate"}


def changed(text: str, *, part: bool = False) -> str:
    """Escaped text of a change, with its invisible and look-alike characters labelled.

    A change of whitespace only is all markers, plain spaces too (line breaks
    excepted): a space replaced by a no-break space must show both. A ``part`` of a
    change (a run of one formatting) is not a change of its own.
    """
    if text.isspace() and not part:
        return "".join("\n" if char == "\n" else _marker(char) for char in text)
    if text.isascii() or (text.isprintable() and not any(char in _LOOKALIKES for char in text)):
        return esc(text)
    return _MAYBE_INVISIBLE.sub(_visible, esc(text))


# ---------------------------------------------------------------------------
# Styled HTML.

_NAMES = {"strong": "bold", "em": "italic", "code": "code", "s": "struck through"}


def styled(inner: str, style: Style) -> str:
    for part in reversed(style):
        if part.startswith("a "):
            href = html.escape(part[2:])
            inner = f'<a href="{href}" rel="noopener noreferrer">{inner}</a>'
        else:
            inner = f"<{part}>{inner}</{part}>"
    return inner


def _link(style: Style) -> str | None:
    return next((part[2:] for part in style if part.startswith("a ")), None)


def format_label(old: Style, new: Style) -> str:
    """What a change of formatting alone did, in a few words: "now bold", "link changed to …"."""
    parts = []
    for tag, name in _NAMES.items():
        if tag in new and tag not in old:
            parts.append(f"now {name}")
        elif tag in old and tag not in new:
            parts.append(f"no longer {name}")
    old_link, new_link = _link(old), _link(new)
    if old_link != new_link:
        if old_link is None:
            parts.append(f"now a link to {new_link}")
        elif new_link is None:
            parts.append(f"no longer a link to {old_link}")
        else:
            parts.append(f"link changed to {new_link}")
    return ", ".join(parts) or "formatting changed"


class _Spans:
    """Where each style of a run list starts and ends, for slicing by text position."""

    def __init__(self, block_runs: list[Run]) -> None:
        self.starts: list[int] = []
        self.styles: list[Style] = []
        position = 0
        for text, style in block_runs:
            self.starts.append(position)
            self.styles.append(style)
            position += len(text)
        self.end = position

    def style_at(self, position: int) -> Style:
        return self.styles[bisect_right(self.starts, position) - 1] if self.starts else ()

    def cuts(self, start: int, stop: int) -> list[int]:
        """Positions strictly between start and stop where the style changes, relative to start."""
        k = bisect_right(self.starts, start)
        out = []
        while k < len(self.starts) and self.starts[k] < stop:
            out.append(self.starts[k] - start)
            k += 1
        return out


def render_runs(block_runs: list[Run]) -> str:
    return "".join(styled(esc(text), style) for text, style in block_runs)


def render_runs_as(block_runs: list[Run], tag: str, css: str = "") -> str:
    """Every run inside ``tag`` (del or ins), its characters a reader cannot see labelled."""
    attr = f' class="{css}"' if css else ""
    part = len(block_runs) > 1
    return "".join(
        f"<{tag}{attr}>{styled(changed(text, part=part), style)}</{tag}>"
        for text, style in block_runs
        if text
    )


# An inline comparison rendered: the old side, the new side, both in one (the
# redline), and the words deleted and inserted.
Marked = tuple[str, str, str, int, int]


def count_words(text: str) -> int:
    # Words as git's word diff counts them: runs of characters other than whitespace.
    return len(text.split())


def marked(old_runs: list[Run], new_runs: list[Run], regions: list[Region] | None) -> Marked:
    """Word marks of ``regions`` (of the runs' plain texts) drawn on the styled runs.

    None for regions means the change was too costly to mark word by word: all the
    old text is shown deleted, all the new text inserted.
    """
    if regions is None:
        deleted, inserted = render_runs_as(old_runs, "del"), render_runs_as(new_runs, "ins")
        return (deleted, inserted, deleted + inserted,
                count_words(plain(old_runs)), count_words(plain(new_runs)))
    if all(not style for _, style in old_runs) and all(not style for _, style in new_runs):
        return marked_unstyled(regions)
    old_spans, new_spans = _Spans(old_runs), _Spans(new_runs)
    old_text, new_text = plain(old_runs), plain(new_runs)
    old_parts: list[str] = []
    new_parts: list[str] = []
    both: list[str] = []
    words_deleted = words_inserted = 0
    i = j = 0
    for region in regions:
        if isinstance(region, str):
            _equal(region, i, j, old_spans, new_spans, old_parts, new_parts, both)
            i += len(region)
            j += len(region)
            continue
        deleted_text, inserted_text = region
        deleted = _slice(old_text, old_spans, i, i + len(deleted_text), "del")
        inserted = _slice(new_text, new_spans, j, j + len(inserted_text), "ins")
        old_parts.append(deleted)
        new_parts.append(inserted)
        both.append(deleted + inserted)
        words_deleted += count_words(deleted_text)
        words_inserted += count_words(inserted_text)
        i += len(deleted_text)
        j += len(inserted_text)
    return "".join(old_parts), "".join(new_parts), "".join(both), words_deleted, words_inserted


def marked_unstyled(regions: list[Region]) -> Marked:
    """Word marks on text without formatting, most blocks of most documents: one pass."""
    old_parts: list[str] = []
    new_parts: list[str] = []
    both: list[str] = []
    deleted_texts: list[str] = []
    inserted_texts: list[str] = []
    for region in regions:
        if isinstance(region, str):
            text = esc(region)
            old_parts.append(text)
            new_parts.append(text)
            both.append(text)
            continue
        deleted = f"<del>{changed(region[0])}</del>" if region[0] else ""
        inserted = f"<ins>{changed(region[1])}</ins>" if region[1] else ""
        deleted_texts.append(region[0])
        inserted_texts.append(region[1])
        old_parts.append(deleted)
        new_parts.append(inserted)
        both.append(deleted + inserted)
    return ("".join(old_parts), "".join(new_parts), "".join(both),
            count_words(" ".join(deleted_texts)), count_words(" ".join(inserted_texts)))


def _slice(text: str, spans: _Spans, start: int, stop: int, tag: str) -> str:
    if start == stop:
        return ""
    cuts = [0, *spans.cuts(start, stop), stop - start]
    part = len(cuts) > 2 and not text[start:stop].isspace()
    return "".join(
        f"<{tag}>{styled(changed(text[start + a : start + b], part=part), spans.style_at(start + a))}</{tag}>"
        for a, b in pairwise(cuts)
        if b > a
    )


def _equal(
    text: str,
    i: int,
    j: int,
    old_spans: _Spans,
    new_spans: _Spans,
    old_parts: list[str],
    new_parts: list[str],
    both: list[str],
) -> None:
    """An unchanged stretch, cut where either side's style changes; a stretch whose
    formatting changed shows the new formatting with a label saying how."""
    cuts = sorted({0, len(text), *old_spans.cuts(i, i + len(text)), *new_spans.cuts(j, j + len(text))})
    for a, b in pairwise(cuts):
        piece = esc(text[a:b])
        old_style, new_style = old_spans.style_at(i + a), new_spans.style_at(j + a)
        if old_style == new_style:
            out = styled(piece, old_style)
            old_parts.append(out)
            new_parts.append(out)
            both.append(out)
            continue
        label = esc(format_label(old_style, new_style))
        new = (
            f'<span class="format-change">{styled(piece, new_style)}'
            f'<span class="format-note">\u27e8{label}\u27e9</span></span>'
        )
        old_parts.append(f'<span class="format-change">{styled(piece, old_style)}</span>')
        new_parts.append(new)
        both.append(new)


# ---------------------------------------------------------------------------
# Tables: cells of Markdown's pipe tables.

_DELIMITER_CELL = re.compile(r":?-+:?")
_PIPE = re.compile(r"(?<!\\)\|")


def table_cells(source: str) -> list[list[str]] | None:
    """A pipe table's rows of cell sources, header first and the delimiter row left
    out; None if ``source`` is not a table (then it reads as a paragraph)."""
    lines = source.split("\n")
    if len(lines) < 2:
        return None
    delimiter = _split_row(lines[1])
    if not delimiter or not all(_DELIMITER_CELL.fullmatch(cell) for cell in delimiter):
        return None
    return [_split_row(line) for line in (lines[0], *lines[2:]) if line.strip()]


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _PIPE.split(line)]


def row_key(cells: list[str]) -> str:
    return " | ".join(cells)


def table_html(rows: list[tuple[str, list[str]]], css: str = "") -> str:
    """A table of rendered rows, (state, cells' HTML), the first one the header."""
    if not rows:
        return ""
    attr = f' class="{css}"' if css else ""
    head_state, head = rows[0]
    out = [
        '<div class="table-scroll" role="region" aria-label="Table" tabindex="0">',
        f"<table{attr}><thead>{_tr(head_state, head, 'th')}</thead><tbody>",
    ]
    out.extend(_tr(state, cells, "td") for state, cells in rows[1:])
    out.append("</tbody></table></div>")
    return "".join(out)


def _tr(state: str, cells: list[str], tag: str) -> str:
    attr = f' class="{state}"' if state else ""
    scope = ' scope="col"' if tag == "th" else ""
    return f"<tr{attr}>" + "".join(f"<{tag}{scope}>{cell}</{tag}>" for cell in cells) + "</tr>"
