"""The run's export scheduler against a simulated Graph on an injected clock (no sleeping).

The simulated service runs each export for ``duration`` seconds, at most ``run_cap`` at once
(the others wait ``notStarted``, first come first served), and answers a POST with 429 while
``accept_cap`` of its exports are unfinished. Every test checks what a user would: what was
POSTed, what ended how, what the partition's ``pending`` dict (its Singer state) held when
STATE was written, and how long the run waited.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.cli import invoke
from tap_partner_billing.errors import (
    ExportFailedError,
    ExportTimeoutError,
    MissingPermissionError,
    OperationGoneError,
    PartnerBillingError,
    StateError,
    TransientHTTPError,
)
from tap_partner_billing.service.export import ExportRequest, ExportResult, OperationStatus, Reading
from tap_partner_billing.service.manifest import Manifest
from tap_partner_billing.service.scheduler import ExportScheduler
from tap_partner_billing.service.transport import Transient
from tap_partner_billing.service.url_policy import UrlPolicy
from tap_partner_billing.tap import TapPartnerBilling
from tests.helpers import GRAPH, Export, FakeClock, base_config, gz_lines, load_json, run_tap
from tests.helpers import FakeGraph as FakeGraphService

if TYPE_CHECKING:
    from collections.abc import Callable

OPS = f"{GRAPH}/reports/partners/billing/operations"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)  # the wall clock of these runs
MANIFEST = Manifest.parse(load_json("manifest_real.json"), where="test")


@dataclass
class Op:
    where: str
    created: float
    start: float
    finish: float
    outcome: str = "succeeded"  # or "5000", "failed", "gone"


@dataclass
class FakeGraph:
    """Graph's export steps, simulated on ``clock``."""

    clock: FakeClock
    duration: float = 10.0
    run_cap: int = 100
    accept_cap: int = 100
    outcomes: dict[str, str] = field(default_factory=dict)  # where → outcome ("gone": once)
    durations: dict[str, float] = field(default_factory=dict)  # where → its own duration
    ops: dict[str, Op] = field(default_factory=dict)
    posts: list[str] = field(default_factory=list)  # where each was, in order
    refused: int = 0  # POSTs answered 429
    reads: list[str] = field(default_factory=list)  # where each was, in order
    most_running: int = 0
    queued_at_posts: list[int] = field(default_factory=list)  # notStarted ops at each POST
    blips: dict[str, int] = field(default_factory=dict)  # where → 503s its next reads answer

    def __post_init__(self) -> None:
        self.url_policy = UrlPolicy.for_base(GRAPH, "graph_url")

    def post(self, request: ExportRequest) -> str | Transient:
        now = self.clock.now
        if sum(op.finish > now for op in self.ops.values()) >= self.accept_cap:
            self.refused += 1
            return Transient("HTTP 429", "2", 429)
        self.queued_at_posts.append(sum(op.start > now for op in self.ops.values()))
        finishes = sorted(op.finish for op in self.ops.values())
        earlier = finishes[-self.run_cap] if len(finishes) >= self.run_cap else now
        start = max(now, earlier)
        op_id = f"op{len(self.ops)}"
        outcome = self.outcomes.get(request.where, "succeeded")
        if outcome == "gone":
            del self.outcomes[request.where]
        duration = self.durations.get(request.where, self.duration)
        self.ops[op_id] = Op(request.where, now, start, start + duration, outcome)
        self.posts.append(request.where)
        return f"{OPS}/{op_id}"

    def read(self, operation_url: str, where: str) -> Reading | Transient:
        op_id = operation_url.rsplit("/", 1)[-1]
        op, now = self.ops[op_id], self.clock.now
        self.reads.append(where)
        if self.blips.get(where):
            self.blips[where] -= 1
            return Transient("HTTP 503", None, 503)
        running = sum(o.start <= now < o.finish for o in self.ops.values())
        self.most_running = max(self.most_running, running)
        if op.outcome == "gone" and now >= op.finish:
            raise OperationGoneError(f"{where}: operation answered HTTP 410")
        if now < op.start:
            return Reading(op_id, OperationStatus.NOT_STARTED, "notStarted", 1.0)
        if now < op.finish:
            return Reading(op_id, OperationStatus.RUNNING, "running", 1.0)
        if op.outcome == "5000":
            result = ExportResult(op_id, None, "No data available")
            return Reading(op_id, OperationStatus.FAILED, "failed", None, result)
        if op.outcome == "failed":
            raise ExportFailedError(f"{where}: operation {op_id} ended with status 'failed'")
        result = ExportResult(op_id, MANIFEST, operation_url=operation_url)
        return Reading(op_id, OperationStatus.SUCCEEDED, "succeeded", None, result)

    def manifest(self, link: str, where: str) -> Manifest | Transient:
        return MANIFEST  # its manifests are inline; test_export fetches linked ones


