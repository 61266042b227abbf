"""The usage streams: partitions, bookmarks, and which exports run. They only orchestrate."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.client import ExportStream
from tap_partner_billing.export import ExportRequest
from tap_partner_billing.invoices import shift_month
from tap_partner_billing.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context


def _fallback_month(period: str) -> str:
    """The absolute month ``current``/``last`` means today, when the manifest does not say."""
    today = datetime.now(timezone.utc)
    year, month = today.year, today.month
    if period == "last":
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return f"{year:04d}{month:02d}"


class BilledUsageStream(ExportStream):
    """Daily-rated usage of closed invoices; one partition per (invoice, attribute set)."""

    name = "billed_usage"
    action = "usage/billed"
    identity_properties = ("invoice_id", "attribute_set")
    primary_keys: ClassVar[list[str]] = ["invoice_id", "attribute_set", "line_ordinal"]

    @property
    def partitions(self) -> list[dict[str, Any]]:
        """One partition per invoice: explicit ``invoice_ids`` and discovered invoices."""
        attribute_set = self.config["attribute_set"]
        return [
            {"invoice_id": invoice_id, "attribute_set": attribute_set}
            for invoice_id in self.tap.billed_invoice_ids
        ]

    def _is_recent(self, invoice_id: str, state: dict[str, Any]) -> bool:
        """Whether the invoice's billing month is within ``recheck_months`` of today."""
        months = int(self.config["recheck_months"])
        if months == 0:
            return False
        month = state.get("billing_month") or self.tap.invoice_month(invoice_id)
        if not month:
            return False
        this_month = self.services.calendar().strftime("%Y%m")
        return str(month) >= shift_month(this_month, -months)

    def _note_type(self, invoice_id: str) -> str | None:
        """The document type of a usage partition's credit/adjustment note (else None)."""
        invoice = self.tap.invoice(invoice_id)
        kind = (invoice.document_type or "invoice") if invoice else "invoice"
        return None if self.dataset != "usage" or kind.lower() == "invoice" else kind

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Export one invoice unless it was emitted completely before and is not recent."""
        if context is None:  # the SDK passes None when there are no partitions
            self.logger.info("%s: no invoices to export", self.name)
            return
        invoice_id, attribute_set = context["invoice_id"], context["attribute_set"]
        label = f"{self.name} invoice {invoice_id} ({attribute_set})"
        self.open_sink()
        state = self.get_context_state(context)
        ledger = Ledger(state, label)
        pending: dict[str, Any] = state.setdefault("pending_operations", {})
        if state.get("no_usage") and not pending:
            self.logger.info(
                "%s: documentType %s has no usage (its export answered 'no data' before); "
                "not asked again",
                label,
                state["no_usage"],
            )
            self.summary.not_rechecked += 1
            return
        if "etag" in state and "progress" not in state and not pending:
            if not self._is_recent(invoice_id, state):
                self.logger.info(
                    "%s: already synced (eTag %s, %s lines); no export requested",
                    label,
                    state["etag"],
                    state.get("line_count"),
                )
                self.summary.not_rechecked += 1
                return
            self.logger.info(
                "%s: billing month %s is recent; checking for re-issued data",
                label,
                state.get("billing_month"),
            )
        request = ExportRequest(
            self.action, {"invoiceId": invoice_id, "attributeSet": attribute_set}, label
        )
        result = self.run_export(request, pending, "export")
        if result.manifest is None:
            # 5000 "No data available" is not "done": billed data lags about a day. But a
            # credit or adjustment note never has usage: asked once, remembered.
            pending.clear()
            self.summary.no_data += 1
            note = self._note_type(invoice_id)
            if note is not None:
                state["no_usage"] = note
                self.logger.info("%s: documentType %s has no usage; not asked again", label, note)
            self.checkpoint()
            return
        manifest = result.manifest
        identity = {
            "invoice_id": invoice_id,
            "attribute_set": attribute_set,
            "billing_month": manifest.billing_month,
        }
        if ledger.is_unchanged(manifest):
            self.logger.info("%s: unchanged since the last run (eTag %s)", label, manifest.etag)
            self.summary.unchanged += 1
        else:
            records = self.emit_manifest(
                result,
                manifest,
                ledger,
                identity,
                billing_month=manifest.billing_month,
                invoice_version=manifest.invoice_version,
            )
            yield from self.deliver(records)
        pending.clear()
        self.checkpoint()


class UnbilledUsageStream(ExportStream):
    """Usage not invoiced yet; partitions per (currency, attribute set), state per month."""

    name = "unbilled_usage"
    action = "usage/unbilled"
    identity_properties = ("billing_month", "currency", "attribute_set")
    primary_keys: ClassVar[list[str]] = [
        "billing_month",
        "currency",
        "attribute_set",
        "line_ordinal",
    ]

    @property
    def partitions(self) -> list[dict[str, Any]]:
        """One partition per configured currency; the billing periods are exported inside."""
        attribute_set = self.config["attribute_set"]
        return [
            {"currency": currency, "attribute_set": attribute_set}
            for currency in self.config["currency_codes"]
        ]

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Export each billing period of one currency; each resolves to an absolute month.

        A month the invoice list shows as invoiced is not emitted, and its keys are retired;
        so is a stored month no period answers any more once it is invoiced (see README).
        """
        if context is None:  # the SDK passes None when there are no partitions
            return
        currency, attribute_set = context["currency"], context["attribute_set"]
        self.open_sink()
        state = self.get_context_state(context)
        pending: dict[str, Any] = state.setdefault("pending_operations", {})
        months: dict[str, Any] = state.setdefault("months", {})
        invoiced = self.tap.invoiced_months(currency)
        answered: set[str] = set()  # months some period answered in this run
        synced: set[str] = set()  # of those, the ones emitted (or unchanged)
        for period in self.config["billing_periods"]:
            label = f"{self.name} {period} period, {currency} ({attribute_set})"
            request = ExportRequest(
                self.action,
                {"billingPeriod": period, "currencyCode": currency, "attributeSet": attribute_set},
                label,
            )
            result = self.run_export(request, pending, period)
            manifest = result.manifest
            if manifest is None:
                self.summary.no_data += 1
            else:
                month = manifest.billing_month
                if month is None:
                    month = _fallback_month(period)
                    self.logger.warning(
                        "%s: manifest names no BillingMonth; assuming %s", label, month
                    )
                answered.add(month)
                if month in invoiced:
                    self.logger.info(
                        "%s: month %s is invoiced (%s); its unbilled lines are not exported",
                        label,
                        month,
                        invoiced[month],
                    )
                elif month in synced:
                    self.logger.info("%s: month %s was already synced in this run", label, month)
                else:
                    synced.add(month)
                    ledger = Ledger(months.setdefault(month, {}), f"{label}, month {month}")
                    identity = {
                        "billing_month": month,
                        "currency": currency,
                        "attribute_set": attribute_set,
                    }
                    if ledger.is_unchanged(manifest):
                        self.logger.info(
                            "%s: month %s unchanged (eTag %s)", label, month, manifest.etag
                        )
                        self.summary.unchanged += 1
                    else:
                        records = self.emit_manifest(result, manifest, ledger, identity)
                        yield from self.deliver(records)
            pending.pop(period, None)
            self.checkpoint()
        label = f"{self.name} {currency} ({attribute_set})"
        for month in sorted(set(months) - synced):
            reason = self._retirement_reason(month, invoiced, answered)
            if reason is None:
                self.logger.info(
                    "%s: month %s was not answered in this run; kept until it is invoiced",
                    label,
                    month,
                )
                continue
            ledger = Ledger(months[month], f"{label}, month {month}")
            self.logger.info(
                "%s: month %s leaves the unbilled stream (%s): retiring its %d key(s)",
                label,
                month,
                reason,
                len(ledger.retirement()),
            )
            identity = {
                "billing_month": month,
                "currency": currency,
                "attribute_set": attribute_set,
            }
            yield from self.deliver(self.retire_all(ledger, identity))
            self.summary.retired += 1
            del months[month]
            self.checkpoint()

    @staticmethod
    def _retirement_reason(month: str, invoiced: dict[str, str], answered: set[str]) -> str | None:
        """Why a stored month is invoiced now, or None while that is not known.

        A period answering "no data" (5000) proves nothing (it may be transient), so the
        proof is the month's invoice in the list, or ``current`` being two months past it
        (then it cannot be ``last`` any more, for users without the invoice list).
        """
        if month in invoiced:
            return f"invoice {invoiced[month]} covers it"
        newest = max(answered, default=None)
        if newest is not None and newest >= shift_month(month, 2):
            return f"the periods answer {newest} now"
        return None


class BilledReconciliationStream(BilledUsageStream):
    """Invoice line items (licences, reservations, one-time, marketplace) of closed invoices."""

    name = "billed_reconciliation"
    action = "reconciliation/billed"
    dataset = "reconciliation"


class UnbilledReconciliationStream(UnbilledUsageStream):
    """Invoice line items not invoiced yet; like unbilled usage, state per absolute month."""

    name = "unbilled_reconciliation"
    action = "reconciliation/unbilled"
    dataset = "reconciliation"


STREAM_TYPES: tuple[type[ExportStream], ...] = (
    BilledUsageStream,
    UnbilledUsageStream,
    BilledReconciliationStream,
    UnbilledReconciliationStream,
)
