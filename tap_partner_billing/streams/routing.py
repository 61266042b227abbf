"""The streams' side of ``emission/output.py``: the route a stream's records take, their count.

Every stream of the tap (the export streams and ``invoices``) chooses its route here, the
same way: BATCH files when ``batch_config`` is set, the direct route when the SDK's record
path would pass the records through unchanged, the SDK's path otherwise. So a BATCH message
always announces a file the tap wrote itself, in the compression the message names (the SDK's
own batcher gzips whatever the config says).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from tap_partner_billing.emission.output import RecordSink
from tap_partner_billing.streams.sdk_seam import SeamStream

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Tap, metrics
    from singer_sdk.helpers.types import Context


class RoutedStream(SeamStream):
    """A stream whose records leave through a :class:`RecordSink` (or the SDK's path)."""

    allow_direct_output: ClassVar[bool] = True  # tests turn it off to compare both routes

    def __init__(self, tap: Tap, schema: dict[str, Any]) -> None:
        super().__init__(tap=tap, schema=schema)
        self._sink: RecordSink | None = None
        self._record_counter: metrics.Counter | None = None

    def get_record_counter(self, **kwargs: Any) -> metrics.Counter:
        """The SDK's ``record_count`` counter, kept so the direct and BATCH routes count too."""
        self._record_counter = super().get_record_counter(**kwargs)
        return self._record_counter

    def count_records(self, count: int) -> None:
        """Count ``count`` records written by the tap itself (the direct and BATCH routes)."""
        if self._record_counter is not None:
            self._record_counter.increment(count)

    def direct_output_possible(self) -> bool:
        """True when the SDK's per-record path would pass our records through unchanged."""
        return (
            self.allow_direct_output
            and self.ABORT_AT_RECORD_COUNT is None
            and not self.config.get("flattening_enabled")
            and self.records_pass_unchanged()
        )

    def open_sink(self) -> RecordSink:
        """Choose where the next records go (see ``emission/output.py``): a new sink."""
        batch_config = self.config.get("batch_config")
        mode = "batch" if batch_config else "direct" if self.direct_output_possible() else "sdk"
        self._sink = RecordSink(
            self.name,
            mode=mode,
            batch_config=batch_config,
            on_batch_file=self.write_batch_file_message,
        )
        return self._sink

    @property
    def sink(self) -> RecordSink:
        """The current sink, opened on first use."""
        return self._sink if self._sink is not None else self.open_sink()

    def get_batches(self, batch_config: object, context: Context | None = None) -> Iterable[Any]:
        """BATCH mode: run the partitions; the sink writes files and their BATCH messages.

        Replaces the SDK's batcher, which writes gzip whatever ``compression`` says.
        """
        del batch_config  # the sink reads it from the config
        partitions: list[Context | None] = [context] if context else [*(self.partitions or [])]
        with self.get_record_counter():  # the SDK counts no records on its BATCH route
            for partition in partitions or [None]:
                for _ in self.get_records(partition):
                    pass  # nothing is yielded in batch mode
        return ()
