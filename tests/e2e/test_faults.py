"""Faults survived within one run, each ending with PostgreSQL's live rows equal to the truth."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.dates import shift_month
from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig, this_month
from tap_partner_billing.sandbox.faults import Fault
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import (
    MeltanoProject,
    postgres_target,
    query,
    tap_command,
    tap_into_target,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e

LINKED = {"manifest_mode": "linked"}
# case → (the fault, sandbox settings for it)
CASES: dict[str, tuple[Fault | None, dict[str, Any]]] = {
    "token 429": (Fault("token", status=429, retry_after=1), {}),
    "token 503": (Fault("token", status=503), {}),
    "token 504": (Fault("token", status=504), {}),
    "invoice list 429": (Fault("invoices", status=429, retry_after=1), {}),
    "invoice list 503": (Fault("invoices", status=503), {}),
    "export 429": (Fault("export", status=429, retry_after=1), {}),
    "export 503": (Fault("export", status=503), {}),
    "export 504": (Fault("export", status=504), {}),
    "operation 429": (Fault("operation", status=429, retry_after=0), {}),
    "operation 503": (Fault("operation", status=503, times=2), {}),
    "operation 504": (Fault("operation", status=504), {}),
    # A token refused before it expires (revoked): acquired again, the request repeated.
    "operation 401 token revoked": (Fault("operation", status=401), {}),
    "manifest 429": (Fault("manifest", status=429, retry_after=1), LINKED),
    "manifest 503": (Fault("manifest", status=503), LINKED),
    "manifest 504": (Fault("manifest", status=504), LINKED),
    "blob 429": (Fault("blob", status=429, retry_after=0), {}),
    "blob 500": (Fault("blob", status=500, times=2), {}),
    "blob 503": (Fault("blob", status=503), {}),
    "blob 504": (Fault("blob", status=504), {}),
    "blob dropped mid-body": (Fault("blob", drop_after_bytes=3000), {}),
    "blob SAS refused": (Fault("blob", status=403), {}),
    # MSAL takes a token with under 5 minutes left as expired: with 302 s the token runs out
    # (for MSAL) between the polls of one export and is acquired again, silently.
    "token expiring during a long poll": (
        None,
        {"token_lifetime_seconds": 302, "polls_before_success": 4, "retry_after_seconds": 1},
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_fault_is_survived_in_the_same_run(
    case: str, tls: TlsFiles, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    fault, settings = CASES[case]
    config = SandboxConfig(
        **{
            "retry_after_seconds": 0,
            "invoices": {
                "G000000301": InvoiceSpec(shift_month(this_month(), -3), 400, 3),
                "G000000302": InvoiceSpec(shift_month(this_month(), -2), 300, 2),
            },
            "unbilled": {("current", "USD"): (150, 2)},
            **settings,
        }
    )
    server = SandboxServer(Sandbox(config), tls).start()
    schema = "fault_" + case.replace(" ", "_").replace("-", "_").lower()
    try:
        sb = server.sandbox
        if fault is not None:
            sb.faults.add(Fault(**fault.__dict__))  # a fresh copy: times are consumed
        tap = tap_command(server, tmp_path, billing_periods=["current"])
        target = postgres_target(meltano, postgres, schema, tmp_path)
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        tap_into_target(tap, target, env, None)

        if fault is None:  # the token case
            assert len(sb.faults.requests("token")) >= 2, "a token was acquired again"
            assert all(e.status != 401 for e in sb.faults.requests())
        elif fault.drop_after_bytes is None:
            log = sb.faults.requests(fault.step)
            assert any(e.status == fault.status for e in log), "the fault happened"
            assert log[-1].status < 400, "and a retry succeeded in the same run"
        else:
            assert any(e.range for e in sb.faults.requests("blob")), "resumed with Range"
        assert_live_rows_equal_truth(postgres, schema, sb)
    finally:
        server.stop()


def assert_live_rows_equal_truth(postgres: Postgres, schema: str, sb: Sandbox) -> None:
    """Per invoice and for the unbilled month: live row counts and exact sums."""
    totals = query(
        postgres,
        "SELECT invoice_id, count(*), sum(billing_pre_tax_total) "
        f"FROM {schema}.billed_usage WHERE _sdc_deleted_at IS NULL GROUP BY invoice_id",
    )
    assert {i: (int(c), Decimal(t)) for i, c, t in totals} == {
        i: (sb.billed_truth(i).line_count, sb.billed_truth(i).pretax_total)
        for i in sb.config.invoices
    }
    unbilled = query(
        postgres,
        f"SELECT count(*), sum(billing_pre_tax_total) FROM {schema}.unbilled_usage "
        "WHERE _sdc_deleted_at IS NULL",
    )
    truth = sb.unbilled_truth("current", "USD")
    assert [(int(unbilled[0][0]), Decimal(unbilled[0][1]))] == [
        (truth.line_count, truth.pretax_total)
    ]
