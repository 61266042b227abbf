"""The tap end to end against a fake Graph: records, keys, tombstones and state."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from benchmarks.profiles import PROFILES
from tap_partner_billing.errors import ExportFailedError, ExportTimeoutError
from tests.helpers import Export, FakeGraph, base_config, gz_lines, run_tap


def usage_line(n: int, total: str = "1.0000000001") -> str:
    return (
        f'{{"CustomerId": "c-{n}", "InvoiceNumber": "G000000001", "BillingPreTaxTotal": {total}, '
        f'"Quantity": "{n}.123456789012", "UsageDate": "2026-09-{(n % 28) + 1:02d}T00:00:00"}}'
    )


def three_blobs(prefix: str, lines_per_blob: int, start: int = 0) -> dict[str, bytes]:
    blobs = {}
    n = start
    for b in range(3):
        lines = []
        for _ in range(lines_per_blob):
            lines.append(usage_line(n, total=f"{n}.{n:010d}"))
            n += 1
        blobs[f"{prefix}-part-{b:05d}.json.gz"] = gz_lines(*lines)
    return blobs


def billed_config(**overrides: Any) -> dict[str, Any]:
    return base_config(invoice_ids=["G000000001", "G000000002"], **overrides)


BILLED = ("billed_usage",)
UNBILLED = ("unbilled_usage",)


@pytest.fixture
def two_invoices(graph: FakeGraph) -> FakeGraph:
    graph.add("G000000001", Export(three_blobs("a", 4), etag="etag-a", month="202609"))
    graph.add("G000000002", Export(three_blobs("b", 5, start=100), etag="etag-b", month="202610"))
    graph.add("current/USD", Export({}, fail_code="5000"))
    return graph


def test_two_invoices_one_record_per_line_exact_decimals(two_invoices: FakeGraph) -> None:
    raw: list[str] = []
    result = run_tap(billed_config(), raw=raw)
    records = result.records("billed_usage")
    assert len(records) == 3 * 4 + 3 * 5
    by_invoice = Counter(r["invoice_id"] for r in records)
    assert by_invoice == {"G000000001": 12, "G000000002": 15}
    # Decimal strings equal the source text, asserted on the serialised RECORD lines.
    record_lines = [line for line in raw if '"type":"RECORD"' in line.replace(" ", "")]
    assert '"billing_pre_tax_total":"101.0000000101"' in "".join(record_lines).replace(" ", "")
    first = next(r for r in records if r["invoice_id"] == "G000000002" and r["line_ordinal"] == 1)
    assert first["billing_pre_tax_total"] == "101.0000000101"
    assert first["quantity"] == "101.123456789012"
    assert first["usage_date"] == "2026-09-18T00:00:00+00:00"
    assert first["billing_month"] == "202610"
    assert first["_blob_name"] == "b-part-00000.json.gz"
    assert first["_blob_line"] == 2
    assert first["_manifest_etag"] == "etag-b"
    assert sum(Decimal(r["billing_pre_tax_total"]) for r in records) == sum(
        Decimal(f"{n}.{n:010d}") for n in [*range(12), *range(100, 115)]
    )
    # ordinals: blobs in name order, then line order; each key once
    keys = [(r["invoice_id"], r["line_ordinal"]) for r in records]
    assert len(set(keys)) == len(keys)
    assert sorted(o for i, o in keys if i == "G000000001") == list(range(12))

    partitions = {p["context"]["invoice_id"]: p for p in result.partition_states("billed_usage")}
    assert partitions["G000000001"]["etag"] == "etag-a"
    assert partitions["G000000001"]["line_count"] == 12
    assert partitions["G000000002"]["etag"] == "etag-b"
    assert partitions["G000000002"]["line_count"] == 15
    assert "progress" not in partitions["G000000001"]

    # A second run with that state: no export request and no blob for the invoices (their
    # months are outside the recheck window; see test_invoices.py for the window).
    posts, gets = len(two_invoices.posts), len(two_invoices.blob_gets)
    again = run_tap(billed_config(recheck_months=0), state=result.state)
    assert again.records("billed_usage") == []
    billed_posts = [
        p for p in two_invoices.posts[posts:] if "invoiceId" in p and "_dataset" not in p
    ]
    assert billed_posts == []
    assert two_invoices.blob_gets[gets:] == []


def test_duplicate_lines_get_distinct_keys(graph: FakeGraph) -> None:
    same = usage_line(1)
    graph.add("G000000001", Export({"x.json.gz": gz_lines(same, same, same)}))
    result = run_tap(base_config(invoice_ids=["G000000001"]), streams=BILLED)
    records = result.records("billed_usage")
    assert [r["line_ordinal"] for r in records] == [0, 1, 2]
    assert (
        len(
            {
                json.dumps(
                    {k: v for k, v in r.items() if k not in {"line_ordinal", "_blob_line"}},
                    sort_keys=True,
                )
                for r in records
            }
        )
        == 1
    )


def unbilled_state(result: Any) -> dict[str, Any]:
    partitions = result.partition_states("unbilled_usage")
    assert len(partitions) == 1
    return dict(partitions[0]["months"])


def test_unbilled_reexport_with_fewer_lines_retires_exact_surplus(graph: FakeGraph) -> None:
    graph.add(
        "current/USD",
        Export(
            {"u1.json.gz": gz_lines(*(usage_line(n) for n in range(7)))}, etag="v1", month="202611"
        ),
    )
    config = base_config()
    first = run_tap(config, streams=UNBILLED)
    assert len(first.records()) == 7
    assert unbilled_state(first)["202611"]["line_count"] == 7

    graph.add(
        "current/USD",
        Export(
            {"u2.json.gz": gz_lines(*(usage_line(n) for n in range(4)))}, etag="v2", month="202611"
        ),
    )
    second = run_tap(config, state=first.state, streams=UNBILLED)
    records = second.records()
    live = [r for r in records if r.get("_sdc_deleted_at") is None]
    dead = [r for r in records if r.get("_sdc_deleted_at") is not None]
    assert [r["line_ordinal"] for r in live] == [0, 1, 2, 3]
    assert [r["line_ordinal"] for r in dead] == [4, 5, 6]
    assert all(r["_blob_name"] is None and r["_blob_line"] is None for r in dead)
    assert all(r["_manifest_etag"] == "v2" and r["billing_month"] == "202611" for r in dead)
    assert (
        Counter((r["billing_month"], r["line_ordinal"]) for r in records).most_common(1)[0][1] == 1
    )
    assert unbilled_state(second)["202611"]["line_count"] == 4

    # unchanged data: no blob fetched, nothing emitted
    gets = len(graph.blob_gets)
    third = run_tap(config, state=second.state, streams=UNBILLED)
    assert third.records() == []
    assert graph.blob_gets[gets:] == []


def test_retirement_covers_an_interrupted_run_beyond_the_old_count(graph: FakeGraph) -> None:
    """A run killed after emitting ordinals past the last complete count leaves a mark."""
    graph.add(
        "current/USD",
        Export(
            {"u1.json.gz": gz_lines(*(usage_line(n) for n in range(3)))}, etag="v1", month="202611"
        ),
    )
    config = base_config()
    first = run_tap(config, streams=UNBILLED)
    # The interrupted run: data grew to 1500 lines, and the tap died mid-way.
    state = copy.deepcopy(first.state)
    month = state["bookmarks"]["unbilled_usage"]["partitions"][0]["months"]["202611"]
    month["high_water"] = 2000  # what it saved before emitting ordinal 1000
    month["progress"] = {"etag": "v-big", "blob_list": "x", "blobs_done": 1, "next_ordinal": 1200}
    graph.add(
        "current/USD",
        Export(
            {"u3.json.gz": gz_lines(*(usage_line(n) for n in range(2)))}, etag="v3", month="202611"
        ),
    )
    result = run_tap(config, state=state, streams=UNBILLED)
    dead = sorted(r["line_ordinal"] for r in result.records() if r.get("_sdc_deleted_at"))
    assert dead == list(range(2, 2000))
    assert unbilled_state(result)["202611"]["high_water"] == 2


def test_high_water_is_saved_before_ordinals_beyond_it(graph: FakeGraph) -> None:
    lines = [usage_line(n) for n in range(2500)]
    graph.add("current/USD", Export({"u.json.gz": gz_lines(*lines)}, etag="v1", month="202611"))
    result = run_tap(base_config(), streams=UNBILLED)
    mark = 0
    marks_in_force: list[int] = []  # the mark saved last before each record
    for message in result.messages:
        if message["type"] == "STATE":
            months = (
                message["value"]["bookmarks"]
                .get("unbilled_usage", {})
                .get("partitions", [{}])[0]
                .get("months", {})
            )
            mark = months.get("202611", {}).get("high_water", 0)
        elif message["type"] == "RECORD":
            assert message["record"]["line_ordinal"] < mark
            marks_in_force.append(mark)
    # Every line went out (a run of no records would pass the loop above), and the mark was
    # raised while they did: 2500 lines need more than the first step.
    assert sorted(r["line_ordinal"] for r in result.records()) == list(range(2500))
    assert len(set(marks_in_force)) > 1


def test_failed_5000_is_not_bookmarked_as_done(graph: FakeGraph) -> None:
    graph.add("G000000001", Export({}, fail_code="5000"))
    config = base_config(invoice_ids=["G000000001"])
    first = run_tap(config, streams=BILLED)
    assert first.records() == []
    partition = first.partition_states("billed_usage")[0]
    assert "etag" not in partition
    assert partition["pending_operations"] == {}
    run_tap(config, state=first.state, streams=BILLED)
    assert len([p for p in graph.posts if "invoiceId" in p]) == 2  # tried again next run


def test_failed_other_code_names_dataset_partition_operation_and_error(graph: FakeGraph) -> None:
    graph.add("G000000001", Export({}, fail_code="7000"))
    raw: list[str] = []
    with pytest.raises(ExportFailedError) as raised:
        run_tap(base_config(invoice_ids=["G000000001"]), streams=BILLED, raw=raw)
    message = str(raised.value)
    assert "billed_usage invoice G000000001" in message
    assert "7000" in message
    assert next(iter(graph.operations)) in message
    # A failed operation is terminal: the state left behind holds no operation to resume.
    last_state = [json.loads(line) for line in raw if '"STATE"' in line][-1]["value"]
    partition = last_state["bookmarks"]["billed_usage"]["partitions"][0]
    assert partition["pending_operations"] == {}


def test_pending_operation_is_polled_again_not_reposted(graph: FakeGraph) -> None:
    graph.add(
        "G000000001", Export({"a.json.gz": gz_lines(usage_line(1))}, statuses=["running"] * 100)
    )
    config = base_config(invoice_ids=["G000000001"], poll_timeout_seconds=20)
    raw: list[str] = []
    with pytest.raises(ExportTimeoutError, match="still running"):
        run_tap(config, raw=raw, streams=BILLED)
    states = [json.loads(line)["value"] for line in raw if '"STATE"' in line]
    saved = states[-1]["bookmarks"]["billed_usage"]["partitions"][0]["pending_operations"]["export"]
    assert saved["operation_url"].startswith(
        "https://graph.test/v1.0/reports/partners/billing/operations/"
    )
    graph.exports["G000000001"].statuses = ["succeeded"]
    result = run_tap(config, state=states[-1], streams=BILLED)
    assert len(result.records()) == 1
    assert len(graph.posts) == 1  # the resumed run did not POST again


def test_finished_blobs_not_fetched_again_after_resume(graph: FakeGraph) -> None:
    blobs = three_blobs("a", 3)
    graph.add("G000000001", Export(blobs, etag="e1"))
    config = base_config(invoice_ids=["G000000001"], max_parallel_downloads=1)
    raw: list[str] = []
    full = run_tap(config, raw=raw, streams=BILLED)
    assert len(full.records()) == 9

    # The state written right after blob 2 finished: as if the tap was killed there.
    def progress_of(line: str) -> Any:
        parts = json.loads(line)["value"]["bookmarks"]["billed_usage"]["partitions"]
        return parts[0].get("progress")

    after_two = next(
        json.loads(line)["value"]
        for line in raw
        if '"STATE"' in line and (progress_of(line) or {}).get("blobs_done") == 2
    )
    graph.blob_gets.clear()
    resumed = run_tap(config, state=after_two, streams=BILLED)
    assert graph.blob_gets == ["a-part-00002.json.gz"]
    assert [r["line_ordinal"] for r in resumed.records()] == [6, 7, 8]


def test_changed_etag_on_resume_restarts_partition(graph: FakeGraph) -> None:
    graph.add("G000000001", Export(three_blobs("a", 3), etag="e1"))
    config = base_config(invoice_ids=["G000000001"])
    raw: list[str] = []
    run_tap(config, raw=raw, streams=BILLED)
    mid = next(
        json.loads(line)["value"]
        for line in raw
        if '"STATE"' in line and '"blobs_done":1' in line.replace(" ", "")
    )
    graph.add("G000000001", Export(three_blobs("n", 2), etag="e2"))
    graph.blob_gets.clear()
    resumed = run_tap(config, state=mid, streams=BILLED)
    assert sorted(graph.blob_gets) == [
        "n-part-00000.json.gz",
        "n-part-00001.json.gz",
        "n-part-00002.json.gz",
    ]
    live = [r["line_ordinal"] for r in resumed.records() if not r.get("_sdc_deleted_at")]
    assert live == list(range(6))


def test_current_and_last_resolving_to_one_month_sync_it_once(graph: FakeGraph) -> None:
    graph.add(
        "current/USD", Export({"c.json.gz": gz_lines(usage_line(1), usage_line(2))}, month="202611")
    )
    graph.add("last/USD", Export({"l.json.gz": gz_lines(usage_line(3))}, month="202611"))
    result = run_tap(base_config(billing_periods=["current", "last"]), streams=UNBILLED)
    assert [r["line_ordinal"] for r in result.records()] == [0, 1]
    assert graph.blob_gets == ["c.json.gz"]


def test_linked_manifest_and_completed_status(graph: FakeGraph) -> None:
    graph.add(
        "G000000001",
        Export({"a.json.gz": gz_lines(usage_line(1))}, linked=True, statuses=["Completed"]),
    )
    result = run_tap(base_config(invoice_ids=["G000000001"]), streams=BILLED)
    assert len(result.records()) == 1


@pytest.mark.parametrize("through_catalog", [False, True])
def test_schema_messages_keep_decimal_precision_and_scale(
    graph: FakeGraph, through_catalog: bool
) -> None:
    from tap_partner_billing.tap import TapPartnerBilling

    catalog = TapPartnerBilling(config=base_config()).catalog_dict if through_catalog else None
    graph.add("current/USD", Export({}, fail_code="5000"))
    result = run_tap(base_config(), streams=UNBILLED, catalog=catalog)
    schema = next(
        m["schema"]
        for m in result.messages
        if m["type"] == "SCHEMA" and m["stream"] == "unbilled_usage"
    )
    assert schema["properties"]["billing_pre_tax_total"]["precision"] == 38
    assert schema["properties"]["billing_pre_tax_total"]["scale"] == 18


def test_value_beyond_declared_scale_names_blob_and_line(graph: FakeGraph) -> None:
    from tap_partner_billing.errors import RecordValueError

    bad = '{"CustomerId": "c", "UnitPrice": 0.1234567890123456789}'
    graph.add("G000000001", Export({"a.json.gz": gz_lines(usage_line(1), bad)}))
    with pytest.raises(RecordValueError) as raised:
        run_tap(base_config(invoice_ids=["G000000001"]), streams=BILLED)
    message = str(raised.value)
    assert "blob a.json.gz, line 2" in message
    assert "field UnitPrice" in message
    assert "more than 18 fraction digits" in message


def test_direct_output_writes_the_same_messages_as_the_sdk_path(
    graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines
    from tap_partner_billing.streams.export_stream import ExportStream

    lines = [
        line.decode()
        for line in iter_usage_lines(
            LineSpec(3, "202609", "G000000001", "USD", "full"),
            40,
        )
    ]
    lines[5] = lines[5][:-1] + ', "BrandNewKey": {"x": 1.50}}'
    # And lines like real exports (benchmarks/profiles.py): unknown keys in some or all lines,
    # omitted keys, the other casings, money as strings, dates without Z.
    varied = [
        line.decode()
        for blob, profile in enumerate(("unknown20", "unknown100"))
        for line in PROFILES[profile].rewrite((text.encode() for text in lines), blob, 5)
    ]
    graph.add(
        "G000000001",
        Export(
            {
                "a.json.gz": gz_lines(*lines[:25]),
                "b.json.gz": gz_lines(*lines[25:]),
                "c.json.gz": gz_lines(*varied),
            }
        ),
    )
    graph.add("current/USD", Export({"u.json.gz": gz_lines(*lines[:7])}, month="202611", etag="u1"))
    config = base_config(invoice_ids=["G000000001"])

    def sync(direct: bool, state: dict[str, Any] | None = None) -> list[str]:
        monkeypatch.setattr(ExportStream, "allow_direct_output", direct)
        raw: list[str] = []
        run_tap(config, state=copy.deepcopy(state), raw=raw)
        return raw

    volatile = {
        "time_extracted",
        "started_at",
        "operation_url",
        "_operation_id",
        "_manifest_id",
        "manifest_id",
        "_sdc_deleted_at",
    }  # clock readings and per-export ids

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: ("…" if k in volatile and v is not None else scrub(v)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    def comparable(raw: list[str]) -> list[dict[str, Any]]:
        return [scrub(json.loads(line)) for line in raw]

    direct, sdk = sync(direct=True), sync(direct=False)
    assert len(direct) == len(sdk)
    for ours, theirs in zip(comparable(direct), comparable(sdk), strict=True):
        assert ours == theirs
    # And with tombstones: the unbilled snapshot shrinks.
    state = json.loads(direct[-1])["value"]
    graph.add("current/USD", Export({"u.json.gz": gz_lines(*lines[:3])}, month="202611", etag="u2"))
    direct2, sdk2 = (
        comparable(sync(direct=True, state=state)),
        comparable(sync(direct=False, state=state)),
    )
    assert any(m.get("record", {}).get("_sdc_deleted_at") == "…" for m in direct2)
    assert direct2 == sdk2


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_batch_mode_files_precede_the_state_that_covers_them(
    graph: FakeGraph,
    tmp_path: Path,
    compression: str,
) -> None:
    import gzip as gz
    from urllib.parse import urlsplit

    graph.add("G000000001", Export(three_blobs("a", 4), etag="e1"))
    batch = {
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": f"file://{tmp_path}", "prefix": "t-"},
    }
    config = base_config(invoice_ids=["G000000001"], batch_config=batch)
    result = run_tap(config, streams=BILLED)
    assert result.records() == []  # no RECORD messages in batch mode
    announced = 0
    seen: list[dict[str, Any]] = []
    for message in result.messages:
        if message["type"] == "BATCH":
            assert message["encoding"] == {"format": "jsonl", "compression": compression}
            [url] = message["manifest"]
            data = Path(urlsplit(url).path).read_bytes()
            text = gz.decompress(data) if compression == "gzip" else data
            rows = [json.loads(line) for line in text.splitlines()]
            seen.extend(rows)
            announced += len(rows)
        elif message["type"] == "STATE":
            partition = message["value"]["bookmarks"]["billed_usage"]["partitions"][0]
            covered = partition.get("progress", {}).get(
                "next_ordinal", partition.get("line_count", 0)
            )
            assert covered <= announced
    assert [r["line_ordinal"] for r in seen] == list(range(12))
    assert seen[5]["billing_pre_tax_total"] == "5.0000000005"

    # A re-export with fewer lines: tombstones arrive in batch files too.
    graph.add("G000000001", Export({"z.json.gz": gz_lines(usage_line(1))}, etag="e2"))
    state = copy.deepcopy(result.state)
    state["bookmarks"]["billed_usage"]["partitions"][0].pop("etag")  # force a re-check
    again = run_tap(config, state=state, streams=BILLED)
    files = [m["manifest"][0] for m in again.messages if m["type"] == "BATCH"]
    rows = []
    for url in files:
        data = Path(urlsplit(url).path).read_bytes()
        rows += [
            json.loads(line)
            for line in (gz.decompress(data) if compression == "gzip" else data).splitlines()
        ]
    assert [r["line_ordinal"] for r in rows if r["_sdc_deleted_at"]] == list(range(1, 12))


def test_batch_config_is_checked(graph: FakeGraph) -> None:
    from singer_sdk.exceptions import ConfigValidationError

    bad = {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": "s3://bucket/x"},
    }
    with pytest.raises(ConfigValidationError) as raised:
        run_tap(base_config(batch_config=bad))
    assert "file:// URL" in " ".join(raised.value.errors)


def test_pending_operation_gone_on_resume_starts_a_new_export(graph: FakeGraph) -> None:
    graph.add("G000000001", Export({"a.json.gz": gz_lines(usage_line(1), usage_line(2))}))
    state = {
        "bookmarks": {
            "billed_usage": {
                "partitions": [
                    {
                        "context": {"invoice_id": "G000000001", "attribute_set": "full"},
                        "pending_operations": {
                            "export": {
                                "operation_url": "https://graph.test/v1.0/reports/partners/billing/operations/expired"
                            }
                        },
                    }
                ]
            }
        }
    }
    result = run_tap(base_config(invoice_ids=["G000000001"]), state=state, streams=BILLED)
    assert len(result.records()) == 2
    assert len(graph.posts) == 1  # the 404 led to one new export
    assert result.partition_states("billed_usage")[0]["pending_operations"] == {}


def test_billed_reconciliation_is_typed_and_keyed_like_usage(graph: FakeGraph) -> None:
    line = (
        '{"InvoiceNumber": "G000000001", "ChargeType": "Cycle fee", "Subtotal": 1234.56, '
        '"UnitPrice": "12.3456", "BillableQuantity": 100, "ProductQualifiers": ["Add-on"], '
        '"PromotionID": "P1", "OrderDate": "2026-09-01T00:00:00Z", "TermAndBillingCycle": "1 Year"}'
    )
    graph.add("recon:G000000001", Export({"r.json.gz": gz_lines(line, line)}, etag="r1"))
    result = run_tap(base_config(invoice_ids=["G000000001"]), streams=("billed_reconciliation",))
    records = result.records("billed_reconciliation")
    assert [r["line_ordinal"] for r in records] == [0, 1]
    first = records[0]
    assert first["subtotal"] == "1234.56"
    assert first["unit_price"] == "12.3456"
    assert first["billable_quantity"] == "100"
    assert first["product_qualifiers"] == '["Add-on"]'
    assert first["promotion_id"] == "P1"
    assert first["order_date"] == "2026-09-01T00:00:00+00:00"
    assert first["invoice_id"] == "G000000001"
    partition = result.partition_states("billed_reconciliation")[0]
    assert (partition["etag"], partition["line_count"]) == ("r1", 2)
    assert graph.posts[0].get("_dataset") == "reconciliation"


def test_an_expected_5000_is_info_and_an_unexpected_one_a_warning(
    graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    graph.add_invoice("G000000001", "202610")  # recent: billed data may lag a day
    graph.add_invoice("G000000002", "202610", documentType="adjustment_note")  # no usage
    graph.add_invoice("G000000003", "202405")  # long closed, in coverage: expected data
    for invoice in ("G000000001", "G000000002", "G000000003"):
        graph.add(invoice, Export({}, fail_code="5000"))
    graph.add("current/USD", Export(three_blobs("u", 1), month="202611"))
    with caplog.at_level(logging.INFO):
        run_tap(base_config(discover_invoices=True), streams=("billed_usage",))
    said = {  # the level of each line naming the invoice (the export's own lines are INFO)
        invoice: {r.levelname for r in caplog.records if invoice in r.getMessage()}
        for invoice in ("G000000001", "G000000002", "G000000003")
    }
    assert said == {
        "G000000001": {"INFO"},
        "G000000002": {"INFO"},
        "G000000003": {"INFO", "WARNING"},
    }
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("billed_usage invoice G000000003 (full): answered 5000 and ")
    recent = [r.getMessage() for r in caplog.records if "G000000001 (full): answered" in r.message]
    assert recent == [
        (
            "billed_usage invoice G000000001 (full): answered 5000 (No data available): billing "
            "month 2026-10 is recent and billed data lags a day; asked again on the next run"
        )
    ]
