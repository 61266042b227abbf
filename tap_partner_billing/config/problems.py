"""A config's problems in words: one message per problem, each naming the setting.

The JSON schema (the SDK's validator, which also fills in the defaults) finds wrong types,
ranges and patterns; :func:`~.settings.settings_problems` the rules a schema
cannot say. jsonschema's own messages show raw regular expressions and Python lists, so each
is said again here in words; and a setting the schema refused is not looked at again by the
tap's rules (a missing ``tenant_id`` is one problem, not "required" and "empty").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from singer_sdk.plugin_base import JSONSchemaValidator

from tap_partner_billing.config.settings import (
    CURRENCY_PATTERN,
    INVOICE_ID_PATTERN,
    settings_problems,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class ValidationError(Protocol):
    """What is read of a jsonschema ``ValidationError`` (jsonschema ships no type stubs)."""

    @property
    def validator(self) -> object:
        """The keyword that failed (``pattern``, ``type``, …)."""

    @property
    def validator_value(self) -> object:
        """The keyword's value: the pattern, the allowed values, the bound."""

    @property
    def instance(self) -> object:
        """The value that failed."""

    @property
    def path(self) -> Sequence[str | int]:
        """Where the value is (keys and list positions)."""

    @property
    def message(self) -> str:
        """The message jsonschema wrote."""


# What a value matching each pattern is, for "'g123' is not <this>".
PATTERN_WORDS = {
    INVOICE_ID_PATTERN: "an invoice id (a capital letter then 5-19 capitals or digits, "
    "like G016907411)",
    CURRENCY_PATTERN: "a currency code (three letters, like USD)",
}
TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "string": "text",
    "array": "a list",
    "object": "an object (a mapping)",
}


def config_problems(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Every problem of ``config``, once each: the schema's first, then the tap's rules."""
    found = schema_problems(schema, config)
    refused = {setting for setting, _ in found}
    own = [
        (setting, message)
        for setting, message in settings_problems(config)
        if not any(setting == r or setting.startswith(f"{r}.") for r in refused)
    ]
    return [message for _, message in found + own]


def schema_problems(schema: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, str]]:
    """The JSON Schema errors of ``config`` as (setting, message); fills in the defaults.

    The setting is the dotted path without list positions (``batch_config.encoding.format``,
    ``invoice_ids``): the message shows the value itself.
    """
    problems: list[tuple[str, str]] = []
    for error in JSONSchemaValidator(schema).iter_errors(config):
        setting = ".".join(str(part) for part in error.path if isinstance(part, str))
        if error.validator == "required":
            problems.extend(_missing(error, setting, problems))
        else:
            problems.append((setting, _in_words(error, setting)))
    return problems


def _missing(
    error: ValidationError, setting: str, already: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """A required setting that is absent (jsonschema names them one error each)."""
    instance = error.instance if isinstance(error.instance, dict) else {}
    required = error.validator_value if isinstance(error.validator_value, list) else []
    names = [str(name) for name in required if name not in instance]
    paths = [f"{setting}.{name}" if setting else name for name in names]
    seen = {where for where, _ in already}
    return [(path, f"{path} is not set (it is required)") for path in paths if path not in seen]


def _in_words(error: ValidationError, setting: str) -> str:
    """One jsonschema error as a sentence naming ``setting``."""
    value, limit, rule = error.instance, error.validator_value, error.validator
    where = setting or "the config"
    if rule == "minLength" and value == "":
        return f"{where} is empty"
    if rule == "pattern" and isinstance(limit, str) and limit in PATTERN_WORDS:
        return f"{where}: {value!r} is not {PATTERN_WORDS[limit]}"
    if rule == "enum" and isinstance(limit, list):
        return f"{where}: {value!r} is not one of: {', '.join(map(str, limit))}"
    if rule == "type":
        types = [limit] if isinstance(limit, str) else limit if isinstance(limit, list) else []
        wanted = [str(t) for t in types if t != "null"]
        words = " or ".join(TYPE_WORDS.get(t, t) for t in wanted)
        return f"{where}: {value!r} is not {words}"
    bounds = {
        "minimum": f"too small (at least {limit})",
        "exclusiveMinimum": f"too small (more than {limit})",
        "maximum": f"too large (at most {limit})",
        "exclusiveMaximum": f"too large (less than {limit})",
    }
    if rule in bounds:
        return f"{where}: {value!r} is {bounds[str(rule)]}"
    return f"{where}: {error.message}"
