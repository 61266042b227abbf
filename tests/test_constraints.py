"""Installs are reproducible: every environment installs from pins in constraints/.

scripts/lock writes the pins; scripts/bootstrap and each Meltano plugin's pip_url read them.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.meltano_project import project_for_tests

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "constraints"
PLUGIN_PINS = "${MELTANO_PROJECT_ROOT}/constraints/"
# A pin and nothing else: no index or find-links option, no URL, no path, no range.
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


def pins(name: str) -> dict[str, str]:
    """constraints/<name>.txt as {canonical name: version}."""
    found: dict[str, str] = {}
    for line in (PINS / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = PIN.fullmatch(line)
        assert match, f"constraints/{name}.txt: not a plain pin: {line!r}"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def plugins() -> list[dict[str, Any]]:
    """The plugins of the tests' project (the repository's and the test-only emulator)."""
    return [plugin for kind in project_for_tests()["plugins"].values() for plugin in kind]


def pinfile(plugin: dict[str, Any]) -> str:
    """The constraints file a plugin installs with (the tap shares the tap's own)."""
    return "tap" if plugin["name"] == "tap-partner-billing" else plugin["name"]


def tap_pinfiles() -> dict[str, str]:
    """The tap's pins files → the Python they were resolved for (tap-pyX.Y: another one)."""
    header = (PINS / "tap.txt").read_text(encoding="utf-8").splitlines()[1]
    found = {"tap": re.findall(r"on Python (3\.\d+)", header)[0]}
    for path in PINS.glob("tap-py*.txt"):
        found[path.stem] = path.stem.removeprefix("tap-py")
    return found


def test_every_file_is_plain_pins_and_used() -> None:
    names = {path.stem for path in PINS.glob("*.txt")}
    # dbt-floor: the oldest dbt the models claim (tests/e2e/test_dbt_package.py installs it)
    others = {"meltano", "dbt-floor"}
    assert names == others | set(tap_pinfiles()) | {pinfile(p) for p in plugins()}
    for name in names:
        assert pins(name), name


@pytest.mark.parametrize("name", sorted(tap_pinfiles()))
def test_every_requirement_of_the_tap_is_pinned_inside_its_range(name: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    lines = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
        # the maintainers' tools (an include-group entry is a table, not a requirement)
        *(
            r
            for group in pyproject["dependency-groups"].values()
            for r in group
            if isinstance(r, str)
        ),
        *pyproject["build-system"]["requires"],  # the build backend of the editable install
    ]
    tap = pins(name)
    version = tap_pinfiles()[name]  # markers are judged for the Python the file is for
    python = {"python_version": version, "python_full_version": f"{version}.0"}
    problems = []
    for requirement in map(Requirement, lines):
        if requirement.marker is not None and not requirement.marker.evaluate(python):
            continue
        pinned = tap.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement}: pinned {pinned}")
    assert problems == [], "run scripts/lock"


def test_each_meltano_plugin_installs_from_its_pins() -> None:
    for plugin in plugins():
        args = shlex.split(plugin["pip_url"])
        assert args.count("-c") == 1, plugin["name"]
        assert args[args.index("-c") + 1] == f"{PLUGIN_PINS}{pinfile(plugin)}.txt"
        pinned = pins(pinfile(plugin))
        for arg in args:
            if match := PIN.fullmatch(arg):  # the pip_url's own pins agree with the file's
                assert pinned.get(canonicalize_name(match.group(1))) == match.group(2), arg


def test_bootstrap_installs_from_the_pins() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text(encoding="utf-8")
    assert 'scripts/pythons.py" --pins "$version"' in bootstrap  # tap.txt or tap-pyX.Y.txt
    assert '-m pip install -q -c "$pins" pip' in bootstrap  # pip's pin first (the groups)
    assert '--group "$ROOT/pyproject.toml:$group"' in bootstrap
    assert '-c "$PINS/meltano.txt"' in bootstrap
    (meltano,) = set(re.findall(r"meltano==([0-9.]+)", bootstrap))
    assert pins("meltano")["meltano"] == meltano


@pytest.mark.parametrize("name", sorted(tap_pinfiles()))
def test_pip_is_pinned_new_enough_for_dependency_groups(name: str) -> None:
    # scripts/bootstrap, scripts/test-pythons and CI install pip's pin first, then the groups
    # with `pip install --group`, which pip reads from 25.1 on.
    pinned = pins(name).get("pip")
    assert pinned is not None, f"constraints/{name}.txt pins no pip: run scripts/lock"
    assert Version(pinned) >= Version("25.1"), pinned
