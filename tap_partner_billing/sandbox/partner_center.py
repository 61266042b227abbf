"""The sandbox's Partner Center: ``GET /v1/invoices``, paged with a continuation header."""

from __future__ import annotations

import calendar
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tap_partner_billing.sandbox.config import shift_month

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.service import Sandbox

CONTINUATION_HEADER = "MS-ContinuationToken"
LEGACY_TOTAL = Decimal("1234.50")


def invoice_page(sandbox: Sandbox, continuation: str | None) -> dict[str, Any]:
    """One page of the invoice list; ``continuation`` comes from the previous page's link."""
    listed = _listed(sandbox)
    start = int(continuation) if continuation and continuation.isdigit() else 0
    size = max(1, sandbox.config.invoice_page_size)
    links: dict[str, Any] = {"self": {"uri": "/invoices", "method": "GET", "headers": []}}
    if start + size < len(listed):
        # Partner Center writes next links relative to its /v1 root.
        links["next"] = {
            "uri": f"/invoices?size={size}",
            "method": "GET",
            "headers": [{"key": CONTINUATION_HEADER, "value": str(start + size)}],
        }
    return {
        "totalCount": len(listed),
        "items": [_item(sandbox, invoice) for invoice in listed[start : start + size]],
        "links": links,
        "attributes": {"objectType": "Collection"},
    }


def invoice_items(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every invoice: the ones with export data (totals from their blobs), then legacy ones."""
    return [_item(sandbox, invoice) for invoice in _listed(sandbox)]


def _listed(sandbox: Sandbox) -> list[str]:
    config = sandbox.config
    return sorted(config.invoices) + sorted(config.legacy_invoices)


def _item(sandbox: Sandbox, invoice: str) -> dict[str, Any]:
    """One list entry; only this reads the invoice's data (for its total)."""
    config = sandbox.config
    spec = config.invoices.get(invoice)
    if spec is None:  # a legacy invoice: listed, no export data
        return _invoice_item(invoice, config.legacy_invoices[invoice], "invoice", LEGACY_TOTAL, [])
    # An invoice's total is the sum of its reconciliation lines (licences, fees and the Azure
    # plan lines that bill its usage), read back from the served blobs; plus the planted
    # discrepancy, if any.
    total = sandbox.billed_truth(invoice, dataset="reconciliation").pretax_total
    total += config.total_discrepancies.get(invoice, Decimal(0))
    amendments = [
        {"id": other, "documentType": other_spec.document_type}
        for other, other_spec in sorted(config.invoices.items())
        if other_spec.amends == invoice
    ]
    item = _invoice_item(invoice, spec.billing_month, spec.document_type, total, amendments)
    if spec.amends:
        item["amendsOf"] = spec.amends
    return item


def _invoice_item(
    invoice: str, month: str, document_type: str, total: Decimal, amendments: list[Any]
) -> dict[str, Any]:
    """A Partner Center invoice summary (reference §7)."""
    year, mon = int(month[:4]), int(month[4:])
    issued = shift_month(month, 1)
    last_day = calendar.monthrange(year, mon)[1]
    return {
        "id": invoice,
        "invoiceDate": f"{issued[:4]}-{issued[4:]}-05T00:00:00Z",
        "billingPeriodStartDate": f"{year:04d}-{mon:02d}-01T00:00:00Z",
        "billingPeriodEndDate": f"{year:04d}-{mon:02d}-{last_day:02d}T00:00:00Z",
        "totalCharges": total,
        "paidAmount": Decimal(0),
        "currencyCode": "USD",
        "currencySymbol": "$",
        "documentType": document_type,
        "invoiceType": "OneTime" if invoice.startswith("G") else "Recurring",
        "amendments": amendments,
        "invoiceDetails": [
            {"invoiceLineItemType": "billing_line_items", "billingProvider": "one_time"},
            {"invoiceLineItemType": "usage_line_items", "billingProvider": "azure"},
        ],
        "attributes": {"objectType": "Invoice"},
    }
