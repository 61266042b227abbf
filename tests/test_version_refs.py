"""The documents name no release tag that does not exist (a user would copy a URL that 404s).

Issue 23 found ``…@v0.1.0`` and ``…/raw/v0.1.0/…`` in the README when no tag existed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A git reference to a version: ``repo.git@v1.2.3``, ``/raw/v1.2.3/``, ``/tree/v1.2.3``, …
# with or without the ``v``: a tag ``0.1.0`` is as missing as ``v0.1.0``.
TAG_REFERENCE = re.compile(r"(?:@|/raw/|/tree/|/blob/|/archive/)(v?\d+\.\d+(?:\.\d+)?)\b")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *(ROOT / "plugin").glob("*")]


def tag_references(text: str) -> set[str]:
    return set(TAG_REFERENCE.findall(text))


def test_the_documents_name_only_tags_that_exist() -> None:
    tags = subprocess.run(
        ["git", "tag", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    named = {
        (path.relative_to(ROOT).as_posix(), tag)
        for path in documents()
        for tag in tag_references(path.read_text(encoding="utf-8"))
    }
    assert {(path, tag) for path, tag in named if tag not in tags} == set()


def test_the_check_finds_the_references_the_issue_found() -> None:
    old = (
        "meltano add --plugin-type extractor tap-partner-billing --from-ref "
        "https://<your git host>/<org>/tap-partner-billing/raw/v0.1.0/plugin/"
        "tap-partner-billing.yml"
        "\n`git+https://<your git host>/<org>/tap-partner-billing.git@v0.1.0`"
    )
    assert tag_references(old) == {"v0.1.0"}
    assert tag_references("`git+https://host/org/tap-partner-billing.git@0.1.0`") == {"0.1.0"}
    assert tag_references("`git+https://host/org/tap-partner-billing.git@<commit>`") == set()
