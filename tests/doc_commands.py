"""The shell commands the README and ``docs/`` show, selected by a marker in the document.

Every fenced block in ``README.md`` and ``docs/*.md`` (at any indentation, as in a list item;
backticks or tildes) names its language, and the language is one of ``LANGUAGES``: a shell
language (``SHELLS``) or one that holds no commands (``NOT_COMMANDS``); any other
(``{bash}``, ``powershell``, ``fish``, …) is a problem. A shell block is commands a user
types, and the line right above its fence says how they are checked::

    <!-- commands: run ID -->   a test runs them: it calls ``commands("ID")``
    <!-- commands: help -->     each is parsed by its own program (tests/e2e/doc_help.py)

A shell block without a marker, a block without a language, an unknown marker, an id used
twice or an id no test asks for (a call ``commands("ID")`` in a module under ``tests/``; the
same text in a docstring or comment does not count) is a problem (``problems``): moving or
retitling text cannot drop a command unnoticed. Sections and titles play no part.

Output samples are ``text`` blocks; a line of one that starts as a command does (a known
program, ``PROGRAM``, after an optional ``$`` prompt) is a problem too: a command put in a
``text`` block to escape the check. Output lines start otherwise (``INFO``, a timestamp, a
name with a colon).

In a command, ``<name>`` is a placeholder the user fills in (``<checkout>``: the clone's
absolute path) and ``…`` stands for what the text around says; ``simple_commands`` splits a
command into the words of each program it runs, as the shell would.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELLS = frozenset({"bash", "sh", "shell", "console", "zsh", "shell-session"})
NOT_COMMANDS = frozenset(
    {"text", "yaml", "json", "sql", "python", "mermaid", "markdown", "dotenv", "toml", "ini"}
    | {"diff", "jinja", "xml", "csv"}
)
LANGUAGES = SHELLS | NOT_COMMANDS
# A line of a text block that starts as a command of a program the documents show does.
PROGRAM = re.compile(
    r"^\s*(?:\$\s+)?(?:[A-Za-z_]\w*=\S*\s+)*"
    r"(?:(?:meltano|dbt|tap-partner-billing|partner-billing-sandbox|pip|pipx)(?:\s|$)"
    r"|scripts/|\.venv/bin/)"
)
MARKER = re.compile(r"^<!--\s*commands:\s*(?P<kind>\S+)(?:\s+(?P<id>[\w.-]+))?\s*-->\s*$")
FENCE = re.compile(r"^\s*(?P<fence>```+|~~~+)\s*(?P<lang>[^\s`]*)")
PLACEHOLDER = re.compile(r"<(?P<name>[A-Za-z][\w .-]*)>")
ELLIPSIS = "…"
# What separates the programs of one command line, and the redirections (with their target).
SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})
REDIRECTIONS = frozenset({">", ">>", "<", ">&", "&>", "2>", "2>>"})


@dataclass(frozen=True)
class DocBlock:
    """One fenced block: where it is, its language, its marker and its command lines."""

    path: Path
    name: str  # the path from the project's root
    line: int  # of the opening fence, 1-based
    lang: str
    marker: str | None  # the whole marker line, when there is one
    kind: str | None  # run or help
    block_id: str | None
    commands: tuple[str, ...]
    body: tuple[str, ...]  # the block's lines, as written

    @property
    def where(self) -> str:
        return f"{self.name}:{self.line}"


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the opening's character, at least as many, nothing after."""
    stripped = line.strip()
    return stripped.startswith(fence) and set(stripped) == {fence[0]}


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


def blocks_of(path: Path, root: Path = ROOT) -> list[DocBlock]:
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
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        above = lines[index - 1].strip() if index > 0 else ""
        marker = MARKER.match(above)
        blocks.append(
            DocBlock(
                path=path,
                name=str(path.relative_to(root)),
                line=index + 1,
                lang=opening["lang"].lower(),
                marker=above if above.startswith("<!-- commands") else None,
                kind=marker["kind"] if marker else None,
                block_id=marker["id"] if marker else None,
                commands=command_lines("\n".join(lines[index + 1 : end])),
                body=tuple(lines[index + 1 : end]),
            )
        )
        index = end + 1
    return blocks


def doc_blocks(root: Path = ROOT) -> list[DocBlock]:
    """Every fenced block of the README and docs/."""
    return [block for path in documents(root) for block in blocks_of(path, root)]


def run_block(block_id: str, root: Path = ROOT) -> DocBlock:
    """The one block marked ``run ID``."""
    found = [b for b in doc_blocks(root) if b.kind == "run" and b.block_id == block_id]
    if len(found) != 1:
        raise LookupError(f"{len(found)} blocks are marked 'commands: run {block_id}'")
    if not found[0].commands:
        raise LookupError(f"{found[0].where}: the block marked run {block_id} has no commands")
    return found[0]


