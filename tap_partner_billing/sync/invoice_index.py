"""What the invoice list means for a run, and what it shows to be off in the settings.

Which invoices to export, which months are invoiced, an invoice's month and type. Built once
per run from Partner Center's invoice list (None when ``discover_invoices`` is off) and the
settings that choose invoices. No Singer and no I/O in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tap_partner_billing.service.partner_center import invoices_to_export

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from tap_partner_billing.service.partner_center import Invoice

# An invoice the list gives no documentType is an invoice, not a credit or adjustment note.
INVOICE = "invoice"


@dataclass(frozen=True)
class InvoiceIndex:
    """The invoice list of a run and the answers the streams need from it.

    Attributes:
        invoices: The documents of Partner Center's list, each once (nested amendments
            included, see ``invoices.list_documents``), in its order; None when
            ``discover_invoices`` is off (then only ``explicit_ids`` are exported and no
            month is known to be invoiced).
        explicit_ids: ``invoice_ids``: always exported.
        start_month: ``start_date`` as ``YYYYMM``: discovered invoices before it are not.
    """

    invoices: tuple[Invoice, ...] | None
    explicit_ids: tuple[str, ...] = ()
    start_month: str | None = None
    _by_id: dict[str, Invoice] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Index the list by id (the first entry wins, as a scan in list order would)."""
        by_id: dict[str, Invoice] = {}
        for invoice in self.invoices or ():
            by_id.setdefault(invoice.id, invoice)
        object.__setattr__(self, "_by_id", by_id)

    @classmethod
    def from_settings(
        cls, invoices: list[Invoice] | None, config: Mapping[str, Any]
    ) -> InvoiceIndex:
        """The index of ``invoices`` under ``invoice_ids`` and ``start_date`` (normalised)."""
        start = config.get("start_date")
        return cls(
            invoices=None if invoices is None else tuple(invoices),
            explicit_ids=tuple(config.get("invoice_ids") or ()),
            start_month=start.replace("-", "") if start else None,  # normalised to YYYY-MM
        )

    @cached_property
    def billed_invoice_ids(self) -> list[str]:
        """What the billed streams export: explicit and discovered ids, sorted (docs/streams.md)."""
        return invoices_to_export(
            self.invoices or (), start_month=self.start_month, explicit=self.explicit_ids
        )

    def invoice(self, invoice_id: str) -> Invoice | None:
        """The list's entry for ``invoice_id`` (None: not listed, or discovery is off)."""
        return self._by_id.get(invoice_id)

    def month_of(self, invoice_id: str) -> str | None:
        """The billing month (``YYYYMM``) the list gives for ``invoice_id`` (None: not known)."""
        invoice = self.invoice(invoice_id)
        return None if invoice is None else invoice.billing_month

    def document_type_of(self, invoice_id: str) -> str:
        """The list's documentType of ``invoice_id``; ``invoice`` when it is not known."""
        invoice = self.invoice(invoice_id)
        return (invoice.document_type if invoice else None) or INVOICE

    def invoiced_months(self, currency: str) -> dict[str, str]:
        """Billing month → the id of an invoice in ``currency`` covering it, from the list.

        Only invoices proper count (a credit note, or a nested document typed ``amendment``,
        does not close a month), only those Graph has exports for, and an invoice without a
        currency counts for every currency (a nested document without a type is an
        amendment, and takes its lister's currency: ``docs/invoices.md``).
        """
        months: dict[str, str] = {}
        for invoice in self.invoices or ():
            month = invoice.billing_month
            if (
                month
                and invoice.has_export_data
                and (invoice.document_type or INVOICE).lower() == INVOICE
                and (invoice.currency_code or currency).upper() == currency
            ):
                months.setdefault(month, invoice.id)
        return months


def invoice_list_warnings(
    invoices: list[Invoice], *, invoice_ids: Iterable[str], currency_codes: Iterable[str]
) -> list[str]:
    """What the invoice list shows to be off in the settings (warnings, never errors).

    An explicit invoice id the list does not show is still exported (the escape hatch); a
    currency is compared with the currencies of the listed invoices, when there are any.
    """
    listed = {invoice.id for invoice in invoices}
    warnings = [
        f"invoice_ids: {invoice_id} is not in the Partner Center invoice list; it is "
        "exported anyway, and answers 'no data' while Graph has nothing for it "
        "(check the number)"
        for invoice_id in invoice_ids
        if invoice_id not in listed
    ]
    seen = {i.currency_code.upper() for i in invoices if i.currency_code}
    if not seen:
        return warnings
    configured = list(currency_codes)
    shown = ", ".join(sorted(seen))
    warnings.extend(
        f"currency_codes: no listed invoice is in {currency} (the list shows {shown}); "
        f"the unbilled exports of {currency} will likely answer 'no data'"
        for currency in configured
        if currency not in seen
    )
    warnings.extend(
        f"currency_codes does not list {currency}, a currency of the listed invoices: "
        f"unbilled usage and reconciliation in {currency} are not exported (add it to "
        "currency_codes to export them)"
        for currency in sorted(seen - set(configured))
    )
    return warnings
