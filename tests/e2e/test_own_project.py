"""A partner's own Meltano project: the tap added from its plugin definition keeps its state.

A project made by ``meltano init`` outside the repository; the tap added by the README's
Installation, as written, from the plugin definition as shipped: the blocks marked ``run
own-project-add`` (``meltano add … --from-ref … --no-install``) and ``run own-project-install``
(``meltano install``), with between them the ``pip_url`` the YAML after the first says to
write (this checkout with its pins; nothing is on a package index); target-jsonl added by
pasting the YAML above the Usage block (``run usage-own-project``) into ``meltano.yml`` (the
``own_project`` fixture, tests/e2e/own_project.py); the tap configured in the project's
``.env`` against the sandbox; then the Usage block, and ``meltano run`` again. The second run
must be incremental, leave every line once in the output, and leave no pending export in the
state Meltano stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.doc_commands import commands
from tests.e2e.conftest import MeltanoProject, expected_counts
from tests.e2e.own_project import configure, meltano_yml, shell, summaries

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e
EXPORT_STREAMS = (
    "billed_usage",
    "unbilled_usage",
    "billed_reconciliation",
    "unbilled_reconciliation",
)


def pending_operations(value: object) -> list[Any]:
    """Every non-empty ``pending_operations`` found anywhere in ``value``."""
    if isinstance(value, list):
        return [found for item in value for found in pending_operations(item)]
    if not isinstance(value, dict):
        return []
    found = [value["pending_operations"]] if value.get("pending_operations") else []
    return found + [f for key, item in value.items() for f in pending_operations(item)]


def output_lines(output: Path) -> dict[str, list[str]]:
    return {f.stem: f.read_text(encoding="utf-8").splitlines() for f in output.glob("*.jsonl")}


def test_own_project_from_the_plugin_definition_keeps_state(
    sandbox: SandboxServer, own_project: MeltanoProject
) -> None:
    project = own_project  # made by the README's Installation (tests/e2e/own_project.py)
    [extractor] = meltano_yml(project)["plugins"]["extractors"]
    assert set(meltano_yml(project)["plugins"]) == {"extractors", "loaders"}  # nothing else
    assert "state" in extractor["capabilities"]

    # The settings where a user keeps them: the project's .env (secrets never in meltano.yml).
    sb = sandbox.sandbox
    sb.config.polls_before_success = 0  # exports succeed at once: this test is about state
    configure(project, sandbox)
    output = project.root / "output"  # the Usage section's target-jsonl config
    for old in output.glob("*.jsonl"):
        old.unlink()
    output.mkdir(exist_ok=True)  # meltano init makes it

    # The first run is the README's Usage block, as a user types it in their project.
    usage = {words.split()[1]: shell(project, words) for words in commands("usage-own-project")}
    assert {"config", "invoke", "run", "state"} <= set(usage), usage
    assert "tenant_id" in usage["config"].stdout
    assert "Connection test passed" in usage["invoke"].stderr
    first = usage["run"]
    assert {s: len(lines) for s, lines in output_lines(output).items()} == expected_counts(sb)
    before = output_lines(output)
    blobs = len(sb.faults.requests("blob"))
    assert summaries(first.stderr)["billed_usage"].startswith("partitions 2 exported")

    second = project.run("run", "tap-partner-billing", "target-jsonl")
    said = summaries(second.stderr)
    print("second run:", *(f"Run summary {s}: {t}" for s, t in said.items()), sep="\n")
    for stream in EXPORT_STREAMS:
        assert said[stream].startswith("partitions 0 exported"), said[stream]
        assert "; 0 records, 0 tombstones;" in said[stream], said[stream]
    assert len(sb.faults.requests("blob")) == blobs  # not one blob downloaded again
    after = output_lines(output)
    for stream in EXPORT_STREAMS:
        assert after[stream] == before[stream], stream  # nothing appended
        assert len(set(after[stream])) == len(after[stream]), stream  # no line twice
    # The invoice list is a FULL_TABLE stream: each run lists it again, once.
    assert after["invoices"] == before["invoices"] * 2

    stored = project.run("state", "get", "dev:tap-partner-billing-to-target-jsonl")
    state = json.loads(stored.stdout)
    assert set(state["singer_state"]["bookmarks"]) >= set(EXPORT_STREAMS)
    assert pending_operations(state) == []
