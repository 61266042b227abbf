"""The base of the export streams: orchestration of export → manifest → blobs → records."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.blobs.lines import spooled_blobs
from tap_partner_billing.blobs.sas import BlobUrls
from tap_partner_billing.emission.events import (
    BlobStarted,
    Event,
    Export,
    Flush,
    PartitionEvents,
    Rows,
)
from tap_partner_billing.emission.summary import StreamSummary
from tap_partner_billing.errors import OperationGoneError
from tap_partner_billing.records.rows import FIELD_SETS, RowLayout
from tap_partner_billing.records.schemas import stream_schema
from tap_partner_billing.service.export import ExportRequest, ExportResult
from tap_partner_billing.streams.routing import RoutedStream

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Iterator

    from tap_partner_billing.blobs.content import BlobReader
    from tap_partner_billing.emission.ledger import Ledger
    from tap_partner_billing.emission.output import RecordSink
    from tap_partner_billing.emission.workers import DecodeWorkers
    from tap_partner_billing.service.manifest import Manifest
    from tap_partner_billing.sync.planner import PlannedExport
    from tap_partner_billing.sync.services import Services
    from tap_partner_billing.sync.shared import SyncRun

REPLICATION_INCREMENTAL = "INCREMENTAL"


class ExportStream(RoutedStream):
    """A stream whose partitions are each one Graph export (see docs/state.md).

    The only adapter between the partition events (``emission/events.py``: which rows, when STATE
    may be written) and the SDK: it hands each event to the record sink (or, a checkpoint,
    writes STATE) and finishes it before it pulls the next one, which is what the events'
    ordering rules rest on.
    """

    action: ClassVar[str]
    dataset: ClassVar[str] = "usage"  # the field table, see rows.FIELD_SETS
    identity_properties: ClassVar[tuple[str, ...]]

    def __init__(self, tap: Any, sync_run: SyncRun) -> None:  # noqa: ANN401 - the SDK types it loosely
        super().__init__(tap, self.declared_schema())
        self.sync_run = sync_run  # clients, invoice index and counters of this run
        self.layout = RowLayout.build(self.dataset, tuple(self.declared_schema()["properties"]))
        # Incremental by partition bookmarks (docs/state.md), not by a replication key: the
        # SDK's catalog and its "Beginning … sync" line then say what the stream does.
        self.forced_replication_method = REPLICATION_INCREMENTAL

    @property
    def summary(self) -> StreamSummary:
        """This stream's counters for the end-of-run summary."""
        return self.sync_run.summary_of(self.name)

    def deliver(self, events: Iterable[Event]) -> Iterator[dict[str, Any]]:
        """Carry out the partition's events in order (yielding records on the SDK's route).

        Each event is finished before the next is pulled: a yielded record is written by
        the SDK before this generator resumes, a block is written before the next event.
        """
        sink = self.sink
        scheduler = self.sync_run.scheduler
        for event in events:
            scheduler.tick(self.state_changed)  # other exports run while this one downloads
            if isinstance(event, Rows):
                yield from sink.put(event.block)  # records only on the SDK's route
                if sink.mode != "sdk":  # the SDK counts what it writes itself
                    self.count_records(len(event.block))
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
        return self.sync_run.services

    def checkpoint(self, *, close_batch_file: bool = True) -> None:
        """Write a STATE message now, after every record handed over before it.

        The SDK writes STATE only every 10,000 records and at the end of a stream; operation
        URLs, high-water marks and blob progress are saved the moment they matter.
        """
        if self._sink is not None:
            self._sink.flush(rotate=close_batch_file)
        self.write_state_now()

    def run_export(self, request: ExportRequest, pending: dict[str, Any], key: str) -> ExportResult:
        """The export's result when this partition's turn comes (see ``service/scheduler.py``).

        Registered ahead by :func:`start_exports_ahead` (else now): its operation URL is in
        ``pending[key]`` from its ``202`` on, and every STATE written while it runs holds it.
        A failed operation is terminal: it left ``pending`` before the error goes up, so that
        the next run starts a new export instead of polling the failed one forever.
        """
        self._blob_reader_ready()  # decode workers start while the export runs
        scheduler = self.sync_run.scheduler
        scheduler.add(request, pending, key)
        started = time.monotonic()
        try:
            return scheduler.result(request, self.state_changed)
        finally:
            self.summary.polling_seconds += time.monotonic() - started

    def state_changed(self) -> None:
        """An operation URL was recorded or dropped: STATE now (no batch file closed)."""
        self.checkpoint(close_batch_file=False)

    def planned_exports(self) -> Iterator[PlannedExport]:
        """The exports this stream's partitions will ask for (see ``sync/planner.py``)."""
        raise NotImplementedError

    @property
    def events(self) -> PartitionEvents:
        """The partition events of this stream (its rows' layout, its summary, its log)."""
        return PartitionEvents(self.layout, self.summary, self.logger)

    def emit_manifest(
        self,
        result: ExportResult,
        manifest: Manifest,
        ledger: Ledger,
        identity: dict[str, Any],
        **bookmark: Any,
    ) -> Iterator[Event]:
        """The events of one finished export (see ``PartitionEvents.export_events``)."""
        export = Export(ledger.where, result.operation_id, manifest, identity, bookmark)
        urls = BlobUrls(manifest, self._sas_renewal(result, ledger.where), ledger.where)
        return self.events.export_events(export, ledger, self._blob_reader(urls))

    def _blob_reader_ready(self) -> tuple[RecordSink, DecodeWorkers | None]:
        """The sink, and the run's decode workers (started) if this stream's route uses them.

        Decode workers serve the direct and BATCH routes; the SDK's route needs objects.
        """
        sink = self.sink
        workers = self.sync_run.decode_workers if sink.mode != "sdk" else None
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

    def _sas_renewal(self, result: ExportResult, where: str) -> Callable[[], Manifest] | None:
        """How to get a fresh SAS for ``result``'s manifest: read its operation again."""
        if not result.operation_url:
            return None

        def renew() -> Manifest:
            fresh = self.services.exports.reread(result.operation_url, where).manifest
            if fresh is None:
                msg = f"{where}: the operation no longer offers its manifest"
                raise OperationGoneError(msg)
            return fresh

        return renew

    def retire_all(self, ledger: Ledger, identity: dict[str, Any]) -> Iterator[Event]:
        """Tombstones for every key of a partition (an unbilled month that was invoiced)."""
        return self.events.retire_all(ledger, identity)


