"""Faults survived within one run, each ending with PostgreSQL's live rows equal to the truth.

Three runs instead of one per fault: the faults of one run are independent (each on its own
step, or queued one after another on a step whose budget outlasts them), so one sandbox,
one tap and one target-postgres show them all. Every fault must have happened (the sandbox
logged its status), every step's last request must have succeeded, and the rows must equal
the truth. Which transient answers are retried, how often and how long is the unit tests'
part (tests/test_network_failures.py, tests/test_export.py); these runs prove that the
whole tap, through real HTTPS into a real target, rides through them without a duplicate or
a lost line. tests/planted_bugs/ holds the bugs each run was checked against.
"""

from __future__ import annotations

import dataclasses
import os
from decimal import Decimal
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.dates import shift_month
from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig, this_month
from tap_partner_billing.sandbox.credentials import GRAPH_SCOPE
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

# run → (its faults, queued in this order, sandbox settings for it)
RUNS: dict[str, tuple[list[Fault], dict[str, Any]]] = {
    # Throttled everywhere (Retry-After honoured), a token refused before it expires (revoked:
    # acquired again, the poll repeated), a SAS refused (renewed) and a blob body cut short
    # (resumed with Range).
    "429s, revoked token, refused SAS, cut body": (
        [
            Fault("token", status=429, retry_after=1),
            Fault("invoices", status=429, retry_after=1),
            Fault("export", status=429, retry_after=1),
            Fault("operation", status=429, retry_after=0),
            Fault("operation", status=401),
            Fault("blob", status=429, retry_after=0),
            Fault("blob", status=403),
            Fault("blob", drop_after_bytes=3000),
        ],
        {},
    ),
    "503s and 500s": (
        [
            Fault("token", status=503),
            Fault("invoices", status=503),
            Fault("export", status=503),
            Fault("operation", status=503, times=2),
            Fault("blob", status=500, times=2),
            Fault("blob", status=503),
        ],
        {},
    ),
    # MSAL takes a token with under 5 minutes left as expired: with 302 s the token runs out
    # (for MSAL) between the polls of one export and is acquired again, silently.
    "504s, linked manifests, token expiring": (
        [
            Fault("export", status=504),
            Fault("operation", status=504),
            Fault("manifest", status=429, retry_after=1),
            Fault("manifest", status=503),
            Fault("manifest", status=504),
            Fault("blob", status=504),
            Fault("token", status=504),
        ],
        {
            "manifest_mode": "linked",
            "token_lifetime_seconds": 302,
            "polls_before_success": 4,
            "retry_after_seconds": 1,
        },
    ),
}


@pytest.mark.parametrize("run", list(RUNS), ids=list(RUNS))
def test_faults_are_survived_in_the_same_run(
    run: str, tls: TlsFiles, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    faults, settings = RUNS[run]
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
    schema = "faults_" + str(list(RUNS).index(run))
    try:
        sb = server.sandbox
        for fault in faults:
            sb.faults.add(dataclasses.replace(fault))  # a fresh copy: times are consumed
        tap = tap_command(server, tmp_path, billing_periods=["current"])
        target = postgres_target(meltano, postgres, schema, tmp_path)
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        tap_into_target(tap, target, env, None)

        assert [f for f in sb.faults.faults if f.times] == [], "every fault happened"
        for fault in faults:
            log = sb.faults.requests(fault.step)
            if fault.drop_after_bytes is None:
                assert any(e.status == fault.status for e in log), fault
            else:
                assert any(e.range for e in log), "resumed with Range"
            assert log[-1].status < 400, f"{fault.step}: a retry succeeded in the same run"
        # Graph's tokens only (Partner Center's have their own audience): the first, and a new
        # one for each token Graph refused (revoked, 401) and for one expiring for MSAL.
        expiring = "token_lifetime_seconds" in settings
        renewals = sum(f.status == HTTPStatus.UNAUTHORIZED for f in faults) + expiring
        graph_tokens = len(sb.tokens.issued(GRAPH_SCOPE))
        assert graph_tokens >= 1 + renewals, f"{graph_tokens} Graph tokens, {renewals} renewals"
        if expiring:
            assert all(e.status != 401 for e in sb.faults.requests()), "renewed before refused"
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
