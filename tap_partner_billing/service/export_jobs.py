"""What the scheduler keeps per export, the steps it drives, its progress line. No Singer."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tap_partner_billing.service.export import OperationStatus

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable

    from tap_partner_billing.errors import PartnerBillingError
    from tap_partner_billing.service.export import ExportRequest, ExportResult, Reading
    from tap_partner_billing.service.manifest import Manifest
    from tap_partner_billing.service.transport import Transient
    from tap_partner_billing.service.url_policy import UrlPolicy

LOGGER = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where one export is."""

    WAITING = "waiting to start"  # not POSTed yet, or to be POSTed again
    RUNNING = "running"  # POSTed (or resumed): polled until it ends
    ENDED = "ended"  # succeeded, or no data (5000): ready for its turn
    FAILED = "failed"  # the error is raised at its turn
    TAKEN = "taken"  # its stream took the result


@dataclass(eq=False)
class Job:
    """One partition's export; small: a URL, times and a status word, no manifest kept."""

    request: ExportRequest
    pending: dict[str, Any]  # the partition's pending operations, saved in Singer state
    slot: str  # this export's key in ``pending``
    phase: Phase = Phase.WAITING
    url: str = ""
    posted_at: float = 0.0  # clock of its POST (a resumed one's: from its ``started_at``)
    next_at: float = 0.0  # when its next step is due
    ended_at: float | None = None
    operation_id: str = ""
    status: OperationStatus | None = None
    failures: int = 0  # transient failures in a row
    failing_since: float = 0.0  # clock of the first of them
    no_data: str | None = None  # the 5000 message
    result: ExportResult | None = None  # held only while its stream waits for it
    error: PartnerBillingError | None = None
    wanted: bool = False  # its stream waits for it now
    manifest_link: str = ""  # succeeded, its stream waits: the manifest to fetch

    @property
    def where(self) -> str:
        """Dataset and partition, for the log."""
        return self.request.where

    @property
    def in_flight(self) -> bool:
        """POSTed and not seen ending yet."""
        return self.phase is Phase.RUNNING and self.ended_at is None

    def count_failure(self, now: float) -> str:
        """Count a transient failure in a row: how many, over how long ("6 times in 31 s")."""
        if self.failures == 0:
            self.failing_since = now
        self.failures += 1
        return f"{self.failures} times in {now - self.failing_since:.0f} s"


@dataclass
class PostThrottle:
    """Graph's 429s on our POSTs: when to POST again, how long none of ours ran meanwhile."""

    post_after: float = 0.0  # no POST before this
    since: float | None = None  # refused since then (none of ours running since)

    def refused(self, now: float, wait: float, in_flight: int) -> float:
        """Note a 429 that asked to ``wait``: the seconds refused with none of ours running."""
        first = self.since is None
        self.post_after = now + wait
        if first or in_flight:
            self.since = now
        LOGGER.log(
            logging.INFO if first else logging.DEBUG,
            "Graph throttles export requests (HTTP 429) with %d running; asking again in %.0f s",
            in_flight,
            wait,
        )
        return 0.0 if in_flight or self.since is None else now - self.since


def duration(seconds: float) -> str:
    """``75.2`` → ``1 min 15 s``."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def short_id(url: str) -> str:
    """The operation id at the end of an operation URL."""
    return url.rstrip("/").rsplit("/", 1)[-1][:200]


def job_key(request: ExportRequest) -> Hashable:
    """One export of a run: its action and body."""
    return (request.action, tuple(sorted(request.body.items())))


def progress_line(jobs: Iterable[Job], now: float, waiting_for: str) -> str:
    """Exports running (queued by Graph), finished, waiting to start; the longest's time."""
    jobs = list(jobs)
    running = [j for j in jobs if j.in_flight]
    queued = sum(j.status is OperationStatus.NOT_STARTED for j in running)
    finished = sum(j.phase in {Phase.ENDED, Phase.TAKEN, Phase.FAILED} for j in jobs)
    waiting = sum(j.phase is Phase.WAITING for j in jobs)
    longest = max((now - j.posted_at for j in running), default=0.0)
    return (
        f"Exports: {len(running)} running ({queued} not started by Graph yet), {finished} "
        f"finished, {waiting} waiting to start; the longest has run {duration(longest)}; "
        f"waiting for {waiting_for}"
    )


class ExportSteps(Protocol):
    """The single steps the scheduler drives (``export.ExportClient``)."""

    url_policy: UrlPolicy

    def post(self, request: ExportRequest) -> str | Transient:
        """POST one export: its operation URL, or a transient failure."""

    def read(self, operation_url: str, where: str) -> Reading | Transient:
        """Read one operation once."""

    def manifest(self, link: str, where: str) -> Manifest | Transient:
        """Fetch a succeeded operation's linked manifest once."""


def nothing() -> None:
    """No STATE to write (before a caller said how)."""
