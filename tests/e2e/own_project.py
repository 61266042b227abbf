"""A partner's own Meltano project, made as the README tells a user to make it.

``meltano init`` outside the repository, then the README's Installation as written on the
plugin definition as shipped (``meltano add … --from-ref … --no-install``, the ``pip_url`` the
README says to write, ``meltano install tap-partner-billing``), and target-jsonl added by
pasting the Usage section's YAML into ``meltano.yml``. One such project serves a pytest
session (``own_project`` in conftest): test_own_project and the recipes of the Cookbook
(test_cookbook) and of docs/targets.md (test_pipelinewise) run in it, each recipe's YAML
pasted as the user does (:func:`yaml_above`, :func:`add_to_meltano_yml`) and taken out again
afterwards (:func:`restored`).

**Installed once.** A plugin whose ``pip_url`` reads exactly as in the session's repository
project (the ``meltano`` fixture, installed anyway) is linked to that installation before
Meltano installs it here (conftest's ``link_installed``): Meltano then finds the same
fingerprint and installs into it without a clean reinstall (uv finds everything satisfied),
instead of building a venv again. A plugin whose ``pip_url`` differs is never linked (Meltano
would recreate the linked venv).

**Per test**, :func:`configure` writes the project's ``.env`` for one sandbox (the settings a
user keeps there: credentials and, for the sandbox, its URLs and CA bundle) and starts from
no stored state.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
from typing import TYPE_CHECKING, Any

import yaml

from tests.doc_commands import block_near, commands
from tests.e2e.conftest import MELTANO, MeltanoProject, link_installed
from tests.e2e.services import ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
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
    written = yaml.safe_load(block_near("own-project-add", "yaml", "after"))
    assert list(written) == ["pip_url"], written
    pip_url = written["pip_url"].replace("<checkout>", str(ROOT))
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


def reuse_installed(
    project: MeltanoProject, shared: MeltanoProject, kind: str, plugin: dict[str, Any]
) -> None:
    """Link ``shared``'s installation of ``plugin`` when its ``pip_url`` reads as there."""
    name = plugin["name"]
    declared = meltano_yml(shared)["plugins"].get(kind, [])
    theirs = [p.get("pip_url") for p in declared if p["name"] == name]
    if theirs == [plugin.get("pip_url")] and (shared.root / ".meltano" / kind / name).exists():
        link_installed(project.root, shared.root, kind, name)
    # otherwise Meltano installs it here, from scratch


def yaml_above(block_id: str, **examples: str) -> dict[str, Any]:
    """The YAML block nearest above the marked block, as the user fills it in.

    ``<checkout>`` is this clone; each example value (as the document shows it) is replaced
    by the test's own, and must still be there.
    """
    text = block_near(block_id, "yaml", "before").replace("<checkout>", str(ROOT))
    loaded: dict[str, Any] = yaml.safe_load(filled(text, examples, f"the YAML above {block_id}"))
    return loaded


def add_to_meltano_yml(
    project: MeltanoProject, shared: MeltanoProject, snippet: dict[str, Any]
) -> None:
    """Merge a document's YAML into the project's meltano.yml, as a user does by hand.

    Its ``env:`` into ``env:``, its ``plugins:`` entries into ``plugins:``; each plugin
    installed in ``shared`` alike is linked first (:func:`reuse_installed`).
    """
    content = meltano_yml(project)
    if "env" in snippet:
        content.setdefault("env", {}).update(snippet["env"])
    for kind, plugins in snippet.get("plugins", {}).items():
        content["plugins"].setdefault(kind, []).extend(plugins)
        for plugin in plugins:
            reuse_installed(project, shared, kind, plugin)
    write_meltano_yml(project, content)


@contextlib.contextmanager
def restored(project: MeltanoProject) -> Iterator[None]:
    """The project's ``meltano.yml`` and ``.env`` put back as they were, whatever happens."""
    files = [project.root / name for name in ("meltano.yml", ".env")]
    saved = {path: path.read_text(encoding="utf-8") if path.exists() else None for path in files}
    try:
        yield
    finally:
        for path, text in saved.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text, encoding="utf-8")


def make_own_project(folder: Path, shared: MeltanoProject) -> MeltanoProject:
    """``meltano init`` in ``folder``, the README's Installation, then target-jsonl (Usage)."""
    assert not folder.resolve().is_relative_to(ROOT.resolve())
    MeltanoProject(folder).run("init", "own-project", "--no_usage_stats")
    project = MeltanoProject(folder / "own-project")
    assert not (project.root / "plugin").exists()  # nothing of the repository in it

    # The README's Installation, as written, on the definition as shipped.
    add, pip_url, rest = readme_installation()
    project.run(*add)
    set_pip_url(project, pip_url)
    reuse_installed(project, shared, "extractors", {"name": TAP, "pip_url": pip_url})
    assert rest == [["install", TAP]], rest
    for args in rest:
        project.run(*args)
    # The Usage section's loader, pasted as written (linked first: nothing installed anew).
    add_to_meltano_yml(project, shared, yaml_above("usage-own-project"))
    return project


def configure(project: MeltanoProject, sandbox: SandboxServer) -> None:
    """The project's ``.env`` for ``sandbox``, and no state stored yet (a fresh system DB)."""
    config = sandbox.tap_config()
    lines = [
        f"TAP_PARTNER_BILLING_{name.upper()}="
        + (json.dumps(config[name]) if isinstance(config[name], list) else str(config[name]))
        for name in ENV_SETTINGS
    ]
    lines.append(f"REQUESTS_CA_BUNDLE={sandbox.tls.ca_bundle}")
    (project.root / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project.root / ".meltano" / "meltano.db").unlink(missing_ok=True)


def shell(
    project: MeltanoProject, command: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One command line as a user types it in the project's folder (bash, pipefail)."""
    path = {"PATH": f"{MELTANO.parent}{os.pathsep}{os.environ['PATH']}"}
    # Without REQUESTS_CA_BUNDLE from this process: the project's .env sets its own.
    return project.run("-o", "pipefail", "-c", command, env={**path, **(env or {})}, program="bash")


def filled(text: str, examples: dict[str, str], what: str) -> str:
    """``text`` with each example value the document shows replaced by the test's own."""
    for example, value in examples.items():
        assert example in text, f"{what} no longer shows {example}"
        text = text.replace(example, value)
    return text


def recipe(lines: tuple[str, ...], **examples: str) -> list[str]:
    """A document block's commands, each example value replaced by the user's own."""
    return filled("\n".join(lines), examples, f"{lines}").split("\n")


def summaries(log: str) -> dict[str, str]:
    """The tap's end-of-run summary line per stream, from a log."""
    lines = re.findall(r"Run summary (\w+): ([^\n\"]*)", log)
    return {stream: text.strip() for stream, text in lines}
