"""The sign-in throttling rules: the growing wait, forgetting, refusal windows, untrusted text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from registry.domain import throttle

NOW = datetime(2026, 12, 1, 15, 7, 31, tzinfo=UTC)


def test_the_first_failures_cost_nothing_then_the_wait_doubles_up_to_the_cap():
    waits = [throttle.account_delay(failures).total_seconds() for failures in range(0, 16)]
    assert waits == [0, 0, 0, 0, 0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
    assert throttle.account_delay(10_000) == throttle.MAX_DELAY


@given(st.integers(min_value=0, max_value=10**6))
def test_the_wait_never_shrinks_as_failures_grow_and_never_passes_the_cap(failures):
    assert throttle.account_delay(failures) <= throttle.account_delay(failures + 1) <= throttle.MAX_DELAY


def test_an_attempt_waits_from_the_latest_failure():
    assert throttle.account_wait(6, NOW, NOW) == timedelta(seconds=2)
    assert throttle.account_wait(6, NOW, NOW + timedelta(seconds=1.5)) == timedelta(seconds=0.5)
    assert throttle.account_wait(6, NOW, NOW + timedelta(seconds=2)) == timedelta(0)
    assert throttle.account_wait(5, NOW, NOW) == timedelta(0)
    assert throttle.account_wait(0, None, NOW) == timedelta(0)


def test_failures_are_forgotten_once_the_attack_is_quiet_for_an_hour():
    assert throttle.live_failures(40, NOW, NOW + timedelta(minutes=59)) == 40
    assert throttle.live_failures(40, NOW, NOW + throttle.FORGET_AFTER) == 0
    assert throttle.account_wait(40, NOW, NOW + throttle.FORGET_AFTER) == timedelta(0)


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_refusal_windows_are_aligned_and_contain_their_moment(moment):
    start = throttle.refusal_window(moment)
    assert start <= moment < start + throttle.REFUSAL_WINDOW
    assert throttle.refusal_window(start) == start
    assert not throttle.window_closed(start, moment)
    assert throttle.window_closed(start, start + throttle.REFUSAL_WINDOW + throttle.REFUSAL_GRACE)


def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_64():
    assert throttle.address_key("203.0.113.9") == "203.0.113.9"
    assert throttle.address_key("2001:db8:1:2:aaaa::1") == throttle.address_key("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert throttle.address_key("2001:db8:1:3::1") != throttle.address_key("2001:db8:1:2::1")
    assert throttle.address_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert throttle.address_key(None) == "-"
    assert throttle.address_key("not an address\n" + "x" * 100).startswith("not an address\ufffd")


def test_untrusted_text_is_one_short_printable_line():
    assert throttle.untrusted_text("someone@example.com") == "someone@example.com"
    assert throttle.untrusted_text("a\nb\x00c\u202ed") == "a\ufffdb\ufffdc\ufffdd"
    cut = throttle.untrusted_text("x" * 1000)
    assert cut == "x" * 64 + "…"
    assert throttle.untrusted_text(None) == ""
