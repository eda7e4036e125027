"""The sub-processor list as of any moment, its history, and comparisons between two moments."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

RECENT = timedelta(days=90)

# Field order and labels as customers read them.
FIELD_LABELS = {
    "name": "Name",
    "legal_entity": "Legal entity",
    "address": "Address",
    "contact": "Contact",
    "purpose": "Purpose",
    "description": "Processing activity",
    "data_categories": "Categories of personal data",
    "countries": "Processing locations",
    "transfer_mechanism": "Transfer mechanism",
    "website": "Website",
    "feature": "Applies to",
}


@dataclass(frozen=True)
class Entry:
    """The state of one sub-processor after a change."""

    slug: str
    name: str
    legal_entity: str
    address: str
    contact: str
    purpose: str
    description: str
    data_categories: tuple[str, ...]
    countries: tuple[str, ...]
    transfer_mechanism: str
    website: str
    feature: str | None


@dataclass(frozen=True)
class Event:
    """One public change to a sub-processor: added, changed or removed, effective at a moment."""

    slug: str
    action: str  # "add" | "change" | "remove"
    effective_at: datetime
    entry: Entry
    summary: str = ""
    change_set_id: int | None = None
    # When the change already applies to customers who sign up from then on (None: with everyone).
    new_customers_at: datetime | None = None

    def applies_to_new_customers_only(self, at: datetime) -> bool:
        return self.new_customers_at is not None and self.new_customers_at <= at < self.effective_at


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    old: object
    new: object


@dataclass(frozen=True)
class NewCustomerTerms:
    """A change that already applies to new customers and reaches existing customers later."""

    action: str  # "add" | "change" | "remove"
    entry: Entry  # the entry as it stands for new customers (for a removal: the entry leaving)
    since: datetime
    existing_from: datetime


@dataclass(frozen=True)
class Listed:
    """An entry on the list as of a moment, with the dates customers ask about.

    The list is the one existing customers are under; `new_customers` says how a change that
    already applies to new customers differs. An entry that new customers already have but existing
    customers do not yet is listed too, with `new_customers.action == "add"`.
    """

    entry: Entry
    added_at: datetime
    changed_at: datetime
    new_customers: NewCustomerTerms | None = None

    @property
    def is_for_new_customers_only(self) -> bool:
        return self.new_customers is not None and self.new_customers.action == "add"

    def is_recent(self, at: datetime) -> bool:
        return at - self.changed_at <= RECENT


@dataclass(frozen=True)
class HistoryItem:
    event: Event
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class StateDiff:
    added: tuple[Entry, ...]
    removed: tuple[Entry, ...]
    changed: tuple[tuple[Entry, tuple[FieldChange, ...]], ...]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _ordered(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.effective_at, e.change_set_id or 0))


def field_changes(old: Entry, new: Entry) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(f.name, FIELD_LABELS[f.name], getattr(old, f.name), getattr(new, f.name))
        for f in fields(Entry)
        if f.name in FIELD_LABELS and getattr(old, f.name) != getattr(new, f.name)
    )


def state_at(events: Iterable[Event], at: datetime) -> dict[str, Listed]:
    """Every sub-processor on the list at `at`, keyed by slug."""
    listed: dict[str, Listed] = {}
    for event in _ordered(events):
        if event.effective_at > at:
            break
        if event.action == "remove":
            listed.pop(event.slug, None)
        elif event.slug in listed and event.action != "add":
            added_at = listed[event.slug].added_at
            listed[event.slug] = Listed(event.entry, added_at, event.effective_at)
        else:
            listed[event.slug] = Listed(event.entry, event.effective_at, event.effective_at)
    return listed


def new_customer_terms(events: Iterable[Event], at: datetime) -> dict[str, NewCustomerTerms]:
    """Changes that apply to new customers at `at` but not yet to existing ones, keyed by slug."""
    return {
        event.slug: NewCustomerTerms(event.action, event.entry, event.new_customers_at, event.effective_at)
        for event in _ordered(events) if event.applies_to_new_customers_only(at)
    }


def listing_at(events: Iterable[Event], at: datetime) -> list[Listed]:
    """The list existing customers are under at `at`, with what already differs for new customers."""
    events = list(events)
    listed = state_at(events, at)
    for slug, terms in new_customer_terms(events, at).items():
        if slug in listed:
            listed[slug] = replace(listed[slug], new_customers=terms)
        elif terms.action == "add":
            listed[slug] = Listed(terms.entry, terms.since, terms.since, new_customers=terms)
    return list(listed.values())


def history(events: Iterable[Event]) -> list[HistoryItem]:
    """One sub-processor's changes, oldest first, each with the fields it changed."""
    items: list[HistoryItem] = []
    previous: Entry | None = None
    for event in _ordered(events):
        is_change = previous is not None and event.action == "change"
        changes = field_changes(previous, event.entry) if is_change else ()
        items.append(HistoryItem(event, changes))
        previous = None if event.action == "remove" else event.entry
    return items


