"""The usage streams. They only orchestrate: export → manifest → blobs → typed records."""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, cast

from singer_sdk import Stream
from singer_sdk.mapper import SameRecordTransform

from tap_partner_billing.blobs import download_in_order, iter_lines
from tap_partner_billing.codec import LineCodec
from tap_partner_billing.errors import BlobDataError, OperationGoneError, RecordValueError
from tap_partner_billing.export import ExportRequest, ExportResult
from tap_partner_billing.fields import EXTRA_FIELDS_COLUMN, USAGE, FieldSet, to_datetime_text
from tap_partner_billing.ledger import Ledger
from tap_partner_billing.output import DirectRecordWriter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context

    from tap_partner_billing.manifest import Manifest
    from tap_partner_billing.services import Services
    from tap_partner_billing.tap import TapPartnerBilling

_STRING = {"type": ["string", "null"]}
_KEY_STRING = {"type": ["string"]}
_INTEGER = {"type": ["integer", "null"]}
_DATETIME = {"type": ["string", "null"], "format": "date-time"}

PROVENANCE_PROPERTIES: dict[str, dict[str, Any]] = {
    "billing_month": _STRING,
    "line_ordinal": {"type": ["integer"]},
    "_operation_id": _STRING,
    "_manifest_id": _STRING,
    "_manifest_etag": _STRING,
    "_manifest_created_at": _DATETIME,
    "_invoice_version": _STRING,
    "_blob_name": _STRING,
    "_blob_line": _INTEGER,
    "_sdc_deleted_at": _DATETIME,
}


def _utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat()


def _fallback_month(period: str) -> str:
    """The absolute month ``current``/``last`` means today, when the manifest does not say."""
    today = datetime.now(timezone.utc)
    year, month = today.year, today.month
    if period == "last":
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return f"{year:04d}{month:02d}"


