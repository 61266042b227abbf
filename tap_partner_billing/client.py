"""The base of the export streams: orchestration of export → manifest → blobs → records."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.blob_urls import BlobUrls
from tap_partner_billing.errors import (
    ExportFailedError,
    OperationGoneError,
    StateError,
    UrlPolicyError,
)
from tap_partner_billing.export import ExportRequest, ExportResult
from tap_partner_billing.lines import spooled_blobs
from tap_partner_billing.routing import RoutedStream
from tap_partner_billing.rows import (
    FIELD_SETS,
    RowLayout,
    TombstoneBlock,
    block_rows,
    block_size,
)
from tap_partner_billing.schemas import stream_schema
from tap_partner_billing.summary import StreamSummary
from tap_partner_billing.writer import (
    BlobStarted,
    Event,
    Export,
    Flush,
    PartitionWriter,
    Rows,
    utc_now_text,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from tap_partner_billing.ledger import Ledger
    from tap_partner_billing.manifest import Manifest
    from tap_partner_billing.output import RecordSink
    from tap_partner_billing.run import SyncRun
    from tap_partner_billing.services import Services
    from tap_partner_billing.workers import DecodeWorkers
    from tap_partner_billing.writer import BlobReader

REPLICATION_INCREMENTAL = "INCREMENTAL"


class ExportStream(RoutedStream):
    """A stream whose partitions are each one Graph export (see the README's state section).

    The only adapter between the partition writer (``writer.py``: which rows, and when STATE
    may be written) and the SDK: it turns each event into output and finishes it before it
    pulls the next one, which is what the writer's ordering rules rest on.
    """

    action: ClassVar[str]
    dataset: ClassVar[str] = "usage"  # the field table, see rows.FIELD_SETS
    identity_properties: ClassVar[tuple[str, ...]]

    def __init__(self, tap: Any, run: SyncRun) -> None:  # noqa: ANN401 - the SDK types it loosely
        super().__init__(tap, self.declared_schema())
        self.run = run  # clients, invoice catalogue and counters of this run
        self.layout = RowLayout.build(self.dataset, tuple(self.declared_schema()["properties"]))
        # Incremental by partition bookmarks (README, State), not by a replication key: the
        # SDK's catalog and its "Beginning … sync" line then say what the stream does.
        self.forced_replication_method = REPLICATION_INCREMENTAL

    @property
    def summary(self) -> StreamSummary:
        """This stream's counters for the end-of-run summary."""
        return self.run.summary_of(self.name)

    def deliver(self, events: Iterable[Event]) -> Iterator[dict[str, Any]]:
        """Carry out the writer's events in order (yielding records only on the SDK's route).

        Each event is finished before the next is pulled: a yielded record is written by
        the SDK before this generator resumes, a block is written before the next event.
        """
        sink = self.sink
        summary = self.summary
        for event in events:
            if isinstance(event, Rows):
                block, count = event.block, block_size(event.block)
                if sink.mode == "sdk":
                    yield from map(self.layout.as_record, block_rows(block))
                else:  # the SDK counts what it writes itself; the tap counts the rest
                    sink.put(block)
                    self.count_records(count)
                if isinstance(block, TombstoneBlock):
                    summary.tombstones += count
                else:
                    summary.records += count
            elif isinstance(event, BlobStarted):
                sink.stamp()
            elif isinstance(event, Flush):
                sink.flush()
            else:  # a Checkpoint: mypy knows the union is exhausted here
                self.checkpoint(close_batch_file=event.close_batch_file)

    @classmethod
    def declared_schema(cls) -> dict[str, Any]:
        """The stream's JSON schema: data columns, then identity and provenance."""
        return stream_schema(FIELD_SETS[cls.dataset], cls.identity_properties)

    @property
    def services(self) -> Services:
        """The clients this run's streams share."""
        return self.run.services

    def checkpoint(self, *, close_batch_file: bool = True) -> None:
        """Write a STATE message now, after every record handed over before it.

        The SDK writes STATE only every 10,000 records and at the end of a stream; operation
        URLs, high-water marks and blob progress are saved the moment they matter.
        """
        if self._sink is not None:
            self._sink.flush(rotate=close_batch_file)
        self.write_state_now()

    def run_export(self, request: ExportRequest, pending: dict[str, Any], key: str) -> ExportResult:
        """Resume the saved operation for ``key``, or start an export and save its URL first.

        A failed operation is terminal: it leaves state before the error goes up, so that the
        next run starts a new export instead of polling the failed one forever.
        """
        self._blob_reader_ready()  # decode workers start while the export runs
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
        pending[key] = {"operation_url": url, "started_at": utc_now_text()}
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

    @property
    def writer(self) -> PartitionWriter:
        """The partition writer of this stream (its rows' layout, its summary, its log)."""
        return PartitionWriter(self.layout, self.summary, self.logger)

    def emit_manifest(
        self,
        result: ExportResult,
        manifest: Manifest,
        ledger: Ledger,
        identity: dict[str, Any],
        **bookmark: Any,  # noqa: ANN401
    ) -> Iterator[Event]:
        """The events of one finished export (see ``writer.PartitionWriter.write_export``)."""
        export = Export(ledger.label, result.operation_id, manifest, identity, bookmark)
        urls = BlobUrls(manifest, self._sas_renewal(result, ledger.label), ledger.label)
        return self.writer.write_export(export, ledger, self._blob_reader(urls))

    def _blob_reader_ready(self) -> tuple[RecordSink, DecodeWorkers | None]:
        """The sink, and the run's decode workers (started) if this stream's route uses them.

        Decode workers serve the direct and BATCH routes; the SDK's route needs objects.
        """
        sink = self.sink
        workers = self.run.decode_workers if sink.mode != "sdk" else None
        if workers is not None:
            workers.start()
        return sink, workers

    def _blob_reader(self, urls: BlobUrls) -> BlobReader:
        """Blobs read in this process; their lines typed by decode workers if the run has them."""
        sink, workers = self._blob_reader_ready()
        services = self.services
        reader = spooled_blobs(
            services.blobs,
            urls,
            max_parallel=services.max_parallel_downloads,
            limits=services.limits,
        )
        if workers is None:
            return reader
        return workers.reader(reader, layout=self.layout, encoding=sink.encoding)

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

    def retire_all(self, ledger: Ledger, identity: dict[str, Any]) -> Iterator[Event]:
        """Tombstones for every key of a partition (an unbilled month that was invoiced)."""
        return self.writer.retire_all(ledger, identity)
