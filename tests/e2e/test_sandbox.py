"""The tap's CLI against the sandbox over real HTTPS: --test, discovery, a whole sync, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.faults import Fault
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import billed_truths, expected_counts, record_counts

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = pytest.mark.e2e


def run_cli(
    server: SandboxServer, tmp_path: Path, *args: str, **config: object
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(server.tap_config(**config)), encoding="utf-8")
    env = {
        **os.environ,
        "REQUESTS_CA_BUNDLE": str(server.tls.ca_bundle),
        "TAP_PARTNER_BILLING_LOGLEVEL": "DEBUG",
    }
    return subprocess.run(
        [sys.executable, "-m", "tap_partner_billing", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_cli_test_acquires_a_token_and_starts_no_export(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_cli(sandbox, tmp_path, "--test")
    assert result.returncode == 0, result.stderr
    assert "the invoice list shows 5 invoice(s)" in result.stderr
    steps = {entry.step for entry in sandbox.sandbox.faults.requests()}
    assert steps == {"openid", "token", "operation", "invoices"}
    before = len(sandbox.sandbox.faults.requests())
    without = run_cli(sandbox, tmp_path, "--test", discover_invoices=False)
    assert without.returncode == 0, without.stderr
    assert "Connection test passed (3 checks); no export was started\n" in without.stderr
    assert "invoices" not in {e.step for e in sandbox.sandbox.faults.requests()[before:]}


def test_cli_test_with_a_wrong_secret_fails_clearly(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(sandbox, tmp_path, "--test", client_secret="wrong-secret-value")
    assert result.returncode == 1
    assert "invalid_client" in result.stderr
    assert "wrong-secret-value" not in result.stderr + result.stdout


def test_no_secret_in_any_output_at_debug_level(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.sandbox.faults.add(Fault("blob", status=503, times=1))
    result = run_cli(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    everything = result.stdout + result.stderr
    assert "sig=" not in everything
    assert "sandbox-client-secret" not in everything
    assert "Bearer ey" not in everything
    issued = list(sandbox.sandbox.tokens.issued())
    assert issued
    assert not any(token in everything for token in issued)
    assert "retrying" in result.stderr  # the 503 on a blob was survived within the run


@pytest.fixture
def prompt_sandbox(tls: TlsFiles) -> Iterator[SandboxServer]:
    """The sandbox, its operations succeeding at the first poll (no second-long waits)."""
    config = SandboxConfig(retry_after_seconds=0, polls_before_success=0)
    server = SandboxServer(Sandbox(config), tls).start()
    yield server
    server.stop()


@pytest.mark.contract
def test_a_sync_delivers_every_line_exactly(prompt_sandbox: SandboxServer, tmp_path: Path) -> None:
    # The sandbox sync scripts/test runs on every Python the package claims: the command
    # line, TLS, tokens, the invoice list, exports, blobs and typing, in the version's venv.
    result = run_cli(prompt_sandbox, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sb = prompt_sandbox.sandbox
    assert record_counts(result.stdout) == expected_counts(sb)
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    dates: set[str] = set()
    for line in result.stdout.splitlines():
        message = json.loads(line, parse_float=Decimal)
        stream = message.get("stream", "")
        if message["type"] != "RECORD" or not stream.startswith("billed_"):
            continue
        record = message["record"]
        money = record["billing_pre_tax_total" if stream == "billed_usage" else "subtotal"]
        total = totals[stream, record["invoice_id"]]
        total[0] += 1
        total[1] += Decimal(money)  # exact text, never a float
        dates.add(record["pc_to_bc_exchange_rate_date"])  # written with Z by the sandbox
    for dataset in ("usage", "reconciliation"):
        got = {i: (int(n), t) for (s, i), (n, t) in totals.items() if s == f"billed_{dataset}"}
        assert got == billed_truths(sb, dataset), dataset
    assert dates
    assert all(d.endswith("T00:00:00+00:00") for d in dates), dates


def test_discover_and_catalog_round_trip(sandbox: SandboxServer, tmp_path: Path) -> None:
    discovered = run_cli(sandbox, tmp_path, "--discover")
    assert discovered.returncode == 0
    catalog = json.loads(discovered.stdout)
    assert {s["stream"] for s in catalog["streams"]} == set(expected_counts(sandbox.sandbox))
    (tmp_path / "catalog.json").write_text(discovered.stdout, encoding="utf-8")
    synced = run_cli(sandbox, tmp_path, "--catalog", str(tmp_path / "catalog.json"))
    assert synced.returncode == 0
    assert record_counts(synced.stdout) == expected_counts(sandbox.sandbox)
    state_path = tmp_path / "state.json"
    state_path.write_text(
        json.dumps(
            json.loads([line for line in synced.stdout.splitlines() if '"STATE"' in line][-1])[
                "value"
            ]
        )
    )
    again = run_cli(
        sandbox, tmp_path, "--catalog", str(tmp_path / "catalog.json"), "--state", str(state_path)
    )
    # Nothing changed: only the invoice list (a full list every run) is emitted again.
    assert record_counts(again.stdout) == {"invoices": expected_counts(sandbox.sandbox)["invoices"]}


def test_sandbox_faults_are_survived_within_the_run(sandbox: SandboxServer, tmp_path: Path) -> None:
    faults = sandbox.sandbox.faults
    faults.add(Fault("token", status=503, times=1))
    faults.add(Fault("export", status=429, times=1, retry_after=1))
    faults.add(Fault("operation", status=504, times=1))
    faults.add(Fault("blob", drop_after_bytes=2000, times=1))
    result = run_cli(sandbox, tmp_path, max_parallel_downloads=1)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if '"RECORD"' in line]
    sb = sandbox.sandbox
    assert record_counts(result.stdout) == expected_counts(sb)
    keys = [
        (
            r["stream"],
            r["record"].get("invoice_id"),
            r["record"].get("billing_month"),
            r["record"]["line_ordinal"],
        )
        for r in records
        if r["stream"] != "invoices"
    ]
    assert len(set(keys)) == len(keys)  # no key twice within the run
    log = faults.requests()
    for step, status in (("token", 503), ("export", 429), ("operation", 504)):
        assert any(e.step == step and e.status == status for e in log), step
    ranged = [e for e in log if e.step == "blob" and e.range]
    assert len(ranged) == 1
    assert ranged[0].status == 206  # the dropped blob resumed, not re-read
    blob_paths = [e.path for e in log if e.step == "blob"]
    assert len(blob_paths) == len(set(blob_paths)) + 1  # only the resumed blob was asked twice


def test_sas_refused_mid_partition_gets_a_fresh_one(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.sandbox.faults.add(Fault("blob", status=403, times=2))
    result = run_cli(sandbox, tmp_path, max_parallel_downloads=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "a fresh one came with the operation" in result.stderr
    sb = sandbox.sandbox
    assert record_counts(result.stdout) == expected_counts(sb)
    refused = [e for e in sb.faults.requests("blob") if e.status == 403]
    assert len(refused) == 2
