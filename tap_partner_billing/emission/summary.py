"""What a run did, per stream, for the summary line at its end. No Singer in here."""

from __future__ import annotations

from dataclasses import dataclass

_KIB = 1024


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < _KIB or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= _KIB
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class StreamSummary:
    """Counters of one stream in one run.

    A partition is one invoice (billed) or one absolute billing month of a currency
    (unbilled). *Exported*: its lines were emitted; *unchanged*: the export matched the
    bookmark, nothing downloaded; *not re-checked*: bookmarked and older than
    ``recheck_months``, or remembered as having no data, no request; *no data*: the operation
    answered 5000; *retired*: an invoiced month whose keys were all tombstoned.

    *Records* and *tombstones* count the lines and retired keys the tap handed to its output;
    on the SDK's route a stream map's ``__filter__`` may still drop some of them (the SDK's
    ``record_count`` METRIC counts what it wrote).
    """

    exported: int = 0
    unchanged: int = 0
    not_rechecked: int = 0
    no_data: int = 0
    retired: int = 0
    records: int = 0  # data lines handed to the output
    tombstones: int = 0  # retired keys handed to the output (_sdc_deleted_at set)
    bytes_downloaded: int = 0  # gzip bytes of the blobs
    polling_seconds: float = 0.0  # export request and operation polls
    downloading_seconds: float = 0.0  # first blob request to last line emitted

    def line(self, stream: str) -> str:
        """The summary line of ``stream``."""
        return (
            f"Run summary {stream}: partitions {self.exported} exported, {self.unchanged} "
            f"unchanged, {self.not_rechecked} not re-checked, {self.no_data} no data, "
            f"{self.retired} retired; {self.records} records, {self.tombstones} tombstones; "
            f"{_size(self.bytes_downloaded)} downloaded; {self.polling_seconds:.1f} s polling, "
            f"{self.downloading_seconds:.1f} s downloading"
        )
