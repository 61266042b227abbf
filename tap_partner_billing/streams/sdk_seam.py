"""Every use of the Singer SDK's internals, in one module.

Checked against singer-sdk 0.54.9 (``pyproject.toml`` allows 0.54.x only). Each use below
says why the public API does not suffice; ``tests/test_sdk_seam.py`` has a test per use that
fails when an SDK upgrade changes what it relies on, and a test that no other module of the
package names an SDK private. Everything else subclasses :class:`SeamTap` / :class:`SeamStream`
and calls their public methods.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from singer_sdk import Stream, Tap, about
from singer_sdk.helpers._batch import BaseBatchFileEncoding
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import Catalog

from tap_partner_billing.errors import PartnerBillingError
from tap_partner_billing.records.schemas import restore_decimal_details

SDK_CHECKED = "0.54.9"
MARKDOWN_SETTINGS_HEADING = "## Settings"
# Stream.sync's line (0.54.9) for any exception leaving a stream, logged before it re-raises.
SDK_SYNC_ERROR_LINE = "An unhandled error occurred while syncing '%s'"


class _OurErrorsLine(logging.Filter):
    """Drops the SDK's "unhandled error" line when the error is one the tap raised on purpose.

    That error is printed once, as what and where, by the command line (``cli.user_errors``);
    the SDK's line would be a second ERROR saying less. It stays at DEBUG, and for any other
    exception (a bug). The filter runs inside the SDK's ``except`` block: ``sys.exc_info()``
    is the exception being handled.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != SDK_SYNC_ERROR_LINE or record.levelno != logging.ERROR:
            return True
        handled = sys.exc_info()[1]
        on_purpose = isinstance(handled, PartnerBillingError)
        return not on_purpose or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


OUR_ERRORS_LINE = _OurErrorsLine()


def config_input(value: Any) -> tuple[dict[str, Any], bool]:  # noqa: ANN401 - _ConfigInput
    """The merged config and whether to read environment variables, from the SDK's argument.

    Use 9 — the command line's config. The SDK's click callbacks hand ``invoke`` and
    ``cb_test`` (through ``ctx.params["config"]``) a private ``plugin_base._ConfigInput``:
    the config files merged, and whether ``--config=ENV`` was given. No public type says so.
    """
    if value is None:
        return {}, False
    return dict(value.config), bool(value.parse_env)


class SeamError(RuntimeError):
    """The SDK no longer looks the way this module expects (an upgrade changed it)."""


class SeamTap(Tap):
    """The tap side: config validation and ``--about``."""

    # Use 1 — config validation. The SDK's __init__ calls the private ``_validate_config``
    # (0.54.9: ``PluginBase.__init__`` → ``self._validate_config(raise_errors=...)``), which
    # stops at the JSON schema and cannot name our own rules. There is no public hook that
    # runs at that point, with the raw config dict still mutable (we normalise it).
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        return self.check_config(self._config, raise_errors=raise_errors)

    def check_config(self, config: dict[str, Any], *, raise_errors: bool) -> list[str]:
        """Normalise ``config`` in place and list its problems (raising when asked)."""
        raise NotImplementedError

    # Use 2 — ``--about``. The SDK builds its text from the private ``_get_about_info`` and
    # lists no streams without a config; we add a stream table to the SDK's own text.
    @classmethod
    def about_text(cls, output_format: str | None) -> str:
        """The SDK's ``--about`` text in ``output_format`` (text, json or markdown)."""
        formatter = about.AboutFormatter.get_formatter(output_format or "text")
        return formatter.format_about(cls._get_about_info())

    # Use 3 — the schemas SCHEMA messages are built from. ``setup_mapper`` registers them from
    # the catalog model, which drops ``precision``/``scale``; re-registering needs the SDK's
    # selection helper (private module ``helpers._catalog``) to keep deselected columns out.
    def register_stream_schemas(self, declared: dict[str, dict[str, Any]]) -> None:
        """Register each catalog stream's selected schema with its decimal details restored."""
        for entry in self.catalog.streams:
            name = entry.stream or entry.tap_stream_id
            if name not in declared:
                continue
            schema = restore_decimal_details(entry.schema.to_dict(), declared[name])
            selected = get_selected_schema(name, schema, entry.metadata.resolve_selection())
            self.mapper.register_raw_stream_schema(name, selected, list(entry.key_properties or []))


