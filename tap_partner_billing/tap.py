"""TapPartnerBilling: settings, validation and the list of streams."""

from __future__ import annotations

import json
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream, Tap, about
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from tap_partner_billing.blobs import DEFAULT_MAX_INFLATION_RATIO, DEFAULT_MAX_LINE_BYTES
from tap_partner_billing.client import restore_decimal_details
from tap_partner_billing.errors import PartnerBillingError, UrlPolicyError
from tap_partner_billing.invoice_stream import InvoicesStream
from tap_partner_billing.invoices import Invoice, invoices_to_export
from tap_partner_billing.output import batch_settings_problems
from tap_partner_billing.redact import install_redaction, register_secret
from tap_partner_billing.services import Services, build_services
from tap_partner_billing.shutdown import handle_sigterm, install_sigterm_guard
from tap_partner_billing.streams import STREAM_TYPES
from tap_partner_billing.urls import UrlPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping

    import click
    from singer_sdk.helpers.capabilities import CapabilitiesEnum


INVOICE_ID_PATTERN = r"^[A-Z][A-Z0-9]{5,19}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
START_MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
# Every stream. The SDK syncs them by name; the invoice list is read once, on first use.
ALL_STREAM_TYPES: tuple[type[Stream], ...] = (InvoicesStream, *STREAM_TYPES)


def _setting(
    name: str,
    wrapped: Any,  # noqa: ANN401 - th.Property takes JSON type classes and instances alike
    title: str,
    description: str,
    **kwargs: Any,  # noqa: ANN401
) -> th.Property[Any]:
    return th.Property(name, wrapped, title=title, description=description, **kwargs)


# The settings, declared once. (The SDK adds its built-in settings to config_jsonschema in
# place, so SETTINGS.to_dict() is what this tap itself declares.)
SETTINGS = th.PropertiesList(
    _setting(
        "tenant_id",
        th.StringType(min_length=1),
        "Tenant ID",
        "Entra ID tenant (GUID or domain) of the partner (CSP) organisation.",
        required=True,
    ),
    _setting(
        "client_id",
        th.StringType(min_length=1),
        "Client ID",
        "Application (client) ID of the Entra app registration that holds the "
        "PartnerBilling.Read.All application permission.",
        required=True,
    ),
    _setting(
        "client_secret",
        th.StringType,
        "Client secret",
        "Client secret of the app registration. Give this, or a certificate.",
        secret=True,
    ),
    _setting(
        "client_certificate_path",
        th.StringType,
        "Client certificate path",
        "Path to a PEM file holding the app's private key and certificate, used instead "
        "of a client secret.",
    ),
    _setting(
        "client_certificate_thumbprint",
        th.StringType,
        "Client certificate thumbprint",
        "SHA-1 thumbprint (hex) of the certificate registered on the app.",
    ),
    _setting(
        "authority_url",
        th.StringType,
        "Authority URL",
        "Entra ID authority host (https). The tenant id is appended.",
        default="https://login.microsoftonline.com",
    ),
    _setting(
        "graph_url",
        th.StringType,
        "Graph URL",
        "Microsoft Graph base URL including the version (https).",
        default="https://graph.microsoft.com/v1.0",
    ),
    _setting(
        "invoice_ids",
        th.ArrayType(th.StringType(pattern=INVOICE_ID_PATTERN)),
        "Invoice IDs",
        "Partner Center invoice numbers (e.g. G016907411) whose billed usage and "
        "reconciliation are exported, in addition to discovered ones.",
        default=[],
    ),
    _setting(
        "discover_invoices",
        th.BooleanType,
        "Discover invoices",
        "Read the invoice list from Partner Center: the invoices stream, and the billed "
        "exports of every G… invoice from start_date on. False: billed exports cover "
        "invoice_ids only (for apps without Partner Center API access).",
        default=True,
    ),
    _setting(
        "partner_center_url",
        th.StringType,
        "Partner Center URL",
        "Partner Center REST base URL (https), for the invoice list.",
        default="https://api.partnercenter.microsoft.com",
    ),
    _setting(
        "start_date",
        th.StringType(pattern=START_MONTH_PATTERN),
        "Start billing month",
        "First billing month (YYYY-MM) whose discovered invoices are exported. Empty: all "
        "listed invoices. Explicit invoice_ids are exported whatever their month.",
    ),
    _setting(
        "recheck_months",
        th.IntegerType(minimum=0, maximum=120),
        "Recheck months",
        "Invoices of this many past billing months are exported again on every run to "
        "catch re-issued data; blobs are downloaded only when the eTag changed. 0: never.",
        default=2,
    ),
    _setting(
        "billing_periods",
        th.ArrayType(th.StringType(allowed_values=["current", "last"])),
        "Billing periods",
        "Unbilled periods to export: current, last, or both.",
        default=["current", "last"],
    ),
    _setting(
        "currency_codes",
        th.ArrayType(th.StringType(pattern=CURRENCY_PATTERN)),
        "Currency codes",
        "ISO 4217 billing currencies for the unbilled exports.",
        default=["USD"],
    ),
    _setting(
        "attribute_set",
        th.StringType(allowed_values=["full", "basic"]),
        "Attribute set",
        "Which columns Graph exports: full, or the smaller basic set.",
        default="full",
    ),
    _setting(
        "poll_timeout_seconds",
        th.IntegerType(exclusive_minimum=0),
        "Poll timeout (s)",
        "How long to wait for one export to finish before failing the run. The pending "
        "operation stays in state and the next run resumes it.",
        default=3600,
    ),
    _setting(
        "poll_interval_seconds",
        th.IntegerType(minimum=1),
        "Poll interval (s)",
        "Wait between polls when the service sends no Retry-After header.",
        default=30,
    ),
    _setting(
        "max_parallel_downloads",
        th.IntegerType(minimum=1, maximum=32),
        "Parallel downloads",
        "How many blobs of a partition are downloaded at once.",
        default=4,
    ),
    _setting(
        "max_line_bytes",
        th.IntegerType(minimum=1024, maximum=1 << 30),
        "Maximum line size (bytes)",
        "A blob line longer than this stops the run with an error naming blob and line "
        "(memory stays bounded whatever a blob holds).",
        default=DEFAULT_MAX_LINE_BYTES,
    ),
    _setting(
        "max_inflation_ratio",
        th.IntegerType(minimum=10, maximum=100_000),
        "Maximum inflation ratio",
        "A blob that inflates more than this many times its compressed size is refused as a "
        "decompression bomb (JSON lines usually gzip 5-30x).",
        default=DEFAULT_MAX_INFLATION_RATIO,
    ),
)


