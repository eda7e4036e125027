"""The redline as it reads: formatting, tables, moves, look-alike letters, folds, and its guarantees."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.domain import redline
from registry.domain.diff import _BlockParser, _runs_of, compare
from tests.domain.test_diff import OUR_TAGS, tags_and_ids
from tests.domain.test_markdown import EMBEDDINGS, PAYLOADS, xss_problems

pytestmark = pytest.mark.filterwarnings("error")


# --- formatting ------------------------------------------------------------


def test_inline_formatting_is_rendered_not_shown_as_markdown():
    old = "We collect **Account data** and *usage data*, see [our DPA](https://example.com/dpa).\n"
    new = old.replace("usage data", "device data")
    html = compare(old, new).redline_html
    assert "**" not in html and "[our DPA]" not in html
    assert "<strong>Account data</strong>" in html
    assert "<del><em>usage</em></del><ins><em>device</em></ins><em> data</em>" in html
    assert '<a href="https://example.com/dpa" rel="noopener noreferrer">our DPA</a>' in html


@pytest.mark.parametrize(
    ("old", "new", "label"),
    [
        ("Keep the Account data safe.", "Keep the **Account data** safe.", "now bold"),
        ("Keep the **Account data** safe.", "Keep the Account data safe.", "no longer bold"),
        ("Keep the data safe.", "Keep the *data* safe.", "now italic"),
        ("Run the `sync` job.", "Run the sync job.", "no longer code"),
        ("See [terms](https://a.example/t).", "See [terms](https://b.example/t).",
         "link changed to https://b.example/t"),
        ("See terms.", "See [terms](https://b.example/t).", "now a link to https://b.example/t"),
    ],
)
def test_a_markup_only_change_is_a_labelled_format_change(old, new, label):
    result = compare(old + "\n", new + "\n")
    assert result.blocks_changed == 1
    assert (result.words_inserted, result.words_deleted) == (0, 0)
    for html in (result.redline_html, result.side_by_side_html):
        assert f'<span class="format-note">\u27e8{label}\u27e9</span>' in html
        assert "<del>" not in html and "<ins>" not in html


def test_a_space_between_formatted_words_of_a_change_is_no_whitespace_change():
    html = compare("We collect names.\n", "We collect **full** names.\n").redline_html
    assert "<ins><strong>full</strong></ins><ins> </ins>names." in html
    deleted = compare("Intro.\n\n**A** **B** gone.\n", "Intro.\n").redline_html
    assert "invisible-char" not in deleted
    # A space alone, replaced, is still shown as markers.
    assert "invisible-char" in compare("a **b** c\n", "a **b**\u00a0c\n").redline_html


def test_format_labels_combine():
    assert redline.format_label(("strong",), ("em", "a https://x.example")) == (
        "no longer bold, now italic, now a link to https://x.example"
    )


def test_lists_read_as_lists_with_their_numbers():
    old = "Intro.\n\n- Hosting\n- Payments\n\n3. Third\n4. Fourth\n"
    new = "Intro.\n\n- Hosting\n- **Payments** and billing\n\n3. Third\n4. Fourth\n"
    html = compare(old, new, context_blocks=5).redline_html
    assert (
        '<ul class="items">\n<li>Hosting</li>\n<li class="changed"><span class="format-change">'
        '<strong>Payments</strong><span class="format-note">\u27e8now bold\u27e9</span></span>'
        "<ins> and billing</ins></li>\n</ul>"
    ) in html
    assert '<ol class="items">\n<li value="3">Third</li>\n<li value="4">Fourth</li>\n</ol>' in html


# --- tables ----------------------------------------------------------------

TABLE = """| Purpose | Data | Legal basis |
|---|---|---|
| Providing the Service | Account data | Contract |
| Support | Support messages | Contract |
| Marketing | Email address | Consent |
"""


def test_a_table_reads_as_a_table_with_inserted_deleted_and_changed_rows():
    new = (
        TABLE.replace("| Support | Support messages | Contract |\n", "")
        .replace("Email address | Consent", "Email address, name | Consent")
        + "| Security | Log data | Legitimate interest |\n"
    )
    result = compare(TABLE, new)
    html = result.redline_html
    assert "|---|" not in html and "| Purpose" not in html
    assert '<th scope="col">Purpose</th>' in html
    assert '<tr><td>Providing the Service</td><td>Account data</td><td>Contract</td></tr>' in html
    assert (
        '<tr class="deleted"><td><del>Support</del></td><td><del>Support messages</del></td>'
        "<td><del>Contract</del></td></tr>"
    ) in html
    assert '<tr class="changed"><td>Marketing</td><td>Email address<ins>, name</ins></td>' in html
    assert (
        '<tr class="inserted"><td><ins>Security</ins></td><td><ins>Log data</ins></td>'
        "<td><ins>Legitimate interest</ins></td></tr>"
    ) in html
    assert (result.words_deleted, result.words_inserted) == (4, 7)  # ", name" is two, as git counts
    side = result.side_by_side_html
    assert side.count('<table><thead>') == 2  # the old table and the new one, each in its cell
    assert '<tr class="inserted">' in side and '<tr class="deleted">' in side


def test_a_table_cell_with_formatting_and_escaped_pipes():
    cells = redline.table_cells("| a \\| b | **c** |\n|:--|--:|\n| 1 | 2 |")
    assert cells == [["a | b", "**c**"], ["1", "2"]]
    assert redline.table_cells("| a |\n| not a delimiter |") is None


# --- invisible and look-alike characters ------------------------------------


def test_a_cyrillic_letter_for_a_latin_one_is_labelled():
    old = "Data is stored by Cloudvault in the EU.\n"
    new = old.replace("Cloudvault", "\u0421loudvault")
    result = compare(old, new)
    assert result.blocks_changed == 1
    for html in (result.redline_html, result.side_by_side_html):
        assert (
            '<span class="lookalike" title="U+0421 CYRILLIC CAPITAL LETTER ES, not the Latin letter C">'
            '\u0421<span class="lookalike-note">\u27e8Cyrillic, not Latin C\u27e9</span></span>'
        ) in html


def test_a_look_alike_letter_in_unchanged_text_is_left_alone():
    text = "\u041c\u043e\u0441\u043a\u0432\u0430 office.\n"
    html = compare(text, text + "\nMore.\n").redline_html
    assert "lookalike" not in html


# --- folds -----------------------------------------------------------------


def test_a_fold_keeps_the_heading_of_the_section_holding_the_next_change():
    sections = [
        f"## {n}. Section\n\n" + "\n\n".join(f"Text {n}.{k} here." for k in range(5)) for n in range(1, 5)
    ]
    old = "\n\n".join(sections) + "\n"
    new = old.replace("Text 4.3 here.", "Text 4.3 here, changed.")
    html = compare(old, new, context_blocks=1).redline_html
    visible = re.sub(r"<details.*?</details>", "", html, flags=re.S)
    assert '<h2 id="4-section">4. Section</h2>' in visible
    assert "<h2 id=\"3-section\">" not in visible
    assert visible.count("<details") == 0 and html.count("<details") == 2


# --- guarantees ------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_xss_payloads_are_harmless_in_the_redline(payload):
    for template in EMBEDDINGS.values():
        source = template.replace("@@", payload)
        for old, new in ((template.replace("@@", "safe text"), source), (source, "")):
            result = compare(old, new)
            for html in (result.redline_html, result.side_by_side_html):
                # The Markdown renderer's own allowlist does not know the redline's elements
                # (del, ins, details...): those are checked against the redline's below.
                dangerous = [p for p in xss_problems(html) if not p.startswith("unexpected")]
                assert dangerous == [], (template, html)
                assert tags_and_ids(html)[0] <= OUR_TAGS
                assert set(re.findall(r"<\w+((?: [\w-]+=)?)", html)) <= ATTRIBUTE_STARTS


# What an element of the redline may start with: no attribute, or one of its own.
ATTRIBUTE_STARTS = {"", *(f" {name}=" for name in (
    "class", "id", "title", "href", "role", "scope", "colspan", "value", "open", "data-label",
))}


class _Side(HTMLParser):
    """The text one side of a redline shows: the other side's marks and every note left out."""

    SKIPPED = ("format-note", "lookalike-note", "move-note", "compared-whole", "rule", "no-changes")
    INLINE = ("span", "strong", "em", "code", "s", "a", "del", "ins")

    def __init__(self, skip_tag: str) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_tag = skip_tag
        self.depth = 0  # inside something skipped
        self.stack: list[bool] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("hr", "br"):
            return
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        skipped = tag in (self.skip_tag, "summary") or any(name in classes for name in self.SKIPPED)
        self.stack.append(skipped)
        self.depth += skipped
        if "invisible-char" in classes and not self.depth:
            self.text.append(chr(int(found["title"].split()[0][2:], 16)))
            self.depth += 1
            self.stack[-1] = True
        if tag not in self.INLINE:
            self.text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("hr", "br"):
            return
        self.depth -= self.stack.pop()
        if tag not in self.INLINE:
            self.text.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.text.append(data)


