"""Parse query parameters strictly: a malformed value is a 400 with a message, never a 500."""

from __future__ import annotations

import re
from datetime import date, datetime

import pycountry
from flask import abort, request

MAX_PAGE = 1_000_000
# PostgreSQL's integer: ids are serial columns, so no row has a larger one, and a larger value in a
# query is an error there rather than "not found".
MAX_ID = 2**31 - 1


def text(name: str, *, max_length: int = 200) -> str:
    raw = request.args.get(name, "")
    # Checked before stripping, so that a value of only control characters is refused, not dropped.
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in raw):
        abort(400, description=f"'{name}' contains control characters.")
    value = raw.strip()
    if len(value) > max_length:
        abort(400, description=f"'{name}' is longer than {max_length} characters.")
    return value


def choice(name: str, allowed: list[str] | tuple[str, ...] | set[str], default: str = "") -> str:
    value = text(name)
    if not value:
        return default
    if value not in allowed:
        abort(400, description=f"Unknown value for '{name}': {value!r}. "
                               f"Allowed: {', '.join(sorted(allowed))}.")
    return value


COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)


def one_of(name: str, allowed: frozenset[str] | set[str] | list[str], *, what: str = "") -> str:
    """A value that must be exactly one of `allowed`, or "" when absent (the API's enums); `what`
    describes the values where there are too many to list."""
    value = request.args.get(name, "")
    if value and value not in allowed:
        shown = what or "Allowed: " + ", ".join(sorted(allowed))
        abort(400, description=f"Unknown value for '{name}': {value[:80]!r}. {shown}.")
    return value


def country(name: str) -> str:
    """An ISO 3166-1 alpha-2 code, or "" when absent; a code no entry uses is a filter like any other."""
    value = text(name, max_length=20).upper()
    if value and value not in COUNTRY_CODES:
        abort(400, description=f"'{name}' must be an ISO 3166-1 country code such as DE or US, "
                               f"not {value!r}.")
    return value


# What RFC 3339 calls a full-date and a date-time (the time may omit seconds, and a "+" sent unencoded in
# a URL arrives as a space). Python's fromisoformat alone also takes "20260131" and "2026-W05-6", which
# no client means and the API's description does not allow.
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                       r"(?P<offset>[Zz]|[+ -][0-9]{2}:[0-9]{2})?)?")


def iso_date(name: str) -> date | None:
    value = text(name, max_length=10)
    if not value:
        return None
    try:
        if not DATE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        abort(400, description=f"'{name}' must be a date written YYYY-MM-DD, not {value!r}.")
    if not 1970 <= day.year <= 2200:
        abort(400, description=f"'{name}' must be a date between 1970 and 2200.")
    return day


def iso_timestamp(name: str, *, required: bool = False) -> datetime | None:
    value = text(name, max_length=40)
    if not value:
        if required:
            abort(400, description=f"'{name}' is required (an ISO 8601 timestamp with offset).")
        return None
    match = TIMESTAMP.fullmatch(value)
    try:
        if not match:
            raise ValueError(value)
        at = match.start("offset") if match["offset"] else len(value)
        moment = datetime.fromisoformat((value[:at] + value[at:].replace(" ", "+")).upper())
    except ValueError:
        abort(400, description=f"'{name}' must be an ISO 8601 timestamp, not {value!r}.")
    if moment.tzinfo is None:
        abort(400, description=f"'{name}' needs a UTC offset, e.g. 2026-01-31T12:00:00Z.")
    return moment


def positive_int(name: str, default: int, *, maximum: int = MAX_PAGE) -> int:
    """Digits only, nothing around them: " 2" is as wrong as "2x"."""
    value = request.args.get(name, "")
    if not value:
        return default
    if not (len(value) <= len(str(maximum)) and value.isascii() and value.isdigit()
            and 1 <= int(value) <= maximum):
        abort(400, description=f"'{name}' must be a whole number from 1 to {maximum}.")
    return int(value)


def row_id(value: str | None) -> int | None:
    """A row id sent in a form or query (1 to MAX_ID, digits only), or None for anything else."""
    if not value or len(value) > 10 or not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None
