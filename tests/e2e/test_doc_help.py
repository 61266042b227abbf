"""Every command of the documents' ``help`` blocks parses by its own program (doc_help.py).

One test per program, each checking all of that program's commands in one batch; then the
same checks on broken commands in a small document made here, each of which must fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.doc_commands import ROOT, doc_blocks
from tests.e2e.doc_help import (
    bash_problems,
    help_problems,
    project_checks,
    unknown_programs,
    uses,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.doc_commands import DocBlock
    from tests.e2e.conftest import MeltanoProject

pytestmark = pytest.mark.e2e
HELP_BLOCKS = [block for block in doc_blocks() if block.kind == "help"]
IN_A_MELTANO_PROJECT = ("meltano", "dbt")


def help_blocks(tmp_path: Path, *commands: str) -> list[DocBlock]:
    """The help blocks of a README made of one block of ``commands``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = "<!-- commands: help -->\n```bash\n" + "\n".join(commands) + "\n```\n"
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    return [block for block in doc_blocks(tmp_path) if block.kind == "help"]


def test_every_program_of_the_help_blocks_has_a_check() -> None:
    assert {use.program for use in uses(HELP_BLOCKS)} >= {"meltano", "pip", "shell"}
    assert unknown_programs(HELP_BLOCKS, ROOT) == []
    assert bash_problems(HELP_BLOCKS) == []


# The programs the documents' help blocks run (an unknown one fails the test above).
PROGRAMS = sorted({use.program for use in uses(HELP_BLOCKS)} & set(project_checks(ROOT)))


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_help_commands_parse_by_their_own_program(
    program: str, request: pytest.FixtureRequest
) -> None:
    project = ROOT
    if program in IN_A_MELTANO_PROJECT:
        meltano: MeltanoProject = request.getfixturevalue("meltano")
        project = meltano.root
    assert help_problems(HELP_BLOCKS, program, project) == []


def test_an_unknown_program_fails_naming_the_block(tmp_path: Path) -> None:
    blocks = help_blocks(tmp_path, "meltano install", "terraform apply  # a new tool")
    assert unknown_programs(blocks, ROOT) == [
        "README.md:2: `terraform apply  # a new tool`: no check for 'terraform'"
    ]


def test_the_checks_fail_on_broken_commands(tmp_path: Path) -> None:
    blocks = help_blocks(
        tmp_path,
        "tap-partner-billing --config config.json --about --format=markdown",
        "tap-partner-billing --config config.json --tset",
        "tap-partner-billing --config config.json --catalog catalog.json --state state.json",
        "tap-partner-billing --version && tap-partner-billing --config config.json --discover",
        "tap-partner-billing --about --format=mrkdown",
        "partner-billing-sandbox --export-seconds 60 --max-runing-exports 3",
        "partner-billing-sandbox --max-running-exports 3",
        ".venv/bin/partner-billing-sandbox --export-seconds 60 --max-running-exports 3",
        "venv/bin/partner-billing-sandbox",
        "pip install -e . -c constraints/tap.txt",
        "pip install --editabel .",
        "pip install -e ./nowhere 'meltano>=4<5' -c constraints/nowhere.txt",
        "pipx install --force .",
        "pipx install ./nowhere",
        "scripts/demo && scripts/nowhere",
        "cp config.exmple.json config.json && cd nowhere",
    )
    problems = {p: help_problems(blocks, p, ROOT) for p in project_checks(ROOT)}
    assert problems["tap-partner-billing"] == [
        (
            "README.md:2: `tap-partner-billing --config config.json --tset`: exit 2: "
            "Usage: tap-partner-billing [OPTIONS] | Try 'tap-partner-billing --help' for help. | "
            "Error: No such option '--tset'. (Did you mean one of: '--state', '--test'?)"
        ),
        (
            "README.md:2: `tap-partner-billing --about --format=mrkdown`: exit 2: "
            "Usage: tap-partner-billing [OPTIONS] | Try 'tap-partner-billing --help' for help. | "
            "Error: Invalid value for '--format': 'mrkdown' is not one of 'json', 'markdown'."
        ),
    ]
    sandbox = problems["partner-billing-sandbox"]
    assert len(sandbox) == 2, sandbox  # the .venv/bin one starts
    assert "unrecognized arguments: --max-runing-exports 3" in sandbox[0]
    assert "max_running_exports needs export_seconds" in sandbox[1]
    assert unknown_programs(blocks, ROOT) == [
        (
            "README.md:2: `venv/bin/partner-billing-sandbox`: "
            "no check for 'venv/bin/partner-billing-sandbox'"
        )
    ]
    assert problems["pip"] == [
        "README.md:2: `pip install --editabel .`: pip rejects its options (exit 2)",
        (
            "README.md:2: `pip install -e ./nowhere 'meltano>=4<5' -c constraints/nowhere.txt`: "
            "constraints/nowhere.txt is not in this checkout"
        ),
        (
            "README.md:2: `pip install -e ./nowhere 'meltano>=4<5' -c constraints/nowhere.txt`: "
            "./nowhere is not in this checkout"
        ),
        (
            "README.md:2: `pip install -e ./nowhere 'meltano>=4<5' -c constraints/nowhere.txt`: "
            "not a requirement: Expected comma (within version specifier), semicolon (after "
            "version specifier) or end"
        ),
    ]
    assert len(problems["pipx"]) == 2, problems["pipx"]
    assert "pipx options are not parsed here: ['--force']" in problems["pipx"][0]
    assert problems["pipx"][1].endswith("./nowhere is not in this checkout")
    assert problems["scripts"] == [
        (
            "README.md:2: `scripts/demo && scripts/nowhere`: "
            "scripts/nowhere is not an executable file in this checkout"
        )
    ]
    assert problems["shell"] == [
        (
            "README.md:2: `cp config.exmple.json config.json && cd nowhere`: "
            "config.exmple.json is not in this checkout"
        ),
        (
            "README.md:2: `cp config.exmple.json config.json && cd nowhere`: "
            "nowhere is not a folder in this checkout"
        ),
    ]
    assert problems["meltano"] == problems["dbt"] == []  # none in this block


