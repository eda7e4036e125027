"""LEI check digits (ISO 17442 / ISO 7064 MOD 97-10), EUID shape, countries and ICT service types."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain.identifiers import (
    ICT_SERVICE_TYPES,
    IdentifierError,
    check_country,
    check_euid,
    check_lei,
    check_service_type,
    is_valid_lei,
    lei_check_digits,
)

# Published LEIs: GLEIF itself, Apple Inc., Deutsche Bank AG, a GLEIF documentation example.
REAL_LEIS = ["506700GE1G29325QX363", "HWUPKR0MPOU8FGXBT394", "7LTWFZYICNSX8D621K86",
             "529900T8BM49AURSDO55"]
ALPHABET = string.digits + string.ascii_uppercase


@pytest.mark.parametrize("lei", REAL_LEIS)
def test_real_leis_validate_and_their_check_digits_are_recomputed(lei):
    assert is_valid_lei(lei)
    assert check_lei(lei) == lei
    assert lei_check_digits(lei[:18]) == lei[18:]


def test_an_lei_is_written_back_uppercase_without_spaces():
    assert check_lei(" 506700ge1g29325qx363 ") == "506700GE1G29325QX363"
    assert check_lei("5067 00GE 1G29 325Q X363") == "506700GE1G29325QX363"


@pytest.mark.parametrize("text, message", [
    ("506700GE1G29325QX364", "check digits"),  # last digit off
    ("506700GE1G29325QX36", "20 characters"),
    ("506700GE1G29325QX3630", "20 characters"),
    ("506700GE1G29325QX3A3", "two check digits"),  # a letter among the check digits
    ("506700GE1G-29325QX36", "18 letters or digits"),
    ("", "20 characters"),
    ("ÄÖÜ700GE1G29325QX363", "18 letters or digits"),
])
def test_bad_leis_are_refused_with_a_reason(text, message):
    with pytest.raises(IdentifierError, match=message):
        check_lei(text)


@settings(deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=18, max_size=18))
def test_any_base_with_its_computed_check_digits_validates(base):
    assert is_valid_lei(base + lei_check_digits(base))


@settings(deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=18, max_size=18), st.integers(0, 19), st.integers(1, 35))
def test_any_single_character_change_within_its_kind_fails(base, position, shift):
    # A digit for another digit, a letter for another letter: the number changes by d * 10^k with
    # 0 < |d| < 97, never a multiple of the prime 97, so MOD 97-10 always notices.
    lei = base + lei_check_digits(base)
    kind = string.digits if lei[position].isdigit() else string.ascii_uppercase
    replacement = kind[(kind.index(lei[position]) + shift) % len(kind)]
    if replacement == lei[position]:
        replacement = kind[(kind.index(lei[position]) + 1) % len(kind)]
    assert not is_valid_lei(lei[:position] + replacement + lei[position + 1:])


def test_a_letter_typed_as_a_digit_can_slip_through():
    # The limit of the standard: a letter is two digits in the check, so a letter replaced by a digit
    # shifts the number and may pass (about 1 in 270 such slips). The register's own checks share it.
    lei = "6K111Y0ODR1XESVZEM78"
    assert is_valid_lei(lei) and is_valid_lei("6K1117" + lei[6:])


@pytest.mark.parametrize("text, expected", [
    ("DEK1101R.HRB116737", "DEK1101R.HRB116737"),
    ("dek1101r.HRB116737", "DEK1101R.HRB116737"),
    ("FRRCS.552032534", "FRRCS.552032534"),
    ("ELGEMI.123456", "ELGEMI.123456"),  # Greece is EL in the EU's registers
])
def test_euids_of_the_right_shape_are_accepted(text, expected):
    assert check_euid(text) == expected


@pytest.mark.parametrize("text", ["", "DEK1101R", "DEK1101RHRB116737", "D.123", "XXK1101R.HRB1",
                                  "DEK1101R.", ".HRB116737", "DE K1101R.HRB1", "DEK1101R.HRB 1",
                                  "DE" + "K" * 20 + ".1", "DEK1101R.<script>"])
def test_malformed_euids_are_refused(text):
    with pytest.raises(IdentifierError):
        check_euid(text)


def test_countries_and_service_types():
    assert check_country(" ie ") == "IE"
    for bad in ("", "XX", "Ireland", "I", "1E"):
        with pytest.raises(IdentifierError):
            check_country(bad)
    assert check_service_type("s19") == "S19"
    assert list(ICT_SERVICE_TYPES) == [f"S{n:02d}" for n in range(1, 20)]
    assert ICT_SERVICE_TYPES["S19"] == "Cloud services: SaaS"
    for bad in ("S00", "S20", "ICT_1", ""):
        with pytest.raises(IdentifierError):
            check_service_type(bad)
