"""Sign-in throttling rules: the growing wait for an account under attack, and refusal windows.

OWASP's authentication guidance: a hard lockout lets anyone keep an account locked, so an account
that keeps failing from many addresses only makes the next attempt wait, longer after each failure,
and a device that signed in before is not made to wait at all (the caller decides that).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

# Failures (from any address) an account may have before anyone has to wait: typos cost nothing.
FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=2)
# The longest wait: someone who forgot their password on a new device is never out for longer.
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten: an attack that stopped stops costing anything.
FORGET_AFTER = timedelta(hours=1)

# Refused attempts are audited as one counter per (address, account, window), not one row each.
REFUSAL_WINDOW = timedelta(minutes=15)
# A window is summarised only after this much more time, so that a worker whose clock is a little
# behind never counts into a window that was already closed.
REFUSAL_GRACE = timedelta(minutes=1)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def account_delay(failures: int) -> timedelta:
    """How long after the latest failure the next attempt must wait: doubling, capped."""
    if failures <= FREE_FAILURES:
        return timedelta(0)
    doublings = min(failures - FREE_FAILURES - 1, 20)  # 2 s * 2**20 is far past the cap already
    return min(FIRST_DELAY * 2**doublings, MAX_DELAY)


def live_failures(failures: int, last_failure_at: datetime | None, now: datetime) -> int:
    """The failures that still count at `now` (all of them, or none once the attack went quiet)."""
    if last_failure_at is None or now - last_failure_at >= FORGET_AFTER:
        return 0
    return failures


def account_wait(failures: int, last_failure_at: datetime | None, now: datetime) -> timedelta:
    """How long an attempt at `now` must still wait (zero: it may go ahead)."""
    failures = live_failures(failures, last_failure_at, now)
    if failures == 0 or last_failure_at is None:
        return timedelta(0)
    return max(last_failure_at + account_delay(failures) - now, timedelta(0))


def refusal_window(now: datetime) -> datetime:
    """The start of the fixed window `now` falls in (windows are aligned, the same in every worker)."""
    elapsed = (now - _EPOCH) // REFUSAL_WINDOW
    return _EPOCH + elapsed * REFUSAL_WINDOW


def window_closed(window_start: datetime, now: datetime) -> bool:
    return now >= window_start + REFUSAL_WINDOW + REFUSAL_GRACE


def address_key(address: str | None) -> str:
    """What the per-address limits count by: an IPv4 address, or an IPv6 address's /64.

    One IPv6 host usually holds a whole /64 and can pick a new address for every request.
    """
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return untrusted_text(address or "-")
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def untrusted_text(raw: object, limit: int = 64) -> str:
    """Text an unauthenticated client typed, made safe to keep: one printable line, cut short."""
    text = "".join(char if char.isprintable() else "\ufffd" for char in str(raw or ""))
    return text[:limit] + ("…" if len(text) > limit else "")
