"""Deterministic legal-style Markdown documents and edited versions for the diff benchmark."""

from __future__ import annotations

import random

SCENARIOS = ("few-edits", "scattered", "moved-section", "heavy-rewrite")

_SUBJECTS = (
    "the Processor",
    "the Controller",
    "each Sub-processor",
    "the Customer",
    "the Company",
    "any Authorised Person",
    "the Supervisory Authority",
    "either Party",
    "the Data Protection Officer",
    "the Service Provider",
)
_VERBS = (
    "shall process",
    "may disclose",
    "must notify",
    "shall retain",
    "will delete",
    "shall implement",
    "may transfer",
    "shall document",
    "must restrict",
    "shall review",
)
_OBJECTS = (
    "Personal Data",
    "Customer Data",
    "the Standard Contractual Clauses",
    "appropriate technical and organisational measures",
    "any Personal Data Breach",
    "the records of processing activities",
    "Special Categories of Personal Data",
    "audit reports and certifications",
    "the list of Sub-processors",
    "encrypted backups",
)
_QUALIFIERS = (
    "without undue delay",
    "in accordance with Applicable Data Protection Law",
    "only on documented instructions",
    "within thirty (30) days",
    "to the extent required by law",
    "subject to Clause 9",
    "at no additional cost",
    "in a commonly used machine-readable format",
    "for the duration of the Agreement",
    "unless otherwise agreed in writing",
    "pursuant to Article 28 GDPR",
    "as described in Annex II",
)
_HEADINGS = (
    "Definitions",
    "Scope of Processing",
    "Obligations of the Processor",
    "Sub-processors",
    "International Transfers",
    "Security Measures",
    "Personal Data Breach",
    "Audits",
    "Return and Deletion",
    "Liability",
    "Confidentiality",
    "Governing Law",
    "Term",
    "Data Subject Rights",
    "Assistance",
    "Records",
    "Notices",
    "Miscellaneous",
)
_NEW_WORDS = (
    "promptly",
    "reasonable",
    "written",
    "applicable",
    "relevant",
    "additional",
    "commercially",
    "material",
    "authorised",
    "third-party",
    "Affiliate",
    "regulatory",
)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_QUALIFIERS)]
    if rng.random() < 0.4:
        words.append("and " + rng.choice(_QUALIFIERS))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


def _section(rng: random.Random, number: int) -> list[str]:
    blocks = [f"## {number}. {rng.choice(_HEADINGS)}"]
    for clause in range(1, rng.randint(3, 7)):
        blocks.append(f"{number}.{clause} {_paragraph(rng)}")
        if rng.random() < 0.25:
            blocks.extend(f"- {_sentence(rng)}" for _ in range(rng.randint(2, 4)))
    return blocks


def generate_blocks(size: int, seed: int = 2024) -> list[str]:
    """Blocks of a document of roughly ``size`` characters, heading first."""
    rng = random.Random(seed)
    blocks = ["# Data Processing Addendum", _paragraph(rng)]
    total = sum(len(b) + 2 for b in blocks)
    number = 1
    while total < size:
        section = _section(rng, number)
        blocks.extend(section)
        total += sum(len(b) + 2 for b in section)
        number += 1
    return blocks


def _join(blocks: list[str]) -> str:
    return "\n\n".join(blocks) + "\n"


def _tweak(rng: random.Random, block: str) -> str:
    words = block.split(" ")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        action = rng.random()
        if action < 0.4:
            words[i] = rng.choice(_NEW_WORDS)
        elif action < 0.7:
            words.insert(i, rng.choice(_NEW_WORDS))
        elif len(words) > 3:
            del words[i]
    return " ".join(words)


def _rewrite(rng: random.Random, block: str) -> str:
    """Keeps some sentences, replaces others and rewords the rest, as a redraft would."""
    prefix, _, body = block.partition(" ") if block[:1].isdigit() else ("", "", block)
    sentences = [s for s in body.split(". ") if s]
    out = []
    for sentence in sentences:
        roll = rng.random()
        if roll < 0.3:
            out.append(sentence)
        elif roll < 0.6:
            out.append(_sentence(rng).rstrip("."))
        else:
            out.append(_tweak(rng, sentence))
    if rng.random() < 0.3:
        out.append(_sentence(rng).rstrip("."))
    text = ". ".join(out)
    return f"{prefix} {text}" if prefix else text


def _editable(blocks: list[str]) -> list[int]:
    return [i for i, b in enumerate(blocks) if not b.startswith("#")]


def make_pair(size: int, scenario: str, seed: int = 2024) -> tuple[str, str]:
    """An (old, new) pair of documents of about ``size`` characters for ``scenario``."""
    blocks = generate_blocks(size, seed)
    rng = random.Random(seed * 31 + SCENARIOS.index(scenario))
    new = list(blocks)
    editable = _editable(blocks)
    if scenario == "few-edits":
        for i in rng.sample(editable, 5):
            new[i] = _tweak(rng, new[i])
    elif scenario == "scattered":
        for i in rng.sample(editable, max(1, len(editable) // 100)):
            new[i] = _tweak(rng, new[i])
    elif scenario == "moved-section":
        headings = [i for i, b in enumerate(blocks) if b.startswith("## ")]
        start = headings[len(headings) // 4]
        end = headings[headings.index(start) + max(1, len(headings) // 20)]
        moved = new[start:end]
        del new[start:end]
        target = [i for i, b in enumerate(new) if b.startswith("## ")][-len(headings) // 5]
        new[target:target] = moved
    elif scenario == "heavy-rewrite":
        for i in rng.sample(editable, len(editable) * 6 // 10):
            new[i] = _rewrite(rng, new[i])
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return _join(blocks), _join(new)
