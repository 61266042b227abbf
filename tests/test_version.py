"""The version is written once, in pyproject.toml, and everything that shows it agrees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import tap_partner_billing
from tap_partner_billing.service.url_policy import CheckedSession

ROOT = Path(__file__).resolve().parents[1]
REINSTALL = "the installed metadata is stale: run scripts/bootstrap after changing the version"


def declared_version() -> str:
    """``[project] version`` of pyproject.toml (tomllib is 3.11+; the tap supports 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version = "([^"]+)"$', project, flags=re.MULTILINE)
    assert found, "pyproject.toml declares no [project] version"
    return found.group(1)


def tap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tap_partner_billing", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_the_package_reads_the_version_pyproject_declares() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z0-9.+-]*)", tap_partner_billing.__version__)
    assert tap_partner_billing.__version__ == declared_version(), REINSTALL


def test_version_and_about_show_the_same_version() -> None:
    version = declared_version()
    shown = tap("--version")
    assert f"tap-partner-billing v{version}," in shown.stdout + shown.stderr
    about = json.loads(tap("--about", "--format=json").stdout)
    assert about["version"] == version


def test_the_user_agent_carries_the_version() -> None:
    with CheckedSession(None) as session:
        assert session.headers["User-Agent"] == f"tap-partner-billing/{declared_version()}"


def test_no_source_file_repeats_the_version() -> None:
    """Only pyproject.toml writes it: a literal copy elsewhere would go stale on a bump."""
    literal = re.compile(rf"""["']{re.escape(declared_version())}["']""")
    repeats = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tap_partner_billing").rglob("*.py"))
        if literal.search(path.read_text(encoding="utf-8"))
    ]
    assert repeats == []
