"""Blob download into spool files. Never sees a Graph token.

Blobs are fetched with their own session (no ``Authorization`` header: the SAS in the URL is
the credential) into spool files, several at once. The reader (``blobs/lines.py``) follows a spool
file while it is still being written, so the first lines of a blob are emitted while the rest
of it, and the next blobs, are still downloading. Spooling to disk keeps memory flat whatever
the blob size, and lets a dropped connection resume with an HTTP ``Range`` request instead of
a re-read.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import requests

from tap_partner_billing.errors import (
    SasExpiredError,
    ServiceError,
    TransientHTTPError,
)
from tap_partner_billing.service.transport import (
    READ_ERRORS,
    Outcome,
    RetryBudget,
    RetryPolicy,
    classify,
    describe_failure,
    send,
)
from tap_partner_billing.service.url_policy import CheckedSession, UrlPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from tap_partner_billing.blobs.sas import BlobUrls
    from tap_partner_billing.blobs.spool import SpoolFolder
    from tap_partner_billing.service.manifest import BlobRef

LOGGER = logging.getLogger(__name__)
PARTIAL = HTTPStatus.PARTIAL_CONTENT
MAX_SAS_RENEWALS = 2  # per blob download
CHUNK_BYTES = 1 << 20  # download reads
PACE_WINDOW_SECONDS = 60.0
MIN_BYTES_PER_WINDOW = 64 << 10  # slower than this is a stalled transfer: resumed with Range


def new_blob_session() -> requests.Session:
    """A session for blob storage: no token ever, no ``.netrc``, no redirects, https only.

    Which host a blob lives on is the manifest's word (each manifest names its storage
    account); :meth:`BlobFetcher.fill` holds every URL to its manifest's ``rootDirectory``.
    """
    return CheckedSession(UrlPolicy.any_https("blob storage"))


class Spool:
    """A blob's bytes on disk, written by a download thread and readable while it grows."""

    def __init__(self, spool_dir: str | None) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the spool
            prefix="partner-billing-", suffix=".json.gz", dir=spool_dir, delete=False
        )
        self.path = Path(handle.name)
        self._writer = handle
        self._changed = threading.Condition()
        self.size = 0
        self.done = self.cancelled = False
        self.error: BaseException | None = None
        self._socket: socket.socket | None = None
        self._version: tuple[str | None, int | None] = (None, None)

    def attach(self, response: requests.Response) -> None:
        """Remember the connection this spool is read from, so :meth:`cancel` can cut it."""
        connection = getattr(response.raw, "connection", None)
        self._socket = getattr(connection, "sock", None)

    def check_version(self, etag: str | None, total: int | None, where: str) -> None:
        """Refuse a resumed answer from another version of the blob (eTag or total length).

        Raises:
            ServiceError: Appending it would splice two versions of the blob into one file.
        """
        if not self.size:  # nothing spooled yet: any version may start
            self._version = (etag, total)
        # An eTag seen first must come back (none proves nothing); a length may go unsaid.
        elif (self._version[0] not in {None, etag}) or _differs(self._version[1], total):
            msg = (
                f"{where}: the blob changed while downloading (eTag {self._version[0]} → {etag}, "
                f"{self._version[1]} → {total} bytes); the next run reads it again from the start"
            )
            raise ServiceError(msg)

    def cancel(self) -> None:
        """Stop the download: at its next write, or at once if it waits on the network.

        A thread blocked in a socket read would otherwise hold the run (and its exit after
        SIGTERM) for up to the read timeout.
        """
        self.cancelled = True
        sock = self._socket
        if sock is not None and not self.done:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def write(self, chunk: bytes) -> None:
        """Append downloaded bytes (a cancelled spool stops its download here)."""
        if self.cancelled:
            raise _CancelledError(self.path.name)
        self._writer.write(chunk)
        self._writer.flush()
        with self._changed:
            self.size += len(chunk)
            self._changed.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the download complete (or failed)."""
        self._writer.close()
        with self._changed:
            self.done, self.error = True, error
            self._changed.notify_all()

    def wait_beyond(self, offset: int) -> int:
        """Block until more than ``offset`` bytes exist or the download ended; return the size.

        Raises:
            BaseException: The download's own error, once it failed.
        """
        with self._changed:
            while self.size <= offset and not self.done:
                self._changed.wait()
            if self.error is not None:
                raise self.error
            return self.size

    def remove(self) -> None:
        """Delete the file."""
        if not self._writer.closed:
            self._writer.close()
        self.path.unlink(missing_ok=True)


class _CancelledError(Exception):
    """The reader went away; the download stops."""


class BlobFetcher:
    """Downloads one blob into a :class:`Spool`, resuming a dropped connection with ``Range``."""

    def __init__(
        self,
        session: requests.Session,
        *,
        sleep: Callable[[float], None],
        policy: RetryPolicy | None = None,
        spool_dir: str | None = None,
        spool_folder: SpoolFolder | None = None,
    ) -> None:
        self._session = session
        self._sleep = sleep
        self._policy = policy or RetryPolicy()
        self._spool_dir = spool_dir
        self._spool_folder = spool_folder

    @property
    def spool_dir(self) -> str | None:
        """Where spool files go: the given folder, else this run's own (made on first use)."""
        if self._spool_dir is None and self._spool_folder is not None:
            self._spool_dir = str(self._spool_folder.path)
        return self._spool_dir

    def budget(self, where: str) -> RetryBudget:
        """The retry budget of one blob: shared by its requests, resumes and SAS renewals."""
        return self._policy.budget(f"{where}: download", sleep=self._sleep)

    def fill(self, spool: Spool, url: str, policy: UrlPolicy, budget: RetryBudget) -> None:
        """Write the blob at ``url`` into ``spool``, resuming a broken transfer with Range.

        ``url`` must lie under the manifest's ``rootDirectory`` (``policy``), as written and
        as requests prepares it (which would resolve ``..`` segments).

        Raises:
            SasExpiredError: Storage answered 403 (the SAS is expired or invalid).
            ServiceError: Any other unexpected answer, or the transfer kept failing.
        """
        where = budget.where
        policy.check(url, where)
        policy.check(str(requests.Request("GET", url).prepare().url), where)
        while True:
            received = spool.size
            headers = {"Range": f"bytes={received}-"} if received else {}
            response = send(self._session, "GET", url, budget=budget, headers=headers, stream=True)
            spool.attach(response)
            with response:
                outcome = classify(response.status_code)
                if outcome is Outcome.FORBIDDEN:
                    raise SasExpiredError(f"{where}: blob storage refused the SAS (HTTP 403)")
                if outcome is not Outcome.OK or response.status_code not in {200, 206}:
                    msg = f"{where}: blob storage answered HTTP {response.status_code}"
                    raise ServiceError(msg)
                span = response.headers.get("Content-Range", "")
                resumed = response.status_code == PARTIAL and span.startswith(f"bytes {received}-")
                if received and not resumed:
                    # The server ignored the Range. Lines already read from this blob came
                    # from the same bytes, so starting over cannot change them; but a reader
                    # following the file must not see it shrink, so this is an error.
                    msg = f"{where}: storage ignored a Range request after a dropped connection"
                    raise ServiceError(msg)
                spool.check_version(*_version_of(response), where)
                try:
                    length = response.headers.get("Content-Length")
                    expected = received + int(length) if _is_number(length) else None
                    # read1 hands over bytes as they arrive (a broken connection loses nothing
                    # already received) and leaves them as stored: the gzip is ours to decode
                    # even if storage labels the blob Content-Encoding: gzip.
                    pace = _Pace()
                    while chunk := response.raw.read1(CHUNK_BYTES, decode_content=False):
                        spool.write(chunk)
                        pace.check(len(chunk))
                    if expected is not None and spool.size < expected:
                        msg = f"body ended after {spool.size} of {expected} bytes"
                        raise ConnectionError(msg)
                except READ_ERRORS as err:
                    reason = describe_failure(err)
                    LOGGER.warning(
                        "%s: connection lost after %d bytes (%s); resuming with a Range request",
                        where,
                        spool.size,
                        reason,
                    )
                    try:
                        budget.failed(reason)
                    except TransientHTTPError as exhausted:
                        msg = f"{where} kept breaking off ({exhausted})"
                        raise ServiceError(msg) from None
                    continue
                return


