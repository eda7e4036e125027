"""Tests for Markdown rendering, heading anchors, plain text and HTML sanitising."""

from __future__ import annotations

import re
import unicodedata
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain.markdown import (
    MAX_BLOCKS,
    MAX_CHARACTERS,
    MAX_HEADINGS,
    MAX_LINES,
    MAX_MARKUP,
    MAX_SYMBOLS,
    DocumentTooLarge,
    Heading,
    HeadingAnchors,
    check_limits,
    plain_text,
    render_markdown,
    sanitize_html,
    slugify_heading,
)

# --- An independent checker for rendered HTML -----------------------------

# Deliberately written out here rather than imported: the tests must not trust
# the module's own allow-list.
EXPECTED_TAGS = {
    "a", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}
EXPECTED_ATTRIBUTES = {
    "a": {"href", "title", "rel", "class", "aria-label"},
    "ol": {"start"},
    "div": {"class", "role", "aria-label", "tabindex"},
    "th": {"class"},
    "td": {"class"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
}
FORBIDDEN_TAGS = {
    "script", "style", "iframe", "object", "embed", "svg", "math", "img",
    "frame", "frameset", "applet", "base", "link", "meta", "form", "input",
    "button", "template", "noscript", "video", "audio", "source",
}
FORBIDDEN_ATTRIBUTES = {"style", "srcdoc", "formaction", "xlink:href", "background"}
URL_ATTRIBUTES = {
    "href", "src", "action", "formaction", "xlink:href", "background",
    "data", "poster", "lowsrc", "dynsrc", "cite",
}
DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:")


def _without_invisibles(value: str) -> str:
    return "".join(ch for ch in value if not ch.isspace() and unicodedata.category(ch)[0] != "C")


def has_dangerous_scheme(url: str) -> bool:
    """Whether any plausible decoding of ``url`` starts with a script-capable scheme."""
    unescaped = unescape(url)
    candidates = (url, unescaped, unquote(unescaped))
    return any(
        _without_invisibles(candidate).lower().startswith(DANGEROUS_SCHEMES)
        for candidate in candidates
    )


class _XssChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"forbidden element <{tag}>")
        if tag not in EXPECTED_TAGS:
            self.problems.append(f"unexpected element <{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name in FORBIDDEN_ATTRIBUTES:
                self.problems.append(f"forbidden attribute {name} on <{tag}>")
            if name not in EXPECTED_ATTRIBUTES.get(tag, set()):
                self.problems.append(f"unexpected attribute {name} on <{tag}>")
            if name in URL_ATTRIBUTES and has_dangerous_scheme(value or ""):
                self.problems.append(f"dangerous URL {name}={value!r} on <{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"unknown declaration {data!r}")


def xss_problems(html: str) -> list[str]:
    checker = _XssChecker()
    checker.feed(html)
    checker.close()
    return checker.problems


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Elements:
    parsed = _Elements()
    parsed.feed(html)
    parsed.close()
    return parsed


def elements(html: str, tag: str) -> list[dict[str, str | None]]:
    return [attrs for found, attrs in parse(html).found if found == tag]


def visible_text(html: str) -> str:
    return "".join(parse(html).text).strip()


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>",
        '<p onclick="x">a</p>',
        '<a href="jav&#x09;ascript:alert(1)">a</a>',
        '<a href=" JAVA\x01SCRIPT:alert(1)">a</a>',
        '<a href="javascript%3Aalert(1)">a</a>',
        '<a href="data:text/html,x">a</a>',
        '<p style="color:red">a</p>',
        "<img src=x>",
        "<!-- x -->",
    ],
)
def test_checker_flags_unsafe_html(html: str) -> None:
    assert xss_problems(html)


def test_checker_accepts_safe_html() -> None:
    html = (
        '<h2 id="a">A <a class="anchor" href="#a" aria-label="Link" rel="noopener">#</a></h2>'
        '<p><a href="https://example.com/?q=javascript:x">javascript:alert(1)</a></p>'
    )
    assert xss_problems(html) == []


