"""The rule of ``tests/doc_commands.py`` holds for the README and docs/, and can fail.

Each way of breaking it is shown on a small document made here (its own README.md, docs/
and tests/), and so is what must not matter: where a block stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.doc_commands import (
    block_near,
    commands,
    doc_blocks,
    filled_in,
    problems,
    simple_commands,
)

if TYPE_CHECKING:
    from pathlib import Path

RUN_BLOCK = "<!-- commands: run demo-run -->\n```bash\nmeltano run tap target\n```\n"
HELP_BLOCK = "<!-- commands: help -->\n```sh\ntap-partner-billing --about\n```\n"


def project(tmp_path: Path, readme: str, docs: dict[str, str] | None = None) -> Path:
    """A project folder: README.md, docs/, and a test that asks for ``demo-run``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    (tmp_path / "docs").mkdir()
    for name, text in (docs or {}).items():
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_demo.py").write_text('commands("demo-run")\n', encoding="utf-8")
    return tmp_path


def test_the_readme_and_docs_keep_the_rule() -> None:
    assert problems() == []
    assert any(block.kind == "run" for block in doc_blocks())
    assert any(block.kind == "help" for block in doc_blocks())


def test_a_document_that_keeps_the_rule_has_no_problem(tmp_path: Path) -> None:
    root = project(tmp_path, f"# T\n\n{RUN_BLOCK}\n{HELP_BLOCK}\n```text\noutput\n```\n")
    assert problems(root) == []
    assert commands("demo-run", root) == ("meltano run tap target",)


def test_a_command_added_outside_a_marker_fails(tmp_path: Path) -> None:
    root = project(tmp_path, f"{RUN_BLOCK}\nThen:\n\n```bash\nmeltano state list\n```\n")
    assert problems(root) == ["README.md:8: shell commands without a '<!-- commands: … -->' marker"]


def test_a_marker_not_right_above_the_fence_does_not_count(tmp_path: Path) -> None:
    root = project(tmp_path, "<!-- commands: help -->\n\n```console\nmeltano state list\n```\n")
    assert problems(root) == ["README.md:3: shell commands without a '<!-- commands: … -->' marker"]


def test_a_run_id_no_test_asks_for_fails(tmp_path: Path) -> None:
    root = project(tmp_path, RUN_BLOCK.replace("demo-run", "orphan"))
    assert problems(root) == ["README.md:2: no test asks for commands('orphan')"]


def test_an_id_used_twice_fails(tmp_path: Path) -> None:
    root = project(tmp_path, RUN_BLOCK, {"more.md": f"# More\n\n{RUN_BLOCK}"})
    assert problems(root) == ["docs/more.md:4: id demo-run also at README.md:2"]


def test_a_block_without_a_language_fails(tmp_path: Path) -> None:
    root = project(tmp_path, f"{RUN_BLOCK}\n```\nmeltano state list\n```\n")
    assert problems(root) == ["README.md:6: a fenced block without a language"]


def test_an_indented_block_is_checked_too(tmp_path: Path) -> None:
    root = project(tmp_path, f"{RUN_BLOCK}\n1. Then:\n\n   ```bash\n   meltano install\n   ```\n")
    assert problems(root) == ["README.md:8: shell commands without a '<!-- commands: … -->' marker"]


def test_an_unknown_marker_fails(tmp_path: Path) -> None:
    for marker in ("<!-- commands: skip -->", "<!-- commands run demo-run -->"):
        root = project(tmp_path / marker[14:18], f"{marker}\n```bash\nmeltano install\n```\n")
        assert problems(root) == [f"README.md:2: unknown marker {marker!r}"]


def test_marker_mistakes_fail(tmp_path: Path) -> None:
    readme = (
        "<!-- commands: run -->\n```bash\nmeltano install\n```\n\n"
        "<!-- commands: help demo-run -->\n```bash\nmeltano install\n```\n\n"
        "<!-- commands: help -->\n```yaml\nkey: value\n```\n\n"
        "<!-- commands: help -->\n```bash\n# only a comment\n```\n"
    )
    assert problems(project(tmp_path, readme)) == [
        "README.md:2: 'run' needs an id",
        "README.md:7: 'help' takes no id (demo-run)",
        "README.md:12: a marker above a yaml block",
        "README.md:17: a shell block with no commands",
    ]


