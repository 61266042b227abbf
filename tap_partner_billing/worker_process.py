"""A decode worker process (see ``workers.py``): typed, encoded records from spool files.

The protocol, one pipe each way (``multiprocessing.connection`` framing):

- to a worker: ``("blob", job)``; ``("size", job_id, n)`` once the download has ended;
  ``("read", job_id)`` for each block of records the tap has read.
- from a worker: ``("rows", path, length)``: a block of records and their ordinal spans in
  a file beside the spool; ``("end", lines)``; ``("error", kind, message)``.

A worker runs ahead of the tap by at most ``MAX_UNREAD_BLOCKS`` blocks, so disk and memory
stay bounded however fast it is. Its records wait in files, not in a pipe: the tap reads one
worker at a time, in blob order, while the others go on. It imports no Singer and holds no
token, no SAS and none of the tap's environment.
"""

from __future__ import annotations

import io
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_partner_billing.errors import BlobDataError, RecordValueError
from tap_partner_billing.lines import iter_line_blocks
from tap_partner_billing.rows import LineBlock, encode_relative

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from tap_partner_billing.lines import BlobLimits
    from tap_partner_billing.rows import RowLayout

POLL_SECONDS = 0.005  # how often a waiting side looks again (a blob's end, a dead worker)
# Blocks of records a worker may have written that the tap has not read yet (each at most
# MAX_BLOCK_LINES records, about a megabyte): how far ahead a worker runs, and its disk use.
MAX_UNREAD_BLOCKS = 32
RECORDS_SUFFIX = ".records"  # a block's file: the spool's name, the block's number, this
# How a worker starts: ``python -I -c BOOT sys.path read_fd write_fd``. Isolated mode: not the
# working directory (whatever lies there is not imported) nor PYTHON* variables; the tap's
# own import path instead, so a worker runs the code the tap runs.
BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from tap_partner_billing.worker_process import worker_main; "
    "worker_main(int(sys.argv[2]), int(sys.argv[3]))"
)


@dataclass(frozen=True)
class Job:
    """One blob for a worker: where its spool is and what its records carry."""

    job_id: int
    spool: str
    where: str  # dataset, partition and blob, for error messages
    layout: RowLayout
    template: tuple[Any, ...]
    head: bytes
    tail: bytes
    limits: BlobLimits
    max_unread: int = MAX_UNREAD_BLOCKS


class _Mailbox:
    """What the tap told a worker about its current blob: the blob's size, read credits."""

    def __init__(self, inbox: Connection, job: Job) -> None:
        self._inbox, self._job_id = inbox, job.job_id
        self.size = -1  # unknown while the download goes on
        self.credits = job.max_unread

    def check(self, timeout: float | None) -> None:
        """Take the next message of this blob, waiting up to ``timeout`` (None: forever)."""
        if timeout is not None and not self._inbox.poll(timeout):
            return
        message = self._inbox.recv()
        if message[1] != self._job_id:
            return  # about a blob this worker gave up on
        if message[0] == "size":
            self.size = message[2]
        elif message[0] == "read":
            self.credits += 1


class _FollowedSpool(io.RawIOBase):
    """A spool file read as the download writes it; its end is the size the tap announces."""

    def __init__(self, path: str, mailbox: _Mailbox) -> None:
        self._file = Path(path).open("rb")  # noqa: SIM115 - closed with this reader
        self._mailbox = mailbox

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while True:
            count = self._file.readinto(buffer)
            if count or self._mailbox.size >= 0:
                return count  # at the end, a file shorter than announced is truncated gzip
            self._mailbox.check(POLL_SECONDS)

    def close(self) -> None:
        self._file.close()
        super().close()


def _encode_blob(job: Job, inbox: Connection, outbox: Connection) -> int:
    """Encode a blob's lines a block at a time, each block into a file the tap reads."""
    mailbox, line_number = _Mailbox(inbox, job), 1
    source = _FollowedSpool(job.spool, mailbox)
    for sequence, lines in enumerate(iter_line_blocks(source, job.where, job.limits)):
        block = LineBlock(job.where, job.layout, job.template, lines, line_number, line_number - 1)
        encoded = encode_relative(block, job.head, job.tail)
        while mailbox.credits <= 0:  # the tap is this far behind: wait for it
            mailbox.check(None)
        mailbox.credits -= 1
        path = f"{job.spool}.{sequence}{RECORDS_SUFFIX}"
        with Path(path).open("wb") as out:
            out.write(encoded.data)
            out.write(encoded.spans.tobytes())
        outbox.send(("rows", path, len(encoded.data)))
        line_number += len(lines)
    return line_number - 1


def worker_main(read_fd: int, write_fd: int) -> None:
    """A worker's loop: a blob at a time, until the tap closes the pipe."""
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    while True:
        try:
            message = inbox.recv()
        except EOFError:
            return
        if message[0] != "blob":
            continue  # about a blob this worker gave up on
        try:
            lines = _encode_blob(message[1], inbox, outbox)
        except (BlobDataError, RecordValueError) as err:
            outbox.send(("error", type(err).__name__, str(err)))
        except Exception:  # noqa: BLE001 - reported to the tap, which raises it
            outbox.send(("error", "crash", traceback.format_exc(limit=8)[-4000:]))
        else:
            outbox.send(("end", lines))