# --- XSS corpus --------------------------------------------------------------

_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|([tnr0\\]))")
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "\\": "\\"}


def _decode_escapes(line: str) -> str:
    def replace(match: re.Match[str]) -> str:
        hex_code = match.group(1) or match.group(2)
        return chr(int(hex_code, 16)) if hex_code else _SIMPLE_ESCAPES[match.group(3)]

    return _ESCAPE.sub(replace, line)


def load_payloads() -> list[str]:
    lines = (Path(__file__).with_name("xss_payloads.txt")).read_text("utf-8").splitlines()
    return [
        _decode_escapes(line) for line in lines if line.strip() and not line.startswith("#")
    ]


PAYLOADS = load_payloads()

EMBEDDINGS = {
    "alone": "@@",
    "link destination": "[click](@@)",
    "link destination in brackets": "[click](<@@>)",
    "link text": "[@@](https://example.com)",
    "image source": "![alt](@@)",
    "image alt": "![@@](https://example.com/x.png)",
    "autolink": "<@@>",
    "reference definition": "[click][ref]\n\n[ref]: @@",
    "heading": "## @@",
    "custom anchor": "## Title {#@@}",
    "table cell": "| h |\n|---|\n| @@ |",
    "nested quote and list": "> - > @@",
}


def test_corpus_is_substantial_and_decoded() -> None:
    assert len(PAYLOADS) >= 60
    assert len(set(PAYLOADS)) == len(PAYLOADS)
    assert "jav\tascript:alert(1)" in PAYLOADS
    assert any(payload.startswith("# heading") for payload in PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_harmless_in_every_markdown_context(payload: str) -> None:
    problems = {
        name: xss_problems(render_markdown(template.replace("@@", payload)).html)
        for name, template in EMBEDDINGS.items()
    }
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_harmless_as_raw_html_through_sanitizer(payload: str) -> None:
    assert xss_problems(sanitize_html(payload)) == []


def test_raw_html_in_markdown_is_shown_as_text() -> None:
    html = render_markdown("Hello <script>alert(1)</script> <b>bold</b>").html
    assert "&lt;script&gt;" in html
    assert visible_text(html) == "Hello <script>alert(1)</script> <b>bold</b>"
    assert elements(html, "b") == []


# --- Property-based ----------------------------------------------------------

MARKDOWN_FRAGMENTS = [
    "#", "## ", "\n", "\n\n", "[", "]", "(", ")", "<", ">", "!", "*", "_", "`",
    "```", "~~", "|", "---", "> ", "- ", "1. ", "{#", "}", "\\", "&#x09;",
    "&colon;", "javascript:", "JaVaScRiPt:", "vbscript:", "data:", "https://x.y",
    "mailto:a@b.c", "\t", "\0", "\x01", "%3A", '"', "'", "onerror=", "<img ",
    "<svg onload=alert(1)>", "[r]: ",
]
markdownish = st.lists(
    st.one_of(st.sampled_from(MARKDOWN_FRAGMENTS), st.text(max_size=4)), max_size=16
).map("".join)


@settings(database=None, deadline=None, max_examples=300)
@given(st.one_of(st.text(), markdownish))
def test_rendering_arbitrary_text_never_raises_and_stays_safe(source: str) -> None:
    rendered = render_markdown(source)
    assert xss_problems(rendered.html) == []
    anchors = [heading.anchor for heading in rendered.headings]
    assert len(set(anchors)) == len(anchors)
    ids = [attrs["id"] for _, attrs in parse(rendered.html).found if "id" in attrs]
    assert ids == anchors


@settings(database=None, deadline=None)
@given(st.one_of(st.text(), markdownish))
def test_plain_text_of_arbitrary_text_is_one_collapsed_block_per_line(source: str) -> None:
    text = plain_text(source)
    lines = text.split("\n") if text else []
    assert all(line and line == " ".join(line.split()) for line in lines)


@settings(database=None, deadline=None)
@given(st.text())
def test_slug_follows_the_rule_for_any_text(text: str) -> None:
    slug = slugify_heading(text)
    assert slug
    assert not slug.startswith("-") and not slug.endswith("-")
    assert "--" not in slug
    assert all(ch == "-" or ch.isalpha() or ch.isdecimal() for ch in slug)
    assert slugify_heading(slug) == slug


# --- Slugs and anchors -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Wer wir sind?", "wer-wir-sind"),
        ("Übermittlung in Drittländer", "übermittlung-in-drittländer"),
        ("U\u0308bermittlung", "übermittlung"),
        ("Art. 28 DSGVO", "art-28-dsgvo"),
        ("  --Hello,   World!--  ", "hello-world"),
        ("snake_case & kebab-case", "snake-case-kebab-case"),
        ("数据 传输", "数据-传输"),
        ("Ελληνικά", "ελληνικά"),
        ("", "section"),
        ("?!", "section"),
    ],
)
def test_slugify_heading(text: str, slug: str) -> None:
    assert slugify_heading(text) == slug


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["a"], ["a"]),
        (["a", "a"], ["a", "a-2"]),
        (["a", "a", "a"], ["a", "a-2", "a-3"]),
        (["a-2", "a", "a"], ["a-2", "a", "a-3"]),
        (["a", "a", "a-2", "a"], ["a", "a-2", "a-2-2", "a-3"]),
        (["a-1", "a", "a"], ["a-1", "a", "a-2"]),
    ],
)
def test_heading_anchors_take_the_first_free_number(texts: list[str], expected: list[str]) -> None:
    anchors = HeadingAnchors()
    assert [anchors.anchor(text) for text in texts] == expected


