"""The OpenAPI 3.1 description of /api/v1, built as a plain dict and served as JSON."""

from __future__ import annotations

from dataclasses import dataclass

from registry.domain.slugs import PATTERN as SLUG_PATTERN
from registry.web.params import COUNTRY_CODES

API_VERSION = "1.0.0"

DATE_TIME = {"type": "string", "format": "date-time"}
OPTIONAL_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
URI = {"type": "string", "format": "uri"}
OPTIONAL_URI = {"type": ["string", "null"], "format": "uri"}
STRING = {"type": "string"}
STRINGS = {"type": "array", "items": STRING}


def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _object(properties: dict, description: str = "") -> dict:
    """An object whose properties are always present (a missing value is null, never absent)."""
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"description": description, **schema} if description else schema


def _list(item: str) -> dict:
    return _object({"data": {"type": "array", "items": _ref(item)}})


def _page(item: str) -> dict:
    return _object({"data": {"type": "array", "items": _ref(item)},
                    "meta": _ref("PageMeta"), "links": _ref("PageLinks")})


ENTRY = {
    "slug": {**STRING, "description": "Stable identifier, used in URLs."},
    "name": STRING,
    "legal_entity": STRING,
    "address": STRING,
    "contact": {**STRING, "description": "Privacy or data-protection contact."},
    "purpose": STRING,
    "description": {**STRING, "description": "The processing activity."},
    "data_categories": {**STRINGS, "description": "Categories of personal data processed."},
    "countries": {**STRINGS, "description": "Processing locations, ISO 3166-1 alpha-2 codes.",
                  "items": {"type": "string", "pattern": "^[A-Z]{2}$"}},
    "transfer_mechanism": STRING,
    "website": STRING,
    "applies_to": _ref("AppliesTo"),
    "lei": {"type": ["string", "null"], "pattern": "^[0-9A-Z]{18}[0-9]{2}$",
            "description": "Legal Entity Identifier (ISO 17442), check digits verified."},
    "euid": {"type": ["string", "null"], "description": "European Unique Identifier of the business "
                                                        "register entry, e.g. DEK1101R.HRB116737."},
    "latin_name": {"type": ["string", "null"], "description": "The legal name in Latin script."},
    "hq_country": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$",
                   "description": "Country of the headquarters, ISO 3166-1 alpha-2."},
    "ultimate_parent": {"oneOf": [_ref("UltimateParent"), {"type": "null"}]},
    "ict_service_type": {"type": ["string", "null"], "pattern": "^S[0-9]{2}$", "description": (
        "Type of ICT services, S01 to S19 of Annex III of Implementing Regulation (EU) 2024/2956.")},
    "subprocessors": {"type": "array", "items": _ref("ChainLink"), "description": (
        "The entry's own sub-processors (rank 2) and theirs (rank 3 and deeper), depth first.")},
}
ENTRY_LINKS = {
    "url": {**URI, "description": "The entry's public page."},
    "api_url": {**URI, "description": "The entry in this API."},
}
HISTORY_EVENT = {
    "action": {"type": "string", "enum": ["add", "change", "remove"]},
    "effective_at": {**OPTIONAL_DATE_TIME, "description": (
        "Null only when the date has passed while the notice of a material change is still going out: "
        "the change waits for the notice and gets a new date.")},
    "scheduled": {"type": "boolean", "description": "True while the change is not yet in effect."},
    "summary": STRING,
    "changes": {"type": "array", "items": _ref("FieldChange"),
                "description": "The fields a change altered; empty for additions and removals."},
}
VERSION_LINKS = {
    "url": {**URI, "description": "The version's public page."},
    "api_url": {**URI, "description": "The version in this API."},
}
DOCUMENT = {
    "slug": STRING,
    "title": STRING,
    "description": STRING,
    "current_version": {"oneOf": [_ref("VersionRef"), {"type": "null"}]},
    "upcoming_versions": {"type": "array", "items": _ref("VersionRef")},
    "new_customers_version": {"oneOf": [_ref("NewCustomersVersion"), {"type": "null"}], "description": (
        "A version that already applies to new customers but not yet to existing ones.")},
    "url": {**URI, "description": "The document's public page."},
    "api_url": URI,
    "versions_url": {**URI, "description": "Every version of the document in this API."},
}
VERSION = {
    "number": {"type": "integer", "minimum": 1},
    "summary": STRING,
    "is_material": {"type": "boolean"},
    "status": {"type": "string", "enum": ["upcoming", "in_effect", "superseded"]},
    "published_at": {**DATE_TIME, "description": "When notice of this version was given."},
    "effective_at": {**DATE_TIME, "description": "When it takes effect for existing customers."},
    "effective_new_customers_at": {
        **OPTIONAL_DATE_TIME, "description": "When it takes effect for new customers, if earlier."},
    **VERSION_LINKS,
}
CHANGE_SET_DATES = {
    "published_at": {**DATE_TIME, "description": "When notice was given."},
    "effective_at": DATE_TIME,
    "effective_new_customers_at": OPTIONAL_DATE_TIME,
    "objection_deadline_at": {**OPTIONAL_DATE_TIME,
                              "description": "The last moment to object, where objection applies."},
}
CHANGE_SET_NOTICE = {
    "notice_completed_at": {**OPTIONAL_DATE_TIME, "description": (
        "When every notice had gone out (email and feed); the notice period counts from here. "
        "Null while the notice is being sent.")},
    "planned_effective_at": {**OPTIONAL_DATE_TIME, "description": (
        "The effective date first announced; differs from effective_at when the date was moved "
        "because the notice completed later than planned.")},
}

