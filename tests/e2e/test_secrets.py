"""No client secret, bearer token or SAS signature in any output, whatever happens in the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.faults import Fault
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.e2e.conftest import MeltanoProject, sandbox_env
from tests.scan import leaks

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = pytest.mark.e2e
SECRET = "RECOGNISABLE-client-secret-7c1d0e9a"  # the needle the test looks for


def _success_with_faults(sb: Sandbox) -> dict[str, Any]:
    sb.faults.add(Fault("blob", status=403, times=2))
    sb.faults.add(Fault("blob", status=503, times=1))
    sb.faults.add(Fault("blob", drop_after_bytes=2500, times=1))
    return {}


def _wrong_secret(sb: Sandbox) -> dict[str, Any]:
    del sb
    return {"client_secret": SECRET + "-wrong"}


def _failed_operation(sb: Sandbox) -> dict[str, Any]:
    sb.failing["G000000002"] = "7001"
    return {}


def _corrupt_blob(sb: Sandbox) -> dict[str, Any]:
    sb.faults.add(Fault("blob", corrupt=True, times=1))
    return {}


def _deadline(sb: Sandbox) -> dict[str, Any]:
    sb.config.polls_before_success = 10_000
    return {"poll_timeout_seconds": 2}


def _invoice_list_refused(sb: Sandbox) -> dict[str, Any]:
    sb.faults.add(Fault("invoices", status=403, times=1))
    return {}


def _token_endpoint_down(sb: Sandbox) -> dict[str, Any]:
    # Retry-After: 1 (the shortest wait the tap takes): the retry budget's six attempts and
    # their warnings in 5 s, instead of 31 s of backoff.
    sb.faults.add(Fault("token", status=503, times=99, retry_after=1))
    return {}


# scenario → (prepare the sandbox and return config overrides, whether the run succeeds)
SCENARIOS: dict[str, tuple[Callable[[Sandbox], dict[str, Any]], bool]] = {
    "success with SAS renewal, retries and a resumed blob": (_success_with_faults, True),
    "credentials refused": (_wrong_secret, False),
    "token endpoint down": (_token_endpoint_down, False),
    "invoice list refused": (_invoice_list_refused, False),
    "failed operation": (_failed_operation, False),
    "corrupt blob": (_corrupt_blob, False),
    "poll deadline": (_deadline, False),
}


def _needles(sb: Sandbox, secret: str) -> list[str]:
    """Every credential the run saw: the secret, each token, each SAS signature (two forms)."""
    signatures = sb.sas.issued_signatures
    found = [secret, *sb.tokens.issued(), *signatures, *(quote(s, safe="") for s in signatures)]
    return [needle for needle in found if needle]


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_no_credential_in_output_logs_tracebacks_or_state(
    scenario: str, tls: TlsFiles, tmp_path: Path
) -> None:
    """At DEBUG, whose output holds the default level's (every line, tracebacks besides)."""
    prepare, succeeds = SCENARIOS[scenario]
    server = SandboxServer(
        Sandbox(SandboxConfig(client_secret=SECRET, retry_after_seconds=0)), tls
    ).start()
    try:
        sb = server.sandbox
        config = server.tap_config(max_parallel_downloads=1, **prepare(sb))
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        env = {
            **os.environ,
            "REQUESTS_CA_BUNDLE": str(tls.ca_bundle),
            "TAP_PARTNER_BILLING_LOGLEVEL": "DEBUG",
        }
        result = subprocess.run(
            [sys.executable, "-m", "tap_partner_billing", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )
        assert (result.returncode == 0) == succeeds, result.stderr[-3000:]
        everything = result.stdout + result.stderr  # messages, STATE, logs and tracebacks
        if not succeeds:
            # The scan covers the traceback (a tap's error is one message, and its traceback
            # at DEBUG only: cli.user_errors).
            assert "Traceback" in result.stderr or '"exception"' in result.stderr
        needles = _needles(sb, config["client_secret"])
        assert SECRET in needles[0]
        if scenario not in {"credentials refused", "token endpoint down"}:
            assert len(needles) > 1, "tokens were issued"
        assert leaks(everything, needles) == []
        assert "Bearer " + "ey" not in everything
        assert all(not e.authorized for e in sb.faults.requests("blob")), "a token reached storage"
    finally:
        server.stop()


def test_no_credential_through_meltano(sandbox: SandboxServer, meltano: MeltanoProject) -> None:
    """A Meltano run with the tap at DEBUG, and the state Meltano saved."""
    sb = sandbox.sandbox
    sb.faults.add(Fault("blob", status=403, times=1))
    env = {**sandbox_env(sandbox), "TAP_PARTNER_BILLING_LOGLEVEL": "DEBUG"}
    run = meltano.run(
        "--environment=sandbox",
        "run",
        "--state-id-suffix=secrets",
        "tap-partner-billing",
        "target-jsonl",
        env=env,
    )
    state = meltano.run(
        "--environment=sandbox",
        "state",
        "get",
        "sandbox:tap-partner-billing-to-target-jsonl:secrets",
    )
    everything = run.stdout + run.stderr + state.stdout + state.stderr
    assert "bookmarks" in state.stdout
    assert leaks(everything, _needles(sb, sb.config.client_secret)) == []
