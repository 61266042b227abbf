"""Decode workers: blobs typed and encoded in other processes, written here in blob order.

One Python process cannot type and encode every value as fast as it downloads and inflates
(``decode_workers``, README "Throughput"). With workers, this process still downloads
(``blobs.download_in_order``: SAS renewal, retries, resume and the URL policy stay in one
place) and writes; each worker process owns whole blobs. It follows a blob's spool file as
the download fills it, inflates it within the same bounds (``lines.iter_line_blocks``),
decodes, types and encodes every line with the same codec and encoder as the in-process
route (``rows.encode_relative``), and hands back the finished RECORD bytes. A worker sees a
spool file's path and the blob's provenance, never a token, a SAS or the tap's environment.

The protocol, one pipe each way per worker (``multiprocessing.connection`` framing):

- to a worker: ``("blob", job)``; ``("size", job_id, n)`` once the download has ended;
  ``("read", job_id)`` for each block of records the tap has read.
- from a worker: ``("rows", path, length)``: a block of records and their ordinal spans in
  a file beside the spool; ``("end", lines)``; ``("error", kind, message)``.

A worker runs ahead of the tap by at most ``MAX_UNREAD_BLOCKS`` blocks, so disk and memory
stay bounded however fast it is. A worker's records wait in files, not in a pipe: the tap
reads one worker at a time, in blob order, while the others go on.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import traceback
import weakref
from array import array
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_partner_billing.blobs import download_in_order
from tap_partner_billing.errors import (
    BlobDataError,
    PartnerBillingError,
    RecordValueError,
    ResourceLimitError,
)
from tap_partner_billing.lines import iter_line_blocks
from tap_partner_billing.rows import EncodedRows, LineBlock, encode_relative
from tap_partner_billing.writer import BlobContent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from _typeshed import WriteableBuffer

    from tap_partner_billing.blob_urls import BlobUrls
    from tap_partner_billing.blobs import BlobFetcher, Spool
    from tap_partner_billing.lines import BlobLimits
    from tap_partner_billing.rows import RowLayout
    from tap_partner_billing.writer import BlobJob, BlobReader

POLL_SECONDS = 0.005  # how often a waiting side looks again (a blob's end, a dead worker)
# Blocks of records a worker may have written that the tap has not read yet (each at most
# MAX_BLOCK_LINES records, about a megabyte): how far ahead a worker runs, and its disk use.
MAX_UNREAD_BLOCKS = 32
# Errors a worker reports by name and message, raised again here as they would be in-process.
_REPORTED: dict[str, type[PartnerBillingError]] = {
    cls.__name__: cls for cls in (BlobDataError, RecordValueError, ResourceLimitError)
}
# What a worker's interpreter needs from the environment; nothing else (no secrets) passes.
_ENVIRONMENT = ("PATH", "PYTHONPATH", "PYTHONHASHSEED", "LANG", "LC_ALL", "TMPDIR", "HOME")


class WorkerError(PartnerBillingError):
    """A decode worker process failed or died (``decode_workers: 1`` decodes in-process)."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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


# ---- the worker process ------------------------------------------------------------------


class _Mailbox:
    """What the tap told a worker about its current blob: the blob's size, read credits."""

    def __init__(self, inbox: Connection, job_id: int) -> None:
        self._inbox, self._job_id = inbox, job_id
        self.size = -1  # unknown while the download goes on
        self.credits = MAX_UNREAD_BLOCKS

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
    mailbox, line_number = _Mailbox(inbox, job.job_id), 1
    source = _FollowedSpool(job.spool, mailbox)
    for sequence, lines in enumerate(iter_line_blocks(source, job.where, job.limits)):
        block = LineBlock(job.where, job.layout, job.template, lines, line_number, line_number - 1)
        encoded = encode_relative(block, job.head, job.tail)
        path = f"{job.spool}.{sequence}.records"
        with Path(path).open("wb") as out:
            out.write(encoded.data)
            out.write(encoded.spans.tobytes())
        while mailbox.credits <= 0:  # the tap is this far behind: wait for it
            mailbox.check(None)
        mailbox.credits -= 1
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


# ---- the tap's side ----------------------------------------------------------------------


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self) -> None:
        to_worker, from_tap = os.pipe()
        to_tap, from_worker = os.pipe()
        environment = {k: v for k, v in os.environ.items() if k in _ENVIRONMENT}
        command = [sys.executable, "-m", "tap_partner_billing.workers", str(to_worker)]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*command, str(from_worker)],
            pass_fds=(to_worker, from_worker),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # it reports through its pipe (and has no secrets)
            env=environment,
            start_new_session=True,  # SIGTERM/Ctrl-C reach the tap, which ends the workers
        )
        os.close(to_worker)
        os.close(from_worker)
        self.outbox = Connection(from_tap, readable=False)
        self.inbox = Connection(to_tap, writable=False)

    def receive(self, where: str) -> Any:  # noqa: ANN401 - a protocol message
        """The next message, waiting; a dead worker is an error naming the blob."""
        while not self.inbox.poll(POLL_SECONDS):
            if self.process.poll() is not None:
                break
        try:
            return self.inbox.recv()
        except (EOFError, OSError):
            code = self.process.poll()
            msg = f"{where}: a decode worker exited (code {code}); decode_workers: 1 avoids them"
            raise WorkerError(msg) from None

    def stop(self, *, at_once: bool) -> None:
        """End the process: by closing its pipe (it exits when idle), or by killing it."""
        self.outbox.close()
        if at_once:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.inbox.close()


