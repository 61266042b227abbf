"""Print a pip constraints file that pins every runtime dependency at its floor.

CI's ``floors`` job installs the tap with it and runs the unit tests, so a floor in
pyproject.toml that the code has outgrown fails there:

    python scripts/floor_pins.py > floors.txt && pip install -c floors.txt -e . --group test
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
FLOOR_OPERATORS = (">=", "~=", "==")


def floor_pins() -> list[str]:
    """``name==floor`` for the dependencies and the sandbox extra (the code's own needs)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["sandbox"]]:
        requirement = Requirement(line)
        floors = [s.version for s in requirement.specifier if s.operator in FLOOR_OPERATORS]
        if len(floors) != 1:
            msg = f"{line}: no single floor (>=, ~= or ==) to pin"
            raise SystemExit(msg)
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


if __name__ == "__main__":
    sys.stdout.write("".join(f"{pin}\n" for pin in floor_pins()))
