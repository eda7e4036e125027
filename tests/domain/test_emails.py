"""Addresses as SendGrid accepts them (issue 9 item 18): one refused address used to fail a batch of 1,000."""

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from registry.domain.emails import InvalidAddress, normalise_address

# SendGrid's OpenAPI description (oai_stoplight_v3paths.json, definitions/to_email_array) declares
# personalizations[].to[].email as `"format": "email"`, with no pattern of its own. The contract test's
# validator (Stoplight Prism) checks that format with ajv-formats in its default "full" mode, whose
# pattern is this one (ajv-formats/dist/formats.js, `fullFormats.email`), case-insensitive.
SENDGRID_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    re.IGNORECASE,
)


@pytest.mark.parametrize(("raw", "expected"), [
    (" Ana@Example.COM ", "ana@example.com"),
    ("user@exämple.pl", "user@xn--exmple-cua.pl"),
    ("user@BÜCHER.de", "user@xn--bcher-kva.de"),
    ("a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
    ("o'brien+notices@sub.example.co.uk", "o'brien+notices@sub.example.co.uk"),
    ("x@a-b.example", "x@a-b.example"),
    ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
])
def test_accepted_and_normalised(raw, expected):
    assert normalise_address(raw) == expected
    assert SENDGRID_EMAIL.fullmatch(expected)


@pytest.mark.parametrize(("raw", "words"), [
    ("", "Enter your email address"),
    ("zoë@example.com", "'ë' (U+00EB LATIN SMALL LETTER E WITH DIAERESIS)"),
    ("😀@example.com", "U+1F600 GRINNING FACE"),
    ("double..dot@example.com", "two dots in a row"),
    (".lead@example.com", "start or end with a dot"),
    ("trail.@example.com", "start or end with a dot"),
    ('"quoted"@example.com', "Quoted addresses"),
    ('"a b"@example.com', "Quoted addresses"),
    ("a" * 65 + "@example.com", "65 characters long; the limit is 64"),
    ("a@" + ("b" * 60 + ".") * 5 + "com", "the limit is 255"),
    ("a@localhost", "needs a dot"),
    ("a@example.", "needs a dot"),
    ("a@example.c0m", "not .c0m"),
    ("a@[127.0.0.1]", "not an IP address"),
    ("a@127.0.0.1", "not an IP address"),
    ("a@-bad.com", "does not start or end with a hyphen"),
    ("a@b..com", "1 to 63 letters"),
    ("a@under_score.com", "1 to 63 letters"),
    ("a@" + "b" * 64 + ".com", "1 to 63 letters"),
    ("no-at-sign", "has no @"),
    ("a@b@c.com", "more than one @"),
    ("a b@c.com", "no spaces"),
    ("a@b.com\nb@c.com", "no spaces"),
    ("a\x85b@c.com", "control character U+0085"),
    ("a\x00@b.com", "control character U+0000"),
    ("<a@b.com>", "cannot contain '<'"),
    ("a(b)@c.com", "cannot contain '('"),
    ("@example.com", "before the @"),
    ("a@", "after the @"),
    ("ana\u202e@example.com", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("ana@exam\u200bple.com", "U+200B ZERO WIDTH SPACE"),
    ("a@xn--a.com\u00ad", "U+00AD SOFT HYPHEN"),
    ("a@\u0301example.com", "not a valid internationalised domain name"),
    ("a" * 5000 + "@example.com", "far too long"),
])
def test_refused_with_a_message_that_says_why(raw, words):
    with pytest.raises(InvalidAddress) as error:
        normalise_address(raw)
    assert words in error.value.message


LOCAL = st.text(alphabet=st.sampled_from("aZ9.!#$%&'*+/=?^_`{|}~-\"(),:;<>@[\\] ëł😀\u202e\u200b"),
                max_size=70)
LABEL = st.text(alphabet=st.sampled_from("aZ9-_äüłß\u200d\u0301日本"), min_size=0, max_size=66)
DOMAIN = st.lists(LABEL, min_size=1, max_size=5).map(".".join)


@given(st.one_of(st.tuples(LOCAL, DOMAIN).map("@".join), st.emails().map(str), st.text(max_size=80)))
@example("user@exämple.pl")
@example("a@b.c-d")
def test_whatever_is_accepted_matches_sendgrid_format_and_is_stable(raw):
    try:
        address = normalise_address(raw)
    except InvalidAddress as error:
        assert error.message
        return
    assert SENDGRID_EMAIL.fullmatch(address), address
    local, domain = address.split("@")
    assert len(local) <= 64 and len(domain) <= 255 and address.isascii() and address == address.lower()
    assert normalise_address(address) == address
