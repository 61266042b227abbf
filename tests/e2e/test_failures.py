"""Failures that end a run: a clear error, completed partitions kept, the next run finishes."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.dates import shift_month
from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig, this_month
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import MeltanoProject, PipedRun, pipe_tap, postgres_target, tap_command
from tests.e2e.test_faults import assert_live_rows_equal_truth

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e
OLD, RECENT = "G000000401", "G000000402"


class Runner:
    """Runs the tap into target-postgres again and again, carrying the state along."""

    def __init__(
        self,
        server: SandboxServer,
        meltano: MeltanoProject,
        pg: Postgres,
        folder: Path,
        **config: Any,
    ) -> None:
        self.tap = tap_command(server, folder, billing_periods=["current"], **config)
        self.schema = re.sub(r"\W", "_", folder.name.lower())[:40]
        self.target = postgres_target(meltano, pg, self.schema, folder)
        self.env = {**os.environ, "REQUESTS_CA_BUNDLE": str(server.tls.ca_bundle)}
        self.state_file = folder / "state.json"
        self.state: dict[str, Any] | None = None

    def run(self) -> PipedRun:
        command = list(self.tap)
        if self.state is not None:
            self.state_file.write_text(json.dumps(self.state))
            command += ["--state", str(self.state_file)]
        result = pipe_tap(command, self.target, self.env)
        if result.state is not None:
            self.state = result.state
        return result

    def billed_partition(self, stream: str, invoice: str) -> dict[str, Any]:
        assert self.state is not None
        for partition in self.state["bookmarks"][stream]["partitions"]:
            if partition["context"]["invoice_id"] == invoice:
                return dict(partition)
        return {}


def exported(sb: Sandbox, since: int, stream: str) -> set[str | None]:
    """Invoices the billed exports of ``stream``'s dataset were asked for since ``since``."""
    dataset = stream.removeprefix("billed_")
    return {
        e.detail for e in sb.faults.requests("export")[since:] if f"/{dataset}/billed/" in e.path
    }


@pytest.fixture
def server(tls: TlsFiles) -> Iterator[SandboxServer]:
    config = SandboxConfig(
        retry_after_seconds=0,
        invoices={
            OLD: InvoiceSpec(shift_month(this_month(), -3), 200, 2),
            RECENT: InvoiceSpec(shift_month(this_month(), -2), 150, 2),
        },
        legacy_invoices={},
        unbilled={("current", "USD"): (80, 1)},
    )
    running = SandboxServer(Sandbox(config), tls).start()
    yield running
    running.stop()


def test_failed_operation_stops_the_run_and_keeps_completed_partitions(
    server: SandboxServer, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    sb = server.sandbox
    sb.failing[RECENT] = "7001"
    runner = Runner(server, meltano, postgres, tmp_path)
    failed = runner.run()
    assert failed.returncode != 0
    # The first billed stream the SDK syncs (it goes by name) meets the failure.
    match = re.search(
        r"(billed_\w+) invoice G000000402 \(full\): operation [0-9a-f-]{36} ended with "
        r"status 'failed'; Graph error 7001",
        failed.tap_output,
    )
    assert match, failed.tap_output[-3000:]
    stream = match.group(1)
    assert "etag" in runner.billed_partition(stream, OLD), "the completed invoice keeps its state"
    assert "etag" not in runner.billed_partition(stream, RECENT)

    del sb.failing[RECENT]
    posts = len(sb.faults.requests("export"))
    assert runner.run().returncode == 0
    asked = exported(sb, posts, stream)
    assert OLD not in asked  # done, and not recent enough to be re-checked
    assert RECENT in asked
    assert_live_rows_equal_truth(postgres, runner.schema, sb)


def run_into_the_deadline(runner: Runner, sb: Sandbox) -> tuple[str, str]:
    """A run whose first export never finishes: (the stream that met it, the saved URL)."""
    sb.config.polls_before_success = 10_000
    failed = runner.run()
    assert failed.returncode != 0
    match = re.search(
        r"(billed_\w+) invoice G000000401 \(full\): operation [0-9a-f-]{36} still running",
        failed.tap_output,
    )
    assert match, failed.tap_output[-3000:]
    assert "poll_timeout_seconds=2); the next run resumes polling it" in failed.tap_output
    partition = runner.billed_partition(match.group(1), OLD)
    sb.config.polls_before_success = 0
    return match.group(1), partition["pending_operations"]["export"]["operation_url"]


def test_poll_deadline_keeps_the_operation_and_the_next_run_resumes_it(
    server: SandboxServer, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    sb = server.sandbox
    runner = Runner(server, meltano, postgres, tmp_path, poll_timeout_seconds=2)
    stream, pending = run_into_the_deadline(runner, sb)
    posts = len(sb.faults.requests("export"))
    assert runner.run().returncode == 0
    assert OLD not in exported(sb, posts, stream), "the saved operation was resumed"
    polled = {e.path for e in sb.faults.requests("operation")}
    assert any(pending.endswith(path) for path in polled)
    assert_live_rows_equal_truth(postgres, runner.schema, sb)


def test_an_operation_gone_on_resume_starts_a_new_export(
    server: SandboxServer, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    sb = server.sandbox
    runner = Runner(server, meltano, postgres, tmp_path, poll_timeout_seconds=2)
    stream, _ = run_into_the_deadline(runner, sb)
    sb.expire_operations()  # the saved operation answers 410 Gone from now on
    posts = len(sb.faults.requests("export"))
    assert runner.run().returncode == 0
    assert any(e.status == 410 for e in sb.faults.requests("operation"))
    assert OLD in exported(sb, posts, stream), "a new export was started"
    assert_live_rows_equal_truth(postgres, runner.schema, sb)
