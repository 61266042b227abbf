"""The run-wide export scheduler (docs/scheduler.md) through the sandbox at the service's pace.

Exports take 1 s of wall time in the sandbox (its latency mode, docs/sandbox-latency.md), and
the tap runs as the command line, its stdout read whole. The first test makes a service that
runs one export at a time and queues the rest (``when_busy=queue``) meet a tap capped at two
in flight; the second plants a ``5000`` and another failure among several exports in flight.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter, defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.dates import shift_month
from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig, this_month
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import billed_truths, tap_command
from tests.e2e.ledger import KEYS, MONEY
from tests.e2e.test_resume_exports import saved_operations

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.faults import LoggedRequest
    from tap_partner_billing.sandbox.pace import ExportRun
    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = pytest.mark.e2e
CAP = 2  # the tap's max_concurrent_exports in the first test


class Run:
    """One tap run to its end: exit status, stdout's messages (numbers as Decimal), stderr."""

    def __init__(self, server: SandboxServer, folder: Path, **config: Any) -> None:
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(server.tls.ca_bundle)}
        command = tap_command(server, folder, billing_periods=["current"], **config)
        done = subprocess.run(
            command,
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        self.returncode = done.returncode
        self.stderr = done.stderr.decode()
        self.messages = [json.loads(line, parse_float=Decimal) for line in done.stdout.splitlines()]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def last_state(self) -> dict[str, Any]:
        return next(m["value"] for m in reversed(self.messages) if m["type"] == "STATE")


def most_at_once(timeline: list[ExportRun]) -> int:
    """The most operations POSTed and not yet ended at one moment (what the tap had in flight)."""
    events = sorted([(run.posted, 1) for run in timeline] + [(run.ends, -1) for run in timeline])
    most = count = 0
    for _, step in events:  # at equal times an end (-1) sorts before a POST (+1)
        count += step
        most = max(most, count)
    return most


def polls_of(sb: Sandbox, operation: str | None) -> list[LoggedRequest]:
    """The answered GETs of one operation (the tap's polls and reads)."""
    return [e for e in sb.faults.requests("operation") if e.operation_id == operation]


def assert_every_line_once(run: Run, sb: Sandbox) -> None:
    """Each stream's records: no key twice, and exact line counts and money per group."""
    for dataset, money in MONEY.items():
        current = sb.unbilled_truth("current", "USD", dataset=dataset)  # billing_periods
        for stream, group, truth in (
            (f"billed_{dataset}", "invoice_id", billed_truths(sb, dataset)),
            (
                f"unbilled_{dataset}",
                "billing_month",
                {sb.unbilled_month("current"): (current.line_count, current.pretax_total)},
            ),
        ):
            records = run.records(stream)
            keys = Counter(tuple(r[k] for k in KEYS[stream]) for r in records)
            assert [k for k, n in keys.items() if n > 1] == [], stream
            got: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
            for record in records:
                lines, total = got[str(record[group])]
                got[str(record[group])] = (lines + 1, total + Decimal(str(record[money])))
            assert dict(got) == truth, stream


def test_a_queueing_service_and_a_low_cap_still_deliver_every_line_once(
    tls: TlsFiles, tmp_path: Path
) -> None:
    month = shift_month(this_month(), -2)
    config = SandboxConfig(
        retry_after_seconds=1,
        invoices={f"G00000070{n}": InvoiceSpec(month, 60 + 10 * n, 1) for n in range(2)},
        legacy_invoices={},
        export_seconds=1,
        max_running_exports=1,
        when_busy="queue",
    )
    server = SandboxServer(Sandbox(config), tls).start()
    try:
        sb = server.sandbox
        run = Run(server, tmp_path, max_concurrent_exports=CAP)
        assert run.returncode == 0, run.stderr[-3000:]
        timeline = sb.pace.timeline()
        # 2 invoices x 2 billed datasets + the current period x 2 unbilled datasets.
        assert len(timeline) == 6
        assert len(timeline) > (config.max_running_exports or 0)
        assert all(e.status == 202 for e in sb.faults.requests("export"))  # queued, never 429
        assert any(r.started is not None and r.started > r.posted for r in timeline)  # queued
        assert most_at_once(timeline) == CAP, timeline
        assert_every_line_once(run, sb)
        assert saved_operations(run.last_state()) == {}
    finally:
        server.stop()


def test_a_5000_and_a_failure_among_exports_in_flight(tls: TlsFiles, tmp_path: Path) -> None:
    old, recent = shift_month(this_month(), -4), shift_month(this_month(), -2)
    done, no_data, failing, later = (f"G00000080{n}" for n in range(1, 5))
    config = SandboxConfig(
        retry_after_seconds=1,
        invoices={
            done: InvoiceSpec(old, 40, 1),
            no_data: InvoiceSpec(old, 50, 1),
            failing: InvoiceSpec(recent, 60, 1),
            later: InvoiceSpec(recent, 70, 1),
        },
        legacy_invoices={},
        export_seconds=1,
    )
    server = SandboxServer(Sandbox(config), tls).start()
    try:
        sb = server.sandbox
        sb.failing[no_data] = "5000"
        sb.failing[failing] = "7001"
        run = Run(server, tmp_path)
        assert run.returncode == 1, run.stderr[-3000:]
        # The first stream synced (by name) meets the failure at that partition's turn.
        assert re.search(
            rf"billed_reconciliation invoice {failing} \(full\): operation [0-9a-f-]{{36}} "
            r"ended with status 'failed'; Graph error 7001",
            run.stderr,
        ), run.stderr[-3000:]
        state = run.last_state()
        partitions = {
            p["context"]["invoice_id"]: p
            for p in state["bookmarks"]["billed_reconciliation"]["partitions"]
        }
        assert "etag" in partitions[done]  # completed and bookmarked before the failure
        assert {r["invoice_id"] for r in run.records("billed_reconciliation")} == {done}
        # The 5000 of an invoice past the re-check window: remembered, not fatal.
        assert partitions[no_data]["no_data"]["code"] == "5000"
        assert "etag" not in partitions[failing]
        # Every operation not taken when the run stopped is in the last STATE, except those
        # seen failed (7001): a failed operation leaves state (the next run exports again).
        posted = [e for e in sb.faults.requests("export") if e.status == 202]
        taken = {("reconciliation/billed", i) for i in (done, no_data, failing)}
        in_flight = {e.operation for e in posted if e.export not in taken}
        assert len(in_flight) >= 3, posted
        ends = {r.operation_id: r.ends for r in sb.pace.timeline()}
        seen_failed = {
            e.operation
            for e in posted
            if e.detail == failing
            and any(p.at >= ends[p.operation_id] for p in polls_of(sb, e.operation))
        }
        assert set(saved_operations(state)) == in_flight - seen_failed
    finally:
        server.stop()
