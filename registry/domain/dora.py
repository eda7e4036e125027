"""The DORA register-ready export: templates B_05.01 and B_05.02 of Implementing Regulation (EU) 2024/2956.

Rows only, as plain values; the customer merges them into their register and packages it as xBRL-CSV.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from registry.domain.chain import Link, ordered
from registry.domain.subprocessors import Entry

# Template B_05.01, ICT third-party service providers.
B_05_01_COLUMNS = ("c0010", "c0020", "c0030", "c0040", "c0050", "c0060", "c0070", "c0080", "c0090",
                   "c0100", "c0110", "c0120")
# Template B_05.02, ICT service supply chains.
B_05_02_COLUMNS = ("c0010", "c0020", "c0030", "c0040", "c0050", "c0060", "c0070")
LEGAL_PERSON = "Legal person, excluding individual acting in a business capacity"

README = """\
DORA register of information: sub-processors as ICT third-party service providers
==================================================================================

Two CSV files, one per template of Implementing Regulation (EU) 2024/2956, with the templates'
column codes as headers. Merge them into your register; the xBRL-CSV packaging (the
report package, parameters and the eba_ codes of the closed lists) is yours.

b_05.01.csv  ICT third-party service providers: every sub-processor on the list that has an LEI or
             an EUID, and every provider of its chain (rank 2 and deeper) that has one.
  c0010  Identification code of the ICT third-party service provider (LEI, else EUID)
  c0020  Type of code (LEI or EUID)
  c0030  Additional identification code (the EUID when the LEI is in c0010)
  c0040  Type of additional identification code
  c0050  Legal name of the ICT third-party service provider
  c0060  Name in Latin alphabet
  c0070  Type of person
  c0080  Country of the headquarters (ISO 3166 alpha-2)
  c0090  Currency                                  EMPTY: yours to add
  c0100  Total annual expense or estimated cost     EMPTY: yours to add
  c0110  Identification code of the ultimate parent undertaking (LEI)
  c0120  Type of code of the ultimate parent undertaking

b_05.02.csv  ICT service supply chains: one row per provider and rank.
  c0010  Contractual arrangement reference number   EMPTY: yours to add (your contract with us)
  c0020  Type of ICT services (S01 to S19, Annex III)
  c0030  Identification code of the ICT third-party service provider
  c0040  Type of code
  c0050  Rank in the chain (see below)
  c0060  Identification code of the recipient of sub-contracted ICT services
  c0070  Type of code of the recipient

Ranks are as on our pages: our sub-processors are rank 1 here, their own sub-processors rank 2,
theirs rank 3. In your register we are your direct ICT third-party service provider (rank 1):
add one to every rank, and put our own identifier as the recipient of the rows that have none.

Also yours: the criticality or importance of the functions supported (B_06.01), the
contractual arrangements (B_02.01, B_02.02) and the assessments (B_07.01).
Providers without an LEI or EUID are left out of b_05.01.csv (the register requires one); they
are on the public sub-processor pages with their chain.
"""


@dataclass(frozen=True)
class Provider:
    code: str
    code_type: str
    extra_code: str
    extra_code_type: str
    legal_name: str
    latin_name: str
    country: str
    parent_code: str


def _entry_provider(entry: Entry) -> Provider | None:
    if entry.lei:
        code, kind = entry.lei, "LEI"
        extra, extra_kind = (entry.euid, "EUID") if entry.euid else ("", "")
    elif entry.euid:
        code, kind, extra, extra_kind = entry.euid, "EUID", "", ""
    else:
        return None
    return Provider(code, kind, extra, extra_kind, entry.legal_entity, entry.latin_name or entry.legal_entity,
                    entry.hq_country, entry.parent_lei)


def _link_provider(link: Link) -> Provider | None:
    code, kind = link.identifier
    if not code:
        return None
    extra, extra_kind = (link.euid, "EUID") if link.lei and link.euid else ("", "")
    return Provider(code, kind, extra, extra_kind, link.legal_entity, link.legal_entity, link.country, "")


def b_05_01(entries: Iterable[Entry]) -> list[tuple[str, ...]]:
    """One row per provider with an identifier, each code once (a provider in several chains too)."""
    rows: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        providers = [_entry_provider(entry), *(_link_provider(link) for link in entry.chain)]
        for p in providers:
            if p is None or p.code in rows:
                continue
            rows[p.code] = (p.code, p.code_type, p.extra_code, p.extra_code_type, p.legal_name, p.latin_name,
                            LEGAL_PERSON, p.country, "", "", p.parent_code, "LEI" if p.parent_code else "")
    return list(rows.values())


def b_05_02(entries: Iterable[Entry]) -> list[tuple[str, ...]]:
    """One row per entry (rank 1) and per chain link (its rank), with the recipient it works for.

    A link without an identifier cannot be a row (c0030 is required); its own subcontractors still
    are, with the nearest identified provider above them as the recipient.
    """
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        top = _entry_provider(entry)
        if top is None:
            continue
        service = entry.ict_service_type
        rows.append(("", service, top.code, top.code_type, "1", "", ""))
        by_name = {link.name.casefold(): link for link in entry.chain}
        for link, rank in ordered(entry.chain):
            code, kind = link.identifier
            if not code:
                continue
            recipient = top.code, top.code_type
            parent = by_name.get(link.parent.casefold())
            while parent is not None:
                if parent.identifier[0]:
                    recipient = parent.identifier
                    break
                parent = by_name.get(parent.parent.casefold())
            rows.append(("", link.service_type or service, code, kind, str(rank), *recipient))
    return rows
