"""The row layout: built once per stream, refusing a schema its codec's values would misplace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tap_partner_billing.records.rows import LayoutError, RowLayout, codec_for
from tap_partner_billing.streams.usage import STREAM_TYPES

if TYPE_CHECKING:
    from tap_partner_billing.streams.export_stream import ExportStream


@pytest.mark.parametrize("stream", STREAM_TYPES, ids=[s.__name__ for s in STREAM_TYPES])
def test_every_stream_schema_starts_with_its_codec_columns(stream: type[ExportStream]) -> None:
    layout = RowLayout.build(stream.dataset, tuple(stream.declared_schema()["properties"]))
    assert layout.keys[: layout.width] == codec_for(layout.dataset).columns
    assert layout.keys[layout.ordinal_at] == "line_ordinal"
    assert layout.keys[layout.extra_at] == "_extra_fields"
    assert layout.keys[layout.line_at] == "_blob_line"
    assert layout.keys[layout.blob_at] == "_blob_name"
    assert layout.keys[layout.deleted_at] == "_sdc_deleted_at"


def _usage_keys() -> tuple[str, ...]:
    return tuple(STREAM_TYPES[0].declared_schema()["properties"])


def test_a_reordered_schema_is_refused() -> None:
    keys = list(_usage_keys())
    keys[1], keys[2] = keys[2], keys[1]
    with pytest.raises(LayoutError, match="they differ at position 1"):
        RowLayout.build("usage", tuple(keys))


def test_a_schema_without_the_provenance_columns_is_refused() -> None:
    keys = tuple(k for k in _usage_keys() if k != "_blob_line")
    with pytest.raises(LayoutError, match="lacks _blob_line"):
        RowLayout.build("usage", keys)


def test_a_template_names_only_known_columns() -> None:
    layout = RowLayout.build("usage", _usage_keys())
    row = layout.template({"invoice_id": "G1", "line_ordinal": 7})
    assert layout.value(row, "invoice_id") == "G1"
    assert layout.as_record(row)["line_ordinal"] == 7
    with pytest.raises(LayoutError, match="'nope' is not a column"):
        layout.template({"nope": 1})
