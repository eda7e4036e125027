"""Tests of the redline comparison of document versions."""

from __future__ import annotations

import gc
import re
import shutil
import subprocess
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.domain import diff
from registry.domain.diff import Comparison, HeadingAnchors, compare, word_ops
from registry.domain.markdown import slugify_heading, split_heading_id

pytestmark = pytest.mark.filterwarnings("error")

DPA = """# Data Processing Addendum

## 1. Definitions

The Processor shall process Personal Data only on documented instructions.

## 2. Sub-processors

- Amazon Web Services, hosting
- Stripe, payments

Clause one stays.

Clause two stays.

Clause three stays.

Clause four stays.

## 3. Audits

The Customer may audit the Processor once a year.
"""


# --- helpers ---------------------------------------------------------------


def apply_unified(old: str, patch: str) -> str:
    """Apply a unified diff strictly: every context and removed line must match."""
    if not patch:
        return old
    lines, patch_lines = diff_lines(old), diff_lines(patch)
    assert patch_lines[0].startswith("--- ")
    assert patch_lines[1].startswith("+++ ")
    out: list[str] = []
    position = 0
    k = 2
    while k < len(patch_lines):
        header = re.fullmatch(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n", patch_lines[k])
        assert header, patch_lines[k]
        old_start, old_count = int(header[1]), int(header[2] or 1)
        first = old_start - 1 if old_count else old_start
        out.extend(lines[position:first])
        position = first
        k += 1
        seen_old = seen_new = 0
        while k < len(patch_lines) and not patch_lines[k].startswith("@@"):
            tag, text = patch_lines[k][0], patch_lines[k][1:]
            if k + 1 < len(patch_lines) and patch_lines[k + 1] == "\\ No newline at end of file\n":
                assert text.endswith("\n")
                text = text[:-1]
                k += 1
            if tag in " -":
                assert lines[position] == text, (lines[position], text)
                position += 1
                seen_old += 1
            if tag in " +":
                out.append(text)
                seen_new += 1
            k += 1
        assert seen_old == old_count
        assert seen_new == int(header[4] or 1)
    out.extend(lines[position:])
    return "".join(out)


def diff_lines(text: str) -> list[str]:
    """Lines as diff(1) sees them: only "\\n" ends one."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.extend(value or "" for name, value in attrs if name == "id")


def tags_and_ids(html: str) -> tuple[set[str], list[str]]:
    collector = TagCollector()
    collector.feed(html)
    collector.close()
    return set(collector.tags), collector.ids


OUR_TAGS = {
    "div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "del", "ins", "details", "summary", "pre",
    "code", "blockquote", "hr", "table", "caption", "thead", "tbody", "tr", "th", "td", "span",
    "ul", "ol", "li", "strong", "em", "s", "a",
}  # fmt: skip


def rebuilt(ops: list[tuple[str, str]], side: str) -> str:
    return "".join(text for op, text in ops if op != side)


# --- word_ops --------------------------------------------------------------


def test_word_ops_marks_a_replaced_word_only():
    ops = word_ops(
        "The Processor shall process Personal Data only on documented instructions.",
        "The Processor shall process Personal Data only on written instructions.",
    )
    assert ops == [
        ("equal", "The Processor shall process Personal Data only on "),
        ("delete", "documented"),
        ("insert", "written"),
        ("equal", " instructions."),
    ]


def test_word_ops_inserted_and_deleted_words():
    assert word_ops("within days", "within thirty days") == [
        ("equal", "within "),
        ("insert", "thirty "),
        ("equal", "days"),
    ]
    assert word_ops("shall not disclose", "shall disclose") == [
        ("equal", "shall "),
        ("delete", "not "),
        ("equal", "disclose"),
    ]


def test_word_ops_keeps_punctuation_changes_small():
    assert word_ops("Processor, within (30) days", "Processor; within (60) days") == [
        ("equal", "Processor"),
        ("delete", ","),
        ("insert", ";"),
        ("equal", " within ("),
        ("delete", "30"),
        ("insert", "60"),
        ("equal", ") days"),
    ]


def test_word_ops_folds_single_spaces_between_changes_into_one_change():
    ops = word_ops("The Processor shall do it.", "A Controller must do it.")
    assert ops == [("delete", "The Processor shall"), ("insert", "A Controller must"), ("equal", " do it.")]


def test_word_ops_never_cuts_a_word():
    assert word_ops("retain data", "review data") == [
        ("delete", "retain"),
        ("insert", "review"),
        ("equal", " data"),
    ]


def test_word_ops_of_identical_and_empty_texts():
    assert word_ops("same text\n", "same text\n") == [("equal", "same text\n")]
    assert word_ops("", "") == []
    assert word_ops("", "new") == [("insert", "new")]
    assert word_ops("old", "") == [("delete", "old")]


def test_word_ops_works_line_by_line_on_multiline_text():
    old = "first line\nsecond line\nthird line\n"
    new = "first line\nsecond changed line\nthird line\n"
    ops = word_ops(old, new)
    assert ("insert", "changed ") in ops
    assert rebuilt(ops, "insert") == old
    assert rebuilt(ops, "delete") == new


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_word_ops_rebuilds_both_texts(old, new):
    ops = word_ops(old, new)
    assert rebuilt(ops, "insert") == old
    assert rebuilt(ops, "delete") == new
    assert all(op in ("equal", "insert", "delete") and text for op, text in ops)
    assert all(a[0] != b[0] for a, b in pairwise(ops))


WORDS = st.sampled_from(
    ["the", "Processor", "shall", "Data", "Personal", "(30)", "days,", "Clause", "9.", "and", "é", "👍", "\t"]
)
SPACES = st.sampled_from([" ", " ", " ", "  ", "\n", "\r\n", "\u00a0", ""])


@st.composite
def wordy_text(draw):
    words = draw(st.lists(st.tuples(WORDS, SPACES), max_size=40))
    return "".join(word + space for word, space in words)


@settings(max_examples=300, deadline=None)
@given(wordy_text(), wordy_text())
def test_word_ops_rebuilds_wordy_texts(old, new):
    ops = word_ops(old, new)
    assert rebuilt(ops, "insert") == old
    assert rebuilt(ops, "delete") == new


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_word_ops_of_identical_texts_is_all_equal(text):
    assert all(op == "equal" for op, _ in word_ops(text, text))


def test_word_ops_survives_a_hash_collision(monkeypatch):
    # rapidfuzz compares list items by hash; pretend two different words collided.
    real = diff.Indel.opcodes

    class LyingIndel:
        @staticmethod
        def opcodes(a, b):
            if isinstance(a, list) and len(a) == len(b):
                return _Opcodes([("equal", 0, len(a), 0, len(b))])
            return real(a, b)

        normalized_similarity = staticmethod(diff.Indel.normalized_similarity)

    monkeypatch.setattr(diff, "Indel", LyingIndel)
    ops = word_ops("keep this", "keep that")
    assert rebuilt(ops, "insert") == "keep this"
    assert rebuilt(ops, "delete") == "keep that"
    assert ("delete", "this") in ops


class _Opcodes:
    def __init__(self, ops):
        self.ops = ops

    def as_list(self):
        return self.ops


# --- big inputs: the paths taken when one LCS matrix would be too large -------


def test_huge_inputs_are_split_on_unique_anchors(monkeypatch):
    monkeypatch.setattr(diff, "_MAX_LCS_CELLS", 50)
    old = " ".join(f"w{i}" for i in range(60))
    new = old.replace("w10 ", "w10 inserted ").replace(" w40", "")
    ops = word_ops(old, new)
    assert rebuilt(ops, "insert") == old
    assert rebuilt(ops, "delete") == new
    assert ("insert", "inserted ") in ops


def test_huge_inputs_without_unique_items_fall_back_to_myers(monkeypatch):
    monkeypatch.setattr(diff, "_MAX_LCS_CELLS", 10)
    old = "a b a b a b a b a b"
    new = "a b b a b a a b"
    ops = diff._diff(old.split(), new.split(), diff._Budget())
    assert ops[0][0] in ("equal", "delete", "insert")
    rebuilt_new = []
    for tag, i1, i2, j1, j2 in ops:
        assert (tag == "equal") == (old.split()[i1:i2] == new.split()[j1:j2] and i2 > i1)
        rebuilt_new += new.split()[j1:j2]
    assert rebuilt_new == new.split()


def test_myers_never_gives_up_on_unrelated_texts():
    ops = diff._myers_opcodes("abcdefgh" * 50, "ijklmnop" * 50)
    assert {tag for tag, *_ in ops} == {"delete", "insert"}
    assert sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag == "delete") == 400


def test_encoding_beyond_the_alphabet_stays_exact(monkeypatch):
    monkeypatch.setattr(diff, "_SURROGATES", 2)
    monkeypatch.setattr(diff, "_ALPHABET", 4)
    a, b = diff._encode(["x", "y"], ["y", "x"])
    assert (a, b) == ("\x00\x01", "\x01\x00")
    a, b = diff._encode(["x", "y", "z"], ["z"])
    assert a == "\x00\x01\u0802" and b == "\u0802"
    a, b = diff._encode(["v", "w", "x", "y", "z"], ["z", "v"])
    assert (a, b) == ([0, 1, 2, 3, 4], [4, 0])
    monkeypatch.setattr(diff, "_MAX_LCS_CELLS", 1)
    ops = diff._diff(["v", "w", "x", "y", "z"], ["z", "v"], diff._Budget())
    assert sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag == "equal") == 1


def test_longest_increasing_pairs():
    pairs = [(0, 3), (1, 1), (2, 2), (3, 0), (4, 4)]
    assert diff._longest_increasing(pairs) == [(1, 1), (2, 2), (4, 4)]
    assert diff._longest_increasing([]) == []


# --- compare: marks --------------------------------------------------------


def test_identical_documents_have_no_differences():
    result = compare(DPA, DPA)
    assert isinstance(result, Comparison)
    assert (result.words_inserted, result.words_deleted, result.blocks_changed) == (0, 0, 0)
    assert result.unified_diff == ""
    assert "No differences." in result.redline_html
    assert "<ins>" not in result.redline_html and "<del>" not in result.redline_html
    assert "No differences." in result.side_by_side_html


def test_replacement_is_marked_inside_the_paragraph():
    new = DPA.replace("documented instructions", "written instructions")
    result = compare(DPA, new)
    assert (
        '<p class="changed">The Processor shall process Personal Data only on '
        "<del>documented</del><ins>written</ins> instructions.</p>"
    ) in result.redline_html
    assert (result.words_deleted, result.words_inserted, result.blocks_changed) == (1, 1, 1)


def test_inserted_and_deleted_blocks():
    new = DPA.replace("- Stripe, payments\n", "- Stripe, payments\n- SendGrid, email\n")
    new = new.replace("Clause four stays.\n\n", "")
    result = compare(DPA, new)
    assert '<li class="inserted"><ins>SendGrid, email</ins></li>' in result.redline_html
    assert '<p class="deleted"><del>Clause four stays.</del></p>' in result.redline_html
    assert result.blocks_changed == 2
    assert (result.words_inserted, result.words_deleted) == (2, 3)


def test_a_new_paragraph_next_to_an_edited_one_keeps_word_marks():
    old = "Intro.\n\nThe Customer may audit the Processor once a year.\n\nEnd.\n"
    new = (
        "Intro.\n\nA brand new clause about insurance cover.\n\n"
        "The Customer may audit the Processor twice a year.\n\nEnd.\n"
    )
    result = compare(old, new)
    assert (
        '<p class="inserted"><ins>A brand new clause about insurance cover.</ins></p>' in result.redline_html
    )
    assert "<del>once</del><ins>twice</ins>" in result.redline_html


def test_unrelated_paragraphs_in_one_change_are_not_paired():
    old = "Start.\n\nAlpha beta gamma delta.\n\nEpsilon zeta eta theta.\n\nEnd.\n"
    new = "Start.\n\nOne two three four.\n\nFive six seven eight.\n\nEnd.\n"
    result = compare(old, new)
    assert '<p class="deleted"><del>Alpha beta gamma delta.</del></p>' in result.redline_html
    assert '<p class="inserted"><ins>Five six seven eight.</ins></p>' in result.redline_html
    assert 'class="changed"' not in result.redline_html


def test_shifted_paragraphs_are_paired_by_similarity(monkeypatch):
    old_paragraphs = [
        "Backups are encrypted at rest.",
        "Invoices are sent monthly by email.",
        "Audit logs are kept for two years.",
        "Contracts renew automatically each year.",
        "Access keys rotate every ninety days.",
        "Email archives move to cold storage.",
    ]
    # One clause inserted at the top, the last one deleted, the others edited: position
    # pairs each edited clause with its neighbour, similarity with its own old version.
    new_paragraphs = ["A brand new opening clause about insurance cover."] + [
        p.replace(".", " promptly.") for p in old_paragraphs[:5]
    ]
    old = "\n\n".join(["Start.", *old_paragraphs, "End."]) + "\n"
    new = "\n\n".join(["Start.", *new_paragraphs, "End."]) + "\n"
    for limit in (400, 4):  # every pair compared, then only likely pairs
        monkeypatch.setattr(diff, "_ALL_PAIRS_LIMIT", limit)
        result = compare(old, new)
        assert result.redline_html.count("<ins> promptly</ins>") == 5
        assert '<p class="deleted"><del>Email archives move to cold storage.</del></p>' in result.redline_html
        assert "<ins>A brand new opening clause about insurance cover.</ins>" in result.redline_html


def test_a_moved_section_reads_as_moved_with_links_both_ways():
    sections = [
        f"## Section {n}\n\n" + "\n\n".join(f"Paragraph {n}.{k} of the agreement." for k in range(4))
        for n in range(10)
    ]
    old = "\n\n".join(sections) + "\n"
    new = "\n\n".join([*sections[:2], *sections[3:8], sections[2], *sections[8:]]) + "\n"
    result = compare(old, new)
    assert result.blocks_changed == 10
    # A move is neither a deletion nor an insertion of words.
    assert result.words_deleted == result.words_inserted == 0
    html = result.redline_html
    assert "<del>" not in html and "<ins>" not in html
    assert html.count('<del class="moved">') == html.count('<ins class="moved">') == 5
    # One note for the section moved as a whole, at each place, each linking to the other.
    assert html.count('class="move-note"') == 2
    assert (
        '<h2 class="moved-out"><span class="move-note" id="move-1-old">'
        'Section moved to <a href="#move-1-new">after \u201cSection 7\u201d</a></span>'
    ) in html
    assert (
        '<h2 id="section-2" class="moved-in"><span class="move-note" id="move-1-new">'
        'Section moved from <a href="#move-1-old">after \u201cSection 1\u201d</a></span>'
    ) in html
    assert '<tr class="moved-out">' in result.side_by_side_html
    assert apply_unified(old, result.unified_diff) == new


def test_a_moved_paragraph_names_the_numbered_sections_it_left_and_joined():
    old = "## 6. Security\n\nWe encrypt all backups daily.\n\nOther text.\n\n## 9. Audits\n\nAudit text.\n"
    new = "## 6. Security\n\nOther text.\n\n## 9. Audits\n\nAudit text.\n\nWe encrypt all backups daily.\n"
    html = compare(old, new).redline_html
    assert 'Moved to <a href="#move-1-new">\u00a7\u00a09</a>' in html
    assert 'Moved from <a href="#move-1-old">\u00a7\u00a06</a>' in html


# --- compare: headings and anchors -----------------------------------------


def test_headings_stay_headings_with_the_rendered_anchor():
    result = compare(DPA, DPA.replace("once a year", "twice a year"))
    assert '<h2 id="3-audits">3. Audits</h2>' in result.redline_html
    assert "## 3." not in result.redline_html
    changed = compare(DPA, DPA.replace("## 3. Audits", "## 3. Audit rights"))
    assert (
        '<h2 id="3-audit-rights" class="changed">3. <del>Audits</del><ins>Audit rights</ins></h2>'
    ) in changed.redline_html


def test_deleted_heading_keeps_its_old_anchor_unless_the_new_document_uses_it():
    result = compare(DPA, DPA.replace("## 3. Audits\n\n", ""))
    assert '<h2 id="3-audits" class="deleted"><del>3. Audits</del></h2>' in result.redline_html
    moved = compare("## A\n\n## B\n\ntext\n", "## B\n\n## A\n\ntext\n")
    _, ids = tags_and_ids(moved.redline_html)
    assert sorted(ids) == ["a", "b", "move-1-new", "move-1-old"]


def test_anchors_are_unique_and_custom_ids_win():
    doc = "# Terms\n\n## Terms\n\n## Terms {#custom-terms}\n\n## Terms\n\ntext\n"
    result = compare(doc, doc + "\nmore\n")
    _, ids = tags_and_ids(result.redline_html)
    assert ids == ["terms", "terms-2", "custom-terms", "terms-3"]


def test_headings_in_side_by_side_cells_have_no_heading_elements_or_ids():
    result = compare(DPA, DPA.replace("once a year", "twice a year"), context_blocks=10)
    tags, ids = tags_and_ids(result.side_by_side_html)
    assert not tags & {"h1", "h2", "h3", "h4", "h5", "h6"}
    assert ids == []
    assert '<p class="heading h2">3. Audits</p>' in result.side_by_side_html


def test_setext_headings_and_code_fences_are_told_apart():
    doc = "Title\n=====\n\n```\n# not a heading\n```\n\nSub\n---\n\ntext\n"
    result = compare(doc, doc.replace("text", "new text"))
    _, ids = tags_and_ids(result.redline_html)
    assert ids == ["title", "sub"]
    assert '<pre class="code"><code># not a heading</code></pre>' in result.redline_html


def test_slugify_heading():
    assert slugify_heading("1. Definitions") == "1-definitions"
    assert slugify_heading("  Data -- Processing!  ") == "data-processing"
    assert slugify_heading("Übermittlung in Drittländer") == "übermittlung-in-drittländer"
    assert slugify_heading("U\u0308bermittlung") == "übermittlung"
    assert slugify_heading("Sub_processors") == "sub-processors"
    assert slugify_heading("???") == "section"
    assert slugify_heading("") == "section"


def test_split_heading_id():
    assert split_heading_id("Audits {#audit-rights}") == ("Audits", "audit-rights")
    assert split_heading_id("Audits {#Öl Spaß} ") == ("Audits", "ol-spa")
    assert split_heading_id("Audits {#!!!}") == ("Audits", None)
    assert split_heading_id("Audits \\{#kept}") == ("Audits \\{#kept}", None)
    assert split_heading_id("Plain") == ("Plain", None)


def test_heading_anchors_deduplicate_in_document_order():
    anchors = HeadingAnchors()
    assert [anchors.anchor(t) for t in ("A", "A", "a-2", "A")] == ["a", "a-2", "a-2-2", "a-3"]
    assert anchors.anchor("B", "a") == "a-4"


def test_anchors_match_the_markdown_renderer():
    markdown = pytest.importorskip("registry.domain.markdown")
    doc = (
        "# Data Processing Addendum\n\n## 1. **Definitions**\n\n## 1. Definitions\n\n"
        "## Audits {#audit-rights}\n\n## [Annex](https://example.com) A & B &amp; C\n\n"
        "## `code` heading_name _emphasis_ ~~gone~~\n\n## Ünïcödé — ½ ²\n\n## \\#escaped\n\n"
        "## ###\n\nSetext\n======\n\n```\n# not a heading\n```\n\n## Tom's <b>bold</b>\n\n## Audits\n"
    )
    rendered = [heading.anchor for heading in markdown.render_markdown(doc).headings]
    _, ids = tags_and_ids(compare(doc, doc + "\nx\n", context_blocks=100).redline_html)
    assert ids == rendered


# --- compare: folding ------------------------------------------------------


def long_document(paragraphs: int) -> str:
    return "\n\n".join(f"Paragraph {n} of the terms." for n in range(paragraphs)) + "\n"


def test_unchanged_runs_fold_with_context_on_each_side():
    old = long_document(20)
    new = old.replace("Paragraph 10 of", "Paragraph ten of")
    result = compare(old, new, context_blocks=1)
    html = result.redline_html
    assert html.count('<details class="fold">') == 2
    assert "<summary>9 unchanged sections</summary>" in html
    visible = re.sub(r"<details.*?</details>", "", html, flags=re.S)
    assert re.findall(r"Paragraph (\d+) of", visible) == ["9", "11"]
    wide = compare(old, new, context_blocks=3).redline_html
    visible = re.sub(r"<details.*?</details>", "", wide, flags=re.S)
    assert re.findall(r"Paragraph (\d+) of", visible) == ["7", "8", "9", "11", "12", "13"]


def test_folds_keep_their_text_and_work_without_javascript():
    old = long_document(8)
    result = compare(old, old.replace("Paragraph 0 of", "Paragraph zero of"), context_blocks=0)
    assert '<details class="fold"><summary>7 unchanged sections</summary>' in result.redline_html
    for n in range(1, 8):
        assert f"Paragraph {n} of the terms." in result.redline_html
    assert "<script" not in result.redline_html


def test_a_single_unchanged_block_is_not_folded():
    old = long_document(3)
    new = old.replace("Paragraph 0 of", "Paragraph zero of").replace("Paragraph 2 of", "Paragraph two of")
    result = compare(old, new, context_blocks=0)
    assert "<details" not in result.redline_html
    assert "<p>Paragraph 1 of the terms.</p>" in result.redline_html


def test_negative_context_is_rejected():
    with pytest.raises(ValueError):
        compare("a", "b", context_blocks=-1)


# --- compare: escaping and side by side ------------------------------------


def test_input_never_becomes_markup():
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    old = f"# Title <script>\n\nSafe text.\n\n{hostile}\n"
    new = f"# Title <script>\n\nSafe text, {hostile}\n\n- {hostile}\n"
    result = compare(old, new, old_label="<b>v1</b>", new_label="v2 & <i>")
    for html in (result.redline_html, result.side_by_side_html):
        tags, _ = tags_and_ids(html)
        assert tags <= OUR_TAGS
        assert "<script" not in html and "<img" not in html and "<b>" not in html
        assert "&lt;script&gt;" in html
    assert "&lt;b&gt;v1&lt;/b&gt;" in result.side_by_side_html


def test_side_by_side_table_is_accessible():
    result = compare(
        DPA, DPA.replace("once a year", "twice a year"), old_label="Version 1", new_label="Version 2"
    )
    html = result.side_by_side_html
    assert html.startswith('<table class="side-by-side">')
    assert "<caption>Comparison of Version 1 (old text) with Version 2 (new text)</caption>" in html
    assert '<th scope="col">Version 1</th><th scope="col">Version 2</th>' in html
    assert (
        '<tr class="changed"><td data-label="Version 1"><p>The Customer may audit the Processor'
        ' <del>once</del> a year.</p></td><td data-label="Version 2"><p>The Customer may audit the'
        ' Processor <ins>twice</ins> a year.</p></td></tr>'
    ) in html
    assert '<tr class="fold"><td colspan="2"><details class="fold"><summary>' in html


def test_side_by_side_puts_deleted_and_inserted_blocks_on_shared_rows():
    old = "Start.\n\nAlpha beta gamma.\n\nEnd.\n"
    new = "Start.\n\nOne two three.\n\nFour five six.\n\nEnd.\n"
    html = compare(old, new).side_by_side_html
    assert (
        '<tr class="replaced"><td data-label="old"><p><del>Alpha beta gamma.</del></p></td>'
        '<td data-label="new"><p><ins>One two three.</ins></p></td></tr>'
    ) in html
    assert (
        '<tr class="inserted"><td class="empty"></td>'
        '<td data-label="new"><p><ins>Four five six.</ins></p></td></tr>' in html
    )


def test_block_kinds_render_as_their_elements():
    old = "> quoted\n> text\n\n| a | b |\n|---|---|\n\n***\n\n1. first\n"
    new = "> quoted\n> new text\n\n| a | c |\n|---|---|\n\n***\n\n1. first\n2. second\n"
    html = compare(old, new, context_blocks=5).redline_html
    assert '<blockquote class="changed"><p>quoted\n<ins>new </ins>text</p></blockquote>' in html
    assert (
        '<div class="table-block changed"><div class="table-scroll" role="region" aria-label="Table"'
        ' tabindex="0"><table><thead><tr class="changed"><th scope="col">a</th>'
        '<th scope="col"><del>b</del><ins>c</ins></th></tr></thead><tbody></tbody></table></div></div>'
    ) in html
    assert "<hr>" in html
    assert (
        '<ol class="items">\n<li value="1">first</li>\n'
        '<li class="inserted" value="2"><ins>second</ins></li>\n</ol>'
    ) in html


# --- compare: unified diff -------------------------------------------------


def test_unified_diff_has_headers_and_hunks_and_applies():
    new = DPA.replace("documented", "written").replace("- Stripe, payments\n", "")
    result = compare(DPA, new, old_label="dpa-v1.md", new_label="dpa-v2.md")
    lines = result.unified_diff.splitlines()
    assert lines[:2] == ["--- dpa-v1.md", "+++ dpa-v2.md"]
    assert lines[2] == "@@ -2,12 +2,11 @@"
    assert "-The Processor shall process Personal Data only on documented instructions." in lines
    assert "+The Processor shall process Personal Data only on written instructions." in lines
    assert "-- Stripe, payments" in lines
    assert apply_unified(DPA, result.unified_diff) == new


def test_unified_diff_marks_a_missing_final_newline():
    result = compare("a\nb", "a\nc")
    assert result.unified_diff == (
        "--- old\n+++ new\n@@ -1,2 +1,2 @@\n a\n"
        "-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
    )
    assert apply_unified("a\nb", result.unified_diff) == "a\nc"


def test_unified_diff_of_crlf_and_lf_versions():
    lf = "Line one.\n\nLine two.\n"
    crlf = lf.replace("\n", "\r\n")
    result = compare(lf, crlf)
    assert result.blocks_changed == 0  # the reader sees the same text
    assert apply_unified(lf, result.unified_diff) == crlf


def test_unified_diff_labels_stay_on_one_line():
    result = compare("a\n", "b\n", old_label="x\ny", new_label="z")
    assert result.unified_diff.startswith("--- x y\n+++ z\n")


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
def test_patch_applies_the_unified_diff(tmp_path: Path):
    new = DPA.replace("documented", "written").replace("## 3. Audits", "## 3. Audit rights") + "Annex I.\n"
    (tmp_path / "dpa.md").write_text(DPA)
    (tmp_path / "dpa.diff").write_text(compare(DPA, new).unified_diff)
    subprocess.run(["patch", "-s", str(tmp_path / "dpa.md"), str(tmp_path / "dpa.diff")], check=True)
    assert (tmp_path / "dpa.md").read_text() == new


# --- compare: properties ---------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_compare_never_raises_and_its_diff_applies(old, new):
    result = compare(old, new)
    assert apply_unified(old, result.unified_diff) == new
    assert result.words_inserted >= 0 and result.words_deleted >= 0
    for html in (result.redline_html, result.side_by_side_html):
        tags, ids = tags_and_ids(html)
        assert tags <= OUR_TAGS
        assert len(ids) == len(set(ids))


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_compare_of_identical_texts_reports_no_change(text):
    result = compare(text, text)
    assert (result.words_inserted, result.words_deleted, result.blocks_changed) == (0, 0, 0)
    assert result.unified_diff == ""
    assert "<ins>" not in result.redline_html and "<del>" not in result.redline_html


BLOCK = st.one_of(
    st.builds(lambda n, w: "#" * n + " " + w, st.integers(1, 4), wordy_text()),
    st.builds(lambda w: "- " + w, wordy_text()),
    st.builds(lambda w: "1. " + w, wordy_text()),
    st.builds(lambda w: "> " + w, wordy_text()),
    st.builds(lambda w: "```\n" + w + "\n```", wordy_text()),
    st.just("---"),
    wordy_text(),
)


@st.composite
def markdown_versions(draw):
    blocks = draw(st.lists(BLOCK, max_size=12))
    edited = list(blocks)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["insert", "delete", "edit", "move"]))
        if action == "insert" or not edited:
            edited.insert(draw(st.integers(0, len(edited))), draw(BLOCK))
        elif action == "delete":
            del edited[draw(st.integers(0, len(edited) - 1))]
        elif action == "edit":
            k = draw(st.integers(0, len(edited) - 1))
            edited[k] = edited[k] + " " + draw(wordy_text())
        else:
            block = edited.pop(draw(st.integers(0, len(edited) - 1)))
            edited.insert(draw(st.integers(0, len(edited))), block)
    separator = draw(st.sampled_from(["\n\n", "\n", "\n\n\n", "\r\n\r\n"]))
    return separator.join(blocks), separator.join(edited)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown_versions(), st.integers(0, 3))
def test_compare_on_markdown_versions(versions, context):
    old, new = versions
    result = compare(old, new, context_blocks=context)
    assert apply_unified(old, result.unified_diff) == new
    for html in (result.redline_html, result.side_by_side_html):
        tags, ids = tags_and_ids(html)
        assert tags <= OUR_TAGS
        assert len(ids) == len(set(ids))
    if old == new:
        assert result.blocks_changed == 0
    else:
        assert result.unified_diff
    assert result.redline_html.count("<details") == result.side_by_side_html.count("<details")


def test_compare_leaves_the_garbage_collector_as_it_found_it():
    assert gc.isenabled()
    compare(DPA, DPA.replace("once", "twice"))
    assert gc.isenabled()
    gc.disable()
    try:
        compare(DPA, DPA.replace("once", "twice"))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_long_single_paragraph_documents():
    old = " ".join(f"word{n}" for n in range(5000))
    new = old.replace("word2500 ", "changed2500 ").replace("word10 ", "")
    result = compare(old, new)
    assert (result.words_deleted, result.words_inserted) == (2, 1)
    assert "<del>word2500</del><ins>changed2500</ins>" in result.redline_html


# --- compare: bounded work -------------------------------------------------


def unrelated_paragraphs(words: int) -> tuple[str, str]:
    return " ".join(f"old{k}" for k in range(words)), " ".join(f"new{k}" for k in range(words))


def test_a_rewrite_beyond_the_budget_is_shown_whole_and_says_so(monkeypatch):
    # Two unrelated 500-word paragraphs cost 250,000 steps; the budget allows far fewer.
    monkeypatch.setattr(diff, "_BUDGET_STEPS", 50_000)
    old, new = unrelated_paragraphs(500)
    result = compare(f"# Terms\n\n{old}\n", f"# Terms\n\n{new}\n")
    assert result.blocks_compared_whole == 1
    assert (result.words_deleted, result.words_inserted) == (500, 500)
    assert "1 changed block was too large to compare word by word" in result.redline_html
    assert '<p class="compared-whole">Compared as a whole' in result.redline_html
    assert f'<p class="changed whole"><del>{old}</del><ins>{new}</ins></p>' in result.redline_html
    assert "too large to compare word by word" in result.side_by_side_html
    assert apply_unified(f"# Terms\n\n{old}\n", result.unified_diff) == f"# Terms\n\n{new}\n"


def test_a_formatted_paragraph_past_the_budget_on_its_reading_text_says_so(monkeypatch):
    # Its Markdown source is paired and diffed (90,601 steps); the diff of the text it
    # reads as, needed for the formatting, would cost as much again: past the budget.
    monkeypatch.setattr(diff, "_BUDGET_STEPS", 150_000)
    old, new = unrelated_paragraphs(300)
    result = compare(f"# Terms\n\n**Bold** {old}\n", f"# Terms\n\n**Bold** {new}\n")
    assert result.blocks_compared_whole == 1
    assert "1 changed block was too large to compare word by word" in result.redline_html
    assert '<p class="compared-whole">Compared as a whole' in result.redline_html
    assert '<p class="changed whole"><del><strong>Bold</strong></del>' in result.redline_html


def test_within_the_budget_nothing_is_compared_whole(monkeypatch):
    old, new = unrelated_paragraphs(500)
    result = compare(old, new.replace("new7 ", "old7 "))
    assert result.blocks_compared_whole == 0
    assert "compared-whole" not in result.redline_html
    assert "<del>old0" in result.redline_html


def test_the_budget_is_shared_by_every_block_of_a_comparison(monkeypatch):
    # Each pair of 40-word paragraphs costs 1,600 steps: the first ones are marked word by
    # word, and the rest, once the budget runs out, are compared whole.
    monkeypatch.setattr(diff, "_BUDGET_STEPS", 10_000)
    olds = [" ".join(f"w{k}x{n}" for n in range(40)) for k in range(20)]
    news = [text.replace("x3 ", "y3 ") for text in olds]
    result = compare("\n\n".join(olds), "\n\n".join(news))
    assert 0 < result.blocks_compared_whole < 20
    assert result.redline_html.count('class="changed whole"') == result.blocks_compared_whole
    assert result.redline_html.count('<p class="changed">') == 20 - result.blocks_compared_whole
    assert result.words_deleted == result.words_inserted


def test_without_unique_items_myers_runs_only_for_few_differences(monkeypatch):
    monkeypatch.setattr(diff, "_MAX_LCS_CELLS", 10)
    # No item is unique to both sides; a few differences are affordable.
    old = "ab" * 200
    new = "ab" * 100 + "b" + "ab" * 99 + "a"
    ops = diff._anchored_opcodes(old, new, diff._Budget(1_000_000))
    assert "replace" not in {tag for tag, *_ in ops}
    assert sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag == "equal") == 399
    # 800 differences at 800 steps each are not: one replace between the anchors.
    ops = diff._anchored_opcodes("x" + "ab" * 200 + "y", "x" + "cd" * 200 + "y", diff._Budget(1_000_000))
    assert ops == [("equal", 0, 1, 0, 1), ("replace", 1, 401, 1, 401), ("equal", 401, 402, 401, 402)]


def test_the_common_ends_of_an_unanchored_span_are_kept(monkeypatch):
    monkeypatch.setattr(diff, "_MAX_LCS_CELLS", 10)
    ops = diff._anchored_opcodes("aaaa" + "b" * 300 + "cc", "aaaa" + "d" * 300 + "cc", diff._Budget(0))
    assert ops == [("equal", 0, 4, 0, 4), ("replace", 4, 304, 4, 304), ("equal", 304, 306, 304, 306)]


def test_word_ops_beyond_the_budget_still_rebuild_both_texts(monkeypatch):
    monkeypatch.setattr(diff, "_BUDGET_STEPS", 100)
    old, new = unrelated_paragraphs(50)
    ops = word_ops(old + "\nsame\n", new + "\nsame\n")
    assert rebuilt(ops, "insert") == old + "\nsame\n"
    assert rebuilt(ops, "delete") == new + "\nsame\n"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown_versions(), st.integers(0, 3000))
def test_compare_on_any_budget_applies_and_marks_whole_blocks(versions, steps):
    old, new = versions
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(diff, "_BUDGET_STEPS", steps)
        result = compare(old, new)
    assert apply_unified(old, result.unified_diff) == new
    assert result.redline_html.count('<p class="compared-whole">') <= result.blocks_compared_whole
    assert ("too large to compare word by word" in result.redline_html) == bool(result.blocks_compared_whole)


# --- compare: invisible characters -------------------------------------------


def test_a_space_replaced_by_a_no_break_space_shows_as_a_change():
    result = compare("Fees are 10 EUR.\n", "Fees are 10\u00a0EUR.\n")
    assert result.blocks_changed == 1
    assert (
        '<del><span class="invisible-char" title="U+0020 SPACE">\u27e8U+0020\u27e9</span></del>'
        '<ins><span class="invisible-char" title="U+00A0 NO-BREAK SPACE">\u27e8U+00A0\u27e9</span></ins>'
    ) in result.redline_html


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u202e", "RIGHT-TO-LEFT OVERRIDE"),
        ("\u202a", "LEFT-TO-RIGHT EMBEDDING"),
        ("\u2066", "LEFT-TO-RIGHT ISOLATE"),
        ("\u2069", "POP DIRECTIONAL ISOLATE"),
        ("\u200b", "ZERO WIDTH SPACE"),
        ("\ufeff", "ZERO WIDTH NO-BREAK SPACE"),
        ("\u00ad", "SOFT HYPHEN"),
        ("\u2028", "LINE SEPARATOR"),
    ],
)
def test_an_inserted_invisible_character_is_a_visible_labelled_marker(char, name):
    old = "The Processor shall notify the Customer.\n"
    result = compare(old, old.replace("shall", f"shall{char}"))
    code = f"U+{ord(char):04X}"
    marker = f'<span class="invisible-char" title="{code} {name}">\u27e8{code}\u27e9</span>'
    assert result.blocks_changed == 1
    for html in (result.redline_html, result.side_by_side_html):
        assert marker in html
        # The character itself never reaches the page, where a bidi control would reorder it.
        assert char not in html


def test_a_lone_invisible_character_inserted_is_still_a_change():
    result = compare("Cost: 10.\n", "Cost: 10.\u200b\n")
    assert result.blocks_changed == 1
    assert '<ins><span class="invisible-char" title="U+200B ZERO WIDTH SPACE">' in result.redline_html


def test_invisible_characters_in_deleted_and_inserted_blocks_are_marked():
    old = "# Terms\n\nKeep this.\n\nfoo\u202egnp.exe\n"
    new = "# Terms\n\nKeep this.\n\n| a\u2067 | b |\n|---|---|\n"
    html = compare(old, new, context_blocks=5).redline_html
    assert '<del>foo<span class="invisible-char" title="U+202E RIGHT-TO-LEFT OVERRIDE">' in html
    assert '<span class="invisible-char" title="U+2067 RIGHT-TO-LEFT ISOLATE">' in html
    assert "\u202e" not in html and "\u2067" not in html


def test_controls_without_a_name_and_private_use_characters_are_labelled():
    html = compare("a b\n", "a \x07\ue000 b\n").redline_html
    assert 'title="U+0007 control character"' in html
    assert 'title="U+E000 private-use character"' in html


def test_visible_non_ascii_text_in_a_change_is_left_alone():
    html = compare("Übermittlung\n", "Übermittlung in Drittländer — „sicher“ & <b>\n").redline_html
    assert "<ins> in Drittländer — „sicher“ &amp; &lt;b&gt;</ins>" in html
    assert "invisible-char" not in html


def test_a_rewritten_giant_paragraph_is_compared_whole_within_the_default_budget():
    # Two unrelated paragraphs of 40,000 words: Myers's algorithm with no limit took
    # 53 s on 80,000 words. The banded check sees that the differences will not fit.
    old, new = unrelated_paragraphs(40_000)
    result = compare(old, new)
    assert result.blocks_compared_whole == 1
    assert (result.words_deleted, result.words_inserted) == (40_000, 40_000)


def test_a_changed_stretch_too_large_to_pair_is_deleted_and_inserted_and_counted(monkeypatch):
    # 30 old and 31 new paragraphs, in place as versions of each other but one shorter:
    # pairing them costs 30 x 31 candidates, more than the budget.
    monkeypatch.setattr(diff, "_BUDGET_STEPS", 100_000)
    olds = [f"Clause {k} applies to the Processor." for k in range(30)]
    news = ["A new first clause."] + [text.replace("Processor", "Controller") for text in olds]
    result = compare("\n\n".join(olds), "\n\n".join(news))
    assert result.blocks_compared_whole == 61
    assert "61 changed blocks were too large to compare word by word" in result.redline_html
    assert result.redline_html.count('<p class="deleted">') == 30
    assert result.redline_html.count('<p class="inserted">') == 31
    assert result.words_deleted == 6 * 30
    # With the usual budget, the same stretch is paired and marked word by word.
    monkeypatch.undo()
    result = compare("\n\n".join(olds), "\n\n".join(news))
    assert result.blocks_compared_whole == 0
    assert result.words_deleted == 30
