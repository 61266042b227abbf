"""The usage streams: partitions, bookmarks, and which exports run. They only orchestrate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.dates import month_of_date, previous_month, shift_month, utc_now
from tap_partner_billing.emission.ledger import Ledger
from tap_partner_billing.service.export import ExportRequest
from tap_partner_billing.streams.export_stream import ExportStream
from tap_partner_billing.sync.planner import (
    REMEMBERED_NO_DATA,
    BilledPlanner,
    Decision,
    Plan,
    PlannedExport,
    billed_documents,
    floor_warning,
    forget_no_data,
    skipped_lines,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context

    from tap_partner_billing.service.export import ExportResult
    from tap_partner_billing.service.manifest import Manifest


@dataclass
class _UnbilledPartition:
    """One currency's unbilled partition in this run: its state, and the months answered."""

    currency: str
    attribute_set: str
    pending: dict[str, Any]  # billing period → its saved export operation
    months: dict[str, Any]  # absolute month → its ledger state
    invoiced: dict[str, str]  # month → the invoice covering it, from the invoice list
    answered: set[str] = field(default_factory=set)  # months some period answered
    synced: set[str] = field(default_factory=set)  # of those, emitted (or unchanged)

    def identity(self, month: str) -> dict[str, Any]:
        """The identity columns of ``month``'s rows."""
        return {
            "billing_month": month,
            "currency": self.currency,
            "attribute_set": self.attribute_set,
        }


def _fallback_month(period: str) -> str:
    """The absolute month ``current``/``last`` means today, when the manifest does not say."""
    this_month = month_of_date(utc_now())
    return previous_month(this_month) if period == "last" else this_month