def start_exports_ahead(streams: Iterable[ExportStream], logger: logging.Logger) -> None:
    """Before the first stream syncs: register every export the selected streams will need.

    In the order the SDK syncs them, so the first needed is POSTed first. Saved operations
    of partitions this run does not export (a deselected stream, a period or invoice no
    longer chosen) are dropped. Then the first POSTs go out, each URL in a STATE at once.
    """
    streams = list(streams)
    chosen: set[tuple[int, str]] = set()
    scheduler = None
    for stream in streams:
        if not stream.selected:
            continue
        scheduler = stream.sync_run.scheduler
        for planned in stream.planned_exports():
            scheduler.add(planned.request, planned.pending, planned.slot)
            chosen.add((id(planned.pending), planned.slot))
    dropped = 0
    for stream in streams:
        saved = stream.tap_state.get("bookmarks", {}).get(stream.name, {})
        for partition in saved.get("partitions") or []:
            found = partition.get("pending_operations") if isinstance(partition, dict) else None
            pending = found if isinstance(found, dict) else {}
            for slot in list(pending):
                if (id(pending), slot) not in chosen:
                    del pending[slot]
                    dropped += 1
    if dropped:
        logger.info(
            "Dropped %d saved export operation(s) of partitions this run does not export",
            dropped,
        )
    state_writer = next((s for s in streams if s.selected), None)  # any stream writes STATE
    if state_writer is None or scheduler is None:
        return
    if dropped:
        state_writer.write_state_now()
    scheduler.tick(state_writer.write_state_now)