def test_moving_a_block_to_another_section_or_file_changes_nothing(tmp_path: Path) -> None:
    before = project(tmp_path / "a", f"## Usage\n\n{RUN_BLOCK}\n## Reference\n\n{HELP_BLOCK}")
    retitled = project(tmp_path / "b", f"## Reference\n\n{HELP_BLOCK}\n## Other\n\n{RUN_BLOCK}")
    moved = project(tmp_path / "c", f"## Usage\n\n{HELP_BLOCK}", {"x.md": f"# X\n\n{RUN_BLOCK}"})
    for root in (before, retitled, moved):
        assert problems(root) == []
        assert commands("demo-run", root) == ("meltano run tap target",)
        kinds = sorted((b.kind, b.commands) for b in doc_blocks(root))
        assert kinds == [
            ("help", ("tap-partner-billing --about",)),
            ("run", ("meltano run tap target",)),
        ]


def test_a_command_is_split_into_programs_as_the_shell_does() -> None:
    line = filled_in("git clone <this repository> && cd x; DBT_TARGET=pg … dbt build > o", {})
    assert simple_commands(line) == [
        ["git", "clone", "{this-repository}"],
        ["cd", "x"],
        ["dbt", "build"],
    ]
    assert simple_commands(filled_in("ls <checkout>/a  # note", {"checkout": "/c"})) == [
        ["ls", "/c/a"]
    ]


UNMARKED = "shell commands without a '<!-- commands: … -->' marker"


def test_a_fence_at_any_indentation_or_of_tildes_is_seen(tmp_path: Path) -> None:
    readme = (
        f"{RUN_BLOCK}\n1. First:\n\n   - then:\n\n      ```bash\n      meltano install\n"
        "      ```\n\n~~~~sh\nmeltano state list\n~~~\n````\n~~~~\n"
    )
    root = project(tmp_path, readme)
    assert problems(root) == [f"README.md:10: {UNMARKED}", f"README.md:14: {UNMARKED}"]
    assert [b.commands for b in doc_blocks(root)][1:] == [
        ("meltano install",),
        ("meltano state list", "~~~", "````"),  # a shorter or other fence does not close it
    ]


def test_a_language_neither_shell_nor_known_fails(tmp_path: Path) -> None:
    readme = "".join(
        f"<!-- commands: help -->\n```{lang}\nmeltano install\n```\n\n"
        for lang in ("zsh", "shell-session", "{bash}", "powershell", "ps1", "cmd", "fish")
    )
    said = problems(project(tmp_path, f"{readme}```zsh\nmeltano install\n```\n"))
    assert said == [
        *(
            f"README.md:{line}: a block in {lang!r}, neither a shell language nor one without "
            "commands"
            for line, lang in ((12, "{bash}"), (17, "powershell"), (22, "ps1"), (27, "cmd"))
        ),
        "README.md:32: a block in 'fish', neither a shell language nor one without commands",
        f"README.md:36: {UNMARKED}",
    ]


def test_a_command_in_a_text_block_fails(tmp_path: Path) -> None:
    readme = (
        f"{RUN_BLOCK}\n```text\nINFO  | Connection test passed\nmeltano run tap target\n"
        "2026-12-07T10:00:00 dbt build\n$ DBT_TARGET=postgres dbt build\n  scripts/demo\n"
        "dbt: 3 models\n```\n"
    )
    assert problems(project(tmp_path, readme)) == [
        "README.md:8: a command in a text block: 'meltano run tap target'",
        "README.md:10: a command in a text block: '$ DBT_TARGET=postgres dbt build'",
        "README.md:11: a command in a text block: 'scripts/demo'",
    ]


def test_only_a_call_asks_for_an_id(tmp_path: Path) -> None:
    root = project(tmp_path, RUN_BLOCK + "\n" + RUN_BLOCK.replace("demo-run", "ghost"))
    (root / "tests" / "test_demo.py").write_text(
        '"""Runs commands("ghost"), one day."""\n\n# commands("ghost")\n'
        'text = \'commands("ghost")\'\ndocs.commands("demo-run")\n',
        encoding="utf-8",
    )
    assert problems(root) == ["README.md:7: no test asks for commands('ghost')"]


def test_the_blocks_beside_a_marked_block_are_the_nearest_ones(tmp_path: Path) -> None:
    near = "```yaml\nplugins: {}\n```\n"
    sql = "~~~sql\nSELECT 1;\n```\nSELECT 2;\n~~~\n"  # its own fence closes it
    readme = f"```yaml\nfar: 1\n```\n\n{near}\n{RUN_BLOCK}\n{sql}\n```sql\nSELECT 3;\n```\n"
    root = project(tmp_path, readme, {"x.md": "```yaml\nother: 1\n```\n"})
    assert block_near("demo-run", "yaml", "before", root) == "plugins: {}\n"
    assert block_near("demo-run", "sql", "after", root) == "SELECT 1;\n```\nSELECT 2;\n"
    with pytest.raises(LookupError, match=r"README\.md:10: no yaml block after"):
        block_near("demo-run", "yaml", "after", root)