CHANGE_SET_ID = {"type": "integer", "minimum": 1,
                 "description": "Stable identifier of the change set; the same in every answer and feed."}

SCHEMAS = {
    "Error": _object({"error": _object({
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "title": STRING,
        "message": STRING,
    })}, "Every error answer, whatever the status."),
    "PageMeta": _object({
        "as_of": {**DATE_TIME, "description": "The moment the data describes: the end of the "
                                               "requested `as_of` day, otherwise the moment the "
                                               "public registry last changed."},
        "total": {"type": "integer", "minimum": 0},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 200},
        "pages": {"type": "integer", "minimum": 1},
    }),
    "PageLinks": _object({"self": URI, "next": OPTIONAL_URI, "prev": OPTIONAL_URI}),
    "AppliesTo": _object({
        "all_customers": {"type": "boolean"},
        "feature": {"type": ["string", "null"],
                    "description": "Only customers who use this feature, when not all customers."},
    }),
    "FieldChange": _object({
        "field": STRING,
        "label": STRING,
        "old": {"type": ["string", "array", "null"], "items": {"anyOf": [STRING, _ref("ChainLink")]}},
        "new": {"type": ["string", "array", "null"], "items": {"anyOf": [STRING, _ref("ChainLink")]}},
    }, "One field a change altered; the chain (`subprocessors`, field `chain`) as its links."),
    "UltimateParent": _object({"name": STRING, "lei": {"type": ["string", "null"]}}),
    "ChainLink": _object({
        "name": STRING,
        "legal_entity": STRING,
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "service": STRING,
        "ict_service_type": {"type": ["string", "null"], "pattern": "^S[0-9]{2}$"},
        "lei": {"type": ["string", "null"]},
        "euid": {"type": ["string", "null"]},
        "rank": {"type": "integer", "minimum": 2},
        "parent": {"type": ["string", "null"],
                   "description": "The name of the link it works for; null: the entry itself."},
    }, "A sub-processor of a sub-processor."),
    "SubprocessorEntry": _object({**ENTRY, **ENTRY_LINKS}),
    "NewCustomerTerms": _object({
        "action": {"type": "string", "enum": ["add", "change", "remove"]},
        "since": {**DATE_TIME, "description": "From when the change applies to new customers."},
        "existing_customers_from": {**OPTIONAL_DATE_TIME, "description": (
            "When it applies to existing customers too; null while that date waits for the notice "
            "of a material change to go out.")},
        "entry": {**_ref("SubprocessorEntryFields"),
                  "description": "The entry as new customers have it (for a removal: the one leaving)."},
    }, "A scheduled change that already applies to customers who sign up from `since`."),
    "SubprocessorEntryFields": _object(ENTRY),
    "Subprocessor": _object({
        **ENTRY,
        "added_at": {**DATE_TIME, "description": "When it joined the list."},
        "changed_at": {**DATE_TIME, "description": "Its latest change in effect."},
        "new_customers": {"oneOf": [_ref("NewCustomerTerms"), {"type": "null"}], "description": (
            "A change that already applies to new customers but not yet to existing ones. An entry "
            "with action `add` here is listed for new customers only.")},
        **ENTRY_LINKS,
    }, "A sub-processor on the list existing customers are under."),
    "HistoryEvent": _object(HISTORY_EVENT),
    "SubprocessorDetail": _object({
        **ENTRY,
        "status": {"type": "string", "enum": ["active", "removed", "scheduled"],
                   "description": "On the list now, removed from it, or announced and not yet "
                                  "added. A removed entry shows its last state."},
        "added_at": OPTIONAL_DATE_TIME,
        "changed_at": OPTIONAL_DATE_TIME,
        "removed_at": OPTIONAL_DATE_TIME,
        "new_customers": {"oneOf": [_ref("NewCustomerTerms"), {"type": "null"}], "description": (
            "A change that already applies to new customers but not yet to existing ones.")},
        **ENTRY_LINKS,
        "history": {"type": "array", "items": _ref("HistoryEvent"),
                    "description": "Every public change, oldest first, scheduled ones included."},
    }),
    "SubprocessorChange": _object({**HISTORY_EVENT, "subprocessor": _ref("SubprocessorEntry")},
                                  "A change, with the entry as it stands after it."),
    "VersionRef": _object({"number": {"type": "integer", "minimum": 1},
                           "effective_at": HISTORY_EVENT["effective_at"], **VERSION_LINKS}),
    "NewCustomersVersion": _object({
        "number": {"type": "integer", "minimum": 1},
        "since": {**DATE_TIME, "description": "From when it applies to new customers."},
        "existing_customers_from": {**OPTIONAL_DATE_TIME, "description": (
            "When it applies to existing customers; null while that date waits for the notice to go out.")},
        **VERSION_LINKS,
    }),
    "NoticePolicy": _object({
        "length": {"type": "integer", "minimum": 0},
        "unit": STRING,
        "calendars": {**STRINGS, "description": "Holiday calendars for business days."},
        "timezone": {**STRING, "description": "IANA time zone in which days are counted."},
        "objection_days": {"type": ["integer", "null"]},
    }, "How much notice a new version of the document is given."),
    "Document": _object(DOCUMENT),
    "DocumentDetail": _object({**DOCUMENT, "notice_policy": _ref("NoticePolicy")}),
    "Version": _object(VERSION),
    "Heading": _object({"level": {"type": "integer", "minimum": 1, "maximum": 6},
                        "text": STRING, "anchor": STRING}),
    "VersionDetail": _object({
        **VERSION,
        "markdown": {**STRING, "description": "The source text."},
        "html": {**STRING, "description": "The rendered, sanitised text."},
        "headings": {"type": "array", "items": _ref("Heading")},
    }),
    "UpcomingDocumentVersion": _object({
        "kind": {"const": "document_version"},
        "document": STRING,
        "title": STRING,
        "number": {"type": "integer", "minimum": 1},
        "summary": STRING,
        "is_material": {"type": "boolean"},
        **VERSION_LINKS,
    }),
    "UpcomingSubprocessorChange": _object({
        "kind": {"const": "subprocessor"},
        "slug": STRING,
        "name": STRING,
        "action": {"type": "string", "enum": ["add", "change", "remove"]},
        "summary": STRING,
        **ENTRY_LINKS,
    }),
    "ChangeSet": _object({
        "id": CHANGE_SET_ID,
        "title": STRING,
        "summary": STRING,
        "is_material": {"type": "boolean"},
        **CHANGE_SET_DATES,
        **CHANGE_SET_NOTICE,
        "items": {"type": "array", "items": {
            "oneOf": [_ref("UpcomingDocumentVersion"), _ref("UpcomingSubprocessorChange")],
            "discriminator": {"propertyName": "kind", "mapping": {
                "document_version": "#/components/schemas/UpcomingDocumentVersion",
                "subprocessor": "#/components/schemas/UpcomingSubprocessorChange",
            }},
        }},
    }, "Changes announced together that take effect together."),
    "SubprocessorPage": _page("Subprocessor"),
    "SubprocessorResponse": _object({"data": _ref("SubprocessorDetail")}),
    "SubprocessorChangePage": _page("SubprocessorChange"),
    "DocumentList": _list("Document"),
    "DocumentResponse": _object({"data": _ref("DocumentDetail")}),
    "VersionPage": _page("Version"),
    "VersionResponse": _object({"data": _ref("VersionDetail")}),
    "ChangeSetList": _list("ChangeSet"),
    "OpenAPIDocument": {"type": "object", "required": ["openapi", "info", "paths"],
                        "description": "This document."},
}


