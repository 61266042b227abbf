"""What a blob reader is asked for and what it hands over. No HTTP and no Singer in here.

The partition events (``emission/events.py``) ask a :data:`BlobReader` for a manifest's
blobs as :class:`BlobJob` and get each blob back as :class:`BlobContent`, in order. The
in-process reader is ``blobs/lines.py``'s :func:`~tap_partner_billing.blobs.lines.spooled_blobs`
(download, then lines); the decode workers (``emission/workers.py``) wrap it, handing over
records they already typed and encoded instead of lines. Emission imports this module, so it
imports no HTTP client (a decode worker never loads one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from tap_partner_billing.records.rows import EncodedRows
    from tap_partner_billing.service.manifest import BlobRef


class BlobJob(NamedTuple):
    """A blob to read: where it is (for errors), its manifest entry, its records' provenance."""

    where: str  # dataset, partition and blob
    blob: BlobRef
    template: tuple[Any, ...]  # see RowLayout.template


@dataclass
class BlobContent:
    """One blob as its reader hands it over: blocks of lines in order, then its size.

    A block is raw lines, or records a decode worker already encoded (``emission/workers.py``).
    """

    index: int  # position in the list of blobs asked for
    blocks: Iterator[list[bytes] | EncodedRows]
    size: Callable[[], int]  # compressed bytes, once ``blocks`` is exhausted


# The blobs to read, in manifest order, and the ordinal of their first line → each blob's
# content, in that order.
BlobReader: TypeAlias = Callable[[Sequence[BlobJob], int], Iterator[BlobContent]]