def commands(block_id: str, root: Path = ROOT) -> tuple[str, ...]:
    """The commands of the block marked ``run ID``; a test that runs them asks for them so."""
    return run_block(block_id, root).commands


def filled_in(command: str, values: dict[str, str]) -> str:
    """``command`` with each ``<name>`` in ``values`` replaced, the others made one word."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        return values.get(name, "{" + re.sub(r"\W+", "-", name) + "}")

    return PLACEHOLDER.sub(fill, command)


def simple_commands(command: str) -> list[list[str]]:
    """The words of each program a command line runs, as the shell splits them.

    ``a && b | c > out`` gives ``[[a], [b], [c]]``: separators split, redirections go with
    their targets, and leading variable assignments (``DBT_TARGET=postgres meltano …``) and
    ``…`` before the program are dropped. Placeholders must be filled in first (``filled_in``).
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    programs: list[list[str]] = [[]]
    redirected = False
    for word in lexer:
        if word in SEPARATORS:
            programs.append([])
        elif word in REDIRECTIONS:
            redirected = True
        elif redirected:
            redirected = False
        elif programs[-1] or not (word == ELLIPSIS or re.match(r"^[A-Za-z_]\w*=", word)):
            programs[-1].append(word)
    return [words for words in programs if words]


def claimed_ids(tests_dir: Path) -> set[str]:
    """The ids the tests ask for: every call ``commands("ID")`` (or ``x.commands("ID")``)."""
    return {
        node.args[0].value
        for source in sorted(tests_dir.rglob("*.py"))
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source)))
        if isinstance(node, ast.Call)
        and _name(node.func) == "commands"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def problems(root: Path = ROOT, tests_dir: Path | None = None) -> list[str]:
    """What breaks the rule in the module docstring, each naming the file and line."""
    found: list[str] = []
    seen: dict[str, str] = {}
    claimed = claimed_ids(tests_dir if tests_dir is not None else root / "tests")
    for block in doc_blocks(root):
        said = _marker_problem(block)
        if said is None and block.kind == "run" and block.block_id is not None:
            if block.block_id in seen:
                said = f"id {block.block_id} also at {seen[block.block_id]}"
            elif block.block_id not in claimed:
                said = f"no test asks for commands({block.block_id!r})"
            seen.setdefault(block.block_id, block.where)
        found += [f"{block.where}: {said}"] if said else []
        if block.lang in SHELLS and not block.commands:
            found.append(f"{block.where}: a shell block with no commands")
        found += _commands_in_text(block)
    return found


def _commands_in_text(block: DocBlock) -> list[str]:
    """A command line in a ``text`` block (output samples), each naming its own line."""
    if block.lang != "text":
        return []
    return [
        f"{block.name}:{block.line + offset}: a command in a text block: {line.strip()!r}"
        for offset, line in enumerate(block.body, start=1)
        if PROGRAM.match(line)
    ]


def _marker_problem(block: DocBlock) -> str | None:
    """What is wrong with a block's language or marker, on its own."""
    if block.lang not in LANGUAGES:
        unknown = f"a block in {block.lang!r}, neither a shell language nor one without commands"
        return unknown if block.lang else "a fenced block without a language"
    if block.marker is not None and block.kind not in ("run", "help"):
        return f"unknown marker {block.marker!r}"
    if block.lang not in SHELLS:
        return f"a marker above a {block.lang} block" if block.marker is not None else None
    if block.kind is None:
        return "shell commands without a '<!-- commands: … -->' marker"
    if (block.kind == "run") == (block.block_id is not None):
        return None
    return "'run' needs an id" if block.kind == "run" else f"'help' takes no id ({block.block_id})"


def block_near(block_id: str, lang: str, where: str, root: Path = ROOT) -> str:
    """The text of the ``lang`` block nearest the block marked ``run ID``: ``before`` or ``after``.

    The one way a test finds what a document shows beside commands it runs, in the same
    document: the YAML the text tells the user to write before them, the SQL after them that
    reads what they loaded.
    """
    if where not in ("before", "after"):
        raise ValueError(f"where is 'before' or 'after', not {where!r}")
    marked = run_block(block_id, root)
    alike = [b for b in blocks_of(marked.path, root) if b.lang == lang]
    before = [b for b in alike if b.line < marked.line]
    near = before[-1:] if where == "before" else [b for b in alike if b.line > marked.line][:1]
    if not near:
        raise LookupError(f"{marked.where}: no {lang} block {where} the block marked {block_id}")
    lines = marked.path.read_text(encoding="utf-8").splitlines()
    opening = FENCE.match(lines[near[0].line - 1])
    fence = opening["fence"] if opening else "```"
    body: list[str] = []
    for line in lines[near[0].line :]:
        if _closes(line, fence):
            break
        body.append(line)
    return "\n".join(body) + "\n"
