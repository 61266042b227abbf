"""Reading a gzip JSON-lines blob as it arrives, in bounded memory. No HTTP in here.

The reader follows a spool file while the download thread still writes it (``download.py``), so
the first lines of a blob are emitted while the rest of it is still arriving. Whatever the
blob holds, memory stays bounded: see :func:`iter_line_blocks`.
"""

from __future__ import annotations

import functools
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tap_partner_billing.blobs.content import BlobContent
from tap_partner_billing.blobs.download import download_in_order
from tap_partner_billing.errors import BlobDataError, ResourceLimitError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from _typeshed import WriteableBuffer

    from tap_partner_billing.blobs.content import BlobJob, BlobReader
    from tap_partner_billing.blobs.download import BlobFetcher, Spool
    from tap_partner_billing.blobs.sas import BlobUrls

INFLATE_CHUNK_BYTES = 1 << 18  # compressed bytes read at a time
OUTPUT_CHUNK_BYTES = 1 << 20  # inflated bytes produced at a time, whatever the ratio
MAX_BLOCK_LINES = 1024  # a block of 1024 empty lines still makes 1024 full records
DEFAULT_MAX_LINE_BYTES = 16 << 20
DEFAULT_MAX_INFLATION_RATIO = 200  # JSON lines gzip 5-30x; deflate's ceiling is about 1030x
RATIO_JUDGED_AFTER_BYTES = 1 << 20  # small blobs are never judged by their ratio


class _GrowingFile(io.RawIOBase):
    """Reads a spool file as it is written; end of file only once the download finished."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._file = spool.path.open("rb")
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        if self._spool.wait_beyond(self._offset) <= self._offset:
            return 0
        count = self._file.readinto(view)
        self._offset += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class BlobLimits:
    """Bounds on what a blob may inflate to (settings of the same names)."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_inflation_ratio: int = DEFAULT_MAX_INFLATION_RATIO


def iter_line_blocks(
    spool_or_path: Spool | Path, where: str, limits: BlobLimits | None = None
) -> Iterator[list[bytes]]:
    """Yield the lines of a gzip JSON-lines blob in blocks, in order, as the blob arrives.

    Memory stays bounded whatever the blob holds: at most ``OUTPUT_CHUNK_BYTES`` are
    inflated at a time, a block holds at most ``MAX_BLOCK_LINES`` lines, a line may not
    exceed ``max_line_bytes``, and a blob that inflates more than ``max_inflation_ratio``
    times its compressed size (a decompression bomb) is refused before its lines go out.

    Raises:
        BlobDataError: Corrupt or truncated gzip (naming how many lines came before).
        ResourceLimitError: A limit was exceeded (naming the line and the setting).
    """
    limits = limits or BlobLimits()
    if isinstance(spool_or_path, Path):  # a finished file
        source: io.RawIOBase = io.FileIO(spool_or_path, "rb")
    else:
        source = _GrowingFile(spool_or_path)
    # wbits=47: zlib reads the gzip header itself; members are chained as the gzip format allows.
    inflate = zlib.decompressobj(wbits=47)
    lines_before = 0
    tail = b""
    seen_bytes = False
    consumed = inflated = 0
    try:
        with source:
            while compressed := source.read(INFLATE_CHUNK_BYTES):
                seen_bytes = True
                pending = compressed
                while True:
                    if inflate.eof and pending:  # another gzip member follows
                        inflate = zlib.decompressobj(wbits=47)
                    out = inflate.decompress(pending, OUTPUT_CHUNK_BYTES)
                    left = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
                    consumed += len(pending) - len(left)
                    inflated += len(out)
                    pending = left
                    if inflated >= RATIO_JUDGED_AFTER_BYTES and (
                        inflated > limits.max_inflation_ratio * max(consumed, 1)
                    ):
                        msg = (
                            f"{where}: after line {lines_before} the blob inflates more than "
                            f"{limits.max_inflation_ratio} times its compressed size "
                            f"({consumed} → {inflated} bytes), which looks like a decompression "
                            "bomb (setting max_inflation_ratio)"
                        )
                        raise ResourceLimitError(msg)
                    lines = (tail + out).split(b"\n")
                    tail = lines.pop()
                    _check_lengths(lines, tail, lines_before, where, limits.max_line_bytes)
                    for at in range(0, len(lines), MAX_BLOCK_LINES):
                        yield lines[at : at + MAX_BLOCK_LINES]
                    lines_before += len(lines)
                    if not pending and len(out) < OUTPUT_CHUNK_BYTES:
                        break
        finished = inflate.eof or not seen_bytes  # a zero-byte blob counts as an empty one
    except (OSError, EOFError, zlib.error) as err:
        msg = f"{where}: gzip data is corrupt or truncated after line {lines_before} ({err})"
        raise BlobDataError(msg) from None
    if not finished:
        msg = (
            f"{where}: gzip data is corrupt or truncated after line {lines_before} (no end marker)"
        )
        raise BlobDataError(msg)
    if tail.strip():
        yield [tail]


def _check_lengths(
    lines: list[bytes], tail: bytes, lines_before: int, where: str, limit: int
) -> None:
    """Refuse a line (complete, or still growing in ``tail``) longer than ``limit`` bytes."""
    too_long = len(tail) > limit
    number = lines_before + len(lines) + 1
    if lines and max(map(len, lines)) > limit:
        too_long = True
        number = lines_before + 1 + next(i for i, line in enumerate(lines) if len(line) > limit)
    if too_long:
        msg = f"{where}, line {number}: the line is longer than max_line_bytes ({limit} bytes)"
        raise ResourceLimitError(msg)


def spooled_blobs(
    fetcher: BlobFetcher, urls: BlobUrls, *, max_parallel: int, limits: BlobLimits
) -> BlobReader:
    """The in-process blob reader of ``emission/events.py``: download, then lines.

    Blobs download in parallel (``download_in_order``) and are read in order while they
    arrive; a blob's spool file is gone once the events ask for the next blob.
    """

    def read(jobs: Sequence[BlobJob], first_ordinal: int) -> Iterator[BlobContent]:
        del first_ordinal  # the events number the lines they are given
        blobs = [(job.where, job.blob) for job in jobs]
        for index, spool in download_in_order(fetcher, blobs, urls, max_parallel=max_parallel):
            blocks = iter_line_blocks(spool, jobs[index].where, limits)
            yield BlobContent(index, blocks, functools.partial(getattr, spool, "size"))

    return read