class BilledUsageStream(ExportStream):
    """Daily-rated usage of closed invoices; one partition per (invoice, attribute set)."""

    name = "billed_usage"
    action = "usage/billed"
    identity_properties = ("invoice_id", "attribute_set")
    primary_keys: ClassVar[list[str]] = ["invoice_id", "attribute_set", "line_ordinal"]

    @cached_property
    def planner(self) -> BilledPlanner:
        """This run's decisions for this dataset (see ``sync/planner.py``)."""
        return BilledPlanner(
            self.dataset,
            today=self.services.calendar(),
            recheck_months=int(self.config["recheck_months"]),
            refresh_ids=frozenset(self.config.get("refresh_invoice_ids") or ()),
        )

    @cached_property
    def plans(self) -> dict[str, Plan]:
        """Invoice id → its plan at the start of the run; the skipped are logged once here."""
        attribute_set = self.config["attribute_set"]
        saved = self.tap_state.get("bookmarks", {}).get(self.name, {}).get("partitions") or []
        bookmarks = {
            p["context"].get("invoice_id"): p
            for p in saved
            if isinstance(p, dict)
            and isinstance(p.get("context"), dict)
            and p["context"].get("attribute_set") == attribute_set
        }
        plans = {
            doc.invoice_id: self.planner.plan(doc, bookmarks.get(doc.invoice_id, {}))
            for doc in billed_documents(self.sync_run.invoice_index)
        }
        for level, line in skipped_lines(self.name, self.dataset, plans.values()):
            self.logger.log(level, "%s", line)
        return plans

    @property
    def partitions(self) -> list[dict[str, Any]]:
        """One partition per invoice the floors leave: explicit ids and discovered ones."""
        attribute_set = self.config["attribute_set"]
        return [
            {"invoice_id": invoice_id, "attribute_set": attribute_set}
            for invoice_id, plan in self.plans.items()
            if plan.decision is not Decision.BELOW_FLOOR
        ]

    def _request(self, context: Context) -> ExportRequest:
        """The export of one invoice partition."""
        body = {"invoiceId": context["invoice_id"], "attributeSet": context["attribute_set"]}
        where = f"{self.name} invoice {body['invoiceId']} ({body['attributeSet']})"
        return ExportRequest(self.action, body, where)

    def planned_exports(self) -> Iterator[PlannedExport]:
        """The invoices whose plan is to export, in partition order."""
        for context in self.partitions:
            state = self.get_context_state(context)
            plan = self.planner.plan(self.plans[context["invoice_id"]].document, state)
            if plan.decision is Decision.EXPORT:
                pending = state.setdefault("pending_operations", {})
                yield PlannedExport(self._request(context), pending, "export")

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Export one invoice unless its plan says not to (settled, or remembered no data)."""
        if context is None:  # the SDK passes None when there are no partitions
            self.logger.info("%s: no invoices to export", self.name)
            return
        request = self._request(context)
        invoice_id, where = context["invoice_id"], request.where
        self.open_sink()
        state = self.get_context_state(context)
        ledger = Ledger(state, where)
        pending: dict[str, Any] = state.setdefault("pending_operations", {})
        plan = self.planner.plan(self.plans[invoice_id].document, state)
        if not self._asks(plan, state, where):
            self.summary.not_rechecked += 1
            return
        result = self.run_export(request, pending, "export")
        if result.manifest is None:
            self._no_data(plan, state, where, result.message)
        else:
            forget_no_data(state)
            yield from self._sync_invoice(result, result.manifest, ledger, context, where)
        pending.clear()
        self.checkpoint()

    def _asks(self, plan: Plan, state: dict[str, Any], where: str) -> bool:
        """Whether to ask Graph, saying why (a remembered 'no data' was said at the start)."""
        if plan.decision is Decision.SETTLED:
            self.logger.info("%s: %s; no export requested", where, plan.why)
            return False
        if plan.decision is not Decision.EXPORT:
            self.logger.debug("%s: not asked again: %s", where, plan.why)
            return False
        if plan.floor_overridden:
            self.logger.warning("%s: %s", where, floor_warning(plan, self.dataset))
        if plan.refresh:
            self.logger.info(
                "%s: refresh_invoice_ids names it: asking Graph again (rows are emitted only "
                "if the data changed)",
                where,
            )
            forget_no_data(state)
        else:  # a re-check of an exported invoice is worth a line; a first export is not
            self.logger.log(
                logging.INFO if "etag" in state else logging.DEBUG, "%s: %s", where, plan.why
            )
        return True

    def _no_data(self, plan: Plan, state: dict[str, Any], where: str, message: str) -> None:
        """The export answered 5000: remembered when asking again cannot help, else not.

        INFO when the planner expects it (a note's usage, below the floor, a recent invoice:
        billed data lags about a day), else WARNING.
        """
        self.summary.no_data += 1
        expected = self.planner.no_data_expected(plan, state)
        at = self.services.calendar().isoformat()
        memory = self.planner.no_data_memory(plan.document, state, message, at)
        if memory is not None:
            state["no_data"] = memory
            said = f"answered 5000 and {memory['why']}: {REMEMBERED_NO_DATA}"
        else:
            why = f": {expected}" if expected else ""
            said = f"answered 5000 ({message or 'no data'}){why}; asked again on the next run"
        self.logger.log(logging.INFO if expected else logging.WARNING, "%s: %s", where, said)

    def _sync_invoice(
        self,
        result: ExportResult,
        manifest: Manifest,
        ledger: Ledger,
        context: Context,
        where: str,
    ) -> Iterator[dict[str, Any]]:
        """Emit the invoice's manifest, unless its eTag matches what was emitted last."""
        if ledger.is_unchanged(manifest):
            self.logger.info("%s: unchanged since the last run (eTag %s)", where, manifest.etag)
            self.summary.unchanged += 1
            return
        identity = {
            "invoice_id": context["invoice_id"],
            "attribute_set": context["attribute_set"],
            "billing_month": manifest.billing_month,
        }
        records = self.emit_manifest(
            result,
            manifest,
            ledger,
            identity,
            billing_month=manifest.billing_month,
            invoice_version=manifest.invoice_version,
        )
        yield from self.deliver(records)


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

    def _request(self, context: Context, period: str) -> ExportRequest:
        """The export of one billing period of one currency partition."""
        currency, attribute_set = context["currency"], context["attribute_set"]
        where = f"{self.name} {period} period, {currency} ({attribute_set})"
        body = {"billingPeriod": period, "currencyCode": currency, "attributeSet": attribute_set}
        return ExportRequest(self.action, body, where)

    def planned_exports(self) -> Iterator[PlannedExport]:
        """Every billing period of every currency: unbilled data is always asked for."""
        for context in self.partitions:
            pending = self.get_context_state(context).setdefault("pending_operations", {})
            for period in self.config["billing_periods"]:
                yield PlannedExport(self._request(context, period), pending, period)

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Export each billing period of one currency, then retire the months that left.

        Each period resolves to an absolute month. A month the invoice list shows as invoiced
        is not emitted, and its keys are retired; so is a stored month no period answers any
        more once it is invoiced (see docs/streams.md).
        """
        if context is None:  # the SDK passes None when there are no partitions
            return
        self.open_sink()
        state, currency = self.get_context_state(context), context["currency"]
        part = _UnbilledPartition(
            currency,
            context["attribute_set"],
            pending=state.setdefault("pending_operations", {}),
            months=state.setdefault("months", {}),
            invoiced=self.sync_run.invoice_index.invoiced_months(currency),
        )
        for period in self.config["billing_periods"]:
            yield from self._export_period(part, period, self._request(context, period))
        yield from self._retire_months_that_left(part)

    def _export_period(
        self, part: _UnbilledPartition, period: str, request: ExportRequest
    ) -> Iterator[dict[str, Any]]:
        """Export one billing period; emit its month unless invoiced or already synced."""
        where, result = request.where, self.run_export(request, part.pending, period)
        if result.manifest is None:
            self.summary.no_data += 1
        else:
            month = self._month_of(result.manifest, period, where)
            part.answered.add(month)
            if self._is_to_sync(part, month, where):
                part.synced.add(month)
                ledger = Ledger(part.months.setdefault(month, {}), f"{where}, month {month}")
                identity = part.identity(month)
                yield from self._sync_month(result, result.manifest, ledger, identity, where)
        part.pending.pop(period, None)
        self.checkpoint()

    def _month_of(self, manifest: Manifest, period: str, where: str) -> str:
        """The absolute month a period's manifest covers (today's reading if it names none)."""
        if manifest.billing_month is not None:
            return manifest.billing_month
        month = _fallback_month(period)
        self.logger.warning("%s: manifest names no BillingMonth; assuming %s", where, month)
        return month

    def _is_to_sync(self, part: _UnbilledPartition, month: str, where: str) -> bool:
        """Whether an answered month is emitted: not invoiced, not synced earlier in this run."""
        if month in part.invoiced:
            self.logger.info(
                "%s: month %s is invoiced (%s); its unbilled lines are not exported",
                where,
                month,
                part.invoiced[month],
            )
            return False
        if month in part.synced:
            self.logger.info("%s: month %s was already synced in this run", where, month)
            return False
        return True

    def _sync_month(
        self,
        result: ExportResult,
        manifest: Manifest,
        ledger: Ledger,
        identity: dict[str, Any],
        where: str,
    ) -> Iterator[dict[str, Any]]:
        """Emit a month's manifest, unless its eTag matches what was emitted last."""
        if ledger.is_unchanged(manifest):
            month = identity["billing_month"]
            self.logger.info("%s: month %s unchanged (eTag %s)", where, month, manifest.etag)
            self.summary.unchanged += 1
            return
        yield from self.deliver(self.emit_manifest(result, manifest, ledger, identity))

    def _retire_months_that_left(self, part: _UnbilledPartition) -> Iterator[dict[str, Any]]:
        """Retire every stored month not synced in this run that is known to be invoiced."""
        where = f"{self.name} {part.currency} ({part.attribute_set})"
        for month in sorted(set(part.months) - part.synced):
            reason = self._retirement_reason(month, part.invoiced, part.answered)
            if reason is None:
                self.logger.info(
                    "%s: month %s was not answered in this run; kept until it is invoiced",
                    where,
                    month,
                )
                continue
            ledger = Ledger(part.months[month], f"{where}, month {month}")
            self.logger.info(
                "%s: month %s leaves the unbilled stream (%s): retiring its %d key(s)",
                where,
                month,
                reason,
                len(ledger.retirement()),
            )
            yield from self.deliver(self.retire_all(ledger, part.identity(month)))
            self.summary.retired += 1
            del part.months[month]
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