def test_bash_rejects_a_block_that_is_not_shell(tmp_path: Path) -> None:
    assert bash_problems(help_blocks(tmp_path / "good", "git clone <this repository>")) == []
    [problem] = bash_problems(help_blocks(tmp_path / "bad", "if meltano install; done"))
    assert problem.startswith("README.md:2: bash -n: bash: line 1: syntax error")


def test_the_meltano_and_dbt_checks_fail_on_broken_commands(
    meltano: MeltanoProject, tmp_path: Path
) -> None:
    blocks = help_blocks(
        tmp_path,
        "meltano --environment=prod config set tap-partner-billing start_date 2026-01",
        "meltano --environment=prod confg list tap-partner-billing",
        "meltano config tap-partner-billing set start_date 2026-01",
        "meltano run tap-partner-billing target-jsonl --ful-refresh",
        "DBT_TARGET=postgres meltano invoke dbt:build",
        "meltano invoke dbt:biuld",
        "meltano invoke dbt-utility:build",
        "meltano run tap-partner-billing target-postgress",
        "meltano config set tap-partner-billing refresh_invoice_id x",
        "meltano config set tap-partner-billing refresh_invoice_ids",
        "meltano config set target-snowflake private_key_passphrase …",
        "meltano state get",
        "meltano config list tap-partner-billing extra",
        "meltano select tap-partner-billing unbilled_usage '*' && meltano install target-postgres",
        "meltano state set --force prod:tap-partner-billing-to-target-snowflake --input-file x",
        "meltano state get prod:tap-partner-billing-to-target-snowflak",
        "meltano --environment=production state list",
        "dbt build --select staging",
        "dbt biuld",
        "dbt build --selct staging",
        "dbt build --vars '{a: [}'",
    )
    said = help_problems(blocks, "meltano", meltano.root) + help_problems(
        blocks, "dbt", meltano.root
    )
    assert [problem.split("`")[1] for problem in said] == [
        "meltano --environment=prod confg list tap-partner-billing",
        "meltano config tap-partner-billing set start_date 2026-01",
        "meltano run tap-partner-billing target-jsonl --ful-refresh",
        "meltano invoke dbt:biuld",
        "meltano invoke dbt-utility:build",
        "meltano run tap-partner-billing target-postgress",
        "meltano config set tap-partner-billing refresh_invoice_id x",
        "meltano config set tap-partner-billing refresh_invoice_ids",
        "meltano state get",
        "meltano config list tap-partner-billing extra",
        "meltano state get prod:tap-partner-billing-to-target-snowflak",
        "meltano --environment=production state list",
        "dbt biuld",
        "dbt build --selct staging",
        "dbt build --vars '{a: [}'",
    ]
    reasons = [problem.split("`: ", 1)[1] for problem in said]
    assert "No such command 'confg'" in reasons[0]
    assert "No such command 'tap-partner-billing'" in reasons[1]
    assert "No such option '--ful-refresh'" in reasons[2]
    assert reasons[3:8] == [
        "'biuld' is not a command of dbt (build, compile, report, test)",
        "'dbt-utility' is not a plugin of the project",
        "'target-postgress' is not a plugin or job of the project",
        "'refresh_invoice_id' is not a setting of tap-partner-billing",
        "config set tap-partner-billing needs a setting and a value",
    ]
    assert "Missing argument 'STATE_ID'" in reasons[8]
    assert "Got unexpected extra argument (extra)" in reasons[9]
    assert reasons[10:12] == [
        (
            "state ID 'prod:tap-partner-billing-to-target-snowflak' is not "
            "ENVIRONMENT:EXTRACTOR-to-LOADER of the project's plugins"
        ),
        "environment 'production' is neither the project's nor one meltano init makes",
    ]
    assert "No such command 'biuld'" in reasons[12]
    assert "No such option: --selct" in reasons[13] or "No such option '--selct'" in reasons[13]
    assert "--vars" in reasons[14]
