"""The tap through Microsoft's documented responses, served by the sandbox's documented mode.

The invoice list is Partner Center's documented example (its adjustment note only nested in
its invoice's amendments, no billing-period dates, 7-digit ``Z`` dates, a relative
offset-style next link) and the constructed page that link asks for; operations and
manifests have the documented examples' shapes (``tap_partner_billing/sandbox/microsoft/``).
The first tests need nothing but the sandbox (they run on every claimed Python); the last
one loads into PostgreSQL through target-postgres.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.errors import PartnerBillingError
from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import MeltanoProject, pipe_tap, postgres_target, query, tap_command
from tests.helpers import run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e
NOTE = "G000024131"  # the adjustment note, nested in G000024130's amendments
DOCUMENTS = ["D02005YFHI", "G000024130", NOTE, "G000024132"]
BILLED = ("billed_usage", "billed_reconciliation")


@pytest.fixture(params=["linked", "inline"])
def documented(
    request: pytest.FixtureRequest, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """The sandbox serving the documented responses (manifests linked, or inline)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    config = SandboxConfig(documented=True, retry_after_seconds=0, manifest_mode=request.param)
    server = SandboxServer(Sandbox(config), tls).start()
    yield server
    server.stop()


def _bookmark(state: dict[str, Any], stream: str, invoice: str) -> dict[str, Any]:
    partitions = state["bookmarks"][stream]["partitions"]
    found: dict[str, Any] = next(p for p in partitions if p["context"]["invoice_id"] == invoice)
    return found


@pytest.mark.contract
def test_every_documented_document_is_synced_once_and_exactly(documented: SandboxServer) -> None:
    sb = documented.sandbox
    result = run_tap(documented.tap_config(), streams=("invoices", *BILLED))
    rows = result.records("invoices")
    assert [r["id"] for r in rows] == DOCUMENTS  # once each; G000024132 is on the offset page
    assert len([e for e in sb.faults.requests("invoices") if e.status == 200]) == 2
    note = next(r for r in rows if r["id"] == NOTE)
    assert note["document_type"] == "adjustment_note"
    assert note["amends_of"] == "G000024130"
    assert note["billing_month"] == "202402"  # the month of the document it amends
    assert note["invoice_date"] == "2024-03-08T18:44:37.538145+00:00"  # …5381456Z, typed
    assert note["total_charges"] == "107661.12"
    # Its reconciliation lines land exactly: every line once, the money to the last digit.
    lines = [r for r in result.records("billed_reconciliation") if r["invoice_id"] == NOTE]
    truth = sb.billed_truth(NOTE, dataset="reconciliation")
    assert sorted(r["line_ordinal"] for r in lines) == list(range(truth.line_count))
    assert sum(Decimal(r["subtotal"]) for r in lines) == truth.pretax_total
    assert truth.line_count > 0
    assert truth.pretax_total < 0  # a credit
    for stream, dataset in zip(BILLED, ("usage", "reconciliation"), strict=True):
        counts = {
            invoice: sb.billed_truth(invoice, dataset=dataset).line_count
            for invoice in DOCUMENTS[1:]
        }
        got = {i: sum(r["invoice_id"] == i for r in result.records(stream)) for i in counts}
        assert got == counts, stream
    # Once exported, the bookmark records the manifest's BillingMonth.
    assert _bookmark(result.state, "billed_reconciliation", NOTE)["billing_month"] == "202402"
    # A note has no usage: its 5000 is remembered, not asked again.
    remembered = _bookmark(result.state, "billed_usage", NOTE)["no_data"]
    assert remembered["code"] == "5000"
    assert "adjustment_note" in remembered["why"]


@pytest.mark.contract
@pytest.mark.parametrize(
    ("constant", "wrong", "refusal"),
    [
        pytest.param(
            "tap_partner_billing.sync.services.GRAPH_SCOPE",
            "https://graph.microsoft.com/PartnerBilling.Read.All/.default",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid",
            id="graph-scope",
        ),
        pytest.param(
            "tap_partner_billing.sync.services.PARTNER_CENTER_SCOPE",
            "https://api.partnercenter.microsoft.com/user_impersonation",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid",
            id="partner-center-scope",
        ),
        pytest.param(
            "tap_partner_billing.service.partner_center.INVOICES_PATH",
            "/v1/invoice",
            "Partner Center invoice list, page 1: HTTP 404",
            id="invoices-path",
        ),
    ],
)
def test_a_wrong_literal_in_the_tap_meets_the_sandboxs_refusal(
    tls: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
    constant: str,
    wrong: str,
    refusal: str,
) -> None:
    """The sandbox spells Microsoft's scopes and paths itself: the tap's must match them."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    monkeypatch.setattr(constant, wrong)
    server = SandboxServer(Sandbox(SandboxConfig(documented=True)), tls).start()
    try:
        with pytest.raises(PartnerBillingError, match=re.escape(refusal)):
            run_tap(server.tap_config(), streams=("invoices", "billed_usage"))
        refused = [(e.step, e.path, e.status) for e in server.sandbox.faults.requests()]
    finally:
        server.stop()
    if constant.endswith("INVOICES_PATH"):
        assert ("invoices", wrong, 404) in refused
    else:
        assert [r for r in refused if r[0] == "token"][-1][2] == 400


def test_the_documented_documents_land_typed_in_postgres(
    tls: TlsFiles, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    # Exports done at the first poll, no unbilled data: this test is about what lands (the
    # other tests poll through the documented running shape), and each poll waits 1 s.
    config = SandboxConfig(documented=True, polls_before_success=0, unbilled={})
    server = SandboxServer(Sandbox(config), tls).start()
    try:
        sb = server.sandbox
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        schema = "documented"
        run = pipe_tap(
            tap_command(server, tmp_path), postgres_target(meltano, postgres, schema, tmp_path), env
        )
        assert run.returncode == 0, run.tap_output[-3000:]
        truth = sb.billed_truth(NOTE, dataset="reconciliation")
    finally:
        server.stop()
    invoices = query(
        postgres,
        f"SELECT id, invoice_date, billing_month, amends_of FROM {schema}.invoices ORDER BY id",
    )
    moment = datetime(2024, 3, 8, 18, 44, 37, 538145)  # target-postgres: timestamp, UTC
    assert [row[0] for row in invoices] == sorted(DOCUMENTS)
    assert (NOTE, moment, "202402", "G000024130") in invoices  # typed, not text
    landed = query(
        postgres,
        f"SELECT count(*), sum(subtotal) FROM {schema}.billed_reconciliation WHERE invoice_id = %s",
        NOTE,
    )
    assert landed == [(truth.line_count, truth.pretax_total)]
