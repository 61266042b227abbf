"""Settings: declared once (config/settings.py), mirrored in meltano.yml and README, checked."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from plugin_definition import DEFINITION, render
from plugin_definition import about as about_json
from readme_settings import README, about_table, readme_table
from singer_sdk.exceptions import ConfigValidationError

from tap_partner_billing.config.settings import PLACEHOLDER_SECRETS
from tap_partner_billing.tap import SETTINGS, TapPartnerBilling
from tests.helpers import base_config
from tests.meltano_project import emulator_plugin

ROOT = Path(__file__).resolve().parent.parent

# Settings and their parsing: a contract test on every claimed Python (scripts/test-pythons).
pytestmark = pytest.mark.contract


def tap_settings() -> set[str]:
    return set(SETTINGS.to_dict()["properties"])


def test_meltano_yml_and_the_plugin_definition_mirror_the_settings() -> None:
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    [extractor] = meltano["plugins"]["extractors"]
    settings = {s["name"]: s for s in extractor["settings"]}
    about = about_json()
    plugin_definition_mirrors_the_settings(about, extractor)
    builtin = set(about["settings"]["properties"]) - tap_settings()
    assert tap_settings() <= set(settings)
    assert set(settings) - tap_settings() <= builtin  # SDK built-ins Meltano should pass on
    for name, schema in SETTINGS.to_dict()["properties"].items():
        assert bool(settings[name].get("sensitive")) == bool(schema.get("secret")), name
        if "default" in schema and schema["default"] not in ([], None):
            assert settings[name].get("value") == schema["default"], name
    assert "activate-version" not in extractor["capabilities"]
    assert set(extractor["capabilities"]) == set(about["capabilities"])


def plugin_definition_mirrors_the_settings(
    about: dict[str, Any], extractor: dict[str, Any]
) -> None:
    """plugin/tap-partner-billing.yml: what scripts/plugin_definition.py writes from --about."""
    text = DEFINITION.read_text(encoding="utf-8")
    assert text == render(about), "stale: run python scripts/plugin_definition.py"
    definition = yaml.safe_load(text)
    settings = {s["name"]: s for s in definition["settings"]}
    assert list(settings) == list(about["settings"]["properties"])  # every setting, in order
    assert set(settings) >= {s["name"] for s in extractor["settings"]}
    for name, schema in SETTINGS.to_dict()["properties"].items():
        setting = settings[name]
        assert setting["label"] == schema["title"], name
        assert setting["description"] == schema["description"], name
        assert setting.get("sensitive", False) == schema.get("secret", False), name
        assert setting.get("value") == schema.get("default"), name
    assert settings["client_secret"]["sensitive"] is True
    assert settings["recheck_months"]["kind"] == "integer"
    assert settings["currency_codes"]["kind"] == "array"
    assert settings["attribute_set"]["options"] == [
        {"label": "Full", "value": "full"},
        {"label": "Basic", "value": "basic"},
    ]
    assert settings["batch_config"]["kind"] == "object"
    assert definition["capabilities"] == about["capabilities"]
    assert set(definition["capabilities"]) == set(extractor["capabilities"])
    groups = definition["settings_group_validation"]
    assert groups == extractor["settings_group_validation"]
    assert all(set(group) <= set(settings) for group in groups)
    for key in ("name", "namespace", "executable"):
        assert definition[key] == extractor[key], key
    # Nothing is on a package index: a placeholder the user replaces (README, Installation),
    # never a package name someone else could publish.
    assert definition["pip_url"].startswith("<replace: ")
    assert "tap-partner-billing==" not in text


def test_loaders_and_models_read_one_schema() -> None:
    """Both PostgreSQL loaders, target-snowflake and dbt's sources: one value, meltano.yml's env."""
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    schema = meltano["env"]["PARTNER_BILLING_SCHEMA"]
    loaders = {p["name"]: p for p in meltano["plugins"]["loaders"]}
    for name in ("target-postgres", "target-postgres-pipelinewise", "target-snowflake"):
        assert loaders[name]["config"]["default_target_schema"] == "$PARTNER_BILLING_SCHEMA"
    assert "default_target_schema" not in emulator_plugin().get("config", {})  # the tests set it
    [dbt] = meltano["plugins"]["utilities"]
    source = next(s for s in dbt["settings"] if s["name"] == "source_schema")
    assert (source["env"], source["value"]) == ("DBT_SOURCE_SCHEMA", "$PARTNER_BILLING_SCHEMA")
    sources = (ROOT / "transform" / "models" / "sources.yml").read_text(encoding="utf-8")
    assert f"env_var('DBT_SOURCE_SCHEMA', '{schema}')" in sources  # dbt run without Meltano
    for environment in meltano["environments"]:  # no environment sets one side alone
        plugins = environment.get("config", {}).get("plugins", {})
        for loader in plugins.get("loaders", []):
            assert "default_target_schema" not in loader.get("config", {}), environment["name"]


def test_readme_table_is_generated_from_about() -> None:
    assert readme_table(README.read_text(encoding="utf-8")) == about_table(), (
        "README settings table is stale: run python scripts/readme_settings.py"
    )


def test_about_lists_streams_and_capabilities() -> None:
    about = about_json()
    assert [s["name"] for s in about["streams"]] == [
        "invoices",
        "billed_usage",
        "unbilled_usage",
        "billed_reconciliation",
        "unbilled_reconciliation",
    ]
    assert {"about", "catalog", "discover", "state", "stream-maps", "schema-flattening"} <= set(
        about["capabilities"]
    )
    assert "activate-version" not in about["capabilities"]


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("no secret nor certificate", {"client_secret": None}, "neither is set"),
    (
        "both secret and certificate",
        {"client_certificate_path": "/x.pem", "client_certificate_thumbprint": "AB"},
        "both are set",
    ),
    (
        "certificate without thumbprint",
        {"client_secret": None, "client_certificate_path": "/x.pem"},
        "needs client_certificate_thumbprint",
    ),
    ("empty tenant", {"tenant_id": " "}, "tenant_id is empty"),
    ("missing client id", {"client_id": None}, "client_id"),
    ("malformed invoice id", {"invoice_ids": ["G-1"]}, "G-1"),
    (
        "malformed refresh id",
        {"refresh_invoice_ids": ["G000000001", "g16907411"]},
        (
            "refresh_invoice_ids: 'g16907411' is not an invoice id (a capital letter then 5-19 "
            "capitals or digits, like G016907411)"
        ),
    ),
    ("refresh ids not a list", {"refresh_invoice_ids": "G000000001"}, "refresh_invoice_ids"),
    (
        "refresh id twice",
        {"refresh_invoice_ids": ["G000000001", "G000000001"]},
        "refresh_invoice_ids lists a value twice",
    ),
    ("malformed currency", {"currency_codes": ["US"]}, "currency_codes: 'US' is not a currency"),
    ("unknown billing period", {"billing_periods": ["previous"]}, "previous"),
    (
        "http graph url",
        {"graph_url": "http://graph.microsoft.com/v1.0"},
        "graph_url must be an https:// URL",
    ),
    (
        "http authority",
        {"authority_url": "http://login.microsoftonline.com"},
        "authority_url must be an https:// URL",
    ),
    (
        "http partner center url",
        {"partner_center_url": "http://api.partnercenter.microsoft.com"},
        "partner_center_url must be an https:// URL",
    ),
    ("malformed start month", {"start_date": "2026-13"}, "2026-13"),
    ("start date not a date", {"start_date": "2026-02-30"}, "got '2026-02-30'"),
    ("start date a bad date-time", {"start_date": "2026-02-01T25:00:00Z"}, "2026-02-01T25"),
    ("negative recheck months", {"recheck_months": -1}, "recheck_months"),
    ("empty client secret", {"client_secret": ""}, "neither is set"),
    ("zero timeout", {"poll_timeout_seconds": 0}, "poll_timeout_seconds"),
    ("negative interval", {"poll_interval_seconds": -1}, "poll_interval_seconds"),
    ("zero downloads", {"max_parallel_downloads": 0}, "max_parallel_downloads"),
    (
        "activate version",
        {"emit_activate_version_messages": True},
        "emit_activate_version_messages is not supported",
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_is_refused_before_any_request(
    name: str, change: dict[str, Any], message: str, rsps: responses.RequestsMock
) -> None:
    config = {
        k: v
        for k, v in {**base_config(invoice_ids=["G000000001"]), **change}.items()
        if v is not None
    }
    with pytest.raises(ConfigValidationError) as raised:
        TapPartnerBilling(config=config).sync_all()
    assert message in " ".join([str(raised.value), *raised.value.errors])
    assert len(rsps.calls) == 0


def test_poll_interval_of_one_second_is_accepted() -> None:
    TapPartnerBilling(config=base_config(poll_interval_seconds=1))


@pytest.mark.parametrize(
    ("given", "month", "warned"),
    [
        ("2026-08", "2026-08", False),
        ("2026-08-01", "2026-08", False),
        ("2026-08-01T00:00:00Z", "2026-08", False),
        ("2026-08-01T00:00:00+02:00", "2026-08", False),
        ("2026-08-01 00:00:00", "2026-08", False),
        ("2026-08-15", "2026-08", True),
        ("2026-08-31T23:59:59.123Z", "2026-08", True),
    ],
)
def test_start_date_habits_become_the_month(
    given: str, month: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    tap = TapPartnerBilling(config=base_config(start_date=given))
    assert tap.config["start_date"] == month
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(warnings) == warned
    if warned:
        assert warnings == [
            (
                f"start_date {given!r} is not the first of a month: billing months are whole, "
                f"so invoices from {month} on are exported"
            )
        ]


def test_currency_codes_are_upper_cased() -> None:
    tap = TapPartnerBilling(config=base_config(currency_codes=["usd", " Eur "]))
    assert tap.config["currency_codes"] == ["USD", "EUR"]


def test_every_problem_is_listed_at_once(rsps: responses.RequestsMock) -> None:
    config = {
        **base_config(),
        "graph_url": "http://graph.microsoft.com/v1.0",
        "start_date": "August",
        "max_parallel_downloads": 0,
        "currency_codes": ["usd", "usd"],
    }
    del config["client_secret"]
    with pytest.raises(ConfigValidationError) as raised:
        TapPartnerBilling(config=config)
    assert raised.value.errors == [
        "max_parallel_downloads: 0 is too small (at least 1)",
        (
            "start_date must be a billing month (YYYY-MM), a date (YYYY-MM-DD) or an ISO "
            "date-time, got 'August'"
        ),
        (
            "graph_url must be an https:// URL, got 'http://graph.microsoft.com/v1.0' "
            "(it is not https)"
        ),
        "give exactly one of client_secret or client_certificate_path (neither is set)",
        "currency_codes lists a value twice",
    ]
    assert len(rsps.calls) == 0


PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("name", ["tenant_id", "client_id"])
def test_the_examples_placeholder_id_is_refused_as_the_placeholder(name: str) -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TapPartnerBilling(config=base_config(**{name: PLACEHOLDER}))
    [problem] = raised.value.errors
    assert problem.startswith(
        f"{name} is the placeholder {PLACEHOLDER} of .env.example and config.example.json: set "
    )
    # The examples do hold it: the message names where it comes from.
    assert PLACEHOLDER in (ROOT / ".env.example").read_text(encoding="utf-8")
    assert json.loads((ROOT / "config.example.json").read_text(encoding="utf-8"))[name] == (
        PLACEHOLDER
    )


ONE_MESSAGE_EACH: list[tuple[str, dict[str, Any], str]] = [
    ("tenant missing", {"tenant_id": None}, "tenant_id is not set (it is required)"),
    ("tenant empty", {"tenant_id": ""}, "tenant_id is empty"),
    (
        "invoice id",
        {"invoice_ids": ["g123"]},
        (
            "invoice_ids: 'g123' is not an invoice id (a capital letter then 5-19 capitals or "
            "digits, like G016907411)"
        ),
    ),
    (
        "period",
        {"billing_periods": ["previous"]},
        "billing_periods: 'previous' is not one of: current, last",
    ),
    ("not a list", {"invoice_ids": "G016907411"}, "invoice_ids: 'G016907411' is not a list"),
    ("not a number", {"recheck_months": "two"}, "recheck_months: 'two' is not a whole number"),
    (
        "above the maximum",
        {"max_concurrent_exports": 500},
        "max_concurrent_exports: 500 is too large (at most 100)",
    ),
    (
        "batch format",
        {"batch_config": {"encoding": {"format": "csv"}, "storage": {"root": "file:///tmp"}}},
        "batch_config.encoding.format: 'csv' is not one of: jsonl, parquet",
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), ONE_MESSAGE_EACH, ids=[c[0] for c in ONE_MESSAGE_EACH]
)
def test_each_problem_is_one_message_in_words(
    name: str, change: dict[str, Any], message: str
) -> None:
    config = {k: v for k, v in {**base_config(), **change}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapPartnerBilling(config=config)
    assert raised.value.errors == [message], name


def test_discovery_and_about_still_take_an_unfinished_config() -> None:
    # --discover builds the tap without raising (the SDK's validate_config=False), as before.
    tap = TapPartnerBilling(config=base_config(tenant_id=PLACEHOLDER), validate_config=False)
    assert {s["stream"] for s in tap.catalog_dict["streams"]} >= {"billed_usage", "invoices"}
    assert tap.config_jsonschema["properties"]["invoice_ids"]["items"]["pattern"]


@pytest.mark.parametrize("example", ["config.example.json", ".env.example"])
def test_the_examples_placeholder_secret_is_refused_as_the_placeholder(example: str) -> None:
    text = (ROOT / example).read_text(encoding="utf-8")
    [held] = [secret for secret in PLACEHOLDER_SECRETS if secret in text]  # the example's own
    with pytest.raises(ConfigValidationError) as raised:
        TapPartnerBilling(config=base_config(client_secret=held))
    assert raised.value.errors == [
        (
            "client_secret is the placeholder text of .env.example and config.example.json: "
            "set the Value of the app's client secret (Certificates & secrets)"
        )
    ]


def test_the_example_config_and_env_files_name_real_settings() -> None:
    example = json.loads((ROOT / "config.example.json").read_text(encoding="utf-8"))
    assert set(example) <= tap_settings()
    with pytest.raises(ConfigValidationError) as raised:  # IDs and secret are placeholders
        TapPartnerBilling(config=dict(example))
    assert [e.split(" ", 1)[0] for e in raised.value.errors] == [
        "tenant_id",
        "client_id",
        "client_secret",
    ]
    real = {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": str(uuid.uuid4()),
        "client_secret": "a-real-secret-value",
    }
    TapPartnerBilling(config={**example, **real})  # valid once they are filled in
    names = [
        line.lstrip("# ").split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and line.lstrip("# ").startswith("TAP_PARTNER_BILLING_")
    ]
    assert names
    assert {n.removeprefix("TAP_PARTNER_BILLING_").lower() for n in names} <= tap_settings()
