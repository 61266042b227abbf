"""Invoice discovery, re-checked invoices and unbilled months that are invoiced (fake services)."""

from __future__ import annotations

import gzip
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from tap_partner_billing.errors import ServiceError
from tap_partner_billing.service.partner_center import (
    InvoiceClient,
    invoices_to_export,
    parse_invoice,
)
from tests.helpers import PARTNER_CENTER, Export, FakeGraph, base_config, gz_lines, run_tap


def usage_line(n: int) -> str:
    return f'{{"CustomerId": "c-{n}", "BillingPreTaxTotal": "{n}.25", "Quantity": 1}}'


def blob(count: int, start: int = 0) -> dict[str, bytes]:
    return {f"u-{start}.json.gz": gz_lines(*(usage_line(n) for n in range(start, start + count)))}


def billed_posts(graph: FakeGraph, since: int = 0) -> list[str]:
    return [p["invoiceId"] for p in graph.posts[since:] if "invoiceId" in p and "_dataset" not in p]


def months_state(result: Any) -> dict[str, Any]:
    months: dict[str, Any] = result.partition_states("unbilled_usage")[0]["months"]
    return months


# ---- the Partner Center client ---------------------------------------------------------------


def _client(sleeps: list[float]) -> InvoiceClient:
    return InvoiceClient(base_url=PARTNER_CENTER, token=lambda: "pc-token", sleep=sleeps.append)


@responses.activate
def test_invoice_list_follows_next_links_with_their_continuation_header() -> None:
    first = {
        "items": [
            {
                "id": "G000000001",
                "totalCharges": "@total@",
                "paidAmount": "@paid@",
                "billingPeriodStartDate": "2026-09-01",
            }
        ],
        "links": {
            "next": {
                "uri": "/invoices?size=1",
                "headers": [{"key": "MS-ContinuationToken", "value": "page-2"}],
            }
        },
    }
    second = {"items": [{"id": "D02005YFHI", "invoiceDate": "2026-10-05T00:00:00Z"}], "links": {}}
    responses.get(
        f"{PARTNER_CENTER}/v1/invoices",
        json=second,
        match=[responses.matchers.header_matcher({"MS-ContinuationToken": "page-2"})],
    )
    # JSON numbers as Partner Center writes them, which a float would change (…789012 loses
    # its last digits, 10.10 its trailing zero).
    text = json.dumps(first).replace('"@total@"', "1234567.123456789012")
    responses.get(
        f"{PARTNER_CENTER}/v1/invoices",
        body=text.replace('"@paid@"', "10.10"),
        content_type="application/json",
    )
    invoices = _client([]).list_invoices()
    assert [i.id for i in invoices] == ["G000000001", "D02005YFHI"]
    assert invoices[0].total_charges == "1234567.123456789012"  # a decimal, never a float
    assert invoices[0].paid_amount == "10.10"
    assert invoices[0].billing_month == "202609"
    assert invoices[1].billing_month == "202609"  # the month before the invoice date
    assert not invoices[1].has_export_data
    assert all(c.request.headers["Authorization"] == "Bearer pc-token" for c in responses.calls)


@responses.activate
def test_invoice_list_refuses_a_next_link_on_another_origin() -> None:
    body = {"items": [], "links": {"next": {"uri": "https://elsewhere.test/v1/invoices"}}}
    responses.get(f"{PARTNER_CENTER}/v1/invoices", json=body)
    with pytest.raises(ServiceError, match=r"page 2: refusing 'https://elsewhere\.test"):
        _client([]).list_invoices()
    assert len(responses.calls) == 1


@responses.activate
def test_invoice_list_refused_names_the_way_out_and_retries_throttling() -> None:
    responses.get(f"{PARTNER_CENTER}/v1/invoices", status=429, headers={"Retry-After": "7"})
    responses.get(f"{PARTNER_CENTER}/v1/invoices", status=403, json={"code": 403})
    sleeps: list[float] = []
    with pytest.raises(ServiceError, match=r"HTTP 403.*discover_invoices to false"):
        _client(sleeps).list_invoices()
    assert sleeps == [7.0]


def test_an_invoice_total_that_is_not_a_number_names_the_invoice() -> None:
    with pytest.raises(ServiceError, match=r"invoice G1.*totalCharges"):
        parse_invoice({"id": "G1", "totalCharges": "lots"}, "page 1, item 1")


def test_invoices_to_export_precedence(caplog: pytest.LogCaptureFixture) -> None:
    listed = [
        parse_invoice({"id": i, "billingPeriodStartDate": f"{m[:4]}-{m[4:]}-01"}, "x")
        for i, m in (("G000000007", "202606"), ("G000000008", "202609"), ("D0000AAAAA", "202609"))
    ]
    listed.append(parse_invoice({"id": "G000000009"}, "x"))  # no period: exported, warned
    with caplog.at_level(logging.INFO):
        chosen = invoices_to_export(listed, start_month="202608", explicit=["G000000001"])
    # explicit ids always; discovered from the start month on; legacy D… skipped with INFO
    assert chosen == ["G000000001", "G000000008", "G000000009"]
    assert "invoice D0000AAAAA (unknown type) is skipped" in caplog.text
    assert "G000000009 names no billing period" in caplog.text


