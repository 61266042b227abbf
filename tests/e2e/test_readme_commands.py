"""The README shows the commands a user needs; the Meltano commands of inline code parse.

The README's Usage block (``run usage-own-project``) runs in a partner's own project
(test_own_project.py); the other shell blocks are run by their own tests (``commands("ID")``)
or parsed by their programs (test_doc_help.py); which block is which is said by its marker,
not by the section it is in.
"""

from __future__ import annotations

import re
from itertools import dropwhile
from typing import TYPE_CHECKING

import pytest

from tests.doc_commands import doc_blocks, documents, filled_in, simple_commands
from tests.e2e.conftest import MELTANO, MeltanoProject
from tests.e2e.doc_help import Use, click_problems, meltano_problems
from tests.e2e.services import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from tests.doc_commands import DocBlock

pytestmark = pytest.mark.e2e


# The Meltano commands a user needs, each the start of a command the README shows.
NEEDED = (
    "meltano install tap-partner-billing",
    "meltano config list tap-partner-billing",
    "meltano invoke tap-partner-billing --test",
    "meltano run tap-partner-billing",
    "meltano state list",
    "meltano state get",
)


def missing_commands(blocks: list[DocBlock]) -> list[str]:
    """The ``NEEDED`` commands no program of ``blocks``' commands starts with.

    Meltano's own options before the subcommand (``--environment=prod``) do not count.
    """
    shown = [
        [words[0], *dropwhile(lambda word: word.startswith("-"), words[1:])]
        for block in blocks
        for command in block.commands
        for words in simple_commands(filled_in(command, {}))
    ]
    return [
        needed
        for needed in NEEDED
        if not any(words[: len(needed.split())] == needed.split() for words in shown)
    ]


def test_readme_lists_the_commands_a_user_needs() -> None:
    assert missing_commands([b for b in doc_blocks() if b.name == "README.md"]) == []


def test_a_needed_command_is_matched_as_a_command(tmp_path: Path) -> None:
    commands = (
        "pip install tap-partner-billing",
        "echo config list tap-partner-billing; meltano --environment=prod state list",
        "meltano invoke tap-partner-billing --test && meltano run tap-partner-billing t",
        "echo state get x",
    )
    (tmp_path / "README.md").write_text(
        "<!-- commands: help -->\n```bash\n" + "\n".join(commands) + "\n```\n", encoding="utf-8"
    )
    # Each needed command's words appear somewhere: not one is a meltano command but these.
    assert all(needed.split(maxsplit=1)[1] in " | ".join(commands) for needed in NEEDED)
    assert missing_commands(doc_blocks(tmp_path)) == [
        "meltano install tap-partner-billing",
        "meltano config list tap-partner-billing",
        "meltano state get",
    ]


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
    # Meltano's own parser judges each, as a fragment (what the text around says may be left
    # out): `meltano config <plugin> set` fails, and so does a plugin the project lacks.
    found = inline_meltano_commands()
    assert "meltano config set dbt …" in [use.command for use in found]
    broken = [
        Use("x.md:1", command, tuple(command.split()))
        for command in (
            "meltano config tap-partner-billing set",
            "meltano install tap-partner-biling",
            "meltano config set target-snowflake private_key_pasphrase …",
        )
    ]
    said = click_problems(
        [*found, *broken], MELTANO.with_name("python"), meltano.root, fragments=True
    )
    assert [problem.split("`")[1] for problem in said] == [use.command for use in broken]
