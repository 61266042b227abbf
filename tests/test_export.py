"""The export state machine, table-driven, with the reference's documented JSON as fixtures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import responses

from tap_partner_billing.errors import (
    ExportFailedError,
    ExportTimeoutError,
    ManifestError,
    OperationGoneError,
    ServiceError,
    TransientHTTPError,
)
from tap_partner_billing.service.export import (
    ExportClient,
    ExportRequest,
    ExportResult,
    OperationStatus,
)
from tap_partner_billing.service.manifest import Manifest
from tap_partner_billing.service.scheduler import ExportScheduler
from tap_partner_billing.service.transport import Transient
from tests.helpers import GRAPH, FakeClock, load_json

# The export state machine: a contract test on every claimed Python (scripts/test-pythons).
pytestmark = pytest.mark.contract

OPS = f"{GRAPH}/reports/partners/billing/operations"
OP_URL = f"{OPS}/6fe687d7-1e0f-4bd6-9091-4672691f64bc"
EXPORT_URL = f"{GRAPH}/reports/partners/billing/usage/billed/export"
REQUEST = ExportRequest(
    "usage/billed",
    {"invoiceId": "G016907411", "attributeSet": "full"},
    "billed_usage invoice G016907411 (full)",
)


def client(clock: FakeClock) -> ExportClient:
    return ExportClient(graph_url=GRAPH, token=lambda: "tok", clock=clock.clock, sleep=clock.sleep)


def poll(clock: FakeClock, url: str = OP_URL, *, timeout: float = 3600) -> ExportResult:
    """Resume the operation at ``url`` through the run's scheduler, and wait for it."""
    scheduler = ExportScheduler(
        client(clock),
        clock=clock.clock,
        sleep=clock.sleep,
        interval=30,
        timeout=timeout,
        max_concurrent=10,
    )
    scheduler.add(REQUEST, {"export": {"operation_url": url}}, "export")
    return scheduler.result(REQUEST, lambda: None)


def succeeded_inline() -> dict[str, Any]:
    body: dict[str, Any] = load_json("operation_succeeded_linked.json")
    del body["resourceLocation@odata.navigationLink"]
    body["resourceLocation"] = load_json("manifest_real.json")
    return body


@dataclass
class Case:
    name: str
    answers: list[tuple[int, dict[str, Any], dict[str, str]]]
    sleeps: list[float] = field(default_factory=list)
    outcome: str = "manifest"  # manifest | nodata | an exception name


RUNNING = load_json("operation_running.json")
NOT_STARTED = {**RUNNING, "status": "notStarted"}
FAILED_5000 = load_json("operation_failed.json")
FAILED_OTHER = {**FAILED_5000, "error": {"code": "9001", "message": "Internal failure"}}

