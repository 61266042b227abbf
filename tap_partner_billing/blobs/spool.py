"""The folder the tap spools blobs into: its own, and cleared of what killed runs left.

Each run makes ``<tmp>/tap-partner-billing-<uid>/run-*`` and holds an exclusive lock on a file in
it for as long as it lives. A run that was SIGKILLed cannot delete its spool files, but its
lock dies with it: the next run removes every run folder whose lock it can take.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import IO

from tap_partner_billing.errors import ConfigurationError

LOGGER = logging.getLogger(__name__)
LOCK_NAME = ".lock"
STALE_NEW_SECONDS = 600


def spool_base(parent: str | None = None) -> Path:
    """``<parent or tmp>/tap-partner-billing-<uid>``: one folder per user."""
    return Path(parent or tempfile.gettempdir()) / f"tap-partner-billing-{os.getuid()}"


def _check_owned(base: Path) -> None:
    """Refuse a spool folder someone else made first (they could read the billing data).

    Raises:
        ConfigurationError: ``base`` belongs to another user or is a symlink.
    """
    info = base.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        msg = f"the spool folder {base} is not this user's own; remove it or set TMPDIR"
        raise ConfigurationError(msg)
    if info.st_mode & 0o077:
        base.chmod(0o700)


class SpoolFolder:
    """This run's spool folder (created on first use, removed at exit)."""

    def __init__(self, parent: str | None = None) -> None:
        self.base = spool_base(parent)
        self._path: Path | None = None
        self._lock: IO[bytes] | None = None

    @property
    def path(self) -> Path:
        """The folder, made (and older runs' leftovers removed) the first time it is asked for."""
        if self._path is None:
            self.base.mkdir(mode=0o700, exist_ok=True)
            _check_owned(self.base)
            self._remove_leftovers()
            # Made under another name and renamed once locked: another run never sees a
            # run-* folder without its lock held.
            made = Path(tempfile.mkdtemp(prefix="new-", dir=self.base))
            lock = (made / LOCK_NAME).open("wb")
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = made.with_name("run-" + made.name.removeprefix("new-"))
            made.rename(path)
            self._path, self._lock = path, lock
            atexit.register(self.remove)
        return self._path

    def _remove_leftovers(self) -> None:
        for folder in self.base.glob("run-*"):
            try:
                with (folder / LOCK_NAME).open("rb") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run holds it
            except OSError:
                pass  # no lock file: nothing can be running there
            LOGGER.info("Removing spool files a stopped run left in %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
        for folder in self.base.glob("new-*"):  # killed before it was renamed
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > STALE_NEW_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)

    def remove(self) -> None:
        """Delete this run's folder and release its lock."""
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()
        self._path, self._lock = None, None
