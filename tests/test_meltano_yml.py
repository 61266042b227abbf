"""The repository's meltano.yml serves development and the sandbox; production is elsewhere.

Production runs in a Meltano project of the user's own (tests/e2e/test_own_project.py); the
test-only emulator loader is the tests' addition (tests/meltano_project.py); the sandbox
environment keeps who the tap is and where it connects out of reach of ``.env``
(tests/e2e/test_sandbox_environment.py runs it).
"""

from __future__ import annotations

from typing import Any

from tap_partner_billing.tap import SETTINGS
from tests.meltano_project import emulator_plugin, project_for_tests, repository_project

# What the sandbox environment sets under env:, which Meltano ranks above the shell and .env.
IDENTITY_AND_ENDPOINTS = {
    "tenant_id",
    "client_id",
    "client_secret",
    "client_certificate_path",
    "client_certificate_thumbprint",
    "authority_url",
    "graph_url",
    "partner_center_url",
}
# And what .env.example sets of what to extract: the sandbox's data has its own first month
# and currency.
SANDBOX_DATA = {"start_date", "currency_codes"}
SANDBOX_OUTPUT = "$MELTANO_PROJECT_ROOT/.work/sandbox/output"


def sandbox() -> dict[str, Any]:
    environments: list[dict[str, Any]] = repository_project()["environments"]
    [environment] = [e for e in environments if e["name"] == "sandbox"]
    return environment


def test_only_development_and_the_sandbox() -> None:
    project = repository_project()
    assert [e["name"] for e in project["environments"]] == ["dev", "sandbox"]
    assert project["default_environment"] == "dev"


def test_no_test_only_plugin_is_installed_by_a_plain_install() -> None:
    plugins = [p for kind in repository_project()["plugins"].values() for p in kind]
    assert emulator_plugin()["name"] not in {p["name"] for p in plugins}
    assert not [p["name"] for p in plugins if "tests/" in p.get("pip_url", "")]
    loaders = {p["name"] for p in project_for_tests()["plugins"]["loaders"]}
    assert emulator_plugin()["name"] in loaders  # the tests' copy has it


def test_the_sandbox_sets_identity_and_endpoints_where_dotenv_cannot_reach() -> None:
    environment = sandbox()
    env = environment["env"]
    pinned = {
        name.removeprefix("TAP_PARTNER_BILLING_").lower()
        for name in env
        if name.startswith("TAP_PARTNER_BILLING_")
    }
    assert pinned == IDENTITY_AND_ENDPOINTS | SANDBOX_DATA
    assert pinned <= set(SETTINGS.to_dict()["properties"])
    assert env["TAP_PARTNER_BILLING_CLIENT_CERTIFICATE_PATH"] == ""  # a .env's certificate: off
    # The same settings as config would lose to a .env: none is there.
    [tap] = environment["config"]["plugins"]["extractors"]
    assert not set(tap["config"]) & (IDENTITY_AND_ENDPOINTS | SANDBOX_DATA)
    # Its files go to its own folder, never to output/ (where a user's own runs may write).
    assert env["TARGET_JSONL_DESTINATION_PATH"] == SANDBOX_OUTPUT
    assert env["DBT_JSONL_DIR"] == SANDBOX_OUTPUT
    assert env["DBT_DUCKDB_PATH"] == f"{SANDBOX_OUTPUT}/partner_billing.duckdb"
