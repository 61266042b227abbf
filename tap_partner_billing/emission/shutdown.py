"""SIGTERM between messages, never inside one.

A target reads the tap's stdout line by line; a line cut in half is a broken message, and a
run that ends with exit code 0 after SIGTERM looks complete when it is not. So stdout becomes
an unbuffered writer that writes each call — always whole messages: the SDK writes one
message per call, the direct route a block of them — to the end, and SIGTERM is handled so:

- while no message is being written, the run stops at once;
- while one is, the write goes on to its end (a target that keeps reading sees the whole
  message), and the run stops right after it. A second SIGTERM stops it at once.

Either way the exit code is 143 (128 + SIGTERM) and the last STATE on stdout is the last one
the tap wrote in order, so the next run resumes from there.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from tap_partner_billing.errors import TerminatedError

if TYPE_CHECKING:
    from types import FrameType

    from _typeshed import ReadableBuffer

LOGGER = logging.getLogger(__name__)
EXIT_CODE = 128 + signal.SIGTERM


class GuardedStdout(io.RawIOBase):
    """File descriptor 1, written whole, call by call; a SIGTERM waits for a call's end."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.writing = False
        self.stop_requested = False

    def writable(self) -> bool:
        """Always."""
        return True

    def fileno(self) -> int:
        """The descriptor written to."""
        return self._fd

    def write(self, data: ReadableBuffer) -> int:
        """Write all of ``data``; stop the run after it if SIGTERM came meanwhile."""
        view = memoryview(data).cast("B")
        self.writing = True
        try:
            written = 0
            while written < len(view):
                # A signal during os.write runs the handler, which returns: the write goes on.
                written += os.write(self._fd, view[written:])
        finally:
            self.writing = False
        if self.stop_requested:
            _stop()
        return written


def _stop() -> None:
    LOGGER.warning("Stopped by SIGTERM; the next run resumes from the last STATE message written")
    raise TerminatedError(EXIT_CODE)


def install_sigterm_guard() -> None:
    """Put the guarded writer under ``sys.stdout`` (the command line's sync run only)."""
    sys.stdout.flush()
    guarded = GuardedStdout(sys.stdout.fileno())
    sys.stdout = io.TextIOWrapper(guarded, encoding="utf-8", write_through=True)


def handle_sigterm() -> None:
    """Handle SIGTERM as described above, when stdout is guarded (else leave it as it is).

    Called after the SDK's plugin set up its own handler (which writes STATE and exits 0).
    """
    guarded = getattr(sys.stdout, "buffer", None)
    if not isinstance(guarded, GuardedStdout) or threading.current_thread() is not (
        threading.main_thread()
    ):
        return
    writer = guarded

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        if writer.writing and not writer.stop_requested:
            writer.stop_requested = True  # the message in flight is finished first
            return
        _stop()

    signal.signal(signal.SIGTERM, on_sigterm)