def _query(name: str, schema: dict, description: str, example, *, required: bool = False) -> dict:
    """A query parameter. An optional one is left out for its default: sent empty, or twice, it
    answers 400, as any value the schema does not allow."""
    parameter = {"name": name, "in": "query", "required": required, "schema": schema,
                 "description": description}
    return {**parameter, "example": example} if example not in (None, "") else parameter


def _path(name: str, schema: dict, description: str, example) -> dict:
    parameter = {"name": name, "in": "path", "required": True, "schema": schema,
                 "description": description}
    return {**parameter, "example": example} if example is not None else parameter


def _enum(values: list[str], what: str) -> dict:
    """The values a filter takes; with none to offer (an empty registry), a value no one can send."""
    if values:
        return {"type": "string", "enum": sorted(values)}
    return {"type": "string", "not": {}, "description": f"No {what} yet."}


@dataclass(frozen=True)
class Choices:
    """What the description takes from the registry's content: the filters' allowed values (the same
    the API validates against) and examples that name real rows."""

    purposes: list[str]
    mechanisms: list[str]
    subprocessor: str | None = None
    document: str | None = None
    version: int | None = None


# Free text: 1 to 200 characters, none of them control characters (those answer 400).
FILTER = {"type": "string", "minLength": 1, "maxLength": 200,
          "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}


# What routing takes as a slug (registry.web.SlugConverter); anything else is a 404.
SLUG = {"type": "string", "pattern": f"^{SLUG_PATTERN}$"}


def _parameters(choices: Choices) -> dict:
    return {
        "Page": _query("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
                       "Page number; a page past the last answers 404.", 1),
        "PerPage": _query("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                          "Items per page.", 20),
        "Q": _query("q", FILTER, "Words that must all occur in the entry (case-insensitive).", "email"),
        "Purpose": _query("purpose", _enum(choices.purposes, "purposes"),
                          "Exact purpose, one of those the published entries have.",
                          min(choices.purposes, default=None)),
        "Country": _query("country", {"type": "string", "enum": sorted(COUNTRY_CODES)},
                          "Processing location (ISO 3166-1 alpha-2, upper case); a code no entry "
                          "has matches nothing.", "DE"),
        "Mechanism": _query("mechanism", _enum(choices.mechanisms, "transfer mechanisms"),
                            "Exact transfer mechanism, one of those the published entries have.",
                            min(choices.mechanisms, default=None)),
        "Sort": _query("sort", {"type": "string", "enum": ["name", "purpose", "added", "changed"],
                                "default": "name"},
                       "Order: by name, by purpose, recently added or recently changed first.", "added"),
        "AsOf": _query("as_of", {"type": "string", "format": "date", "pattern": (
                           "^(19[7-9][0-9]|20[0-9][0-9]|21[0-9][0-9]|2200)-[0-9]{2}-[0-9]{2}$")},
                       "The list as it stood at the end of this day in the legal time zone "
                       "(1970-2200); today's list when absent.", "2026-01-31"),
        "Since": _query("since", {"type": "string", "format": "date-time", "maxLength": 40},
                        "Changes effective after this moment; an offset (or Z) is required.",
                        "2026-01-01T00:00:00Z", required=True),
        "Slug": _path("slug", SLUG, "The sub-processor's slug.", choices.subprocessor),
        "DocumentSlug": _path("slug", SLUG, "The document's slug.", choices.document),
        "Number": _path("number", {"type": "integer", "minimum": 1}, "The version number.",
                        choices.version),
    }


HEADERS = {
    "ETag": {"description": "Validator for If-None-Match.", "schema": STRING},
    "Last-Modified": {"description": "Validator for If-Modified-Since.", "schema": STRING},
    "Cache-Control": {"description": "Public, with a max-age no later than the next scheduled "
                                     "change.", "schema": STRING},
}


def _error(description: str, status: int, title: str, message: str) -> dict:
    example = {"error": {"status": status, "title": title, "message": message}}
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error"), "example": example}}}


RESPONSES = {
    "NotModified": {"description": "Not modified since the validator sent (If-None-Match or "
                                   "If-Modified-Since); no body."},
    "BadRequest": _error("A malformed or unknown parameter value; the message says which.",
                         400, "Bad Request", "'per_page' must be a whole number from 1 to 200."),
    "NotFound": _error("No such resource, or a page past the last.",
                       404, "Not Found", "There is no sub-processor at this address."),
    "Error": _error("Any other error.", 405, "Method Not Allowed",
                    "The method is not allowed for the requested URL."),
}


def _get(operation_id: str, summary: str, schema: str, *, parameters: tuple[str, ...] = (),
         errors: tuple[str, ...] = (), description: str = "") -> dict:
    example = EXAMPLES.get(operation_id)
    content = {"schema": _ref(schema), **({"example": example} if example else {})}
    responses = {
        "200": {"description": "OK", "headers": {h: _ref(h, "headers") for h in HEADERS},
                "content": {"application/json": content}},
        "304": _ref("NotModified", "responses"),
        **{status: _ref(name, "responses") for status, name in
           (("400", "BadRequest"), ("404", "NotFound")) if status in errors},
        "default": _ref("Error", "responses"),
    }
    operation = {"operationId": operation_id, "summary": summary,
                 "tags": [operation_id.split("_")[0].title()],
                 "parameters": [_ref(p, "parameters") for p in parameters],
                 "responses": responses}
    if description:
        operation["description"] = description
    return {"get": operation}


PAGING = ("Page", "PerPage")

# Examples of each answer, as the demo content gives them.
_SITE = "https://trust.example.com"
_ENTRY = {
    "slug": "nordlicht-cloud", "name": "Nordlicht Cloud", "legal_entity": "Nordlicht Cloud GmbH",
    "address": "Friedrichstraße 1, 10117 Berlin, Germany", "contact": "privacy@nordlicht.example",
    "purpose": "Hosting and infrastructure",
    "description": "Runs the servers and databases the service is hosted on.",
    "data_categories": ["Account data", "Customer content"], "countries": ["DE"],
    "transfer_mechanism": "Within the EEA", "website": "https://nordlicht.example",
    "applies_to": {"all_customers": True, "feature": None},
    "lei": "529900T8BM49AURSDO55", "euid": None, "latin_name": None, "hq_country": "DE",
    "ultimate_parent": None, "ict_service_type": "S17",
    "subprocessors": [{"name": "Brise Power", "legal_entity": "Brise Power GmbH", "country": "DE",
                       "service": "data centre power", "ict_service_type": "S07", "lei": None,
                       "euid": None, "rank": 2, "parent": None}],
    "url": f"{_SITE}/subprocessors/nordlicht-cloud",
    "api_url": f"{_SITE}/api/v1/subprocessors/nordlicht-cloud",
}
_ADDED = {"action": "add", "effective_at": "2024-01-06T23:00:00+00:00", "scheduled": False,
          "summary": "Hosts the service.", "changes": []}
_CHANGED = {"action": "change", "effective_at": "2026-03-01T23:00:00+00:00", "scheduled": False,
            "summary": "Adds a second data centre in Ireland.",
            "changes": [{"field": "countries", "label": "Processing locations", "old": ["DE"],
                         "new": ["DE", "IE"]}]}


def _page_of(item: dict, path: str) -> dict:
    return {"data": [item], "meta": {"as_of": "2026-12-01T09:30:00+00:00", "total": 1, "page": 1,
                                     "per_page": 50, "pages": 1},
            "links": {"self": f"{_SITE}/api/v1{path}?page=1", "next": None, "prev": None}}


def _version_ref(number: int, effective_at: str) -> dict:
    return {"number": number, "effective_at": effective_at,
            "url": f"{_SITE}/documents/privacy-policy/versions/{number}",
            "api_url": f"{_SITE}/api/v1/documents/privacy-policy/versions/{number}"}


_DOCUMENT = {
    "slug": "privacy-policy", "title": "Privacy Policy",
    "description": "How we collect and use personal data.",
    "current_version": _version_ref(3, "2026-02-03T23:00:00+00:00"),
    "upcoming_versions": [_version_ref(4, "2026-12-12T23:00:00+00:00")],
    "new_customers_version": {**_version_ref(4, "2026-12-12T23:00:00+00:00"),
                              "since": "2026-11-28T18:36:28+00:00",
                              "existing_customers_from": "2026-12-12T23:00:00+00:00"},
    "url": f"{_SITE}/documents/privacy-policy/", "api_url": f"{_SITE}/api/v1/documents/privacy-policy",
    "versions_url": f"{_SITE}/api/v1/documents/privacy-policy/versions",
}
del _DOCUMENT["new_customers_version"]["effective_at"]
_VERSION = {**_version_ref(3, "2026-02-03T23:00:00+00:00"), "summary": "Retention periods per category.",
            "is_material": True, "status": "in_effect", "published_at": "2026-01-04T10:00:00+00:00",
            "effective_new_customers_at": None}
EXAMPLES = {
    "subprocessors_list": _page_of({**_ENTRY, "added_at": "2024-01-06T23:00:00+00:00",
                                    "changed_at": "2026-03-01T23:00:00+00:00", "new_customers": None},
                                   "/subprocessors"),
    "subprocessors_changes": _page_of({**_CHANGED, "subprocessor": _ENTRY}, "/subprocessors/changes"),
    "subprocessors_get": {"data": {**_ENTRY, "status": "active", "added_at": "2024-01-06T23:00:00+00:00",
                                   "changed_at": "2026-03-01T23:00:00+00:00", "removed_at": None,
                                   "new_customers": None, "history": [_ADDED, _CHANGED]}},
    "documents_list": {"data": [_DOCUMENT]},
    "documents_get": {"data": {**_DOCUMENT, "notice_policy": {
        "length": 30, "unit": "calendar_days", "calendars": [], "timezone": "Europe/Warsaw",
        "objection_days": 14}}},
    "documents_versions": _page_of(_VERSION, "/documents/privacy-policy/versions"),
    "documents_version": {"data": {**_VERSION, "markdown": "# Privacy Policy\n\nWho we are and ...",
                                   "html": '<h1 id="privacy-policy">Privacy Policy</h1>\n'
                                           '<p>Who we are and ...</p>',
                                   "headings": [{"level": 1, "text": "Privacy Policy",
                                                 "anchor": "privacy-policy"}]}},
    "changes_upcoming": {"data": [{
        "id": 24, "title": "SMS two-step verification", "summary": "A new sub-processor sends the codes.",
        "is_material": True, "published_at": "2026-11-28T18:36:28+00:00",
        "effective_at": "2026-12-12T23:00:00+00:00", "effective_new_customers_at": None,
        "objection_deadline_at": "2026-12-12T23:00:00+00:00",
        "notice_completed_at": "2026-11-28T18:37:28+00:00",
        "planned_effective_at": "2026-12-12T23:00:00+00:00",
        "items": [{"kind": "subprocessor", "slug": "kestrel-messaging", "name": "Kestrel Messaging",
                   "action": "add", "summary": "Sends the verification codes.",
                   "url": f"{_SITE}/subprocessors/kestrel-messaging",
                   "api_url": f"{_SITE}/api/v1/subprocessors/kestrel-messaging"}]}]},
}

PATHS = {
    "/subprocessors": _get(
        "subprocessors_list", "The sub-processor list, now or as of a date", "SubprocessorPage",
        parameters=("Q", "Purpose", "Country", "Mechanism", "Sort", "AsOf", *PAGING),
        errors=("400", "404")),
    "/subprocessors/changes": _get(
        "subprocessors_changes", "Changes to the list since a moment", "SubprocessorChangePage",
        parameters=("Since", *PAGING), errors=("400", "404"),
        description="Every public addition, change and removal effective after `since`, oldest "
                    "first, plus every scheduled change (flagged `scheduled`). Poll with the "
                    "`meta.as_of` of your previous call."),
    "/subprocessors/{slug}": _get(
        "subprocessors_get", "One sub-processor and its whole history", "SubprocessorResponse",
        parameters=("Slug",), errors=("404",)),
    "/exports/dora": {"get": {
        "operationId": "exports_dora", "summary": "The DORA register-ready export (zip)",
        "tags": ["Exports"], "parameters": [_ref("AsOf", "parameters")],
        "description": (
            "A zip of b_05.01.csv (ICT third-party service providers) and b_05.02.csv (ICT service "
            "supply chains) with the column codes of Implementing Regulation (EU) 2024/2956 as "
            "headers, and README_columns.txt saying which columns the customer fills in."),
        "responses": {
            "200": {"description": "OK", "headers": {h: _ref(h, "headers") for h in HEADERS},
                    "content": {"application/zip": {"schema": {
                        "type": "string", "contentMediaType": "application/zip"}}}},
            "304": _ref("NotModified", "responses"),
            "400": _ref("BadRequest", "responses"),
            "default": _ref("Error", "responses"),
        }}},
    "/documents": _get("documents_list", "Every legal document", "DocumentList"),
    "/documents/{slug}": _get(
        "documents_get", "One document and its notice policy", "DocumentResponse",
        parameters=("DocumentSlug",), errors=("404",)),
    "/documents/{slug}/versions": _get(
        "documents_versions", "Every public version of a document, oldest first", "VersionPage",
        parameters=("DocumentSlug", *PAGING), errors=("400", "404")),
    "/documents/{slug}/versions/{number}": _get(
        "documents_version", "One version with its text", "VersionResponse",
        parameters=("DocumentSlug", "Number"), errors=("404",)),
    "/changes/upcoming": _get(
        "changes_upcoming", "Announced changes not yet in effect", "ChangeSetList"),
    "/openapi.json": _get("meta_openapi", "This description", "OpenAPIDocument"),
}


# Outgoing webhooks (registry/notify/endpoints.py): what customers' endpoints receive. Each request
# carries webhook-id (the same on every retry and resend), webhook-timestamp and webhook-signature
# (Standard Webhooks v1: base64 HMAC-SHA256 of "id.timestamp.body" with the endpoint's whsec_ secret;
# two space-separated entries while a rotated secret's 24-hour overlap lasts).
_WEBHOOK_ITEM = {"type": "object", "required": ["kind", "url"], "properties": {
    "kind": {"enum": ["document", "subprocessor"]},
    "document": {"type": "string"}, "subprocessor": {"type": "string"}, "title": {"type": "string"},
    "name": {"type": "string"}, "version": {"type": ["integer", "null"]},
    "is_material": {"type": "boolean"}, "action": {"type": "string"}, "url": OPTIONAL_URI}}
_CHANGE_DATA = {"type": "object", "required": [
    "change_set_id", "title", "summary", "is_material", "status", "url", "objection_url", "published_at",
    "effective_at", "effective_new_customers_at", "objection_deadline_at", "withdrawn_at", "items"],
    "properties": {
        "change_set_id": {"type": "integer"}, "title": {"type": "string"}, "summary": {"type": "string"},
        "is_material": {"type": "boolean"}, "status": {"type": "string"},
        "url": {"type": "string", "format": "uri"}, "objection_url": {"type": "string", "format": "uri"},
        "published_at": OPTIONAL_DATE_TIME, "effective_at": OPTIONAL_DATE_TIME,
        "effective_new_customers_at": OPTIONAL_DATE_TIME, "objection_deadline_at": OPTIONAL_DATE_TIME,
        "withdrawn_at": OPTIONAL_DATE_TIME, "items": {"type": "array", "items": _WEBHOOK_ITEM},
        "reason": {"type": "string", "description": "change.withdrawn and change.date_moved: why"},
        "previous_effective_at": {"type": "string", "format": "date-time",
                                  "description": "change.date_moved: the date before the move"}}}
_OBJECTION_DATA = {"type": "object", "required": ["objection_id", "reference", "status", "status_url"],
                   "properties": {
                       "objection_id": {"type": "integer"}, "reference": {"type": "string"},
                       "kind": {"enum": ["objection", "approval"]}, "change_set_id": {"type": "integer"},
                       "status": {"type": "string"}, "outcome": {"type": ["string", "null"]},
                       "organisation": {"type": "string"}, "status_url": {"type": "string", "format": "uri"},
                       "updated_at": {"type": "string", "format": "date-time"}}}
_PING_DATA = {"type": "object", "required": ["endpoint_id", "url", "topics"], "properties": {
    "endpoint_id": {"type": "integer"}, "url": {"type": "string"},
    "topics": {"type": "array", "items": {"type": "string"}}}}


def _webhook_event(event_type: str, data: dict) -> dict:
    return {"type": "object", "required": ["type", "timestamp", "data"], "properties": {
        "type": {"const": event_type}, "timestamp": {"type": "string", "format": "date-time"}, "data": data}}


WEBHOOK_EVENTS = {
    "change.announced": ("WebhookChangeAnnounced", _CHANGE_DATA,
                         "A change was scheduled and its notice starts now."),
    "change.date_moved": ("WebhookChangeDateMoved", _CHANGE_DATA,
                          "The effective date moved (a late notice, or a change it follows moved)."),
    "change.withdrawn": ("WebhookChangeWithdrawn", _CHANGE_DATA, "An announced change was withdrawn."),
    "change.effective": ("WebhookChangeEffective", _CHANGE_DATA, "A change took effect."),
    "objection.updated": ("WebhookObjectionUpdated", _OBJECTION_DATA,
                          "An objection or approval you sent moved on or got a reply."),
    "ping": ("WebhookPing", _PING_DATA, "Sent when an endpoint is added or enabled."),
}
WEBHOOK_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Stable per event and endpoint: the same on every retry and resend."},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds of this attempt."},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Space-separated v1,<base64 HMAC-SHA256> entries (Standard Webhooks)."},
]
SCHEMAS |= {name: _webhook_event(event_type, data) for event_type, (name, data, _) in WEBHOOK_EVENTS.items()}


