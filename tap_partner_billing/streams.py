"""The usage streams: partitions, bookmarks, and which exports run. They only orchestrate."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.client import ExportStream
from tap_partner_billing.export import ExportRequest
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
        """One partition per configured invoice id."""
        attribute_set = self.config["attribute_set"]
        return [
            {"invoice_id": invoice_id, "attribute_set": attribute_set}
            for invoice_id in self.config.get("invoice_ids", [])
        ]

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Export one invoice unless it was emitted completely before."""
        if context is None:  # the SDK passes None when there are no partitions
            self.logger.info("%s: no invoice_ids configured; nothing to export", self.name)
            return
        invoice_id, attribute_set = context["invoice_id"], context["attribute_set"]
        label = f"{self.name} invoice {invoice_id} ({attribute_set})"
        self.open_sink()
        state = self.get_context_state(context)
        ledger = Ledger(state, label)
        pending: dict[str, Any] = state.setdefault("pending_operations", {})
        if "etag" in state and "progress" not in state and not pending:
            self.logger.info(
                "%s: already synced (eTag %s, %s lines); no export requested",
                label,
                state["etag"],
                state.get("line_count"),
            )
            return
        request = ExportRequest(
            self.action, {"invoiceId": invoice_id, "attributeSet": attribute_set}, label
        )
        result = self.run_export(request, pending, "export")
        if result.manifest is None:
            # 5000 "No data available" is not "done": billed data lags about a day.
            pending.clear()
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
        """Export each billing period of one currency; each resolves to an absolute month."""
        if context is None:  # the SDK passes None when there are no partitions
            return
        currency, attribute_set = context["currency"], context["attribute_set"]
        self.open_sink()
        state = self.get_context_state(context)
        pending: dict[str, Any] = state.setdefault("pending_operations", {})
        months: dict[str, Any] = state.setdefault("months", {})
        synced: set[str] = set()
        for period in self.config["billing_periods"]:
            label = f"{self.name} {period} period, {currency} ({attribute_set})"
            request = ExportRequest(
                self.action,
                {"billingPeriod": period, "currencyCode": currency, "attributeSet": attribute_set},
                label,
            )
            result = self.run_export(request, pending, period)
            manifest = result.manifest
            if manifest is not None:
                month = manifest.billing_month
                if month is None:
                    month = _fallback_month(period)
                    self.logger.warning(
                        "%s: manifest names no BillingMonth; assuming %s", label, month
                    )
                if month in synced:
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
                    else:
                        records = self.emit_manifest(result, manifest, ledger, identity)
                        yield from self.deliver(records)
            pending.pop(period, None)
            self.checkpoint()


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
