"""``partner-billing-sandbox`` on a plain install: no test or sandbox extra needed.

A plain ``pip install .`` has the runtime dependencies only; the command runs here in a
Python that refuses to import what only the extras bring (trustme, azure-storage-blob), and
its HTTPS endpoints must verify against the CA bundle it wrote.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from pathlib import Path

# Runs the command's entry point with the extras' packages unimportable.
WITHOUT_EXTRAS = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"trustme", "azure", "pytest", "responses"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Refuse())
from tap_partner_billing.sandbox.__main__ import main
main(sys.argv[1:])
"""


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_the_sandbox_runs_without_the_extras_and_serves_verified_https(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    command = [sys.executable, "-c", WITHOUT_EXTRAS, "--state-dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert env_file.exists(), server.communicate(timeout=10)[0] if server.poll() else "slow"
        time.sleep(0.2)  # written in one call, but read only once complete
        settings = read_env(env_file)
        # The CA it made verifies its certificate: an answer, not an SSLError.
        answer = requests.get(
            f"{settings['PARTNER_BILLING_SANDBOX_GRAPH_URL']}/no-such-path",
            verify=settings["PARTNER_BILLING_SANDBOX_CA_BUNDLE"],
            timeout=10,
        )
        assert answer.status_code in {401, 404}
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert server.returncode == 0, output
    assert "sandbox listening: login https://127.0.0.1:" in output
