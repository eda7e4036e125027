"""The chain below each sub-processor and the DORA register-ready export, through the staff form, the
workflow, the public page, the API and the zip."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.domain.identifiers import is_valid_lei
from registry.extensions import db
from registry.models import ChangeStatus, Notice, SubProcessorRecord
from registry.notify import messages
from registry.services import publishing, workflow
from tests.services.test_workflow import (  # noqa: F401 (fixtures)
    NOW,
    SUBPROCESSOR_EARLIEST,
    build_registry,
    people,
    schedule,
    world,
)

API = "/api/v1"
LEI = "506700GE1G29325QX363"
NEW = {"slug": "newco", "name": "NewCo", "legal_entity": "NewCo Ltd", "address": "1 Road, Dublin",
       "contact": "privacy@newco.example", "purpose": "Hosting", "description": "",
       "data_categories": "Account data", "countries": "IE", "transfer_mechanism": "Within the EEA",
       "website": "https://newco.example", "feature": "", "summary": "New host",
       "lei": LEI.lower(), "euid": "", "latin_name": "", "hq_country": "ie", "parent_name": "",
       "parent_lei": "", "ict_service_type": "S17"}


def rows(*links: dict) -> dict:
    data = {}
    for i, link in enumerate(links):
        data.update({f"chain-{i}-{name}": value for name, value in link.items()})
    return data


LINK = {"name": "Cloudy", "legal_entity": "Cloudy Inc.", "country": "US", "service": "hosting",
        "service_type": "S17", "lei": "HWUPKR0MPOU8FGXBT394", "euid": "", "parent": ""}
UNDER = {**LINK, "name": "Powerco", "legal_entity": "Powerco LLC", "service": "power", "service_type": "S12",
         "lei": "", "parent": "Cloudy"}


@pytest.fixture
def staff(app, make_user, login):
    build_registry(db.session, NOW)
    editor = make_user("editor")
    draft = workflow.create(db.session, title="Draft", summary="s", is_material=True, actor=editor)
    db.session.commit()
    return login(editor), draft.id


def records() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(SubProcessorRecord))


def test_the_form_stores_the_identifiers_and_the_chain(staff):
    client, draft = staff
    response = client.post(f"/admin/change-sets/{draft}/subprocessors/new",
                           data={"csrf_token": client.csrf(), **NEW, **rows(LINK, UNDER, {"name": ""})})
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    record = db.session.scalar(select(SubProcessorRecord).where(SubProcessorRecord.name == "NewCo"))
    assert (record.lei, record.hq_country, record.ict_service_type) == (LEI, "IE", "S17")
    assert [link["name"] for link in record.chain] == ["Cloudy", "Powerco"]
    assert record.chain[1]["parent"] == "Cloudy"

    summary = client.get(f"/admin/change-sets/{draft}").get_data(as_text=True)
    assert "Cloudy (US, hosting); Powerco (US, power)" in summary and LEI in summary
    page = client.get(f"/admin/change-sets/{draft}/subprocessors/newco").get_data(as_text=True)
    # The stored rows, then blank ones to add to them.
    assert 'value="Powerco"' in page and 'name="chain-4-name"' in page


HUGE = "h" * 600_000
CASES = [
    # (fields, the message shown beside the field, text typed that must still be in the form)
    ({"lei": "506700GE1G29325QX364"}, "check digits do not match", "506700GE1G29325QX364"),
    ({"parent_lei": "12345"}, "An LEI has 20 characters", "12345"),
    ({"euid": "DE-HRB-116737"}, "An EUID is a country code", "DE-HRB-116737"),
    ({"euid": "QQK1101R.HRB1"}, "QQ is not one", "QQK1101R.HRB1"),
    ({"hq_country": "Germany"}, "not a two-letter ISO country code", "Germany"),
    ({"ict_service_type": "S20"}, "Not a valid choice", None),
    (rows({**LINK, "parent": "Powerco"}, UNDER), "The chain loops: Cloudy → Powerco → Cloudy", "Powerco"),
    (rows({**LINK, "parent": "Ghost"}), "Ghost is not in the chain", "Ghost"),
    (rows({**LINK, "parent": "Cloudy"}), "cannot work for itself", "Cloudy Inc."),
    (rows(LINK, LINK), "listed twice", "Cloudy"),
    (rows({**LINK, "lei": "HWUPKR0MPOU8FGXBT395"}), "check digits do not match", "HWUPKR0MPOU8FGXBT395"),
    (rows({**LINK, "country": "XX"}), "not a two-letter ISO country code", "Cloudy Inc."),
    (rows({**LINK, "service_type": "S99"}), "from S01 to S19", "Cloudy Inc."),
    (rows({**LINK, "legal_entity": ""}), "give the legal entity", "Cloudy"),
    (rows({**LINK, "name": "two\nlines"}), "field-error", None),
    (rows({**LINK, "service": "x" * 400}), "longer than 300", None),
    (rows(*({**LINK, "name": f"N{i}"} for i in range(52))), "at most 50 sub-processors", None),
    (rows(*({**LINK, "name": f"L{i}", "parent": f"L{i - 1}" if i else ""} for i in range(7))),
     "a chain goes at most 6 deep", "L6"),
    ({"chain-0-name": HUGE}, "longer than 300", None),
    ({"chain-99999999999-name": "Far", "chain-99999999999-legal_entity": "x"}, "give the country", "Far"),
    ({"chain-0-name": "a\x00b"}, "field-error", None),
]


@pytest.mark.parametrize("fields, message, kept", CASES, ids=[str(i) for i in range(len(CASES))])
def test_garbage_is_refused_beside_the_field_and_nothing_typed_is_lost(staff, fields, message, kept):
    client, draft = staff
    before = records()
    response = client.post(f"/admin/change-sets/{draft}/subprocessors/new",
                           data={"csrf_token": client.csrf(), **NEW, **fields})
    assert 400 <= response.status_code < 500
    body = response.get_data(as_text=True)
    assert message in body, body[-3000:]
    if kept is not None:
        assert f'value="{kept}"' in body
        assert 'value="NewCo"' in body
    assert records() == before


def test_the_service_refuses_a_bad_chain_from_any_caller(world):  # noqa: F811
    change_set = publishing.create_change_set(db.session, title="CLI")
    with pytest.raises(publishing.PublishError, match="loops"):
        publishing.draft_subprocessor_change(db.session, change_set, "acme", "change", fields={
            "chain": [{**LINK, "parent": "Powerco"}, UNDER]})
    with pytest.raises(publishing.PublishError, match="check digits"):
        publishing.draft_subprocessor_change(db.session, change_set, "acme", "change",
                                             fields={"lei": LEI[:-1] + "4"})


def test_a_chain_change_goes_through_the_workflow_and_lists_what_changed(world, people, client):  # noqa: F811
    change_set = workflow.create(db.session, title="Acme's chain", summary="Acme lists its providers",
                                 is_material=True, actor=people["editor"], now=NOW)
    workflow.save_subprocessor_change(db.session, change_set, "acme", "change",
                                      fields={"chain": [LINK, UNDER]}, summary="Its providers",
                                      actor=people["editor"], now=NOW)
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    workflow.approve(db.session, change_set, actor=people["approver"], now=NOW)
    schedule(change_set, people["approver"], SUBPROCESSOR_EARLIEST)
    db.session.commit()

    notice = db.session.scalar(select(Notice).where(Notice.change_set_id == change_set.id))
    batch = messages.notice_batch_message(db.session, notice)
    assert ("  Sub-processors: none → added Cloudy (US, hosting); added Powerco (US, power)\n"
            in batch.text), batch.text
    assert "added Cloudy (US, hosting)" in batch.html

    # Announced: the API shows the scheduled change with the chain as it will be.
    data = client.get(f"{API}/subprocessors/acme").get_json()["data"]
    announced = data["history"][-1]
    assert announced["scheduled"] is True
    change = next(c for c in announced["changes"] if c["field"] == "chain")
    assert change["old"] == [] and [(x["name"], x["rank"], x["parent"]) for x in change["new"]] == [
        ("Cloudy", 2, None), ("Powerco", 3, "Cloudy")]

    publishing.complete_notice(db.session, change_set, completed_at=NOW + timedelta(minutes=5), now=NOW)
    workflow.tick(db.session, SUBPROCESSOR_EARLIEST + timedelta(seconds=1))
    assert change_set.status == ChangeStatus.EFFECTIVE


@pytest.fixture
def effective_chain(world):  # noqa: F811
    """Acme with a chain in effect, then a change to it in effect as well."""
    gridco = {**UNDER, "name": "Gridco", "legal_entity": "Gridco GmbH", "country": "DE"}
    for days, chain, summary in ((20, [LINK, UNDER], "Its providers"), (10, [LINK, gridco], "New power")):
        change_set = publishing.create_change_set(db.session, title=summary)
        publishing.draft_subprocessor_change(db.session, change_set, "acme", "change",
                                             fields={"chain": chain, "lei": LEI}, summary=summary)
        now = now_utc()
        moment = now - timedelta(days=days)
        publishing.publish(db.session, change_set, published_at=moment - timedelta(days=30),
                           notice_completed_at=moment - timedelta(days=30), effective_at=moment, now=now)
    db.session.commit()


def test_the_entry_page_shows_identifiers_the_nested_chain_and_its_history(effective_chain, client):
    page = client.get("/subprocessors/acme").get_data(as_text=True)
    assert f"<code>{LEI}</code>" in page
    chain = page[page.index('<ul class="chain">'):page.index('id="history"')]
    assert chain.index("Cloudy") < chain.index("<ul>") < chain.index("Gridco")
    assert 'data-rank="3"' in chain and "rank 3" in chain
    assert "added Gridco (DE, power); removed Powerco" in page
    assert "Powerco" not in chain and "Powerco" in page[page.index('id="history"'):]
    feed = client.get("/feeds/subprocessors.atom").get_data(as_text=True)
    assert ("Sub-processors: Cloudy (US, hosting); Powerco (US, power) → added Gridco (DE, power); "
            "removed Powerco") in feed


def test_the_api_entry_carries_identifiers_and_the_chain_with_ranks(effective_chain, client):
    data = client.get(f"{API}/subprocessors/acme").get_json()["data"]
    assert data["lei"] == LEI and data["euid"] is None
    assert [(x["name"], x["rank"], x["parent"], x["lei"]) for x in data["subprocessors"]] == [
        ("Cloudy", 2, None, LINK["lei"]), ("Gridco", 3, "Cloudy", None)]
    listed = client.get(f"{API}/subprocessors").get_json()["data"]
    assert next(x["subprocessors"] for x in listed if x["slug"] == "acme") == data["subprocessors"]


def unzip(response) -> dict[str, list[list[str]]]:
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    files = {name: archive.read(name).decode() for name in archive.namelist()}
    return {name: list(csv.reader(io.StringIO(text))) if name.endswith(".csv") else text
            for name, text in files.items()}


def test_the_dora_export(demo_client):
    response = demo_client.get(f"{API}/exports/dora")
    assert response.status_code == 200 and response.content_type == "application/zip"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    files = unzip(response)
    assert set(files) == {"b_05.01.csv", "b_05.02.csv", "README_columns.txt"}
    providers, chain = files["b_05.01.csv"], files["b_05.02.csv"]
    assert providers[0] == [f"c{n:04d}" for n in range(10, 130, 10)]
    assert chain[0] == [f"c{n:04d}" for n in range(10, 80, 10)]
    for row in providers[1:]:
        assert row[1] in ("LEI", "EUID")
        assert row[1] != "LEI" or is_valid_lei(row[0])
        assert row[8] == row[9] == ""  # currency and expense: the customer's
        assert not row[10] or is_valid_lei(row[10])
    codes = {row[0] for row in providers[1:]}
    assert len(codes) == len(providers) - 1
    assert "DEK1101R.HRB116737" in codes  # the one entry known by its EUID
    ranks = {}
    for row in chain[1:]:
        assert row[0] == ""  # the customer's contract reference
        assert row[1] == "" or (row[1][0] == "S" and 1 <= int(row[1][1:]) <= 19)
        assert row[2] in codes  # every provider in the chain is in B_05.01
        assert (row[4] == "1") == (row[5] == "")  # rank 1 has no recipient here: the customer adds us
        assert row[5] == "" or row[5] in codes
        ranks[row[2]] = int(row[4])
    # Nordlicht Cloud's chain: Rheinstrom (rank 2) and Brise Power under it (rank 3).
    assert ranks["529900A9C261491F9024"] == 1
    assert ranks["529900488E3B4667AA14"] == 2
    assert ranks["529900BB2ABD2B9AA976"] == 3
    brise = next(row for row in chain if row[2] == "529900BB2ABD2B9AA976")
    assert brise[5:] == ["529900488E3B4667AA14", "LEI"]
    assert "yours to add" in files["README_columns.txt"] and "xBRL-CSV" in files["README_columns.txt"]

    again = demo_client.get(f"{API}/exports/dora", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    past = unzip(demo_client.get(f"{API}/exports/dora?as_of=2020-01-01"))
    assert len(past["b_05.01.csv"]) == 1  # nothing was listed yet


@pytest.mark.parametrize("query", ["as_of=yesterday", "as_of=2026-02-30", "as_of=", "as_of=1&as_of=2",
                                   "country=XX", "sort=nonsense"])
def test_garbage_parameters_of_the_export(demo_client, query):
    response = demo_client.get(f"{API}/exports/dora?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"]


def test_the_list_page_links_the_export(demo_client):
    page = demo_client.get("/subprocessors/").get_data(as_text=True)
    assert 'href="/api/v1/exports/dora">DORA register export (zip)</a>' in page
    dated = demo_client.get("/subprocessors/?as_of=2025-01-01").get_data(as_text=True)
    assert 'href="/api/v1/exports/dora?as_of=2025-01-01"' in dated


def test_formula_cells_are_neutralised(world, client):  # noqa: F811
    change_set = publishing.create_change_set(db.session, title="Formula")
    publishing.draft_subprocessor_change(db.session, change_set, "acme", "change", fields={
        "lei": LEI, "legal_entity": "=HYPERLINK(\"http://evil\")"})
    moment = now_utc() - timedelta(days=1)
    publishing.publish(db.session, change_set, published_at=moment, notice_completed_at=moment,
                       effective_at=moment, now=moment)
    db.session.commit()
    providers = unzip(client.get(f"{API}/exports/dora"))["b_05.01.csv"]
    assert providers[1][4].startswith("'=")


def test_the_list_csv_carries_the_identifiers_and_the_chain(effective_chain, client):
    rows = list(csv.DictReader(io.StringIO(client.get("/subprocessors/export.csv").get_data(as_text=True))))
    acme = next(row for row in rows if row["slug"] == "acme")
    assert acme["lei"] == LEI and acme["euid"] == "" and acme["ict_service_type"] == ""
    assert acme["subprocessors"] == "Cloudy (US, hosting); Gridco (DE, power)"
