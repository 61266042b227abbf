"""Turning blocks of raw lines into rows, and rows into encoded records.

Pure functions over plain data (no Singer import), shared by the SDK path, direct output and
BATCH files, so every route types a line the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from tap_partner_billing.codec import LineCodec
from tap_partner_billing.errors import BlobDataError, RecordValueError
from tap_partner_billing.fields import RECONCILIATION, USAGE, FieldSet

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

FIELD_SETS: dict[str, FieldSet] = {"usage": USAGE, "reconciliation": RECONCILIATION}
# The SDK's MsgSpecWriter encodes with decimal_format="number"; our records hold no Decimal,
# but keep the settings identical all the same.
ENCODER = msgspec.json.Encoder(decimal_format="number")
_CODECS: dict[str, LineCodec] = {}
_STRUCTS: dict[tuple[str, ...], type[msgspec.Struct]] = {}


@dataclass(frozen=True)
class RowLayout:
    """Where things go in a row (values of ``keys`` in order) for one blob."""

    dataset: str
    keys: tuple[str, ...]
    template: tuple[Any, ...]  # identity and provenance in place, the rest None
    extra_at: int
    line_at: int
    ordinal_at: int


@dataclass(frozen=True)
class LineBlock:
    """Consecutive lines of one blob, with the line number and ordinal of the first."""

    where: str  # dataset, partition and blob, for error messages
    layout: RowLayout
    lines: list[bytes]
    first_line: int
    first_ordinal: int


def codec_for(dataset: str) -> LineCodec:
    """This process's codec for a dataset (it learns key spellings as it goes)."""
    codec = _CODECS.get(dataset)
    if codec is None:
        codec = _CODECS[dataset] = LineCodec(FIELD_SETS[dataset])
    return codec


def row_struct(keys: tuple[str, ...]) -> type[msgspec.Struct]:
    """A Struct with one field per record key: encodes a row without building a dict."""
    struct = _STRUCTS.get(keys)
    if struct is None:
        struct = _STRUCTS[keys] = msgspec.defstruct(
            "Record",
            [(f"f{i}", Any, None) for i in range(len(keys))],
            rename={f"f{i}": key for i, key in enumerate(keys)},
        )
    return struct


def iter_rows(block: LineBlock) -> Iterator[list[Any]]:
    """Decode and type each line of ``block`` into a row.

    Raises:
        BlobDataError: A line is not a JSON object (the message names blob and line).
        RecordValueError: A value does not fit its column (names blob, line and key).
    """
    layout = block.layout
    codec = codec_for(layout.dataset)
    decode, width = codec.values, len(codec.columns)
    rest = list(layout.template[width:])
    extra_at, line_at, ordinal_at = layout.extra_at, layout.line_at, layout.ordinal_at
    line_number, ordinal = block.first_line, block.first_ordinal
    for line in block.lines:
        try:
            values, extra = decode(line)
        except (RecordValueError, BlobDataError) as err:
            raise type(err)(f"{block.where}, line {line_number}: {err}") from None
        values.extend(rest)
        values[extra_at] = extra
        values[line_at] = line_number
        values[ordinal_at] = ordinal
        yield values
        line_number += 1
        ordinal += 1


def build_rows(block: LineBlock) -> list[list[Any]]:
    """The rows of ``block`` (the SDK route)."""
    return list(iter_rows(block))


def encode_rows(
    rows: Iterable[list[Any]], keys: tuple[str, ...], head: bytes, tail: bytes
) -> bytes:
    """Each row as ``head + JSON record + tail``."""
    record, encode_into = row_struct(keys), ENCODER.encode_into
    out = bytearray()
    for row in rows:
        out += head
        encode_into(record(*row), out, -1)
        out += tail
    return bytes(out)


def encode_block(block: LineBlock, head: bytes, tail: bytes) -> bytes:
    """Decode, type and encode a block (the direct and BATCH routes)."""
    return encode_rows(iter_rows(block), block.layout.keys, head, tail)
