"""Decode workers (``emission/workers.py``): the in-process route's bytes, and its errors."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from benchmarks.profiles import PROFILES
from tap_partner_billing.blobs.content import BlobContent, BlobJob
from tap_partner_billing.emission.worker_process import Task, run_task
from tap_partner_billing.emission.workers import DecodeWorkers, WorkerError
from tap_partner_billing.errors import BlobDataError, PartnerBillingError, RecordValueError
from tap_partner_billing.records.rows import EncodedRows, LineBlock, RowLayout, encode_block
from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines
from tap_partner_billing.service.manifest import BlobRef
from tap_partner_billing.streams.usage import BilledUsageStream
from tests.helpers import Export, base_config, gz_lines, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tests.helpers import FakeGraph

KEYS = tuple(BilledUsageStream.declared_schema()["properties"])
LAYOUT = RowLayout.build("usage", KEYS)
TEMPLATE = LAYOUT.template({"_blob_name": "b", "billing_month": "202609", "invoice_id": "G1"})
# An unknown key named like the ordinal, nested deeper, and a string that spells the key.
ODD = b'{"CustomerId":"\\"line_ordinal\\":7","line_ordinal":{"line_ordinal":9},"UnitPrice":1}'


def _lines(count: int, seed: int = 3) -> list[bytes]:
    return list(iter_usage_lines(LineSpec(seed, "202609", "G000000001", "USD", "full"), count))


def test_a_task_encodes_what_the_in_process_route_encodes(tmp_path: Path) -> None:
    lines = [*_lines(12), ODD, *_lines(3, seed=4)]
    (tmp_path / "t.lines").write_bytes(b"\n".join(lines))
    task = Task(
        1, str(tmp_path / "t.lines"), str(tmp_path / "t.records"), "usage G1, blob b",
        LAYOUT, TEMPLATE, 990, 10**12, len(lines), b"<", b">\n",
    )  # fmt: skip
    assert run_task(task) == len(lines)
    expected = encode_block(LineBlock("w", LAYOUT, TEMPLATE, lines, 990, 10**12), b"<", b">\n")
    assert (tmp_path / "t.records").read_bytes() == expected
    assert not (tmp_path / "t.lines").exists()


def _served(graph: FakeGraph, bad_line: bytes | None = None) -> None:
    lines = _lines(2600)  # more than two blocks of 1024 lines in a blob
    varied = [
        line
        for blob, profile in enumerate(("unknown20", "unknown100"))
        for line in PROFILES[profile].rewrite(iter(lines[:700]), blob, 5)
    ]
    tail = [*lines[2000:2100], *([bad_line] if bad_line else []), *lines[2100:]]
    blobs = {
        "a.json.gz": gz_lines(*(line.decode() for line in lines[:1500])),
        "b.json.gz": gz_lines(*(line.decode() for line in varied)),
        "c.json.gz": gz_lines(),
        "d.json.gz": gz_lines(*(line.decode() for line in lines[1500:2000])),
        "e.json.gz": gz_lines(*(line.decode() for line in tail)),
    }
    graph.add("G000000001", Export(blobs))


def _sync(workers: int) -> list[str]:
    raw: list[str] = []
    config = base_config(invoice_ids=["G000000001"], decode_workers=workers)
    run_tap(config, raw=raw, streams=("billed_usage",))
    return raw


def _comparable(raw: list[str]) -> list[Any]:
    """Messages with the clock readings and the fake service's per-export ids blanked."""
    volatile = re.compile(
        r'"(time_extracted|started_at|_operation_id|operation_url|_?manifest_id)":"[^"]*"'
    )
    return [json.loads(volatile.sub(r'"\1":"…"', line)) for line in raw]


def test_workers_write_the_messages_the_in_process_route_writes(graph: FakeGraph) -> None:
    _served(graph)
    in_process = _sync(workers=1)
    with_workers = _sync(workers=2)
    records = [m for m in _comparable(with_workers) if m["type"] == "RECORD"]
    assert len(records) == 1500 + 1400 + 500 + 2600 - 2000
    ordinals = [m["record"]["line_ordinal"] for m in records]
    assert ordinals == list(range(len(records)))  # numbered on across five blobs
    assert any(m["record"]["_extra_fields"] for m in records)
    assert _comparable(with_workers) == _comparable(in_process)


def test_a_bad_line_in_a_worker_is_the_error_the_in_process_route_raises(
    graph: FakeGraph,
) -> None:
    _served(graph, bad_line=b'{"CustomerId": "c", "UnitPrice": 0.1234567890123456789}')
    errors = []
    for workers in (1, 2):
        with pytest.raises(RecordValueError) as raised:
            _sync(workers)
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
    assert "blob e.json.gz, line 101" in errors[1]
    assert "field UnitPrice" in errors[1]


