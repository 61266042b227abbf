"""The ``invoices`` stream: the Partner Center invoice list, one record per document.

Every document once, nested amendments included (``docs/invoices.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream

from tap_partner_billing.fields import decimal_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context

    from tap_partner_billing.run import SyncRun

_STRING = {"type": ["string", "null"]}
_DATETIME = {"type": ["string", "null"], "format": "date-time"}


class InvoicesStream(Stream):
    """Partner Center invoices (GET /v1/invoices): a full list on every run, keyed by id."""

    name = "invoices"
    primary_keys: ClassVar[list[str]] = ["id"]

    def __init__(self, tap: Any, run: SyncRun) -> None:  # noqa: ANN401 - the SDK types it loosely
        super().__init__(tap=tap, schema=self.declared_schema())
        self.run = run  # the invoice list is read once per run, shared with the billed streams
        self.forced_replication_method = "FULL_TABLE"  # the whole list, every run

    @classmethod
    def declared_schema(cls) -> dict[str, Any]:
        """The record schema; totals are exact decimals like every money column."""
        return {
            "type": "object",
            "properties": {
                "id": {"type": ["string"]},
                "invoice_date": _DATETIME,
                "billing_period_start_date": _DATETIME,
                "billing_period_end_date": _DATETIME,
                "billing_month": _STRING,
                "document_type": _STRING,
                "invoice_type": _STRING,
                "currency_code": _STRING,
                "total_charges": decimal_schema(),
                "paid_amount": decimal_schema(),
                "amends_of": _STRING,
                "amendments": {"type": ["array", "null"], "items": {"type": "string"}},
                "invoice_details": _STRING,  # JSON text
                "has_export_data": {"type": ["boolean", "null"]},
            },
        }

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Every document of the list read for this run."""
        del context
        invoices = self.run.catalogue.invoices
        if invoices is None:
            self.logger.info("invoices: discover_invoices is false; nothing to list")
            return
        for invoice in invoices:
            yield {
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
