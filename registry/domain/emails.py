"""Email addresses as the mail provider accepts them: trimmed, lower-cased, IDN domains in punycode.

SendGrid validates every `to` address of a Mail Send request against the JSON Schema format
`email` and answers 400 for the whole request (up to 1,000 recipients) when one fails. So an address
is accepted only in the plain form that format allows: an ASCII dot-atom before the @ (no quoted
local parts, no dots at either end or doubled), and a host name after it (no IP literal) with a
top-level domain, its internationalised labels converted to punycode as the provider expects.
"""

from __future__ import annotations

import re
import string

import idna

from registry.domain.text import control_characters, describe, invisible_characters, invisible_message

LOCAL_MAX = 64
DOMAIN_MAX = 255  # 64 + "@" + 255 = 320, the longest address the database stores
_ATEXT = "a-z0-9!#$%&'*+/=?^_`{|}~-"
_LOCAL = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_LOCAL_CHARS = frozenset(string.ascii_lowercase + string.digits + "!#$%&'*+/=?^_`{|}~-.")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
EXAMPLE = "like name@example.com"


class InvalidAddress(ValueError):
    """An address the provider would refuse; `message` says why, for a form or an import report."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def normalise_address(raw: str) -> str:
    """The address as stored and sent, or InvalidAddress naming the first problem."""
    address = (raw or "").strip()
    if not address:
        raise InvalidAddress("Enter your email address.")
    if len(address) > 4 * (LOCAL_MAX + 1 + DOMAIN_MAX):
        raise InvalidAddress("This is far too long for an email address.")
    if found := control_characters(address):
        raise InvalidAddress(f"Remove the control character {found[0]} from the address.")
    if found := invisible_characters(address):
        raise InvalidAddress(invisible_message(found))
    if '"' in address:
        raise InvalidAddress("Quoted addresses (with \" marks) cannot be delivered by our mail provider; "
                             "use a plain address, " + EXAMPLE + ".")
    if any(c.isspace() for c in address):
        raise InvalidAddress(f"An email address has no spaces: enter one address, {EXAMPLE}.")
    if address.count("@") != 1:
        problem = "has no @" if "@" not in address else "has more than one @"
        raise InvalidAddress(f"This address {problem}: enter one address, {EXAMPLE}.")
    local, domain = address.lower().split("@")
    return f"{_check_local(local)}@{_check_domain(domain)}"


def _check_local(local: str) -> str:
    if not local:
        raise InvalidAddress(f"Put the mailbox name before the @, {EXAMPLE}.")
    if not local.isascii():
        char = next(c for c in local if not c.isascii())
        raise InvalidAddress(f"The part before the @ may use only ASCII letters, digits and . ! # $ % & ' * "
                             f"+ - / = ? ^ _ ` {{ | }} ~; our mail provider refuses {char!r} "
                             f"({describe(char)}).")
    if len(local) > LOCAL_MAX:
        raise InvalidAddress(f"The part before the @ is {len(local)} characters long; "
                             f"the limit is {LOCAL_MAX}.")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidAddress("The part before the @ cannot start or end with a dot, "
                             "or have two dots in a row.")
    if not _LOCAL.fullmatch(local):
        char = next(c for c in local if c not in _LOCAL_CHARS)
        raise InvalidAddress(f"The part before the @ cannot contain {char!r}.")
    return local


def _check_domain(domain: str) -> str:
    if not domain:
        raise InvalidAddress(f"Put the domain after the @, {EXAMPLE}.")
    if domain.startswith("[") or all(label.isdigit() for label in domain.split(".")):
        raise InvalidAddress("Use a domain name after the @, not an IP address.")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise InvalidAddress(f"The domain {domain} is not a valid internationalised domain name "
                                 f"({error}).") from None
    if len(domain) > DOMAIN_MAX:
        raise InvalidAddress(f"The domain is {len(domain)} characters long; the limit is {DOMAIN_MAX}.")
    labels = domain.split(".")
    if len(labels) < 2 or not labels[-1]:
        raise InvalidAddress(f"The domain needs a dot and an ending such as .com, {EXAMPLE}.")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidAddress(f"The domain {domain} is not valid: each part between dots has 1 to 63 letters, "
                             "digits or hyphens, and does not start or end with a hyphen.")
    if not _TLD.fullmatch(labels[-1]):
        raise InvalidAddress(f"The domain must end in a name such as .com or .pl, not .{labels[-1]}.")
    return domain
