"""No secret on stderr, tracebacks included, when a hostile service echoes one back.

Each case is a command-line run (the SDK logs the final traceback through its excepthook)
at the default level and at DEBUG. The scan is shown to work: the same run with redaction
switched off (a planted leak) is caught by it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from tests.hostile import (
    BLOB_ROOT,
    CLIENT_SECRET,
    OPERATION_PATH,
    SAS,
    SIG,
    TENANT,
    TOKEN,
    HostileServer,
    json_reply,
    manifest,
    run_cli,
    succeeded,
    write_config,
)
from tests.scan import leaks

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SECRETS = [CLIENT_SECRET, TOKEN, SIG, SAS]


def _secret_echoed_by_the_token_endpoint(origin: HostileServer) -> str:
    origin.routes["POST", f"/{TENANT}/oauth2/v2.0/token"] = json_reply(
        401,
        {
            "error": "invalid_client",
            "error_description": f"AADSTS7000215: Invalid client secret '{CLIENT_SECRET}'.",
        },
    )
    return "AADSTS7000215"


def _token_echoed_by_graph(origin: HostileServer) -> str:
    origin.routes["GET", OPERATION_PATH] = json_reply(
        400,
        {"error": {"code": "BadRequest", "message": f"token Bearer {TOKEN} / raw {TOKEN}"}},
    )
    return "operation poll answered HTTP 400"


def _sas_in_a_url_requests_cannot_send(origin: HostileServer) -> str:
    body = succeeded(origin.origin)
    body["resourceLocation"] = {
        **manifest(origin.origin),
        "rootDirectory": "https://127.0.0.1:99999/x",
    }
    origin.routes["GET", OPERATION_PATH] = json_reply(200, body)
    return "rootDirectory"


def _sas_echoed_by_storage(origin: HostileServer) -> str:
    url = f"{origin.origin}{BLOB_ROOT}/part-0.json.gz?{SAS}"
    origin.routes["GET", f"{BLOB_ROOT}/part-0.json.gz"] = (
        403,
        {"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"},
        f"<Error><Code>AuthenticationFailed</Code><Url>{url}</Url><Sig>{SIG}</Sig></Error>".encode(),
    )
    return "refused the SAS (HTTP 403)"


def _manifest_error_with_the_sas(origin: HostileServer) -> str:
    body = succeeded(origin.origin)
    body["resourceLocation"] = {**manifest(origin.origin), "dataFormat": f"parquet?{SAS}"}
    origin.routes["GET", OPERATION_PATH] = json_reply(200, body)
    return "dataFormat"


CASES: dict[str, Callable[[HostileServer], str]] = {
    "client secret echoed by the token endpoint": _secret_echoed_by_the_token_endpoint,
    "token echoed in a Graph error": _token_echoed_by_graph,
    "SAS in a URL requests cannot send": _sas_in_a_url_requests_cannot_send,
    "SAS echoed by blob storage": _sas_echoed_by_storage,
    "SAS inside a manifest value": _manifest_error_with_the_sas,
}


@pytest.mark.parametrize("level", ["default", "DEBUG"])
@pytest.mark.parametrize("case", CASES)
def test_no_secret_on_stderr_even_in_tracebacks(
    case: str, level: str, origin: HostileServer, tmp_path: Path
) -> None:
    expected = CASES[case](origin)
    env = {} if level == "default" else {"TAP_PARTNER_BILLING_LOGLEVEL": "DEBUG"}
    run = run_cli(write_config(origin, tmp_path, max_parallel_downloads=1), env=env)
    assert run.returncode == 1
    assert expected in run.stderr  # the run says what went wrong …
    # … as one message; its traceback (scanned too) only at DEBUG: cli.user_errors
    if level == "DEBUG":
        assert "Traceback" in run.stderr or '"exception"' in run.stderr
    else:
        assert "Traceback" not in run.stderr
    everything = run.stdout.decode() + run.stderr
    assert leaks(everything, SECRETS) == []


def test_the_scan_catches_a_planted_leak(origin: HostileServer, tmp_path: Path) -> None:
    """The same run with redaction switched off: the scan must find the echoed secret."""
    _secret_echoed_by_the_token_endpoint(origin)
    config = write_config(origin, tmp_path)
    planted = (  # redact_text made the identity before any module imports it
        "import sys, tap_partner_billing.redact as r; r.redact_text = lambda text: text; "
        "import tap_partner_billing.tap as t; sys.argv = ['tap', '--config', sys.argv[1]]; "
        "t.TapPartnerBilling.cli()"
    )
    import subprocess

    run = subprocess.run(
        [sys.executable, "-c", planted, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert leaks(run.stdout + run.stderr, SECRETS) == [CLIENT_SECRET[:6] + "…"]