def request(n: int) -> ExportRequest:
    body = {"invoiceId": f"G{n:09d}", "attributeSet": "full"}
    return ExportRequest("usage/billed", body, f"billed_usage invoice G{n:09d} (full)")


@dataclass
class Run:
    """A scheduler with ``count`` registered exports, and what each STATE would hold."""

    graph: FakeGraph
    scheduler: ExportScheduler
    requests: list[ExportRequest]
    pending: list[dict[str, Any]]
    states: list[list[str | None]] = field(default_factory=list)

    def write_state(self) -> None:
        self.states.append([url(p) for p in self.pending])

    def take_all(self) -> list[ExportResult]:
        results = []
        for req, pending in zip(self.requests, self.pending, strict=True):
            results.append(self.scheduler.result(req, self.write_state))
            pending.clear()  # the stream is done with the partition
        return results


def url(pending: dict[str, Any]) -> str | None:
    saved = pending.get("export")
    return saved["operation_url"] if saved else None


def make_run(
    clock: FakeClock,
    count: int,
    *,
    cap: int = 10,
    timeout: float = 3600,
    saved: dict[int, dict[str, Any]] | None = None,
    utc_now: Callable[[], datetime] = lambda: NOW,
    **graph: Any,
) -> Run:
    fake = FakeGraph(clock, **graph)

    def sleep(seconds: float) -> None:  # a run that would hang fails its test instead
        clock.sleep(seconds)
        assert clock.now - 1000 < 86400, f"still waiting after a day, {fake.refused} refused"

    scheduler = ExportScheduler(
        fake,
        clock=clock.clock,
        sleep=sleep,
        interval=5,
        timeout=timeout,
        max_concurrent=cap,
        utc_now=utc_now,
    )
    requests = [request(n) for n in range(count)]
    pending: list[dict[str, Any]] = [
        {"export": dict(saved[n])} if saved and n in saved else {} for n in range(count)
    ]
    for req, slot in zip(requests, pending, strict=True):
        scheduler.add(req, slot, "export")
    return Run(fake, scheduler, requests, pending)


def test_exports_run_ahead_and_every_url_is_in_a_state_after_its_post(clock: FakeClock) -> None:
    run = make_run(clock, 12, cap=10)
    results = run.take_all()
    assert all(r.manifest is not None for r in results)
    assert run.graph.posts == [r.where for r in run.requests]  # in the streams' order
    assert run.graph.most_running == 10
    # Two rounds of 10 s (10 at once, then 2), each finished op noticed within a poll.
    assert clock.now - 1000 <= 2 * 10 + 2 * 1
    # A STATE after each 202, holding that URL and every one before it.
    first_states = run.states[:10]
    assert [sum(u is not None for u in s) for s in first_states] == list(range(1, 11))
    assert run.scheduler.posts == 12
    assert "12 started, 0 resumed, at most 10 in flight" in run.scheduler.summary_line()


