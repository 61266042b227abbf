"""A decode worker process (see ``emission/workers.py``): blocks of lines in, encoded records out.

The protocol, one pipe each way, small messages only (``multiprocessing.connection``):

- to a worker: a :class:`Task`, whose lines wait in a file beside the blob's spool.
- from a worker: ``("done", task_id, records)`` once the task's records are in its
  ``records_path``; ``("error", task_id, kind, message)``.

Lines and records go through files, not pipes: a pipe holds about 64 KB, and a worker
blocked on a full pipe while the tap waits on another would deadlock. A worker imports no
Singer and holds no token, no SAS and none of the tap's environment.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_partner_billing.errors import BlobDataError, RecordValueError
from tap_partner_billing.records.rows import LineBlock, encode_block

if TYPE_CHECKING:
    from tap_partner_billing.records.rows import RowLayout

# How a worker starts: ``python -I -c BOOT sys.path read_fd write_fd``. Isolated mode: not the
# working directory (whatever lies there is not imported) nor PYTHON* variables; the tap's
# own import path instead, so a worker runs the code the tap runs.
# The module names itself, so a move keeps the worker route working.
BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    f"from {__name__} import worker_main; "
    "worker_main(int(sys.argv[2]), int(sys.argv[3]))"
)


@dataclass(frozen=True)
class Task:
    """One block of a blob's lines to type and encode (``records/rows.py``'s ``encode_block``)."""

    task_id: int
    lines_path: str  # the lines, joined by newlines
    records_path: str  # where the records go
    where: str  # dataset, partition and blob, for error messages
    layout: RowLayout
    template: tuple[Any, ...]
    first_line: int
    first_ordinal: int
    count: int  # lines in the file (the tap checks the worker encoded as many)
    head: bytes
    tail: bytes


def run_task(task: Task) -> int:
    """Type and encode the task's lines into its records file; the number of records.

    With the function the record sink uses in the tap's process, so every route types a line
    the same way.
    """
    lines_file = Path(task.lines_path)
    lines = lines_file.read_bytes().split(b"\n")
    lines_file.unlink()
    block = LineBlock(
        task.where, task.layout, task.template, lines, task.first_line, task.first_ordinal
    )
    Path(task.records_path).write_bytes(encode_block(block, task.head, task.tail))
    return len(lines)


def worker_main(read_fd: int, write_fd: int) -> None:
    """A worker's loop: a task at a time, until the tap closes the pipe."""
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    while True:
        try:
            task: Task = inbox.recv()
        except EOFError:
            return
        try:
            records = run_task(task)
        except (BlobDataError, RecordValueError) as err:
            outbox.send(("error", task.task_id, type(err).__name__, str(err)))
        except Exception:
            report = traceback.format_exc(limit=8)[-4000:]
            outbox.send(("error", task.task_id, "crash", report))
        else:
            outbox.send(("done", task.task_id, records))