def first_free(texts: list[str]) -> list[str]:
    """The rule as first written: try anchor, anchor-2, anchor-3... from the start each time."""
    taken: set[str] = set()
    out = []
    for text in texts:
        base = slugify_heading(text)
        candidate, number = base, 1
        while candidate in taken:
            number += 1
            candidate = f"{base}-{number}"
        taken.add(candidate)
        out.append(candidate)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "a-2", "a-3", "a-2-2", "b", "a-1", "a-10"]), max_size=30))
def test_heading_anchors_agree_with_the_first_free_rule(texts: list[str]) -> None:
    anchors = HeadingAnchors()
    assert [anchors.anchor(text) for text in texts] == first_free(texts)


def test_twenty_thousand_repeated_headings_get_distinct_anchors() -> None:
    source = "## Scope\n\n" * 10_000 + "".join(f"## Scope {k}\n\n" for k in range(2, 10_002))
    anchors = [heading.anchor for heading in render_markdown(source).headings]
    assert len(anchors) == 20_000
    assert len(set(anchors)) == 20_000
    # The real headings "Scope 2"... came later, so they give way to the repeats.
    assert anchors[:3] == ["scope", "scope-2", "scope-3"]
    assert anchors[10_000:10_002] == ["scope-2-2", "scope-3-2"]


# --- Limits ------------------------------------------------------------------


def padded(text: str, size: int) -> str:
    """``text``, then plain words up to ``size`` characters."""
    return text + ("\n\n" + "word " * size)[: size - len(text)]