def add_markdown_section(text: str, section: str) -> str:
    """Insert ``section`` before the settings table of the SDK's markdown ``--about``.

    Raises:
        SeamError: The SDK's markdown has no settings heading any more.
    """
    if MARKDOWN_SETTINGS_HEADING not in text:
        msg = f"the SDK's markdown --about has no {MARKDOWN_SETTINGS_HEADING!r} heading"
        raise SeamError(msg)
    return text.replace(MARKDOWN_SETTINGS_HEADING, f"{section}\n{MARKDOWN_SETTINGS_HEADING}", 1)


class SeamStream(Stream):
    """The stream side: state, BATCH messages, the record route, the input schema."""

    # Use 11 — a stream that raised. ``Stream.sync`` (final) logs ``SDK_SYNC_ERROR_LINE`` at
    # ERROR for any exception; the tap's own errors are printed once by the command line, so
    # each stream's logger drops that line for them (``_OurErrorsLine``).
    def __init__(
        self, tap: Tap, schema: dict[str, Any] | None = None, name: str | None = None
    ) -> None:
        super().__init__(tap, schema, name)
        self.logger.addFilter(OUR_ERRORS_LINE)  # addFilter keeps one copy per logger

    # Use 4 — no replication-key bookkeeping. The SDK calls the private
    # ``_increment_stream_state`` for every record it writes, and for an INCREMENTAL stream
    # without a replication key it raises. Our bookmarks are per partition (see ledger.py).
    def _increment_stream_state(self, latest_record: object, *, context: object = None) -> None:
        del latest_record, context

    # Use 5 — STATE on demand. The SDK writes STATE every 10,000 records and at the end of a
    # stream through the private ``_write_state_message``, which writes only when the state
    # manager's ``is_flushed`` is False. Operation URLs, high-water marks and blob progress
    # must be saved the moment they change.
    def write_state_now(self) -> None:
        """Write a STATE message with the current state."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    # Use 6 — BATCH messages for files we wrote. The SDK's writer is the private
    # ``_write_batch_message`` and its encoding type lives in the private ``helpers._batch``.
    def write_batch_file_message(self, compression: str, url: str) -> None:
        """Announce one JSONL batch file at ``url`` (``compression``: none or gzip)."""
        encoding = BaseBatchFileEncoding(format="jsonl", compression=compression)
        self._write_batch_message(encoding=encoding, manifest=[url])

    # Use 7 — whether the SDK's record path would change a record. No public attribute says
    # so; ``stream_maps`` and ``mask`` are public but undocumented: one identity map
    # (``SameRecordTransform``) and every property selected mean records pass unchanged.
    def records_pass_unchanged(self) -> bool:
        """True when the SDK's record path would write our records as they are."""
        maps = self.stream_maps
        return len(maps) == 1 and type(maps[0]) is SameRecordTransform and all(self.mask.values())

    # Use 8 — the catalog's schema. ``apply_catalog`` keeps the catalog's schema in the
    # private ``_input_schema``, which the public ``effective_schema`` returns (it prunes
    # and conforms records on the SDK route); the catalog model dropped the decimal details
    # on its way in, and only the private attribute can take them back.
    def apply_catalog(self, catalog: Catalog) -> None:
        """Apply the catalog, then put back the decimal details its model drops."""
        super().apply_catalog(catalog)
        if self._input_schema is not None:
            restore_decimal_details(self._input_schema, self.schema)
