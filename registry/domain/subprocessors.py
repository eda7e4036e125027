"""The sub-processor list as of any moment, its history, and comparisons between two moments."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from functools import cache

import pycountry

from registry.domain.chain import Link

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
    "lei": "LEI",
    "euid": "EUID",
    "latin_name": "Legal name in Latin script",
    "hq_country": "Headquarters country",
    "parent_name": "Ultimate parent",
    "parent_lei": "Ultimate parent's LEI",
    "ict_service_type": "ICT service type",
    "chain": "Sub-processors",
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
    lei: str = ""
    euid: str = ""
    latin_name: str = ""
    hq_country: str = ""
    parent_name: str = ""
    parent_lei: str = ""
    ict_service_type: str = ""
    chain: tuple[Link, ...] = ()


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
    # When its notice was given: from then on the list shows it as announced (None: not known).
    announced_at: datetime | None = None

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
    # The next change announced for this entry and not yet in effect for anyone (None: none).
    announced: Event | None = None

    @property
    def is_for_new_customers_only(self) -> bool:
        return self.new_customers is not None and self.new_customers.action == "add"

    @property
    def is_announced_only(self) -> bool:
        """Not on the list for anyone yet: announced to join on `announced.effective_at`."""
        return self.announced is not None and self.announced.action == "add"

    @property
    def coming(self) -> tuple[str, datetime] | None:
        """What happens next to this entry for existing customers, and when.

        ("add" | "change" | "remove", moment), or None when nothing is announced.
        """
        if self.new_customers is not None:
            return self.new_customers.action, self.new_customers.existing_from
        if self.announced is not None:
            return self.announced.action, self.announced.effective_at
        return None

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


def announced_after(events: Iterable[Event], at: datetime) -> dict[str, Event]:
    """Each entry's first change effective after `at`, announced by then, that does not already
    apply to new customers."""
    coming: dict[str, Event] = {}
    for event in _ordered(events):
        if (event.effective_at > at and event.slug not in coming
                and (event.announced_at is None or event.announced_at <= at)
                and not event.applies_to_new_customers_only(at)):
            coming[event.slug] = event
    return coming


def listing_with_announced(events: Iterable[Event], at: datetime) -> list[Listed]:
    """The list at `at` and what is announced after it: an entry that will join is listed with its
    joining date, one that will change or leave carries the date it does."""
    events = list(events)
    listed = {item.entry.slug: item for item in listing_at(events, at)}
    for slug, event in announced_after(events, at).items():
        if slug in listed:
            if listed[slug].new_customers is None:
                listed[slug] = replace(listed[slug], announced=event)
        elif event.action == "add":
            listed[slug] = Listed(event.entry, event.effective_at, event.effective_at,
                                  announced=event)
    return list(listed.values())


def in_effect_for_everyone(items: Iterable[Listed]) -> list[Listed]:
    """The list without anything announced: only what applies to existing customers."""
    return [replace(item, new_customers=None) for item in items
            if not item.is_for_new_customers_only and not item.is_announced_only]


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


def current_names(events: Iterable[Event], at: datetime) -> dict[str, str]:
    """Each sub-processor's name at `at`, or the last it had (removed) or will first have (announced)."""
    by_slug: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_slug[event.slug].append(event)
    return {slug: standing(slug_events, at).entry.name for slug, slug_events in by_slug.items()}


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
    announced: bool = True

    @property
    def is_filtered(self) -> bool:
        return bool(self.q or self.purpose or self.country or self.mechanism)


def _by_name(item: Listed) -> str:
    return fold(item.entry.name)


# Each sort: the key and whether it runs newest first. Ties always read A to Z by name.
SORTS = {
    "name": (_by_name, False),
    "purpose": (lambda item: fold(item.entry.purpose), False),
    "added": (lambda item: item.added_at, True),
    "changed": (lambda item: item.changed_at, True),
}

# Letters Unicode does not decompose into a base letter and a mark, written as a reader types them.
_FOLDED_LETTERS = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "\u0131": "i", "æ": "ae",
                                 "œ": "oe", "þ": "th", "ð": "d"})


def fold(text: str) -> str:
    """Text as search compares it: case and accents ignored ("Postbrücke" and "postbrucke" agree)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_FOLDED_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"\w+")
# A search term this short is a code or an abbreviation (US, AI, EU): it matches whole words only,
# so that "us" does not find "users" nor "ai" "Ledgerfield". Longer terms match word beginnings.
WHOLE_WORD_ONLY = 2


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@cache
def country_names(code: str) -> tuple[str, ...]:
    """Every name a reader may search a country by (Germany; United States, United States of America)."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return ()
    names = (getattr(country, attr, None) for attr in ("common_name", "name", "official_name"))
    return tuple(dict.fromkeys(name for name in names if name))


def search_words(entry: Entry) -> list[str]:
    """The words a search for this entry looks in, country codes and names included."""
    return words(" ".join([
        entry.name, entry.legal_entity, entry.purpose, entry.description, entry.transfer_mechanism,
        entry.feature or "", *entry.data_categories,
        *(name for code in entry.countries for name in (code, *country_names(code))),
    ]))


def matches_words(haystack: Iterable[str], needle: str) -> bool:
    """Every term of `needle` is a word of the haystack or, when longer than a code, begins one."""
    haystack = set(haystack)
    return all(
        term in haystack if len(term) <= WHOLE_WORD_ONLY
        else any(word.startswith(term) for word in haystack)
        for term in words(needle)
    )


def select(items: Sequence[Listed], query: ListQuery) -> list[Listed]:
    """Filter and sort the list; unknown sort keys are rejected by the caller, not here."""
    chosen = [
        item for item in items
        if (not query.q or matches_words(search_words(item.entry), query.q))
        and (not query.purpose or item.entry.purpose == query.purpose)
        and (not query.country or query.country in item.entry.countries)
        and (not query.mechanism or item.entry.transfer_mechanism == query.mechanism)
    ]
    key, reverse = SORTS[query.sort]
    return sorted(sorted(chosen, key=_by_name), key=key, reverse=reverse)
