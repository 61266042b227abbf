"""The reconciliation models as a package of someone else's dbt project: transform/ travels.

- A scratch dbt project (its own name, profile and ``profiles.yml`` on the test PostgreSQL, a
  model of its own on top of the package's, ``packages.yml`` naming this checkout's
  ``transform/`` as a local package) gets the sandbox's data from the tap through the real
  target-postgres into a schema of its own; then the README recipe's commands
  (``commands("dbt-own-project")``) run in it with the Meltano utility's dbt (the pinned
  dbt-core 1.11), without Meltano and without any ``DBT_*`` variable: everything passes and
  the marts equal the sandbox's ground truth.
- The oldest dbt the package claims (``require-dbt-version``'s floor: 1.10, pinned in
  ``constraints/dbt-floor.txt``, in a virtual environment under ``.work`` kept per pins)
  installs it as the recipe's ``packages.yml`` says, from git with ``subdirectory:
  transform``, and parses the project.
- The example profile's Snowflake output authenticates with a key pair from the loader's
  variables (the connector is given the key, not a password).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.doc_commands import ROOT, commands
from tests.e2e.conftest import (
    MeltanoProject,
    file_lock,
    postgres_target,
    query,
    tap_command,
    tap_into_target,
)
from tests.e2e.own_project import yaml_above
from tests.e2e.services import WORK, Postgres
from tests.e2e.warehouse import assert_models_match_sandbox
from tests.test_constraints import pins

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e
RECIPE = "dbt-own-project"
LOADED = "own_dbt_raw"  # where the loader writes (the recipe's `tap_partner_billing`)
BUILT = "own_dbt_analytics"  # the scratch project's target schema
PROJECT = """\
name: my_analytics
version: "1.0.0"
config-version: 2
profile: my_warehouse
flags:
  send_anonymous_usage_stats: false