def side_text(html: str, skip_tag: str) -> list[str]:
    parser = _Side(skip_tag)
    parser.feed(html)
    parser.close()
    return "".join(parser.text).split()


def reading_text(source: str) -> list[str]:
    words = []
    for block in _BlockParser().parse(source):
        if block[0] == "table" and (cells := redline.table_cells(block[2])) is not None:
            texts = [redline.plain(redline.runs(cell)) for row in cells for cell in row]
            words.extend(word for text in texts for word in text.split())
        elif block[0] != "hr":
            words.extend(redline.plain(_runs_of(block)).split())
    return words


WORDS = st.sampled_from([
    "the", "Processor", "shall", "Data", "**Account data**", "*notify*", "`sync`", "[DPA](https://x.example/d)",
    "30", "days,", "Clause", "\u0421loud", "a\u00a0b", "zero\u200bwidth", "é",
])
BLOCK = st.one_of(
    st.lists(WORDS, min_size=1, max_size=8).map(" ".join),
    st.lists(WORDS, min_size=1, max_size=5).map(lambda w: "## " + " ".join(w)),
    st.lists(WORDS, min_size=1, max_size=5).map(lambda w: "- " + " ".join(w)),
    st.lists(st.lists(WORDS, min_size=1, max_size=3).map(" ".join), min_size=2, max_size=4).map(
        lambda rows: "| h | i |\n|---|---|\n" + "\n".join(f"| {r} | {r[::-1][:5]} |" for r in rows)
    ),
)


