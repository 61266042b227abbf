"""Every Meltano command the README shows runs as written with the pinned Meltano."""

from __future__ import annotations

import re
import shlex

import pytest

from tap_partner_billing.sandbox.server import SandboxServer
from tests.e2e.conftest import MeltanoProject, sandbox_env
from tests.e2e.services import ROOT

pytestmark = pytest.mark.e2e

# Meltano's own warnings a first run gives that say nothing about the project.
EXPECTED_WARNINGS = ("No state was found, complete import.",)


# Sections whose commands load a real warehouse (a Snowflake account, a PostgreSQL server the
# user runs): the sandbox cannot stand in for those there, so Meltano's own parser checks each
# (the command with --help: a wrong subcommand or argument order fails). What they do is run
# by their own tests: test_snowflake (the same run into the emulator), test_warehouse (dbt).
WAREHOUSE_SECTIONS = ("Loading into Snowflake", "Reconciling in the warehouse")
# Sections whose commands are for a project of the user's own, not this repository's:
# test_own_project and test_cookbook run them in a project made by `meltano init`.
OWN_PROJECT_SECTIONS = ("Installation", "Cookbook")


def _bash_commands(text: str) -> list[str]:
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("meltano ")
    ]


def readme_sections() -> dict[str, list[str]]:
    """The ``meltano …`` lines of the README's bash blocks, by ``## `` section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = part.partition("\n")
        sections[title.strip()] = _bash_commands(body)
    return sections


def readme_meltano_commands() -> list[str]:
    """Every ``meltano …`` line of the README's bash blocks, in order."""
    return [command for commands in readme_sections().values() for command in commands]


def sandbox_runnable_commands() -> list[str]:
    """The commands the sandbox can run as written in this repository's project."""
    return [
        command
        for title, commands in readme_sections().items()
        if title not in WAREHOUSE_SECTIONS + OWN_PROJECT_SECTIONS
        for command in commands
    ]


def meltano_problems(stderr: str) -> list[str]:
    """Error lines, deprecations, and warnings of Meltano itself (not of the plugins)."""

    def is_problem(line: str) -> bool:
        if "DeprecationWarning" in line or "deprecated" in line.lower():
            return True
        if re.search(r"\[(error|critical)\s*\]", line):
            return True
        meltano_warning = re.search(r"\[warning\s*\] meltano ", line) is not None
        return meltano_warning and not any(w in line for w in EXPECTED_WARNINGS)

    return [line for line in stderr.splitlines() if is_problem(line)]


def test_readme_lists_the_commands_a_user_needs() -> None:
    commands = " | ".join(readme_meltano_commands())
    for needed in (
        "install",
        "config list tap-partner-billing",
        "config set tap-partner-billing",
        "invoke tap-partner-billing --test",
        "run tap-partner-billing",
        "state list",
        "state get",
    ):
        assert needed in commands, needed


def test_readme_meltano_commands_run_as_written(
    sandbox: SandboxServer, meltano: MeltanoProject
) -> None:
    commands = sandbox_runnable_commands()
    assert commands
    project_file = meltano.root / "meltano.yml"
    saved = project_file.read_text(encoding="utf-8")
    try:
        for command in commands:
            # The README addresses a real tenant (prod); here the sandbox stands in for it.
            assert "--environment=prod" in command, command
            sandboxed = command.replace("--environment=prod", "--environment=sandbox")
            args = shlex.split(sandboxed.replace(" prod:", " sandbox:"))[1:]
            result = meltano.run(*args, env=sandbox_env(sandbox), check=False)
            assert result.returncode == 0, (command, result.stderr[-4000:])
            assert meltano_problems(result.stderr) == [], command
            if "state get" in command:
                assert '"bookmarks"' in result.stdout
            if "invoke tap-partner-billing --test" in command:
                assert "Connection test passed" in result.stderr
            if "config list" in command:
                assert "tenant_id" in result.stdout
    finally:
        project_file.write_text(saved, encoding="utf-8")  # the project is shared by the tests


def test_the_project_file_gives_no_deprecation_warning(meltano: MeltanoProject) -> None:
    result = meltano.run("--environment=sandbox", "config", "list", "tap-partner-billing")
    assert meltano_problems(result.stderr) == []
    project = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    assert "version" not in re.findall(r"^(\w+):", project, flags=re.MULTILINE)


def test_readme_warehouse_commands_are_commands_meltano_knows(meltano: MeltanoProject) -> None:
    commands = [c for t in WAREHOUSE_SECTIONS for c in readme_sections().get(t, [])]
    assert any("target-snowflake" in c for c in commands)
    for command in commands:
        args = shlex.split(command, comments=True)[1:]
        result = meltano.run(*args, "--help", check=False)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert meltano_problems(result.stderr) == [], command


def documented_meltano_commands() -> list[str]:
    """The ``meltano …`` lines the runs above do not cover, shown by the docs.

    docs/'s bash blocks, and the inline code spans of the README and docs/.
    """
    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))]
    commands = [c for text in texts[1:] for c in _bash_commands(text)]
    commands += [c for text in texts for c in re.findall(r"`(meltano [^`\n]*)`", text)]
    return sorted(set(commands))


def test_every_meltano_command_the_docs_show_is_one_meltano_knows(
    meltano: MeltanoProject,
) -> None:
    # Meltano's own parser judges each (with --help): `meltano config <plugin> set` fails.
    commands = documented_meltano_commands()
    assert "meltano config set dbt …" in commands
    # With --help only the first words are parsed: one run per two of them (~1.5 s each).
    first_words = {
        tuple(w for w in shlex.split(c)[1:] if not w.startswith("-"))[:2]: c for c in commands
    }
    for command in sorted(first_words.values()):
        args = shlex.split(command)[1:]
        result = meltano.run(*args, "--help", check=False)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert meltano_problems(result.stderr) == [], command
