"""Where a stream's rows go: through the SDK, straight to stdout, or into BATCH files.

- **SDK**: rows become dicts and go through the SDK's record path (stream maps, flattening,
  selection, conformance). Used whenever any of those has work to do.
- **Direct**: with no stream map, no flattening, every property selected and no record limit,
  the SDK's path would return our already-typed records unchanged, at several times the cost
  of the parse itself. The same RECORD message the SDK's msgspec writer would write is
  encoded here, in buffered blocks; ``time_extracted`` is taken once per blob.
- **Batch**: with ``batch_config`` rows are written as raw JSON records to JSONL files
  (uncompressed, or gzip at level 1 — the SDK's own batcher always uses level 9) and a BATCH
  message names each file once it is closed. A file is closed before every STATE that
  covers its rows, so no STATE ever claims records that sit in an unwritten file.
"""

from __future__ import annotations

import sys
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import msgspec

from tap_partner_billing.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

FLUSH_BYTES = 1 << 20
BATCH_MAX_ROWS = 100_000  # SDK targets read a whole batch file into memory
# The SDK's MsgSpecWriter encodes with decimal_format="number"; our records hold no Decimal,
# but keep the settings identical all the same.
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _row_struct(keys: tuple[str, ...]) -> type[msgspec.Struct]:
    """A Struct with one field per record key: encodes a row without building a dict."""
    return msgspec.defstruct(
        "Record",
        [(f"f{i}", Any, None) for i in range(len(keys))],
        rename={f"f{i}": key for i, key in enumerate(keys)},
    )


def batch_settings_problems(batch_config: Mapping[str, Any]) -> list[str]:
    """What this tap cannot do with a given ``batch_config``."""
    problems = []
    encoding = batch_config.get("encoding") or {}
    if encoding.get("format", "jsonl") != "jsonl":
        problems.append("batch_config.encoding.format must be jsonl")
    if encoding.get("compression", "none") not in {"none", "gzip"}:
        problems.append("batch_config.encoding.compression must be none or gzip")
    root = str((batch_config.get("storage") or {}).get("root", ""))
    if urlsplit(root).scheme != "file":
        problems.append(
            "batch_config.storage.root must be a local file:// URL the target can read, "
            f"got {root!r}"
        )
    return problems


class RecordSink:
    """Receives a stream's rows, a block at a time, for one sync."""

    def __init__(
        self,
        stream: str,
        keys: tuple[str, ...],
        *,
        mode: str,
        batch_config: Mapping[str, Any] | None = None,
        on_batch_file: Callable[[str, str], None] | None = None,
    ) -> None:
        self.mode = mode  # "sdk" | "direct" | "batch"
        self._keys = keys
        self._record = _row_struct(keys)
        self._buffer = bytearray()
        # A RECORD message is {"type", "stream", "record", "time_extracted"}, in the order the
        # SDK writes them; only the record is encoded per line, between a fixed head and tail.
        self._head = b'{"type":"RECORD","stream":' + _ENCODER.encode(stream) + b',"record":'
        self._tail = b""
        self.stamp()
        self._batch: _BatchFiles | None = None
        if mode == "batch":
            if batch_config is None or on_batch_file is None:
                msg = "batch mode needs batch_config and a BATCH message writer"
                raise ConfigurationError(msg)
            self._batch = _BatchFiles(stream, batch_config, on_batch_file)

    def stamp(self) -> None:
        """Take a new ``time_extracted`` for the records that follow (direct mode)."""
        extracted = _ENCODER.encode(datetime.now(timezone.utc))
        self._tail = b',"time_extracted":' + extracted + b"}\n"

    def deliver(self, blocks: Iterator[list[list[Any]]]) -> Iterator[dict[str, Any]]:
        """Consume row blocks; in SDK mode yield them as dicts for the SDK to write."""
        if self.mode == "sdk":
            keys = self._keys
            for rows in blocks:
                for row in rows:
                    yield dict(zip(keys, row, strict=True))
            return
        record, buffer, encode_into = self._record, self._buffer, _ENCODER.encode_into
        head, batch = self._head, self._batch
        for rows in blocks:
            for row in rows:
                if batch is None:
                    buffer += head
                    encode_into(record(*row), buffer, -1)
                    buffer += self._tail
                else:
                    encode_into(record(*row), buffer, -1)
                    buffer += b"\n"
            if batch is not None:
                batch.write(buffer, len(rows))
                buffer.clear()
            elif len(buffer) >= FLUSH_BYTES:
                self.flush(rotate=False)

    def flush(self, *, rotate: bool = True) -> None:
        """Write out what is buffered; with ``rotate``, close the batch file (BATCH message).

        Called before every STATE message: the records a STATE covers are out before it.
        """
        if self._buffer:
            sys.stdout.buffer.write(self._buffer)
            sys.stdout.flush()
            self._buffer.clear()
        if rotate and self._batch is not None:
            self._batch.close()


class _BatchFiles:
    """JSONL batch files of one stream; each is announced when closed."""

    def __init__(
        self, stream: str, batch_config: Mapping[str, Any], announce: Callable[[str, str], None]
    ) -> None:
        storage = batch_config.get("storage") or {}
        self._folder = Path(urlsplit(str(storage["root"])).path)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._prefix = f"{storage.get('prefix') or ''}{stream}-"
        self.compression = (batch_config.get("encoding") or {}).get("compression", "none")
        self._announce = announce
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._deflate: Any = None
        self._rows = 0

    def write(self, data: bytearray, rows: int) -> None:
        """Append encoded records; a file holding enough rows is closed and announced."""
        if self._file is None:
            suffix = ".jsonl.gz" if self.compression == "gzip" else ".jsonl"
            self._path = self._folder / f"{self._prefix}{uuid.uuid4().hex}{suffix}"
            self._file = self._path.open("wb")
            # zlib at level 1, gzip framing (wbits=31): the fast end of the trade-off.
            self._deflate = (
                zlib.compressobj(1, zlib.DEFLATED, 31) if self.compression == "gzip" else None
            )
        self._file.write(self._deflate.compress(data) if self._deflate else data)
        self._rows += rows
        if self._rows >= BATCH_MAX_ROWS:
            self.close()

    def close(self) -> None:
        """Finish the current file, if any, and announce it with a BATCH message."""
        if self._file is None or self._path is None:
            return
        if self._deflate is not None:
            self._file.write(self._deflate.flush())
        self._file.close()
        self._announce(self.compression, self._path.resolve().as_uri())
        self._file, self._path, self._rows = None, None, 0
