"""The whole ledger via Meltano into PostgreSQL: five streams, re-checks, re-issues, roll-over.

At the end the reconciliation models (dbt through Meltano) are built on the same tables.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tap_partner_billing.sandbox.server import SandboxServer
from tests.e2e.conftest import MeltanoProject, postgres_env, query, sandbox_env
from tests.e2e.ledger import KEYS, Warehouse, run_ledger_scenario
from tests.e2e.services import Postgres
from tests.e2e.warehouse import assert_models_match_sandbox, dbt, postgres_models_env

pytestmark = pytest.mark.e2e
SCHEMA = "ledger"


def postgres_warehouse(pg: Postgres, schema: str) -> Warehouse:
    """The scenario's view of one PostgreSQL schema."""

    def live(table: str, key: str, money: str) -> dict[str, tuple[int, Decimal]]:
        rows = query(
            pg,
            f"SELECT {key}, count(*), sum({money}) FROM {schema}.{table} "
            f"WHERE _sdc_deleted_at IS NULL GROUP BY {key}",
        )
        return {str(k): (int(n), Decimal(total)) for k, n, total in rows}

    def invoices() -> list[tuple[object, ...]]:
        return query(pg, f"SELECT id, total_charges, billing_month FROM {schema}.invoices")

    def row_count() -> int:
        return sum(int(query(pg, f"SELECT count(*) FROM {schema}.{t}")[0][0]) for t in KEYS)

    return Warehouse(live, invoices, row_count)


def test_whole_ledger_into_postgres_with_rechecks_reissue_and_roll_over(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres
) -> None:
    env = {**sandbox_env(sandbox), **postgres_env(postgres, SCHEMA)}

    def run() -> None:
        meltano.run(
            "--environment=sandbox",
            "run",
            "--state-id-suffix=ledger",
            "tap-partner-billing",
            "target-postgres",
            env=env,
        )

    sb = sandbox.sandbox
    run_ledger_scenario(run, postgres_warehouse(postgres, SCHEMA), sb)

    # The reconciliation models on these tables see the live rows only: the re-issued
    # invoice's last version, no unbilled rows of the invoiced month, the new invoice.
    dbt(meltano, "build", {**env, **postgres_models_env(SCHEMA)})
    assert_models_match_sandbox(lambda sql: query(postgres, sql), f"{SCHEMA}_models", sb)
