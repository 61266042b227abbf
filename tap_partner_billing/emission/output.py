"""Where a stream's rows go: through the SDK, straight to stdout, or into BATCH files.

Every stream takes the same routes (``streams/routing.py`` chooses): the export streams hand over
blocks of lines, the ``invoices`` stream its list as records. :meth:`RecordSink.put` is where
a block becomes rows on every route (``records/rows.py``'s ``rows_of``): as record dicts for
the SDK, encoded here for the direct and BATCH routes; with decode workers the block arrives
already encoded by the same function (``encode_block``) in a worker's process.

- **SDK**: rows become dicts and go through the SDK's record path (stream maps, flattening,
  selection, conformance). Used whenever any of those has work to do.
- **Direct**: with no stream map, no flattening, every property selected and no record limit,
  the SDK's path would return our already-typed records unchanged, at several times the cost
  of the parse itself. The same RECORD message the SDK's msgspec writer would write is
  encoded here, a block of lines at a time; ``time_extracted`` is taken once per blob.
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

from tap_partner_billing.errors import ConfigurationError
from tap_partner_billing.records.rows import ENCODER, EncodedRows, encode_block, rows_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from tap_partner_billing.records.rows import Block

BATCH_MAX_ROWS = 100_000  # SDK targets read a whole batch file into memory


def batch_settings_problems(batch_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What this tap cannot do with a given ``batch_config``: (setting, message)."""
    problems = []
    encoding = batch_config.get("encoding") or {}
    if encoding.get("format", "jsonl") != "jsonl":
        setting = "batch_config.encoding.format"
        problems.append((setting, f"{setting} must be jsonl"))
    if encoding.get("compression", "none") not in {"none", "gzip"}:
        setting = "batch_config.encoding.compression"
        problems.append((setting, f"{setting} must be none or gzip"))
    root = str((batch_config.get("storage") or {}).get("root", ""))
    if urlsplit(root).scheme != "file":
        setting = "batch_config.storage.root"
        problems.append(
            (setting, f"{setting} must be a local file:// URL the target can read, got {root!r}")
        )
    return problems


class RecordSink:
    """Takes a stream's blocks (lines to type, tombstones, records a worker encoded).

    On the direct and BATCH routes it writes them; on the SDK's route (mode ``sdk``) it gives
    each block back as record dicts for the stream to yield to the SDK.
    """

    def __init__(
        self,
        stream: str,
        *,
        mode: str,
        batch_config: Mapping[str, Any] | None = None,
        on_batch_file: Callable[[str, str], None] | None = None,
    ) -> None:
        self.mode = mode  # "sdk" | "direct" | "batch"
        # A RECORD message is {"type", "stream", "record", "time_extracted"}, in the order the
        # SDK writes them; only the record is encoded per line, between a fixed head and tail.
        self._head = b'{"type":"RECORD","stream":' + ENCODER.encode(stream) + b',"record":'
        self._tail = b""
        self.stamp()
        self._batch: _BatchFiles | None = None
        if mode == "batch":
            if batch_config is None or on_batch_file is None:
                msg = "batch mode needs batch_config and a BATCH message writer"
                raise ConfigurationError(msg)
            self._batch = _BatchFiles(stream, batch_config, on_batch_file)
            self._head = b""

    def stamp(self) -> None:
        """Take a new ``time_extracted`` for the records that follow (direct mode)."""
        if self.mode == "batch":
            self._tail = b"\n"  # batch files hold raw records, one per line
            return
        extracted = ENCODER.encode(datetime.now(timezone.utc))
        self._tail = b',"time_extracted":' + extracted + b"}\n"

    def encoding(self) -> tuple[bytes, bytes]:
        """A new ``time_extracted``; the head and tail of each record of the next blob.

        What a decode worker needs to encode records exactly as :meth:`put` would.
        """
        self.stamp()
        return self._head, self._tail

    def put(self, block: Block) -> Iterator[dict[str, Any]]:
        """Type ``block``'s rows: written here, or (the SDK's route) returned as records.

        The records are made one at a time as the caller takes them, for the SDK to write.

        Raises:
            TypeError: Encoded records on the SDK's route (decode workers serve the others).
        """
        if self.mode == "sdk":
            if isinstance(block, EncodedRows):
                msg = "encoded records have no rows (decode workers serve direct and BATCH)"
                raise TypeError(msg)
            return map(block.layout.as_record, rows_of(block))
        if isinstance(block, EncodedRows):  # with the head and tail of :meth:`encoding`
            self._write(block.data, len(block))
        else:
            self._write(encode_block(block, self._head, self._tail), len(block))
        return iter(())

    def put_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Encode records already typed (JSON values only) and write them, like :meth:`put`."""
        if not records:
            return
        head, tail, encode = self._head, self._tail, ENCODER.encode
        self._write(b"".join(head + encode(record) + tail for record in records), len(records))

    def _write(self, data: bytes, rows: int) -> None:
        if self._batch is not None:
            self._batch.write(data, rows)
        else:
            # A block of encoded messages (about a megabyte) goes to stdout as it is; STATE
            # messages are written to the same stream, so they keep their place after it.
            sys.stdout.buffer.write(data)

    def flush(self, *, rotate: bool = True) -> None:
        """Put out every record handed over so far; with ``rotate``, close the batch file.

        Called before every STATE message: the records a STATE covers are out before it.
        """
        if self._batch is None:
            sys.stdout.flush()
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

    def write(self, data: bytes, rows: int) -> None:
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
