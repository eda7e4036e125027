"""The chain below a sub-processor: its own sub-processors (rank 2) and theirs (rank 3 and deeper)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from registry.domain.identifiers import (
    ICT_SERVICE_TYPES,
    IdentifierError,
    check_country,
    check_euid,
    check_lei,
    check_service_type,
)

MAX_LINKS = 50
# Rank 1 is the entry itself; a chain deeper than this is a data-entry mistake, not a supply chain.
MAX_RANK = 6
MAX_TEXT = 300
LINK_FIELDS = ("name", "legal_entity", "country", "service", "service_type", "lei", "euid", "parent")


@dataclass(frozen=True)
class Link:
    """One sub-processor in the chain; `parent` is the name of the link it works for ("": the entry)."""

    name: str
    legal_entity: str
    country: str
    service: str
    service_type: str = ""
    lei: str = ""
    euid: str = ""
    parent: str = ""

    @property
    def identifier(self) -> tuple[str, str]:
        """(code, type of code) as the register writes it, LEI first; ("", "") for none."""
        if self.lei:
            return self.lei, "LEI"
        if self.euid:
            return self.euid, "EUID"
        return "", ""

    def as_dict(self) -> dict:
        return asdict(self)


class ChainError(ValueError):
    """A chain that cannot be stored; `row` (0-based) and `field` say where, when one row is at fault."""

    def __init__(self, message: str, row: int | None = None, field: str | None = None):
        super().__init__(message)
        self.row = row
        self.field = field


def _text(row: Mapping, name: str) -> str:
    value = row.get(name)
    return " ".join(value.split()) if isinstance(value, str) else ""


def _link(row: Mapping, index: int) -> Link:
    values = {name: _text(row, name) for name in LINK_FIELDS}
    for name, value in values.items():
        if len(value) > MAX_TEXT:
            raise ChainError(f"Row {index + 1}: at most {MAX_TEXT} characters.", index, name)
    for name in ("name", "legal_entity", "country", "service"):
        if not values[name]:
            label = {"legal_entity": "legal entity"}.get(name, name)
            raise ChainError(f"Row {index + 1}: give the {label}.", index, name)
    checks = {"country": check_country, "service_type": check_service_type, "lei": check_lei,
              "euid": check_euid}
    for name, check in checks.items():
        if values[name]:
            try:
                values[name] = check(values[name])
            except IdentifierError as error:
                raise ChainError(f"Row {index + 1}: {error}", index, name) from None
    return Link(**values)


def _is_blank(row: Mapping) -> bool:
    return not any(_text(row, name) for name in LINK_FIELDS)


def check_chain(rows: Iterable[Mapping]) -> tuple[Link, ...]:
    """The chain typed or sent as rows of text, checked; blank rows are skipped.

    Refuses unknown parents, self-parents, loops, the same name twice and depth beyond MAX_RANK.
    """
    indexed = [(i, row) for i, row in enumerate(rows) if isinstance(row, Mapping) and not _is_blank(row)]
    if len(indexed) > MAX_LINKS:
        raise ChainError(f"A chain lists at most {MAX_LINKS} sub-processors.")
    links = [(i, _link(row, i)) for i, row in indexed]
    by_name: dict[str, tuple[int, Link]] = {}
    for i, link in links:
        key = link.name.casefold()
        if key in by_name:
            raise ChainError(f"Row {i + 1}: {link.name} is listed twice; each sub-processor once, "
                             "under the one it works for.", i, "name")
        by_name[key] = (i, link)
    for i, link in links:
        if not link.parent:
            continue
        if link.parent.casefold() == link.name.casefold():
            raise ChainError(f"Row {i + 1}: {link.name} cannot work for itself.", i, "parent")
        if link.parent.casefold() not in by_name:
            raise ChainError(f"Row {i + 1}: {link.parent} is not in the chain; give the name of "
                             "another row, or leave it empty for the entry itself.", i, "parent")
    chain = tuple(link for _, link in links)
    try:
        rank_of(chain)
    except ChainError as error:
        # rank_of counts the rows it was given; the reader counts the rows of the form
        row = indexed[error.row][0]
        raise ChainError(f"Row {row + 1}: {error}", row, error.field) from None
    return chain


def rank_of(chain: tuple[Link, ...]) -> dict[str, int]:
    """Each link's rank by name: 2 under the entry, one more under each link; ChainError on a loop
    or beyond MAX_RANK. Parents must be names in the chain (check_chain makes sure)."""
    by_name = {link.name.casefold(): (i, link) for i, link in enumerate(chain)}
    ranks: dict[str, int] = {}
    for start in chain:
        path: list[str] = []
        key = start.name.casefold()
        while key not in ranks:
            if key in path:
                loop = [by_name[k][1].name for k in path[path.index(key):]] + [by_name[key][1].name]
                raise ChainError(f"The chain loops: {' → '.join(loop)}.", by_name[key][0], "parent")
            path.append(key)
            parent = by_name[key][1].parent.casefold()
            if not parent:
                base = 1  # the entry itself
                break
            key = parent
        else:
            base = ranks[key]
        for depth, name in enumerate(reversed(path), start=1):
            ranks[name] = base + depth
            if ranks[name] > MAX_RANK:
                i, link = by_name[name]
                raise ChainError(f"{link.name} would be at rank {ranks[name]}; a chain goes at most "
                                 f"{MAX_RANK} deep.", i, "parent")
    return {by_name[key][1].name: rank for key, rank in ranks.items()}


def chain_from_json(value: object) -> tuple[Link, ...]:
    """The chain as stored (a list of objects); it was checked when it was written."""
    if not isinstance(value, list):
        return ()
    return tuple(Link(**{name: str(item.get(name) or "") for name in LINK_FIELDS})
                 for item in value if isinstance(item, dict))


def ordered(chain: tuple[Link, ...]) -> list[tuple[Link, int]]:
    """The links depth first, each under the one it works for, with its rank: a nested list's order."""
    children: dict[str, list[Link]] = {}
    for link in chain:
        children.setdefault(link.parent.casefold(), []).append(link)
    out: list[tuple[Link, int]] = []

    def walk(parent: str, rank: int) -> None:
        for link in sorted(children.get(parent, []), key=lambda item: item.name.casefold()):
            out.append((link, rank))
            walk(link.name.casefold(), rank + 1)

    walk("", 2)
    return out


def link_text(link: Link) -> str:
    """"Name (US, hosting)": how a notice names one link."""
    return f"{link.name} ({link.country}, {link.service})"


def chain_text(chain: tuple[Link, ...]) -> str:
    return "; ".join(link_text(link) for link, _ in ordered(chain)) or "none"


def chain_delta(old: tuple[Link, ...], new: tuple[Link, ...]) -> str:
    """What changed between two chains, for readers: "added X (US, hosting); removed Y"."""
    before = {link.name.casefold(): link for link in old}
    after = {link.name.casefold(): link for link in new}
    parts = [f"added {link_text(after[key])}" for key in after if key not in before]
    parts += [f"changed {link_text(after[key])}" for key in after
              if key in before and before[key] != after[key]]
    parts += [f"removed {before[key].name}" for key in before if key not in after]
    return "; ".join(parts) or "no change"


def service_label(code: str) -> str:
    return f"{code} {ICT_SERVICE_TYPES[code]}" if code in ICT_SERVICE_TYPES else ""