def _declared(stream_type: type, attribute: str) -> Any:  # noqa: ANN401
    """A class attribute of a stream class (the SDK types ``name`` as instance-only)."""
    for klass in stream_type.__mro__:
        if attribute in vars(klass):
            return vars(klass)[attribute]
    msg = f"{stream_type.__name__} declares no {attribute}"
    raise AttributeError(msg)


def settings_problems(config: Mapping[str, Any]) -> list[str]:
    """Rules JSON Schema cannot express well; each message names the setting."""
    problems = []
    for name in ("authority_url", "graph_url", "partner_center_url"):
        try:
            UrlPolicy.for_base(str(config.get(name, "")), name)
        except UrlPolicyError as err:
            problems.append(str(err))
    has_secret = bool(config.get("client_secret"))
    has_cert = bool(config.get("client_certificate_path"))
    if has_secret == has_cert:
        problems.append(
            "give exactly one of client_secret or client_certificate_path"
            + (" (both are set)" if has_secret else " (neither is set)")
        )
    if has_cert and not config.get("client_certificate_thumbprint"):
        problems.append("client_certificate_path needs client_certificate_thumbprint")
    for name in ("tenant_id", "client_id"):
        if not str(config.get(name, "")).strip():
            problems.append(f"{name} is empty")
    for name in ("invoice_ids", "billing_periods", "currency_codes"):
        values = config.get(name) or []
        if len(set(values)) != len(values):
            problems.append(f"{name} lists a value twice")
    if config.get("batch_config"):
        problems.extend(batch_settings_problems(config["batch_config"]))
        if config.get("stream_maps") or config.get("flattening_enabled"):
            problems.append(
                "batch_config cannot be combined with stream_maps or flattening: BATCH files "
                "carry the records as extracted (as the SDK's own batches do)"
            )
    if config.get("emit_activate_version_messages"):
        problems.append(
            "emit_activate_version_messages is not supported: ACTIVATE_VERSION is per table, so a "
            "target would delete every invoice this run skips (deletes are sent as tombstones)"
        )
    return problems


