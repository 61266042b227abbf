"""The whole ledger via Meltano into PostgreSQL: five streams, re-checks, re-issues, roll-over.

At the end the reconciliation models (dbt through Meltano) are built on the same tables.
Neither the loader nor dbt is told a schema: the project's defaults must agree (meltano.yml's
PARTNER_BILLING_SCHEMA), as in a fresh clone.
"""

from __future__ import annotations

import pytest
import yaml

from tap_partner_billing.sandbox.server import SandboxServer
from tests.e2e.conftest import MeltanoProject, postgres_env, query, sandbox_env
from tests.e2e.ledger import postgres_warehouse, run_ledger_scenario
from tests.e2e.services import ROOT, Postgres
from tests.e2e.warehouse import assert_models_match_sandbox, dbt

pytestmark = pytest.mark.e2e
MODELS_SCHEMA = "partner_billing_models"  # dbt's target_schema default (meltano.yml)


def test_whole_ledger_into_postgres_with_rechecks_reissue_and_roll_over(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres
) -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    schema = project["env"]["PARTNER_BILLING_SCHEMA"]
    env = {**sandbox_env(sandbox), **postgres_env(postgres)}  # no schema: the defaults

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
    run_ledger_scenario(run, postgres_warehouse(postgres, schema), sb)

    # The reconciliation models on these tables see the live rows only: the re-issued
    # invoice's last version, no unbilled rows of the invoiced month, the new invoice.
    build = dbt(meltano, "build", {**env, "DBT_TARGET": "postgres"})
    log = build.stdout + build.stderr
    summary = next(line for line in log.splitlines() if "PASS=" in line)
    assert "ERROR=0" in summary, log[-4000:]
    assert "SKIP=0" in summary, log[-4000:]
    assert_models_match_sandbox(lambda sql: query(postgres, sql), MODELS_SCHEMA, sb)
