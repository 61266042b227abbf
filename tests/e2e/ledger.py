"""The whole-ledger scenario, shared by every warehouse the end-to-end tests load.

A warehouse is given as three queries (:class:`Warehouse`); the scenario drives the tap
through ``run`` (Meltano or a pipe) and checks the live rows against the sandbox's truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tap_partner_billing.sandbox.partner_center import invoice_items
from tests.e2e.conftest import billed_truths, query

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_partner_billing.sandbox.service import Sandbox
    from tests.e2e.services import Postgres

MONEY = {"usage": "billing_pre_tax_total", "reconciliation": "subtotal"}
KEYS = {
    "invoices": ("id",),
    "billed_usage": ("invoice_id", "attribute_set", "line_ordinal"),
    "billed_reconciliation": ("invoice_id", "attribute_set", "line_ordinal"),
    "unbilled_usage": ("billing_month", "currency", "attribute_set", "line_ordinal"),
    "unbilled_reconciliation": ("billing_month", "currency", "attribute_set", "line_ordinal"),
}


@dataclass
class Warehouse:
    """How a test reads one warehouse schema.

    Attributes:
        live: (table, group column, money column) → {group: (live rows, exact money sum)}.
        invoices: rows ``(id, total_charges, billing_month)`` of the invoices table.
        row_count: every row of the five tables, tombstones included.
    """

    live: Callable[[str, str, str], dict[str, tuple[int, Decimal]]]
    invoices: Callable[[], list[tuple[Any, ...]]]
    row_count: Callable[[], int]


def postgres_warehouse(pg: Postgres, schema: str, *, text_money: bool = False) -> Warehouse:
    """The scenario's view of one PostgreSQL schema (``text_money``: money held as text)."""
    cast = "::numeric" if text_money else ""  # summed as the README says for such a target

    def live(table: str, key: str, money: str) -> dict[str, tuple[int, Decimal]]:
        rows = query(
            pg,
            f"SELECT {key}, count(*), sum({money}{cast}) FROM {schema}.{table} "
            f"WHERE _sdc_deleted_at IS NULL GROUP BY {key}",
        )
        return {str(k): (int(n), Decimal(total)) for k, n, total in rows}

    def invoices() -> list[tuple[object, ...]]:
        return query(pg, f"SELECT id, total_charges, billing_month FROM {schema}.invoices")

    def row_count() -> int:
        return sum(int(query(pg, f"SELECT count(*) FROM {schema}.{t}")[0][0]) for t in KEYS)

    return Warehouse(live, invoices, row_count)


def billed_exports(sb: Sandbox, since: int = 0, dataset: str = "") -> set[str]:
    """Invoice ids the billed exports were asked for (the sandbox's request log)."""
    return {
        str(r.detail)
        for r in sb.faults.requests("export")[since:]
        if f"{dataset}/billed/" in r.path and r.status == 202
    }


def unbilled_truths(sb: Sandbox, dataset: str) -> dict[str, tuple[int, Decimal]]:
    """(lines, money total) per absolute billing month of the unbilled snapshots."""
    truths = {p: sb.unbilled_truth(p, "USD", dataset=dataset) for p in ("current", "last")}
    return {sb.unbilled_month(p): (t.line_count, t.pretax_total) for p, t in truths.items()}


def assert_warehouse_equals_sandbox(wh: Warehouse, sb: Sandbox) -> None:
    """Every stream's live rows: exact sums per invoice and per billing month."""
    for dataset, money in MONEY.items():
        assert wh.live(f"billed_{dataset}", "invoice_id", money) == billed_truths(sb, dataset)
        assert wh.live(f"unbilled_{dataset}", "billing_month", money) == unbilled_truths(
            sb, dataset
        )
    listed = {
        item["id"]: (Decimal(str(item["totalCharges"])), item["billingPeriodStartDate"][:7])
        for item in invoice_items(sb)
    }
    assert {i: (Decimal(t), m[:4] + "-" + m[4:]) for i, t, m in wh.invoices()} == listed


def run_ledger_scenario(
    run: Callable[[], None], wh: Warehouse, sb: Sandbox, *, roll_over: bool = True
) -> None:
    """Full load, unchanged rerun, re-issue + shrinking snapshot, month roll-over (optional)."""
    run()
    assert_warehouse_equals_sandbox(wh, sb)
    # Discovery from start_date: the old invoice G000000000 is listed but not exported.
    assert billed_exports(sb) == {"G000000001", "G000000002", "G000000003"}
    credit = wh.live("billed_reconciliation", "invoice_id", "subtotal")["G000000003"]
    assert credit[1] < 0  # the adjustment note holds credits

    # Unchanged data: the invoice of a recent month (recheck_months 2) is exported again,
    # the older ones are not; no blob is fetched at all, and no row is added.
    posts, blobs = len(sb.faults.requests("export")), len(sb.faults.requests("blob"))
    rows = wh.row_count()
    run()
    assert billed_exports(sb, posts, "reconciliation") == {"G000000002"}
    # The credit note's usage export answered "no data" once; that is remembered (no_usage).
    assert billed_exports(sb, posts, "usage") == {"G000000002"}
    assert len(sb.faults.requests("blob")) == blobs
    assert wh.row_count() == rows
    assert_warehouse_equals_sandbox(wh, sb)

    # A re-issued invoice (new eTag and InvoiceVersion, fewer lines) and a shrinking snapshot.
    sb.reissue_invoice("G000000002", lines=111)
    sb.set_unbilled_lines("current", "USD", 47)
    run()
    assert wh.live("billed_usage", "invoice_id", MONEY["usage"])["G000000002"][0] == 111
    assert_warehouse_equals_sandbox(wh, sb)

    if not roll_over:
        return
    # The month rolls over: last month is invoiced, its unbilled rows leave.
    closed = sb.unbilled_month("last")
    invoice = sb.roll_month(invoice_lines=90)
    run()
    for dataset, money in MONEY.items():
        assert closed not in wh.live(f"unbilled_{dataset}", "billing_month", money)
        assert invoice in wh.live(f"billed_{dataset}", "invoice_id", money)
    assert_warehouse_equals_sandbox(wh, sb)
