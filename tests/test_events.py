"""The partition events' ordering rules, as a table: for each case, the events and the STATE.

Notation of a trace: ``C`` a checkpoint that closes the batch file, ``c`` one that does not
(only the high-water mark moved), ``B`` a blob starts, ``R<n>`` n lines of a blob, ``T<n>``
n tombstones, ``F`` a flush. A consumer models the strictest route (BATCH files: a record is
out only at ``F`` or ``C``) and checks, after every event, what a STATE written *then* (at
a checkpoint, or on SIGTERM at any moment) would claim.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.blobs.content import BlobContent, BlobJob
from tap_partner_billing.emission.events import (
    BlobStarted,
    Checkpoint,
    Event,
    Export,
    Flush,
    PartitionEvents,
    Rows,
)
from tap_partner_billing.emission.ledger import Ledger
from tap_partner_billing.emission.summary import StreamSummary
from tap_partner_billing.records.rows import LineBlock, RowLayout, TombstoneBlock
from tap_partner_billing.service.manifest import BlobRef, Manifest
from tap_partner_billing.streams.usage import BilledUsageStream, UnbilledUsageStream

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

LAYOUT = RowLayout.build("usage", tuple(BilledUsageStream.declared_schema()["properties"]))
IDENTITY = {"invoice_id": "G1", "attribute_set": "full", "billing_month": "202609"}


def _manifest(etag: str, blobs: int) -> Manifest:
    return Manifest(
        id=f"m-{etag}",
        etag=etag,
        created="2026-10-01T00:00:00+00:00",
        root_directory="https://acct.example/c/dir/",
        sas_token="sv=1&sig=x",
        blobs=tuple(BlobRef(f"part-{i}.json.gz") for i in range(blobs)),
    )


def _reader(blob_blocks: Sequence[Sequence[int]]) -> Any:
    """Blobs made of blocks of ``n`` placeholder lines (the events never decodes a line)."""

    def read(jobs: Sequence[BlobJob], first_ordinal: int) -> Iterator[BlobContent]:
        todo = blob_blocks[len(blob_blocks) - len(jobs) :]  # the blobs not done yet
        for index, blocks in enumerate(todo):
            lines = iter([[b"{}"] * n for n in blocks])
            yield BlobContent(index, lines, lambda: 100)

    return read


@dataclass
class Consumer:
    """Carries out events like the BATCH route and checks every STATE it could write."""

    ledger: Ledger
    trace: list[str] = field(default_factory=list)
    handed: list[int] = field(default_factory=list)  # line ordinals handed over
    out: set[int] = field(default_factory=set)  # line ordinals written for good
    tombstones_handed: int = 0
    tombstones_out: int = 0
    states: list[dict[str, Any]] = field(default_factory=list)
    begun: bool = False

    def run(self, events: Iterable[Event]) -> None:
        for event in events:
            self.check_any_state(self.ledger.state)  # as the events left it to yield this
            self.take(event)
            self.check_any_state(self.ledger.state)

    def take(self, event: Event) -> None:
        if isinstance(event, Rows):
            block = event.block
            if isinstance(block, TombstoneBlock):
                self.trace.append(f"T{len(block)}")
                self.tombstones_handed += len(block)
            else:
                assert isinstance(block, LineBlock)
                assert self.begun, "rule 3: rows before the new data version was saved"
                self.trace.append(f"R{len(block.lines)}")
                self.handed += range(block.first_ordinal, block.first_ordinal + len(block.lines))
        elif isinstance(event, BlobStarted):
            self.trace.append("B")
        elif isinstance(event, Flush):
            self.trace.append("F")
            self.write_out()
        else:
            assert isinstance(event, Checkpoint)
            self.trace.append("C" if event.close_batch_file else "c")
            if event.close_batch_file:
                self.write_out()
            self.begun = self.begun or "progress" in self.ledger.state
            self.states.append(copy.deepcopy(self.ledger.state))

    def write_out(self) -> None:
        self.out.update(self.handed)
        self.tombstones_out = self.tombstones_handed

    def check_any_state(self, state: dict[str, Any]) -> None:
        """What a STATE written now would say must hold for what was handed over."""
        bound = max(int(state.get("high_water", 0)), int(state.get("line_count", 0)))
        assert all(o < bound for o in self.handed), "rule 1: a key beyond the saved mark"
        progress = state.get("progress")
        if progress is None and self.begun:  # complete: claims every row and tombstone
            claimed = set(self.handed)
            assert self.tombstones_out == self.tombstones_handed, "rule 2: tombstones not out"
        elif progress is None:  # a partition being retired: its old bookmark claims nothing new
            claimed = set()
        else:
            claimed = {o for o in self.handed if o < int(progress["next_ordinal"])}
        assert claimed <= self.out, "rule 2: STATE claims records that are not out"


@dataclass(frozen=True)
class Case:
    name: str
    prior: dict[str, Any]
    etag: str
    blobs: tuple[tuple[int, ...], ...]  # per blob, its blocks' line counts
    trace: str
    final: dict[str, Any]


OLD = {"etag": "old", "blob_list": "x", "line_count": 10, "high_water": 10}
CASES = [
    Case("first export", {}, "e1", ((3, 2),), "C B c R3 R2 F C F C", {"line_count": 5}),
    Case(
        "the mark moves once per step of 1000",
        {},
        "e1",
        ((600, 600), (600,)),
        "C B c R600 c R600 F C B R600 F C F C",
        {"line_count": 1800, "high_water": 1800},
    ),
    Case(
        "a re-issue with fewer lines retires the rest",
        OLD,
        "e2",
        ((3, 1),),
        "C B R3 R1 F C T6 F C",
        {"line_count": 4, "high_water": 4},
    ),
    Case(
        "more tombstones than a block",
        {**OLD, "line_count": 2500, "high_water": 2500},
        "e2",
        ((2,),),
        "C B R2 F C T1000 T1000 T498 F C",
        {"line_count": 2},
    ),
    Case("an empty export retires everything", OLD, "e2", (), "C T10 F C", {"line_count": 0}),
    Case(
        "data changed since an interrupted run",
        {
            **OLD,
            "high_water": 3000,
            "progress": {"etag": "e1", "blob_list": "?", "blobs_done": 1, "next_ordinal": 900},
        },
        "e2",
        ((2,),),
        "C B R2 F C T1000 T1000 T998 F C",
        {"line_count": 2, "high_water": 2},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_events_and_states(case: Case) -> None:
    manifest = _manifest(case.etag, len(case.blobs))
    ledger = Ledger(copy.deepcopy(case.prior), "billed_usage invoice G1")
    summary = StreamSummary()
    events = PartitionEvents(LAYOUT, summary, logging.getLogger("test"), now_text=lambda: "now")
    export = Export(ledger.where, "op-1", manifest, IDENTITY, {"billing_month": "202609"})
    consumer = Consumer(ledger)
    consumer.run(events.export_events(export, ledger, _reader(case.blobs)))
    assert " ".join(consumer.trace) == case.trace
    assert consumer.states[-1] == ledger.state
    for key, value in case.final.items():
        assert ledger.state[key] == value, key
    assert "progress" not in ledger.state
    assert ledger.state["etag"] == case.etag
    assert ledger.state["billing_month"] == "202609"
    assert summary.exported == 1
    assert sorted(consumer.handed) == list(range(sum(map(sum, case.blobs))))
    assert (summary.records, summary.tombstones) == (
        len(consumer.handed),
        consumer.tombstones_handed,
    )


def test_resuming_the_same_manifest_starts_at_the_saved_blob_and_ordinal() -> None:
    manifest = _manifest("e1", 3)
    progress = {
        "etag": "e1",
        "blob_list": manifest.blob_list_digest,
        "blobs_done": 2,
        "next_ordinal": 7,
        "retire_to": 0,
    }
    ledger = Ledger({"high_water": 1000, "progress": progress}, "billed_usage invoice G1")
    events = PartitionEvents(LAYOUT, StreamSummary(), logging.getLogger("test"))
    consumer = Consumer(ledger)
    export = Export("billed_usage invoice G1", "op-1", manifest, IDENTITY, {})
    consumer.run(events.export_events(export, ledger, _reader(((4, 3), (2,), (5,)))))
    assert " ".join(consumer.trace) == "C B R5 F C F C"
    assert consumer.handed == list(range(7, 12))
    assert ledger.state["line_count"] == 12


def test_retiring_a_partition_flushes_its_tombstones() -> None:
    ledger = Ledger({"line_count": 5, "high_water": 1000}, "billed_usage invoice G1")
    keys = tuple(UnbilledUsageStream.declared_schema()["properties"])
    events = PartitionEvents(
        RowLayout.build("usage", keys), StreamSummary(), logging.getLogger("t")
    )
    consumer = Consumer(ledger)
    consumer.run(events.retire_all(ledger, {"billing_month": "202609", "currency": "USD"}))
    assert " ".join(consumer.trace) == "T1000 F"
    assert consumer.tombstones_out == 1000


def test_rows_carry_the_partition_and_blob_in_their_layout() -> None:
    manifest = _manifest("e1", 1)
    ledger = Ledger({}, "billed_usage invoice G1")
    events = PartitionEvents(LAYOUT, StreamSummary(), logging.getLogger("test"))
    export = Export("billed_usage invoice G1", "op-9", manifest, IDENTITY, {})
    blocks = [
        e.block
        for e in events.export_events(export, ledger, _reader(((1,),)))
        if isinstance(e, Rows)
    ]
    assert len(blocks) == 1
    block = blocks[0]
    assert isinstance(block, LineBlock)
    assert LAYOUT.value(block.template, "_blob_name") == "part-0.json.gz"
    assert LAYOUT.value(block.template, "_operation_id") == "op-9"
    assert LAYOUT.value(block.template, "invoice_id") == "G1"
    assert block.where == "billed_usage invoice G1, blob part-0.json.gz"


def _deferring(events: Iterable[Event]) -> Iterator[Event]:
    """A careless adapter: it keeps rows back until after the next checkpoint."""
    held: list[Event] = []
    for event in events:
        if isinstance(event, Rows):
            held.append(event)
            continue
        yield event
        if isinstance(event, Checkpoint):
            yield from held
            held.clear()
    yield from held


def test_the_consumer_catches_an_adapter_that_buffers_rows() -> None:
    """The table's checks can fail: rows held back past a checkpoint break rule 2."""
    manifest = _manifest("e1", 1)
    ledger = Ledger({}, "billed_usage invoice G1")
    events = PartitionEvents(LAYOUT, StreamSummary(), logging.getLogger("test"))
    export = Export("billed_usage invoice G1", "op-1", manifest, IDENTITY, {})
    consumer = Consumer(ledger)
    with pytest.raises(AssertionError, match="rule 2"):
        consumer.run(_deferring(events.export_events(export, ledger, _reader(((3,),)))))
