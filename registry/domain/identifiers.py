"""Identifiers the DORA register of information asks for: LEI, EUID, country and ICT service type."""

from __future__ import annotations

import re
import string

import pycountry

LEI_LENGTH = 20
_LEI_SHAPE = re.compile(r"[0-9A-Z]{18}[0-9]{2}")
# EUID (Implementing Regulation (EU) 2021/1042): country code, register code, ".", registration number.
_EUID_SHAPE = re.compile(r"([A-Z]{2})([0-9A-Z]{1,13})\.([0-9A-Za-z./+\-]{1,50})")

# Annex III of Implementing Regulation (EU) 2024/2956: the type of ICT services, with its labels.
ICT_SERVICE_TYPES = {
    "S01": "ICT project management",
    "S02": "ICT Development",
    "S03": "ICT help desk and first level support",
    "S04": "ICT security management services",
    "S05": "Provision of data",
    "S06": "Data analysis",
    "S07": "ICT, facilities and hosting services (excluding Cloud services)",
    "S08": "Computation",
    "S09": "Non-Cloud Data storage",
    "S10": "Telecom carrier",
    "S11": "Network infrastructure",
    "S12": "Hardware and physical devices",
    "S13": "Software licencing (excluding SaaS)",
    "S14": "ICT operation management (including maintenance)",
    "S15": "ICT Consulting",
    "S16": "ICT Risk management",
    "S17": "Cloud services: IaaS",
    "S18": "Cloud services: PaaS",
    "S19": "Cloud services: SaaS",
}


class IdentifierError(ValueError):
    """An identifier that cannot be right; the message says why, for the reader who typed it."""


def _as_number(text: str) -> int:
    """ISO 7064 MOD 97-10 reads letters as two digits: A=10 ... Z=35."""
    return int("".join(str(int(c, 36)) for c in text))


def lei_check_digits(base: str) -> str:
    """The two check digits that complete an 18-character LEI base (ISO 17442, ISO 7064 MOD 97-10)."""
    return f"{98 - _as_number(base.upper() + '00') % 97:02d}"


def is_valid_lei(text: str) -> bool:
    return bool(_LEI_SHAPE.fullmatch(text)) and _as_number(text) % 97 == 1


def check_lei(text: str) -> str:
    """The LEI, uppercase and without spaces, or IdentifierError."""
    lei = "".join(text.split()).upper()
    if len(lei) != LEI_LENGTH:
        raise IdentifierError(f"An LEI has 20 characters; this has {len(lei)}.")
    if not _LEI_SHAPE.fullmatch(lei):
        raise IdentifierError("An LEI is 18 letters or digits followed by two check digits.")
    if not is_valid_lei(lei):
        raise IdentifierError("This LEI's check digits do not match: a character is mistyped.")
    return lei


def check_euid(text: str) -> str:
    """The EUID with its country and register code uppercase, or IdentifierError."""
    prefix, dot, number = text.strip().partition(".")
    match = _EUID_SHAPE.fullmatch(f"{prefix.upper()}{dot}{number}")
    if match is None:
        raise IdentifierError("An EUID is a country code, the register's code, a dot and the "
                              "registration number, e.g. DEK1101R.HRB116737.")
    country = match.group(1)
    # Greece is EL in EU registers, GR in ISO 3166.
    if country != "EL" and pycountry.countries.get(alpha_2=country) is None:
        raise IdentifierError(f"An EUID starts with a country code; {country} is not one.")
    return match.group(0)


def check_country(text: str) -> str:
    """An ISO 3166 alpha-2 code, uppercase, or IdentifierError."""
    code = text.strip().upper()
    if len(code) != 2 or not set(code) <= set(string.ascii_uppercase) \
            or pycountry.countries.get(alpha_2=code) is None:
        raise IdentifierError(f"{text.strip()[:10]!r} is not a two-letter ISO country code, e.g. DE.")
    return code


def check_service_type(text: str) -> str:
    code = text.strip().upper()
    if code not in ICT_SERVICE_TYPES:
        raise IdentifierError("Choose an ICT service type from S01 to S19.")
    return code