def _children() -> set[int]:
    """This process's child processes (Linux)."""
    pid = os.getpid()
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _environment_once_exec_finished(pid: int) -> bytes:
    """``/proc/<pid>/environ``, once exec has set it up.

    Popen returns when exec closes the child's close-on-exec pipe, which the kernel does
    before it places the new environment: for a moment (longer on a loaded machine) the
    file reads empty.
    """
    deadline = time.monotonic() + 10
    while not (environment := Path(f"/proc/{pid}/environ").read_bytes()):
        assert time.monotonic() < deadline, f"worker {pid} shows no environment after 10 s"
        time.sleep(0.01)
    return environment


def test_a_worker_gets_none_of_the_environment_and_a_dead_one_is_an_error_naming_the_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAP_PARTNER_BILLING_CLIENT_SECRET", "very-secret-value")
    before = _children()
    workers = DecodeWorkers(1, folder=str(tmp_path))
    workers.start()
    try:
        [pid] = _children() - before
        environment = _environment_once_exec_finished(pid)
        assert b"very-secret-value" not in environment
        assert b"PATH=" in environment
        os.kill(pid, 9)

        def inner(jobs: Sequence[BlobJob], first_ordinal: int) -> Iterator[BlobContent]:
            yield BlobContent(0, iter([_lines(3)]), lambda: 100)

        job = BlobJob("usage G1, blob x.json.gz", BlobRef("x.json.gz"), TEMPLATE)
        read = workers.reader(inner, layout=LAYOUT, encoding=lambda: (b"", b""))
        [content] = read([job], 0)
        with pytest.raises(WorkerError, match=r"^usage G1, blob x\.json\.gz: a decode worker"):
            list(content.blocks)
    finally:
        workers.close(at_once=True)
    assert _children() == before
    assert list(tmp_path.iterdir()) == []  # the tasks' folder is gone


def test_no_worker_outlives_a_run_that_failed(graph: FakeGraph) -> None:
    before = _children()
    _served(graph, bad_line=b'{"CustomerId": "c", "UnitPrice": 1e400000}')
    with pytest.raises(RecordValueError):
        _sync(workers=2)
    assert _children() == before


def test_workers_one_block_at_a_time_write_the_same_messages(
    graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[DecodeWorkers] = []

    def one_at_a_time(count: int, *, folder: str | None) -> DecodeWorkers:
        started.append(DecodeWorkers(count, folder=folder, window=1))  # one block at a time
        return started[-1]

    _served(graph)
    in_process = _sync(workers=1)
    monkeypatch.setattr("tap_partner_billing.sync.shared.DecodeWorkers", one_at_a_time)
    assert _comparable(_sync(workers=3)) == _comparable(in_process)
    assert [workers.count for workers in started] == [3]


class _MissingBlob(dict[str, bytes]):
    """Blobs the manifest lists, one of which storage does not have (404)."""

    def __contains__(self, name: object) -> bool:
        return name != "d.json.gz" and super().__contains__(name)


def test_a_failed_download_is_the_error_the_in_process_route_raises(graph: FakeGraph) -> None:
    _served(graph)
    export = graph.exports["G000000001"]
    export.blobs = _MissingBlob(export.blobs)
    errors = []
    for workers in (1, 2):
        with pytest.raises(PartnerBillingError) as raised:
            _sync(workers)
        errors.append((type(raised.value), str(raised.value)))
    assert errors[0] == errors[1]
    assert "d.json.gz" in errors[1][1]


def test_a_blob_cut_short_writes_what_the_in_process_route_writes_before_the_error(
    graph: FakeGraph,
) -> None:
    whole = gz_lines(*(line.decode() for line in _lines(3000)))
    graph.add("G000000001", Export({"a.json.gz": whole[: len(whole) * 2 // 3]}))
    outcomes = []
    for workers in (1, 2):
        raw: list[str] = []
        config = base_config(invoice_ids=["G000000001"], decode_workers=workers)
        with pytest.raises(BlobDataError) as raised:
            run_tap(config, raw=raw, streams=("billed_usage",))
        outcomes.append((str(raised.value), _comparable(raw)))
    assert "blob a.json.gz: gzip data is corrupt or truncated after line" in outcomes[1][0]
    assert sum(m["type"] == "RECORD" for m in outcomes[1][1]) >= 1024  # blocks before it
    assert outcomes[0] == outcomes[1]


def test_a_reader_stopped_part_way_kills_its_workers_and_removes_their_files(
    tmp_path: Path,
) -> None:
    before = _children()
    workers = DecodeWorkers(2, folder=str(tmp_path))

    def inner(jobs: Sequence[BlobJob], first_ordinal: int) -> Iterator[BlobContent]:
        yield BlobContent(0, iter([_lines(50)] * 6), lambda: 100)

    ends = (b"<", b">\n")
    read = workers.reader(inner, layout=LAYOUT, encoding=lambda: ends)
    job = BlobJob("usage G1, blob x.json.gz", BlobRef("x.json.gz"), TEMPLATE)
    content = next(read([job], 7))
    first = next(content.blocks)
    assert isinstance(first, EncodedRows)
    assert (len(first), first.first_ordinal) == (50, 7)
    assert len(_children() - before) == 2
    blocks = content.blocks
    assert isinstance(blocks, Generator)
    blocks.close()
    assert _children() == before  # killed at once, not left for the run's end
    assert list(tmp_path.iterdir()) == []