CASES = [
    Case(
        "notStarted → running → succeeded, Retry-After honoured (0 means the 1 s floor)",
        [
            (200, NOT_STARTED, {"Retry-After": "7"}),
            (200, RUNNING, {"Retry-After": "0"}),
            (200, succeeded_inline(), {}),
        ],
        sleeps=[7, 1],
    ),
    Case(
        "a huge Retry-After is capped at 300 s",
        [(200, RUNNING, {"Retry-After": "1000000000"}), (200, succeeded_inline(), {})],
        sleeps=[60, 60, 60, 60, 60],
    ),
    Case(
        "a far-future Retry-After date is capped, an unreadable one falls back to the interval",
        [
            (200, RUNNING, {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}),
            (200, RUNNING, {"Retry-After": "next tuesday"}),
            (200, succeeded_inline(), {}),
        ],
        sleeps=[60, 60, 60, 60, 60, 30],
    ),
    Case(
        "Retry-After absent: the configured interval",
        [(200, RUNNING, {}), (200, succeeded_inline(), {})],
        sleeps=[30],
    ),
    Case(
        "completed counts as succeeded", [(200, {**succeeded_inline(), "status": "Completed"}, {})]
    ),
    Case(
        "status compared case-insensitively",
        [
            (200, {**RUNNING, "status": "RUNNING"}, {"Retry-After": "1"}),
            (200, {**succeeded_inline(), "status": "SUCCEEDED"}, {}),
        ],
        sleeps=[1],
    ),
    Case("failed with 5000 is no data", [(200, FAILED_5000, {})], outcome="nodata"),
    Case("failed with another code", [(200, FAILED_OTHER, {})], outcome="ExportFailedError"),
    Case("skipped", [(200, {**RUNNING, "status": "skipped"}, {})], outcome="ExportFailedError"),
    Case(
        "unknown status", [(200, {**RUNNING, "status": "paused"}, {})], outcome="ExportFailedError"
    ),
    Case(
        "429 then success in the same run",
        [
            (429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "4"}),
            (200, succeeded_inline(), {}),
        ],
        sleeps=[4],
    ),
    Case(
        "503 without Retry-After backs off",
        [(503, {}, {}), (200, succeeded_inline(), {})],
        sleeps=[1],
    ),
    Case("410 Gone", [(410, {"error": {"code": "Gone"}}, {})], outcome="OperationGoneError"),
    Case("404", [(404, {"error": {"code": "NotFound"}}, {})], outcome="OperationGoneError"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_poll_table(case: Case, rsps: responses.RequestsMock, clock: FakeClock) -> None:
    for status, body, headers in case.answers:
        rsps.add(responses.GET, OP_URL, json=body, status=status, headers=headers)
    if case.outcome == "OperationGoneError":  # a step raises it; the scheduler exports again
        with pytest.raises(OperationGoneError) as raised:
            client(clock).read(OP_URL, REQUEST.where)
        assert "billed_usage invoice G016907411" in str(raised.value)
        return
    if case.outcome == "ExportFailedError":
        with pytest.raises(ExportFailedError) as failed:
            poll(clock)
        assert "billed_usage invoice G016907411" in str(failed.value)
        return
    result = poll(clock)
    assert clock.sleeps == case.sleeps
    assert result.operation_id == "6fe687d7-1e0f-4bd6-9091-4672691f64bc"
    if case.outcome == "nodata":
        assert result.manifest is None
    else:
        assert result.manifest is not None
        assert result.manifest.etag == "69D0qrTA8NTziitwV"
        assert result.manifest.billing_month == "202410"


def test_failed_error_names_operation_and_graph_code(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add(responses.GET, OP_URL, json=FAILED_OTHER)
    with pytest.raises(
        ExportFailedError, match=r"6fe687d7-1e0f-4bd6-9091-4672691f64bc.*9001: Internal failure"
    ):
        poll(clock)


def test_deadline(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(responses.GET, OP_URL, json=RUNNING, headers={"Retry-After": "60"})
    with pytest.raises(ExportTimeoutError, match="poll_timeout_seconds=150"):
        poll(clock, timeout=150)
    assert sum(clock.sleeps) == 150  # never sleeps past the deadline


def test_one_progress_line_a_minute_not_one_per_poll(
    rsps: responses.RequestsMock, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    calls = 0

    def succeed_after_five_minutes(request: object) -> tuple[int, dict[str, str], str]:
        del request
        nonlocal calls
        calls += 1
        body = RUNNING if clock.now < 1300 else succeeded_inline()
        return 200, {"Retry-After": "5"}, json.dumps(body)

    rsps.add_callback(responses.GET, OP_URL, callback=succeed_after_five_minutes)
    poll(clock)
    lines = [r.message for r in caplog.records if r.message.startswith("Exports:")]
    assert calls == 61  # every 5 s for 300 s, and the one that found it succeeded
    assert len(lines) == 4, lines  # at 1, 2, 3 and 4 minutes; it ends at 5
    assert lines[0] == (
        "Exports: 1 running (0 not started by Graph yet), 0 finished, 0 waiting to start; "
        "the longest has run 1 min 0 s; waiting for billed_usage invoice G016907411 (full)"
    )


def test_linked_manifest_is_fetched(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    linked = load_json("operation_succeeded_linked.json")
    link = linked["resourceLocation@odata.navigationLink"].replace(
        "https://graph.microsoft.com/v1.0", GRAPH
    )
    rsps.add(responses.GET, OP_URL, json={**linked, "resourceLocation@odata.navigationLink": link})
    rsps.add(responses.GET, link, json=load_json("manifest_real.json"))
    result = poll(clock)
    assert result.manifest is not None
    assert result.manifest.blobs[0].name.startswith("part-00103")


def test_linked_manifest_on_another_origin_is_refused_before_the_token_goes(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add(
        responses.GET, OP_URL, json=load_json("operation_succeeded_linked.json")
    )  # graph.microsoft.com ≠ graph.test
    with pytest.raises(ServiceError, match="not on the origin of graph_url"):
        poll(clock)
    assert len(rsps.calls) == 1


def test_post_returns_location(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(responses.POST, EXPORT_URL, status=202, headers={"Location": OP_URL})
    assert client(clock).post(REQUEST) == OP_URL
    sent = rsps.calls[0].request
    assert json.loads(sent.body or b"") == {"invoiceId": "G016907411", "attributeSet": "full"}
    assert sent.headers["Authorization"] == "Bearer tok"


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.test/v1.0/reports/partners/billing/operations/1",
        "http://graph.test/v1.0/x",
        "https://graph.test:8443/v1.0/x",
        "/v1.0/reports/partners/billing/operations/1",
        "",
    ],
)
def test_post_refuses_location_off_origin(
    location: str, rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add(
        responses.POST, EXPORT_URL, status=202, headers={"Location": location} if location else {}
    )
    with pytest.raises(ServiceError, match="refusing"):
        client(clock).post(REQUEST)


def test_post_400_is_a_clear_error(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(
        responses.POST,
        EXPORT_URL,
        status=400,
        json={"error": {"code": "BadRequest", "message": "invoiceId malformed"}},
        headers={"request-id": "req-123"},
    )
    with pytest.raises(
        ServiceError, match=r"HTTP 400, BadRequest: invoiceId malformed, request-id req-123"
    ):
        client(clock).post(REQUEST)


def test_post_answers_a_429_as_a_transient_without_waiting(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add(responses.POST, EXPORT_URL, status=429, headers={"Retry-After": "2"})
    answer = client(clock).post(REQUEST)
    assert isinstance(answer, Transient)
    assert answer.throttled
    assert answer.retry_after == "2"
    assert clock.sleeps == []  # the scheduler waits, between its steps


def test_post_refuses_an_absurdly_long_location(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    location = f"{OPS}/{'x' * 3000}"
    rsps.add(responses.POST, EXPORT_URL, status=202, headers={"Location": location})
    with pytest.raises(ServiceError, match=r"a Location of 3\d{3} characters \(more than 2048\)"):
        client(clock).post(REQUEST)


def test_a_linked_manifest_is_fetched_at_its_turn_one_attempt_per_step(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    link = f"{OP_URL}/manifest"
    body = {"id": OP_URL.rsplit("/", 1)[-1], "status": "succeeded"}
    rsps.add(responses.POST, EXPORT_URL, status=202, headers={"Location": OP_URL})
    rsps.add(responses.GET, OP_URL, json={**body, "resourceLocation@odata.navigationLink": link})
    rsps.add(responses.GET, link, status=503)
    rsps.add(responses.GET, link, json=load_json("manifest_real.json"))
    scheduler = ExportScheduler(
        client(clock),
        clock=clock.clock,
        sleep=clock.sleep,
        interval=5,
        timeout=60,
        max_concurrent=2,
    )
    scheduler.add(REQUEST, {}, "export")
    scheduler.tick(lambda: None)  # nobody waits for it yet: its manifest is not asked for
    assert [c.request.url for c in rsps.calls] == [EXPORT_URL, OP_URL]
    clock.sleep(600)  # long past its deadline: the manifest's 503 is retried, not a timeout
    result = scheduler.result(REQUEST, lambda: None)
    assert result.manifest is not None
    # Re-read at its turn, then the manifest: a 503, and again after a backoff between steps.
    assert [c.request.url for c in rsps.calls][2:] == [OP_URL, link, link]
    assert len(clock.sleeps) == 2  # the 600 s above, and the one backoff


def test_a_refused_token_is_renewed_once(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    tokens = iter(["old", "new", "newer"])
    current = {"token": next(tokens)}

    def renew() -> None:
        current["token"] = next(tokens)

    graph = ExportClient(
        graph_url=GRAPH,
        token=lambda: current["token"],
        renew_token=renew,
        clock=clock.clock,
        sleep=clock.sleep,
    )
    rsps.add(responses.POST, EXPORT_URL, status=401, json={"error": {"code": "InvalidToken"}})
    rsps.add(responses.POST, EXPORT_URL, status=202, headers={"Location": OP_URL})
    assert graph.post(REQUEST) == OP_URL
    assert [c.request.headers["Authorization"] for c in rsps.calls] == ["Bearer old", "Bearer new"]
    # Refused again with the new token: no loop, a clear error.
    rsps.add(responses.POST, EXPORT_URL, status=401, json={"error": {"code": "InvalidToken"}})
    rsps.add(responses.POST, EXPORT_URL, status=401, json={"error": {"code": "InvalidToken"}})
    with pytest.raises(ServiceError, match="HTTP 401"):
        graph.post(REQUEST)
    assert len(rsps.calls) == 4


def test_transient_errors_are_bounded(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(responses.GET, OP_URL, status=503)
    with pytest.raises(TransientHTTPError, match="failed 6 times in 31 s: HTTP 503"):
        poll(clock)
    assert len(clock.sleeps) == 5


def test_status_parsing() -> None:
    assert OperationStatus.parse("notstarted") is OperationStatus.NOT_STARTED
    assert OperationStatus.parse("Completed") is OperationStatus.SUCCEEDED
    assert OperationStatus.parse(None) is OperationStatus.UNKNOWN


def test_real_manifest_fixture_parses_verbatim() -> None:
    manifest = Manifest.parse(load_json("manifest_real.json"), where="t")
    assert manifest.billing_month == "202410"
    assert manifest.path_segments()["currency"] == "INR"
    assert "sig=" not in repr(manifest)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataFormat": "parquet"}, "dataFormat"),
        ({"rootDirectory": None}, "lacks rootDirectory"),
        ({"sasToken": ""}, "lacks sasToken"),
        ({"rootDirectory": "http://x/y"}, "it is not https"),
    ],
)
def test_bad_manifests_are_refused(change: dict[str, Any], message: str) -> None:
    body = {**load_json("manifest_real.json"), **change}
    with pytest.raises(ManifestError, match=message):
        Manifest.parse(body, where="billed_usage invoice X")


def test_the_documented_export_answer_and_inline_operation_are_read(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    accepted = load_json("export_accepted.json")  # 202 Accepted, Location, no body
    location = accepted["headers"]["Location"].replace("https://graph.microsoft.com/v1.0", GRAPH)
    rsps.add(responses.POST, EXPORT_URL, status=accepted["status"], headers={"Location": location})
    inline = load_json("operation_succeeded_inline.json")
    rsps.add(responses.GET, location, json=inline)
    url = client(clock).post(REQUEST)
    assert url == location
    result = poll(clock, location)
    assert result.manifest is not None
    assert result.manifest.billing_month == "202310"  # BillingMonth= in its rootDirectory
    assert result.manifest.schema_version == "1"
    assert [b.name for b in result.manifest.blobs] == [
        "part-00049-b016029b-a7a7-4c46-9b5e-c925ac317ac6.c000.json.gz"
    ]


def test_a_manifest_whose_blob_count_differs_keeps_its_listed_blobs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {**load_json("manifest_real.json"), "blobCount": 2}
    with caplog.at_level("WARNING", logger="tap_partner_billing.service.manifest"):
        manifest = Manifest.parse(body, where="billed_usage invoice X")
    assert [b.name for b in manifest.blobs] == [b["name"] for b in body["blobs"]]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            (
                "billed_usage invoice X: manifest blobCount is 2 but its blob list names 1; "
                "reading the 1 listed"
            ),
        )
    ]
