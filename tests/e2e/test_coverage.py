"""Coverage floors, remembered 5000s and refresh_invoice_ids, through the sandbox over HTTPS.

The tap runs in-process (as ``tests.helpers.run_tap`` runs it, with its fixed calendar) against
the real sandbox server; the sandbox's request log counts the export requests. Its clock and
month are those of the calendar, so the months below are the same on any day.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.sandbox.config import InvoiceSpec, SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.helpers import TODAY, SyncResult, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = pytest.mark.e2e

EXPLICIT_OLD = "G000000500"  # 2022-01, before both floors, named in invoice_ids
BEFORE_BOTH = "G000000501"  # 2022-06: usage starts 2022-09, reconciliation 2024-02
BETWEEN = "G000000502"  # 2023-06: usage yes, reconciliation no
OLD_5000 = "G000000503"  # 2024-05: inside both floors, but it answers 5000 (legacy, say)
SETTLED = "G000000504"  # 2026-08: outside the re-check window on 2026-11-15
RECENT = "G000000505"  # 2026-10: re-checked on every run
STREAMS = ("billed_usage", "billed_reconciliation")


@pytest.fixture
def server(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    months = {
        EXPLICIT_OLD: "202201",
        BEFORE_BOTH: "202206",
        BETWEEN: "202306",
        OLD_5000: "202405",
        SETTLED: "202608",
        RECENT: "202610",
    }
    config = SandboxConfig(
        retry_after_seconds=0,
        polls_before_success=0,
        current_month=TODAY.strftime("%Y%m"),
        invoices={invoice: InvoiceSpec(month, 24, 1) for invoice, month in months.items()},
        legacy_invoices={},
    )
    running = SandboxServer(Sandbox(config), tls).start()
    running.sandbox.failing[OLD_5000] = "5000"
    yield running
    running.stop()


def asked(sb: Sandbox, since: int = 0) -> Counter[tuple[str, str | None]]:
    """(dataset, invoice) → export requests since ``since`` in the sandbox's log."""
    return Counter(
        (e.path.split("/billing/")[1].split("/")[0], e.detail)
        for e in sb.faults.requests("export")[since:]
        if "/billed/" in e.path
    )


def sync(server: SandboxServer, state: dict[str, Any] | None, **config: Any) -> SyncResult:
    settings = server.tap_config(
        discover_invoices=True, invoice_ids=[EXPLICIT_OLD], decode_workers=1, **config
    )
    del settings["start_date"]  # every listed invoice: the floors alone leave the old ones out
    return run_tap(settings, state=state, streams=STREAMS)


def rows(result: SyncResult, stream: str) -> Counter[tuple[str, bool]]:
    """(invoice, is a tombstone) → records of ``stream``."""
    return Counter(
        (r["invoice_id"], r["_sdc_deleted_at"] is not None) for r in result.records(stream)
    )


def bookmark(result: SyncResult, stream: str, invoice: str) -> dict[str, Any]:
    return next(p for p in result.partition_states(stream) if p["context"]["invoice_id"] == invoice)


def test_floors_remembered_5000s_and_refresh_over_two_runs(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    sb = server.sandbox
    caplog.set_level(logging.INFO)
    first = sync(server, None)
    # Below its dataset's floor a listed document is never asked for; invoice_ids still is.
    assert asked(sb) == {
        **{("usage", i): 1 for i in (EXPLICIT_OLD, BETWEEN, OLD_5000, SETTLED, RECENT)},
        **{("reconciliation", i): 1 for i in (EXPLICIT_OLD, OLD_5000, SETTLED, RECENT)},
    }
    assert rows(first, "billed_usage") == {
        (BETWEEN, False): 24,
        (SETTLED, False): 24,
        (RECENT, False): 24,
    }
    assert set(rows(first, "billed_reconciliation")) == {(SETTLED, False), (RECENT, False)}
    logged = caplog.text
    for line in (
        (
            f"billed_usage: 1 document(s) not exported: their billing months are before 2022-09, "
            f"the first Graph serves billed usage for (Microsoft: older or legacy invoices fail "
            f"with 5000): {BEFORE_BOTH}; invoice_ids exports one anyway"
        ),
        (
            f"billed_reconciliation: 2 document(s) not exported: their billing months are before "
            f"2024-02, the first Graph serves billed invoice reconciliation for (Microsoft: older "
            f"or legacy invoices fail with 5000): {BEFORE_BOTH}, {BETWEEN}; invoice_ids exports "
            "one anyway"
        ),
        (
            f"billed_usage invoice {EXPLICIT_OLD} (full): billing month 2022-01 is before 2022-09, "
            "the first Graph serves billed usage for; exported because invoice_ids names it"
        ),
        (
            f"billed_usage invoice {OLD_5000} (full): answered 5000 and billing month 2024-05 is "
            "past the re-check window: remembered in its bookmark as having no data"
        ),
    ):
        assert logged.count(line) == 1, line
    for stream in STREAMS:
        for invoice in (EXPLICIT_OLD, OLD_5000):
            assert bookmark(first, stream, invoice)["no_data"]["code"] == "5000"
        assert "no_data" not in bookmark(first, stream, RECENT)

    # Microsoft re-issues the settled invoice; the user asks for it (and for an unchanged one).
    sb.reissue_invoice(SETTLED, lines=18)
    caplog.clear()
    posts = len(sb.faults.requests("export"))
    second = sync(server, first.state, refresh_invoice_ids=[SETTLED, BETWEEN, "G000000999"])
    # The old 5000s are not asked again; the refreshed and the recent invoices are.
    assert asked(sb, posts) == {
        ("usage", SETTLED): 1,
        ("usage", BETWEEN): 1,
        ("usage", RECENT): 1,
        ("reconciliation", SETTLED): 1,
        ("reconciliation", RECENT): 1,
    }
    # The re-issued invoice is emitted again (fewer lines: the surplus keys retired); the
    # unchanged one and the recent one emit nothing, so no row is written twice.
    assert rows(second, "billed_usage") == {(SETTLED, False): 18, (SETTLED, True): 6}
    assert {i for i, _ in rows(second, "billed_reconciliation")} == {SETTLED}
    assert bookmark(second, "billed_usage", SETTLED)["line_count"] == 18
    assert bookmark(second, "billed_usage", BETWEEN) == bookmark(first, "billed_usage", BETWEEN)
    logged = caplog.text
    assert (
        logged.count(
            f"billed_usage: 2 document(s) not asked again: their exports answered 5000 (no data) "
            f"when asking again could not help: {EXPLICIT_OLD}, {OLD_5000}"
        )
        == 1
    )
    assert f"billed_usage invoice {BETWEEN} (full): unchanged since the last run" in logged
    assert (
        f"billed_reconciliation: refresh_invoice_ids names {BETWEEN}, but its billing month "
        "2023-06 is before 2024-02" in logged
    )
    assert "refresh_invoice_ids: G000000999 is not a document this run exports" in logged
