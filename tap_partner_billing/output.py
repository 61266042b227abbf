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
        # The message is {"type", "stream", "record", "time_extracted"}, in the order the SDK
        # writes them; only the record is encoded per line, between a fixed head and tail.
        self._head = b'{"type":"RECORD","stream":' + _ENCODER.encode(stream) + b',"record":'
        self._tail = b""
        self.stamp()

    def stamp(self) -> None:
        """Take a new ``time_extracted`` for the records that follow."""
        extracted = _ENCODER.encode(datetime.now(timezone.utc))
        self._tail = b',"time_extracted":' + extracted + b"}\n"

    def write(self, row: list[Any]) -> None:
        """Append one RECORD message for a row (values in the order of ``keys``)."""
        buffer = self._buffer
        buffer += self._head
        _ENCODER.encode_into(self._record(*row), buffer, -1)
        buffer += self._tail
        if len(buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write out what is buffered (always before a STATE message)."""
        if self._buffer:
            sys.stdout.buffer.write(self._buffer)
            sys.stdout.flush()
            self._buffer.clear()
