"""The shell commands the README and ``docs/`` show, selected by a marker in the document.

Every fenced block in ``README.md`` and ``docs/*.md`` names its language. A block in a shell
language (bash, sh, shell, console) is commands a user types, and the line right above its
fence says how they are checked::

    <!-- commands: run ID -->   a test runs them: it calls ``commands("ID")``
    <!-- commands: help -->     each is checked by its own CLI's ``--help`` (test_doc_commands)

A shell block without a marker, a block without a language, an unknown marker, an id used
twice or an id no test asks for is a problem (``problems``): moving or retitling text cannot
drop a command unnoticed. Sections and titles play no part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELLS = frozenset({"bash", "sh", "shell", "console"})
MARKER = re.compile(r"^<!--\s*commands:\s*(?P<kind>\S+)(?:\s+(?P<id>[\w.-]+))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class DocBlock:
    """One fenced block: where it is, its language, its marker and its command lines."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    marker: str | None  # the whole marker line, when there is one
    kind: str | None  # run or help
    block_id: str | None
    commands: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def command_lines(body: str) -> tuple[str, ...]:
    """The commands of a block: continuation lines joined, comments and blank lines dropped."""
    commands: list[str] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append(pending + line)
        pending = ""
    if pending:
        commands.append(pending.rstrip())
    return tuple(commands)


def blocks_of(path: Path) -> list[DocBlock]:
    """The fenced blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[DocBlock] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        above = lines[index - 1].strip() if index > 0 else ""
        marker = MARKER.match(above)
        blocks.append(
            DocBlock(
                path=path,
                line=index + 1,
                lang=opening["lang"].lower(),
                marker=above if above.startswith("<!-- commands") else None,
                kind=marker["kind"] if marker else None,
                block_id=marker["id"] if marker else None,
                commands=command_lines("\n".join(lines[index + 1 : end])),
            )
        )
        index = end + 1
    return blocks


def doc_blocks(root: Path = ROOT) -> list[DocBlock]:
    """Every fenced block of the README and docs/."""
    return [block for path in documents(root) for block in blocks_of(path)]


def commands(block_id: str, root: Path = ROOT) -> tuple[str, ...]:
    """The commands of the block marked ``run ID``; a test that runs them asks for them so."""
    found = [b for b in doc_blocks(root) if b.kind == "run" and b.block_id == block_id]
    if len(found) != 1:
        raise LookupError(f"{len(found)} blocks are marked 'commands: run {block_id}'")
    if not found[0].commands:
        raise LookupError(f"{found[0].where}: the block marked run {block_id} has no commands")
    return found[0].commands


def claimed_ids(tests_dir: Path) -> set[str]:
    """The ids the tests ask for: every ``commands("ID")`` in a test module's source."""
    pattern = re.compile(r"""\bcommands\(\s*["']([\w.-]+)["']""")
    return {
        match
        for source in sorted(tests_dir.rglob("*.py"))
        for match in pattern.findall(source.read_text(encoding="utf-8"))
    }


def problems(root: Path = ROOT, tests_dir: Path | None = None) -> list[str]:
    """What breaks the rule in the module docstring, each naming the file and line."""
    found: list[str] = []
    seen: dict[str, str] = {}
    claimed = claimed_ids(tests_dir if tests_dir is not None else root / "tests")
    for block in doc_blocks(root):
        if not block.lang:
            found.append(f"{block.where}: a fenced block without a language")
            continue
        if block.marker is not None and block.kind not in ("run", "help"):
            found.append(f"{block.where}: unknown marker {block.marker!r}")
            continue
        if block.lang not in SHELLS:
            if block.marker is not None:
                found.append(f"{block.where}: a marker above a {block.lang} block")
            continue
        if block.kind is None:
            found.append(f"{block.where}: shell commands without a '<!-- commands: … -->' marker")
        elif block.kind == "run":
            if block.block_id is None:
                found.append(f"{block.where}: 'run' needs an id")
            elif block.block_id in seen:
                found.append(f"{block.where}: id {block.block_id} also at {seen[block.block_id]}")
            elif block.block_id not in claimed:
                found.append(f"{block.where}: no test asks for commands({block.block_id!r})")
            else:
                seen[block.block_id] = block.where
        if not block.commands:
            found.append(f"{block.where}: a shell block with no commands")
    return found
