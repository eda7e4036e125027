"""The pure ordering and materiality rules: crossings, cascaded dates, the in-force prefix, materiality."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from registry.domain.ordering import (
    MINIMUM_GAP,
    Item,
    ItemKind,
    Pending,
    cascaded_date,
    crossings,
    describe_crossings,
    in_force_prefix,
    materiality,
    suggested_date,
)

T = datetime(2027, 1, 10, 23, 0, tzinfo=UTC)


def pending(change_set_id: int, days: int) -> Pending:
    return Pending(change_set_id, f"Change {change_set_id}", f"version {change_set_id} of Privacy Policy",
                   T + timedelta(days=days))


def test_a_date_before_or_at_an_older_pending_change_crosses_it():
    older = [pending(4, 12), pending(5, 20)]
    assert crossings(older, T + timedelta(days=3)) == older
    assert crossings(older, T + timedelta(days=12)) == older  # the same instant is no order at all
    assert crossings(older, T + timedelta(days=15)) == [older[1]]
    assert crossings(older, T + timedelta(days=20, seconds=1)) == []


def test_crossings_are_named_in_date_order():
    crossed = crossings([pending(5, 20), pending(4, 12)], T)
    assert [p.change_set_id for p in crossed] == [4, 5]
    text = describe_crossings(crossed, lambda moment: moment.date().isoformat())
    assert text == ("change set #4 (Change 4) puts version 4 of Privacy Policy in force on 2027-01-22; "
                    "change set #5 (Change 5) puts version 5 of Privacy Policy in force on 2027-01-30")


def test_a_newer_change_still_after_the_moved_one_stays():
    assert cascaded_date(T, T + timedelta(days=2), T + timedelta(days=7)) is None


def test_a_newer_change_overtaken_by_a_move_keeps_its_gap():
    moved = cascaded_date(T, T + timedelta(days=5), T + timedelta(days=1))
    assert moved == T + timedelta(days=6)
    # Overtaken exactly: still strictly after.
    assert cascaded_date(T, T + timedelta(days=1), T + timedelta(days=1)) == T + timedelta(days=2)


def test_data_from_before_the_rule_moves_just_after():
    moved = cascaded_date(T, T + timedelta(days=3), T - timedelta(days=1))
    assert moved == T + timedelta(days=3) + MINIMUM_GAP


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(-10_000, 10_000))
def test_a_cascaded_date_is_always_strictly_after_the_older_one(before, shift, newer):
    older_before = T + timedelta(minutes=before)
    older_after = older_before + timedelta(minutes=shift)
    newer_at = T + timedelta(minutes=newer)
    moved = cascaded_date(older_before, older_after, newer_at)
    assert (moved or newer_at) > older_after
    if moved is not None:
        assert moved >= newer_at


def test_in_force_prefix_stops_at_the_first_version_still_waiting():
    never = datetime.max.replace(tzinfo=UTC)
    assert in_force_prefix([T, T + timedelta(days=1)], T) == 1
    assert in_force_prefix([T, never, T], T + timedelta(days=2)) == 1  # v3's date came, v2 still waits
    assert in_force_prefix([T + timedelta(days=1)], T) == 0
    assert in_force_prefix([], T) == 0


def test_a_material_version_makes_the_set_material():
    items = [Item(ItemKind.DOCUMENT, "Terms of Service", is_material=True),
             Item(ItemKind.DOCUMENT, "Privacy Policy", is_material=False)]
    assert materiality(items) == (True, ["Terms of Service: the new version is marked material"])


def test_adding_or_replacing_a_subprocessor_is_notifiable():
    required, reasons = materiality([Item(ItemKind.ADD, "Sub-processor Acme"),
                                     Item(ItemKind.CHANGE, "Sub-processor Beta", is_material=True),
                                     Item(ItemKind.CHANGE, "Sub-processor Gamma"),
                                     Item(ItemKind.REMOVE, "Sub-processor Delta")])
    assert required
    assert reasons == ["Sub-processor Acme: a new sub-processor (GDPR Art. 28(2) requires notice)",
                       "Sub-processor Beta: the legal entity is replaced (GDPR Art. 28(2) requires notice)"]


def test_non_material_items_leave_the_choice_to_staff():
    assert materiality([Item(ItemKind.DOCUMENT, "Privacy Policy"), Item(ItemKind.CHANGE, "Acme"),
                        Item(ItemKind.REMOVE, "Beta")]) == (False, [])
    assert materiality([]) == (False, [])


def test_the_offered_date_is_the_earliest_unless_an_older_change_comes_at_or_after_it():
    warsaw = "Europe/Warsaw"
    earliest = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)  # 5 December, 00:00 in Warsaw
    assert suggested_date(earliest, [], warsaw) == earliest
    assert suggested_date(earliest, [earliest - timedelta(days=1)], warsaw) == earliest
    # An older change on 13 December at 00:00 Warsaw: the form offers 14 December at 00:00 Warsaw.
    pending = datetime(2026, 12, 12, 23, 0, tzinfo=UTC)
    offered = suggested_date(earliest, [pending, earliest], warsaw)
    assert offered == datetime(2026, 12, 13, 23, 0, tzinfo=UTC)
    assert crossings([Pending(1, "t", "s", pending)], offered) == []
    # At the same instant as the older change is refused, so the same instant is never offered.
    assert suggested_date(pending, [pending], warsaw) > pending
