"""Markdown rendering for legal documents: sanitised HTML, heading anchors and plain text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from html import unescape
from itertools import pairwise
from urllib.parse import unquote

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict


@dataclass(frozen=True)
class Heading:
    """A heading of a rendered document, as needed for a table of contents."""

    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Rendered:
    """Sanitised HTML of a document together with its headings in document order."""

    html: str
    headings: tuple[Heading, ...]


_ASCII_NON_SLUG = re.compile(r"[^a-z0-9]+")
_DASHES = re.compile(r"-{2,}")


def slugify_heading(text: str) -> str:
    """Return the anchor slug of a heading text.

    Lowercase; Unicode letters and decimal digits are kept, every other run of
    characters becomes a single "-"; leading and trailing "-" are stripped; an
    empty result becomes "section".
    """
    # NFC first so that a composed "Ü" and a decomposed "U" + diaeresis, which
    # look identical to the author, give the same anchor.
    lowered = unicodedata.normalize("NFC", text.lower())
    if lowered.isascii():  # the common case, and the redline slugs every heading of 1 MB texts
        slug = _ASCII_NON_SLUG.sub("-", lowered)
    else:
        slug = _DASHES.sub("-", "".join(c if c.isalpha() or c.isdecimal() else "-" for c in lowered))
    return slug.strip("-") or "section"


_CUSTOM_ID = re.compile(r"(?<!\\)\{#([^{}]*)\}\s*$")


def split_heading_id(text: str) -> tuple[str, str | None]:
    """A heading's text without a trailing ``{#custom-id}``, and that id made URL-safe.

    The id keeps ASCII letters and digits (accents dropped, lowercased), other
    runs becoming "-"; an id left empty counts as none.
    """
    match = _CUSTOM_ID.search(text) if text.rstrip().endswith("}") else None
    if match is None:
        return text, None
    # Decomposing first turns "Öl" into "ol" rather than "l".
    ascii_only = unicodedata.normalize("NFKD", match.group(1)).encode("ascii", "ignore").decode()
    custom_id = _ASCII_NON_SLUG.sub("-", ascii_only.lower()).strip("-")
    return text[: match.start()].rstrip(), custom_id or None


class HeadingAnchors:
    """Hands out the anchors of one document's headings, in document order.

    An explicit ``{#id}`` wins over the slug of the text; a repeat, explicit or
    not, becomes the first of ``anchor-2``, ``anchor-3``, ... not yet handed
    out. Document order matters: earlier sections keep their links when later
    sections are added.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()
        # The number each anchor's next repeat starts trying from. Without it, the
        # n-th repeat would try n - 1 taken candidates first: 16,000 identical
        # headings took 25 s. Every candidate below the number is taken for good, so
        # the result is still the first free one; a candidate is skipped only if
        # some other heading took it (a real heading "a-2"), at most once per anchor
        # that can produce it, which keeps the whole document linear.
        self._next: dict[str, int] = {}

    def anchor(self, text: str, custom_id: str | None = None) -> str:
        base = custom_id or slugify_heading(text)
        candidate, number = base, self._next.get(base, 1)
        if number > 1:
            candidate = f"{base}-{number}"
        while candidate in self._taken:
            number += 1
            candidate = f"{base}-{number}"
        self._next[base] = number + 1
        self._taken.add(candidate)
        return candidate


_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
# A scheme is whatever precedes the first ":" when no "/", "?" or "#" comes
# before it; a colon after one of those belongs to a relative URL.
_SCHEME = re.compile(r"[^:/?#]*:")


def _scheme_allowed(url: str) -> bool:
    match = _SCHEME.match(url)
    return match is None or match.group()[:-1].lower() in _ALLOWED_SCHEMES


def _deobfuscated(url: str) -> str:
    decoded = unquote(unescape(url))
    return "".join(ch for ch in decoded if not ch.isspace() and unicodedata.category(ch)[0] != "C")


def _is_safe_url(url: str) -> bool:
    # The raw form must carry an allowed scheme or none at all, which already
    # rejects "jav\tascript:" because a tab is not a scheme character. Checking
    # the de-obfuscated form as well keeps out URLs that only a lenient or
    # double-decoding consumer would read as javascript:, vbscript: or data:.
    return _scheme_allowed(url) and _scheme_allowed(_deobfuscated(url))


def _drop_unsafe_href(_tag: str, attribute: str, value: str) -> str | None:
    return None if attribute == "href" and not _is_safe_url(value) else value


_ALIGN_CLASSES = {f"text-align:{side}": f"align-{side}" for side in ("left", "center", "right")}
_HEADING_TAGS = frozenset(f"h{level}" for level in range(1, 7))

# Images are not rendered at all: every image on a legal page would make the
# reader's browser contact the image host, itself a data transfer to disclose.
_CLEANER = nh3.Cleaner(
    tags={
        "a", "blockquote", "br", "code", "div", "em", "hr", "li", "ol", "p", "pre", "s",
        "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", *_HEADING_TAGS,
    },
    clean_content_tags={"script", "style"},
    attributes={
        "a": {"href", "title", "aria-label"},
        "ol": {"start"},
        "div": {"role", "aria-label", "tabindex"},
        **{tag: {"id"} for tag in _HEADING_TAGS},
    },
    attribute_filter=_drop_unsafe_href,
    allowed_classes={
        "a": {"anchor"},
        "div": {"table-scroll"},
        "th": set(_ALIGN_CLASSES.values()),
        "td": set(_ALIGN_CLASSES.values()),
    },
    url_schemes=set(_ALLOWED_SCHEMES),
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def sanitize_html(html: str) -> str:
    """Reduce ``html`` to the tags, attributes and URL schemes the renderer emits."""
    return _CLEANER.clean(html)


def _inline_text(tokens: Sequence[Token]) -> str:
    parts: list[str] = []
    for token in tokens:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.type == "image":
            parts.append(_inline_text(token.children or []))
    return " ".join("".join(parts).split())


def _extract_custom_ids(state: StateCore) -> None:
    # Runs before inline parsing so that the marker is matched on the source
    # as written (an escaped "\{#" stays text) and never reaches the output.
    for opening, inline in pairwise(state.tokens):
        if opening.type != "heading_open":
            continue
        inline.content, opening.meta["custom_id"] = split_heading_id(inline.content)


def _assign_heading_anchors(state: StateCore) -> None:
    anchors = HeadingAnchors()
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = _inline_text(tokens[index + 1].children or [])
        anchor = anchors.anchor(text, token.meta.get("custom_id"))
        token.attrSet("id", anchor)
        heading = Heading(level=int(token.tag[1:]), text=text, anchor=anchor)
        token.meta["heading"] = tokens[index + 2].meta["heading"] = heading


def _align_with_classes(state: StateCore) -> None:
    # Table alignment arrives as a style attribute, which the sanitiser must
    # not let through; a fixed class keeps the author's alignment styleable.
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and token.attrs.get("style"):
            style = str(token.attrs.pop("style"))
            if style in _ALIGN_CLASSES:
                token.attrSet("class", _ALIGN_CLASSES[style])


def _render_heading_close(
    self: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    token = tokens[idx]
    heading: Heading = token.meta["heading"]
    label = f"Link to section: {heading.text}" if heading.text else "Link to this section"
    return (
        f' <a class="anchor" href="#{escapeHtml(heading.anchor)}"'
        f' aria-label="{escapeHtml(label)}">#</a></{token.tag}>\n'
    )


def _render_table_open(
    self: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    # Wide tables scroll sideways on small screens; a focusable region lets a keyboard scroll it.
    return '<div class="table-scroll" role="region" aria-label="Table" tabindex="0">\n<table>\n'


def _render_table_close(
    self: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    return "</table>\n</div>\n"


def _render_image_as_alt_text(
    self: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    return escapeHtml(_inline_text(tokens[idx].children or []))


class _LegalMarkdownIt(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return _is_safe_url(url)


def _build_parser() -> MarkdownIt:
    parser = _LegalMarkdownIt("commonmark", {"html": False, "linkify": False})
    parser.enable(["table", "strikethrough"])
    parser.core.ruler.after("block", "custom_heading_ids", _extract_custom_ids)
    parser.core.ruler.push("heading_anchors", _assign_heading_anchors)
    parser.core.ruler.push("table_alignment_classes", _align_with_classes)
    parser.add_render_rule("heading_close", _render_heading_close)
    parser.add_render_rule("image", _render_image_as_alt_text)
    parser.add_render_rule("table_open", _render_table_open)
    parser.add_render_rule("table_close", _render_table_close)
    return parser


_PARSER = _build_parser()


# The largest document the editor accepts. Within these, every input tried in
# bench/markdown_bench.py, CommonMark's known-slow shapes among them, renders and
# compares with a changed version in under 2 s; a real legal document is far
# inside all of them.
MAX_CHARACTERS = 500_000
MAX_LINES = 10_000
MAX_HEADINGS = 2_000
# Paragraphs, headings, list items, table cells, code blocks, rules and link
# reference definitions: what the parser and the comparison handle one by one.
MAX_BLOCKS = 5_000
# Pieces of inline markup: runs of * _ ` ~ (as "**" in "**bold**"), and each
# [ ] < \ & !. Each costs the parser a search for its partner, 30 to 150
# microseconds when there is none.
MAX_MARKUP = 15_000
_MARKUP = re.compile(r"\*+|_+|`+|~+|[\[\]<\\&!]")
# Other characters that stop the parser's fast scan of plain text, costing 5 to
# 15 microseconds each: dense hyphens and colons made headings render at 2 ms each.
MAX_SYMBOLS = 50_000
SYMBOL_CHARACTERS = "-:#$%+=>@^{}"

_BLOCK_OPENINGS = frozenset(
    {"paragraph_open", "heading_open", "th_open", "td_open", "fence", "code_block", "hr"}
)


class DocumentTooLarge(ValueError):
    """A document beyond one of the limits; ``limit`` names it: "characters", "lines",
    "markup", "symbols", "headings" or "blocks"."""

    def __init__(self, limit: str, actual: int, maximum: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.actual = actual
        self.maximum = maximum


def _too_large(limit: str, actual: int, maximum: int, what: str, advice: str) -> DocumentTooLarge:
    return DocumentTooLarge(
        limit, actual, maximum, f"The document has {actual:,} {what}; the limit is {maximum:,}. {advice}"
    )


def markup_count(source: str) -> int:
    """The pieces of inline markup in ``source``, as MAX_MARKUP counts them."""
    return sum(1 for _ in _MARKUP.finditer(source))


def check_limits(source: str) -> None:
    """Raise DocumentTooLarge for a document beyond the limits above.

    The cheap counts come first, so that a huge input is refused before any parsing.
    """
    split = "Split it into several documents."
    if len(source) > MAX_CHARACTERS:
        raise _too_large("characters", len(source), MAX_CHARACTERS, "characters", split)
    # Empty lines between blocks cost next to nothing; lines of text cost their breaks.
    lines = sum(1 for line in source.split("\n") if line and not line.isspace())
    if lines > MAX_LINES:
        raise _too_large(
            "lines", lines, MAX_LINES, "lines of text", "Join short lines or split it into several documents."
        )
    markup = markup_count(source)
    if markup > MAX_MARKUP:
        raise _too_large(
            "markup", markup, MAX_MARKUP,
            "pieces of inline markup (runs of * _ ` ~, and each [ ] < \\ & !)",
            "Use less emphasis and fewer links, or split it into several documents.",
        )
    symbols = sum(map(source.count, SYMBOL_CHARACTERS))
    if symbols > MAX_SYMBOLS:
        raise _too_large(
            "symbols", symbols, MAX_SYMBOLS, f"symbol characters ({' '.join(SYMBOL_CHARACTERS)})",
            "Split it into several documents.",
        )
    # The block structure only: a fifth of the time of a full rendering.
    env: EnvType = {}
    tokens: list[Token] = []
    _PARSER.block.parse(source, _PARSER, env, tokens)
    headings = sum(1 for token in tokens if token.type == "heading_open")
    if headings > MAX_HEADINGS:
        raise _too_large(
            "headings", headings, MAX_HEADINGS, "headings",
            "Use fewer headings or split it into several documents.",
        )
    blocks = sum(1 for token in tokens if token.type in _BLOCK_OPENINGS) + len(env.get("references", ()))
    if blocks > MAX_BLOCKS:
        raise _too_large(
            "blocks", blocks, MAX_BLOCKS,
            "blocks (paragraphs, headings, list items, table cells, code blocks, rules and link definitions)",
            split,
        )


def render_markdown(source: str) -> Rendered:
    """Render Markdown to sanitised HTML and collect its headings.

    Raw HTML in ``source`` is shown as text, links keep only http, https,
    mailto and relative URLs, and images are replaced by their alt text. A
    source taken from a user goes through check_limits first.
    """
    env: EnvType = {}
    tokens = _PARSER.parse(source, env)
    rendered = _PARSER.renderer.render(tokens, _PARSER.options, env)
    headings = tuple(token.meta["heading"] for token in tokens if token.type == "heading_open")
    return Rendered(html=sanitize_html(rendered), headings=headings)


def inline_tokens(source: str) -> list[Token]:
    """The inline tokens of one block's Markdown, read as the renderer reads them
    (links checked by the same rules), for the comparison to render formatting."""
    return _PARSER.parseInline(source)[0].children or []


def plain_text(source: str) -> str:
    """Return the text of ``source`` without markup, one block per line.

    Whitespace inside a block is collapsed. The result is not HTML-escaped.
    """
    blocks: list[str] = []
    for token in _PARSER.parse(source):
        if token.type == "inline":
            blocks.append(_inline_text(token.children or []))
        elif token.type in ("fence", "code_block"):
            blocks.append(" ".join(token.content.split()))
    return "\n".join(block for block in blocks if block)
