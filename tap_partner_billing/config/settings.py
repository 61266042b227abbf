"""The settings: declared once here, normalised, and checked all together before a run."""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from tap_partner_billing.blobs.lines import DEFAULT_MAX_INFLATION_RATIO, DEFAULT_MAX_LINE_BYTES
from tap_partner_billing.emission.output import batch_settings_problems
from tap_partner_billing.errors import UrlPolicyError
from tap_partner_billing.records.fields import parse_iso_datetime
from tap_partner_billing.service.scheduler import DEFAULT_MAX_CONCURRENT_EXPORTS
from tap_partner_billing.service.url_policy import UrlPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

INVOICE_ID_PATTERN = r"^[A-Z][A-Z0-9]{5,19}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"


def _setting(
    name: str,
    wrapped: th.JSONTypeHelper[Any] | type[th.JSONTypeHelper[Any]],
    title: str,
    description: str,
    **kwargs: Any,
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
        "refresh_invoice_ids",
        th.ArrayType(th.StringType(pattern=INVOICE_ID_PATTERN)),
        "Refresh invoice IDs",
        "Invoice numbers whose billed exports are asked for again on every run while listed "
        "here, even when already synced or remembered as having no data (e.g. after Microsoft "
        "re-issued an invoice). Rows are emitted again only when the data changed (eTag). "
        "Only documents the run exports count: below a coverage floor, name it in "
        "invoice_ids too. See docs/coverage-and-refresh.md.",
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
        th.StringType,
        "Start billing month",
        "First billing month whose discovered invoices are exported: YYYY-MM, or a date "
        "(YYYY-MM-DD) or ISO date-time whose month is taken. Empty: all listed invoices. "
        "Explicit invoice_ids are exported whatever their month.",
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
        "ISO 4217 billing currencies for the unbilled exports (upper-cased).",
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
        "max_concurrent_exports",
        th.IntegerType(minimum=1, maximum=100),
        "Exports at once",
        "The most exports in flight at once. Before the first stream syncs, the tap starts "
        "the exports the selected streams need, as many at once as Graph accepts up to this "
        "cap (an HTTP 429 means fewer). See docs/scheduler.md.",
        default=DEFAULT_MAX_CONCURRENT_EXPORTS,
    ),
    _setting(
        "max_parallel_downloads",
        th.IntegerType(minimum=1, maximum=32),
        "Parallel downloads",
        "How many blobs of a partition are downloaded at once.",
        default=4,
    ),
    _setting(
        "decode_workers",
        th.IntegerType(minimum=1, maximum=64),
        "Decode worker processes",
        "How many processes decode, type and encode blobs. Unset: the cores the tap may use "
        "(CPU affinity and cgroup quota), at most 4. 1: all in the tap's own process. Stream "
        "maps and flattening always decode in-process (they need the records as objects).",
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


PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"  # .env.example's, config.example.json's
# The client_secret the examples hold (.env.example, config.example.json): refused here, not
# left for Entra to answer AADSTS7000215 after a network round trip.
PLACEHOLDER_SECRETS = frozenset(
    {"the-value-of-the-client-secret", "the Value of the app's client secret"}
)
_WHAT_TO_SET = {
    "tenant_id": "the partner tenant's ID (a GUID, or a domain like contoso.onmicrosoft.com)",
    "client_id": "the app registration's Application (client) ID",
}


def settings_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rules JSON Schema cannot express well, as (setting, message naming it).

    Runs after the schema check even when that found problems, so a value of the wrong type
    is looked at only where it has the right one (``config_problems`` drops a rule's message
    about a setting the schema refused).
    """
    problems: list[tuple[str, str]] = []
    start = config.get("start_date")
    if start and start_month(start) is None:
        problems.append(
            (
                "start_date",
                (
                    "start_date must be a billing month (YYYY-MM), a date (YYYY-MM-DD) or an ISO "
                    f"date-time, got {start!r}"
                ),
            )
        )
    for name in ("authority_url", "graph_url", "partner_center_url"):
        try:
            UrlPolicy.for_base(str(config.get(name, "")), name)
        except UrlPolicyError as err:
            problems.append((name, str(err)))
    has_secret = bool(config.get("client_secret"))
    has_cert = bool(config.get("client_certificate_path"))
    if has_secret == has_cert:
        problems.append(
            (
                "client_secret",
                "give exactly one of client_secret or client_certificate_path"
                + (" (both are set)" if has_secret else " (neither is set)"),
            )
        )
    if has_cert and not config.get("client_certificate_thumbprint"):
        problems.append(
            (
                "client_certificate_thumbprint",
                "client_certificate_path needs client_certificate_thumbprint",
            )
        )
    problems.extend(_identity_problems(config))
    for name in ("invoice_ids", "refresh_invoice_ids", "billing_periods", "currency_codes"):
        values = config.get(name) or []
        if isinstance(values, list) and len(set(map(str, values))) != len(values):
            problems.append((name, f"{name} lists a value twice"))
    if isinstance(config.get("batch_config"), dict) and config["batch_config"]:
        problems.extend(batch_settings_problems(config["batch_config"]))
        if config.get("stream_maps") or config.get("flattening_enabled"):
            problems.append(
                (
                    "batch_config",
                    (
                        "batch_config cannot be combined with stream_maps or flattening: BATCH "
                        "files carry the records as extracted (as the SDK's own batches do)"
                    ),
                )
            )
    if config.get("emit_activate_version_messages"):
        problems.append(
            (
                "emit_activate_version_messages",
                (
                    "emit_activate_version_messages is not supported: ACTIVATE_VERSION is per "
                    "table, so a target would delete every invoice this run skips (deletes are "
                    "sent as tombstones)"
                ),
            )
        )
    return problems


def _identity_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The identity still unset or the examples' placeholders (IDs all zero, the secret's text)."""
    problems = []
    for name, what in _WHAT_TO_SET.items():
        value = config.get(name)
        if not isinstance(value, str):
            continue  # absent or not text: the schema says so
        if not value.strip():
            problems.append((name, f"{name} is empty"))
        elif value.strip().strip("{}").lower() == PLACEHOLDER_ID:
            problems.append(
                (
                    name,
                    (
                        f"{name} is the placeholder {PLACEHOLDER_ID} of .env.example and "
                        f"config.example.json: set {what}"
                    ),
                )
            )
    secret = config.get("client_secret")
    if isinstance(secret, str) and secret.strip() in PLACEHOLDER_SECRETS:
        problems.append(
            (
                "client_secret",
                (
                    "client_secret is the placeholder text of .env.example and "
                    "config.example.json: set the Value of the app's client secret "
                    "(Certificates & secrets)"
                ),
            )
        )
    return problems


_START = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2})([T ].+)?)?$")


