"""Kill the tap while many exports run; the next run polls them instead of starting them again.

Exports take 2 s of wall time in the sandbox, at most six at once (429 beyond). The tap is
piped into target-postgres and SIGKILLed a few messages in: the STATE messages of the early
burst (one per export POSTed) are all it wrote. The resumed run must poll every operation
whose URL was in the last STATE the target emitted, POST none of those partitions again,
and leave every line in the warehouse exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.dates import shift_month
from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig, this_month
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import pipe_tap, postgres_target, tap_command, tap_into_target
from tests.e2e.ledger import assert_warehouse_equals_sandbox, postgres_warehouse

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.e2e.conftest import MeltanoProject
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e
SCHEMA = "resumed"
KILL_AFTER = 9  # messages: inside the burst of STATE messages, exports running
SIGTERM_EXIT = 143


def saved_operations(state: dict[str, Any]) -> dict[str, str]:
    """Operation id → where its URL was saved (stream and partition), from a STATE."""
    saved = {}
    for stream, bookmark in state.get("bookmarks", {}).items():
        for partition in bookmark.get("partitions") or []:
            for slot, entry in (partition.get("pending_operations") or {}).items():
                op_id = entry["operation_url"].rstrip("/").rsplit("/", 1)[-1]
                saved[op_id] = f"{stream} {partition['context']} {slot}"
    return saved


def test_a_run_killed_while_exports_run_polls_them_when_resumed(
    tls: TlsFiles, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    month = shift_month(this_month(), -2)
    invoices = {f"G00000020{n}": InvoiceSpec(month, 300 + 40 * n, 2) for n in range(4)}
    config = SandboxConfig(
        retry_after_seconds=1,
        invoices=invoices,
        legacy_invoices={},
        export_seconds=2,
        max_running_exports=6,
    )
    server = SandboxServer(Sandbox(config), tls).start()
    try:
        sb = server.sandbox
        tap_cmd = tap_command(server, tmp_path, max_parallel_downloads=2)
        target_cmd = postgres_target(meltano, postgres, SCHEMA, tmp_path)
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        killed = pipe_tap(tap_cmd, target_cmd, env, KILL_AFTER)
        assert killed.killed
        assert killed.state is not None
        saved = saved_operations(killed.state)
        assert len(saved) >= 4, (saved, killed.tap_output[-3000:])
        # Which partition each saved operation was POSTed for (the sandbox's request log).
        posts = sb.faults.requests("export")
        saved_partitions = {e.export for e in posts if e.operation in saved}
        assert len(saved_partitions) == len(saved)
        polls_before = sb.faults.polls()

        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(killed.state))
        state, _, was_killed = tap_into_target(
            [*tap_cmd, "--state", str(state_file)], target_cmd, env, None
        )
        assert not was_killed
        assert state is not None
        polls_after = sb.faults.polls()
        for op_id, where in saved.items():
            assert polls_after[op_id] > polls_before[op_id], f"{where}: not polled"
        posted_again = {
            e.export for e in sb.faults.requests("export")[len(posts) :] if e.status == 202
        }
        assert posted_again.isdisjoint(saved_partitions), posted_again & saved_partitions
        assert saved_operations(state) == {}  # nothing left pending after a complete run
        assert_warehouse_equals_sandbox(postgres_warehouse(postgres, SCHEMA), sb)
    finally:
        server.stop()


def test_sigterm_while_exports_run_leaves_every_one_in_the_last_state(
    tls: TlsFiles, tmp_path: Path
) -> None:
    config = SandboxConfig(retry_after_seconds=1, export_seconds=60, max_running_exports=5)
    server = SandboxServer(Sandbox(config), tls).start()
    try:
        sb = server.sandbox
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        tap = subprocess.Popen(
            tap_command(server, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 60
        while len(sb.faults.started_exports()) < 5 or len(sb.faults.requests("export")) < 6:
            assert time.monotonic() < deadline, "the exports did not start"
            time.sleep(0.1)
        time.sleep(1.5)  # waiting: polls go on
        tap.send_signal(signal.SIGTERM)
        stdout, stderr = tap.communicate(timeout=30)
        assert tap.returncode == SIGTERM_EXIT, stderr.decode()[-3000:]
        states = [json.loads(line) for line in stdout.splitlines() if b'"STATE"' in line]
        started = {e.operation for e in sb.faults.requests("export") if e.status == 202}
        assert set(saved_operations(states[-1]["value"])) == started
        streams = {where.split()[0] for where in saved_operations(states[-1]["value"]).values()}
        assert len(streams) >= 2
        assert b"Stopped by SIGTERM" in stderr
    finally:
        server.stop()