@st.composite
def versions(draw):
    blocks = draw(st.lists(BLOCK, min_size=1, max_size=10))
    edited = list(blocks)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["insert", "delete", "edit", "move", "embolden"]))
        if action == "insert" or not edited:
            edited.insert(draw(st.integers(0, len(edited))), draw(BLOCK))
        elif action == "delete":
            del edited[draw(st.integers(0, len(edited) - 1))]
        elif action == "edit":
            k = draw(st.integers(0, len(edited) - 1))
            edited[k] = edited[k] + " " + draw(WORDS)
        elif action == "embolden":
            k = draw(st.integers(0, len(edited) - 1))
            edited[k] = edited[k].replace("Processor", "**Processor**", 1)
        else:
            block = edited.pop(draw(st.integers(0, len(edited) - 1)))
            edited.insert(draw(st.integers(0, len(edited))), block)
    return "\n\n".join(blocks) + "\n", "\n\n".join(edited) + "\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(versions(), st.integers(0, 2))
def test_old_and_new_text_are_recoverable_from_the_redline(pair, context):
    old, new = pair
    result = compare(old, new, context_blocks=context)
    for html in (result.redline_html,):
        assert side_text(html, "ins") == reading_text(old)
        assert side_text(html, "del") == reading_text(new)
    tags, ids = tags_and_ids(result.side_by_side_html)
    assert tags <= OUR_TAGS and len(ids) == len(set(ids))
    _, ids = tags_and_ids(result.redline_html)
    assert len(ids) == len(set(ids))
    # Every move links to a place that exists, both ways.
    for href in re.findall(r'href="#(move-[^"]+)"', result.redline_html):
        assert href in ids
