"""Every Python the package claims is tested: claimed once, found or failed, pinned, in CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ROOT / "scripts" / "pythons.py"


def pythons(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PYTHONS), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )


def claimed() -> list[str]:
    listed = pythons("--list")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_the_claim_is_contiguous_and_requires_python_is_its_oldest_version() -> None:
    versions = claimed()
    minors = [int(v.split(".")[1]) for v in versions]
    assert minors == list(range(minors[0], minors[-1] + 1)), versions
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'requires-python = ">={versions[0]}"' in pyproject
    assert f'target-version = "py{versions[0].replace(".", "")}"' in pyproject  # ruff


def test_each_claimed_version_has_pins_and_only_those_have_their_own() -> None:
    versions = claimed()
    own = sorted(p.name for p in (ROOT / "constraints").glob("tap-py*.txt"))
    assert own == sorted(
        f"tap-py{v}.txt" for v in versions if (ROOT / f"constraints/tap-py{v}.txt").exists()
    ), "a pins file for a Python the package does not claim"
    for version in versions:
        shown = pythons("--pins", version)
        expected = f"tap-py{version}.txt" if f"tap-py{version}.txt" in own else "tap.txt"
        assert shown.stdout.strip() == str(ROOT / "constraints" / expected)


def test_a_claimed_python_this_machine_lacks_fails_and_is_named(tmp_path: Path) -> None:
    # A PATH with only `python3` (not python3.X) and an empty pyenv: nothing claimed is found.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "pyenv")}
    found = pythons("--find", env=env)
    assert found.returncode == 1
    assert f"but this machine has no {', '.join(claimed())} " in found.stderr
    # scripts/test-pythons (run by scripts/test) stops on it before installing anything.
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-pythons"), "--setup"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert run.returncode == 1, run.stderr
    assert "this machine has no" in run.stderr
    assert "venvs ready" not in run.stderr


def test_scripts_test_runs_the_contract_tests_on_the_other_pythons() -> None:
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "scripts/test-pythons" in script
    assert re.search(r"pytest -n 0 -m contract", (ROOT / "scripts/test-pythons").read_text())


def test_the_workflow_runs_the_unit_suite_on_every_claimed_version_at_its_pins() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/test.yml").read_text(encoding="utf-8"))
    unit = workflow["jobs"]["unit"]
    assert [str(v) for v in unit["strategy"]["matrix"]["python-version"]] == claimed()
    runs = "\n".join(step.get("run", "") for step in unit["steps"])
    assert "scripts/pythons.py --pins" in runs
    assert 'pytest -n auto -m "not e2e"' in runs