class TapPartnerBilling(Tap):
    """Singer tap for Microsoft partner billing (Graph asynchronous exports)."""

    name = "tap-partner-billing"
    config_jsonschema = SETTINGS.to_dict()
    message_writer_class = MsgSpecWriter
    # No ACTIVATE_VERSION: see settings_problems().
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, *args: Any, validate_config: bool = True, **kwargs: Any) -> None:  # noqa: ANN401
        install_redaction()
        super().__init__(*args, validate_config=validate_config, **kwargs)
        handle_sigterm()
        if self.config.get("client_secret"):
            register_secret(str(self.config["client_secret"]))
        if validate_config and (problems := settings_problems(self.config)):
            raise ConfigValidationError("Config validation failed", errors=problems)

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - the SDK's CLI signature
        """Run the tap from the command line, with SIGTERM handled between messages."""
        install_sigterm_guard()
        super().invoke(*args, **kwargs)

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """Print ``--about``, with the streams added (the SDK lists none without a config)."""
        text = about.AboutFormatter.get_formatter(output_format or "text").format_about(
            cls._get_about_info()
        )
        streams: list[dict[str, Any]] = [
            {
                "name": _declared(s, "name"),
                "key_properties": list(_declared(s, "primary_keys")),
                "description": s.__doc__,
            }
            for s in ALL_STREAM_TYPES
        ]
        if output_format == "json":
            text = json.dumps({**json.loads(text), "streams": streams}, indent=2)
        elif output_format == "markdown":
            section = "## Streams\n\n| Stream | Key properties | Description |\n|:--|:--|:--|\n"
            section += "".join(
                f"| {s['name']} | {', '.join(s['key_properties'])} | {s['description']} |\n"
                for s in streams
            )
            text = text.replace("## Settings", f"{section}\n## Settings", 1)
        print(text)

    def setup_mapper(self) -> None:
        """Register stream schemas with their decimal precision and scale intact.

        The SDK registers the schemas the mapper turns into SCHEMA messages from its catalog
        model, which drops ``precision``/``scale`` (see ``restore_decimal_details``).
        """
        super().setup_mapper()
        declared = {_declared(s, "name"): s.declared_schema() for s in STREAM_TYPES}
        declared[_declared(InvoicesStream, "name")] = InvoicesStream.declared_schema()
        for entry in self.catalog.streams:
            name = entry.stream or entry.tap_stream_id
            if name not in declared:
                continue
            schema = restore_decimal_details(entry.schema.to_dict(), declared[name])
            selected = get_selected_schema(name, schema, entry.metadata.resolve_selection())
            self.mapper.register_raw_stream_schema(name, selected, list(entry.key_properties or []))

    @cached_property
    def services(self) -> Services:
        """Clients shared by all streams, built once per run."""
        return build_services(self.config)

    @cached_property
    def invoice_list(self) -> list[Invoice] | None:
        """Partner Center's invoice list, read once per run (None: discovery is off)."""
        if not self.config.get("discover_invoices", True):
            return None
        invoices = self.services.invoices.list_invoices()
        self.logger.info("Partner Center lists %d invoice(s)", len(invoices))
        return invoices

    @cached_property
    def billed_invoice_ids(self) -> list[str]:
        """What the billed streams export: explicit ids plus discovered ones (see README)."""
        start = self.config.get("start_date")
        return invoices_to_export(
            self.invoice_list or [],
            start_month=start.replace("-", "") if start else None,
            explicit=self.config.get("invoice_ids") or [],
        )

    def invoice_month(self, invoice_id: str) -> str | None:
        """The billing month the invoice list gives for ``invoice_id`` (None: not listed)."""
        for invoice in self.invoice_list or []:
            if invoice.id == invoice_id:
                return invoice.billing_month
        return None

    def invoiced_months(self, currency: str) -> dict[str, str]:
        """Billing month → the id of an invoice in ``currency`` covering it, from the list."""
        months: dict[str, str] = {}
        for invoice in self.invoice_list or []:
            month = invoice.billing_month
            if (
                month
                and invoice.has_export_data
                and (invoice.document_type or "invoice").lower() == "invoice"
                and (invoice.currency_code or currency).upper() == currency
            ):
                months.setdefault(month, invoice.id)
        return months

    def discover_streams(self) -> list[Stream]:
        """Return the streams."""
        return [stream_type(self) for stream_type in ALL_STREAM_TYPES]

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: acquire a Graph token (and read the invoice list when discovery is on).

        The SDK's default would sync a record of every stream, i.e. start an export each.
        """
        if value == "schema" or value == "disabled":  # noqa: PLR1714 - SDK option values
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        tap = cls(config=config.config if config else None, validate_config=True)
        try:
            tap.services.tokens.token()
            passed = "a Graph token was acquired"
            if tap.invoice_list is not None:  # discovery is on: Partner Center must answer too
                passed += f" and Partner Center lists {len(tap.invoice_list)} invoice(s)"
        except PartnerBillingError as err:
            tap.logger.error("Connection test failed: %s", err)  # noqa: TRY400 - message is enough
            sys.exit(1)
        tap.logger.info("Connection test passed: %s", passed)
        ctx.exit()


if __name__ == "__main__":
    TapPartnerBilling.cli()
