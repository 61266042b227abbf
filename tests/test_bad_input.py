"""Bad input from the service, in a whole tap run: a named error, and nothing marked done early."""

from __future__ import annotations

import gzip
import json
import random
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.errors import PartnerBillingError
from tests.helpers import Export, FakeGraph, base_config, gz_lines, run_tap
from tests.hostile import BLOB_ROOT, LINES, blob_bytes, run_cli, write_config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.hostile import HostileServer

GOOD = [f'{{"CustomerId": "c-{n}", "BillingPreTaxTotal": "{n}.5"}}' for n in range(3)]
CONFIG = base_config(invoice_ids=["G000000001"])
PARTITION = "billed_usage invoice G000000001 (full)"


def _corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def _with_crc_flipped(data: bytes) -> bytes:
    # The CRC-32 is the trailer's first 4 bytes: only the end of the member reveals it.
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


# name → (second blob's bytes, manifest changes, what the error must say)
BAD: dict[str, tuple[bytes, dict[str, Any], str]] = {
    "corrupt gzip": (_corrupt(gz_lines(*GOOD * 50)), {}, "b.json.gz: gzip data is corrupt"),
    "gzip CRC wrong": (_with_crc_flipped(gz_lines(*GOOD)), {}, "b.json.gz: gzip data is corrupt"),
    "truncated gzip": (gz_lines(*GOOD)[:-12], {}, "b.json.gz: gzip data is corrupt or truncated"),
    "malformed JSON line": (gz_lines(GOOD[0], '{"CustomerId": '), {}, "b.json.gz, line 2"),
    "line not an object": (gz_lines(GOOD[0], "[1, 2]"), {}, "line 2: a list, not a JSON object"),
    "blank line": (gz_lines(GOOD[0], "", GOOD[1]), {}, "b.json.gz, line 2: not valid JSON"),
    "text for a decimal": (
        gz_lines(GOOD[0], '{"BillingPreTaxTotal": "twelve"}'),
        {},
        "line 2: field BillingPreTaxTotal",
    ),
    "unparseable date": (
        gz_lines('{"UsageDate": "yesterday"}'),
        {},
        "b.json.gz, line 1: field UsageDate",
    ),
    "unknown dataFormat": (gz_lines(*GOOD), {"dataFormat": "parquet"}, "parquet"),
    "no rootDirectory": (gz_lines(*GOOD), {"rootDirectory": None}, "rootDirectory"),
    "no sasToken": (gz_lines(*GOOD), {"sasToken": None}, "sasToken"),
    "http rootDirectory": (
        gz_lines(*GOOD),
        {"rootDirectory": "http://blobs.test/c/v1"},
        "rootDirectory",
    ),
}


def _states(raw: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line)["value"] for line in raw if '"type":"STATE"' in line.replace(" ", "")]


def _partition(state: dict[str, Any]) -> dict[str, Any]:
    partitions = state.get("bookmarks", {}).get("billed_usage", {}).get("partitions", [])
    return dict(partitions[0]) if partitions else {}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_stops_with_a_named_error_and_the_partition_stays_open(
    case: str, graph: FakeGraph
) -> None:
    data, changes, message = BAD[case]
    good = gz_lines(*GOOD)
    graph.add(
        "G000000001", Export({"a.json.gz": good, "b.json.gz": data}, manifest_changes=changes)
    )
    raw: list[str] = []
    with pytest.raises(PartnerBillingError) as raised:
        run_tap(CONFIG, raw=raw, streams=("billed_usage",))
    text = str(raised.value)
    assert PARTITION in text
    assert message in text
    states = _states(raw)
    assert states, "state was written before the failure"
    assert "etag" not in _partition(states[-1]), "never marked complete"

    # Once the service serves good data, a run from that state delivers every line once more
    # under the same keys (lines of a blob that failed are emitted again, not skipped).
    done_before = _partition(states[-1]).get("progress", {}).get("next_ordinal", 0)
    graph.add("G000000001", Export({"a.json.gz": good, "b.json.gz": gz_lines(*GOOD)}))
    again = run_tap(CONFIG, state=states[-1], streams=("billed_usage",))
    assert _partition(again.state)["line_count"] == 6
    emitted = {r["line_ordinal"] for r in again.records()}
    assert emitted == set(range(done_before, 6))


