"""The invoice index (what the list means for a run) and the run's shared objects."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.service.partner_center import Invoice, parse_invoice
from tap_partner_billing.sync.invoice_index import InvoiceIndex
from tap_partner_billing.sync.services import build_services
from tap_partner_billing.sync.shared import SyncRun
from tap_partner_billing.tap import TapPartnerBilling
from tests.helpers import base_config

if TYPE_CHECKING:
    from collections.abc import Mapping

    import responses

    from tap_partner_billing.sync.services import Services
    from tests.helpers import FakeGraph


def invoice(invoice_id: str, month: str | None, **fields: Any) -> Invoice:
    item: dict[str, Any] = {"id": invoice_id, **fields}
    if month is not None:
        item["billingPeriodStartDate"] = f"{month[:4]}-{month[4:]}-01T00:00:00Z"
    return parse_invoice(item, "test")


LISTED = (
    invoice("G000000007", "202606", documentType="invoice", currencyCode="USD"),
    invoice("G000000008", "202609", documentType="Invoice", currencyCode="EUR"),
    invoice("G000000010", "202609", documentType="invoice", currencyCode="USD"),
    invoice("G000000011", "202609", currencyCode="USD"),  # no type: an invoice
    invoice("G000000012", "202610", documentType="CreditNote", currencyCode="USD"),
    invoice("G000000013", "202611"),  # no currency: counts for every currency
    invoice("D0000AAAAA", "202605", documentType="invoice", currencyCode="USD"),  # legacy
    invoice("G000000009", None),  # no billing period
)


def config(**settings: Any) -> dict[str, Any]:
    """The settings as the tap has them after validation (defaults filled, normalised)."""
    return dict(TapPartnerBilling(config=base_config(**settings)).config)


# ---- the invoice index --------------------------------------------------------------------------


def test_billed_invoices_are_the_explicit_ones_and_the_exportable_listed_from_start() -> None:
    invoice_index = InvoiceIndex.from_settings(
        list(LISTED), config(invoice_ids=["G000000001"], start_date="2026-08-01")
    )
    assert invoice_index.start_month == "202608"
    assert invoice_index.billed_invoice_ids == [
        "G000000001",  # explicit, not listed: exported anyway
        "G000000008",
        "G000000009",  # month unknown: exported (with a warning)
        "G000000010",
        "G000000011",
        "G000000012",
        "G000000013",
    ]


def test_without_the_list_only_explicit_invoices_and_no_month_is_invoiced() -> None:
    settings = config(invoice_ids=["G000000002", "G000000001"])
    invoice_index = InvoiceIndex.from_settings(None, settings)
    assert invoice_index.invoices is None
    assert invoice_index.billed_invoice_ids == ["G000000001", "G000000002"]
    assert invoice_index.invoiced_months("USD") == {}
    assert invoice_index.invoice("G000000001") is None
    assert invoice_index.month_of("G000000001") is None
    assert invoice_index.document_type_of("G000000001") == "invoice"


def test_invoiced_months_count_invoices_of_the_currency_with_export_data() -> None:
    invoice_index = InvoiceIndex(LISTED)
    # 202609: G000000010 is the first USD invoice (G000000008 is EUR); 202610 is only a
    # credit note; 202605 only a legacy invoice; 202611's invoice names no currency.
    assert invoice_index.invoiced_months("USD") == {
        "202606": "G000000007",
        "202609": "G000000010",
        "202611": "G000000013",
    }
    assert invoice_index.invoiced_months("EUR") == {"202609": "G000000008", "202611": "G000000013"}
    assert invoice_index.invoiced_months("GBP") == {"202611": "G000000013"}


def test_the_month_and_document_type_of_an_invoice() -> None:
    invoice_index = InvoiceIndex(LISTED)
    assert invoice_index.month_of("G000000012") == "202610"
    assert invoice_index.month_of("G000000009") is None  # listed without a period
    assert invoice_index.month_of("G000000099") is None  # not listed
    assert invoice_index.document_type_of("G000000012") == "CreditNote"
    assert invoice_index.document_type_of("G000000011") == "invoice"  # listed without a type
    assert invoice_index.document_type_of("G000000099") == "invoice"


def test_an_id_listed_twice_is_answered_from_its_first_entry() -> None:
    first = invoice("G000000001", "202601", documentType="invoice")
    again = invoice("G000000001", "202602", documentType="CreditNote")
    invoice_index = InvoiceIndex((first, again))
    assert invoice_index.invoice("G000000001") is first
    assert invoice_index.month_of("G000000001") == "202601"
    assert invoice_index.billed_invoice_ids == ["G000000001"]


# ---- the run's shared objects ---------------------------------------------------------------


class CountingServices:
    """Builds the real clients, counting how often (they are built once per run)."""

    def __init__(self) -> None:
        self.built = 0

    def __call__(self, settings: Mapping[str, Any]) -> Services:
        self.built += 1
        return build_services(settings)


def test_the_run_builds_nothing_until_asked_then_reads_the_list_once(
    graph: FakeGraph, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    graph.add_invoice("G000000001", "202609")
    graph.add_invoice("G000000002", "202609", currencyCode="EUR")
    make = CountingServices()
    sync_run = SyncRun(config(discover_invoices=True), logging.getLogger("tap-test"), make)
    assert make.built == 0
    assert len(rsps.calls) == 0
    with caplog.at_level(logging.INFO, logger="tap-test"):
        assert sync_run.invoice_index.billed_invoice_ids == ["G000000001", "G000000002"]
        assert sync_run.invoice_index is sync_run.invoice_index
        assert sync_run.services is sync_run.services
    assert make.built == 1
    assert graph.invoice_list_requests == 1
    assert "Partner Center lists 2 invoice(s)" in caplog.text
    assert "EUR" in caplog.text  # the list's warning: a currency no setting asks for


def test_with_discovery_off_the_run_never_builds_the_clients_for_the_invoice_index() -> None:
    make = CountingServices()
    sync_run = SyncRun(config(invoice_ids=["G000000001"]), logging.getLogger("tap-test"), make)
    assert sync_run.invoice_index.invoices is None
    assert sync_run.invoice_index.billed_invoice_ids == ["G000000001"]
    assert make.built == 0


def test_summaries_are_kept_per_stream_and_the_list_counts_only_once_read(
    graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    graph.add_invoice("G000000001", "202609")
    sync_run = SyncRun(config(discover_invoices=True), logging.getLogger("tap-test"))
    sync_run.summary_of("billed_usage").records += 3
    assert sync_run.summary_of("billed_usage").records == 3
    with caplog.at_level(logging.INFO, logger="tap-test"):
        sync_run.log_summary(["invoices"], invoice_list_stream="invoices")
        assert sync_run.invoice_index.invoices is not None
        sync_run.log_summary(["invoices", "billed_usage"], invoice_list_stream="invoices")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Run summary")]
    assert lines[0] == "Run summary invoices: 0 records (the invoice list)"
    assert lines[1] == "Run summary invoices: 1 records (the invoice list)"
    assert lines[2].startswith("Run summary billed_usage: partitions 0 exported")
    assert "3 records, 0 tombstones" in lines[2]


def test_discover_builds_no_client_and_sends_no_request(rsps: responses.RequestsMock) -> None:
    tap = TapPartnerBilling(config=base_config(discover_invoices=True))
    catalog = tap.catalog_dict
    assert {entry["stream"] for entry in catalog["streams"]} >= {"invoices", "billed_usage"}
    assert len(rsps.calls) == 0
    assert "services" not in vars(tap.sync_run)
    assert "invoice_index" not in vars(tap.sync_run)
    streams = list(tap.streams.values())
    assert all(getattr(stream, "sync_run", None) is tap.sync_run for stream in streams)
