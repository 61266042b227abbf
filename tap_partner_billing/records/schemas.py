"""The export streams' JSON schema: data columns, provenance and identity. No Singer in here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tap_partner_billing.records.fields import Kind, column_schema

if TYPE_CHECKING:
    from tap_partner_billing.records.fields import FieldSet

_KEY_STRING = {"type": ["string"]}
_INTEGER = {"type": ["integer", "null"]}

PROVENANCE_PROPERTIES: dict[str, dict[str, Any]] = {
    "billing_month": column_schema(Kind.STRING),
    "line_ordinal": {"type": ["integer"]},
    "_operation_id": column_schema(Kind.STRING),
    "_manifest_id": column_schema(Kind.STRING),
    "_manifest_etag": column_schema(Kind.STRING),
    "_manifest_created_at": column_schema(Kind.DATETIME),
    "_invoice_version": column_schema(Kind.STRING),
    "_blob_name": column_schema(Kind.STRING),
    "_blob_line": _INTEGER,
    "_sdc_deleted_at": column_schema(Kind.DATETIME),
}


def stream_schema(field_set: FieldSet, identity: tuple[str, ...]) -> dict[str, Any]:
    """Data columns, then provenance, then identity (a key column is never null)."""
    properties = field_set.schema_properties()
    properties.update(PROVENANCE_PROPERTIES)
    properties.update({name: dict(_KEY_STRING) for name in identity})
    return {"type": "object", "properties": properties}


def restore_decimal_details(schema: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """Copy ``precision``/``scale`` of ``x-singer.decimal`` columns from ``declared``.

    The SDK's catalog model (``singer.Schema``) keeps only standard JSON Schema keys, so every
    schema that passes through a catalog, including the one SCHEMA messages are built from,
    loses them, and SQL targets then create unbounded or scale-0 DECIMAL columns.
    """
    declared_properties = declared.get("properties", {})
    for name, column in schema.get("properties", {}).items():
        original = declared_properties.get(name, {})
        if (
            original.get("format") == "x-singer.decimal"
            and column.get("format") == "x-singer.decimal"
        ):
            column.update(precision=original["precision"], scale=original["scale"])
    return schema
