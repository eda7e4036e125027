"""Customer organisations as plain values: which organisation an address belongs to, what a contractual
notice term may be, and which term sets the earliest effective date."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from registry.domain.notice import MAX_LENGTH, MAX_OBJECTION_DAYS, UNITS

MAX_DOMAINS = 50
MAX_CONTACTS = 20
# RFC 1035 labels (letters, digits, inner hyphens, at most 63), as IDNA gives them: xn--... for others.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SEPARATORS = re.compile(r"[\s,;]+")


def normalise_domain(value: str) -> str:
    """The stored form of a domain typed by staff: lower case, IDNA, no leading "@" or trailing dot.

    Raises ValueError saying what is wrong with it.
    """
    text = value.strip().lower().removeprefix("@").removesuffix(".")
    if not text:
        raise ValueError("An empty domain.")
    if "@" in text or "/" in text or ":" in text:
        raise ValueError(f"{value!r} is not a domain: give only the part after the @, e.g. example.com.")
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{value!r} is not a valid domain name.") from None
    labels = ascii_form.split(".")
    if len(labels) < 2:
        raise ValueError(f"{value!r} is not a domain: it needs a dot, e.g. example.com.")
    if len(ascii_form) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid domain name: letters, digits and hyphens between dots.")
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} is an IP address, not a domain.")
    return ascii_form


def parse_domains(text: str) -> list[str]:
    """Domains separated by commas, spaces or lines, each normalised once; every problem named at once."""
    domains: list[str] = []
    problems: list[str] = []
    for item in _SEPARATORS.split(text or ""):
        if not item:
            continue
        try:
            domain = normalise_domain(item)
        except ValueError as error:
            problems.append(str(error))
            continue
        if domain not in domains:
            domains.append(domain)
    if problems:
        raise ValueError(" ".join(problems[:5]))
    if len(domains) > MAX_DOMAINS:
        raise ValueError(f"At most {MAX_DOMAINS} domains per organisation.")
    return domains


def address_domain(address: str) -> str:
    """The lower-case domain of an email address ("" when it has none)."""
    _, at, domain = address.strip().rpartition("@")
    return domain.lower().removesuffix(".") if at else ""


def domain_covers(domain: str, address: str) -> bool:
    """An organisation's domain covers its exact domain and every subdomain of it."""
    own = address_domain(address)
    return own == domain or own.endswith("." + domain)


def owner(address: str, domains: Mapping[str, int]) -> int | None:
    """The organisation an address belongs to, from {domain: organisation id}: the most specific domain
    that covers it wins (mail.bank.example under bank.example's owner unless mail.bank.example has one)."""
    own = address_domain(address)
    labels = own.split(".")
    for start in range(len(labels) - 1):
        found = domains.get(".".join(labels[start:]))
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Term:
    """A contractual notice term: `length` calendar or business days."""

    length: int
    unit: str

    def describe(self) -> str:
        unit = self.unit.replace("_", " ")
        return f"{self.length} {unit[:-1] if self.length == 1 else unit}"


def term_problems(length: object, unit: object, objection_days: object) -> dict[str, str]:
    """What is wrong with an organisation's term and objection window, by field ({} when all is well)."""
    problems: dict[str, str] = {}
    if (length is None) != (unit is None or unit == ""):
        problems["notice_length"] = "Give both the number of days and whether they are calendar or " \
                                    "business days, or neither (the notice policies' terms apply)."
    if length is not None and (not isinstance(length, int) or isinstance(length, bool)
                               or not 1 <= length <= MAX_LENGTH):
        problems["notice_length"] = f"The notice term is a whole number of days from 1 to {MAX_LENGTH}."
    if unit not in (None, "") and unit not in UNITS:
        problems["notice_unit"] = "Choose calendar days or business days."
    if objection_days is not None:
        if (not isinstance(objection_days, int) or isinstance(objection_days, bool)
                or not 1 <= objection_days <= MAX_OBJECTION_DAYS):
            problems["objection_days"] = (f"The objection window is a whole number of days from 1 to "
                                          f"{MAX_OBJECTION_DAYS}.")
        elif isinstance(length, int) and "notice_length" not in problems and objection_days > length:
            problems["objection_days"] = (f"The objection window ({objection_days} days) cannot be longer "
                                          f"than the notice term ({length} days): the customer must be "
                                          "able to object before the change takes effect.")
    return problems


@dataclass(frozen=True)
class Candidate:
    """An earliest effective date and who requires it: an organisation's name and term, or "" for the
    notice policies."""

    at: datetime
    label: str
    detail: str = ""


def longest(candidates: Iterable[Candidate]) -> Candidate | None:
    """The latest date wins; on a tie the first given (the policies come before the contracts, so a
    contract is named only when it really moves the date)."""
    best: Candidate | None = None
    for candidate in candidates:
        if best is None or candidate.at > best.at:
            best = candidate
    return best
