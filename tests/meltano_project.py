"""The Meltano project the tests run: the repository's ``meltano.yml`` plus the test-only loader.

``target-snowflake-emulator`` (``tests/snowflake_emulator/meltano-plugin.yml``) is not in the
repository's ``meltano.yml``, so a plain ``meltano install`` never installs it; the end-to-end
tests' copies of the project (``tests/e2e/conftest.py``) and ``scripts/lock`` add it here.

``python -m tests.meltano_project ROOT [--without-pins]`` prints that project file with the
local packages and pins as paths under ROOT (``scripts/lock`` uses it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EMULATOR_PLUGIN = ROOT / "tests" / "snowflake_emulator" / "meltano-plugin.yml"


def repository_project() -> dict[str, Any]:
    """The repository's ``meltano.yml``, as it is."""
    project: dict[str, Any] = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    return project


def emulator_plugin() -> dict[str, Any]:
    """The test-only loader ``target-snowflake-emulator``."""
    plugin: dict[str, Any] = yaml.safe_load(EMULATOR_PLUGIN.read_text(encoding="utf-8"))
    return plugin


def project_for_tests() -> dict[str, Any]:
    """The repository's project with the test-only loader added."""
    project = repository_project()
    project["plugins"]["loaders"].append(emulator_plugin())
    return project


def project_file_for_tests(root: Path, *, pins: bool = True) -> str:
    """The tests' ``meltano.yml``: local packages and pins are paths under ``root``.

    The same text in every copy of the project: Meltano reinstalls a plugin whose ``pip_url``
    reads differently from the one it was installed with. Without ``pins`` the ``-c`` files
    are left out (``scripts/lock`` resolves the newest versions).
    """
    project = project_for_tests()
    for plugins in project["plugins"].values():
        for plugin in plugins:
            if "pip_url" not in plugin:
                continue
            url = re.sub(r"^-e \.(?=\s|$)", f"-e {root}", plugin["pip_url"])
            url = url.replace("${MELTANO_PROJECT_ROOT}/", f"{root}/")
            plugin["pip_url"] = url if pins else re.sub(r" -c \S+", "", url)
    return yaml.safe_dump(project, sort_keys=False)


if __name__ == "__main__":
    print(project_file_for_tests(Path(sys.argv[1]), pins="--without-pins" not in sys.argv), end="")
