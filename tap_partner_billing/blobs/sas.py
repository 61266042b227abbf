"""The SAS URLs of one manifest's blobs, and their renewal when storage refuses the SAS.

Nothing here sees a Graph token: a fresh SAS comes through a callable the Graph side provides.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from tap_partner_billing.errors import SasExpiredError, ServiceError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_partner_billing.service.manifest import BlobRef, Manifest
    from tap_partner_billing.service.url_policy import UrlPolicy

LOGGER = logging.getLogger(__name__)


class BlobUrls:
    """The SAS URLs of one manifest's blobs, renewed when storage refuses the SAS (403).

    A SAS lives about an hour; a long partition can outlast it. ``renew`` re-reads the
    operation (through a callable that the Graph side provides: nothing here sees a token),
    which mints a fresh SAS for the same data.
    """

    def __init__(
        self, manifest: Manifest, renew: Callable[[], Manifest] | None, where: str
    ) -> None:
        self._manifest = manifest
        self._renew = renew
        self._where = where
        self._lock = threading.Lock()
        self.generation = 0

    def current(self, blob: BlobRef) -> tuple[str, UrlPolicy, int]:
        """The blob's URL with the newest SAS, where it may be, and that SAS's generation."""
        with self._lock:
            manifest = self._manifest
            return manifest.blob_url(blob), manifest.url_policy, self.generation

    def renew(self, seen: int) -> None:
        """Get a fresh SAS unless another download already did since ``seen``.

        Raises:
            SasExpiredError: No way to renew, or the fresh manifest has no SAS either.
            ServiceError: The fresh manifest describes other data (another eTag or blob list).
        """
        with self._lock:
            if self.generation != seen:
                return
            if self._renew is None:
                raise SasExpiredError(f"{self._where}: blob storage refused the SAS (HTTP 403)")
            fresh = self._renew()
            old = self._manifest
            if (fresh.etag, fresh.blob_list_digest) != (old.etag, old.blob_list_digest):
                msg = (
                    f"{self._where}: the data changed while downloading (eTag {old.etag} → "
                    f"{fresh.etag}); the next run restarts this partition"
                )
                raise ServiceError(msg)
            LOGGER.info(
                "%s: storage refused the SAS; a fresh one came with the operation", self._where
            )
            self._manifest = fresh
            self.generation += 1
