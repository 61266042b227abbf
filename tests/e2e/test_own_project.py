"""A partner's own Meltano project: the tap added from its plugin definition keeps its state.

A project made by ``meltano init`` outside the repository; the tap added by the README's
Installation, as written, from the plugin definition as shipped: the blocks marked ``run
own-project-add`` (``meltano add … --from-ref … --no-install``) and ``run own-project-install``
(``meltano install``), with between them the ``pip_url`` the YAML after the first says to
write (this checkout with its pins; nothing is on a package index); target-jsonl
added the same way; the tap configured in the project's ``.env`` against the sandbox; then
``meltano run`` twice. The second run must be incremental, leave every line once in the
output, and leave no pending export in the state Meltano stored.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.doc_commands import commands, next_block, run_block
from tests.e2e.conftest import MeltanoProject, expected_counts
from tests.e2e.services import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e
DEFINITION = ROOT / "plugin" / "tap-partner-billing.yml"
EXPORT_STREAMS = (
    "billed_usage",
    "unbilled_usage",
    "billed_reconciliation",
    "unbilled_reconciliation",
)


def target_jsonl(folder: Path) -> Path:
    """A plugin definition of target-jsonl (no Hub here), pinned as the repository pins it."""
    ref = folder / "target-jsonl.yml"
    loader = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))["plugins"][
        "loaders"
    ][0]
    assert loader["name"] == "target-jsonl"
    definition = {
        **{k: loader[k] for k in ("name", "namespace", "executable", "settings")},
        "pip_url": loader["pip_url"].replace("${MELTANO_PROJECT_ROOT}", str(ROOT)),
    }
    ref.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return ref


def meltano_args(lines: tuple[str, ...]) -> list[list[str]]:
    """The arguments of each ``meltano`` command of ``lines``, ``<checkout>`` this checkout."""
    args = [shlex.split(line.replace("<checkout>", str(ROOT)), comments=True) for line in lines]
    assert all(words[0] == "meltano" for words in args), lines
    return [words[1:] for words in args]


def readme_installation() -> tuple[list[str], str, list[list[str]]]:
    """The README's add command, the ``pip_url`` it says to write, and the commands after."""
    [add] = meltano_args(commands("own-project-add"))
    assert add[:2] == ["add", "--plugin-type"], add
    assert "--no-install" in add, add  # the definition's pip_url is a placeholder
    assert add[add.index("--from-ref") + 1] == str(DEFINITION), add  # the file as shipped
    yaml_lines = next_block(run_block("own-project-add"), "yaml").commands
    [written] = [line for line in yaml_lines if line.startswith("pip_url:")]
    pip_url = yaml.safe_load(written)["pip_url"].replace("<checkout>", str(ROOT))
    return add, pip_url, meltano_args(commands("own-project-install"))


def set_pip_url(project: MeltanoProject, pip_url: str) -> None:
    """What the README asks of the user: the extractor's ``pip_url`` in meltano.yml replaced."""
    path = project.root / "meltano.yml"
    meltano_yml = yaml.safe_load(path.read_text(encoding="utf-8"))
    [extractor] = meltano_yml["plugins"]["extractors"]
    assert extractor["pip_url"] == yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))["pip_url"]
    extractor["pip_url"] = pip_url
    path.write_text(yaml.safe_dump(meltano_yml, sort_keys=False), encoding="utf-8")


def pending_operations(value: Any) -> list[Any]:  # noqa: ANN401 - any JSON value
    """Every non-empty ``pending_operations`` found anywhere in ``value``."""
    if isinstance(value, list):
        return [found for item in value for found in pending_operations(item)]
    if not isinstance(value, dict):
        return []
    found = [value["pending_operations"]] if value.get("pending_operations") else []
    return found + [f for key, item in value.items() for f in pending_operations(item)]


def summaries(stderr: str) -> dict[str, str]:
    """The tap's end-of-run summary line per stream, from Meltano's log."""
    lines = re.findall(r"Run summary (\w+): ([^\n\"]*)", stderr)
    return {stream: text.strip() for stream, text in lines}


def output_lines(output: Path) -> dict[str, list[str]]:
    return {f.stem: f.read_text(encoding="utf-8").splitlines() for f in output.glob("*.jsonl")}


def test_own_project_from_the_plugin_definition_keeps_state(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT.resolve())
    MeltanoProject(tmp_path).run("init", "own-project", "--no_usage_stats")
    project = MeltanoProject(tmp_path / "own-project")
    assert not (project.root / "plugin").exists()  # nothing of the repository in it

    # The README's Installation, as written, on the definition as shipped.
    add, pip_url, rest = readme_installation()
    project.run(*add)
    set_pip_url(project, pip_url)
    assert rest == [["install", "tap-partner-billing"]], rest
    for args in rest:
        project.run(*args)
    loader = str(target_jsonl(tmp_path))
    project.run("add", "--plugin-type", "loader", "target-jsonl", "--from-ref", loader)
    meltano_yml = yaml.safe_load((project.root / "meltano.yml").read_text(encoding="utf-8"))
    [extractor] = meltano_yml["plugins"]["extractors"]
    assert set(meltano_yml["plugins"]) == {"extractors", "loaders"}  # nothing else added
    assert "state" in extractor["capabilities"]

    # The settings where a user keeps them: the project's .env (secrets never in meltano.yml).
    sb = sandbox.sandbox
    sb.config.polls_before_success = 0  # exports succeed at once: this test is about state
    config = sandbox.tap_config()
    env_lines = [
        f"TAP_PARTNER_BILLING_{name.upper()}={json.dumps(v) if isinstance(v, list) else v}"
        for name, v in config.items()
    ]
    env_lines += [
        f"REQUESTS_CA_BUNDLE={sandbox.tls.ca_bundle}",
        "TARGET_JSONL_DESTINATION_PATH=output",
        "TARGET_JSONL_DO_TIMESTAMP_FILE=false",
    ]
    (project.root / ".env").write_text("\n".join(env_lines) + "\n", encoding="utf-8")
    output = project.root / "output"
    output.mkdir(exist_ok=True)  # meltano init makes it

    first = project.run("run", "tap-partner-billing", "target-jsonl")
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
