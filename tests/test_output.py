"""The record sink (``emission/output.py``): one way a block becomes records, whatever the route."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tap_partner_billing.emission.output import RecordSink
from tap_partner_billing.emission.worker_process import Task, run_task
from tap_partner_billing.records.rows import EncodedRows, LineBlock, RowLayout, TombstoneBlock
from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines
from tap_partner_billing.streams.usage import BilledUsageStream

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.records.rows import Block

LAYOUT = RowLayout.build("usage", tuple(BilledUsageStream.declared_schema()["properties"]))
TEMPLATE = LAYOUT.template({"_blob_name": "b", "billing_month": "202609", "invoice_id": "G1"})
LINES = [
    *iter_usage_lines(LineSpec(3, "202609", "G000000001", "USD", "full"), 5),
    b'{"CustomerId":"c","UnitPrice":"0.10","NewColumn":[1,{"a":null}]}',  # an extra field
]
BLOCK = LineBlock("usage G1, blob b", LAYOUT, TEMPLATE, LINES, 41, 1000)
TOMBSTONES = TombstoneBlock(LAYOUT, LAYOUT.template({"_sdc_deleted_at": "now"}), range(7, 10))


def _written(sink: RecordSink, blocks: list[Block], monkeypatch: pytest.MonkeyPatch) -> bytes:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
    for block in blocks:
        assert list(sink.put(block)) == []  # nothing for the SDK on this route
    sink.flush()
    return raw.getvalue()


def test_every_route_makes_the_same_records_of_a_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = RecordSink("billed_usage", mode="sdk")
    expected = [*sdk.put(BLOCK), *sdk.put(TOMBSTONES)]
    assert [r["line_ordinal"] for r in expected] == [1000, 1001, 1002, 1003, 1004, 1005, 7, 8, 9]
    assert [r["_blob_line"] for r in expected[:6]] == [41, 42, 43, 44, 45, 46]
    assert expected[5]["_extra_fields"] == {"NewColumn": [1, {"a": None}]}
    assert expected[6]["_sdc_deleted_at"] == "now"

    direct = RecordSink("billed_usage", mode="direct")
    messages = _written(direct, [BLOCK, TOMBSTONES], monkeypatch).splitlines()
    assert [json.loads(m)["record"] for m in messages] == expected
    assert {json.loads(m)["type"] for m in messages} == {"RECORD"}

    # A decode worker encodes with the function the sink uses, between the sink's ends.
    head, tail = direct.encoding()
    (tmp_path / "t.lines").write_bytes(b"\n".join(LINES))
    task = Task(
        1, str(tmp_path / "t.lines"), str(tmp_path / "t.records"), BLOCK.where, LAYOUT,
        TEMPLATE, 41, 1000, len(LINES), head, tail,
    )  # fmt: skip
    assert run_task(task) == len(LINES)
    encoded = EncodedRows((tmp_path / "t.records").read_bytes(), len(LINES), 1000)
    from_worker = _written(direct, [encoded], monkeypatch).splitlines()
    assert [json.loads(m)["record"] for m in from_worker] == expected[:6]

    announced: list[tuple[str, str]] = []
    batch_config = {"storage": {"root": (tmp_path / "batches").as_uri()}}
    batch = RecordSink(
        "billed_usage",
        mode="batch",
        batch_config=batch_config,
        on_batch_file=lambda *file: announced.append(file),
    )
    assert _written(batch, [BLOCK, TOMBSTONES], monkeypatch) == b""
    [(compression, uri)] = announced
    assert compression == "none"
    text = (tmp_path / "batches" / uri.rsplit("/", 1)[1]).read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == expected


def test_the_sdk_route_refuses_records_a_worker_encoded() -> None:
    sink = RecordSink("billed_usage", mode="sdk")
    with pytest.raises(TypeError, match="encoded records have no rows"):
        sink.put(EncodedRows(b"{}\n", 1, 0))


def test_emission_and_the_blob_types_load_no_http_client_and_no_singer() -> None:
    """What a decode worker and the partition events load: no requests, msal or SDK."""
    modules = ("blobs.content", "emission.events", "emission.output", "emission.worker_process")
    code = (
        "import json, sys\n"
        + "".join(f"import tap_partner_billing.{m}\n" for m in modules)
        + "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded: list[str] = json.loads(shown)
    assert "tap_partner_billing" in loaded  # the check sees the package's imports
    assert {"requests", "urllib3", "msal", "singer_sdk"} & set(loaded) == set()
