"""URL slugs of documents and sub-processors: one pattern for routes and for new entries."""

from __future__ import annotations

import re

PATTERN = r"[a-z0-9][a-z0-9-]{0,79}"
# Paths that sit beside the slugs: /subprocessors/compare, /api/v1/subprocessors/changes.
RESERVED = frozenset({"changes", "compare"})


def check_slug(slug: str) -> str:
    if not re.fullmatch(PATTERN, slug):
        raise ValueError(
            f"{slug!r} is not a valid slug: use 1 to 80 lowercase letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    if slug in RESERVED:
        raise ValueError(f"{slug!r} is reserved for a page of the site; choose another slug")
    return slug