def changes_after(events: Iterable[Event], moment: datetime) -> list[HistoryItem]:
    """Every change of every sub-processor effective after `moment`, oldest first."""
    by_slug: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_slug[event.slug].append(event)
    return sorted(
        (item for slug_events in by_slug.values() for item in history(slug_events)
         if item.event.effective_at > moment),
        key=lambda item: (item.event.effective_at, item.event.change_set_id or 0, item.event.slug),
    )


@dataclass(frozen=True)
class Standing:
    """Where one sub-processor stands at a moment, for its page."""

    status: str  # "active" | "removed" | "scheduled"
    listed: Listed | None  # as listed at the moment, or as it last stood or will first stand
    latest: Event
    # A change that already applies to new customers but not yet to existing ones.
    new_customers: NewCustomerTerms | None = None

    @property
    def entry(self) -> Entry:
        return self.listed.entry if self.listed else self.latest.entry


def standing(events: Sequence[Event], at: datetime) -> Standing:
    """One sub-processor's events (at least one) seen at `at`."""
    ordered = _ordered(events)
    latest = ordered[-1]
    terms = new_customer_terms(ordered, at).get(latest.slug)
    listed = state_at(ordered, at).get(latest.slug)
    if listed:
        return Standing("active", listed, latest, terms)
    states = (state_at(ordered, e.effective_at).get(latest.slug) for e in reversed(ordered))
    shown = next((state for state in states if state), None)
    return Standing("removed" if latest.action == "remove" else "scheduled", shown, latest, terms)


def compare_states(old: dict[str, Listed], new: dict[str, Listed]) -> StateDiff:
    added = tuple(new[s].entry for s in sorted(new.keys() - old.keys()))
    removed = tuple(old[s].entry for s in sorted(old.keys() - new.keys()))
    changed = []
    for slug in sorted(old.keys() & new.keys()):
        changes = field_changes(old[slug].entry, new[slug].entry)
        if changes:
            changed.append((new[slug].entry, changes))
    return StateDiff(added, removed, tuple(changed))


@dataclass(frozen=True)
class ListQuery:
    """What a customer asked of the list: search text, filters and sort order."""

    q: str = ""
    purpose: str = ""
    country: str = ""
    mechanism: str = ""
    sort: str = "name"


SORTS = {
    "name": (lambda item: item.entry.name.casefold(), False),
    "purpose": (lambda item: (item.entry.purpose.casefold(), item.entry.name.casefold()), False),
    "added": (lambda item: (item.added_at, item.entry.name.casefold()), True),
    "changed": (lambda item: (item.changed_at, item.entry.name.casefold()), True),
}


def _matches_text(entry: Entry, needle: str) -> bool:
    haystack = " ".join(
        [entry.name, entry.legal_entity, entry.purpose, entry.description, entry.transfer_mechanism,
         entry.feature or "", *entry.data_categories, *entry.countries]
    ).casefold()
    return all(word in haystack for word in needle.casefold().split())


def select(items: Sequence[Listed], query: ListQuery) -> list[Listed]:
    """Filter and sort the list; unknown sort keys are rejected by the caller, not here."""
    chosen = [
        item for item in items
        if (not query.q or _matches_text(item.entry, query.q))
        and (not query.purpose or item.entry.purpose == query.purpose)
        and (not query.country or query.country in item.entry.countries)
        and (not query.mechanism or item.entry.transfer_mechanism == query.mechanism)
    ]
    key, reverse = SORTS[query.sort]
    return sorted(chosen, key=key, reverse=reverse)
