"""The ``help`` check: every command of a block marked ``<!-- commands: help -->``, by its CLI.

(The marker's name is older than the check: no command is given ``--help`` any more.)

A block marked ``help`` (tests/doc_commands.py) is not run; each program its commands run
is parsed by that program itself, in batches (one interpreter per program, not per command),
placeholders filled in (``<checkout>``: this checkout; any other ``<name>``: one word):

- ``meltano …``, ``dbt …``, ``tap-partner-billing …``: parsed in full, as click parses them
  before running anything, and not run (tests/e2e/entry_point.py): an unknown command or
  option, a missing or extra argument, a value a choice refuses (``--format=mrkdown``) exits 2
  with click's message. ``--help`` is not used: click answers it before it checks arguments
  and values. Meltano's by its own entry point in a Meltano project (tests/e2e/conftest.py's
  ``meltano``), and then the names the command gives looked up in that project
  (tests/e2e/doc_meltano.py: plugins, ``plugin:command``, settings, state IDs, environments);
  Meltano's own warnings and deprecations count as failures too. dbt's by the dbt of that
  project's dbt utility (``.meltano/utilities/dbt/venv``), the tap's by its entry point in
  ``.venv``.
- ``partner-billing-sandbox …``: a real start, in a scratch folder: it must print that it is
  listening (then it is stopped by its PID). argparse's ``--help`` exits before it rejects an
  unknown option, so a parse with ``--help`` would prove nothing.
- ``pip install …``: pip's own option parser (``pip._internal``'s install command, the pip in
  ``.venv``): a misspelt option exits 2 ("no such option"). Then what it parsed: each local
  path (``-e``, ``-r``, ``-c``, a path argument) must exist in this checkout, and any other
  argument must be a PEP 508 requirement or a VCS URL. Nothing is installed: ``--dry-run``
  would resolve against a package index, which a test may not reach.
- ``pipx install SPEC``: pipx is not in the test environment, so its options cannot be
  parsed: a ``pipx`` command with any option, or another subcommand, fails (add pipx to the
  test extras to allow them); SPEC is checked as pip's arguments are.
- ``scripts/<x> …``: the script exists and is executable. Not run with ``--help``: each
  starts with ``scripts/bootstrap`` (installing), whatever its arguments.
- ``cd``, ``export``, ``source``/``.``, ``cp``, ``git``: ``bash -n`` (which every help block
  passes as a whole), and a relative ``cp`` source or ``cd`` target must exist in this
  checkout (``cd NAME`` after ``git clone <url>``: NAME is the project's name, the clone).

Any other program fails, naming the block (``file:line``): a new tool in a document needs a
check here, or a ``run`` marker and a test.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement

from tests.doc_commands import ROOT, DocBlock, filled_in, simple_commands
from tests.e2e.conftest import MELTANO
from tests.e2e.doc_meltano import MeltanoNames

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

VENV_BIN = Path(sys.executable).parent
ENTRY_POINT = Path(__file__).with_name("entry_point.py")
SHELL = frozenset({"cd", "export", "source", ".", "cp", "git"})
VCS = re.compile(r"^(git|hg|svn|bzr)\+\w+://")
# Meltano's own warnings a first run gives that say nothing about the project.
EXPECTED_WARNINGS = ("No state was found, complete import.",)
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
PROJECT_NAME = re.findall(r'^name = "([^"]+)"', PYPROJECT, flags=re.MULTILINE)[0]


@dataclass(frozen=True)
class Use:
    """One program as one command of a document runs it."""

    where: str  # file:line of the block
    command: str  # the line as the document shows it
    words: tuple[str, ...]  # the program and its arguments, placeholders filled in

    @property
    def program(self) -> str:
        """The program's name: ``scripts``, ``shell``, or the command's own name."""
        first = self.words[0]
        if first.startswith("scripts/"):
            return "scripts"
        if first in SHELL:
            return "shell"
        return first.removeprefix(".venv/bin/")

    def problem(self, message: str) -> str:
        return f"{self.where}: `{self.command}`: {message}"


def uses(blocks: Iterable[DocBlock]) -> list[Use]:
    """Every program the commands of ``blocks`` run, in order."""
    return [
        Use(block.where, command, tuple(words))
        for block in blocks
        for command in block.commands
        for words in simple_commands(filled_in(command, {"checkout": str(ROOT)}))
    ]


def entry_point_runs(
    python: Path, program: str, argvs: list[list[str]], cwd: Path, *, fragments: bool = False
) -> list[Any]:
    """``[exit code, output, parsed]`` of ``program``'s parse of each argument list."""
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "results.json"
        result = subprocess.run(
            [
                str(python),
                str(ENTRY_POINT),
                program,
                str(results),
                *(["--fragments"] if fragments else []),
            ],
            input=json.dumps(argvs),
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1"},
            check=False,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs: list[Any] = json.loads(results.read_text(encoding="utf-8"))
    return runs


def click_problems(
    found: list[Use], python: Path, cwd: Path, *, fragments: bool = False
) -> list[str]:
    """Each command parsed by its program (see the docstring); ``fragments``: inline code."""
    if not found:
        return []
    program = found[0].program
    argvs = [list(use.words[1:]) for use in found]
    runs = entry_point_runs(python, program, argvs, cwd, fragments=fragments)
    names = MeltanoNames.of(cwd) if program == "meltano" else None
    problems = []
    for use, (code, output, parsed) in zip(found, runs, strict=True):
        trouble = meltano_problems(output) if names is not None else []
        if code != 0 or trouble:
            last = [line for line in output.splitlines() if line.strip()][-3:]
            problems.append(use.problem(f"exit {code}: {' | '.join(trouble or last)}"))
        elif names is not None and parsed is not None:
            said = names.problems(parsed, fragment=fragments)
            problems += [use.problem(problem) for problem in said]
    return problems


def meltano_problems(output: str) -> list[str]:
    """Error lines, deprecations and warnings of Meltano itself (not of the plugins)."""

    def is_problem(line: str) -> bool:
        if "DeprecationWarning" in line or "deprecated" in line.lower():
            return True
        if re.search(r"\[(error|critical)\s*\]", line):
            return True
        meltano_warning = re.search(r"\[warning\s*\] meltano ", line) is not None
        return meltano_warning and not any(w in line for w in EXPECTED_WARNINGS)

    return [line for line in output.splitlines() if is_problem(line)]


def sandbox_problems(found: list[Use]) -> list[str]:
    """Each ``partner-billing-sandbox`` command started for real until it listens."""
    problems = []
    for use in found:
        with tempfile.TemporaryDirectory() as scratch:
            process = subprocess.Popen(
                [str(VENV_BIN / use.program), *use.words[1:]],
                cwd=scratch,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert process.stdout is not None
            watchdog = threading.Timer(60, process.kill)  # neither listening nor ending
            watchdog.start()
            output = ""
            for line in process.stdout:  # until it listens, or ends having said why not
                output += line
                if line.startswith("sandbox listening"):
                    break
            process.terminate()
            process.communicate(timeout=30)
            watchdog.cancel()
        if "sandbox listening" not in output:
            problems.append(use.problem(f"did not start: {output.strip()[-300:]}"))
    return problems


def pip_problems(found: list[Use]) -> list[str]:
    """``pip install …`` parsed by pip; ``pipx install SPEC`` (see the docstring)."""
    install = importlib.import_module("pip._internal.commands").create_command("install")
    defaults, _ = install.parse_args([])  # what pip's configuration adds by itself
    problems = []
    for use in found:
        command, *argv = use.words[1:] if len(use.words) > 1 else ("",)
        if command != "install":
            problems.append(use.problem(f"only `{use.program} install` is checked here"))
            continue
        if use.program == "pipx":
            options = [a for a in argv if a.startswith("-")]
            if options or not argv:
                problems.append(use.problem(f"pipx options are not parsed here: {options}"))
                continue
            problems += [use.problem(p) for p in spec_problems(argv)]
            continue
        try:
            options, specs = install.parse_args(argv)
        except SystemExit as exit_:
            problems.append(use.problem(f"pip rejects its options (exit {exit_.code})"))
            continue
        files = [*options.requirements, *options.constraints]
        files = [f for f in files if f not in defaults.constraints + defaults.requirements]
        problems += [use.problem(f"{f} is not in this checkout") for f in files if not _at(f)]
        problems += [use.problem(p) for p in spec_problems([*options.editables, *specs])]
    return problems


def _at(path: str) -> bool:
    return (ROOT / path).exists()


def spec_problems(specs: list[str]) -> list[str]:
    """What pip could not install: a local path that is not here, or not a requirement."""
    problems = []
    for spec in specs:
        if VCS.match(spec) or spec.startswith("{"):  # a VCS URL or a placeholder: not here
            continue
        if spec.startswith((".", "/")) or "/" in spec.split("@")[0]:
            if not _at(spec):
                problems.append(f"{spec} is not in this checkout")
            continue
        try:
            Requirement(spec)
        except InvalidRequirement as err:
            problems.append(f"not a requirement: {str(err).splitlines()[0]}")
    return problems


def script_problems(found: list[Use]) -> list[str]:
    """Each ``scripts/<x>`` exists and is executable."""
    return [
        use.problem(f"{use.words[0]} is not an executable file in this checkout")
        for use in found
        if not ((ROOT / use.words[0]).is_file() and os.access(ROOT / use.words[0], os.X_OK))
    ]


def shell_problems(found: list[Use]) -> list[str]:
    """A relative ``cp`` source or ``cd`` target exists (after ``git clone``: the clone)."""
    problems = []
    cloned: set[str] = set()
    for use in found:
        name, *args = use.words
        paths = [a for a in args if not a.startswith("-")]
        if name == "git" and paths[:1] == ["clone"] and len(paths) > 1:
            url = paths[1]
            cloned.add(paths[2] if len(paths) > 2 else url.rstrip("/").split("/")[-1])
            if url.startswith("{"):  # a placeholder: this repository
                cloned.add(PROJECT_NAME)
        elif name == "cd" and paths and paths[0] not in cloned:
            if not (_elsewhere(paths[0]) or (ROOT / paths[0]).is_dir()):
                problems.append(use.problem(f"{paths[0]} is not a folder in this checkout"))
        elif name == "cp":
            missing = [p for p in paths[:-1] if not (_elsewhere(p) or _at(p))]
            problems += [use.problem(f"{p} is not in this checkout") for p in missing]
    return problems


def _elsewhere(path: str) -> bool:
    """Not a path relative to the checkout: absolute, home, a variable or a placeholder."""
    return path.startswith(("/", "~", "$", "{"))


def bash_problems(blocks: Iterable[DocBlock]) -> list[str]:
    """``bash -n`` on each block's commands, placeholders filled in."""
    problems = []
    for block in blocks:
        text = "\n".join(filled_in(c, {"checkout": str(ROOT)}) for c in block.commands)
        result = subprocess.run(
            ["bash", "-n"], input=text, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            problems.append(f"{block.where}: bash -n: {result.stderr.strip()}")
    return problems


def project_checks(project: Path) -> dict[str, Callable[[list[Use]], list[str]]]:
    """The check of each program, by the program's name (``Use.program``)."""
    dbt_python = project / ".meltano/utilities/dbt/venv/bin/python"
    return {
        "meltano": lambda found: click_problems(found, MELTANO.with_name("python"), project),
        "dbt": lambda found: click_problems(found, dbt_python, project),
        "tap-partner-billing": lambda found: click_problems(found, Path(sys.executable), ROOT),
        "partner-billing-sandbox": sandbox_problems,
        "pip": pip_problems,
        "pipx": pip_problems,
        "scripts": script_problems,
        "shell": shell_problems,
    }


def help_problems(blocks: list[DocBlock], program: str, project: Path) -> list[str]:
    """What the check of ``program`` finds in ``blocks``' commands that run it."""
    found = [use for use in uses(blocks) if use.program == program]
    return project_checks(project)[program](found)


def unknown_programs(blocks: list[DocBlock], project: Path) -> list[str]:
    """Commands whose program has no check here."""
    checks = project_checks(project)
    found = [use for use in uses(blocks) if use.program not in checks]
    return [use.problem(f"no check for {use.program!r}") for use in found]
