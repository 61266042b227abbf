"""A partner's own Meltano project, made as the README tells a user to make it.

``meltano init`` outside the repository, then the README's Installation as written on the
plugin definition as shipped (``meltano add … --from-ref … --no-install``, the ``pip_url`` the
README says to write, ``meltano install tap-partner-billing``), and target-jsonl added from a
definition pinned as the repository pins it. One such project serves a pytest session
(``own_project`` in conftest): test_own_project and the cookbook's recipes
(test_cookbook) run in it.

**Installed once.** A plugin whose ``pip_url`` reads exactly as in the session's repository
project (the ``meltano`` fixture, installed anyway) is linked to that installation before
Meltano installs it here: Meltano then finds the same fingerprint and installs into it
without a clean reinstall (uv finds everything satisfied), instead of building a venv again.
A plugin whose ``pip_url`` differs is never linked (Meltano would recreate the linked venv).

**Per test**, :func:`configure` writes the project's ``.env`` for one sandbox (the settings a
user keeps there: credentials and, for the sandbox, its URLs and CA bundle) and starts from
no stored state.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.doc_commands import commands, next_block, run_block
from tests.e2e.conftest import MELTANO, MeltanoProject
from tests.e2e.services import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer

DEFINITION = ROOT / "plugin" / "tap-partner-billing.yml"
TAP = "tap-partner-billing"
# What a user keeps in .env, pointed at the sandbox: credentials, the service's URLs, the
# first month and currencies.
ENV_SETTINGS = (
    "tenant_id",
    "client_id",
    "client_secret",
    "authority_url",
    "graph_url",
    "partner_center_url",
    "start_date",
    "currency_codes",
    "poll_interval_seconds",  # the sandbox answers Retry-After: 0; its environment sets 1
)


def shared_plugin(shared: MeltanoProject, name: str) -> dict[str, Any]:
    """A plugin entry of the session's repository project (its paths this checkout's)."""
    plugins = meltano_yml(shared)["plugins"]
    [entry] = [p for kind in plugins.values() for p in kind if p["name"] == name]
    return dict(entry)


def target_jsonl(folder: Path, shared: MeltanoProject) -> Path:
    """A plugin definition of target-jsonl (no Hub here), pinned as the repository pins it."""
    ref = folder / "target-jsonl.yml"
    loader = shared_plugin(shared, "target-jsonl")
    definition = {k: loader[k] for k in ("name", "namespace", "executable", "settings", "pip_url")}
    ref.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return ref


def meltano_args(lines: tuple[str, ...]) -> list[list[str]]:
    """The arguments of each ``meltano`` command of ``lines``, ``<checkout>`` this checkout."""
    args = [shlex.split(line.replace("<checkout>", str(ROOT)), comments=True) for line in lines]
    assert all(words[0] == "meltano" for words in args), lines
    return [words[1:] for words in args]


def readme_installation() -> tuple[list[str], str, list[list[str]]]:
    """The README's add command, the ``pip_url`` it says to write, and the commands after."""
    [add] = meltano_args(commands("own-project-add"))
    assert add[:2] == ["add", "--plugin-type"], add
    assert "--no-install" in add, add  # the definition's pip_url is a placeholder
    assert add[add.index("--from-ref") + 1] == str(DEFINITION), add  # the file as shipped
    yaml_lines = next_block(run_block("own-project-add"), "yaml").commands
    [written] = [line for line in yaml_lines if line.startswith("pip_url:")]
    pip_url = yaml.safe_load(written)["pip_url"].replace("<checkout>", str(ROOT))
    return add, pip_url, meltano_args(commands("own-project-install"))


def meltano_yml(project: MeltanoProject) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (project.root / "meltano.yml").read_text(encoding="utf-8")
    )
    return loaded


def write_meltano_yml(project: MeltanoProject, content: dict[str, Any]) -> None:
    text = yaml.safe_dump(content, sort_keys=False)
    (project.root / "meltano.yml").write_text(text, encoding="utf-8")


def set_pip_url(project: MeltanoProject, pip_url: str) -> None:
    """What the README asks of the user: the extractor's ``pip_url`` in meltano.yml replaced."""
    content = meltano_yml(project)
    [extractor] = content["plugins"]["extractors"]
    assert extractor["pip_url"] == yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))["pip_url"]
    extractor["pip_url"] = pip_url
    write_meltano_yml(project, content)


def link_installed(
    project: MeltanoProject, shared: MeltanoProject, kind: str, name: str, pip_url: str
) -> None:
    """Use ``shared``'s installation of a plugin when ``pip_url`` reads as there."""
    installed = shared.root / ".meltano" / kind / name
    theirs = [p for p in meltano_yml(shared)["plugins"].get(kind, []) if p["name"] == name]
    if [p.get("pip_url") for p in theirs] != [pip_url] or not installed.exists():
        return  # Meltano installs it here, from scratch
    here = project.root / ".meltano" / kind / name
    if not here.exists():
        here.parent.mkdir(parents=True, exist_ok=True)
        here.symlink_to(installed)


def make_own_project(folder: Path, shared: MeltanoProject) -> MeltanoProject:
    """``meltano init`` in ``folder``, the README's Installation, then target-jsonl."""
    assert not folder.resolve().is_relative_to(ROOT.resolve())
    MeltanoProject(folder).run("init", "own-project", "--no_usage_stats")
    project = MeltanoProject(folder / "own-project")
    assert not (project.root / "plugin").exists()  # nothing of the repository in it

    # The README's Installation, as written, on the definition as shipped.
    add, pip_url, rest = readme_installation()
    project.run(*add)
    set_pip_url(project, pip_url)
    link_installed(project, shared, "extractors", TAP, pip_url)
    assert rest == [["install", TAP]], rest
    for args in rest:
        project.run(*args)
    # target-jsonl from a definition file; linked first, so adding it installs nothing anew.
    ref = target_jsonl(folder, shared)
    jsonl_pip_url = yaml.safe_load(ref.read_text(encoding="utf-8"))["pip_url"]
    link_installed(project, shared, "loaders", "target-jsonl", jsonl_pip_url)
    project.run("add", "--plugin-type", "loader", "target-jsonl", "--from-ref", str(ref))
    return project


def configure(project: MeltanoProject, sandbox: SandboxServer, **extra: str) -> None:
    """The project's ``.env`` for ``sandbox``, and no state stored yet (a fresh system DB)."""
    config = sandbox.tap_config()
    lines = [
        f"TAP_PARTNER_BILLING_{name.upper()}="
        + (json.dumps(config[name]) if isinstance(config[name], list) else str(config[name]))
        for name in ENV_SETTINGS
    ]
    lines.append(f"REQUESTS_CA_BUNDLE={sandbox.tls.ca_bundle}")
    lines += [f"{key}={value}" for key, value in extra.items()]
    (project.root / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project.root / ".meltano" / "meltano.db").unlink(missing_ok=True)


def shell(
    project: MeltanoProject, command: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One command line as a user types it in the project's folder (bash, pipefail)."""
    full_env = {
        **os.environ,
        "PATH": f"{MELTANO.parent}{os.pathsep}{os.environ['PATH']}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(env or {}),
    }
    full_env.pop("REQUESTS_CA_BUNDLE", None)  # the project's .env sets its own
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=project.root,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"{command} failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return result