# ---- discovery in a run ------------------------------------------------------------------


def test_billed_streams_export_discovered_invoices_from_start_date(graph: FakeGraph) -> None:
    graph.add_invoice("G000000007", "202606")
    graph.add_invoice("G000000008", "202609", totalCharges=Decimal("1234.5678901234"))
    graph.add_invoice("D02005YFHI", "202609")
    graph.add("G000000008", Export(blob(3), month="202609"))
    graph.add("G000000005", Export(blob(2, start=100), month="202601"))
    config = base_config(discover_invoices=True, start_date="2026-08", invoice_ids=["G000000005"])
    result = run_tap(config, streams=("invoices", "billed_usage"))
    assert sorted(billed_posts(graph)) == ["G000000005", "G000000008"]
    invoices = {r["id"]: r for r in result.records("invoices")}
    assert set(invoices) == {"G000000007", "G000000008", "D02005YFHI"}
    assert invoices["G000000008"]["total_charges"] == "1234.5678901234"
    assert invoices["G000000008"]["billing_month"] == "202609"
    assert invoices["D02005YFHI"]["has_export_data"] is False
    schema = next(
        m["schema"] for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == "invoices"
    )
    assert schema["properties"]["total_charges"]["precision"] == 38  # loads as NUMERIC(38,18)
    assert len(result.records("billed_usage")) == 5
    assert graph.invoice_list_requests == 1  # read once, shared by the streams


def _listed(graph: FakeGraph) -> dict[str, Any]:
    graph.add_invoice("G000000007", "202606", totalCharges=Decimal("1234.5678901234"))
    graph.add_invoice("G000000008", "202609", amendments=["G000000007"])
    graph.add_invoice("D02005YFHI", "202609")
    return base_config(discover_invoices=True, start_date="2026-08", invoice_ids=[])


