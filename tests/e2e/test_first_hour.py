"""The first hour with a tenant, through the CLI against the sandbox: --test, errors, signals."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.errors import PERMISSION_HINT
from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.faults import Fault
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import expected_counts, record_counts

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = pytest.mark.e2e


def tap(
    server: SandboxServer,
    folder: Path,
    *args: str,
    level: str = "INFO",  # the log level
    **config: Any,
) -> subprocess.CompletedProcess[str]:
    """The tap's CLI with a config pointing at ``server`` (``config`` overrides; None drops)."""
    settings = {k: v for k, v in server.tap_config(**config).items() if v is not None}
    path = folder / "config.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    env = {
        **os.environ,
        "REQUESTS_CA_BUNDLE": str(server.tls.ca_bundle),
        "TAP_PARTNER_BILLING_LOGLEVEL": level,
    }
    return subprocess.run(
        [sys.executable, "-m", "tap_partner_billing", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ERROR log lines (the SDK's format: time | level | logger | message)."""
    return [line for line in result.stderr.splitlines() if "| ERROR" in line]


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, exactly one ERROR line, no traceback; return that line's message."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    [line] = errors(result)
    message = line.split(" | ", 3)[-1]
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr[-3000:])
    return message


def steps(server: SandboxServer) -> list[tuple[str, int]]:
    return [(e.step, e.status) for e in server.sandbox.faults.requests()]


@pytest.fixture
def without_role(tls: TlsFiles) -> Iterator[SandboxServer]:
    """A sandbox whose Graph tokens lack PartnerBilling.Read.All (no admin consent)."""
    config = SandboxConfig(retry_after_seconds=0, graph_roles=())
    server = SandboxServer(Sandbox(config), tls).start()
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_test_proves_each_step_and_starts_no_export(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = tap(sandbox, tmp_path, "--test")
    assert result.returncode == 0, result.stderr
    for proved in (
        "Connection test: a Graph token with the PartnerBilling.Read.All role was acquired",
        "Connection test: Graph answered 404 for an unknown export operation, as it should",
        "Connection test: a Partner Center token was acquired and the invoice list shows 5",
        "Connection test passed (3 checks); no export was started",
    ):
        assert proved in result.stderr
    seen = steps(sandbox)
    assert ("operation", 404) in seen
    assert {step for step, _ in seen} == {"openid", "token", "operation", "invoices"}
    assert result.stdout == ""


def test_test_without_the_role_names_the_permission_and_consent(
    without_role: SandboxServer, tmp_path: Path
) -> None:
    result = tap(without_role, tmp_path, "--test")
    message = assert_one_clear_error(result)
    assert message.startswith(
        "Connection test failed: the Graph token of client sandbox-client-id lacks the "
        "PartnerBilling.Read.All permission (roles: none)"
    )
    assert PERMISSION_HINT in message
    assert "Grant admin consent" in message
    assert "API permissions" in message
    assert {step for step, _ in steps(without_role)} == {"openid", "token"}


def test_a_run_without_the_role_stops_before_any_export(
    without_role: SandboxServer, tmp_path: Path
) -> None:
    result = tap(without_role, tmp_path)
    assert_one_clear_error(result, PERMISSION_HINT)
    assert not [s for s, _ in steps(without_role) if s == "export"]


def test_an_export_answered_403_gets_the_permission_hint(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The token has the role, but Graph still refuses (consent revoked during the run).
    sandbox.sandbox.faults.add(Fault("export", status=403, times=1))
    result = tap(sandbox, tmp_path)
    # The exports start before the first stream syncs: one message, no stream's error line.
    message = assert_one_clear_error(result)
    assert message.startswith("billed_reconciliation invoice ")
    assert "export request answered HTTP 403" in message
    assert message.endswith(PERMISSION_HINT)
    assert ("export", 403) in steps(sandbox)


def test_test_with_graph_unreachable_says_so(sandbox: SandboxServer, tmp_path: Path) -> None:
    graph = f"https://127.0.0.1:{closed_port()}/v1.0"
    result = tap(sandbox, tmp_path, "--test", graph_url=graph)
    message = assert_one_clear_error(result)
    origin = graph.removesuffix("/v1.0")
    assert re.sub(r"in \d+ s:", "in N s:", message) == (
        f"Connection test failed: Graph at {graph} failed 3 times in N s: {origin}: connection "
        "refused (nothing accepts connections on that port); check graph_url and the network "
        "path to it (proxy, firewall)"
    )
    assert "Connection test passed" not in result.stderr


def test_a_wrong_secret_is_one_message_in_test_and_run(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    expected = (
        "Entra ID refused a token for client sandbox-client-id in tenant contoso-demo.example: "
        "HTTP 401, invalid_client: AADSTS7000215: Invalid client secret provided."
    )
    tested = tap(sandbox, tmp_path, "--test", client_secret="wrong-secret-value")
    assert assert_one_clear_error(tested) == f"Connection test failed: {expected}"
    run = tap(sandbox, tmp_path, client_secret="wrong-secret-value")
    assert assert_one_clear_error(run) == expected
    assert "wrong-secret-value" not in tested.stderr + run.stderr + run.stdout
    assert "export" not in {step for step, _ in steps(sandbox)}
    debug = tap(sandbox, tmp_path, level="DEBUG", client_secret="wrong-secret-value")
    assert "Traceback" in debug.stderr  # the traceback is there at DEBUG only
    assert "wrong-secret-value" not in debug.stderr + debug.stdout


def test_every_config_problem_is_listed_without_a_traceback(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    bad: dict[str, Any] = {
        "graph_url": "http://graph.example/v1.0",
        "client_secret": None,
        "start_date": "2026-13",
        "max_parallel_downloads": 0,
    }
    for args in (("--test",), ()):
        result = tap(sandbox, tmp_path, *args, **bad)
        message = assert_one_clear_error(result)
        assert "Config validation failed (4 problem(s)):" in message
        for problem in (
            "  - max_parallel_downloads: 0 is too small (at least 1)",
            (
                "  - start_date must be a billing month (YYYY-MM), a date (YYYY-MM-DD) or an ISO "
                "date-time, got '2026-13'"
            ),
            (
                "  - graph_url must be an https:// URL, got 'http://graph.example/v1.0' "
                "(it is not https)"
            ),
            "  - give exactly one of client_secret or client_certificate_path (neither is set)",
        ):
            assert problem in result.stderr
    assert steps(sandbox) == []


def test_habits_unknown_invoice_and_currency_mismatch_are_warnings(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = tap(
        sandbox,
        tmp_path,
        invoice_ids=["G999999999"],
        currency_codes=["eur"],
        start_date=f"{sandbox.sandbox.config.start_month}-15T00:00:00Z",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for warning in (
        "invoice_ids: G999999999 is not in the Partner Center invoice list; it is exported anyway",
        "currency_codes: no listed invoice is in EUR (the list shows USD)",
        "currency_codes does not list USD, a currency of the listed invoices",
        "is not the first of a month: billing months are whole",
    ):
        assert warning in result.stderr
    exported = {e.detail for e in sandbox.sandbox.faults.requests("export")}
    assert "G999999999" in exported  # still exported: the escape hatch stays
    assert {"current/EUR", "last/EUR"} <= exported  # upper-cased


def last_state(stdout: str) -> dict[str, Any]:
    states = [json.loads(line) for line in stdout.splitlines() if '"STATE"' in line]
    value: dict[str, Any] = states[-1]["value"]
    return value


def test_a_credit_note_is_asked_for_usage_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    first = tap(sandbox, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (
        "G000000003 (full): answered 5000 and documentType adjustment_note has no usage: "
        "remembered in its bookmark as having no data, not asked again" in first.stderr
    )
    state = tmp_path / "state.json"
    state.write_text(json.dumps(last_state(first.stdout)), encoding="utf-8")
    before = len(sandbox.sandbox.faults.requests("export"))
    second = tap(sandbox, tmp_path, "--state", str(state))
    assert second.returncode == 0, second.stderr[-3000:]
    asked = [e.detail for e in sandbox.sandbox.faults.requests("export")[before:]]
    usage_asks = [
        e
        for e in sandbox.sandbox.faults.requests("export")
        if e.detail == "G000000003" and "/usage/" in e.path
    ]
    assert len(usage_asks) == 1
    assert "G000000002" in asked  # the second run did ask Graph (a recent invoice)
    assert (
        "billed_usage: 1 document(s) not asked again: their exports answered 5000 (no data) "
        "when asking again could not help: G000000003; refresh_invoice_ids asks again"
        in second.stderr
    )


def metric_counts(stderr: str) -> dict[str, int]:
    """Sum of the SDK's record_count METRIC values per stream."""
    counts: dict[str, int] = {}
    for line in stderr.splitlines():
        if "METRIC: " in line and '"record_count"' in line:
            point = json.loads(line.split("METRIC: ", 1)[1])
            stream = point["tags"]["stream"]
            counts[stream] = counts.get(stream, 0) + int(point["value"])
    return counts


def test_record_counters_replication_and_summary_agree_with_the_output(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = tap(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = record_counts(result.stdout)
    assert counts == expected_counts(sandbox.sandbox)
    assert metric_counts(result.stderr) == counts  # the direct route is counted
    for name, count in counts.items():
        mode = "full_table" if name == "invoices" else "incremental"
        assert f"Beginning sync of '{name}' in {mode} mode" in result.stderr
        if name != "invoices":
            assert f"Run summary {name}: partitions " in result.stderr
            assert f"; {count} records, 0 tombstones; " in result.stderr
    assert f"Run summary invoices: {counts['invoices']} records" in result.stderr
    assert (
        "Run summary billed_usage: partitions 2 exported, 0 unchanged, 0 not re-checked, "
        "1 no data, 0 retired; " in result.stderr
    )

    # Whatever the machine's cores: in-process, and with decode workers (direct route).
    for workers in (1, 2):
        routed = tap(sandbox, tmp_path, decode_workers=workers)
        assert routed.returncode == 0, routed.stderr[-3000:]
        assert record_counts(routed.stdout) == counts, workers
        assert metric_counts(routed.stderr) == counts, workers

    batch = {"encoding": {"format": "jsonl"}, "storage": {"root": (tmp_path / "b").as_uri()}}
    batched = tap(sandbox, tmp_path, batch_config=batch)
    assert batched.returncode == 0, batched.stderr[-3000:]
    assert metric_counts(batched.stderr) == counts  # every stream's BATCH route is counted


def test_discover_declares_replication_and_decimal_details(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = tap(sandbox, tmp_path, "--discover")
    assert result.returncode == 0, result.stderr[-3000:]
    catalog = json.loads(result.stdout)
    for entry in catalog["streams"]:
        [top] = [m for m in entry["metadata"] if m["breadcrumb"] == []]
        method = "FULL_TABLE" if entry["stream"] == "invoices" else "INCREMENTAL"
        assert top["metadata"].get("forced-replication-method") == method, entry["stream"]
        money = [p for p in entry["schema"]["properties"].values() if "x-singer" in str(p)]
        assert money, entry["stream"]
        assert all(p["precision"] == 38 and p["scale"] == 18 for p in money), entry["stream"]


def test_help_describes_what_test_does() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tap_partner_billing", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = " ".join(result.stdout.split())
    assert "without starting an export" in text
    assert "PartnerBilling.Read.All" in text
    assert "sync a single record" not in text