@dataclass
class _Assigned:
    index: int
    spool: Spool
    worker: _Worker
    job_id: int
    size_sent: bool = False


def _stop_all(workers: list[_Worker], *, at_once: bool) -> None:
    for worker in workers:
        worker.stop(at_once=at_once)


class DecodeWorkers:
    """A run's worker processes, started on first use and reused by every partition."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._workers: list[_Worker] = []
        self._jobs = 0
        self._finalizer: weakref.finalize[Any, DecodeWorkers] | None = None

    def start(self) -> None:
        """Start the processes now (they import while the export runs), if not yet running."""
        self._started()

    def _started(self) -> list[_Worker]:
        if not self._workers:
            self._workers = [_Worker() for _ in range(self.count)]
            self._finalizer = weakref.finalize(self, _stop_all, self._workers, at_once=False)
        return self._workers

    def close(self, *, at_once: bool = False) -> None:
        """End the workers (a later partition starts new ones)."""
        if self._finalizer is not None:
            self._finalizer.detach()
        _stop_all(self._workers, at_once=at_once)
        self._workers = []

    def reader(
        self,
        fetcher: BlobFetcher,
        urls: BlobUrls,
        *,
        max_parallel: int,
        limits: BlobLimits,
        layout: RowLayout,
        encoding: Callable[[], tuple[bytes, bytes]],
    ) -> BlobReader:
        """A blob reader for ``writer.PartitionWriter`` (as ``lines.spooled_blobs`` is).

        ``encoding`` gives the head and tail of a blob's records (``RecordSink.encoding``).
        """

        def read(jobs: Sequence[BlobJob]) -> Iterator[BlobContent]:
            workers = self._started()
            blobs = [(job.where, job.blob) for job in jobs]
            downloads = download_in_order(
                fetcher, blobs, urls, max_parallel=max_parallel, lookahead=len(workers) - 1
            )
            assigned: deque[_Assigned] = deque()
            idle = list(workers)
            finished, done = False, [0]  # blobs read to their end

            def assign() -> None:
                # Never past the last blob: an exhausted download generator releases every
                # spool it holds, and the workers may not have read them yet.
                while idle and len(assigned) + done[0] < len(jobs):
                    index, spool = next(downloads)
                    self._jobs += 1
                    head, tail = encoding()
                    where, template = jobs[index].where, jobs[index].template
                    job = Job(
                        self._jobs, str(spool.path), where, layout, template, head, tail, limits
                    )
                    worker = idle.pop(0)
                    worker.outbox.send(("blob", job))
                    assigned.append(_Assigned(index, spool, worker, self._jobs))

            try:
                assign()
                while assigned:
                    current = assigned[0]
                    yield BlobContent(
                        current.index,
                        _records(current, assigned, jobs[current.index].where),
                        size=functools.partial(getattr, current.spool, "size"),
                    )
                    assigned.popleft()
                    done[0] += 1
                    idle.append(current.worker)
                    assign()
                for _ in downloads:  # every blob read: release the spools, surface failures
                    pass
                finished = True
            finally:
                downloads.close()
                if not finished:  # workers busy with blobs nobody will read
                    self.close(at_once=True)

        return read


def _announce_sizes(assigned: deque[_Assigned]) -> None:
    """Tell each worker whose download ended how many bytes its blob has."""
    for job in assigned:
        if not job.size_sent and job.spool.done and job.spool.error is None:
            job.worker.outbox.send(("size", job.job_id, job.spool.size))
            job.size_sent = True


def _records(current: _Assigned, assigned: deque[_Assigned], where: str) -> Iterator[EncodedRows]:
    """The encoded records of ``current``'s blob, in order, as its worker sends them.

    Raises:
        BlobDataError, RecordValueError, ResourceLimitError: As the in-process route would.
        WorkerError: The worker died or failed otherwise.
    """
    worker, first = current.worker, 0
    while True:
        _announce_sizes(assigned)
        if current.spool.error is not None:
            raise current.spool.error
        if not worker.inbox.poll(POLL_SECONDS) and worker.process.poll() is None:
            continue
        message = worker.receive(where)
        if message[0] == "rows":
            path, spans = Path(message[1]), array("q")
            with path.open("rb") as records:
                data = records.read(message[2])
                spans.frombytes(records.read())
            path.unlink()
            worker.outbox.send(("read", current.job_id))
            rows = EncodedRows(data, spans, first)
            first += len(rows)
            yield rows
        elif message[0] == "end":
            return
        else:
            kind, text = message[1], message[2]
            raise _REPORTED.get(kind, WorkerError)(
                text if kind in _REPORTED else f"{where}: {text}"
            )


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
