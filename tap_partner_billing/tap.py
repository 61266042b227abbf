"""TapPartnerBilling: validation, the list of streams, and what they share in a run."""

from __future__ import annotations

import json
import sys
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from tap_partner_billing import cli
from tap_partner_billing.config.problems import config_problems
from tap_partner_billing.config.settings import SETTINGS, normalise_config
from tap_partner_billing.emission.shutdown import handle_sigterm, install_sigterm_guard
from tap_partner_billing.records.schemas import restore_decimal_details
from tap_partner_billing.redact import install_redaction, register_secret
from tap_partner_billing.service.checks import require_graph_role
from tap_partner_billing.streams.export_stream import ExportStream, start_exports_ahead
from tap_partner_billing.streams.invoices import InvoicesStream
from tap_partner_billing.streams.sdk_seam import SeamTap, add_markdown_section
from tap_partner_billing.streams.usage import STREAM_TYPES
from tap_partner_billing.sync.shared import SyncRun

if TYPE_CHECKING:
    import click
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

__all__ = ["SETTINGS", "TapPartnerBilling"]


# Every stream. The SDK syncs them by name; the invoice list is read once, on first use.
ALL_STREAM_TYPES: tuple[type[Stream], ...] = (InvoicesStream, *STREAM_TYPES)


def _declared(stream_type: type, attribute: str) -> Any:  # noqa: ANN401 - see its docstring
    """A class attribute of a stream class (the SDK types ``name`` as instance-only)."""
    for klass in stream_type.__mro__:
        if attribute in vars(klass):
            return vars(klass)[attribute]
    msg = f"{stream_type.__name__} declares no {attribute}"
    raise AttributeError(msg)


class TapPartnerBilling(SeamTap):
    """Singer tap for Microsoft partner billing (Graph asynchronous exports)."""

    name = "tap-partner-billing"
    config_jsonschema = SETTINGS.to_dict()
    message_writer_class = MsgSpecWriter
    # No ACTIVATE_VERSION: see settings.settings_problems().
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        install_redaction()
        super().__init__(*args, **kwargs)
        handle_sigterm()

    def check_config(self, config: dict[str, Any], *, raise_errors: bool) -> list[str]:
        """Normalise the config, then list the schema's problems and the tap's own at once.

        The SDK's check alone stops at the schema and names no rule of ours; this replaces it
        (the SDK calls it from ``__init__``, see ``sdk_seam``).
        """
        if config.get("client_secret"):  # masked before any message can repeat it
            register_secret(str(config["client_secret"]))
        normalise_config(config, self.logger.warning)
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        problems = config_problems(schema, config)
        if problems and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=problems, schema=schema)
        return problems

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """Print ``--about``, with the streams added (the SDK lists none without a config)."""
        text = cls.about_text(output_format)
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
            text = add_markdown_section(text, section)
        print(text)  # noqa: T201 - --about's document is the command's output

    @staticmethod
    def declared_schemas() -> dict[str, dict[str, Any]]:
        """Each stream's schema as declared, with its decimal precision and scale."""
        return {_declared(s, "name"): s.declared_schema() for s in ALL_STREAM_TYPES}  # type: ignore[attr-defined]

    def setup_mapper(self) -> None:
        """Register stream schemas with their decimal precision and scale intact.

        The SDK registers the schemas the mapper turns into SCHEMA messages from its catalog
        model, which drops ``precision``/``scale`` (see ``restore_decimal_details``).
        """
        super().setup_mapper()
        self.register_stream_schemas(self.declared_schemas())

    @property
    def catalog_dict(self) -> dict[str, Any]:
        """The ``--discover`` catalog, with the precision and scale SCHEMA messages carry."""
        catalog: dict[str, Any] = super().catalog_dict
        declared = self.declared_schemas()
        for entry in catalog.get("streams", []):
            name = entry.get("stream") or entry.get("tap_stream_id")
            if name in declared:
                restore_decimal_details(entry["schema"], declared[name])
        return catalog

    @cached_property
    def sync_run(self) -> SyncRun:
        """What the streams of this run share (clients, invoice index, counters)."""
        return SyncRun(self.config, self.logger)

    def log_summary(self) -> None:
        """One line per selected stream: partitions, records, bytes, time (end of a run)."""
        selected = [name for name, stream in self.streams.items() if stream.selected]
        self.sync_run.log_summary(selected, invoice_list_stream=_declared(InvoicesStream, "name"))

    def preflight(self) -> None:
        """Before a run: the Graph token and its role; the invoice list when discovery is on.

        So that a refused secret or a missing permission is one message before any stream
        starts, and the invoice list's warnings come at the start. Then every export the
        selected streams need is started ahead (``export_stream.start_exports_ahead``).
        """
        require_graph_role(self.sync_run.services.tokens, self.config["client_id"])
        if self.sync_run.invoice_index.invoices is not None:
            self.logger.debug("invoice list read before the streams")
        # In the order sync_all() takes them: the first export needed is POSTed first.
        start_exports_ahead(
            (s for s in self.streams.values() if isinstance(s, ExportStream)), self.logger
        )

    def discover_streams(self) -> list[Stream]:
        """Return the streams; each gets this run's shared objects (none built yet)."""
        sync_run = self.sync_run
        return [
            InvoicesStream(self, sync_run),
            *(stream_type(self, sync_run) for stream_type in STREAM_TYPES),
        ]

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with ``--test`` described as this tap runs it."""
        return cli.with_test_help(super().get_singer_command())

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: object = None,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
    ) -> None:
        """A run (see ``cli.invoke``; SIGTERM is handled between messages), or ``--about``."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        install_sigterm_guard()
        cli.invoke(cls, cls.logger, config=config, state=state, catalog=catalog)

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: prove the setup without starting an export (see ``cli.connection_test``).

        The SDK's default would sync a record of every stream, i.e. start an export each.
        """
        if value in {"schema", "disabled"}:  # the SDK's own --test modes
            with cli.user_errors(cls.logger):
                super().cb_test(ctx, param, value)
            return
        cli.connection_test(cls, cls.logger, ctx)


if __name__ == "__main__":
    TapPartnerBilling.cli()
