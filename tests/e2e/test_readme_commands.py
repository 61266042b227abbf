"""The README's Meltano usage runs as a user types it; the Meltano commands of inline code parse.

The block marked ``<!-- commands: run usage-meltano-sandbox -->`` runs here, every command
of it, in this repository's Meltano project with the sandbox standing in for the real
tenant (``--environment=prod`` → ``sandbox``: the only substitution). The other shell
blocks are run by their own tests (``commands("ID")``) or parsed by their programs
(test_doc_help.py); which block is which is said by its marker, not by the section it is in.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from tap_partner_billing.sandbox.server import SandboxServer
from tests.doc_commands import commands, doc_blocks, documents, filled_in, simple_commands
from tests.e2e.conftest import MELTANO, MeltanoProject, sandbox_env
from tests.e2e.doc_help import Use, click_problems, meltano_problems
from tests.e2e.services import ROOT

pytestmark = pytest.mark.e2e


def test_readme_lists_the_commands_a_user_needs() -> None:
    shown = " | ".join(
        command for block in doc_blocks() if block.name == "README.md" for command in block.commands
    )
    for needed in (
        "install",
        "config list tap-partner-billing",
        "config set tap-partner-billing",
        "invoke tap-partner-billing --test",
        "run tap-partner-billing",
        "state list",
        "state get",
    ):
        assert needed in shown, needed


def meltano_on_the_path(command: str) -> None:
    """An ``export PATH=…`` line puts this checkout's Meltano first, run where the README is."""
    env = {k: v for k, v in os.environ.items() if k != "PWD"}
    result = subprocess.run(
        ["bash", "-c", f"{command}\ncommand -v meltano"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(MELTANO), (command, result.stdout)


def test_readme_meltano_commands_run_as_written(
    sandbox: SandboxServer, meltano: MeltanoProject
) -> None:
    lines = commands("usage-meltano-sandbox")
    project_file = meltano.root / "meltano.yml"
    saved = project_file.read_text(encoding="utf-8")
    ran = []
    try:
        for command in lines:
            [words] = simple_commands(filled_in(command, {}))
            if words[0] == "export":
                meltano_on_the_path(command)
                continue
            assert words[0] == "meltano", f"{command!r}: this test runs meltano and export only"
            # The README addresses a real tenant (prod); here the sandbox stands in for it.
            assert "--environment=prod" in command, command
            sandboxed = command.replace("--environment=prod", "--environment=sandbox")
            args = shlex.split(sandboxed.replace(" prod:", " sandbox:"), comments=True)[1:]
            result = meltano.run(*args, env=sandbox_env(sandbox), check=False)
            assert result.returncode == 0, (command, result.stderr[-4000:])
            assert meltano_problems(result.stderr) == [], command
            if "state get" in command:
                assert '"bookmarks"' in result.stdout
            if "invoke tap-partner-billing --test" in command:
                assert "Connection test passed" in result.stderr
            if "config list" in command:
                assert "tenant_id" in result.stdout
            ran.append(args[1])
    finally:
        project_file.write_text(saved, encoding="utf-8")  # the project is shared by the tests
    assert {"config", "invoke", "run", "state"} <= set(ran), ran


def test_the_project_file_gives_no_deprecation_warning(meltano: MeltanoProject) -> None:
    result = meltano.run("--environment=sandbox", "config", "list", "tap-partner-billing")
    assert meltano_problems(result.stderr) == []
    project = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    assert "version" not in re.findall(r"^(\w+):", project, flags=re.MULTILINE)


def inline_meltano_commands() -> list[Use]:
    """The ``meltano …`` of the README's and docs/'s inline code, each with its file:line."""
    found = []
    for path in documents():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            for command in re.findall(r"`(meltano [^`]*)`", line):
                words = tuple(simple_commands(filled_in(command, {}))[0])
                found.append(Use(f"{path.relative_to(ROOT)}:{number}", command, words))
    return found


def test_every_meltano_command_of_inline_code_is_one_meltano_knows(
    meltano: MeltanoProject,
) -> None:
    # Meltano's own parser judges each (with --help): `meltano config <plugin> set` fails.
    found = inline_meltano_commands()
    assert "meltano config set dbt …" in [use.command for use in found]
    assert click_problems(found, MELTANO.with_name("python"), meltano.root) == []
