"""Every export of a run, started ahead and polled together. No Singer in here.

The streams register the exports they will need (:meth:`ExportScheduler.add`, in the order
they will take them); the scheduler POSTs them ahead, as many at once as Graph accepts (up
to ``max_concurrent_exports``), and polls every operation in flight, each at its own
``Retry-After`` within [1 s, 300 s] and against its own deadline counted from its POST. A
stream takes a partition's result when its turn comes (:meth:`ExportScheduler.result`).

Nothing here blocks but :meth:`~ExportScheduler.result`: :meth:`~ExportScheduler.tick` is
one round of single steps (``post``, ``read``, ``manifest``), driven from the main thread,
between a download's events too; no other thread writes a state dict or stdout (download
threads renew SAS through the same, locked, token provider). A URL goes into its partition's
``pending`` dict (plain JSON in Singer state) when the ``202`` arrives; the caller's
``on_change`` writes STATE right after that step, before any other request or sleep.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tap_partner_billing.dates import utc_now, utc_now_text
from tap_partner_billing.errors import (
    ExportFailedError,
    ExportTimeoutError,
    MissingPermissionError,
    OperationGoneError,
    PartnerBillingError,
    ServiceError,
    TransientHTTPError,
)
from tap_partner_billing.service.export import ExportResult, OperationStatus
from tap_partner_billing.service.export_jobs import (
    ExportSteps,
    Job,
    Phase,
    PostThrottle,
    duration,
    job_key,
    nothing,
    progress_line,
    short_id,
)
from tap_partner_billing.service.export_resume import resume
from tap_partner_billing.service.transport import (
    RetryPolicy,
    Transient,
    clamp_wait,
    parse_retry_after,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable
    from datetime import datetime

    from tap_partner_billing.service.export import ExportRequest, Reading

LOGGER = logging.getLogger(__name__)
# Exports in flight at once, at most: a backfill of two years (about 50 exports) waits about
# five export durations; a service allowing fewer says so with 429, and the tap follows.
DEFAULT_MAX_CONCURRENT_EXPORTS = 10
PROGRESS_SECONDS = 60.0  # a progress line about once a minute of waiting
INITIAL_WINDOW = 2  # exports in flight before any POST was accepted
MAX_QUEUED_AT_SERVICE = 2  # no more POSTs while this many of ours wait notStarted
MIN_SLEEP_SECONDS = 0.05


class ExportScheduler:
    """The run's exports: POSTed ahead, polled together, taken in each stream's order.

    Args:
        exports: The export client (its single steps ``post`` and ``read``).
        clock: Monotonic seconds.
        sleep: Sleeps (a SIGTERM raises out of it).
        interval: ``poll_interval_seconds``: the wait when Graph sends no ``Retry-After``.
        timeout: ``poll_timeout_seconds``: each operation's deadline, from its POST.
        max_concurrent: ``max_concurrent_exports``: the most in flight at once.
        policy: Transient failures of one export's steps in a row before it fails.
        utc_now: The wall clock, for the age of a saved operation (its ``started_at``).
    """

    def __init__(
        self,
        exports: ExportSteps,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        interval: float,
        timeout: float,
        max_concurrent: int,
        policy: RetryPolicy | None = None,
        utc_now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._exports = exports
        self._clock = clock
        self._sleep = sleep
        self._interval = interval
        self._timeout = timeout
        self.max_concurrent = max_concurrent
        self._policy = policy or RetryPolicy()
        self._utc_now = utc_now
        self._jobs: dict[Hashable, Job] = {}
        self.window = min(INITIAL_WINDOW, max_concurrent)
        self._throttle = PostThrottle()
        self._changed = False  # a pending dict changed since the last tick's answer
        self._next_progress: float | None = None
        self.waited_seconds = 0.0  # blocked in result() with nothing else to do
        self.posts = 0
        self.resumed = 0
        self._on_change: Callable[[], None] = nothing
        self.most_in_flight = 0

    # ---- registration ---------------------------------------------------------------
    def add(self, request: ExportRequest, pending: dict[str, Any], slot: str) -> None:
        """Register an export (a no-op if known); a saved URL is resumed (``export_resume``)."""
        key = job_key(request)
        if key in self._jobs:
            return
        job = self._jobs[key] = Job(request, pending, slot)
        self._changed = self._changed or slot in pending  # resumed, or dropped
        error = resume(job, self._exports.url_policy, self._clock(), self._utc_now())
        if error is not None:
            self._fail(job, error)
        self.resumed += bool(job.url)

    # ---- one round of steps ---------------------------------------------------------
    def tick(self, on_change: Callable[[], None]) -> None:
        """Poll the operations due, POST what the window allows; never sleeps.

        ``on_change`` (write STATE) is called after each step that changed a ``pending``
        dict (a URL recorded or dropped), before the next request.

        Raises:
            MissingPermissionError: Graph refused an export for a missing permission.
        """
        self._on_change = on_change
        self._report()  # what add() changed
        while True:
            now = self._clock()
            due = [j for j in self._jobs.values() if j.phase is Phase.RUNNING and j.next_at <= now]
            for job in due:
                self._fetch(job) if job.manifest_link else self._read(job)
                self._report()
            # A new export is read at once (running, more may go); a manifest found, fetched.
            if not self._post(now) and not any(j.manifest_link and j.next_at <= now for j in due):
                return

    def _report(self) -> None:
        if self._changed:
            self._changed = False
            self._on_change()

    def _read(self, job: Job) -> None:
        try:
            reading = self._exports.read(job.url, job.where)
        except OperationGoneError as err:
            self._gone(job, err)
            return
        except ExportFailedError as err:  # terminal: the next run starts a new export
            self._forget_url(job)
            self._ended(job, self._clock(), "failed")
            self._fail(job, err)
            return
        except (ServiceError, TransientHTTPError) as err:
            self._fail(job, err)
            return
        now = self._clock()  # the request may have waited (a token to acquire)
        if isinstance(reading, Transient):
            self._transient(job, now, reading, "operation poll")
        else:
            self._read_answered(job, now, reading)

    def _gone(self, job: Job, err: PartnerBillingError) -> None:
        LOGGER.warning("%s; starting a new export", err)
        self._forget_url(job)
        job.phase, job.ended_at, job.next_at, job.failures = Phase.WAITING, None, self._clock(), 0
        job.manifest_link = ""

    def _fetch(self, job: Job) -> None:
        """Fetch a linked manifest at its export's turn: one attempt."""
        try:
            manifest = self._exports.manifest(job.manifest_link, job.where)
        except OperationGoneError as err:
            self._gone(job, err)
            return
        except (ServiceError, TransientHTTPError) as err:
            self._fail(job, err)
            return
        if isinstance(manifest, Transient):
            self._transient(job, self._clock(), manifest, "manifest request")
            return
        job.manifest_link, job.failures, job.phase = "", 0, Phase.ENDED
        job.result = ExportResult(job.operation_id, manifest, operation_url=job.url)

    def _read_answered(self, job: Job, now: float, reading: Reading) -> None:
        job.failures, job.operation_id = 0, reading.operation_id
        if reading.status is not job.status:
            LOGGER.debug("%s: operation %s is %s", job.where, job.operation_id, reading.said)
            job.status = reading.status
        if reading.manifest_link:  # its manifest is fetched at its turn, a step of its own
            self._ended(job, now, "succeeded")
            job.no_data, job.next_at = None, now
            job.manifest_link = reading.manifest_link if job.wanted else ""
            job.phase = Phase.RUNNING if job.wanted else Phase.ENDED
            return
        result = reading.result
        if result is not None:
            self._ended(job, now, "succeeded" if result.manifest else "no data (5000)")
            job.phase = Phase.ENDED
            job.no_data = None if result.manifest else result.message
            job.result = result if job.wanted else None  # re-read at its turn: a fresh SAS
            return
        deadline = job.posted_at + self._timeout
        if now >= deadline:
            msg = (
                f"{job.where}: operation {job.operation_id} still {reading.said} after "
                f"{now - job.posted_at:.0f} s (poll_timeout_seconds={self._timeout:g}); the "
                "next run resumes polling it"
            )
            self._ended(job, now, "timed out")
            self._fail(job, ExportTimeoutError(msg))
            return
        job.next_at = min(now + clamp_wait(reading.retry_after, self._interval), deadline)

    def _ended(self, job: Job, now: float, how: str) -> None:
        if job.ended_at is None:
            job.ended_at = now
            LOGGER.info(
                "%s: export %s after %s (operation %s)",
                job.where,
                how,
                duration(now - job.posted_at),
                job.operation_id or short_id(job.url),
            )

    def _transient(self, job: Job, now: float, failure: Transient, step: str) -> None:
        """A 429 waits as asked; other transient failures count, with backoff.

        A POSTed export's waits never pass its deadline; a failure at it times it out. One
        that ended (read again at its turn) has no deadline: its failures count.
        """
        deadline = job.posted_at + self._timeout if job.in_flight else None
        if deadline is not None and now >= deadline:
            msg = (
                f"{job.where}: {step} failed ({failure.reason}) at its deadline "
                f"(poll_timeout_seconds={self._timeout:g}); the next run resumes polling it"
            )
            self._ended(job, now, "timed out")
            self._fail(job, ExportTimeoutError(msg))
            return
        asked = parse_retry_after(failure.retry_after)
        if failure.throttled:
            wait = clamp_wait(asked, self._interval)
        else:
            so_far = job.count_failure(now)
            if job.failures >= self._policy.max_attempts:
                msg = f"{job.where}: {step} failed {so_far}: {failure.reason}"
                self._fail(job, TransientHTTPError(msg))
                return
            wait = clamp_wait(asked, self._policy.backoff_seconds(job.failures))
            LOGGER.warning("%s: %s: %s; again in %.0f s", job.where, step, failure.reason, wait)
        job.next_at = now + wait if deadline is None else min(now + wait, deadline)

    def _post(self, now: float) -> int:
        """POST waiting exports, the one a stream waits for first, while the window allows.

        Returns:
            How many were accepted.
        """
        accepted = 0
        if now < self._throttle.post_after:
            return accepted
        waiting = [j for j in self._jobs.values() if j.phase is Phase.WAITING]
        waiting.sort(key=lambda j: not j.wanted)  # stable: otherwise in registration order
        for job in waiting:
            in_flight = [j for j in self._jobs.values() if j.in_flight]
            queued = sum(j.status is OperationStatus.NOT_STARTED for j in in_flight)
            # Grow only while Graph runs all it accepted: not while some wait notStarted (a
            # service that queues), nor before the last POSTed was seen running.
            if len(in_flight) >= self.window and all(
                j.status is OperationStatus.RUNNING for j in in_flight
            ):
                self.window = min(self.max_concurrent, len(in_flight) + 1)
            if len(in_flight) >= self.window or queued >= MAX_QUEUED_AT_SERVICE:
                break
            if job.next_at > now:
                continue
            posted = self._post_one(job, now, len(in_flight))
            self._report()
            if not posted:
                break
            accepted += 1
        return accepted

    def _post_one(self, job: Job, now: float, in_flight: int) -> bool:
        """POST one export; False when no other POST should follow now."""
        try:
            answer = self._exports.post(job.request)
        except MissingPermissionError:
            raise  # every export would answer the same
        except ServiceError as err:
            self._fail(job, err)
            return True
        now = self._clock()  # the request may have waited (a token to acquire)
        if isinstance(answer, Transient):
            if answer.throttled:  # back-pressure, not a failure: no budget is spent
                self.window = max(1, in_flight)
                wait = clamp_wait(parse_retry_after(answer.retry_after), self._interval)
                if (refused := self._throttle.refused(now, wait, in_flight)) >= self._timeout:
                    msg = (
                        f"{job.where}: Graph refused export requests (429) for {refused:.0f} s "
                        f"with none of ours running (poll_timeout_seconds={self._timeout:g})"
                    )
                    self._fail(job, ExportTimeoutError(msg))
            else:
                self._transient(job, now, answer, "export request")
            return False
        self._throttle.since = None
        self.posts += 1
        job.url, job.phase, job.status = answer, Phase.RUNNING, None
        job.posted_at = job.next_at = now
        job.failures, job.ended_at = 0, None
        job.pending[job.slot] = {"operation_url": answer, "started_at": utc_now_text()}
        self._changed = True
        self.most_in_flight = max(self.most_in_flight, in_flight + 1)
        LOGGER.info(
            "%s: export started, operation %s (%d in flight)",
            job.where,
            short_id(answer),
            in_flight + 1,
        )
        return True

    def _fail(self, job: Job, err: PartnerBillingError) -> None:
        job.phase, job.error, job.result = Phase.FAILED, err, None

    def _forget_url(self, job: Job) -> None:
        if job.pending.pop(job.slot, None) is not None:
            self._changed = True
        job.url = ""

    # ---- a stream's turn ------------------------------------------------------------
    def result(self, request: ExportRequest, on_change: Callable[[], None]) -> ExportResult:
        """Wait for the export ``key`` (driving all of them), then hand over its result.

        A succeeded export is read again now, for a manifest whose SAS is fresh; one whose
        operation is gone by then is exported again. ``on_change`` writes STATE: it is called
        whenever a ``pending`` dict changed, before the next sleep.

        Raises:
            PartnerBillingError: The export's own failure (timeout, failed operation, …).
        """
        job = self._jobs[job_key(request)]
        if job.phase is Phase.TAKEN:
            msg = f"{job.where}: its export was taken already (the partition asked twice)"
            raise PartnerBillingError(msg)
        job.wanted = True
        if job.phase is Phase.ENDED and job.no_data is None and job.result is None:
            job.phase, job.next_at = Phase.RUNNING, self._clock()  # a fresh manifest
        waited_from = self._clock()
        try:
            while True:
                self.tick(on_change)
                if job.phase in {Phase.ENDED, Phase.FAILED}:
                    return self._take(job)
                self._progress(job)
                self._sleep_until_due()
        finally:
            job.wanted = False
            self.waited_seconds += self._clock() - waited_from

    def _take(self, job: Job) -> ExportResult:
        result, error = job.result, job.error
        job.phase, job.result, job.error = Phase.TAKEN, None, None
        if error is not None:
            raise error
        return result or ExportResult(job.operation_id, None, job.no_data or "")

    def _sleep_until_due(self) -> None:
        now = self._clock()
        due = [j.next_at for j in self._jobs.values() if j.phase is Phase.RUNNING]
        waiting = [j for j in self._jobs.values() if j.phase is Phase.WAITING]
        in_flight = sum(j.in_flight for j in self._jobs.values())
        if waiting and in_flight < self.window:
            due.append(max(self._throttle.post_after, min(j.next_at for j in waiting)))
        if self._next_progress is not None:
            due.append(self._next_progress)
        wake = min(due, default=now + self._interval)
        self._sleep(max(wake - now, MIN_SLEEP_SECONDS))

    def _progress(self, job: Job) -> None:
        """A line about once a minute of waiting: what runs, what ended, what waits."""
        now = self._clock()
        if self._next_progress is None or self._next_progress < now - PROGRESS_SECONDS:
            self._next_progress = now + PROGRESS_SECONDS
            return
        if now < self._next_progress:
            return
        self._next_progress = now + PROGRESS_SECONDS
        LOGGER.info("%s", progress_line(self._jobs.values(), now, job.where))

    def summary_line(self) -> str:
        """The run summary's line about the exports and the time spent only waiting."""
        return (
            f"Run summary exports: {self.posts} started, {self.resumed} resumed, at most "
            f"{self.most_in_flight} in flight at once; {self.waited_seconds:.1f} s waiting with "
            "nothing to download"
        )
