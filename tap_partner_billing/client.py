"""The base of the export streams: orchestration of export → manifest → blobs → records."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream, metrics
from singer_sdk.helpers._batch import BaseBatchFileEncoding
from singer_sdk.mapper import SameRecordTransform

from tap_partner_billing.blobs import BlobUrls, download_in_order
from tap_partner_billing.errors import (
    ExportFailedError,
    OperationGoneError,
    StateError,
    UrlPolicyError,
)
from tap_partner_billing.export import ExportRequest, ExportResult
from tap_partner_billing.fields import EXTRA_FIELDS_COLUMN
from tap_partner_billing.ledger import Ledger
from tap_partner_billing.lines import iter_line_blocks
from tap_partner_billing.output import RecordSink
from tap_partner_billing.rows import FIELD_SETS, LineBlock, RowLayout
from tap_partner_billing.schemas import restore_decimal_details, stream_schema
from tap_partner_billing.summary import StreamSummary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_partner_billing.manifest import Manifest
    from tap_partner_billing.run import SyncRun
    from tap_partner_billing.services import Services

TOMBSTONE_BLOCK = 1000
REPLICATION_INCREMENTAL = "INCREMENTAL"


def _utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat()


class ExportStream(Stream):
    """A stream whose partitions are each one Graph export (see the README's state section)."""

    action: ClassVar[str]
    dataset: ClassVar[str] = "usage"  # the field table, see rows.FIELD_SETS
    identity_properties: ClassVar[tuple[str, ...]]
    allow_direct_output: ClassVar[bool] = True  # tests turn it off to compare both paths

    def __init__(self, tap: Any, run: SyncRun) -> None:  # noqa: ANN401 - the SDK types it loosely
        super().__init__(tap=tap, schema=self.declared_schema())
        self.run = run  # clients, invoice catalogue and counters of this run
        self.row_keys = tuple(self.declared_schema()["properties"])
        self._sink: RecordSink | None = None
        # Incremental by partition bookmarks (README, State), not by a replication key: the
        # SDK's catalog and its "Beginning … sync" line then say what the stream does.
        self.forced_replication_method = REPLICATION_INCREMENTAL
        self._record_counter: metrics.Counter | None = None

    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:  # noqa: ANN401
        """Nothing to do: the ledger keeps the bookmarks, there is no replication key."""

    def get_record_counter(self, **kwargs: Any) -> metrics.Counter:  # noqa: ANN401
        """The SDK's ``record_count`` counter, kept so the direct and BATCH routes count too."""
        self._record_counter = super().get_record_counter(**kwargs)
        return self._record_counter

    @property
    def summary(self) -> StreamSummary:
        """This stream's counters for the end-of-run summary."""
        return self.run.summary_of(self.name)

    def direct_output_possible(self) -> bool:
        """True when the SDK's per-record path would pass our records through unchanged."""
        return (
            self.allow_direct_output
            and self.ABORT_AT_RECORD_COUNT is None
            and not self.config.get("flattening_enabled")
            and len(self.stream_maps) == 1
            and type(self.stream_maps[0]) is SameRecordTransform
            and all(self.mask.values())
        )

    def open_sink(self) -> None:
        """Choose where this partition's rows go (see ``output.py``)."""
        batch_config = self.config.get("batch_config")
        mode = "batch" if batch_config else "direct" if self.direct_output_possible() else "sdk"
        self._sink = RecordSink(
            self.name,
            self.row_keys,
            mode=mode,
            batch_config=batch_config,
            on_batch_file=self._announce_batch_file,
        )

    def _announce_batch_file(self, compression: str, url: str) -> None:
        # The SDK keeps its BATCH message writer private; this is the one place that uses it.
        encoding = BaseBatchFileEncoding(format="jsonl", compression=compression)
        self._write_batch_message(encoding=encoding, manifest=[url])

    def get_batches(self, batch_config: Any, context: Context | None = None) -> Iterable[Any]:  # noqa: ANN401
        """BATCH mode: run the partitions; the sink writes files and their BATCH messages."""
        del batch_config  # read from the config by open_sink()
        partitions: list[Context | None] = [context] if context else [*(self.partitions or [])]
        with self.get_record_counter():  # the SDK counts no records on its BATCH route
            for partition in partitions or [None]:
                for _ in self.get_records(partition):
                    pass  # nothing is yielded in batch mode
        return ()

    def deliver(self, blocks: Iterator[LineBlock | list[list[Any]]]) -> Iterator[dict[str, Any]]:
        """Hand row blocks to the sink (which yields dicts only for the SDK's path)."""
        if self._sink is None:
            self.open_sink()
        assert self._sink is not None  # noqa: S101 - for mypy: open_sink() just set it
        # The SDK counts what it writes itself; the other routes are counted here.
        counter = None if self._sink.mode == "sdk" else self._record_counter
        yield from self._sink.deliver(self._counted(blocks, counter))

    def _counted(
        self, blocks: Iterator[LineBlock | list[list[Any]]], counter: metrics.Counter | None
    ) -> Iterator[LineBlock | list[list[Any]]]:
        summary = self.summary
        for block in blocks:
            if isinstance(block, list):
                count = len(block)
                summary.tombstones += count
            else:
                count = len(block.lines)
                summary.records += count
            yield block
            if counter is not None:
                counter.increment(count)

    def flush_records(self) -> None:
        """Put out every record handed over so far (closing a batch file)."""
        if self._sink is not None:
            self._sink.flush()

    @classmethod
    def declared_schema(cls) -> dict[str, Any]:
        """The stream's JSON schema: data columns, then identity and provenance."""
        return stream_schema(FIELD_SETS[cls.dataset], cls.identity_properties)

    def apply_catalog(self, catalog: Any) -> None:  # noqa: ANN401 - singer_sdk's Catalog
        """Apply the catalog, then put back the decimal details its model drops."""
        super().apply_catalog(catalog)
        if self._input_schema is not None:
            restore_decimal_details(self._input_schema, self.schema)

    @property
    def services(self) -> Services:
        """The clients this run's streams share."""
        return self.run.services

    def checkpoint(self, *, close_batch_file: bool = True) -> None:
        """Write a STATE message now, after every record handed over before it.

        The SDK writes STATE only every 10,000 records and at the end of a stream, and keeps
        the writer private; this is the one place that reaches for it, so that operation URLs,
        high-water marks and blob progress are saved the moment they matter.
        """
        if self._sink is not None:
            self._sink.flush(rotate=close_batch_file)
        self.state_manager.is_flushed = False
        self._write_state_message()

    def run_export(self, request: ExportRequest, pending: dict[str, Any], key: str) -> ExportResult:
        """Resume the saved operation for ``key``, or start an export and save its URL first.

        A failed operation is terminal: it leaves state before the error goes up, so that the
        next run starts a new export instead of polling the failed one forever.
        """
        try:
            return self._poll_or_start(request, pending, key)
        except ExportFailedError:
            pending.pop(key, None)
            self.checkpoint()
            raise

    def _poll_or_start(
        self, request: ExportRequest, pending: dict[str, Any], key: str
    ) -> ExportResult:
        started = time.monotonic()
        try:
            return self._export(request, pending, key)
        finally:
            self.summary.polling_seconds += time.monotonic() - started

    def _export(self, request: ExportRequest, pending: dict[str, Any], key: str) -> ExportResult:
        exports = self.services.exports
        saved = pending.get(key)
        if isinstance(saved, dict) and saved.get("operation_url"):
            self._check_saved_url(str(saved["operation_url"]), request.label, pending, key)
            self.logger.info("%s: resuming the saved export operation", request.label)
            try:
                return exports.poll(saved["operation_url"], request.label)
            except OperationGoneError as err:
                self.logger.warning("%s; starting a new export", err)
        url = exports.start(request)
        pending[key] = {"operation_url": url, "started_at": _utc_now_text()}
        self.checkpoint()
        self.logger.info(
            "%s: export started, operation %s", request.label, url.rstrip("/").rsplit("/", 1)[-1]
        )
        return exports.poll(url, request.label)

    def _check_saved_url(self, url: str, label: str, pending: dict[str, Any], key: str) -> None:
        """Refuse a saved operation URL off graph_url's origin, and drop it from state.

        Whoever can write the state backend could otherwise aim the Graph token anywhere.

        Raises:
            StateError: Naming the stream and partition, and how to go on.
        """
        try:
            self.services.exports.url_policy.check(url, f"{label}: saved operation URL")
        except UrlPolicyError as err:
            pending.pop(key, None)
            self.checkpoint()
            msg = (
                f"{err}. The state was edited, or graph_url changed since it was saved. The "
                "URL is removed from the state this run wrote, so the next run starts a new "
                "export; if you did not change graph_url, check who can write your state."
            )
            raise StateError(msg) from None

    def emit_manifest(
        self,
        result: ExportResult,
        manifest: Manifest,
        ledger: Ledger,
        identity: dict[str, Any],
        **bookmark: Any,  # noqa: ANN401
    ) -> Iterator[LineBlock | list[list[Any]]]:
        """Yield the lines of ``manifest`` in blocks, then tombstone rows for surplus keys.

        Rows hold the values of ``row_keys`` in order: data columns first, then the rest.
        The high-water mark is raised (and STATE written) before a block that goes beyond it
        is handed over, so that STATE always precedes the block's records.
        """
        label = ledger.label
        keys = self.row_keys
        template: list[Any] = [None] * len(keys)
        provenance = {
            **identity,
            "_operation_id": result.operation_id,
            "_manifest_id": manifest.id,
            "_manifest_etag": manifest.etag,
            "_manifest_created_at": manifest.created,  # UTC text, checked when parsed
            "_invoice_version": manifest.invoice_version,
        }
        for key, value in provenance.items():
            template[keys.index(key)] = value
        blob_at = keys.index("_blob_name")
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
        jobs = [(f"{label}, blob {blob.name}", blob) for blob in remaining]
        urls = BlobUrls(manifest, self._sas_renewal(result, label), label)
        downloads = download_in_order(
            self.services.blobs, jobs, urls, max_parallel=self.services.max_parallel_downloads
        )
        phase_started = time.monotonic()
        for index, spool in downloads:
            where, started, first = jobs[index][0], time.monotonic(), ordinal
            if self._sink is not None:
                self._sink.stamp()
            template[blob_at] = remaining[index].name
            layout = RowLayout(
                self.dataset,
                keys,
                tuple(template),
                keys.index(EXTRA_FIELDS_COLUMN),
                keys.index("_blob_line"),
                keys.index("line_ordinal"),
            )
            line_number = 1
            for lines in iter_line_blocks(spool, where, self.services.limits):
                last = ordinal + len(lines) - 1
                if ledger.needs_high_water(last):
                    ledger.raise_high_water(last)
                    # Only a bound moves here, no progress: no need to close a batch file.
                    self.checkpoint(close_batch_file=False)
                yield LineBlock(where, layout, lines, line_number, ordinal)
                line_number += len(lines)
                ordinal += len(lines)
            self.flush_records()  # before the state says so, also for a STATE on SIGTERM
            self.summary.bytes_downloaded += spool.size
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
        self.summary.downloading_seconds += time.monotonic() - phase_started
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
        yield from self._tombstones(surplus, template, blob_at)
        self.flush_records()
        ledger.complete(manifest, ordinal, **bookmark)
        self.summary.exported += 1
        self.checkpoint()
        self.logger.info("%s: complete, %d lines", label, ordinal)

    def _sas_renewal(self, result: ExportResult, label: str) -> Callable[[], Manifest] | None:
        """How to get a fresh SAS for ``result``'s manifest: read its operation again."""
        if not result.operation_url:
            return None

        def renew() -> Manifest:
            fresh = self.services.exports.poll(result.operation_url, label).manifest
            if fresh is None:
                msg = f"{label}: the operation no longer offers its manifest"
                raise OperationGoneError(msg)
            return fresh

        return renew

    def retire_all(
        self, ledger: Ledger, identity: dict[str, Any]
    ) -> Iterator[LineBlock | list[list[Any]]]:
        """Tombstone rows for every key of a partition (an unbilled month that was invoiced)."""
        keys = self.row_keys
        template: list[Any] = [None] * len(keys)
        for key, value in identity.items():
            template[keys.index(key)] = value
        yield from self._tombstones(ledger.retirement(), template, keys.index("_blob_name"))
        self.flush_records()

    def _tombstones(
        self, ordinals: range, template: list[Any], blob_at: int
    ) -> Iterator[list[list[Any]]]:
        """Rows retiring the keys ``ordinals`` (``_sdc_deleted_at`` set), in blocks."""
        if not ordinals:
            return
        keys = self.row_keys
        tombstone = template.copy()
        tombstone[blob_at] = None
        tombstone[keys.index("_sdc_deleted_at")] = _utc_now_text()
        ordinal_at = keys.index("line_ordinal")
        rows = []
        for stale in ordinals:
            row = tombstone.copy()
            row[ordinal_at] = stale
            rows.append(row)
            if len(rows) == TOMBSTONE_BLOCK:
                yield rows
                rows = []
        yield rows