def test_a_blob_count_unlike_the_list_is_a_warning_and_the_listed_blobs_are_read(
    graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    # The docs define blobCount as "the total file count for this partner tenant ID";
    # Microsoft's own sample ignores it: a service that counts otherwise must not stop runs.
    blobs = {"a.json.gz": gz_lines(*GOOD), "b.json.gz": gz_lines(*GOOD[:2])}
    graph.add("G000000001", Export(blobs, manifest_changes={"blobCount": 5}))
    with caplog.at_level("WARNING", logger="tap_partner_billing.service.manifest"):
        result = run_tap(CONFIG, streams=("billed_usage",))
    warnings = [r.getMessage() for r in caplog.records if "blobCount" in r.getMessage()]
    assert warnings == [
        f"{PARTITION}: manifest blobCount is 5 but its blob list names 2; reading the 2 listed"
    ]
    assert all(r.levelname == "WARNING" for r in caplog.records if "blobCount" in r.message)
    records = result.records()
    assert [(r["customer_id"], r["line_ordinal"]) for r in records] == [
        ("c-0", 0),
        ("c-1", 1),
        ("c-2", 2),
        ("c-0", 3),
        ("c-1", 4),
    ]
    assert _partition(result.state)["line_count"] == 5
    assert "etag" in _partition(result.state), "the partition is complete"


def test_an_empty_blob_and_a_two_megabyte_line_are_just_data(graph: FakeGraph) -> None:
    # Text that compresses as real data does (a run of one letter would be refused as a
    # decompression bomb: see test_blob_limits).
    noise = random.Random(7).randbytes(1_000_000).hex()
    big = json.dumps({"CustomerId": "big", "AdditionalInfo": {"x": noise}})
    blobs = {"a.json.gz": gz_lines(*GOOD), "b.json.gz": gzip.compress(b""), "c.json.gz": b""}
    blobs["d.json.gz"] = gz_lines(big)
    graph.add("G000000001", Export(blobs))
    result = run_tap(CONFIG, streams=("billed_usage",))
    records = result.records()
    assert [r["line_ordinal"] for r in records] == [0, 1, 2, 3]
    assert len(records[3]["additional_info"]) > 2_000_000
    assert _partition(result.state)["line_count"] == 4


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_bad_line_is_one_error_line_and_its_traceback_only_at_debug(
    level: str, origin: HostileServer, tmp_path: Path
) -> None:
    origin.routes["GET", f"{BLOB_ROOT}/part-0.json.gz"] = (
        200,
        {},
        blob_bytes(LINES[0], '{"CustomerId": "c2", "BillingPreTaxTotal": '),
    )
    config = write_config(origin, tmp_path, billing_periods=[])
    run = run_cli(config, env={"TAP_PARTNER_BILLING_LOGLEVEL": level})
    assert run.returncode == 1
    errors = [line.split(" | ", 3)[-1] for line in run.stderr.splitlines() if "| ERROR" in line]
    message = (
        "billed_reconciliation invoice G000000001 (full), blob part-0.json.gz, line 2: not "
        "valid JSON (Input data was truncated)"
    )
    if level == "INFO":  # what a user sees by default: the one message, nothing more
        assert errors == [message]
        assert "Traceback" not in run.stderr
    else:  # at DEBUG the traceback, and the SDK's line for the stream that stopped
        assert errors == [
            "An unhandled error occurred while syncing 'billed_reconciliation'",
            message,
        ]
        assert "Traceback (most recent call last)" in run.stderr
