"""tap → Meltano → target-jsonl and target-postgres, against the sandbox (and Azurite)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tap_partner_billing.sandbox.azurite import AzuriteStore
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.tls import TlsFiles
from tests.e2e.conftest import (
    MELTANO,
    MeltanoProject,
    billed_truths,
    clean_output,
    expected_counts,
    linked_project,
    pipe_tap,
    postgres_env,
    postgres_target,
    query,
    sandbox_env,
    tap_command,
)
from tests.e2e.ledger import assert_warehouse_equals_sandbox, postgres_warehouse
from tests.e2e.services import Azurite, Postgres

pytestmark = pytest.mark.e2e
GZIP_MAGIC = b"\x1f\x8b"


def test_meltano_run_to_jsonl_matches_ground_truth(
    sandbox: SandboxServer, meltano: MeltanoProject
) -> None:
    output = clean_output(meltano)
    meltano.run(
        "--environment=sandbox",
        "run",
        "--state-id-suffix=jsonl",
        "tap-partner-billing",
        "target-jsonl",
        env=sandbox_env(sandbox),
    )
    sb = sandbox.sandbox
    counts = {f.stem: len(f.read_text().splitlines()) for f in output.glob("*.jsonl")}
    assert counts == expected_counts(sb)
    records = [
        json.loads(line) for line in (output / "billed_usage.jsonl").read_text().splitlines()
    ]
    by_invoice: Counter[str] = Counter()
    for record in records:
        by_invoice[record["invoice_id"]] += 1
    assert by_invoice == {i: count for i, (count, _) in billed_truths(sb).items()}
    assert all(not entry.authorized for entry in sb.faults.requests("blob")), (
        "Graph token sent to storage"
    )


def live_totals(
    pg: Postgres, schema: str, table: str, column: str
) -> dict[str, tuple[int, Decimal]]:
    rows = query(
        pg,
        f"SELECT {column}, count(*), sum(billing_pre_tax_total) FROM {schema}.{table} "
        f"WHERE _sdc_deleted_at IS NULL GROUP BY {column}",
    )
    return {str(key): (int(count), Decimal(total)) for key, count, total in rows}


def test_postgres_exact_sums_reruns_and_shrinking_snapshot(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres
) -> None:
    sb = sandbox.sandbox
    env = {**sandbox_env(sandbox), **postgres_env(postgres, "billing")}
    run = (
        "--environment=sandbox",
        "run",
        "--state-id-suffix=pg",
        "tap-partner-billing",
        "target-postgres",
    )
    meltano.run(*run, env=env)

    billed = live_totals(postgres, "billing", "billed_usage", "invoice_id")
    assert billed == billed_truths(sb)
    column_type = query(
        postgres,
        "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = 'billing' AND table_name = 'billed_usage' "
        "AND column_name = 'billing_pre_tax_total'",
    )
    assert column_type == [(38, 18)]
    current, last = sb.unbilled_month("current"), sb.unbilled_month("last")
    truth = {current: sb.unbilled_truth("current", "USD"), last: sb.unbilled_truth("last", "USD")}
    assert live_totals(postgres, "billing", "unbilled_usage", "billing_month") == {
        m: (t.line_count, t.pretax_total) for m, t in truth.items()
    }

    # A second run with state adds no rows.
    before = (
        query(postgres, "SELECT count(*) FROM billing.billed_usage")[0][0]
        + query(postgres, "SELECT count(*) FROM billing.unbilled_usage")[0][0]
    )
    meltano.run(*run, env=env)
    after = (
        query(postgres, "SELECT count(*) FROM billing.billed_usage")[0][0]
        + query(postgres, "SELECT count(*) FROM billing.unbilled_usage")[0][0]
    )
    assert after == before

    # The unbilled snapshot shrinks: live rows equal the new snapshot exactly.
    sb.set_unbilled_lines("current", "USD", 61)
    meltano.run(*run, env=env)
    new_truth = sb.unbilled_truth("current", "USD")
    assert new_truth.line_count == 61
    totals = live_totals(postgres, "billing", "unbilled_usage", "billing_month")
    assert totals[current] == (61, new_truth.pretax_total)
    assert totals[last] == (truth[last].line_count, truth[last].pretax_total)
    dead = query(
        postgres,
        "SELECT min(line_ordinal), max(line_ordinal), count(*) FROM billing.unbilled_usage "
        "WHERE _sdc_deleted_at IS NOT NULL AND billing_month = %s",
        current,
    )
    assert dead == [(61, truth[current].line_count - 1, truth[current].line_count - 61)]


def test_blobs_served_from_azurite(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres, azurite: Azurite
) -> None:
    sb = sandbox.sandbox
    sb.azurite = AzuriteStore(azurite.account_url, ca_bundle=str(sandbox.tls.ca_bundle))
    env = {**sandbox_env(sandbox), **postgres_env(postgres, "from_azurite")}
    meltano.run(
        "--environment=sandbox",
        "run",
        "--state-id-suffix=azurite",
        "tap-partner-billing",
        "target-postgres",
        env=env,
    )
    assert sb.faults.requests("blob") == []  # every blob came from Azurite
    billed = live_totals(postgres, "from_azurite", "billed_usage", "invoice_id")
    assert billed == billed_truths(sb)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_batch_file_is_what_its_message_says_and_loads_exactly(
    sandbox: SandboxServer,
    meltano: MeltanoProject,
    postgres: Postgres,
    tmp_path: Path,
    compression: str,
) -> None:
    """Each file of each BATCH message, read back; then target-postgres loads them exactly."""
    sb = sandbox.sandbox
    sb.config.polls_before_success = 0  # exports succeed at once: this test is about the files
    schema = f"batch_{compression}"
    batch = {
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": (tmp_path / "batches").as_uri(), "prefix": "e2e-"},
    }
    tap = tap_command(sandbox, tmp_path, batch_config=batch)
    target = postgres_target(meltano, postgres, schema, tmp_path)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(sandbox.tls.ca_bundle)}
    run = pipe_tap(tap, target, env)
    assert run.returncode == 0, run.tap_output[-3000:]
    assert run.records == []  # every record went through a BATCH file
    messages = [
        json.loads(line) for line in run.tap_output.splitlines() if '"type":"BATCH"' in line
    ]
    assert messages
    rows: Counter[str] = Counter()
    for message in messages:
        assert message["encoding"] == {"format": "jsonl", "compression": compression}
        for url in message["manifest"]:
            data = Path(urlsplit(url).path).read_bytes()
            if compression == "gzip":
                assert url.endswith(".jsonl.gz"), url
                assert data[:2] == GZIP_MAGIC, url
                data = gzip.decompress(data)
            else:
                assert url.endswith(".jsonl"), url
                assert data[:2] != GZIP_MAGIC, url
            for line in data.decode("utf-8").splitlines():  # strict: plain UTF-8 text
                record = json.loads(line)
                assert isinstance(record, dict), url
                assert "type" not in record  # raw records, not RECORD messages
                rows[message["stream"]] += 1
    assert rows == expected_counts(sb)  # every line of every blob, once
    assert_warehouse_equals_sandbox(postgres_warehouse(postgres, schema), sb)


def test_split_runs_side_by_side_into_one_database(
    tls: TlsFiles,
    meltano: MeltanoProject,
    postgres: Postgres,
) -> None:
    """Disjoint invoice sets, each run with its own state id, loading one PostgreSQL at once."""
    from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig
    from tap_partner_billing.sandbox.service import Sandbox

    invoices = {f"G00000000{n}": InvoiceSpec(f"20260{n + 4}", 300 + 40 * n, 3) for n in range(1, 6)}
    server = SandboxServer(
        Sandbox(SandboxConfig(retry_after_seconds=0, invoices=invoices, unbilled={})), tls
    ).start()
    try:
        sb = server.sandbox
        base = {**sandbox_env(server), **postgres_env(postgres, "split")}
        periods = json.dumps([])

        state_uri = f"file://{meltano.root}/split-state"

        def run(invoice_ids: list[str], suffix: str) -> tuple[subprocess.Popen[bytes], Path]:
            # Each run is its own Meltano project (as on its own machine), sharing the
            # installed plugins and one state backend; only the state ids differ.
            project = linked_project(meltano, meltano.root / f"project-{suffix}").root
            env = {
                **os.environ,
                **base,
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_STATE_BACKEND_URI": state_uri,
                "TAP_PARTNER_BILLING_INVOICE_IDS": json.dumps(invoice_ids),
                "TAP_PARTNER_BILLING_DISCOVER_INVOICES": "false",
                "TAP_PARTNER_BILLING_BILLING_PERIODS": periods,
            }
            env.pop("REQUESTS_CA_BUNDLE", None)
            # Output goes to a file, not a pipe: a pipe nobody reads until the run ends
            # fills up (64 KiB) and blocks Meltano's writes, and the wait never returns.
            log = project / "meltano-run.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [
                        str(MELTANO),
                        "--environment=sandbox",
                        "run",
                        f"--state-id-suffix={suffix}",
                        "tap-partner-billing",
                        "target-postgres",
                    ],
                    cwd=project,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            return process, log

        def finished(process: subprocess.Popen[bytes], log: Path) -> None:
            try:
                process.wait(timeout=600)
            finally:
                if process.poll() is None:
                    process.kill()  # this test's own child, by its PID
                    process.wait()
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            assert process.returncode == 0, tail

        # The first run creates the tables; then two runs load disjoint invoices side by side.
        finished(*run(["G000000001"], "split-0"))
        side_by_side = [
            run(["G000000002", "G000000003"], "split-a"),
            run(["G000000004", "G000000005"], "split-b"),
        ]
        try:
            for process, log in side_by_side:
                finished(process, log)
        finally:
            for process, _ in side_by_side:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        totals = live_totals(postgres, "split", "billed_usage", "invoice_id")
        assert totals == {
            i: (sb.billed_truth(i).line_count, sb.billed_truth(i).pretax_total) for i in invoices
        }
        saved = sorted(p.name for p in (meltano.root / "split-state").rglob("*") if p.is_dir())
        assert any("split-a" in name for name in saved), saved
        assert any("split-b" in name for name in saved), saved
    finally:
        server.stop()
