"""Faults survived within one run, each ending with PostgreSQL's live rows equal to the truth."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tap_partner_billing.invoices import shift_month
from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig, this_month
from tap_partner_billing.sandbox.faults import Fault
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import MeltanoProject, query, tap_into_target

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e

FAULTS = {
    "token 429": Fault("token", status=429, retry_after=1),
    "token 503": Fault("token", status=503),
    "export 429": Fault("export", status=429, retry_after=1),
    "export 504": Fault("export", status=504),
    "operation 503": Fault("operation", status=503, times=2),
    "operation 429": Fault("operation", status=429, retry_after=0),
    "blob 429": Fault("blob", status=429, retry_after=0),
    "blob 500": Fault("blob", status=500, times=2),
    "blob dropped mid-body": Fault("blob", drop_after_bytes=3000),
    "blob SAS refused": Fault("blob", status=403),
}


@pytest.mark.parametrize("case", list(FAULTS), ids=list(FAULTS))
def test_fault_is_survived_in_the_same_run(
    case: str, tls: TlsFiles, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    config = SandboxConfig(
        retry_after_seconds=0,
        invoices={
            "G000000301": InvoiceSpec(shift_month(this_month(), -3), 400, 3),
            "G000000302": InvoiceSpec(shift_month(this_month(), -2), 300, 2),
        },
        unbilled={("current", "USD"): (150, 2)},
    )
    server = SandboxServer(Sandbox(config), tls).start()
    schema = "fault_" + case.replace(" ", "_").replace("-", "_").lower()
    try:
        sb = server.sandbox
        fault = FAULTS[case]
        sb.faults.add(Fault(**{**fault.__dict__}))  # a fresh copy: times are consumed
        tap_config = tmp_path / "tap.json"
        tap_config.write_text(json.dumps(server.tap_config(billing_periods=["current"])))
        target_config = tmp_path / "target.json"
        target_config.write_text(
            json.dumps(
                {
                    "host": postgres.host,
                    "port": postgres.port,
                    "user": postgres.user,
                    "password": postgres.password,
                    "database": postgres.database,
                    "default_target_schema": schema,
                    "add_record_metadata": True,
                }
            )
        )
        target = str(meltano.root / ".meltano/loaders/target-postgres/venv/bin/target-postgres")
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        tap = [sys.executable, "-m", "tap_partner_billing", "--config", str(tap_config)]
        tap_into_target(tap, [target, "--config", str(target_config)], env, None)

        log = sb.faults.requests(fault.step)
        if fault.drop_after_bytes is None:
            assert any(e.status == fault.status for e in log), "the fault happened"
            assert log[-1].status < 400, "and a retry succeeded in the same run"
        else:
            assert any(e.range for e in log), "the dropped blob resumed with a Range request"
        totals = query(
            postgres,
            "SELECT invoice_id, count(*), sum(billing_pre_tax_total) "
            f"FROM {schema}.billed_usage WHERE _sdc_deleted_at IS NULL GROUP BY invoice_id",
        )
        assert {i: (int(c), Decimal(t)) for i, c, t in totals} == {
            i: (sb.billed_truth(i).line_count, sb.billed_truth(i).pretax_total)
            for i in config.invoices
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
    finally:
        server.stop()
