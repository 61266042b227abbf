"""Per-partition bookkeeping kept in Singer state: counts, high-water mark, blob progress.

Everything here is plain JSON inside the dict the SDK keeps for a partition (or, for unbilled
data, for one absolute billing month inside it), so ``--state`` and Meltano round-trip it.

- ``line_count`` / ``etag``: the last export emitted completely.
- ``high_water``: no ordinal at or beyond it has ever been emitted. It is raised (and STATE
  written) *before* the first ordinal beyond it goes out, in steps of ``HIGH_WATER_STEP``,
  so after any crash, retiring ``[new count, max(line_count, high_water))`` covers every key
  a target may hold. When an interrupted run's data changed before the resume, this may
  retire up to one step of keys that were never emitted; such tombstones are harmless rows
  with ``_sdc_deleted_at`` set. Resuming the *same* manifest retires only what was held
  before it began (``progress.retire_to``).
- ``progress``: the manifest being emitted (eTag + blob-list digest), how many of its blobs
  were emitted completely and the next ordinal. Advanced only after a blob's last record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tap_partner_billing.service.manifest import Manifest

LOGGER = logging.getLogger(__name__)
HIGH_WATER_STEP = 1_000


@dataclass
class ResumePoint:
    """Where emission of a manifest starts: blobs already done, and the next ordinal."""

    blobs_done: int = 0
    next_ordinal: int = 0


class Ledger:
    """A view over one partition's (or one unbilled month's) state dict."""

    def __init__(self, state: dict[str, Any], where: str) -> None:
        self.state = state
        self.where = where

    @property
    def line_count(self) -> int:
        """Lines of the last completely emitted export (0 if none)."""
        return int(self.state.get("line_count", 0))

    @property
    def high_water(self) -> int:
        """No ordinal at or beyond this was ever emitted."""
        return max(int(self.state.get("high_water", 0)), self.line_count)

    def is_unchanged(self, manifest: Manifest) -> bool:
        """True when ``manifest`` is the data version emitted completely last time."""
        return (
            "progress" not in self.state
            and bool(manifest.etag)
            and self.state.get("etag") == manifest.etag
            and self.state.get("blob_list") == manifest.blob_list_digest
            # A re-issued invoice names a new InvoiceVersion in its rootDirectory.
            and self.state.get("invoice_version") in (None, manifest.invoice_version)
        )

    def begin(self, manifest: Manifest) -> ResumePoint:
        """Start (or resume) emitting ``manifest``; a different data version starts at 0."""
        progress = self.state.get("progress")
        if (
            isinstance(progress, dict)
            and progress.get("etag") == manifest.etag
            and progress.get("blob_list") == manifest.blob_list_digest
        ):
            point = ResumePoint(int(progress["blobs_done"]), int(progress["next_ordinal"]))
            LOGGER.info(
                "%s: resuming manifest eTag %s at blob %d of %d (ordinal %d)",
                self.where,
                manifest.etag,
                point.blobs_done + 1,
                len(manifest.blobs),
                point.next_ordinal,
            )
            return point
        retire_to = self.high_water
        if isinstance(progress, dict):
            LOGGER.info(
                "%s: data changed since the interrupted run (eTag %s → %s); restarting at 0",
                self.where,
                progress.get("etag"),
                manifest.etag,
            )
            retire_to = max(retire_to, int(progress.get("retire_to", 0)))
        self.state["progress"] = {
            "etag": manifest.etag,
            "blob_list": manifest.blob_list_digest,
            "blobs_done": 0,
            "next_ordinal": 0,
            # Keys a target may hold from *other* data versions. Runs of this same manifest
            # emit the same ordinals, so resuming it does not widen this.
            "retire_to": retire_to,
        }
        return ResumePoint()

    def needs_high_water(self, ordinal: int) -> bool:
        """True when emitting ``ordinal`` first needs a higher mark saved."""
        return ordinal >= self.high_water

    def raise_high_water(self, ordinal: int) -> None:
        """Move the mark past ``ordinal`` in steps, so STATE is written once per step."""
        self.state["high_water"] = (ordinal // HIGH_WATER_STEP + 1) * HIGH_WATER_STEP

    def blob_done(self, blobs_done: int, next_ordinal: int) -> None:
        """Record that the first ``blobs_done`` blobs were emitted completely."""
        progress = self.state["progress"]
        progress["blobs_done"] = blobs_done
        progress["next_ordinal"] = next_ordinal

    def surplus(self, new_count: int) -> range:
        """Ordinals a target may hold beyond the new data: to be retired with tombstones.

        Only what was held before this manifest began counts: the steps by which emitting
        it raised the mark cover ordinals it has just emitted or never reached.
        """
        return range(new_count, int(self.state["progress"].get("retire_to", 0)))

    def retirement(self) -> range:
        """Every ordinal a target may hold for this partition (to retire all of them)."""
        progress = self.state.get("progress")
        held = int(progress.get("retire_to", 0)) if isinstance(progress, dict) else 0
        return range(max(self.high_water, held))

    def complete(self, manifest: Manifest, line_count: int, **extra: Any) -> None:
        """Bookmark ``manifest`` as emitted completely (surplus already retired)."""
        self.state.pop("progress", None)
        self.state.update(
            etag=manifest.etag,
            blob_list=manifest.blob_list_digest,
            manifest_id=manifest.id,
            line_count=line_count,
            high_water=line_count,
            **extra,
        )
