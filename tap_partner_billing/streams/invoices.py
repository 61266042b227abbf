"""The ``invoices`` stream: the Partner Center invoice list, one record per document.

Every document once, nested amendments included (``docs/invoices.md``). Its records take the
same routes as the export streams' (``streams/routing.py``): BATCH files the tap writes itself, the
direct route, or the SDK's path when a stream map, flattening or a deselected property has
work to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.records.fields import Kind, column_schema
from tap_partner_billing.streams.routing import RoutedStream

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_partner_billing.sync.shared import SyncRun


class InvoicesStream(RoutedStream):
    """Partner Center invoices (GET /v1/invoices): a full list on every run, keyed by id."""

    name = "invoices"
    primary_keys: ClassVar[list[str]] = ["id"]

    def __init__(self, tap: Tap, sync_run: SyncRun) -> None:
        super().__init__(tap, self.declared_schema())
        # the invoice list is read once per run, shared with the billed streams
        self.sync_run = sync_run
        self.forced_replication_method = "FULL_TABLE"  # the whole list, every run

    @classmethod
    def declared_schema(cls) -> dict[str, Any]:
        """The record schema; totals are exact decimals like every money column."""
        return {
            "type": "object",
            "properties": {
                "id": {"type": ["string"]},
                "invoice_date": column_schema(Kind.DATETIME),
                "billing_period_start_date": column_schema(Kind.DATETIME),
                "billing_period_end_date": column_schema(Kind.DATETIME),
                "billing_month": column_schema(Kind.STRING),
                "document_type": column_schema(Kind.STRING),
                "invoice_type": column_schema(Kind.STRING),
                "currency_code": column_schema(Kind.STRING),
                "total_charges": column_schema(Kind.DECIMAL),
                "paid_amount": column_schema(Kind.DECIMAL),
                "amends_of": column_schema(Kind.STRING),
                "amendments": {"type": ["array", "null"], "items": {"type": "string"}},
                "invoice_details": column_schema(Kind.JSON_TEXT),
                "has_export_data": {"type": ["boolean", "null"]},
            },
        }

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Every document of the list read for this run (yielded on the SDK's route only)."""
        del context
        records = self.invoice_records()
        sink = self.open_sink()
        if sink.mode == "sdk":
            yield from records
            return
        sink.put_records(records)
        self.count_records(len(records))
        sink.flush()  # a BATCH file is closed and announced before the SDK's STATE

    def invoice_records(self) -> list[dict[str, Any]]:
        """The invoice list as records (exact decimal and date text, as the schema says)."""
        invoices = self.sync_run.invoice_index.invoices
        if invoices is None:
            self.logger.info("invoices: discover_invoices is false; nothing to list")
            return []
        return [
            {
                "id": invoice.id,
                "invoice_date": invoice.invoice_date,
                "billing_period_start_date": invoice.billing_period_start,
                "billing_period_end_date": invoice.billing_period_end,
                "billing_month": invoice.billing_month,
                "document_type": invoice.document_type,
                "invoice_type": invoice.invoice_type,
                "currency_code": invoice.currency_code,
                "total_charges": invoice.total_charges,
                "paid_amount": invoice.paid_amount,
                "amends_of": invoice.amends_of,
                "amendments": list(invoice.amendments),
                "invoice_details": invoice.details,
                "has_export_data": invoice.has_export_data,
            }
            for invoice in invoices
        ]
