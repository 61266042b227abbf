"""Write the Meltano plugin definition (``plugin/tap-partner-billing.yml``) from the tap itself.

The definition is in the Meltano Hub's format, for ``meltano add --plugin-type extractor
tap-partner-billing --from-ref <file> --no-install`` in a project of one's own (README,
"Installation"; the ``docs/meltano-plugin.md`` reference). Its settings are every setting
``--about --format=json`` lists (the tap's own from ``config/settings.py`` and the SDK's built-ins),
with kind, label, description, default and ``sensitive`` taken from their JSON schema; its
capabilities are ``--about``'s; the setting groups come from ``meltano.yml``. Nothing is
published on a package index, so its ``pip_url`` is :data:`PIP_URL`, a placeholder the user
replaces with a checkout, a git reference or a wheel (never a package name someone else
could publish). Run ``python scripts/plugin_definition.py`` after changing a setting; the
tests fail while the file differs from what this writes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = ROOT / "plugin" / "tap-partner-billing.yml"
HEADER = (
    "# The Meltano plugin definition of tap-partner-billing (Meltano Hub format), for\n"
    "#   meltano add --plugin-type extractor tap-partner-billing --from-ref <file> --no-install\n"
    "# then replace pip_url in your meltano.yml (nothing is on a package index; README,\n"
    "# Installation) and run meltano install tap-partner-billing.\n"
    "# Written by scripts/plugin_definition.py from the tap's --about; do not edit by hand.\n"
)
# Not installable as it stands: replaced after `meltano add … --no-install` (README).
PIP_URL = "<replace: -e <checkout> -c <checkout>/constraints/tap.txt, a git reference or a wheel>"
# JSON schema type -> Meltano setting kind (an "enum" is kind "options").
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


def about_output(output_format: Literal["json", "markdown"]) -> str:
    """What ``tap-partner-billing --about --format=<output_format>`` prints."""
    return subprocess.run(
        [sys.executable, "-m", "tap_partner_billing", "--about", f"--format={output_format}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def about() -> dict[str, Any]:
    """``tap-partner-billing --about --format=json``."""
    parsed: dict[str, Any] = json.loads(about_output("json"))
    return parsed


def project_field(name: str) -> str:
    """A one-line string field (``version``, ``description``) of pyproject.toml's [project]."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(rf'^{name} = "([^"]+)"$', project, flags=re.MULTILINE)
    if found is None:
        msg = f"pyproject.toml declares no [project] {name}"
        raise SystemExit(msg)
    return found.group(1)


def meltano_extractor() -> dict[str, Any]:
    """The tap's entry in the repository's ``meltano.yml``."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    extractor: dict[str, Any] = project["plugins"]["extractors"][0]
    return extractor


def setting(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """One setting in Meltano's terms, from its JSON schema.

    Raises:
        SystemExit: The schema has a type no Meltano kind stands for.
    """
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    entry: dict[str, Any] = {"name": name}
    if "enum" in schema:
        entry["kind"] = "options"
        entry["options"] = [{"label": str(v).capitalize(), "value": v} for v in schema["enum"]]
    elif len(types) == 1 and types[0] in KINDS:
        entry["kind"] = KINDS[types[0]]
    else:
        msg = f"setting {name}: no Meltano kind for JSON schema type {types!r}"
        raise SystemExit(msg)
    entry["label"] = schema.get("title") or name
    entry["description"] = " ".join(str(schema.get("description", "")).split())
    if schema.get("secret"):
        entry["sensitive"] = True
    if schema.get("default") is not None:
        entry["value"] = schema["default"]
    return entry


def definition(info: dict[str, Any]) -> dict[str, Any]:
    """The plugin definition from ``--about``'s JSON, as a mapping in the Hub's key order."""
    extractor = meltano_extractor()
    return {
        "name": info["name"],
        "namespace": extractor["namespace"],
        "variant": "partner-billing",
        "label": "Microsoft Partner Billing (CSP)",
        "description": project_field("description"),
        "keywords": ["meltano_sdk"],
        "maintenance_status": "active",
        "pip_url": PIP_URL,
        "executable": extractor["executable"],
        "capabilities": info["capabilities"],
        "settings": [setting(n, s) for n, s in info["settings"]["properties"].items()],
        "settings_group_validation": extractor["settings_group_validation"],
    }


def render(info: dict[str, Any]) -> str:
    """The definition file's text, from ``--about``'s JSON."""
    body = yaml.safe_dump(definition(info), sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def main() -> None:
    """Rewrite the definition file."""
    DEFINITION.parent.mkdir(exist_ok=True)
    DEFINITION.write_text(render(about()), encoding="utf-8")


if __name__ == "__main__":
    main()