def test_invoices_direct_route_writes_what_the_sdk_path_writes(
    graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tap_partner_billing.streams.invoices import InvoicesStream

    config = _listed(graph)

    def messages(direct: bool) -> list[dict[str, Any]]:
        monkeypatch.setattr(InvoicesStream, "allow_direct_output", direct)
        raw: list[str] = []
        run_tap(config, streams=("invoices",), raw=raw)
        found = [json.loads(line) for line in raw]
        for message in found:
            message.pop("time_extracted", None)  # a clock reading
        return found

    direct, sdk = messages(direct=True), messages(direct=False)
    assert [m["record"]["id"] for m in direct if m["type"] == "RECORD"] == [
        "G000000007",
        "G000000008",
        "D02005YFHI",
    ]
    assert direct == sdk


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_invoices_batch_file_is_what_its_message_says(
    graph: FakeGraph, tmp_path: Path, compression: str
) -> None:
    config = _listed(graph)
    expected = run_tap(config, streams=("invoices",)).records("invoices")
    batch = {
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": tmp_path.as_uri(), "prefix": "t-"},
    }
    result = run_tap({**config, "batch_config": batch}, streams=("invoices",))
    assert result.records() == []
    # No STATE before the BATCH: a target must not record a position its rows are not in.
    assert [m["type"] for m in result.messages] == ["SCHEMA", "BATCH", "STATE"]
    [message] = [m for m in result.messages if m["type"] == "BATCH"]
    assert message["encoding"] == {"format": "jsonl", "compression": compression}
    [url] = message["manifest"]
    data = Path(urlsplit(url).path).read_bytes()
    assert data[:2] == b"\x1f\x8b" if compression == "gzip" else data[:1] == b"{"
    text = gzip.decompress(data) if compression == "gzip" else data
    assert [json.loads(line) for line in text.splitlines()] == expected
    assert url.endswith(".jsonl.gz" if compression == "gzip" else ".jsonl")


# ---- re-issued invoices --------------------------------------------------------------------


def test_recent_invoices_are_rechecked_and_reissued_data_replaces_the_old(
    graph: FakeGraph,
) -> None:
    graph.add("G000000001", Export(blob(4, start=100), etag="old-1", month="202608"))
    graph.add("G000000002", Export(blob(6), etag="v1", month="202610"))
    config = base_config(invoice_ids=["G000000001", "G000000002"], recheck_months=1)
    first = run_tap(config, streams=("billed_usage",))
    assert len(first.records()) == 10

    # Unchanged: only the recent invoice (202610 ≥ 202611 - 1) is exported again; no blob.
    posts, gets = len(graph.posts), len(graph.blob_gets)
    second = run_tap(config, state=first.state, streams=("billed_usage",))
    assert billed_posts(graph, posts) == ["G000000002"]
    assert graph.blob_gets[gets:] == []
    assert second.records() == []

    # Re-issued with fewer lines: same keys, surplus retired; live rows equal the new data.
    graph.add("G000000002", Export(blob(4, start=50), etag="v2", month="202610"))
    third = run_tap(config, state=second.state, streams=("billed_usage",))
    rows = {(r["invoice_id"], r["line_ordinal"]): r for r in third.records()}
    live = {k: r for k, r in rows.items() if r["_sdc_deleted_at"] is None}
    assert sorted(live) == [("G000000002", n) for n in range(4)]
    assert [r["customer_id"] for r in live.values()] == [f"c-{n}" for n in range(50, 54)]
    assert sorted(k for k, r in rows.items() if r["_sdc_deleted_at"]) == [
        ("G000000002", 4),
        ("G000000002", 5),
    ]


# ---- unbilled months that are invoiced -------------------------------------------------------


@pytest.fixture
def two_months(graph: FakeGraph) -> tuple[FakeGraph, Any]:
    graph.add("current/USD", Export(blob(3), etag="c1", month="202611"))
    graph.add("last/USD", Export(blob(5, start=10), etag="l1", month="202610"))
    config = base_config(billing_periods=["current", "last"])
    first = run_tap(config, streams=("unbilled_usage",))
    assert set(months_state(first)) == {"202610", "202611"}
    # Early in the next month "last" stops answering (no data: 5000) while current still
    # answers 202611; that alone proves nothing, a 5000 may be transient.
    graph.add("last/USD", Export({}, fail_code="5000"))
    return graph, first


def test_invoiced_month_leaves_the_unbilled_stream(two_months: tuple[FakeGraph, Any]) -> None:
    graph, first = two_months
    graph.add_invoice("G000000010", "202610")
    config = base_config(billing_periods=["current", "last"], discover_invoices=True)
    second = run_tap(config, state=first.state, streams=("unbilled_usage",))
    dead = [r for r in second.records() if r["_sdc_deleted_at"] is not None]
    assert sorted((r["billing_month"], r["line_ordinal"]) for r in dead) == [
        ("202610", n) for n in range(5)
    ]
    assert set(months_state(second)) == {"202611"}


def test_unanswered_month_is_kept_until_it_is_known_to_be_invoiced(
    two_months: tuple[FakeGraph, Any],
) -> None:
    graph, first = two_months
    config = base_config(billing_periods=["current", "last"], discover_invoices=True)
    second = run_tap(config, state=first.state, streams=("unbilled_usage",))
    assert second.records() == []
    assert set(months_state(second)) == {"202610", "202611"}
    # Without the invoice list, the proof is "current" two months past it.
    graph.add("current/USD", Export(blob(2, start=20), etag="c2", month="202612"))
    graph.add("last/USD", Export(blob(3), etag="c1", month="202611"))
    third = run_tap(config, state=second.state, streams=("unbilled_usage",))
    retired = {r["billing_month"] for r in third.records() if r["_sdc_deleted_at"] is not None}
    assert retired == {"202610"}
    assert set(months_state(third)) == {"202611", "202612"}


def test_a_month_answered_after_its_invoice_is_not_emitted(graph: FakeGraph) -> None:
    graph.add("last/USD", Export(blob(3), etag="l1", month="202610"))
    config = base_config(billing_periods=["last"])
    first = run_tap(config, streams=("unbilled_usage",))
    graph.add_invoice("G000000010", "202610")
    second = run_tap(
        {**config, "discover_invoices": True}, state=first.state, streams=("unbilled_usage",)
    )
    assert [r["line_ordinal"] for r in second.records()] == [0, 1, 2]
    assert all(r["_sdc_deleted_at"] is not None for r in second.records())
    assert months_state(second) == {}


def test_a_pending_operation_below_the_floor_is_resumed_and_cleared(graph: FakeGraph) -> None:
    # Listed in 2022-08, before billed usage's floor, but an operation (saved by an older
    # version) is pending: the partition stays, the operation is resumed, none is left.
    graph.add_invoice("G000000001", "202208")
    graph.add("G000000001", Export(blob(3), month="202208"))
    expired = "https://graph.test/v1.0/reports/partners/billing/operations/expired"
    context = {"invoice_id": "G000000001", "attribute_set": "full"}
    partition = {"context": context, "pending_operations": {"export": {"operation_url": expired}}}
    state = {"bookmarks": {"billed_usage": {"partitions": [partition]}}}
    config = base_config(discover_invoices=True, invoice_ids=[])
    result = run_tap(config, state=state, streams=("billed_usage",))
    assert len(result.records("billed_usage")) == 3
    [saved] = result.partition_states("billed_usage")
    assert saved["pending_operations"] == {}
