"""The reconciliation models (dbt through Meltano) and what they must show for the sandbox."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tap_partner_billing.sandbox.partner_center import invoice_items
from tests.e2e.conftest import billed_truths

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

    from tap_partner_billing.sandbox.service import Sandbox
    from tests.e2e.conftest import MeltanoProject

Rows = list[tuple[Any, ...]]


def dbt(
    meltano: MeltanoProject, command: str, env: dict[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``meltano invoke dbt:<command>`` (build, test, compile, report) in the project."""
    return meltano.run("--environment=sandbox", "invoke", f"dbt:{command}", env=env, check=check)


def expected_invoices(sb: Sandbox) -> dict[str, tuple[Decimal, Decimal | None, str]]:
    """(listed total, sum of lines, status) per listed invoice, from the sandbox's own data."""
    exported = billed_truths(sb, "reconciliation")
    expected: dict[str, tuple[Decimal, Decimal | None, str]] = {}
    for item in invoice_items(sb):
        listed = Decimal(str(item["totalCharges"]))
        if item["id"] not in exported:
            expected[item["id"]] = (listed, None, "not_loaded")
            continue
        lines = exported[item["id"]][1]
        expected[item["id"]] = (listed, lines, "reconciled" if listed == lines else "mismatch")
    return expected


def assert_models_match_sandbox(query: Callable[[str], Rows], schema: str, sb: Sandbox) -> None:
    """The three marts against the sandbox's ground truth (live rows of the last data version)."""
    invoices = query(
        f"SELECT invoice_id, listed_total, lines_total, status FROM {schema}.invoice_reconciliation"
    )
    assert {
        i: (Decimal(t), None if n is None else Decimal(n), s) for i, t, n, s in invoices
    } == expected_invoices(sb)

    usage = query(
        f"SELECT invoice_id, sum(usage_total), min(status), max(status) "
        f"FROM {schema}.usage_vs_reconciliation GROUP BY invoice_id"
    )
    assert {i: (Decimal(t), lo, hi) for i, t, lo, hi in usage} == {
        i: (total, "reconciled", "reconciled") for i, (_, total) in billed_truths(sb).items()
    }

    months = query(
        f"SELECT billing_month, sum(billed_total), sum(unbilled_total) "
        f"FROM {schema}.customer_month_cost GROUP BY billing_month"
    )
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for invoice, (_, total) in billed_truths(sb, "reconciliation").items():
        billed[sb.config.invoices[invoice].billing_month] += total
    unbilled: dict[str, Decimal] = defaultdict(Decimal)
    for period in ("current", "last"):
        for dataset in ("usage", "reconciliation"):  # the sandbox's unbilled lines: licences
            unbilled[sb.unbilled_month(period)] += sb.unbilled_truth(
                period, "USD", dataset=dataset
            ).pretax_total
    months_seen = {*billed, *unbilled}
    expected = {m: (billed.get(m, Decimal(0)), unbilled.get(m, Decimal(0))) for m in months_seen}
    assert {m: (Decimal(b), Decimal(u)) for m, b, u in months} == expected
