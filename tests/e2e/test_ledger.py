"""The whole ledger via Meltano into PostgreSQL: five streams, re-checks, re-issues, roll-over."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tap_partner_billing.sandbox.partner_center import invoice_items
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import (
    MeltanoProject,
    billed_truths,
    postgres_env,
    query,
    sandbox_env,
)
from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e
SCHEMA = "ledger"
MONEY = {"usage": "billing_pre_tax_total", "reconciliation": "subtotal"}


def live(pg: Postgres, table: str, key: str, money: str) -> dict[str, tuple[int, Decimal]]:
    rows = query(
        pg,
        f"SELECT {key}, count(*), sum({money}) FROM {SCHEMA}.{table} "
        f"WHERE _sdc_deleted_at IS NULL GROUP BY {key}",
    )
    return {str(k): (int(n), Decimal(total)) for k, n, total in rows}


def billed_exports(sb: Sandbox, since: int = 0, dataset: str = "") -> set[str]:
    """Invoice ids the billed exports were asked for (the sandbox's request log)."""
    return {
        str(r.detail)
        for r in sb.faults.requests("export")[since:]
        if f"{dataset}/billed/" in r.path and r.status == 202
    }


def unbilled_truths(sb: Sandbox, dataset: str) -> dict[str, tuple[int, Decimal]]:
    truths = {p: sb.unbilled_truth(p, "USD", dataset=dataset) for p in ("current", "last")}
    return {sb.unbilled_month(p): (t.line_count, t.pretax_total) for p, t in truths.items()}


def assert_warehouse_equals_sandbox(pg: Postgres, sb: Sandbox) -> None:
    """Every stream's live rows: exact sums per invoice and per billing month."""
    for dataset, money in MONEY.items():
        assert live(pg, f"billed_{dataset}", "invoice_id", money) == billed_truths(sb, dataset)
        assert live(pg, f"unbilled_{dataset}", "billing_month", money) == unbilled_truths(
            sb, dataset
        )
    invoices = query(pg, f"SELECT id, total_charges, billing_month FROM {SCHEMA}.invoices")
    listed = {
        item["id"]: (Decimal(str(item["totalCharges"])), item["billingPeriodStartDate"][:7])
        for item in invoice_items(sb)
    }
    assert {i: (Decimal(t), m[:4] + "-" + m[4:]) for i, t, m in invoices} == listed


def test_whole_ledger_into_postgres_with_rechecks_reissue_and_roll_over(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres
) -> None:
    sb = sandbox.sandbox
    env = {**sandbox_env(sandbox), **postgres_env(postgres, SCHEMA)}
    run = ("--environment=sandbox", "run", "--state-id-suffix=ledger")
    meltano.run(*run, "tap-partner-billing", "target-postgres", env=env)
    assert_warehouse_equals_sandbox(postgres, sb)
    # Discovery from start_date: the old invoice G000000000 is listed but not exported.
    assert billed_exports(sb) == {"G000000001", "G000000002", "G000000003"}
    credit = live(postgres, "billed_reconciliation", "invoice_id", "subtotal")["G000000003"]
    assert credit[1] < 0  # the adjustment note holds credits

    # Unchanged data: the invoice of a recent month (recheck_months 2) is exported again,
    # the older ones are not; no blob is fetched at all.
    posts, blobs = len(sb.faults.requests("export")), len(sb.faults.requests("blob"))
    meltano.run(*run, "tap-partner-billing", "target-postgres", env=env)
    assert billed_exports(sb, posts, "reconciliation") == {"G000000002"}
    # The credit note's usage export answered "no data" once; that is remembered (no_usage).
    assert billed_exports(sb, posts, "usage") == {"G000000002"}
    assert len(sb.faults.requests("blob")) == blobs
    assert_warehouse_equals_sandbox(postgres, sb)

    # A re-issued invoice (new eTag and InvoiceVersion, fewer lines) and a shrinking snapshot.
    sb.reissue_invoice("G000000002", lines=111)
    sb.set_unbilled_lines("current", "USD", 47)
    meltano.run(*run, "tap-partner-billing", "target-postgres", env=env)
    assert live(postgres, "billed_usage", "invoice_id", MONEY["usage"])["G000000002"][0] == 111
    assert_warehouse_equals_sandbox(postgres, sb)

    # The month rolls over: last month is invoiced, its unbilled rows leave.
    closed = sb.unbilled_month("last")
    invoice = sb.roll_month(invoice_lines=90)
    meltano.run(*run, "tap-partner-billing", "target-postgres", env=env)
    for dataset, money in MONEY.items():
        months = live(postgres, f"unbilled_{dataset}", "billing_month", money)
        assert closed not in months
        assert invoice in live(postgres, f"billed_{dataset}", "invoice_id", money)
    assert_warehouse_equals_sandbox(postgres, sb)
