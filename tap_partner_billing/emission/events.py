"""One partition's emission as ordered events: rows, flushes and checkpoints. No Singer here.

The events say *when* the ledger changes and *when* a STATE must be written; their consumer
(``ExportStream.deliver``, the only adapter) hands each to the record sink or the SDK and
must finish an event before it pulls the next one. The ordering rules, which
``tests/test_events.py`` checks for every event sequence in its table:

1. **The mark before the rows.** Before a block holding an ordinal at or beyond the saved
   high-water mark, the mark is raised and a ``Checkpoint`` yielded (no batch file closed:
   only a bound moves). So any STATE, even one written on SIGTERM mid-block, bounds every
   key a target may hold.
2. **The records before the claim.** Progress (a blob done, the export complete) is recorded
   in the ledger only after a ``Flush``: every record of the blob, or every tombstone, is
   out (and its batch file closed) before any STATE can say so.
3. **A new data version is saved before its first row**: ``ledger.begin`` is followed by a
   ``Checkpoint``, so the keys of the older version that must be retired are never lost.

The blocks a ``Rows`` event carries are lines still to type (one block of a blob, as its
reader handed it over), tombstones, or records a decode worker already encoded; they become
rows in one place, ``records/rows.py``'s ``rows_of``, reached through the record sink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_partner_billing.blobs.content import BlobJob
from tap_partner_billing.dates import utc_now_text
from tap_partner_billing.records.rows import (
    Block,
    EncodedRows,
    LineBlock,
    RowLayout,
    TombstoneBlock,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator, Mapping

    from tap_partner_billing.blobs.content import BlobReader
    from tap_partner_billing.emission.ledger import Ledger
    from tap_partner_billing.emission.summary import StreamSummary
    from tap_partner_billing.service.manifest import Manifest

TOMBSTONE_BLOCK = 1000


@dataclass(frozen=True)
class BlobStarted:
    """The rows that follow come from blob ``name`` (a new ``time_extracted``)."""

    name: str


@dataclass(frozen=True)
class Rows:
    """Rows to put out: lines of a blob to type, tombstones, or records already encoded."""

    block: Block


@dataclass(frozen=True)
class Flush:
    """Every row handed over so far must be out now; a batch file is closed and announced."""


@dataclass(frozen=True)
class Checkpoint:
    """Write a STATE message now, after flushing (closing a batch file if asked)."""

    close_batch_file: bool = True


Event = BlobStarted | Rows | Flush | Checkpoint


@dataclass(frozen=True)
class Export:
    """A finished export of one partition: what its events put out."""

    where: str  # dataset and partition, for logs and errors
    operation_id: str
    manifest: Manifest
    identity: Mapping[str, Any]  # the partition's key columns
    bookmark: Mapping[str, Any]  # saved with the ledger once the export is complete


class PartitionEvents:
    """The events of one stream's partitions (see the module's rules)."""

    def __init__(
        self,
        layout: RowLayout,
        summary: StreamSummary,
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        now_text: Callable[[], str] = utc_now_text,
    ) -> None:
        self.layout = layout
        self._summary = summary
        self._logger = logger
        self._clock = clock
        self._now_text = now_text

    def export_events(
        self,
        export: Export,
        ledger: Ledger,
        read_blobs: BlobReader,
    ) -> Iterator[Event]:
        """The lines of ``export``'s manifest in blocks, then tombstones for surplus keys."""
        manifest = export.manifest
        self._logger.info(
            "%s: manifest %s (eTag %s) lists %d blob(s)",
            export.where,
            manifest.id,
            manifest.etag,
            len(manifest.blobs),
        )
        provenance = {
            **export.identity,
            "_operation_id": export.operation_id,
            "_manifest_id": manifest.id,
            "_manifest_etag": manifest.etag,
            "_manifest_created_at": manifest.created,  # UTC text, checked when parsed
            "_invoice_version": manifest.invoice_version,
        }
        start = ledger.begin(manifest)
        yield Checkpoint()  # rule 3
        ordinal = start.next_ordinal
        remaining = manifest.blobs[start.blobs_done :]
        jobs = [
            BlobJob(
                f"{export.where}, blob {blob.name}",
                blob,
                self.layout.template({**provenance, "_blob_name": blob.name}),
            )
            for blob in remaining
        ]
        phase_started = self._clock()
        for content in read_blobs(jobs, ordinal):
            where, blob, template = jobs[content.index]
            started, first = self._clock(), ordinal
            yield BlobStarted(blob.name)
            line_number = 1
            for lines in content.blocks:
                last = ordinal + len(lines) - 1
                if ledger.needs_high_water(last):  # rule 1
                    ledger.raise_high_water(last)
                    yield Checkpoint(close_batch_file=False)
                block: Block
                if isinstance(lines, EncodedRows):
                    if lines.first_ordinal != ordinal:
                        at = lines.first_ordinal
                        msg = f"{where}: records encoded from ordinal {at}, not {ordinal}"
                        raise ValueError(msg)
                    block = lines
                else:
                    block = LineBlock(where, self.layout, template, lines, line_number, ordinal)
                yield Rows(block)
                self._summary.records += len(lines)  # out: the event is finished
                line_number += len(lines)
                ordinal += len(lines)
            yield Flush()  # rule 2, also for a STATE written on SIGTERM
            self._summary.bytes_downloaded += content.size()
            ledger.blob_done(start.blobs_done + content.index + 1, ordinal)
            yield Checkpoint()
            self._log_rate(where, ordinal - first, self._clock() - started)
        self._summary.downloading_seconds += self._clock() - phase_started
        surplus = ledger.surplus(ordinal)
        if surplus:
            self._logger.info(
                "%s: retiring %d key(s) beyond the new %d lines (ordinals %d-%d)",
                export.where,
                len(surplus),
                ordinal,
                surplus.start,
                surplus.stop - 1,
            )
        yield from self._tombstones(surplus, provenance)
        yield Flush()  # rule 2
        ledger.complete(manifest, ordinal, **export.bookmark)
        self._summary.exported += 1
        yield Checkpoint()
        self._logger.info("%s: complete, %d lines", export.where, ordinal)

    def retire_all(self, ledger: Ledger, identity: Mapping[str, Any]) -> Iterator[Event]:
        """Tombstones for every key of a partition (an unbilled month that was invoiced).

        The caller drops the partition's ledger and writes STATE after the ``Flush``.
        """
        yield from self._tombstones(ledger.retirement(), identity)
        yield Flush()

    def _tombstones(self, ordinals: range, values: Mapping[str, Any]) -> Iterator[Rows]:
        """Rows retiring the keys ``ordinals``, in blocks of ``TOMBSTONE_BLOCK``."""
        if not ordinals:
            return
        template = self.layout.template({**values, "_sdc_deleted_at": self._now_text()})
        for start in range(ordinals.start, ordinals.stop, TOMBSTONE_BLOCK):
            stop = min(start + TOMBSTONE_BLOCK, ordinals.stop)
            yield Rows(TombstoneBlock(self.layout, template, range(start, stop)))
            self._summary.tombstones += stop - start

    def _log_rate(self, where: str, lines: int, elapsed: float) -> None:
        elapsed = max(elapsed, 1e-9)
        self._logger.info(
            "%s: %d lines in %.1f s (%.0f lines/s)", where, lines, elapsed, lines / elapsed
        )
