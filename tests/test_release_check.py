"""scripts/release_check.py, the checks scripts/release runs, each shown failing on what it catches.

scripts/release itself (a real build, a clean install and a sandbox sync, about a minute and a
half) runs in .github/workflows/release.yml and by hand (CONTRIBUTING.md), not in the suite.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from release_check import (
    ReleaseError,
    _installed_package,
    check_artifacts,
    check_output,
    expected_counts,
)

STEM = "tap_partner_billing-1.2.3"
PYPROJECT = """
[project]
name = "tap-partner-billing"
version = "1.2.3"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["requests>=2.32"]
[project.optional-dependencies]
sandbox = ["azure-storage-blob>=12.20"]
[project.scripts]
tap-partner-billing = "tap_partner_billing.tap:TapPartnerBilling.cli"
[dependency-groups]
test = ["pytest>=8"]
"""
SCRIPT = "tap-partner-billing = tap_partner_billing.tap:TapPartnerBilling.cli"
PACKAGE_FILES = [
    "tap_partner_billing/__init__.py",
    "tap_partner_billing/sandbox/__init__.py",
    "tap_partner_billing/sandbox/microsoft/manifest.json",
]


def metadata(version: str = "1.2.3", requires: tuple[str, ...] = ("requests>=2.32",)) -> str:
    lines = [
        "Metadata-Version: 2.4",
        "Name: tap-partner-billing",
        f"Version: {version}",
        "Requires-Python: >=3.10",
        *(f"Requires-Dist: {r}" for r in requires),
        "Requires-Dist: azure-storage-blob>=12.20; extra == 'sandbox'",
        "Provides-Extra: sandbox",
    ]
    return "\n".join(lines) + "\n\n"


def release(
    tmp_path: Path,
    *,
    wheel_drop: str = "",
    wheel_add: str = "",
    sdist_drop: str = "",
    sdist_add: str = "",
    wheel_metadata: str = "",
) -> tuple[Path, Path]:
    """A commit's export and a dist folder built from it, with one thing broken if asked."""
    source, dist = tmp_path / "source", tmp_path / "dist"
    for name in [*PACKAGE_FILES, "README.md", "tests/test_x.py"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x\n", encoding="utf-8")
    (source / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    dist.mkdir()
    info = f"{STEM}.dist-info"
    with zipfile.ZipFile(dist / f"{STEM}-py3-none-any.whl", "w") as wheel:
        for name in {*PACKAGE_FILES, wheel_add} - {wheel_drop, ""}:
            wheel.writestr(name, "x\n")
        wheel.writestr(f"{info}/METADATA", wheel_metadata or metadata())
        wheel.writestr(f"{info}/entry_points.txt", f"[console_scripts]\n{SCRIPT}\n")
    sdist_names = {*PACKAGE_FILES, "README.md", "pyproject.toml", "tests/test_x.py", sdist_add}
    sdist_files = dict.fromkeys(sdist_names - {sdist_drop, ""}, b"x\n")
    sdist_files["PKG-INFO"] = metadata().encode()
    with tarfile.open(dist / f"{STEM}.tar.gz", "w:gz") as sdist:
        for name, data in sdist_files.items():
            member = tarfile.TarInfo(f"{STEM}/{name}")
            member.size = len(data)
            sdist.addfile(member, io.BytesIO(data))
    return source, dist


def test_a_complete_release_has_no_problem(tmp_path: Path) -> None:
    assert check_artifacts(*release(tmp_path)) == []


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (
            {"wheel_drop": "tap_partner_billing/sandbox/microsoft/manifest.json"},
            f"{STEM}-py3-none-any.whl: lacks tap_partner_billing/sandbox/microsoft/manifest.json",
        ),
        (
            {"wheel_add": "tests/test_x.py"},
            f"{STEM}-py3-none-any.whl: holds tests/test_x.py outside the package",
        ),
        (
            {"wheel_add": "tap_partner_billing/stale.py"},
            f"{STEM}-py3-none-any.whl: holds tap_partner_billing/stale.py, not in the package",
        ),
        ({"sdist_drop": "README.md"}, f"{STEM}.tar.gz: lacks README.md"),
        ({"sdist_add": ".env"}, f"{STEM}.tar.gz: holds .env, which the commit does not"),
        (
            {"wheel_metadata": metadata(version="1.2.4")},
            f"{STEM}-py3-none-any.whl: Version '1.2.4', pyproject says '1.2.3'",
        ),
        (  # a dependency group published as a requirement
            {"wheel_metadata": metadata(requires=("requests>=2.32", "pytest>=8"))},
            (
                f"{STEM}-py3-none-any.whl: requires ['azure-storage-blob', 'pytest', 'requests'], "
                "pyproject declares ['azure-storage-blob', 'requests']"
            ),
        ),
    ],
)
def test_a_broken_release_is_named(tmp_path: Path, broken: dict[str, str], problem: str) -> None:
    assert check_artifacts(*release(tmp_path, **broken)) == [problem]


def singer_output(tmp_path: Path, *extra: str, records: int = 2) -> Path:
    lines = [
        json.dumps({"type": "SCHEMA", "stream": "invoices", "schema": {}, "key_properties": []}),
        *(
            json.dumps({"type": "RECORD", "stream": "invoices", "record": {"id": i}})
            for i in range(records)
        ),
        json.dumps({"type": "STATE", "value": {}}),
        *extra,
    ]
    path = tmp_path / "output.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_sync_with_the_sandboxs_records_has_no_problem(tmp_path: Path) -> None:
    problems, records = check_output(singer_output(tmp_path), {"invoices": 2})
    assert (problems, records) == ([], {"invoices": 2})


@pytest.mark.parametrize(
    ("extra", "records", "expected", "problem"),
    [
        (["INFO not json"], 2, 2, "output.jsonl:5: not JSON"),
        (['{"stream": "invoices"}'], 2, 2, "output.jsonl:5: not a Singer message (type None)"),
        ([], 1, 2, "invoices: 1 records, the sandbox holds 2"),
        ([], 0, 0, "invoices: 0 records, the sandbox holds 0"),
    ],
)
def test_a_sync_that_differs_is_named(
    tmp_path: Path, extra: list[str], records: int, expected: int, problem: str
) -> None:
    problems, _ = check_output(
        singer_output(tmp_path, *extra, records=records), {"invoices": expected}
    )
    assert len(problems) == 1
    assert problem in problems[0]


def test_the_expected_counts_name_records_for_every_stream() -> None:
    counts = expected_counts()
    assert set(counts) == {
        "invoices",
        "billed_usage",
        "unbilled_usage",
        "billed_reconciliation",
        "unbilled_reconciliation",
    }
    assert all(counts.values()), counts


def test_the_sync_checks_refuse_the_checkouts_source() -> None:
    with pytest.raises(ReleaseError, match="not an installed wheel: run with -I"):
        _installed_package()


def test_the_release_workflow_runs_the_script_and_publishes_only_tags() -> None:
    workflow = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / ".github/workflows/release.yml").read_text(
            encoding="utf-8"
        )
    )
    check, publish = workflow["jobs"]["check"], workflow["jobs"]["publish"]
    # The check job's one command is the script a maintainer runs before tagging.
    assert [s["run"] for s in check["steps"] if "run" in s] == [
        'bash scripts/release ${TAG:+--tag "$TAG"}'
    ]
    assert publish["needs"] == "check"
    assert publish["if"] == "github.event_name == 'push' && github.ref_type == 'tag'"
    assert publish["permissions"] == {"id-token": "write"}