def test_throttled_posts_ride_through_without_failing(clock: FakeClock) -> None:
    run = make_run(clock, 9, cap=10, accept_cap=3)
    results = run.take_all()
    assert [r.manifest is not None for r in results] == [True] * 9
    assert run.graph.refused > 0  # the service said 429 …
    assert len(run.graph.posts) == 9  # … and every export was accepted once, none failed
    assert run.graph.most_running == 3
    assert run.graph.refused <= (clock.now - 1000) / 2 + 1  # one probe per Retry-After
    assert clock.now - 1000 <= 3 * (10 + 2 + 1)  # ceil(9 / 3) exports' time, plus polls


def test_queued_posts_ride_through_and_few_wait_at_the_service(clock: FakeClock) -> None:
    run = make_run(clock, 8, cap=10, run_cap=2)
    results = run.take_all()
    assert all(r.manifest is not None for r in results)
    assert run.graph.most_running == 2
    assert max(run.graph.queued_at_posts) <= 2  # at most two wait notStarted at Graph
    assert clock.now - 1000 <= 4 * (10 + 1) + 2


def test_one_5000_and_one_failure_among_several_in_flight(clock: FakeClock) -> None:
    outcomes = {request(1).where: "5000", request(3).where: "failed"}
    run = make_run(clock, 6, outcomes=outcomes)
    first = run.scheduler.result(run.requests[0], run.write_state)
    assert first.manifest is not None
    no_data = run.scheduler.result(run.requests[1], run.write_state)
    assert no_data.manifest is None
    assert no_data.message == "No data available"
    assert run.scheduler.result(run.requests[2], run.write_state).manifest is not None
    with pytest.raises(ExportFailedError, match=r"G000000003.*'failed'"):
        run.scheduler.result(run.requests[3], run.write_state)
    # The failed operation left the state (the next run starts anew); the ones still in
    # flight or not yet taken stay there, to be resumed by the next run.
    assert run.states[-1][3] is None
    assert run.states[-1][4] is not None
    assert run.states[-1][5] is not None