def _webhooks() -> dict:
    return {event_type: {"post": {
        "operationId": "webhook_" + event_type.replace(".", "_"), "summary": summary, "tags": ["Webhooks"],
        "parameters": WEBHOOK_HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(name)}}},
        "responses": {"2XX": {"description": "Received. Anything else, a redirect or no answer within 10 s "
                                             "is retried (5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h "
                                             "for 3 days)."}}}}
        for event_type, (name, _, summary) in WEBHOOK_EVENTS.items()}


def document(choices: Choices) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sub-processor registry API",
            "version": API_VERSION,
            "summary": "The public sub-processor list and legal documents, with every version.",
            "description": "Read-only and public. Timestamps are ISO 8601 in UTC with an offset. "
                           "Answers carry ETag and Last-Modified; send them back with "
                           "If-None-Match or If-Modified-Since to get 304 Not Modified.",
        },
        "servers": [{"url": "/api/v1"}],
        "tags": [{"name": "Subprocessors"}, {"name": "Documents"}, {"name": "Changes"},
                 {"name": "Exports"}, {"name": "Meta"}, {"name": "Webhooks"}],
        "paths": PATHS,
        "webhooks": _webhooks(),
        "components": {"schemas": SCHEMAS, "parameters": _parameters(choices), "headers": HEADERS,
                       "responses": RESPONSES},
    }
