"""The checks of scripts/release, one subcommand each: it prints what it found, or the problems.

    python scripts/release_check.py artifacts SOURCE DIST
        the sdist and the wheel in DIST, built from SOURCE (an export of the commit): every
        file of the package in both, nothing else in the wheel, the sdist holding what a build
        from it needs, the metadata naming pyproject's version, dependencies, extras and entry
        points (and no dependency group: those are not published)
    python -I scripts/release_check.py tap-config SANDBOX_ENV CONFIG
        (by the clean environment's Python) CONFIG: a tap config pointing at the sandbox whose
        sandbox.env is SANDBOX_ENV, as the sandbox Meltano environment sets it
    python -I scripts/release_check.py sync OUTPUT
        (the same) OUTPUT, the tap's stdout: every line a Singer message, and as many records
        per stream as the sandbox's data holds (its ground truth, read from the served bytes)

The last two must import the installed package (``-I`` keeps this checkout off ``sys.path``):
they refuse to run on this checkout's source.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
import zipfile
from collections import Counter
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

import tap_partner_billing
from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.service import Sandbox

if sys.version_info >= (3, 11):
    import tomllib
else:  # scripts/release runs on 3.11+; the tests on 3.10 have pytest's tomli
    import tomli as tomllib

PACKAGE = "tap_partner_billing"
SINGER_TYPES = {"SCHEMA", "RECORD", "STATE", "BATCH", "ACTIVATE_VERSION"}


class ReleaseError(Exception):
    """What is wrong with the release, in words."""


def _pyproject(source: Path) -> dict[str, Any]:
    return tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        raise ReleaseError(f"{dist}: expected one {pattern}, found {[p.name for p in found]}")
    return found[0]


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\s\[<>=!~;(]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


def check_artifacts(source: Path, dist: Path) -> list[str]:
    """Problems with DIST's sdist and wheel, built from SOURCE (none: they are releasable)."""
    project = _pyproject(source)["project"]
    name, version = project["name"], project["version"]
    stem = f"{name.replace('-', '_')}-{version}"
    package_files = {
        p.relative_to(source).as_posix() for p in (source / PACKAGE).rglob("*") if p.is_file()
    }
    problems = []

    wheel = _one(dist, "*.whl")
    if wheel.name != f"{stem}-py3-none-any.whl":
        problems.append(f"{wheel.name}: expected {stem}-py3-none-any.whl (pure Python, any)")
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        info = f"{stem}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    in_wheel = {m for m in members if m.startswith(f"{PACKAGE}/")}
    problems += [f"{wheel.name}: lacks {f}" for f in sorted(package_files - in_wheel)]
    problems += [
        f"{wheel.name}: holds {f}, not in the package" for f in sorted(in_wheel - package_files)
    ]
    problems += [
        f"{wheel.name}: holds {m} outside the package"
        for m in sorted(members - in_wheel)
        if not m.startswith(f"{info}/")
    ]
    problems += _metadata_problems(wheel.name, metadata, project)
    for script, target in project["scripts"].items():
        if f"{script} = {target}" not in entry_points:
            problems.append(f"{wheel.name}: no console script {script} = {target}")

    sdist = _one(dist, "*.tar.gz")
    if sdist.name != f"{stem}.tar.gz":
        problems.append(f"{sdist.name}: expected {stem}.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {m.name.removeprefix(f"{stem}/") for m in archive.getmembers() if m.isfile()}
        pkg_info = archive.extractfile(f"{stem}/PKG-INFO")
        sdist_metadata = Parser().parsestr(pkg_info.read().decode()) if pkg_info else None
    # What a build from the sdist reads: the build configuration, the readme it embeds, the
    # package (the license is an SPDX expression in pyproject.toml, no file).
    needed = {"pyproject.toml", project["readme"], "PKG-INFO", *package_files}
    problems += [f"{sdist.name}: lacks {f}" for f in sorted(needed - in_sdist)]
    tracked = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    problems += [
        f"{sdist.name}: holds {f}, which the commit does not"
        for f in sorted(in_sdist - tracked - {"PKG-INFO"})
    ]
    if sdist_metadata is None:
        problems.append(f"{sdist.name}: no PKG-INFO")
    else:
        problems += _metadata_problems(sdist.name, sdist_metadata, project)
    return problems


def _metadata_problems(where: str, metadata: Message, project: dict[str, Any]) -> list[str]:
    problems = []
    for field, expected in (
        ("Name", project["name"]),
        ("Version", project["version"]),
        ("Requires-Python", project["requires-python"]),
    ):
        if metadata.get(field) != expected:
            problems.append(
                f"{where}: {field} {metadata.get(field)!r}, pyproject says {expected!r}"
            )
    extras = set(metadata.get_all("Provides-Extra") or [])
    if extras != set(project["optional-dependencies"]):
        problems.append(
            f"{where}: extras {sorted(extras)}, pyproject declares "
            f"{sorted(project['optional-dependencies'])}"
        )
    published = _names(metadata.get_all("Requires-Dist") or [])
    declared = _names(project["dependencies"]) | _names(
        [r for extra in project["optional-dependencies"].values() for r in extra]
    )
    if published != declared:
        problems.append(
            f"{where}: requires {sorted(published)}, pyproject declares {sorted(declared)}"
        )
    return problems


def _installed_package() -> Path:
    """Where ``tap_partner_billing`` is imported from: refuses this checkout's source."""
    where = Path(tap_partner_billing.__file__).resolve().parent
    if "site-packages" not in where.parts:
        raise ReleaseError(f"{PACKAGE} comes from {where}, not an installed wheel: run with -I")
    return where


def write_tap_config(sandbox_env: Path, config_path: Path) -> None:
    """A tap config pointing at the sandbox that wrote SANDBOX_ENV (its defaults' identity)."""
    _installed_package()
    env = dict(
        line.split("=", 1) for line in sandbox_env.read_text(encoding="utf-8").splitlines() if line
    )
    sandbox = SandboxConfig()
    config = {
        "tenant_id": sandbox.tenant_id,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "authority_url": env["PARTNER_BILLING_SANDBOX_LOGIN_URL"],
        "graph_url": env["PARTNER_BILLING_SANDBOX_GRAPH_URL"],
        "partner_center_url": env["PARTNER_BILLING_SANDBOX_PARTNER_CENTER_URL"],
        "start_date": env["PARTNER_BILLING_SANDBOX_START_DATE"],
        "currency_codes": ["USD"],
        "poll_interval_seconds": 1,
    }
    config_path.write_text(json.dumps(config), encoding="utf-8")


def expected_counts(sandbox: Sandbox | None = None) -> dict[str, int]:
    """Records per stream a full sync of the sandbox's data delivers (its ground truth).

    The sandbox Meltano environment's extraction: invoices from the sandbox's start month on
    (a credit note has reconciliation lines, no usage), unbilled current and last month in USD.
    ``sandbox``: the default data unless given (the end-to-end tests give theirs).
    """
    sandbox = sandbox or Sandbox()
    config = sandbox.config
    start = config.start_month.replace("-", "")
    counts = {"invoices": len(config.invoices) + len(config.legacy_invoices)}
    for dataset in ("usage", "reconciliation"):
        counts[f"billed_{dataset}"] = sum(
            sandbox.billed_truth(invoice, dataset=dataset).line_count
            for invoice, spec in config.invoices.items()
            if spec.billing_month >= start
        )
        counts[f"unbilled_{dataset}"] = sum(
            sandbox.unbilled_truth(period, "USD", dataset=dataset).line_count
            for period in ("current", "last")
        )
    return counts


def check_output(output: Path, expected: dict[str, int]) -> tuple[list[str], Counter[str]]:
    """Problems with the tap's stdout OUTPUT given the records EXPECTED per stream; its records."""
    problems = []
    records: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for number, line in enumerate(output.read_text(encoding="utf-8").splitlines(), 1):
        try:
            message = json.loads(line)
        except ValueError as err:
            problems.append(f"{output}:{number}: not JSON ({err})")
            continue
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in SINGER_TYPES:
            problems.append(f"{output}:{number}: not a Singer message (type {kind!r})")
            continue
        kinds[kind] += 1
        if kind == "RECORD":
            if not isinstance(message.get("record"), dict) or not message.get("stream"):
                problems.append(f"{output}:{number}: a RECORD without a stream or a record")
            records[message.get("stream")] += 1
    problems += [
        f"{stream}: {records[stream]} records, the sandbox holds {expected.get(stream)}"
        for stream in sorted(set(expected) | set(records))
        if records[stream] != expected.get(stream) or not records[stream]
    ]
    if not kinds["SCHEMA"] or not kinds["STATE"]:
        problems.append(f"{output}: {dict(kinds)}: a sync has SCHEMA and STATE messages")
    return problems, records


def main() -> int:
    """Run one subcommand (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    artifacts = commands.add_parser("artifacts")
    artifacts.add_argument("source", type=Path)
    artifacts.add_argument("dist", type=Path)
    tap_config = commands.add_parser("tap-config")
    tap_config.add_argument("sandbox_env", type=Path)
    tap_config.add_argument("config", type=Path)
    sync = commands.add_parser("sync")
    sync.add_argument("output", type=Path)
    args = parser.parse_args()
    try:
        if args.command == "tap-config":
            write_tap_config(args.sandbox_env, args.config)
            return 0
        if args.command == "artifacts":
            problems = check_artifacts(args.source, args.dist)
            done = f"sdist and wheel in {args.dist}: contents and metadata as pyproject.toml says"
        else:
            _installed_package()
            expected = expected_counts()
            problems, records = check_output(args.output, expected)
            done = "sync: every line a Singer message; records " + ", ".join(
                f"{stream} {records[stream]}/{expected[stream]}" for stream in sorted(expected)
            )
    except ReleaseError as err:
        problems = [str(err)]
    for problem in problems:
        print(f"release: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"release: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
