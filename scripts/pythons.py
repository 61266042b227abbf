"""The Python versions the package claims, where they are on this machine, and their pins.

    python3 scripts/pythons.py --list        # the claimed minor versions (pyproject's classifiers)
    python3 scripts/pythons.py --find        # "3.10 /path/to/python3.10" per claimed version;
                                             # exits 1 naming every one this machine lacks
    python3 scripts/pythons.py --pins 3.10   # the constraints file of that version

scripts/test runs the contract tests on each claimed version (scripts/test-pythons),
scripts/bootstrap and CI install each from its pins, scripts/lock writes them. Runs on every
claimed version (no tomllib: 3.10 has none).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "constraints"
_CLASSIFIER = re.compile(r'"Programming Language :: Python :: (3\.\d+)"')


def claimed() -> list[str]:
    """The minor versions pyproject.toml's classifiers claim, oldest first."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    versions = sorted(set(_CLASSIFIER.findall(text)), key=lambda v: int(v.split(".")[1]))
    if not versions:
        raise SystemExit("pyproject.toml claims no Python version (classifiers)")
    return versions


def pins(version: str) -> Path:
    """The constraints file of ``version``: its own where its pins must differ (scripts/lock)."""
    own = PINS / f"tap-py{version}.txt"
    return own if own.exists() else PINS / "tap.txt"


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out


def find(version: str) -> str | None:
    """An interpreter of ``version``: ``pythonX.Y`` on PATH, else pyenv's newest patch release."""
    candidates = []
    if on_path := shutil.which(f"python{version}"):
        candidates.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    releases = pyenv.glob(f"{version}.*/bin/python{version}")
    by_patch = sorted(releases, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])])
    candidates.extend(str(p) for p in reversed(by_patch))
    return next((c for c in candidates if _version_of(c) == version), None)


def main() -> int:
    """Answer one of the three questions (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--list", action="store_true")
    group.add_argument("--find", action="store_true")
    group.add_argument("--pins", metavar="X.Y")
    args = parser.parse_args()
    if args.pins:
        print(pins(args.pins))
        return 0
    versions = claimed()
    if args.list:
        print("\n".join(versions))
        return 0
    found = {v: find(v) for v in versions}
    missing = [v for v, python in found.items() if python is None]
    if missing:
        print(
            f"pythons: the package claims Python {', '.join(versions)}, but this machine has "
            f"no {', '.join(missing)} (neither python{missing[0]} on PATH nor a pyenv "
            f"version): install it (e.g. pyenv install {missing[0]}) or narrow the claim in "
            "pyproject.toml",
            file=sys.stderr,
        )
        return 1
    print("\n".join(f"{v} {python}" for v, python in found.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
