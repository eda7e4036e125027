"""Organisations as plain values: domains, who belongs where, terms, and which date wins."""

from datetime import UTC, datetime

import pytest

from registry.domain import organisations as rules


@pytest.mark.parametrize(("raw", "stored"), [
    ("Example.COM", "example.com"), ("@bank.example", "bank.example"),
    ("mail.bank.example.", "mail.bank.example"),
    ("bücher.example", "xn--bcher-kva.example"), (" a-b.example ", "a-b.example"),
])
def test_domains_are_stored_lower_case_in_ascii(raw, stored):
    assert rules.normalise_domain(raw) == stored


@pytest.mark.parametrize(("raw", "says"), [
    ("", "empty"), ("localhost", "needs a dot"), ("anna@bank.example", "only the part after the @"),
    ("https://bank.example", "only the part after the @"), ("-bad.example", "not a valid domain"),
    ("bad-.example", "not a valid domain"), ("a..example", "not a valid domain"),
    ("under_score.example", "not a valid domain"), ("10.0.0.1", "IP address"),
    ("*.example.com", "not a valid"),
    ("a" * 64 + ".example", "not a valid domain"),
])
def test_bad_domains_are_refused_saying_why(raw, says):
    with pytest.raises(ValueError, match=says):
        rules.normalise_domain(raw)


def test_a_list_of_domains_is_split_deduplicated_and_every_problem_named():
    assert rules.parse_domains("bank.example, BANK.example\nmail.bank.example; other.example") == [
        "bank.example", "mail.bank.example", "other.example"]
    with pytest.raises(ValueError) as refused:
        rules.parse_domains("good.example bad_one.example localhost")
    assert "bad_one.example" in str(refused.value) and "localhost" in str(refused.value)
    with pytest.raises(ValueError, match="At most"):
        rules.parse_domains(" ".join(f"d{i}.example" for i in range(rules.MAX_DOMAINS + 1)))


def test_an_address_belongs_to_the_most_specific_domain():
    owners = {"bank.example": 1, "retail.bank.example": 2}
    assert rules.owner("anna@bank.example", owners) == 1
    assert rules.owner("ben@eu.bank.example", owners) == 1
    assert rules.owner("cara@retail.bank.example", owners) == 2
    assert rules.owner("dan@shop.retail.bank.example", owners) == 2
    assert rules.owner("eve@notbank.example", owners) is None
    assert rules.owner("bank.example@evil.example", owners) is None
    assert rules.owner("no-at-sign", owners) is None
    assert rules.domain_covers("bank.example", "x@EU.Bank.Example")
    assert not rules.domain_covers("bank.example", "x@evilbank.example")


@pytest.mark.parametrize(("length", "unit", "objection", "field"), [
    (30, None, None, "notice_length"), (None, "calendar_days", None, "notice_length"),
    (0, "calendar_days", None, "notice_length"), (-5, "calendar_days", None, "notice_length"),
    (366, "calendar_days", None, "notice_length"), (True, "calendar_days", None, "notice_length"),
    (30, "weeks", None, "notice_unit"), (None, None, 0, "objection_days"),
    (None, None, 400, "objection_days"),
    (10, "calendar_days", 14, "objection_days"),
])
def test_bad_terms_are_refused_by_field(length, unit, objection, field):
    assert field in rules.term_problems(length, unit, objection)


def test_good_terms_pass_and_describe_themselves():
    assert rules.term_problems(30, "calendar_days", 14) == {}
    assert rules.term_problems(None, None, None) == {}
    assert rules.term_problems(None, None, 14) == {}
    assert rules.Term(30, "calendar_days").describe() == "30 calendar days"
    assert rules.Term(1, "business_days").describe() == "1 business day"


def test_the_latest_date_wins_and_a_tie_keeps_the_first():
    early, late = datetime(2027, 1, 2, tzinfo=UTC), datetime(2027, 1, 18, tzinfo=UTC)
    won = rules.longest([rules.Candidate(early, ""), rules.Candidate(late, "Northwind")])
    assert won.label == "Northwind"
    assert rules.longest([rules.Candidate(late, ""), rules.Candidate(late, "Northwind")]).label == ""
    assert rules.longest([]) is None
