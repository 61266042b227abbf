"""The invoice list as documents: nested amendments, one document per id, billing months.

The documented list (``load_json("partner_center_invoices.json")``, Partner Center's "Get a
collection of invoices" example) drives the first tests; the rules are in docs/invoices.md.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses

from tap_partner_billing.errors import ServiceError
from tap_partner_billing.service.partner_center import (
    MAX_NESTING_DEPTH,
    InvoiceClient,
    invoices_to_export,
    list_documents,
)
from tap_partner_billing.sync.invoice_index import InvoiceIndex
from tests.helpers import PARTNER_CENTER, load_json

LIST = f"{PARTNER_CENTER}/v1/invoices"


def _client() -> InvoiceClient:
    return InvoiceClient(base_url=PARTNER_CENTER, token=lambda: "pc-token", sleep=lambda _: None)


def _documents(*items: dict[str, Any]) -> dict[str, Any]:
    return {d.id: d for d in list_documents((item, f"item {n}") for n, item in enumerate(items))}


@pytest.mark.contract
@responses.activate
def test_the_documented_list_is_read_as_documents_across_its_offset_pages() -> None:
    responses.get(
        LIST,
        json=load_json("partner_center_invoices_offset2.json"),
        match=[responses.matchers.query_param_matcher({"size": "2", "offset": "2"})],
    )
    responses.get(LIST, json=load_json("partner_center_invoices.json"))
    documents = _client().list_invoices()
    # The relative next link "/invoices?size=2&offset=2" is resolved under /v1, on our origin.
    assert [c.request.url for c in responses.calls] == [LIST, f"{LIST}?size=2&offset=2"]
    assert [d.id for d in documents] == ["D02005YFHI", "G000024130", "G000024131", "G000024132"]
    note = documents[2]
    assert (note.document_type, note.amends_of) == ("adjustment_note", "G000024130")
    assert note.invoice_date == "2024-03-08T18:44:37.538145+00:00"  # 7 digits and Z, typed
    assert note.total_charges == "107661.12"
    # No billing-period dates anywhere: the void note's month is the one before its date, the
    # adjustment note takes the month of the document it amends.
    assert {d.id: d.billing_month for d in documents} == {
        "D02005YFHI": "202312",
        "G000024130": "202402",
        "G000024131": "202402",
        "G000024132": "202403",
    }
    assert documents[1].amendments == ("G000024131",)
    chosen = invoices_to_export(documents, start_month="202402", explicit=[])
    assert chosen == ["G000024130", "G000024131", "G000024132"]


def test_a_document_listed_nested_and_at_top_level_is_one_with_the_top_level_fields() -> None:
    nested = {"id": "G2", "invoiceDate": "2026-03-02T00:00:00Z", "totalCharges": 1}
    documents = list_documents(
        [
            ({"id": "G1", "invoiceDate": "2026-03-01T00:00:00Z", "amendments": [nested]}, "p1"),
            ({"id": "G3", "invoiceDate": "2026-03-01T00:00:00Z"}, "p1"),
            ({"id": "G2", "invoiceDate": "2026-03-02T00:00:00Z", "totalCharges": 2}, "p2"),
            ({"id": "G1", "invoiceDate": "2026-04-01T00:00:00Z"}, "p2"),  # a page repeated
            ({"id": "G5", "invoiceDate": "2026-05-01T00:00:00Z", "amendments": ["G3"]}, "p3"),
        ]
    )
    assert [d.id for d in documents] == ["G1", "G2", "G3", "G5"]  # where first listed
    by_id = {d.id: d for d in documents}
    assert by_id["G3"].amends_of == "G5"  # nested only after its top-level copy
    assert by_id["G3"].billing_month == "202604"  # G5's month
    assert by_id["G2"].total_charges == "2"  # the top-level copy's fields
    assert by_id["G2"].amends_of == "G1"  # what the nesting says, as the copy names none
    assert by_id["G1"].invoice_date == "2026-03-01T00:00:00+00:00"  # the first top-level copy


@pytest.mark.parametrize(
    ("note", "listed", "month"),
    [
        pytest.param({"amendsOf": "G1"}, True, "202601", id="amended-document-listed"),
        pytest.param({"amendsOf": "G1"}, False, "202603", id="amended-document-not-listed"),
        pytest.param(
            {"amendsOf": "G1", "billingPeriodStartDate": "2026-02-01T00:00:00+01:00"},
            True,
            "202602",
            id="own-period-wins",
        ),
    ],
)
def test_the_billing_month_of_an_amendment(note: dict[str, Any], listed: bool, month: str) -> None:
    invoice = {"id": "G1", "billingPeriodStartDate": "2026-01-01T00:00:00Z"}
    amendment = {"id": "G2", "invoiceDate": "2026-04-08T18:44:37.5381456Z", **note}
    documents = _documents(*([invoice] if listed else []), amendment)
    assert documents["G2"].billing_month == month


def test_a_nested_bare_id_and_a_cycle_of_amendments_are_documents_with_a_month() -> None:
    documents = _documents(
        {"id": "G1", "invoiceDate": "2026-05-03T00:00:00Z", "amendments": ["G2"]},
        {"id": "G3", "invoiceDate": "2026-07-03T00:00:00Z", "amendsOf": "G4"},
        {"id": "G4", "invoiceDate": "2026-09-03T00:00:00Z", "amendsOf": "G3"},
    )
    assert (documents["G2"].amends_of, documents["G2"].billing_month) == ("G1", "202604")
    assert documents["G3"].billing_month == "202608"  # the chain stops where it loops
    assert documents["G4"].billing_month == "202606"


def test_amendments_nested_in_amendments_are_documents_and_a_loop_ends() -> None:
    g3 = {"id": "G3", "invoiceDate": "2026-06-03T00:00:00Z", "amendments": ["G1", "G4"]}
    g2 = {"id": "G2", "documentType": "adjustment_note", "amendments": [g3]}
    documents = _documents(
        {"id": "G1", "invoiceDate": "2026-05-03T00:00:00Z", "amendments": [g2, "G1"]}
    )
    assert list(documents) == ["G1", "G2", "G3", "G4"]
    assert [documents[i].amends_of for i in documents] == [None, "G1", "G2", "G3"]
    assert documents["G1"].amendments == ("G2", "G1")  # as listed; G1 amends nothing
    assert {d.billing_month for d in documents.values()} == {"202604"}  # G3 has no period


def test_amendments_nested_too_deep_are_an_error_naming_the_item() -> None:
    item: dict[str, Any] = {"id": "G0"}
    for depth in range(MAX_NESTING_DEPTH + 1, 0, -1):
        item = {"id": f"G{depth}", "amendments": [item]}
    with pytest.raises(
        ServiceError, match=rf"item 0, invoice G1, .*nested more than {MAX_NESTING_DEPTH}"
    ):
        _documents(item)
    _documents(item["amendments"][0])  # one level less is read


def test_a_nested_document_is_an_amendment_in_the_currency_of_its_lister() -> None:
    listed = _documents(
        {
            "id": "G1",
            "currencyCode": "USD",
            "billingPeriodStartDate": "2026-04-01T00:00:00Z",
            "amendments": ["G7", {"id": "G8", "documentType": "invoice"}],
        },
        {"id": "G9", "billingPeriodStartDate": "2026-05-01T00:00:00Z", "amendments": ["G6"]},
    )
    g7 = listed["G7"]
    assert (g7.document_type, g7.currency_code, g7.billing_month) == ("amendment", "USD", "202604")
    assert (listed["G6"].document_type, listed["G6"].currency_code) == ("amendment", None)
    assert listed["G8"].document_type == "invoice"
    invoice_index = InvoiceIndex(tuple(listed.values()))
    # A bare nested id closes no month: not EUR's (no currency once meant every currency),
    # not USD's; G9 (top level, no currency) still counts for every currency.
    assert invoice_index.invoiced_months("EUR") == {"202605": "G9"}
    assert invoice_index.invoiced_months("USD") == {"202604": "G1", "202605": "G9"}
    assert invoice_index.document_type_of("G7") == "amendment"  # a note to the planner: no usage


def test_a_document_naming_itself_in_amends_of_amends_nothing() -> None:
    assert _documents({"id": "G1", "amendsOf": "G1"})["G1"].amends_of is None


@responses.activate
def test_a_next_link_asking_again_for_a_page_already_read_is_refused() -> None:
    # "Size and offset are only considered for legacy invoices": a list of modern invoices
    # could answer every offset with the same page and the same link.
    page = {"items": [{"id": "G1"}], "links": {"next": {"uri": "/invoices?size=2&offset=2"}}}
    responses.get(LIST, json=page)
    with pytest.raises(ServiceError, match=r"page 3: the next link asks for a page already"):
        _client().list_invoices()
    assert len(responses.calls) == 2


@responses.activate
@pytest.mark.parametrize(
    ("uri", "second"),
    [
        pytest.param("/invoices?size=2&offset=2", f"{LIST}?size=2&offset=2", id="documented"),
        pytest.param("invoices?size=2&offset=2", f"{LIST}?size=2&offset=2", id="no-slash"),
        pytest.param("/v1/invoices?offset=2", f"{LIST}?offset=2", id="v1-not-doubled"),
        pytest.param(f"{LIST}?offset=2", f"{LIST}?offset=2", id="absolute-same-origin"),
        pytest.param(
            "/invoices?back=https://x.example/",
            f"{LIST}?back=https://x.example/",
            id="relative-with-a-url-in-its-query",
        ),
    ],
)
def test_a_next_link_is_resolved_under_the_v1_root_of_partner_center_url(
    uri: str, second: str
) -> None:
    responses.get(second, json={"items": [{"id": "G2"}]})
    responses.get(LIST, json={"items": [{"id": "G1"}], "links": {"next": {"uri": uri}}})
    assert [d.id for d in _client().list_invoices()] == ["G1", "G2"]
    assert [c.request.url for c in responses.calls] == [LIST, second]
