"""Writing RECORD messages straight to stdout when the SDK's per-record machinery adds nothing.

With no stream map, no flattening, every property selected and no record limit, the SDK's
path (selection pruning, type conformance, the map, a message object per record) returns our
already-typed records unchanged, at several times the cost of the parse itself. This writer
emits the same message the SDK's msgspec writer would (same keys, same encoder settings), in
buffered blocks. ``time_extracted`` is taken once per blob rather than per line.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

import msgspec

FLUSH_BYTES = 1 << 20
# The SDK's MsgSpecWriter encodes with decimal_format="number"; our records hold no Decimal,
# but keep the settings identical all the same.
_ENCODER = msgspec.json.Encoder(decimal_format="number")


class DirectRecordWriter:
    """Buffers RECORD messages of one stream and writes them to stdout in blocks."""

    def __init__(self, stream: str, keys: tuple[str, ...]) -> None:
        self._stream = stream
        # A Struct with one field per record key encodes a row without building a dict.
        self._record = msgspec.defstruct(
            "Record",
            [(f"f{i}", Any, None) for i in range(len(keys))],
            rename={f"f{i}": key for i, key in enumerate(keys)},
        )
        self._buffer = bytearray()
        self._extracted = datetime.now(timezone.utc)
        self.count = 0

    def stamp(self) -> None:
        """Take a new ``time_extracted`` for the records that follow."""
        self._extracted = datetime.now(timezone.utc)

    def write(self, row: list[Any]) -> None:
        """Append one RECORD message for a row (values in the order of ``keys``)."""
        message = {
            "type": "RECORD",
            "stream": self._stream,
            "record": self._record(*row),
            "time_extracted": self._extracted,
        }
        _ENCODER.encode_into(message, self._buffer, -1)
        self._buffer += b"\n"
        self.count += 1
        if len(self._buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write out what is buffered (always before a STATE message)."""
        if self._buffer:
            sys.stdout.buffer.write(self._buffer)
            sys.stdout.flush()
            self._buffer.clear()
