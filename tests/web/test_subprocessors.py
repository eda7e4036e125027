"""The public sub-processor pages on the demo content."""

import csv
import io
from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def rows_of(html: str) -> int:
    return html.count('<th scope="row" data-label="Sub-processor">')


def test_list_shows_current_entries_with_identity_and_contact(demo_client):
    page = demo_client.get("/subprocessors/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # 18 added over time, 2 removed; the announced one is listed for new customers only.
    assert rows_of(html) == 17
    assert "Lettermint" not in html
    assert "Nordlicht" in html and "Germany" in html
    assert "Changed recently" in html
    assert "Customers using AI Assistant" in html


def test_list_as_of_a_past_date_includes_removed_entries(demo_client):
    day = (date.today() - timedelta(days=100)).isoformat()
    html = demo_client.get(f"/subprocessors/?as_of={day}").get_data(as_text=True)
    assert "Lettermint" in html
    assert "as of" in html


def test_list_as_of_a_future_date_includes_the_scheduled_addition(demo_client):
    day = (date.today() + timedelta(days=30)).isoformat()
    html = demo_client.get(f"/subprocessors/?as_of={day}").get_data(as_text=True)
    assert "Kestrel" in html


@pytest.mark.parametrize(("query", "present", "absent"), [
    ("q=assistant", "Cortexa", "Nordlicht"),
    ("purpose=Payments", "Quayside", "Nordlicht"),
    ("country=SG", "Bastionet", "Quayside"),
    ("mechanism=Within+the+EEA", "Nordlicht", "Cortexa"),
])
def test_filters_narrow_the_list(demo_client, query, present, absent):
    page = demo_client.get(f"/subprocessors/?{query}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert present in html
    assert absent not in html
    assert rows_of(html) < 16


def test_sort_by_recently_changed_puts_the_latest_change_first(demo_client):
    html = demo_client.get("/subprocessors/?sort=changed").get_data(as_text=True)
    body = html.split("<tbody>")[1]
    assert body.index("Logwarden") < body.index("Nordlicht")


@pytest.mark.parametrize(("query", "field", "message"), [
    ("as_of=2025-13-45", "as_of", "must be a date written YYYY-MM-DD"),
    ("as_of=yesterday", "as_of", "must be a date written YYYY-MM-DD"),
    ("as_of=0001-01-01", "as_of", "between 1970 and 2200"),
    ("as_of=0002", "as_of", "must be a date written YYYY-MM-DD"),
    ("country=XX", "country", "ISO 3166-1 country code"),
    ("sort=random", "sort", "Unknown value for"),
    ("announced=maybe", "announced", "Unknown value for"),
    ("q=" + "a" * 500, "q", "longer than 200 characters"),
    ("q=%00", "q", "control characters"),
    ("from=2025-01-01&to=2024-01-01", "from", "must be on or before"),
    ("from=01012025", "from", "must be a date written YYYY-MM-DD"),
    ("to=2025-02-30", "to", "must be a date written YYYY-MM-DD"),
])
def test_a_filter_that_cannot_be_read_is_a_400_page_with_the_error_beside_its_field(
        demo_client, query, field, message):
    path = "/subprocessors/compare" if query.startswith(("from", "to")) else "/subprocessors/"
    page = demo_client.get(f"{path}?{query}")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "Traceback" not in html
    assert "<title>Error: " in html
    # The summary takes the focus and links to the field; the message sits beside the field.
    assert 'class="notice notice-error error-summary" role="alert" tabindex="-1" autofocus' in html
    assert f'<a href="#{field}">' in html
    assert f'<p class="field-error" id="{field}-error">' in html
    beside = html.split(f'id="{field}-error">')[1].split("</p>")[0]
    assert message in beside.replace("&#39;", "'")
    assert 'aria-invalid="true" aria-describedby="' in html
    if path == "/subprocessors/":
        # The rest of the list is still there, the unreadable filter left out.
        assert rows_of(html) == 17


def test_a_typed_date_that_cannot_be_read_is_shown_back_to_be_corrected(demo_client):
    html = demo_client.get("/subprocessors/?as_of=2025-13-45&purpose=Payments").get_data(as_text=True)
    assert 'value="2025-13-45"' in html
    # The CSV link downloads what is shown: the filters that apply, not the one that could not be read.
    assert 'id="csv-link" href="/subprocessors/export.csv?purpose=Payments"' in html


def test_the_csv_and_the_api_still_refuse_an_unreadable_filter(demo_client):
    for path in ("/subprocessors/export.csv?as_of=yesterday", "/subprocessors/export.csv?bom=2",
                 "/api/v1/subprocessors?as_of=yesterday"):
        response = demo_client.get(path)
        assert response.status_code == 400, path
        assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["purpose=Teleportation", "mechanism=Handshake", "country=BR"])
def test_a_filter_value_no_entry_has_says_nothing_matches(demo_client, query):
    page = demo_client.get(f"/subprocessors/?{query}")
    assert page.status_code == 200
    assert rows_of(page.get_data(as_text=True)) == 0
    assert "No sub-processor matches these filters" in page.get_data(as_text=True)


def test_entry_page_has_the_whole_history(demo_client):
    page = demo_client.get("/subprocessors/metricula")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('class="history-item') == 2
    assert "Legal entity" in html and "<del>" in html and "<ins>" in html


def test_removed_entry_page_says_so(demo_client):
    html = demo_client.get("/subprocessors/lettermint").get_data(as_text=True)
    assert "No longer a sub-processor since" in html
    assert html.count('class="history-item') == 3


def test_announced_entry_page_says_when_it_starts(demo_client):
    html = demo_client.get("/subprocessors/kestrel-messaging").get_data(as_text=True)
    assert "This sub-processor applies to new customers since" in html
    assert "and to existing customers from" in html


def test_unknown_entry_is_404(demo_client):
    page = demo_client.get("/subprocessors/no-such-vendor")
    assert page.status_code == 404
    assert "There is no sub-processor at this address." in page.get_data(as_text=True)


def test_compare_two_dates(demo_client):
    start = (date.today() - timedelta(days=100)).isoformat()
    html = demo_client.get(f"/subprocessors/compare?from={start}").get_data(as_text=True)
    assert "Lettermint" in html  # removed 45 days ago
    assert "Removed" in html and "Changed" in html
    assert "Metricula" in html or "Clearsight" in html  # renamed 70 days ago


def test_csv_export_matches_the_list(demo_client):
    response = demo_client.get("/subprocessors/export.csv?purpose=Payments")
    assert response.status_code == 200
    assert response.content_type == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and all(r["purpose"] == "Payments" for r in rows)
    assert rows[0]["added_at"].endswith("+00:00")


def names_listed(html: str) -> list[str]:
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    return [cell.split('">', 1)[1].split("</a>")[0]
            for cell in body.split('<th scope="row" data-label="Sub-processor">')[1:]]


@pytest.mark.parametrize(("q", "present", "absent"), [
    ("Germany", "Nordlicht", "Quayside"),        # a country's name, not only its code
    ("Portugal", None, "Nordlicht"),
    ("united states", "Cortexa", "Nordlicht"),
    ("Postbrucke", "Postbrücke", "Nordlicht"),  # accents ignored
    ("postbrü", "Postbrücke", "Nordlicht"),     # a word's beginning
])
def test_search_finds_country_names_word_prefixes_and_ignores_accents(demo_client, q, present, absent):
    html = demo_client.get("/subprocessors/", query_string={"q": q}).get_data(as_text=True)
    listed = names_listed(html)
    assert listed, q
    if present:
        assert any(present in name for name in listed), (q, listed)
    assert not any(absent in name for name in listed), (q, listed)


def test_search_for_a_code_matches_whole_words_not_substrings(demo_client):
    everything = names_listed(demo_client.get("/subprocessors/").get_data(as_text=True))
    us = names_listed(demo_client.get("/subprocessors/?q=US").get_data(as_text=True))
    ai = names_listed(demo_client.get("/subprocessors/?q=AI").get_data(as_text=True))
    # US: the entries processing in the United States, not every entry with "us" inside a word.
    united_states = names_listed(
        demo_client.get("/subprocessors/?country=US").get_data(as_text=True))
    assert sorted(us) == sorted(united_states)
    assert len(us) < len(everything) / 2
    assert "Ledgerfield" not in " ".join(ai)
    assert any("Cortexa" in name for name in ai)


def test_result_count_agrees_with_its_number(demo_client):
    one = demo_client.get("/subprocessors/?q=Postbrucke").get_data(as_text=True)
    assert "1 sub-processor matches your filters." in one
    many = demo_client.get("/subprocessors/?purpose=Payments").get_data(as_text=True)
    assert "sub-processors match your filters." in many


def test_an_announced_addition_is_listed_with_its_joining_date(demo_client):
    html = demo_client.get("/subprocessors/").get_data(as_text=True)
    row = html.split("Kestrel")[1].split("</tr>")[0]
    assert "Joins on" in row
    hidden = demo_client.get("/subprocessors/?announced=hide").get_data(as_text=True)
    assert "Kestrel" not in hidden
    assert "Joins on" not in hidden
    assert rows_of(hidden) == rows_of(html) - 1


def test_a_change_announced_for_later_is_listed_with_its_date(demo_client):
    # As of a day before the analytics vendor's rename: the rename is announced for later.
    day = (date.today() - timedelta(days=75)).isoformat()
    html = demo_client.get(f"/subprocessors/?as_of={day}").get_data(as_text=True)
    row = html.split(">Metricula</a>")[1].split("</tr>")[0]
    assert "Changes on" in row
    day = (date.today() - timedelta(days=50)).isoformat()
    html = demo_client.get(f"/subprocessors/?as_of={day}").get_data(as_text=True)
    assert "Leaves on" in html.split(">Lettermint</a>")[1].split("</tr>")[0]


def test_recently_added_ties_read_a_to_z(demo_client):
    html = demo_client.get("/subprocessors/?sort=added&announced=hide").get_data(as_text=True)
    body = html.split("<tbody>")[1]
    rows = body.split("</tr>")[:-1]
    added = [(row.split('data-label="Added"><time datetime="')[1][:25],
              row.split('">', 2)[2].split("</a>")[0]) for row in rows]
    for (day_a, name_a), (day_b, name_b) in pairwise(added):
        assert day_a >= day_b
        if day_a == day_b:
            assert name_a.casefold() <= name_b.casefold(), (name_a, name_b)
    assert len({day for day, _name in added}) < len(added)  # the demo has ties to order


def test_history_and_comparison_show_country_names(demo_client):
    entry = demo_client.get("/subprocessors/bastionet").get_data(as_text=True)
    history = entry.split('id="history"')[1]
    assert "Singapore" in history and "United States" in history
    assert "<ins>SE, US, SG" not in history
    start = (date.today() - timedelta(days=60)).isoformat()
    compare = demo_client.get(f"/subprocessors/compare?from={start}").get_data(as_text=True)
    assert "Singapore" in compare


def test_csv_has_a_local_date_beside_each_utc_timestamp(demo_client):
    response = demo_client.get("/subprocessors/export.csv")
    text = response.get_data(as_text=True)
    assert not text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        assert row["added_at"].endswith("+00:00")
        assert len(row["added_local_date"]) == 10
        assert row["added_local_date"] >= row["added_at"][:10]
    kestrel = next(r for r in rows if r["slug"].startswith("kestrel"))
    assert kestrel["new_customers_change"] == "add"
    assert kestrel["existing_customers_from_local_date"]
    assert kestrel["existing_customers_from"].endswith("+00:00")


def test_csv_with_a_byte_order_mark_for_spreadsheets(demo_client):
    plain = demo_client.get("/subprocessors/export.csv").get_data()
    marked = demo_client.get("/subprocessors/export.csv?bom=1").get_data()
    assert marked == b"\xef\xbb\xbf" + plain
    assert marked.decode("utf-8-sig") == plain.decode("utf-8")


GARBAGE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "0002", "01012025", "2025-1-1", "9999-12-31", "-1", "DE ", "de", "ÄÖ",
                     "<script>", "a" * 300, "show ", "1 ", "\uff12\uff10\uff12\uff15-01-01", "%"]),
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(["q", "purpose", "country", "mechanism", "sort", "announced", "as_of",
                              "from", "to", "bom"]),
       value=GARBAGE)
def test_garbage_in_a_list_filter_is_a_page_with_its_message_never_a_500(demo_client, field, value):
    path = {"from": "/subprocessors/compare", "to": "/subprocessors/compare",
            "bom": "/subprocessors/export.csv"}.get(field, "/subprocessors/")
    response = demo_client.get(path, query_string={field: value})
    assert response.status_code in (200, 400), (field, value)
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    if response.status_code == 400 and field != "bom":
        assert f'id="{field}-error"' in body and "<title>Error: " in body