"""
OWN_MODEL = "select invoice_id, status from {{ ref('invoice_reconciliation') }}\n"


def utility_dbt(meltano: MeltanoProject) -> Path:
    """The dbt of the Meltano utility (dbt-core and adapters as constraints/dbt.txt pins)."""
    return meltano.root / ".meltano" / "utilities" / "dbt" / "venv" / "bin" / "dbt"


def clean_env() -> dict[str, str]:
    """This process's environment without dbt's, Meltano's or the loaders' variables."""
    prefixes = ("DBT_", "MELTANO_", "TARGET_", "TAP_", "PARTNER_BILLING_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"}


def run_dbt(dbt: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` in ``cwd`` (its profiles.yml), failing the test with dbt's log."""
    result = subprocess.run(
        [str(dbt), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"dbt {' '.join(args)}:\n{result.stdout[-6000:]}"
    return result


def scratch_project(folder: Path, profile: dict[str, Any], packages: dict[str, Any]) -> Path:
    """A dbt project of a user's: its own name and profile, one model, the package."""
    folder.mkdir()
    (folder / "dbt_project.yml").write_text(PROJECT, encoding="utf-8")
    (folder / "profiles.yml").write_text(yaml.safe_dump({"my_warehouse": profile}))
    (folder / "packages.yml").write_text(yaml.safe_dump(packages), encoding="utf-8")
    (folder / "models").mkdir()
    (folder / "models" / "open_invoices.sql").write_text(OWN_MODEL, encoding="utf-8")
    return folder


def test_recipe_builds_the_package_in_a_scratch_project(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    sb = sandbox.sandbox
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(sandbox.tls.ca_bundle)}
    tap_into_target(
        tap_command(sandbox, tmp_path),
        postgres_target(meltano, postgres, LOADED, tmp_path),
        env,
        None,
    )

    [git] = yaml_above(RECIPE)["packages"]
    assert git["subdirectory"] == "transform", git
    local = {"packages": [{"local": str(ROOT / "transform")}]}  # the recipe's clone variant
    profile = {
        "target": "dev",
        "outputs": {
            "dev": {
                "type": "postgres",
                "host": postgres.host,
                "port": postgres.port,
                "user": postgres.user,
                "password": postgres.password,
                "dbname": postgres.database,
                "schema": BUILT,
                "threads": 2,
            }
        },
    }
    project = scratch_project(tmp_path / "my_analytics", profile, local)
    dbt = utility_dbt(meltano)
    logs = []
    for command in commands("dbt-own-project"):
        args = shlex.split(command.replace("tap_partner_billing", LOADED))
        assert args[0] == "dbt", command
        logs.append(run_dbt(dbt, args[1:], project).stdout)

    [build] = [log for log in logs if "Done. PASS=" in log]
    summary = next(line for line in build.splitlines() if "Done. PASS=" in line)
    assert "WARN=0 ERROR=0 SKIP=0" in summary, build[-6000:]
    assert re.search(rf"OK created sql view model {BUILT}\.open_invoices", build), build
    assert_models_match_sandbox(lambda sql: query(postgres, sql), BUILT, sb)


def ignore_built(folder: str, names: list[str]) -> set[str]:
    """What dbt writes into a project folder, not part of the package."""
    return {n for n in names if n in ("target", "dbt_packages", "logs")}


def floor_dbt() -> Path:
    """The dbt of require-dbt-version's floor, in a venv under .work named by its pins."""
    pins = ROOT / "constraints" / "dbt-floor.txt"
    venv = WORK / f"dbt-floor-{hashlib.sha256(pins.read_bytes()).hexdigest()[:12]}"
    with file_lock(WORK / "dbt-floor.lock"):
        if not (venv / ".installed").exists():
            shutil.rmtree(venv, ignore_errors=True)
            uv = WORK / "meltano" / "bin" / "uv"  # Meltano's own (constraints/meltano.txt)
            python = venv / "bin" / "python"
            subprocess.run(
                [str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True
            )
            install = [str(uv), "pip", "install", "-q", "--python", str(python)]
            subprocess.run([*install, "-c", str(pins), "dbt-core", "dbt-duckdb"], check=True)
            (venv / ".installed").touch()
    return venv / "bin" / "dbt"


def test_the_oldest_claimed_dbt_parses_the_package_from_git(tmp_path: Path) -> None:
    # The claim: the pinned dbt and the minor before it, whose pins the test installs.
    claimed = yaml.safe_load((ROOT / "transform" / "dbt_project.yml").read_text())
    claim = SpecifierSet(",".join(claimed["require-dbt-version"]))
    pinned, floor = (Version(pins(name)["dbt-core"]) for name in ("dbt", "dbt-floor"))
    assert pinned in claim, (claim, pinned)
    assert floor in claim, (claim, floor)
    assert (floor.major, floor.minor + 1) == (pinned.major, pinned.minor)
    assert Version(f"{floor.major}.{floor.minor - 1}.99") not in claim
    dbt = floor_dbt()

    # The recipe's git entry, its placeholders the user fills: a repository holding this
    # checkout's transform/ (a commit of the working tree as it is) and that commit.
    repository = tmp_path / "repository"
    shutil.copytree(ROOT / "transform", repository / "transform", ignore=ignore_built)
    git = ["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "transform"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    packages = yaml_above(
        RECIPE, **{"<repository URL>": repository.as_uri(), "<tag or commit>": commit}
    )
    profile = {
        "target": "dev",
        "outputs": {"dev": {"type": "duckdb", "path": str(tmp_path / "w.duckdb")}},
    }
    project = scratch_project(tmp_path / "my_analytics", profile, packages)
    run_dbt(dbt, ["deps"], project)
    installed = yaml.safe_load(
        (project / "dbt_packages" / "partner_billing" / "dbt_project.yml").read_text()
    )
    assert installed["name"] == "partner_billing"
    run_dbt(dbt, ["parse", "--no-partial-parse"], project)
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    marts = {
        n["name"] for n in manifest["nodes"].values() if n["package_name"] == "partner_billing"
    }
    assert {"invoice_reconciliation", "usage_vs_reconciliation", "customer_month_cost"} <= marts
    assert manifest["metadata"]["dbt_version"] == str(floor)


# Renders the example profile's snowflake output as dbt does (the pinned dbt-snowflake), once
# per environment read from stdin, and prints what dbt-snowflake hands the connector.
PROFILE_PROBE = """
import hashlib, json, os, sys
from argparse import Namespace
from dbt.adapters.factory import load_plugin
from dbt.config.profile import Profile, read_profile
from dbt.config.renderer import ProfileRenderer
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context

set_from_args(Namespace(), None)
load_plugin("snowflake")
found = []
for env in json.load(sys.stdin):
    set_invocation_context({**os.environ, **env})
    profile = Profile.from_raw_profiles(
        read_profile(sys.argv[1]), "partner_billing", ProfileRenderer({}), "snowflake"
    )
    args = profile.credentials.auth_args()
    key = args.pop("private_key")
    found.append({"args": sorted(args), "key": key and hashlib.sha256(key).hexdigest()})
print(json.dumps(found))
"""


def test_example_profile_takes_the_loaders_key_pair(
    meltano: MeltanoProject, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    passphrase = "correct horse battery staple"
    pem = tmp_path / "rsa_key.p8"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cases = [
        # the README's loader setup: a key file, encrypted, and its passphrase
        {
            "TARGET_SNOWFLAKE_PRIVATE_KEY_PATH": str(pem),
            "TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": passphrase,
        },
        # or the key itself, base64 DER, as target-snowflake's private_key takes it
        {"TARGET_SNOWFLAKE_PRIVATE_KEY": base64.b64encode(der).decode()},
        # a password instead: no key
        {"TARGET_SNOWFLAKE_PASSWORD": "a-password"},
    ]
    python = utility_dbt(meltano).with_name("python")
    result = subprocess.run(
        [str(python), "-c", PROFILE_PROBE, str(ROOT / "transform" / "profiles")],
        input=json.dumps([{"TARGET_SNOWFLAKE_USER": "BILLING_LOADER", **c} for c in cases]),
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert passphrase not in result.stdout + result.stderr
    digest = hashlib.sha256(der).hexdigest()
    assert json.loads(result.stdout) == [
        {"args": ["reuse_connections", "user"], "key": digest},
        {"args": ["reuse_connections", "user"], "key": digest},
        {"args": ["password", "reuse_connections", "user"], "key": None},
    ]
