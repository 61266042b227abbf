"""The sandbox Meltano environment: a production ``.env`` beside it, and starting it by hand.

A ``.env`` made from ``.env.example`` for a real tenant sits in the project: the sandbox
environment still authenticates as the sandbox's app (its ``env:`` outranks ``.env`` and the
shell), the sandbox never sees the ``.env``'s secret, and nothing is written to the ``.env``'s
output folder. Then the commands of docs/sandbox.md ("Starting the sandbox by hand") run as
written, in a project folder like the clone.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.service import Sandbox
from tests.doc_commands import commands
from tests.e2e.conftest import (
    SANDBOX_OUTPUT,
    MeltanoProject,
    clean_output,
    expected_counts,
    linked_project,
    sandbox_env,
)
from tests.e2e.services import ROOT, WORK

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e

# A real tenant's endpoints (the tap's defaults), and a certificate instead of the secret.
PRODUCTION_URLS = {
    "AUTHORITY_URL": "https://login.microsoftonline.com",
    "GRAPH_URL": "https://graph.microsoft.com/v1.0",
    "PARTNER_CENTER_URL": "https://api.partnercenter.microsoft.com",
}
CERTIFICATE = {
    "CLIENT_CERTIFICATE_PATH": "/etc/billing/app.pem",
    "CLIENT_CERTIFICATE_THUMBPRINT": "AB" * 20,
}


def production_env_file(secret: str | None) -> str:
    """``.env.example`` filled in for a real tenant, with every identity and endpoint set.

    ``secret`` None: the certificate instead. The first month stays ``.env.example``'s and
    the currencies become EUR: the sandbox environment pins both to the sandbox's data, so the
    run's records are still the sandbox's ground truth.
    """
    filled = {
        "TAP_PARTNER_BILLING_TENANT_ID": "4b9a1c5e-0d2f-4e8a-9c71-2f6b3d8e5a10",
        "TAP_PARTNER_BILLING_CLIENT_ID": "9d0e6f3a-71c2-4b58-a3e4-58c1f2b7d906",
        "TAP_PARTNER_BILLING_CLIENT_SECRET": secret,
        "TAP_PARTNER_BILLING_CURRENCY_CODES": """'["EUR"]'""",
    }
    lines = []
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        if name not in filled:
            lines.append(line)
        elif filled[name] is not None:
            lines.append(f"{name}={filled[name]}")
    settings = {**PRODUCTION_URLS, **(CERTIFICATE if secret is None else {})}
    lines += [f"TAP_PARTNER_BILLING_{name}={value}" for name, value in settings.items()]
    # The user's own output folder, which the sandbox must leave alone.
    lines += ["TARGET_JSONL_DESTINATION_PATH=output", "DBT_JSONL_DIR=output"]
    return "\n".join(lines) + "\n"


def test_a_production_env_file_does_not_reach_the_sandbox(
    sandbox: SandboxServer, meltano: MeltanoProject, tmp_path: Path
) -> None:
    sb = sandbox.sandbox
    sb.config.polls_before_success = 0  # exports succeed at once: this test is about settings
    project = linked_project(meltano, tmp_path / "project")
    secret = f"prod-secret-{secrets.token_hex(8)}"
    env_file = project.root / ".env"
    env_file.write_text(production_env_file(secret), encoding="utf-8")
    # And one setting exported in the shell, which Meltano ranks above .env.
    env = {**sandbox_env(sandbox), "TAP_PARTNER_BILLING_CLIENT_ID": "from-the-shell"}

    tested = project.run(
        "--environment=sandbox", "invoke", "tap-partner-billing", "--test", env=env
    )
    assert "Connection test passed" in tested.stderr
    output = clean_output(project)
    run = project.run(
        "--environment=sandbox", "run", "tap-partner-billing", "target-jsonl", env=env
    )
    counts = {f.stem: len(f.read_text().splitlines()) for f in output.glob("*.jsonl")}
    assert counts == expected_counts(sb)
    assert not (project.root / "output").exists()  # the .env's folder: not the sandbox's

    tokens = sb.faults.requests("token")
    assert tokens
    # The sandbox answers 200 only to its own client id and secret (AADSTS7000215 otherwise).
    assert {(e.status, e.path.split("/")[1]) for e in tokens} == {(200, "contoso-demo.example")}
    everything = tested.stdout + tested.stderr + run.stdout + run.stderr
    assert secret not in everything

    # A production .env with a certificate instead of the secret: the sandbox's secret still.
    env_file.write_text(production_env_file(None), encoding="utf-8")
    tested = project.run(
        "--environment=sandbox", "invoke", "tap-partner-billing", "--test", env=env
    )
    assert "Connection test passed" in tested.stderr
    assert {e.status for e in sb.faults.requests("token")} == {200}


def test_starting_the_sandbox_by_hand_runs_as_documented(
    meltano: MeltanoProject, tmp_path: Path
) -> None:
    """docs/sandbox.md's commands in a folder like the clone: its meltano.yml and scripts/."""
    project = linked_project(meltano, tmp_path / "clone")
    (project.root / "scripts").symlink_to(ROOT / "scripts")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PARTNER_BILLING_")}
    environ["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    environ["PATH"] = os.pathsep.join(
        p for p in environ["PATH"].split(os.pathsep) if str(WORK) not in p
    )
    documented = commands("sandbox-by-hand")
    assert [c.split()[:3] for c in documented] == [
        ["scripts/sandbox", "meltano", "--environment=sandbox"]
    ] * 2
    results = []
    for command in documented:
        result = subprocess.run(
            shlex.split(command),
            cwd=project.root,
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (command, result.stderr[-4000:])
        # The wrapper stopped the sandbox it started.
        [pid] = re.findall(r"sandbox: running on 127\.0\.0\.1 \(PID (\d+)", result.stderr)
        assert not Path(f"/proc/{pid}").exists(), command
        assert "sandbox: stopped" in result.stderr
        results.append(result)
    assert "Connection test passed" in results[0].stderr
    output = project.root / SANDBOX_OUTPUT
    counts = {f.stem: len(f.read_text().splitlines()) for f in output.glob("*.jsonl")}
    assert counts == expected_counts(Sandbox(SandboxConfig()))  # the sandbox's default data
