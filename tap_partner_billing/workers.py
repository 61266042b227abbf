"""Decode workers: blobs typed and encoded in other processes, written here in blob order.

One Python process cannot type and encode every value as fast as it downloads and inflates
(``decode_workers``, README "Throughput"). With workers, this process still downloads
(``blobs.download_in_order``: SAS renewal, retries, resume and the URL policy stay in one
place) and writes; each worker process (``worker_process.py``) owns whole blobs. It follows a
blob's spool file as the download fills it, inflates it within the same bounds, decodes,
types and encodes every line with the same code as the in-process route, and hands back the
finished records, which this process renumbers (``rows.EncodedRows``) and writes in blob
order. A worker sees a spool file's path and the blob's provenance, never a token, a SAS or
the tap's environment.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
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
from tap_partner_billing.rows import EncodedRows
from tap_partner_billing.worker_process import (
    BOOT,
    MAX_UNREAD_BLOCKS,
    POLL_SECONDS,
    RECORDS_SUFFIX,
    Job,
)
from tap_partner_billing.writer import BlobContent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from tap_partner_billing.blob_urls import BlobUrls
    from tap_partner_billing.blobs import BlobFetcher, Spool
    from tap_partner_billing.lines import BlobLimits
    from tap_partner_billing.rows import RowLayout
    from tap_partner_billing.writer import BlobJob, BlobReader

DEFAULT_MAX_WORKERS = 4  # the default follows the cores, up to this (memory and spool disk)
# Errors a worker reports by name and message, raised again here as they would be in-process.
_REPORTED: dict[str, type[PartnerBillingError]] = {
    cls.__name__: cls for cls in (BlobDataError, RecordValueError, ResourceLimitError)
}
# What a worker's interpreter may need from the environment; nothing else (no secrets) passes.
_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME", "LD_LIBRARY_PATH", "SYSTEMROOT")


class WorkerError(PartnerBillingError):
    """A decode worker process failed or died (``decode_workers: 1`` decodes in-process)."""


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: its CPU affinity, within a cgroup CPU quota if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":  # a container limited to quota/period CPUs
            cores = min(cores, math.ceil(int(quota) / int(period)))
    return max(1, cores)


def default_worker_count() -> int:
    """``decode_workers`` when unset: the usable cores, up to ``DEFAULT_MAX_WORKERS``."""
    return min(usable_cores(), DEFAULT_MAX_WORKERS)


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self) -> None:
        to_worker, from_tap = os.pipe()
        to_tap, from_worker = os.pipe()
        environment = {k: v for k, v in os.environ.items() if k in _ENVIRONMENT}
        path = json.dumps([entry for entry in sys.path if entry])  # not the working directory
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-I", "-c", BOOT, path, str(to_worker), str(from_worker)],
                pass_fds=(to_worker, from_worker),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,  # read when it dies (it reports through its pipe)
                env=environment,
                start_new_session=True,  # SIGTERM/Ctrl-C reach the tap, which ends the workers
            )
        except BaseException:
            for fd in (to_worker, from_tap, to_tap, from_worker):
                os.close(fd)
            raise
        os.close(to_worker)
        os.close(from_worker)
        self.outbox = Connection(from_tap, readable=False)
        self.inbox = Connection(to_tap, writable=False)

    def failed(self, where: str) -> WorkerError:
        """The error for a worker that is gone, with the end of what it printed."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        printed = b""
        if self.process.poll() is not None and self.process.stderr is not None:
            printed = self.process.stderr.read()[-2000:]
        said = printed.decode("utf-8", "replace").strip()
        msg = (
            f"{where}: a decode worker exited (code {self.process.poll()})"
            + (f": {said}" if said else "")
            + "; decode_workers: 1 decodes in the tap's own process"
        )
        return WorkerError(msg)

    def send(self, message: tuple[Any, ...], where: str) -> None:
        """Send ``message``; a worker that is gone is an error naming the blob."""
        try:
            self.outbox.send(message)
        except OSError:  # BrokenPipeError: it died
            raise self.failed(where) from None

    def receive(self, where: str) -> Any:  # noqa: ANN401 - a protocol message
        """The next message, waiting; a dead worker is an error naming the blob."""
        while not self.inbox.poll(POLL_SECONDS):
            if self.process.poll() is not None:
                break
        try:
            return self.inbox.recv()
        except (EOFError, OSError):
            raise self.failed(where) from None

    def end(self, *, at_once: bool) -> None:
        """Close its pipe (an idle worker exits), or kill it."""
        self.outbox.close()
        if at_once:
            self.process.kill()

    def reap(self) -> None:
        """Wait for the process (killing it after 5 s), and close what is left."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.inbox.close()
        if self.process.stderr is not None:
            self.process.stderr.close()


@dataclass
class _Assigned:
    index: int
    spool: Spool
    worker: _Worker
    job_id: int
    where: str
    size_sent: bool = False


def _stop_all(workers: list[_Worker], *, at_once: bool) -> None:
    for worker in workers:
        worker.end(at_once=at_once)
    for worker in workers:
        worker.reap()


class DecodeWorkers:
    """A run's worker processes, started on first use and reused by every partition."""

    def __init__(self, count: int, *, max_unread: int = MAX_UNREAD_BLOCKS) -> None:
        self.count = count
        self.max_unread = max_unread  # blocks a worker may run ahead (tests make it small)
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
        Up to ``max_parallel`` downloads run, and each worker holds one more spool.
        """

        def read(jobs: Sequence[BlobJob]) -> Iterator[BlobContent]:
            workers = self._started()
            blobs = [(job.where, job.blob) for job in jobs]
            downloads = download_in_order(
                fetcher, blobs, urls, max_parallel=max_parallel, lookahead=len(workers) - 1
            )
            assigned: deque[_Assigned] = deque()
            idle, handed_out, finished = list(workers), 0, False

            def assign() -> None:
                nonlocal handed_out
                # Never past the last blob: an exhausted download generator releases every
                # spool it holds, and the workers may not have read them yet.
                while idle and handed_out < len(jobs):
                    index, spool = next(downloads)
                    handed_out += 1
                    self._jobs += 1
                    head, tail = encoding()
                    where, template = jobs[index].where, jobs[index].template
                    job = Job(
                        self._jobs, str(spool.path), where, layout, template, head, tail, limits,
                        self.max_unread,
                    )  # fmt: skip
                    worker = idle.pop(0)
                    worker.send(("blob", job), where)
                    assigned.append(_Assigned(index, spool, worker, self._jobs, where))

            try:
                assign()
                while assigned:
                    current = assigned[0]
                    yield BlobContent(
                        current.index,
                        _records(current, assigned),
                        size=functools.partial(getattr, current.spool, "size"),
                    )
                    assigned.popleft()
                    idle.append(current.worker)
                    assign()
                for _ in downloads:  # every blob read: release the spools, surface failures
                    pass
                finished = True
            finally:
                downloads.close()
                if not finished:  # workers busy with blobs nobody will read
                    self.close(at_once=True)
                    for job in assigned:  # their records not read yet
                        for path in job.spool.path.parent.glob(job.spool.path.name + ".*"):
                            if path.name.endswith(RECORDS_SUFFIX):
                                path.unlink(missing_ok=True)

        return read


def _announce_sizes(assigned: deque[_Assigned]) -> None:
    """Tell each worker whose download ended how many bytes its blob has.

    A worker that died hears nothing: its error comes when its blob is read.
    """
    for job in assigned:
        if job.size_sent or not job.spool.done or job.spool.error is not None:
            continue
        if job.worker.process.poll() is None:
            with contextlib.suppress(OSError):
                job.worker.outbox.send(("size", job.job_id, job.spool.size))
        job.size_sent = True


def _records(current: _Assigned, assigned: deque[_Assigned]) -> Iterator[EncodedRows]:
    """The encoded records of ``current``'s blob, in order, as its worker sends them.

    Raises:
        BlobDataError, RecordValueError, ResourceLimitError: As the in-process route would.
        WorkerError: The worker died, failed otherwise, or sent fewer lines than it counted.
    """
    worker, where, first = current.worker, current.where, 0
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
            worker.send(("read", current.job_id), where)
            rows = EncodedRows(data, spans, first)
            first += len(rows)
            yield rows
        elif message[0] == "end":
            if message[1] != first:
                msg = f"{where}: a decode worker counted {message[1]} lines but sent {first}"
                raise WorkerError(msg)
            return
        else:
            kind, text = message[1], message[2]
            raise _REPORTED.get(kind, WorkerError)(
                text if kind in _REPORTED else f"{where}: {text}"
            )
