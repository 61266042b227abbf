"""Decode workers: blocks of lines typed and encoded in other processes, in order.

One Python process cannot type and encode every value as fast as it downloads and inflates
(``decode_workers``, docs/output-routes.md). With workers, this process still downloads and
inflates every blob (the in-process reader, unchanged: SAS renewal, retries, resume, the URL
policy and the inflation limits stay in one place) and writes every message; each block of
lines goes, through a file, to the next worker process in turn (``emission/worker_process.py``),
which types and encodes it with the same code as the in-process route, ``line_ordinal``
included, and the records come back in order. Whole blobs per worker would leave a one-blob
export (the usual size for a mid-size partner) on one core. A worker sees the lines and the
blob's provenance, never a token, a SAS or the tap's environment.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_partner_billing.blobs.content import BlobContent
from tap_partner_billing.emission.worker_process import BOOT, Task
from tap_partner_billing.errors import (
    BlobDataError,
    PartnerBillingError,
    RecordValueError,
    ResourceLimitError,
)
from tap_partner_billing.records.rows import EncodedRows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from tap_partner_billing.blobs.content import BlobJob, BlobReader
    from tap_partner_billing.records.rows import RowLayout

POLL_SECONDS = 0.005  # how often the tap, waiting on a worker, looks whether it died
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

    def send(self, message: object, where: str) -> None:
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


def _stop_all(workers: list[_Worker], *, at_once: bool) -> None:
    for worker in workers:
        worker.end(at_once=at_once)
    for worker in workers:
        worker.reap()


class DecodeWorkers:
    """A run's worker processes, started on first use and reused by every partition.

    This process still downloads and inflates every blob (``lines.spooled_blobs``: the
    limits, the bomb check and the resume stay in one place, and a blob of any size is
    spread over every worker); each block of lines becomes a :class:`Task` for the next
    worker in turn, and the blocks' records come back in order. ``window`` tasks at most
    are out at once (their files are the disk it takes).
    """

    def __init__(self, count: int, *, folder: str | None = None, window: int | None = None) -> None:
        self.count = count
        self.window = window or 2 * count
        self._parent = folder  # where the tasks' folder is made: the run's spool folder
        self._workers: list[_Worker] = []
        self._tasks = 0
        self._folder: Path | None = None
        self._finalizer: weakref.finalize[Any, DecodeWorkers] | None = None

    def start(self) -> None:
        """Start the processes now (they import while the export runs), if not yet running."""
        if not self._workers:
            self._workers = [_Worker() for _ in range(self.count)]
            self._finalizer = weakref.finalize(self, _stop_all, self._workers, at_once=False)
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="decode-", dir=self._parent))

    def close(self, *, at_once: bool = False) -> None:
        """End the workers and remove their files (a later partition starts new ones)."""
        if self._finalizer is not None:
            self._finalizer.detach()
        _stop_all(self._workers, at_once=at_once)
        self._workers = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def reader(
        self,
        inner: BlobReader,
        *,
        layout: RowLayout,
        encoding: Callable[[], tuple[bytes, bytes]],
    ) -> BlobReader:
        """``inner`` (the in-process reader), its blocks of lines typed and encoded here.

        ``encoding`` gives the head and tail of a blob's records (``RecordSink.encoding``).
        """

        def read(jobs: Sequence[BlobJob], first_ordinal: int) -> Iterator[BlobContent]:
            ordinal = [first_ordinal]  # of the next block: ordinals run on across blobs
            for content in inner(jobs, first_ordinal):
                head, tail = encoding()
                job = jobs[content.index]
                encoded = self._encoded(content.blocks, job, layout, (head, tail), ordinal)
                yield BlobContent(content.index, encoded, content.size)

        return read

    def _encoded(
        self,
        blocks: Iterator[list[bytes] | EncodedRows],
        job: BlobJob,
        layout: RowLayout,
        ends: tuple[bytes, bytes],
        ordinal: list[int],
    ) -> Iterator[EncodedRows]:
        """The records of one blob's blocks, in order, each block encoded by a worker."""
        self.start()
        pending: deque[tuple[Task, _Worker]] = deque()
        failure: Exception | None = None
        line, finished = 1, False
        try:
            while True:
                try:
                    lines = next(blocks)
                except StopIteration:
                    break
                except Exception as err:  # noqa: BLE001 - raised below, in its place
                    failure = err  # a download or inflate error: the blocks before it go out
                    break
                if isinstance(lines, EncodedRows):  # not from the in-process reader
                    raise TypeError(lines)
                while len(pending) >= self.window:
                    yield self._collect(*pending.popleft())
                task = self._dispatch(
                    lines, job, layout, ends, first_line=line, first_ordinal=ordinal[0]
                )
                pending.append(task)
                line += len(lines)
                ordinal[0] += len(lines)
            while pending:
                yield self._collect(*pending.popleft())
            finished = True
        finally:
            if not finished:  # workers busy with tasks nobody will read: start afresh
                self.close(at_once=True)
        if failure is not None:
            raise failure

    def _dispatch(
        self,
        lines: list[bytes],
        job: BlobJob,
        layout: RowLayout,
        ends: tuple[bytes, bytes],
        *,
        first_line: int,
        first_ordinal: int,
    ) -> tuple[Task, _Worker]:
        assert self._folder is not None  # noqa: S101 - start() made it
        self._tasks += 1
        path = self._folder / f"{self._tasks}"
        lines_path = path.with_suffix(".lines")
        lines_path.write_bytes(b"\n".join(lines))
        task = Task(
            self._tasks, str(lines_path), str(path.with_suffix(".records")), job.where,
            layout, job.template, first_line, first_ordinal, len(lines), *ends,
        )  # fmt: skip
        worker = self._workers[self._tasks % len(self._workers)]
        worker.send(task, job.where)
        return task, worker

    def _collect(self, task: Task, worker: _Worker) -> EncodedRows:
        """A task's records, once its worker is done.

        Raises:
            BlobDataError, RecordValueError, ResourceLimitError: As the in-process route would.
            WorkerError: The worker died or failed otherwise.
        """
        message = worker.receive(task.where)
        if message[:3] == ("done", task.task_id, task.count):
            path = Path(task.records_path)
            data = path.read_bytes()
            path.unlink()
            return EncodedRows(data, task.count, task.first_ordinal)
        if message[:2] == ("error", task.task_id):
            if message[2] in _REPORTED:  # the message names blob and line, as in-process
                raise _REPORTED[message[2]](message[3])
            raise WorkerError(f"{task.where}: {message[3]}")
        msg = f"{task.where}: a decode worker is out of step (task {task.task_id}: {message[:3]!r})"
        raise WorkerError(msg)
