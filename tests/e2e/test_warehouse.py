"""The reconciliation models, real dbt through Meltano: DuckDB, a planted discrepancy, Snowflake.

DuckDB reads the JSONL files (the demo's route); with a planted discrepancy the dbt tests
fail and name the invoice; the Snowflake flavour compiles.

PostgreSQL is covered at the end of the ledger test (tests/e2e/test_ledger.py), after a
re-issued invoice and a month roll-over.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import MeltanoProject, clean_output, sandbox_env
from tests.e2e.warehouse import assert_models_match_sandbox, dbt, expected_invoices

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e
RUN = ("--environment=sandbox", "run", "--state-id-suffix=dbt")


def duckdb_query(path: Path) -> Any:
    # Imported here: duckdb 2 (dbt-duckdb's, whose files this reads) needs Python 3.11, and the
    # module is collected on every Python the package claims (its test runs on the main one).
    import duckdb

    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(sql).fetchall()

    return query


def test_duckdb_models_reconcile_then_name_a_planted_discrepancy(
    sandbox: SandboxServer, meltano: MeltanoProject
) -> None:
    sb = sandbox.sandbox
    env = sandbox_env(sandbox)
    output = clean_output(meltano)
    meltano.run(*RUN, "--full-refresh", "tap-partner-billing", "target-jsonl", env=env)
    build = dbt(meltano, "build", env)
    assert "ERROR=0" in build.stdout + build.stderr
    query = duckdb_query(output / "partner_billing.duckdb")
    assert_models_match_sandbox(query, "main", sb)
    statuses = {status for *_, status in expected_invoices(sb).values()}
    assert statuses == {"reconciled", "not_loaded"}  # the sandbox reconciles by construction

    # G000000002 is re-issued with fewer lines and the current snapshot shrinks: the next run
    # appends their new lines and tombstones to the files (the last message per key wins).
    # And Partner Center now lists G000000002 12.34 above its lines (the invoice list is
    # appended again too).
    sb.reissue_invoice("G000000002", lines=111)
    sb.set_unbilled_lines("current", "USD", 47)
    sb.config.total_discrepancies["G000000002"] = Decimal("12.34")
    meltano.run(*RUN, "tap-partner-billing", "target-jsonl", env=env)
    listed = (output / "invoices.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(listed) == 2 * len(expected_invoices(sb))
    usage = (output / "billed_usage.jsonl").read_text(encoding="utf-8")
    assert '"_sdc_deleted_at": null' in usage
    assert usage.count('"_sdc_deleted_at": "') == 180 - 111  # the surplus keys' tombstones
    # `dbt build` rebuilds the models and fails on the test; `dbt test` on the rebuilt
    # tables fails the same way. Both name the invoice, and only that one.
    for command in ("build", "test"):
        failed = dbt(meltano, command, env, check=False)
        log = failed.stdout + failed.stderr
        assert failed.returncode != 0, log[-4000:]
        named = [line for line in log.splitlines() if "does not reconcile" in line]
        assert len(named) == 1, log[-4000:]
        assert "invoice_reconciliation does not reconcile: invoice_id=G000000002" in named[0]
        assert "difference=12.34" in named[0]
        assert "Failure in test reconciles_invoice_reconciliation" in log
    assert expected_invoices(sb)["G000000002"][2] == "mismatch"
    assert_models_match_sandbox(query, "main", sb)
    report = dbt(meltano, "report", env).stdout
    row = next(line for line in report.splitlines() if line.startswith("G000000002"))
    assert row.split()[-2:] == ["12.34", "mismatch"]


def test_snowflake_flavour_compiles_without_a_connection(meltano: MeltanoProject) -> None:
    # No Snowflake account here: `dbt compile --no-populate-cache` renders every model and
    # test with the Snowflake adapter's macros without connecting (the profile's account is
    # a placeholder, so a connection attempt would fail the command).
    env = {"DBT_TARGET": "snowflake", "DBT_TARGET_PATH": str(meltano.root / "snowflake-sql")}
    result = dbt(meltano, "compile", env)
    assert "target='snowflake'" in result.stdout + result.stderr
    compiled = meltano.root / "snowflake-sql" / "compiled" / "partner_billing" / "models"
    staging = (compiled / "staging" / "stg_billed_usage.sql").read_text(encoding="utf-8")
    assert "cast(billing_pre_tax_total as number(38, 18))" in staging
    assert "convert_timezone('UTC', usage_date)" in staging
    assert "where _sdc_deleted_at is null" in staging
    marts = {p.name for p in (compiled / "marts").glob("*.sql")}
    assert marts == {
        "invoice_reconciliation.sql",
        "usage_vs_reconciliation.sql",
        "customer_month_cost.sql",
    }