@pytest.mark.parametrize(
    ("limit", "at_the_limit", "over_the_limit", "message"),
    [
        (
            "characters",
            "x" * MAX_CHARACTERS,
            "x" * (MAX_CHARACTERS + 1),
            "The document has 500,001 characters; the limit is 500,000. Split it into several documents.",
        ),
        (
            "lines",
            "line\n" * MAX_LINES + "\n \n\t\n\n",
            "line\n" * MAX_LINES + "one more",
            "The document has 10,001 lines of text; the limit is 10,000.",
        ),
        (
            "markup",
            "**a** " * (MAX_MARKUP // 2),
            "**a** " * (MAX_MARKUP // 2) + "[",
            "The document has 15,001 pieces of inline markup (runs of * _ ` ~, and each [ ] < \\ & !);"
            " the limit is 15,000.",
        ),
        (
            "symbols",
            "a-" * MAX_SYMBOLS,
            "a-" * MAX_SYMBOLS + ":",
            "The document has 50,001 symbol characters (- : # $ % + = > @ ^ { }); the limit is 50,000.",
        ),
        (
            "headings",
            "# Scope\n" * MAX_HEADINGS,
            "# Scope\n" * MAX_HEADINGS + "Setext\n===",
            "The document has 2,001 headings; the limit is 2,000.",
        ),
        (
            "blocks",
            "Clause.\n\n" * MAX_BLOCKS,
            "Clause.\n\n" * (MAX_BLOCKS - 1) + "| a | b |\n|---|---|\n",
            "The document has 5,001 blocks (paragraphs, headings, list items, table cells,",
        ),
        (
            "blocks",
            "".join(f"[{k}]: /u\n" for k in range(MAX_BLOCKS // 2)) + "Clause.\n\n" * (MAX_BLOCKS // 2),
            "".join(f"[{k}]: /u\n" for k in range(MAX_BLOCKS // 2 + 1)) + "Clause.\n\n" * (MAX_BLOCKS // 2),
            "code blocks, rules and link definitions); the limit is 5,000.",
        ),
    ],
)
def test_check_limits_names_the_limit_a_document_exceeds(
    limit: str, at_the_limit: str, over_the_limit: str, message: str
) -> None:
    check_limits(at_the_limit)
    with pytest.raises(DocumentTooLarge) as raised:
        check_limits(over_the_limit)
    assert raised.value.limit == limit
    assert raised.value.actual == raised.value.maximum + 1
    assert message in str(raised.value)


def test_check_limits_accepts_a_long_legal_document() -> None:
    sentence = (
        "The Processor shall notify the Customer of any new **Sub-processor** at least thirty (30) "
        "days in advance, as described in [Annex III](#annex-iii), naming the entity and its location. "
    )
    clause = (
        "## 4. Sub-processors\n\n" + sentence * 3 + "\n\n"
        "- hosting and storage;\n- payment processing;\n- customer support.\n\n"
    )
    source = clause * (MAX_CHARACTERS // len(clause))
    check_limits(source)
    assert len(render_markdown(source).headings) == MAX_CHARACTERS // len(clause)


def test_headings_inside_code_are_not_counted() -> None:
    check_limits("```\n" + "# comment\n" * (MAX_HEADINGS + 1) + "```\n")


# --- Headings ----------------------------------------------------------------


def test_heading_gets_anchor_and_accessible_self_link() -> None:
    rendered = render_markdown("# Wer wir sind?")
    assert rendered.headings == (Heading(level=1, text="Wer wir sind?", anchor="wer-wir-sind"),)
    assert elements(rendered.html, "h1") == [{"id": "wer-wir-sind"}]
    (self_link,) = elements(rendered.html, "a")
    assert self_link["href"] == "#wer-wir-sind"
    assert self_link["class"] == "anchor"
    assert self_link["aria-label"] == "Link to section: Wer wir sind?"


def test_unicode_heading_anchor() -> None:
    rendered = render_markdown("## Übermittlung in Drittländer")
    assert rendered.headings == (
        Heading(level=2, text="Übermittlung in Drittländer", anchor="übermittlung-in-drittländer"),
    )
    assert elements(rendered.html, "h2") == [{"id": "übermittlung-in-drittländer"}]


def test_duplicate_headings_get_numbered_anchors_in_document_order() -> None:
    rendered = render_markdown("# Scope\n\n## Scope\n\n### Scope 2\n\n#### Scope")
    assert [h.anchor for h in rendered.headings] == ["scope", "scope-2", "scope-2-2", "scope-3"]
    assert [h.level for h in rendered.headings] == [1, 2, 3, 4]


def test_custom_anchor_replaces_slug_and_is_hidden() -> None:
    rendered = render_markdown("## International transfers {#Intl_Transfers!}")
    assert rendered.headings == (
        Heading(level=2, text="International transfers", anchor="intl-transfers"),
    )
    assert "{#" not in rendered.html
    assert elements(rendered.html, "h2") == [{"id": "intl-transfers"}]


def test_custom_anchor_is_sanitised_to_ascii_and_deduplicated() -> None:
    rendered = render_markdown("# Intro\n\n## Other {#INTRO}\n\n## Ölfeld {#Öl Feld!}")
    assert [h.anchor for h in rendered.headings] == ["intro", "intro-2", "ol-feld"]


@pytest.mark.parametrize(
    ("marker", "anchor"),
    [
        ('{#x" onmouseover="alert(1)}', "x-onmouseover-alert-1"),
        ("{#../../Über uns}", "uber-uns"),
        ("{#--a__b--}", "a-b"),
    ],
)
def test_custom_anchor_keeps_only_lowercase_ascii_digits_and_hyphens(
    marker: str, anchor: str
) -> None:
    rendered = render_markdown(f"## Title {marker}")
    assert rendered.headings == (Heading(level=2, text="Title", anchor=anchor),)
    assert elements(rendered.html, "h2") == [{"id": anchor}]


def test_custom_anchor_that_sanitises_to_nothing_falls_back_to_slug() -> None:
    rendered = render_markdown("## Übersicht {#数据}")
    assert rendered.headings == (Heading(level=2, text="Übersicht", anchor="übersicht"),)


def test_escaped_custom_anchor_stays_visible() -> None:
    rendered = render_markdown("## Syntax \\{#x}")
    assert rendered.headings == (Heading(level=2, text="Syntax {#x}", anchor="syntax-x"),)


def test_heading_text_drops_inline_markup() -> None:
    rendered = render_markdown("Setext *with* `code`\n---")
    assert rendered.headings == (
        Heading(level=2, text="Setext with code", anchor="setext-with-code"),
    )
    assert elements(rendered.html, "em") == [{}]


def test_empty_heading_anchor_is_section() -> None:
    rendered = render_markdown("#\n\n# ???")
    assert [h.anchor for h in rendered.headings] == ["section", "section-2"]


# --- Blocks, links and images ------------------------------------------------


def test_table_renders_with_alignment_classes_not_styles() -> None:
    html = render_markdown("| Name | Country |\n|:-----|-------:|\n| Acme | DE |").html
    assert elements(html, "th") == [{"class": "align-left"}, {"class": "align-right"}]
    assert elements(html, "td") == [{"class": "align-left"}, {"class": "align-right"}]
    assert len(elements(html, "table")) == 1
    assert "Acme" in visible_text(html)


def test_lists_render() -> None:
    html = render_markdown("- one\n- two\n\n3. three\n4. four").html
    assert len(elements(html, "ul")) == 1
    assert elements(html, "ol") == [{"start": "3"}]
    assert len(elements(html, "li")) == 4


def test_strikethrough_and_emphasis_render() -> None:
    html = render_markdown("~~old~~ **new** *now*").html
    assert html == "<p><s>old</s> <strong>new</strong> <em>now</em></p>\n"


def test_code_block_keeps_content_but_drops_language_class() -> None:
    html = render_markdown("```python\nif a < b:\n```").html
    assert elements(html, "code") == [{}]
    assert "if a &lt; b:" in html


def test_external_links_get_rel_noopener_noreferrer() -> None:
    html = render_markdown('[Acme](https://acme.example/privacy "Privacy") <dpo@example.com>').html
    assert elements(html, "a") == [
        {"href": "https://acme.example/privacy", "title": "Privacy", "rel": "noopener noreferrer"},
        {"href": "mailto:dpo@example.com", "rel": "noopener noreferrer"},
    ]


def test_relative_and_fragment_links_survive() -> None:
    html = render_markdown("[v2](/documents/dpa/versions/2) [top](#scope) [up](../x?a=b:c)").html
    assert [a["href"] for a in elements(html, "a")] == [
        "/documents/dpa/versions/2",
        "#scope",
        "../x?a=b:c",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](ftp://example.com/file)",
        "[x](file:///etc/passwd)",
        "[x](tel:+49)",
        "<ftp://example.com>",
    ],
)
def test_links_with_other_schemes_are_left_as_text(source: str) -> None:
    html = render_markdown(source).html
    assert elements(html, "a") == []
    assert visible_text(html) == source


def test_images_are_replaced_by_their_alt_text() -> None:
    html = render_markdown("See ![the *data flow* diagram](https://example.com/flow.png).").html
    assert html == "<p>See the data flow diagram.</p>\n"


# --- sanitize_html ----------------------------------------------------------


def test_sanitize_html_keeps_allowed_markup() -> None:
    html = '<h2 id="scope">Scope</h2><p><strong>a</strong> <a href="https://x.example">b</a></p>'
    assert sanitize_html(html) == (
        '<h2 id="scope">Scope</h2><p><strong>a</strong> '
        '<a href="https://x.example" rel="noopener noreferrer">b</a></p>'
    )


def test_sanitize_html_removes_disallowed_tags_attributes_and_classes() -> None:
    html = (
        '<div class="x" style="color:red"><p id="p" onclick="x">t</p>'
        '<a class="anchor evil" href="#t" target="_blank" rel="opener">u</a>'
        "<script>alert(1)</script></div>"
    )
    # The table scroller's <div> is allowed; only its own class survives on it.
    assert sanitize_html(html) == (
        '<div class=""><p>t</p><a class="anchor" href="#t" rel="noopener noreferrer">u</a></div>'
    )


# --- plain_text ---------------------------------------------------------------


def test_plain_text_strips_markup_and_keeps_one_block_per_line() -> None:
    source = (
        "# Who we are {#about}\n\n"
        "We use **Acme** ([site](https://acme.example)) &amp; `tools`.\n"
        "Second line.\n\n"
        "- item ![logo](https://x/y.png)\n\n"
        "```\ncode   block\n```\n\n"
        "<b>raw</b>"
    )
    assert plain_text(source) == (
        "Who we are\n"
        "We use Acme (site) & tools. Second line.\n"
        "item logo\n"
        "code block\n"
        "<b>raw</b>"
    )


def test_plain_text_of_empty_source_is_empty() -> None:
    assert plain_text("") == ""
    assert plain_text("\n\n---\n") == ""


def test_tables_sit_in_a_focusable_scroll_region():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |").html
    assert html.startswith('<div class="table-scroll" role="region" aria-label="Table" tabindex="0">')
    assert html.rstrip().endswith("</table>\n</div>")


def test_authors_cannot_smuggle_a_div_through_the_sanitiser():
    html = sanitize_html('<div class="evil" onclick="x()" style="color:red">t</div>')
    assert "evil" not in html and "onclick" not in html and "style" not in html


class CountingSet(set):
    """A set that counts membership tests: the work of de-duplicating anchors."""

    probes = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.probes += 1
        return super().__contains__(item)


def test_repeated_headings_cost_a_constant_number_of_lookups_each(monkeypatch) -> None:
    # Trying anchor, anchor-2, anchor-3... from the start for every repeat made the n-th
    # repeat probe n - 1 taken anchors: 16,000 identical headings took 25 s to render.
    monkeypatch.setattr(CountingSet, "probes", 0)
    anchors = HeadingAnchors()
    anchors._taken = CountingSet()
    texts = [f"a {k}" for k in range(2, 2002)] + ["a"] * 2000 + ["b"] * 4000
    assert len({anchors.anchor(text) for text in texts}) == 8000
    # Each "a" skips at most the "a-k" headings taken before it, once in all.
    assert CountingSet.probes <= 2 * len(texts) + 2000
