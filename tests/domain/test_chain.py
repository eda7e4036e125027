"""The chain below a sub-processor: rows checked together, ranks derived from the parent links."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain.chain import (
    MAX_LINKS,
    MAX_RANK,
    ChainError,
    Link,
    chain_delta,
    chain_from_json,
    chain_text,
    check_chain,
    ordered,
    rank_of,
)


def row(name, parent="", **more):
    return {"name": name, "legal_entity": f"{name} Ltd", "country": "US", "service": "hosting",
            "parent": parent, **more}


def test_ranks_follow_the_parent_links_and_blank_rows_are_skipped():
    chain = check_chain([row("A"), {}, row("B", "a"), row("C", "B"), row("D"),
                         {"name": " ", "country": ""}])
    assert [link.name for link in chain] == ["A", "B", "C", "D"]
    assert rank_of(chain) == {"A": 2, "B": 3, "C": 4, "D": 2}
    assert [(link.name, rank) for link, rank in ordered(chain)] == [("A", 2), ("B", 3), ("C", 4), ("D", 2)]


def test_values_are_normalised_and_identifiers_checked():
    chain = check_chain([row("A", country="ie", lei="506700ge1g29325qx363", service_type="s17",
                             euid="dek1101r.HRB116737")])
    assert chain[0] == Link("A", "A Ltd", "IE", "hosting", "S17", "506700GE1G29325QX363",
                            "DEK1101R.HRB116737", "")
    assert chain[0].identifier == ("506700GE1G29325QX363", "LEI")
    assert chain_from_json([link.as_dict() for link in chain]) == chain


@pytest.mark.parametrize("rows, row_index, field, message", [
    ([row("A", "B"), row("B", "A")], 0, "parent", "loops: A → B → A"),
    ([row("A"), row("B", "C"), row("C", "D"), row("D", "B")], 1, "parent", "loops"),
    ([row("A", "A")], 0, "parent", "cannot work for itself"),
    ([row("A", "Nobody")], 0, "parent", "Nobody is not in the chain"),
    ([row("A"), row("a")], 1, "name", "listed twice"),
    ([row("A", lei="506700GE1G29325QX364")], 0, "lei", "check digits"),
    ([row("A", euid="nonsense")], 0, "euid", "EUID"),
    ([row("A", country="XX")], 0, "country", "country code"),
    ([row("A", service_type="S20")], 0, "service_type", "S01 to S19"),
    ([{"name": "A"}], 0, "legal_entity", "give the legal entity"),
    ([row("A", service="x" * 301)], 0, "service", "at most 300"),
    ([{}, row("A", "Z")], 1, "parent", "Row 2"),
])
def test_bad_chains_are_refused_with_the_row_and_field(rows, row_index, field, message):
    with pytest.raises(ChainError, match=message) as caught:
        check_chain(rows)
    assert (caught.value.row, caught.value.field) == (row_index, field)


def test_depth_and_size_are_bounded():
    deep = [row(f"L{i}", f"L{i - 1}" if i else "") for i in range(MAX_RANK)]
    assert max(rank_of(check_chain(deep[:MAX_RANK - 1])).values()) == MAX_RANK
    with pytest.raises(ChainError, match=f"rank {MAX_RANK + 1}") as caught:
        check_chain(deep)
    assert caught.value.row == MAX_RANK - 1
    with pytest.raises(ChainError, match=f"at most {MAX_LINKS}"):
        check_chain([row(f"N{i}") for i in range(MAX_LINKS + 1)])


def test_garbage_rows_are_ignored_or_refused_never_crash():
    assert check_chain([None, 3, "x", {"name": 5}]) == ()
    assert chain_from_json("not a list") == ()
    assert chain_from_json([None, {"name": "A", "country": None}]) == (Link("A", "", "", ""),)


def test_texts_for_notices():
    old = check_chain([row("Y"), row("Z")])
    new = check_chain([row("X"), row("Z", service="email")])
    assert chain_text(new) == "X (US, hosting); Z (US, email)"
    assert chain_delta(old, new) == "added X (US, hosting); changed Z (US, email); removed Y"
    assert chain_delta(old, old) == "no change"
    assert chain_text(()) == "none"


names = st.sampled_from(["A", "B", "C", "D", "E", "F"])


@settings(deadline=None)
@given(st.lists(st.tuples(names, st.one_of(st.just(""), names)), max_size=8))
def test_any_accepted_chain_has_ranks_one_above_its_parent(pairs):
    try:
        chain = check_chain([row(name, parent) for name, parent in pairs])
    except ChainError as error:
        assert str(error) and error.field in ("name", "parent")
        return
    ranks = rank_of(chain)
    for link in chain:
        parent_rank = ranks[next(x.name for x in chain if x.name == link.parent)] if link.parent else 1
        assert ranks[link.name] == parent_rank + 1 <= MAX_RANK
    assert sorted(link.name for link, _ in ordered(chain)) == sorted(link.name for link in chain)
