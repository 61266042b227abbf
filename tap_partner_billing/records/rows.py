"""Turning blocks of raw lines into rows, and rows into encoded records.

Pure functions over plain data (no Singer, no HTTP). :func:`rows_of` is the only place a line
becomes a row, whatever the route: the record sink (``emission/output.py``) calls it for the
SDK's route and, through :func:`encode_block`, for the direct and BATCH routes; a decode
worker (``emission/worker_process.py``) runs the same :func:`encode_block` in its process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from tap_partner_billing.errors import BlobDataError, RecordValueError
from tap_partner_billing.records.decode import LineCodec
from tap_partner_billing.records.fields import EXTRA_FIELDS_COLUMN, RECONCILIATION, USAGE, FieldSet

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

FIELD_SETS: dict[str, FieldSet] = {"usage": USAGE, "reconciliation": RECONCILIATION}
# The SDK's MsgSpecWriter encodes with decimal_format="number"; our records hold no Decimal,
# but keep the settings identical all the same.
ENCODER = msgspec.json.Encoder(decimal_format="number")
_CODECS: dict[str, LineCodec] = {}
_STRUCTS: dict[tuple[str, ...], type[msgspec.Struct]] = {}


class LayoutError(ValueError):
    """A stream's schema does not fit its codec (a programming error, caught at start-up)."""


@dataclass(frozen=True)
class RowLayout:
    """Where each value goes in a row (the values of ``keys`` in order), for one stream.

    Built once per stream from its schema's keys and its dataset's codec: the codec's columns
    must be the first keys, in the codec's order, because a decoded line's values are used as
    the start of the row as they are. Nothing else computes an index into a row.
    """

    dataset: str
    keys: tuple[str, ...]
    width: int  # the codec's columns: keys[:width]
    extra_at: int
    line_at: int
    ordinal_at: int
    blob_at: int
    deleted_at: int

    @classmethod
    def build(cls, dataset: str, keys: tuple[str, ...]) -> RowLayout:
        """The layout of ``keys`` for ``dataset``.

        Raises:
            LayoutError: The codec's columns are not a prefix of ``keys``, or a key the rows
                need is missing.
        """
        columns = codec_for(dataset).columns
        if keys[: len(columns)] != columns:
            differs = next(
                (i for i, (a, b) in enumerate(zip(keys, columns, strict=False)) if a != b),
                min(len(keys), len(columns)),
            )
            msg = (
                f"{dataset}: the schema's first {len(columns)} keys must be the codec's columns "
                f"in order; they differ at position {differs}"
            )
            raise LayoutError(msg)
        needed = (EXTRA_FIELDS_COLUMN, "_blob_line", "line_ordinal", "_blob_name")
        missing = [key for key in (*needed, "_sdc_deleted_at") if key not in keys]
        if missing:
            msg = f"{dataset}: the schema lacks {', '.join(missing)}"
            raise LayoutError(msg)
        return cls(
            dataset,
            keys,
            len(columns),
            keys.index(EXTRA_FIELDS_COLUMN),
            keys.index("_blob_line"),
            keys.index("line_ordinal"),
            keys.index("_blob_name"),
            keys.index("_sdc_deleted_at"),
        )

    def template(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """A row with ``values`` (by key) in place and None elsewhere.

        Raises:
            LayoutError: A key of ``values`` is not one of the row's.
        """
        row: list[Any] = [None] * len(self.keys)
        for key, value in values.items():
            try:
                row[self.keys.index(key)] = value
            except ValueError:
                msg = f"{self.dataset}: {key!r} is not a column of this stream"
                raise LayoutError(msg) from None
        return tuple(row)

    def value(self, row: Sequence[Any], key: str) -> Any:  # noqa: ANN401 - any column
        """The value of column ``key`` in ``row``."""
        return row[self.keys.index(key)]

    def as_record(self, row: Sequence[Any]) -> dict[str, Any]:
        """``row`` as a record dict (the SDK route)."""
        return dict(zip(self.keys, row, strict=True))


@dataclass(frozen=True)
class LineBlock:
    """Consecutive lines of one blob, with the line number and ordinal of the first."""

    where: str  # dataset, partition and blob, for error messages
    layout: RowLayout
    template: tuple[Any, ...]  # the blob's identity and provenance, see RowLayout.template
    lines: list[bytes]
    first_line: int
    first_ordinal: int

    def __len__(self) -> int:
        return len(self.lines)


@dataclass(frozen=True)
class TombstoneBlock:
    """Rows retiring the keys ``ordinals``: the partition's identity, ``_sdc_deleted_at`` set."""

    layout: RowLayout
    template: tuple[Any, ...]
    ordinals: range

    def __len__(self) -> int:
        return len(self.ordinals)

    def rows(self) -> Iterator[list[Any]]:
        """Each tombstone row, in ordinal order."""
        row, ordinal_at = list(self.template), self.layout.ordinal_at
        for ordinal in self.ordinals:
            row[ordinal_at] = ordinal
            yield row.copy()


@dataclass(frozen=True)
class EncodedRows:
    """Records a decode worker typed and encoded (``emission/workers.py``), ready to write."""

    data: bytes
    count: int
    first_ordinal: int  # the partition events check it is where the blob's ordinals stand

    def __len__(self) -> int:
        return self.count


RowBlock = LineBlock | TombstoneBlock  # what becomes rows here
Block = RowBlock | EncodedRows  # what a partition hands over, a block at a time


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


def rows_of(block: RowBlock) -> Iterator[list[Any]]:
    """Each row of ``block``: its lines decoded and typed, or its tombstones.

    Raises:
        BlobDataError: A line is not a JSON object (the message names blob and line).
        RecordValueError: A value does not fit its column (names blob, line and key).
    """
    if isinstance(block, TombstoneBlock):
        yield from block.rows()
        return
    layout = block.layout
    decode = codec_for(layout.dataset).values
    rest = list(block.template[layout.width :])
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


def encode_block(block: RowBlock, head: bytes, tail: bytes) -> bytes:
    """Each row of ``block`` as ``head + JSON record + tail`` (the direct and BATCH routes)."""
    record, encode_into = row_struct(block.layout.keys), ENCODER.encode_into
    out = bytearray()
    for row in rows_of(block):
        out += head
        encode_into(record(*row), out, -1)
        out += tail
    return bytes(out)
