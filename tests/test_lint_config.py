"""The lint exceptions live in pyproject.toml, each with its reason; inline ``noqa`` stays rare.

``[tool.ruff.lint]`` selects every rule; what the code does not follow is ignored there (for
all files or per path) with a comment saying why. These tests keep it that way: inline
``noqa`` comments may not creep back above the count left, and every per-file entry names
files that exist (a moved module would otherwise leave a silent, stale exception behind).
"""

from __future__ import annotations

import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOQA = re.compile(r"#\s*noqa\b", re.IGNORECASE)
RULE = re.compile(r'"[A-Z]+[0-9]*"')  # a rule code or prefix: "ANN401", "D1", "ALL"
# The inline noqa comments left, each listed with its reason in its comment. In the package:
# two in tap.py (a class attribute of any type; --about's print to stdout, where a stray print
# would corrupt the Singer stream), one each in sdk_seam.py (the SDK's private _ConfigInput),
# transport.py (an outcome named "token refused"), download.py (a spool file that outlives
# its block), and the six of rows.py, workers.py and export_stream.py.
MOST_NOQA = {"tap_partner_billing": 11, "tests": 0, "scripts": 0, "benchmarks": 0}


def _pyproject() -> str:
    return (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def _noqa_comments(folder: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for token in tokenize.generate_tokens(io.StringIO(path.read_text("utf-8")).readline)
        if token.type == tokenize.COMMENT and NOQA.search(token.string)
    ]


@pytest.mark.parametrize("folder", sorted(MOST_NOQA))
def test_inline_noqa_does_not_creep_back(folder: str) -> None:
    found = _noqa_comments(folder)
    assert len(found) <= MOST_NOQA[folder], (
        f"{len(found)} inline noqa in {folder}/ (at most {MOST_NOQA[folder]}): fix the code, or "
        "ignore the rule for the path in pyproject.toml's per-file-ignores with its reason\n"
        + "\n".join(found)
    )


def test_every_per_file_ignore_names_existing_files() -> None:
    per_file = tomllib.loads(_pyproject())["tool"]["ruff"]["lint"]["per-file-ignores"]
    stale = [pattern for pattern in per_file if not any(ROOT.glob(pattern))]
    assert not stale, f"per-file-ignores name no existing file: {stale}"


def test_every_exception_gives_its_reason() -> None:
    """Each per-file entry, and each globally ignored rule, has a comment on or above its line."""
    lines = _pyproject().splitlines()
    start = lines.index("[tool.ruff.lint]")
    end = next(n for n in range(start + 1, len(lines)) if lines[n].startswith("[tool.ruff.lint."))
    per_file = lines.index("[tool.ruff.lint.per-file-ignores]")
    per_file_end = next(
        n for n in range(per_file + 1, len(lines)) if lines[n].startswith("[tool.ruff.lint.")
    )
    ignore = next(n for n in range(start, end) if lines[n].startswith("ignore = ["))
    ignore_end = next(n for n in range(ignore, end) if lines[n].strip() == "]")
    entries = [*range(ignore + 1, ignore_end), *range(per_file + 1, per_file_end)]
    silent = [
        lines[n]
        for n in entries
        if RULE.search(lines[n].split("#")[0])
        and "#" not in lines[n]
        and not lines[n - 1].lstrip().startswith("#")
    ]
    assert not silent, f"ruff exceptions without a reason in pyproject.toml: {silent}"
