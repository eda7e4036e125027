"""The list as of a moment, an entry's history, comparisons between dates, search and filters."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from registry.domain.subprocessors import (
    Entry,
    Event,
    ListQuery,
    changes_after,
    compare_states,
    field_changes,
    history,
    in_effect_for_everyone,
    listing_at,
    listing_with_announced,
    matches_words,
    search_words,
    select,
    standing,
    state_at,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def entry(slug="acme", **changes) -> Entry:
    values = dict(
        slug=slug, name=slug.title(), legal_entity=f"{slug.title()} GmbH",
        address="Street 1, Berlin",
        contact=f"privacy@{slug}.example", purpose="Hosting", description="Runs servers",
        data_categories=("Account data",), countries=("DE",), transfer_mechanism="Within the EEA",
        website=f"https://{slug}.example", feature=None,
    )
    values.update(changes)
    return Entry(**values)


def event(slug, action, days, **changes) -> Event:
    return Event(slug=slug, action=action, effective_at=T0 + timedelta(days=days),
                 entry=entry(slug, **changes), change_set_id=days)


EVENTS = [
    event("acme", "add", 0),
    event("beta", "add", 10, purpose="Analytics", countries=("US",),
          transfer_mechanism="EU-US Data Privacy Framework"),
    event("acme", "change", 20, countries=("DE", "US"),
          transfer_mechanism="Standard Contractual Clauses"),
    event("beta", "remove", 30, purpose="Analytics", countries=("US",),
          transfer_mechanism="EU-US Data Privacy Framework"),
    event("gamma", "add", 40, purpose="AI features", feature="AI Assistant"),
]


def test_state_before_anything_is_empty():
    assert state_at(EVENTS, T0 - timedelta(seconds=1)) == {}


def test_state_at_the_effective_instant_includes_the_change():
    assert set(state_at(EVENTS, T0 + timedelta(days=10))) == {"acme", "beta"}
    assert set(state_at(EVENTS, T0 + timedelta(days=10) - timedelta(microseconds=1))) == {"acme"}


def test_state_keeps_added_date_and_moves_changed_date():
    listed = state_at(EVENTS, T0 + timedelta(days=25))["acme"]
    assert listed.added_at == T0
    assert listed.changed_at == T0 + timedelta(days=20)
    assert listed.entry.countries == ("DE", "US")


def test_removed_entry_leaves_the_list():
    assert set(state_at(EVENTS, T0 + timedelta(days=35))) == {"acme"}


def test_events_are_applied_in_time_order_whatever_the_input_order():
    at = T0 + timedelta(days=50)
    assert state_at(list(reversed(EVENTS)), at) == state_at(EVENTS, at)


def test_recent_marker_is_ninety_days():
    listed = state_at(EVENTS, T0 + timedelta(days=25))["acme"]
    assert listed.is_recent(T0 + timedelta(days=110))
    assert not listed.is_recent(T0 + timedelta(days=111))


def test_history_lists_field_changes_with_old_and_new_values():
    items = history([e for e in EVENTS if e.slug == "acme"])
    assert [i.event.action for i in items] == ["add", "change"]
    assert items[0].changes == ()
    changed = {c.field: (c.old, c.new) for c in items[1].changes}
    assert changed == {
        "countries": (("DE",), ("DE", "US")),
        "transfer_mechanism": ("Within the EEA", "Standard Contractual Clauses"),
    }


def test_history_of_a_removed_entry_ends_with_the_removal():
    items = history([e for e in EVENTS if e.slug == "beta"])
    assert [i.event.action for i in items] == ["add", "remove"]
    assert items[-1].changes == ()


def test_compare_states_reports_added_removed_and_changed():
    diff = compare_states(state_at(EVENTS, T0 + timedelta(days=15)),
                          state_at(EVENTS, T0 + timedelta(days=45)))
    assert [e.slug for e in diff.added] == ["gamma"]
    assert [e.slug for e in diff.removed] == ["beta"]
    assert [(e.slug, [c.field for c in changes]) for e, changes in diff.changed] == [
        ("acme", ["countries", "transfer_mechanism"])
    ]
    assert not diff.is_empty


def test_compare_a_moment_with_itself_is_empty():
    state = state_at(EVENTS, T0 + timedelta(days=45))
    assert compare_states(state, state).is_empty


def test_field_changes_of_identical_entries_is_empty():
    assert field_changes(entry(), entry()) == ()


ITEMS = list(state_at(EVENTS, T0 + timedelta(days=50)).values())


@pytest.mark.parametrize(("query", "expected"), [
    (ListQuery(), ["acme", "gamma"]),
    (ListQuery(q="AI assistant"), ["gamma"]),
    (ListQuery(q="ACME gmbh"), ["acme"]),
    (ListQuery(q="nothing-like-this"), []),
    (ListQuery(purpose="Hosting"), ["acme"]),
    (ListQuery(country="US"), ["acme"]),
    (ListQuery(country="DE", purpose="AI features"), ["gamma"]),
    (ListQuery(mechanism="Standard Contractual Clauses"), ["acme"]),
    (ListQuery(sort="added"), ["gamma", "acme"]),
    (ListQuery(sort="purpose"), ["gamma", "acme"]),
])
def test_select_filters_and_sorts(query, expected):
    assert [i.entry.slug for i in select(ITEMS, query)] == expected


def test_standing_active_removed_and_scheduled():
    acme = [e for e in EVENTS if e.slug == "acme"]
    beta = [e for e in EVENTS if e.slug == "beta"]
    gamma = [e for e in EVENTS if e.slug == "gamma"]
    active = standing(acme, T0 + timedelta(days=25))
    assert active.status == "active" and active.entry.countries == ("DE", "US")
    removed = standing(beta, T0 + timedelta(days=35))
    assert removed.status == "removed"
    assert removed.listed.added_at == T0 + timedelta(days=10)  # as it last stood
    scheduled = standing(gamma, T0)
    assert scheduled.status == "scheduled"
    assert scheduled.entry.feature == "AI Assistant"  # as it will first stand


def test_changes_after_a_moment_are_ordered_across_entries():
    items = changes_after(EVENTS, T0 + timedelta(days=5))
    assert [(i.event.slug, i.event.action) for i in items] == [
        ("beta", "add"), ("acme", "change"), ("beta", "remove"), ("gamma", "add"),
    ]
    assert [c.field for c in items[1].changes] == ["countries", "transfer_mechanism"]
    assert changes_after(EVENTS, T0 + timedelta(days=40)) == []


def early(slug, action, days, new_days, **changes) -> Event:
    """A change effective for existing customers on day `days`, for new ones from `new_days`."""
    return replace(event(slug, action, days, **changes), new_customers_at=T0 + timedelta(days=new_days))


@pytest.mark.parametrize(("action", "changes"), [
    ("add", {}), ("change", {"countries": ("DE", "US")}), ("remove", {}),
])
def test_a_change_for_new_customers_first_is_listed_with_its_two_dates(action, changes):
    base = [event("acme", "add", 0)] if action != "add" else []
    events = [*base, early("acme", action, 30, 10, **changes)]
    at = T0 + timedelta(days=15)
    (item,) = listing_at(events, at)
    assert item.new_customers.action == action
    assert item.new_customers.since == T0 + timedelta(days=10)
    assert item.new_customers.existing_from == T0 + timedelta(days=30)
    # Existing customers are still under the entry as it was; the terms carry the new one.
    assert item.entry == (item.new_customers.entry if action == "add" else base[0].entry)
    assert item.is_for_new_customers_only is (action == "add")
    assert standing(events, at).new_customers == item.new_customers


def test_before_the_new_customer_date_and_after_the_effective_date_nothing_is_noted():
    events = [event("acme", "add", 0), early("acme", "change", 30, 10, countries=("US",))]
    before = listing_at(events, T0 + timedelta(days=5))
    after = listing_at(events, T0 + timedelta(days=31))
    assert [item.new_customers for item in before + after] == [None, None]
    assert after[0].entry.countries == ("US",) and before[0].entry.countries == ("DE",)
    assert listing_at([early("acme", "add", 30, 10)], T0 + timedelta(days=5)) == []


def test_listing_without_early_changes_is_the_state():
    at = T0 + timedelta(days=25)
    assert {item.entry.slug: item for item in listing_at(EVENTS, at)} == state_at(EVENTS, at)


def test_the_list_with_announced_changes_shows_what_was_announced_by_then():
    joins = replace(event("delta", "add", 60), announced_at=T0 + timedelta(days=45))
    events = [*EVENTS, joins]
    before = listing_with_announced(events, T0 + timedelta(days=44))
    assert "delta" not in {item.entry.slug for item in before}
    after = {item.entry.slug: item for item in listing_with_announced(events, T0 + timedelta(days=45))}
    assert after["delta"].is_announced_only
    assert after["delta"].coming == ("add", T0 + timedelta(days=60))
    assert "delta" not in {item.entry.slug for item in
                           in_effect_for_everyone(listing_with_announced(events, T0 + timedelta(days=45)))}


def test_a_change_and_a_removal_announced_are_carried_by_the_entry():
    at = T0 + timedelta(days=15)
    listed = {item.entry.slug: item for item in listing_with_announced(EVENTS, at)}
    assert listed["acme"].coming == ("change", T0 + timedelta(days=20))
    assert listed["beta"].coming == ("remove", T0 + timedelta(days=30))
    assert listed["gamma"].coming == ("add", T0 + timedelta(days=40))
    today = {item.entry.slug: item for item in in_effect_for_everyone(listing_with_announced(EVENTS, at))}
    assert set(today) == {"acme", "beta"} and today["acme"].announced is not None


@pytest.mark.parametrize(("needle", "found"), [
    ("germany", True), ("GERM", True), ("deutschland", False), ("DE", True), ("d", False),
    ("united states", False), ("runs serv", True), ("uns", False), ("acme gmbh", True),
])
def test_search_words_whole_codes_and_word_beginnings(needle, found):
    assert matches_words(search_words(entry("acme")), needle) is found


def test_search_ignores_accents_and_case_both_ways():
    item = entry("postbruecke", name="Postbrücke Mail", legal_entity="Łódź Straße GmbH")
    for needle in ("postbrucke", "POSTBRÜCKE", "lodz", "strasse", "Łódź"):
        assert matches_words(search_words(item), needle), needle


def test_ties_in_every_sort_read_a_to_z():
    same_day = [replace(event(slug, "add", 0), entry=entry(slug, name=name))
                for slug, name in [("c", "Charlie"), ("a", "alpha"), ("b", "Bravo")]]
    listed = listing_at(same_day, T0)
    for sort in ("added", "changed", "purpose", "name"):
        names = [item.entry.name for item in select(listed, ListQuery(sort=sort))]
        assert names == ["alpha", "Bravo", "Charlie"], sort
