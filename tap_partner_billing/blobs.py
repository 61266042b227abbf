"""Blob download and gzip JSON-lines decoding. Never sees a Graph token.

Blobs are fetched with a plain session (no ``Authorization`` header: the SAS in the URL is the
credential) into temporary files, several at once, while the caller decodes earlier ones in
name order. Spooling to disk keeps memory flat whatever the blob size, and lets a dropped
connection resume with an HTTP ``Range`` request instead of re-reading the blob.
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import requests
import urllib3

from tap_partner_billing.errors import BlobDataError, SasExpiredError, ServiceError
from tap_partner_billing.http import RetryPolicy, send
from tap_partner_billing.redact import redact_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

LOGGER = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20

# JSON numbers with a fraction or exponent are handed to Decimal as their exact text;
# integers are already exact as int. Nothing ever passes through float.
_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=Decimal)


def new_blob_session() -> requests.Session:
    """A session for blob storage: no auth, and no credentials picked up from ``.netrc``."""
    session = requests.Session()
    session.auth = lambda request: request  # overrides netrc lookup; adds nothing
    return session


class BlobFetcher:
    """Downloads one blob to a temporary file, resuming a dropped connection with ``Range``."""

    def __init__(
        self,
        session: requests.Session,
        *,
        sleep: Callable[[float], None],
        policy: RetryPolicy | None = None,
        spool_dir: str | None = None,
    ) -> None:
        self._session = session
        self._sleep = sleep
        self._policy = policy or RetryPolicy()
        self._spool_dir = spool_dir

    def download(self, url: str, label: str) -> Path:
        """Fetch ``url`` completely into a temporary file and return its path.

        Raises:
            SasExpiredError: Storage answered 403 (the SAS is expired or invalid).
            ServiceError: Any other unexpected answer, or the transfer kept failing.
        """
        fd, name = tempfile.mkstemp(
            prefix="partner-billing-", suffix=".json.gz", dir=self._spool_dir
        )
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                self._fill(out, url, label)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _fill(self, out: Any, url: str, label: str) -> None:  # noqa: ANN401 - a binary file
        received = 0
        for attempt in range(1, self._policy.max_attempts + 1):
            headers = {"Range": f"bytes={received}-"} if received else {}
            response = send(
                self._session,
                "GET",
                url,
                what=f"{label}: download",
                sleep=self._sleep,
                policy=self._policy,
                headers=headers,
                stream=True,
            )
            with response:
                if response.status_code == 403:  # noqa: PLR2004
                    raise SasExpiredError(f"{label}: blob storage refused the SAS (HTTP 403)")
                if response.status_code not in {200, 206}:
                    msg = f"{label}: blob storage answered HTTP {response.status_code}"
                    raise ServiceError(msg)
                resumed_here = response.headers.get("Content-Range", "").startswith(
                    f"bytes {received}-"
                )
                if received and not (response.status_code == 206 and resumed_here):  # noqa: PLR2004
                    out.seek(0)  # the server ignored the Range: start over
                    out.truncate()
                    received = 0
                try:
                    # read1 hands over bytes as they arrive (so a broken connection loses
                    # nothing already received) and leaves them as stored: the gzip is ours
                    # to decode even if storage labels the blob Content-Encoding: gzip.
                    length = response.headers.get("Content-Length")
                    expected = received + int(length) if length and length.isdigit() else None
                    while chunk := response.raw.read1(CHUNK_BYTES, decode_content=False):
                        out.write(chunk)
                        received += len(chunk)
                    if expected is not None and received < expected:
                        msg = f"body ended after {received} of {expected} bytes"
                        raise ConnectionError(msg)  # noqa: TRY301 - handled just below
                except (
                    urllib3.exceptions.HTTPError,
                    requests.RequestException,
                    ConnectionError,
                    TimeoutError,
                ) as err:
                    reason = redact_text(f"{type(err).__name__}: {err}")
                    if attempt == self._policy.max_attempts:
                        msg = f"{label}: download kept breaking off ({reason})"
                        raise ServiceError(msg) from None
                    LOGGER.warning(
                        "%s: connection lost after %d bytes (%s); resuming with a Range request",
                        label,
                        received,
                        reason,
                    )
                    self._sleep(self._policy.backoff_seconds(attempt))
                    continue
                return


def iter_json_lines(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each line of a gzip JSON-lines file (1-based).

    Raises:
        BlobDataError: Corrupt or truncated gzip, a line that is not JSON, or not an object.
    """
    line_number = 0
    try:
        with gzip.open(path, "rb") as lines:
            for raw in lines:
                line_number += 1
                try:
                    value = _DECODER.decode(raw)
                except msgspec.DecodeError as err:
                    msg = f"{label}, line {line_number}: not valid JSON ({err})"
                    raise BlobDataError(msg) from None
                if not isinstance(value, dict):
                    msg = (
                        f"{label}, line {line_number}: a {type(value).__name__}, not a JSON object"
                    )
                    raise BlobDataError(msg)
                yield line_number, value
    except (OSError, EOFError, zlib.error) as err:
        msg = f"{label}: gzip data is corrupt or truncated after line {line_number} ({err})"
        raise BlobDataError(msg) from None


def _download(fetcher: BlobFetcher, make_url: Callable[[], str], label: str) -> Path:
    # The URL is made in the worker, right before the request, from the current SAS.
    return fetcher.download(make_url(), label)


def download_in_order(
    fetcher: BlobFetcher,
    jobs: Sequence[tuple[str, Callable[[], str]]],
    *,
    max_parallel: int,
) -> Iterator[tuple[int, Path]]:
    """Download ``jobs`` (label, URL maker) with up to ``max_parallel`` at once; yield in order.

    Each yielded file is deleted as soon as the caller asks for the next one, so at most
    ``max_parallel`` + 1 blobs sit on disk. Closing the generator cancels pending downloads.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="blob")
    pending: dict[int, Future[Path]] = {}
    next_to_submit = 0

    def top_up() -> None:
        nonlocal next_to_submit
        while next_to_submit < len(jobs) and len(pending) < max(1, max_parallel):
            label, make_url = jobs[next_to_submit]
            pending[next_to_submit] = pool.submit(_download, fetcher, make_url, label)
            next_to_submit += 1

    try:
        for index in range(len(jobs)):
            top_up()
            path = pending.pop(index).result()
            top_up()
            try:
                yield index, path
            finally:
                path.unlink(missing_ok=True)
    finally:
        for future in pending.values():
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for future in pending.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().unlink(missing_ok=True)