def test_each_operation_has_its_own_deadline_from_its_post(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    run = make_run(clock, 2, cap=1, timeout=15, durations={request(1).where: 1000})
    assert run.scheduler.result(run.requests[0], run.write_state).manifest is not None
    started = clock.now  # the second is POSTed only once the first ended (cap 1)
    with pytest.raises(ExportTimeoutError, match=r"after 15 s \(poll_timeout_seconds=15\)"):
        run.scheduler.result(run.requests[1], run.write_state)
    assert clock.now - started == pytest.approx(15, abs=1)
    assert run.states[-1][1] is not None  # kept: the next run resumes polling it
    assert "G000000001 (full): export timed out after 15 s (operation op1)" in caplog.text


def test_an_operation_gone_before_its_turn_is_exported_again(clock: FakeClock) -> None:
    run = make_run(clock, 3, outcomes={request(2).where: "gone"})
    run.scheduler.result(run.requests[0], run.write_state)
    # Export 2's operation was gone when it ended: POSTed again at once, its new URL saved.
    assert url(run.pending[2]) == f"{OPS}/op3"
    saved = [s[2] for s in run.states]
    assert saved[2] == f"{OPS}/op2"  # the STATE after its 202
    assert None in saved[3:]  # dropped from STATE when it was gone, then the new one saved
    assert saved[-1] == f"{OPS}/op3"
    run.scheduler.result(run.requests[1], run.write_state)
    result = run.scheduler.result(run.requests[2], run.write_state)
    assert result.manifest is not None
    assert run.graph.posts.count(request(2).where) == 2


def test_a_succeeded_export_is_read_again_at_its_turn_for_a_fresh_manifest(
    clock: FakeClock,
) -> None:
    run = make_run(clock, 2)
    run.scheduler.result(run.requests[0], run.write_state)
    clock.sleep(100)
    reads_before_its_turn = len(run.graph.reads)
    run.scheduler.result(run.requests[0 + 1], run.write_state)
    # Export 1 ended while export 0 was taken; its turn read it once more.
    assert run.graph.reads[reads_before_its_turn:] == [request(1).where]


def test_a_finished_export_read_again_after_its_deadline_rides_through_a_503(
    clock: FakeClock,
) -> None:
    run = make_run(clock, 3, timeout=60)
    run.scheduler.result(run.requests[0], run.write_state)  # all three succeed meanwhile
    clock.sleep(120)  # partition 0's blobs download: 130 s since the POSTs
    run.graph.blips = {request(1).where: 1, request(2).where: 6}
    assert run.scheduler.result(run.requests[1], run.write_state).manifest is not None
    # No deadline once it ended, but its failures in a row are bounded.
    with pytest.raises(TransientHTTPError, match="operation poll failed 6 times in 31 s: "):
        run.scheduler.result(run.requests[2], run.write_state)


def test_posts_refused_with_none_of_ours_running_fail_after_the_timeout(
    clock: FakeClock,
) -> None:
    run = make_run(clock, 2, timeout=60, accept_cap=0)
    with pytest.raises(
        ExportTimeoutError,
        match=r"G000000000 \(full\): Graph refused export requests \(429\) for 60 s with none "
        r"of ours running \(poll_timeout_seconds=60\)",
    ):
        run.scheduler.result(run.requests[0], run.write_state)
    assert clock.now - 1000 == pytest.approx(60, abs=2)
    assert run.graph.refused <= 31  # one POST per Retry-After (2 s)


def test_a_resumed_operation_counts_its_deadline_and_time_from_its_post(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    started = (NOW - timedelta(seconds=50)).isoformat()
    saved = {n: {"operation_url": f"{OPS}/op{n}", "started_at": started} for n in range(2)}
    run = make_run(clock, 2, timeout=60, saved=saved)
    run.graph.ops["op0"] = Op(request(0).where, 950, 950, 1005)  # the last run POSTed both
    run.graph.ops["op1"] = Op(request(1).where, 950, 950, 5000)
    assert run.scheduler.result(run.requests[0], run.write_state).manifest is not None
    assert "G000000000 (full): export succeeded after 55 s" in caplog.text
    with pytest.raises(ExportTimeoutError, match=r"still running after 60 s"):
        run.scheduler.result(run.requests[1], run.write_state)
    assert clock.now - 1000 == pytest.approx(10, abs=1)  # 60 s from its POST, not the resume


def test_a_partition_taking_its_export_twice_is_refused(clock: FakeClock) -> None:
    run = make_run(clock, 1)
    run.scheduler.result(run.requests[0], run.write_state)
    with pytest.raises(PartnerBillingError, match=r"G000000000 \(full\): its export was taken"):
        run.scheduler.result(run.requests[0], run.write_state)


def test_saved_operations_are_resumed_not_posted(clock: FakeClock) -> None:
    graph_op = f"{OPS}/op0"
    run = make_run(clock, 2, saved={0: {"operation_url": graph_op}})
    run.graph.ops["op0"] = Op(request(0).where, 900, 900, 1005)  # started by the last run
    results = run.take_all()
    assert all(r.manifest is not None for r in results)
    assert run.graph.posts == [request(1).where]
    assert "1 started, 1 resumed" in run.scheduler.summary_line()


def test_a_saved_url_off_graph_origin_is_dropped_and_fails_at_its_turn(
    clock: FakeClock,
) -> None:
    run = make_run(clock, 1, saved={0: {"operation_url": "https://evil.test/op"}})
    with pytest.raises(StateError, match="check who can write your state"):
        run.scheduler.result(run.requests[0], run.write_state)
    assert run.pending[0] == {}
    assert run.states == [[None]]
    assert run.graph.posts == []


def test_progress_lines_while_waiting(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    run = make_run(clock, 5, cap=10, run_cap=2, duration=100)
    run.take_all()
    lines = [r.message for r in caplog.records if r.message.startswith("Exports:")]
    assert len(lines) == 4  # once a minute of the 4 min 20 s waited
    assert lines[0] == (
        "Exports: 3 running (1 not started by Graph yet), 0 finished, 2 waiting to start; "
        "the longest has run 1 min 0 s; waiting for billed_usage invoice G000000000 (full)"
    )
    started = [r.message for r in caplog.records if "export started" in r.message]
    ended = [r.message for r in caplog.records if "export succeeded after" in r.message]
    assert len(started) == len(ended) == 5
    assert run.scheduler.waited_seconds == pytest.approx(clock.now - 1000)


def test_an_operation_resumed_once_already_is_asked_for_again(clock: FakeClock) -> None:
    # The second was resumed by a run that ended before its turn.
    saved: dict[int, dict[str, Any]] = {
        0: {"operation_url": f"{OPS}/op0"},
        1: {"operation_url": f"{OPS}/op1", "resumed": 1},
    }
    run = make_run(clock, 2, saved=saved)
    for n in range(2):
        run.graph.ops[f"op{n}"] = Op(request(n).where, 900, 900, 1005)
    assert run.pending[0]["export"]["resumed"] == 1  # marked the moment it is resumed
    assert run.pending[1] == {}  # dropped: no run polls it again
    results = run.take_all()
    assert all(r.manifest is not None for r in results)
    assert run.graph.posts == [request(1).where]  # a snapshot that old is asked for again


def test_a_sync_starts_every_export_ahead_and_drops_operations_no_longer_exported(
    graph: FakeGraphService,
) -> None:
    for invoice in ("G000000001", "G000000002"):
        graph.add(invoice, Export({"p-0.json.gz": gz_lines('{"CustomerId": "c"}')}, etag=invoice))
    stale = {"operation_url": f"{OPS}/stale", "started_at": "2026-01-01T00:00:00+00:00"}
    state = {
        "bookmarks": {
            "billed_usage": {  # an invoice no longer in invoice_ids
                "partitions": [
                    {
                        "context": {"invoice_id": "G000000009", "attribute_set": "full"},
                        "pending_operations": {"export": stale},
                    }
                ]
            },
            "unbilled_usage": {  # a stream not selected
                "partitions": [
                    {
                        "context": {"currency": "USD", "attribute_set": "full"},
                        "pending_operations": {"current": stale},
                    }
                ]
            },
        }
    }
    result = run_tap(
        base_config(invoice_ids=["G000000001", "G000000002"]),
        state=state,
        streams=("billed_usage",),
        ahead=True,
    )
    states = [m["value"] for m in result.messages if m["type"] == "STATE"]
    first_record = next(i for i, m in enumerate(result.messages) if m["type"] == "RECORD")
    before = json.dumps([m for m in result.messages[:first_record] if m["type"] == "STATE"])
    # Both exports were POSTed, and their URLs in a STATE, before the first record.
    assert len(graph.posts) == 2
    assert all(op in before for op in graph.operations)
    assert "stale" not in json.dumps(states[0])  # dropped before anything was asked
    assert len(result.records("billed_usage")) == 2
    assert "operation_url" not in json.dumps(states[-1])  # all taken, none left


class _StoppedInPreflight(TapPartnerBilling):
    """The tap, stopped (a SIGTERM, a 403) while its preflight POSTs exports ahead."""

    def preflight(self) -> None:
        msg = "billed_usage invoice G1: export request answered HTTP 403"
        raise MissingPermissionError(msg)


def test_a_run_stopped_in_its_preflight_still_ends_with_its_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    config = SimpleNamespace(config=base_config(invoice_ids=["G000000001"]), parse_env=False)
    with pytest.raises(SystemExit):
        invoke(
            _StoppedInPreflight, logging.getLogger("test"), config=config, state=None, catalog=None
        )
    messages = [r.getMessage() for r in caplog.records]
    assert any("answered HTTP 403" in m for m in messages)
    assert any(m.startswith("Run summary billed_usage") for m in messages)