def restore_decimal_details(schema: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """Copy ``precision``/``scale`` of ``x-singer.decimal`` columns from ``declared``.

    The SDK's catalog model (``singer.Schema``) keeps only standard JSON Schema keys, so every
    schema that passes through a catalog, including the one SCHEMA messages are built from,
    loses them, and SQL targets then create unbounded or scale-0 DECIMAL columns.
    """
    declared_properties = declared.get("properties", {})
    for name, column in schema.get("properties", {}).items():
        original = declared_properties.get(name, {})
        if (
            original.get("format") == "x-singer.decimal"
            and column.get("format") == "x-singer.decimal"
        ):
            column.update(precision=original["precision"], scale=original["scale"])
    return schema


class ExportStream(Stream):
    """A stream whose partitions are each one Graph export (see the README's state section)."""

    action: ClassVar[str]
    field_set: ClassVar[FieldSet] = USAGE
    identity_properties: ClassVar[tuple[str, ...]]
    allow_direct_output: ClassVar[bool] = True  # tests turn it off to compare both paths

    def __init__(self, tap: Any) -> None:  # noqa: ANN401 - the SDK types this loosely
        super().__init__(tap=tap, schema=self.declared_schema())
        self.codec = LineCodec(self.field_set)
        self._direct: DirectRecordWriter | None = None

    def direct_output_possible(self) -> bool:
        """True when the SDK's per-record path would pass our records through unchanged."""
        return (
            self.allow_direct_output
            and self.ABORT_AT_RECORD_COUNT is None
            and self.get_batch_config(self.config) is None
            and not self.config.get("flattening_enabled")
            and len(self.stream_maps) == 1
            and type(self.stream_maps[0]) is SameRecordTransform
            and all(self.mask.values())
        )

    def deliver(self, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Hand records to the SDK, or write them directly (see ``output.py``)."""
        if self._direct is None:
            yield from records
            return
        write = self._direct.write
        for record in records:
            write(record)

    @classmethod
    def declared_schema(cls) -> dict[str, Any]:
        """The stream's JSON schema: identity, provenance, then the data columns."""
        properties = {name: dict(_KEY_STRING) for name in cls.identity_properties}
        properties.update(PROVENANCE_PROPERTIES)
        properties.update(cls.field_set.schema_properties())
        return {"type": "object", "properties": properties}

    def apply_catalog(self, catalog: Any) -> None:  # noqa: ANN401 - singer_sdk's Catalog
        """Apply the catalog, then put back the decimal details its model drops."""
        super().apply_catalog(catalog)
        if self._input_schema is not None:
            restore_decimal_details(self._input_schema, self.schema)

    @property
    def services(self) -> Services:
        """The tap's shared clients."""
        return cast("TapPartnerBilling", self._tap).services

    def checkpoint(self) -> None:
        """Write a STATE message now.

        The SDK writes STATE only every 10,000 records and at the end of a stream, and keeps
        the writer private; this is the one place that reaches for it, so that operation URLs,
        high-water marks and blob progress are saved the moment they matter.
        """
        if self._direct is not None:
            self._direct.flush()  # records before the STATE that covers them
        self.state_manager.is_flushed = False
        self._write_state_message()

    def run_export(self, request: ExportRequest, pending: dict[str, Any], key: str) -> ExportResult:
        """Resume the saved operation for ``key``, or start an export and save its URL first."""
        exports = self.services.exports
        saved = pending.get(key)
        if isinstance(saved, dict) and saved.get("operation_url"):
            self.logger.info("%s: resuming the saved export operation", request.label)
            try:
                return exports.poll(saved["operation_url"], request)
            except OperationGoneError as err:
                self.logger.warning("%s; starting a new export", err)
        url = exports.start(request)
        pending[key] = {"operation_url": url, "started_at": _utc_now_text()}
        self.checkpoint()
        self.logger.info(
            "%s: export started, operation %s", request.label, url.rstrip("/").rsplit("/", 1)[-1]
        )
        return exports.poll(url, request)

    def emit_manifest(
        self,
        result: ExportResult,
        manifest: Manifest,
        ledger: Ledger,
        identity: dict[str, Any],
        **bookmark: Any,  # noqa: ANN401
    ) -> Iterator[dict[str, Any]]:
        """Yield every line of ``manifest`` as a record, then tombstones for surplus keys."""
        label = ledger.label
        provenance = {
            **identity,
            "_operation_id": result.operation_id,
            "_manifest_id": manifest.id,
            "_manifest_etag": manifest.etag,
            "_manifest_created_at": to_datetime_text(manifest.created)
            if manifest.created
            else None,
            "_invoice_version": manifest.invoice_version,
            "_sdc_deleted_at": None,
        }
        self.logger.info(
            "%s: manifest %s (eTag %s) lists %d blob(s)",
            label,
            manifest.id,
            manifest.etag,
            len(manifest.blobs),
        )
        start = ledger.begin(manifest)
        self.checkpoint()
        ordinal = start.next_ordinal
        remaining = manifest.blobs[start.blobs_done :]
        jobs = [
            (f"{label}, blob {blob.name}", functools.partial(manifest.blob_url, blob))
            for blob in remaining
        ]
        columns, decode = self.codec.columns, self.codec.values
        downloads = download_in_order(
            self.services.blobs, jobs, max_parallel=self.services.max_parallel_downloads
        )
        for index, spool in downloads:
            blob = remaining[index]
            where, started, first = jobs[index][0], time.monotonic(), ordinal
            if self._direct is not None:
                self._direct.stamp()
            for line_number, line in iter_lines(spool, where):
                if ledger.needs_high_water(ordinal):
                    ledger.raise_high_water(ordinal)
                    self.checkpoint()
                try:
                    values, extra = decode(line)
                except (RecordValueError, BlobDataError) as err:
                    raise type(err)(f"{where}, line {line_number}: {err}") from None
                record = dict(zip(columns, values, strict=True))
                record[EXTRA_FIELDS_COLUMN] = extra
                record.update(provenance)
                record["_blob_name"] = blob.name
                record["_blob_line"] = line_number
                record["line_ordinal"] = ordinal
                yield record
                ordinal += 1
            ledger.blob_done(start.blobs_done + index + 1, ordinal)
            self.checkpoint()
            elapsed = max(time.monotonic() - started, 1e-9)
            self.logger.info(
                "%s: %d lines in %.1f s (%.0f lines/s)",
                where,
                ordinal - first,
                elapsed,
                (ordinal - first) / elapsed,
            )
        surplus = ledger.surplus(ordinal)
        if surplus:
            self.logger.info(
                "%s: retiring %d key(s) beyond the new %d lines (ordinals %d-%d)",
                label,
                len(surplus),
                ordinal,
                surplus.start,
                surplus.stop - 1,
            )
        deleted_at = _utc_now_text()
        for stale in surplus:
            yield {
                **provenance,
                "line_ordinal": stale,
                "_blob_name": None,
                "_blob_line": None,
                "_sdc_deleted_at": deleted_at,
            }
        ledger.complete(manifest, ordinal, **bookmark)
        self.checkpoint()
        self.logger.info("%s: complete, %d lines", label, ordinal)


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
        self._direct = DirectRecordWriter(self.name) if self.direct_output_possible() else None
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
        self._direct = DirectRecordWriter(self.name) if self.direct_output_possible() else None
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