def _version_of(response: requests.Response) -> tuple[str | None, int | None]:
    """The answer's eTag and the blob's total length (a 206's ``Content-Range: bytes a-b/N``)."""
    total = response.headers.get("Content-Length", "")
    if response.status_code == PARTIAL:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return response.headers.get("ETag"), int(total) if _is_number(total) else None


def _is_number(text: str | None) -> TypeGuard[str]:  # ASCII only: str.isdigit takes "²"
    return text is not None and text.isascii() and text.isdigit()


def _differs(old: object, new: object) -> bool:
    return old is not None and new is not None and old != new


class _Pace:
    """Refuses a transfer that trickles: under ``MIN_BYTES_PER_WINDOW`` in a window.

    The read timeout only catches a connection that sends nothing at all; one byte every
    few seconds would keep a download (and the run) going for days.
    """

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._bytes = 0

    def check(self, received: int) -> None:
        self._bytes += received
        now = time.monotonic()
        if now - self._started < PACE_WINDOW_SECONDS:
            return
        if self._bytes < MIN_BYTES_PER_WINDOW:
            msg = f"the transfer stalled: {self._bytes} bytes in {now - self._started:.0f} s"
            raise ConnectionError(msg)
        self._started, self._bytes = now, 0


def download_in_order(
    fetcher: BlobFetcher,
    blobs: Sequence[tuple[str, BlobRef]],
    urls: BlobUrls,
    *,
    max_parallel: int,
) -> Iterator[tuple[int, Spool]]:
    """Download ``blobs`` (where, blob), up to ``max_parallel`` at once; yield in order.

    A spool is yielded as soon as its download has *started*: the caller reads it while it
    grows. Each spool is deleted when the caller asks for the next one, so at most
    ``max_parallel`` blobs sit on disk. Closing the generator cancels pending downloads.
    """
    width = max(1, max_parallel)
    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="blob")
    spools: dict[int, Spool] = {}
    futures: dict[int, Future[None]] = {}
    next_to_submit = 0

    def top_up(limit: int) -> None:
        nonlocal next_to_submit
        while next_to_submit < len(blobs) and next_to_submit < limit:
            where, blob = blobs[next_to_submit]
            spool = Spool(fetcher.spool_dir)
            spools[next_to_submit] = spool
            futures[next_to_submit] = pool.submit(_download, fetcher, spool, urls, blob, where)
            next_to_submit += 1

    try:
        for index in range(len(blobs)):
            top_up(index + width)
            spool = spools.pop(index)
            try:
                yield index, spool
                futures.pop(index).result()  # surface a failure the reader did not see
            finally:
                spool.cancel()  # if the reader stopped early, so does the download
                spool.remove()
    finally:
        for spool in spools.values():
            spool.cancel()
        for future in futures.values():
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for spool in spools.values():
            spool.remove()


def _download(
    fetcher: BlobFetcher, spool: Spool, urls: BlobUrls, blob: BlobRef, where: str
) -> None:
    budget = fetcher.budget(where)  # one budget for every request this blob takes
    try:
        for renewal in range(MAX_SAS_RENEWALS + 1):
            url, policy, generation = urls.current(blob)
            try:
                fetcher.fill(spool, url, policy, budget)  # resumes from what the spool holds
            except SasExpiredError:
                if renewal == MAX_SAS_RENEWALS:
                    raise
                urls.renew(generation)
            else:
                break
    except _CancelledError:
        spool.finish()
    except BaseException as err:
        spool.finish(err)
        raise
    else:
        spool.finish()
