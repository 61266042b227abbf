"""Check that each planted bug is caught: apply its patch in a scratch worktree, run its tests.

The table in this folder's README.md names, for each patch, the tests that caught it before a
change of the suite ("old"), the tests that catch it now ("now") and what their failure must
show (texts of the assertion or of the tap's error that the bug produces). For each patch this
applies it to a detached worktree of ``--ref`` (HEAD by default) in a temporary folder, runs
the named tests there with pytest, and reports caught (a test failed and the output holds
every expected text), caught (wrong reason) (a test failed otherwise: a crash, a flake, a
patch that breaks something else), NOT CAUGHT (they passed) or an error (the patch no longer
applies, or pytest could not run the tests). Only "caught" counts. The unpatched tests run
first (the baseline): a test that fails without the bug proves nothing.

``--column old`` plants ``before/NN-name.patch`` when it exists: the same bug as written for
the tree before the change (its context moved since, or it names what was renamed since).

The scratch worktree uses this checkout's ``.venv`` with the worktree first on ``PYTHONPATH``,
and links its ``.work`` (PostgreSQL, Azurite, Meltano). The tap runs the scratch tree's
package (``PYTHONPATH`` comes before the editable install on ``sys.path``), and so do its
decode workers: started with ``python -I``, they ignore ``PYTHONPATH`` but are handed the
tap's own ``sys.path`` (``emission/workers.py``, ``BOOT`` in ``emission/worker_process.py``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTEST_FAILED = 1  # pytest's exit code when tests ran and some failed


@dataclass(frozen=True)
class Bug:
    """One row of the table."""

    patch: str
    old: list[str]
    now: list[str]
    expect: list[str]  # texts the failing output must hold

    def patch_file(self, column: str) -> Path:
        """The patch to plant: its ``before/`` version for the old column, when there is one."""
        before = HERE / "before" / self.patch
        return before if column == "old" and before.is_file() else HERE / self.patch


def read_table(readme: Path) -> list[Bug]:
    """The rows: ``| `NN-name.patch` | what | `old test` … | `new test` … | `text` … |``."""
    bugs = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(Bug.__dataclass_fields__) + 1 or not cells[0].endswith(".patch`"):
            continue
        tests = [re.findall(r"`([^`]+)`", cell) for cell in cells[2:]]
        bugs.append(Bug(cells[0].strip("`"), *tests))
    return bugs


def git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def pytest(tree: Path, tests: list[str]) -> tuple[int, str, str]:
    """Run ``tests`` in ``tree``: the exit code, the output's last line, the whole output."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [str(ROOT / ".venv/bin/python"), "-m", "pytest", "-n", "0", "-q"]
    command += ["-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    run = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    output = run.stdout + run.stderr
    return run.returncode, (output.strip().splitlines() or [""])[-1], output


def judge(code: int, output: str, expect: list[str]) -> str:
    """The verdict on one patched run: caught only if it failed for the expected reason."""
    if code == 0:
        return "NOT CAUGHT"
    if code != PYTEST_FAILED:
        return f"ERROR {code}"
    missing = [text for text in expect if text not in output]
    return f"caught (wrong reason: no {missing!r} in the output)" if missing else "caught"


def plant(tree: Path, bug: Bug, column: str) -> str:
    """Apply ``bug``'s patch in ``tree``, run its tests of ``column``, print the verdict."""
    tests = getattr(bug, column)
    patch = bug.patch_file(column)
    applied = git("apply", str(patch), cwd=tree)
    started = time.monotonic()
    if applied.returncode != 0:
        verdict, last = "DOES NOT APPLY", applied.stderr.strip()
    elif not tests or not bug.expect:
        verdict, last = "NO TEST OR NO EXPECTED TEXT NAMED", ""
    else:
        code, last, output = pytest(tree, tests)
        verdict = judge(code, output, bug.expect)
    seconds = time.monotonic() - started
    by = " ".join(tests)
    print(f"{patch.relative_to(HERE)}: {verdict} ({seconds:.0f} s) by {by}: {last}", flush=True)
    return verdict


def reset(tree: Path) -> None:
    git("checkout", "--", ".", cwd=tree)
    git("clean", "-fdq", "-e", ".work", cwd=tree)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="patch numbers or names (default: all)")
    parser.add_argument("--ref", default="HEAD", help="the commit to plant the bugs in")
    parser.add_argument("--column", choices=("old", "now"), default="now")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unpatched run")
    args = parser.parse_args()
    bugs = [
        b
        for b in read_table(HERE / "README.md")
        if not args.only or any(b.patch.startswith(o) for o in args.only)
    ]
    if not bugs:
        print("no patch matches", file=sys.stderr)
        return 2
    problems = 0
    with tempfile.TemporaryDirectory(prefix="planted-bugs-") as scratch:
        tree = Path(scratch) / "tree"
        added = git("worktree", "add", "--detach", str(tree), args.ref)
        if added.returncode != 0:
            print(added.stderr, file=sys.stderr)
            return 2
        try:
            (tree / ".work").symlink_to(ROOT / ".work")
            if not args.no_baseline:
                every = sorted({t for b in bugs for t in getattr(b, args.column)})
                if not every:
                    print("no test named for these patches")
                    return 1
                code, last, _ = pytest(tree, every)
                print(f"baseline (no bug), {len(every)} test ids: exit {code}: {last}", flush=True)
                if code != 0:
                    print("the tests fail without a bug: nothing below would mean anything")
                    return 1
            for bug in bugs:
                reset(tree)
                tests = getattr(bug, args.column)
                if not tests and args.column == "old":
                    print(f"{bug.patch}: no old test (a blind spot the change closed)")
                    continue
                problems += plant(tree, bug, args.column) != "caught"
        finally:
            reset(tree)
            git("worktree", "remove", "--force", str(tree))
    tried = [b for b in bugs if getattr(b, args.column)]
    caught = len(tried) - problems
    print(f"{caught} of {len(tried)} planted bugs caught ({args.column} tests at {args.ref})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