def start_month(value: object) -> tuple[str, bool] | None:
    """``start_date`` as ``(YYYY-MM, whether a day other than the 1st was given)``.

    Accepts ``YYYY-MM``, ``YYYY-MM-DD`` and ISO 8601 date-times (Meltano's habit is
    ``2026-08-01T00:00:00Z``). The month is taken as written, not shifted to UTC, as the
    billing month of an invoice is. None: not one of those.
    """
    match = _START.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, rest = match.groups()
    try:
        if rest is not None:
            parse_iso_datetime(str(value).strip())
        date(int(year), int(month), int(day or 1))
    except ValueError:
        return None
    return f"{year}-{month}", day not in {None, "01"}


def normalise_config(config: dict[str, Any], warn: Callable[[str], None]) -> None:
    """Meet the usual habits in place: a date as ``start_date``, lower-case currencies."""
    start = config.get("start_date")
    parsed = start_month(start) if start else None
    if parsed is not None:
        month, mid_month = parsed
        if mid_month:
            warn(
                f"start_date {start!r} is not the first of a month: billing months are whole, "
                f"so invoices from {month} on are exported"
            )
        config["start_date"] = month
    currencies = config.get("currency_codes")
    if isinstance(currencies, list):
        config["currency_codes"] = [
            c.strip().upper() if isinstance(c, str) else c for c in currencies
        ]
