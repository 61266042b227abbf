"""The sandbox at the service's time scale: how long each export runs, and how many at once.

Without ``export_seconds`` (the default) an operation succeeds after ``polls_before_success``
polls, however fast they come: quick tests. With it, every export runs that many seconds of
wall time from the moment it starts, polled or not; until then its operation answers
``notStarted`` (waiting for a slot) or ``running``, with ``Retry-After``. Failed exports (5000,
planted error codes) take the same time before they answer ``failed``.

``max_running_exports`` caps the exports running at once. When a POST finds every slot busy:

- ``when_busy="throttle"``: the POST is answered ``429`` with ``Retry-After`` (by default the
  seconds until the first running export ends) and no operation is created;
- ``when_busy="queue"``: the POST is accepted (``202``) and its operation stays ``notStarted``
  until a slot frees; queued exports start in the order they were posted, each at the moment
  an earlier one ended (not when someone next asks).

All of it is computed from the clock under one lock, so concurrent POSTs and polls from any
number of server threads see one consistent schedule.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_partner_billing.sandbox.config import SandboxConfig


@dataclass
class ExportRun:
    """The schedule of one operation (epoch seconds; while queued, no start and no end)."""

    operation_id: str
    posted: float
    started: float | None = None
    ends: float = math.inf


class ExportPace:
    """Start times, end times and the running-export cap of the sandbox's operations."""

    def __init__(self, config: Callable[[], SandboxConfig], clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._runs: dict[str, ExportRun] = {}
        self._queue: list[ExportRun] = []  # posted, not started, in posting order
        self._started: list[ExportRun] = []  # started, possibly still occupying a slot

    @property
    def timed(self) -> bool:
        """Whether exports run on the wall clock (``export_seconds`` is set)."""
        return self._config().export_seconds is not None

    def admit(self, operation_id: str) -> int | None:
        """Register a POST: None when accepted, else the ``Retry-After`` of a ``429``."""
        config = self._config()
        seconds, cap = config.export_seconds, config.max_running_exports
        with self._lock:
            now = self._clock()
            self._advance(now)
            if seconds is None:
                return None
            run = ExportRun(operation_id, now)
            if cap is not None and config.when_busy == "throttle":
                running = [r for r in self._started if r.ends > now]
                if len(running) >= cap:
                    configured = config.throttle_retry_after_seconds
                    if configured is not None:
                        return configured
                    return max(1, math.ceil(min(r.ends for r in running) - now))
            self._runs[operation_id] = run
            self._queue.append(run)
            self._advance(now)
            return None

    def phase(self, operation_id: str, polls: int) -> str:
        """``notStarted``, ``running`` or ``done``, at the operation's ``polls``-th poll."""
        if not self.timed:
            if polls > self._config().polls_before_success:
                return "done"
            return "notStarted" if polls == 1 else "running"
        with self._lock:
            now = self._clock()
            self._advance(now)
            run = self._runs.get(operation_id)
            if run is None:
                return "done"
            if run.started is None:
                return "notStarted"
            return "running" if run.ends > now else "done"

    def timeline(self) -> list[ExportRun]:
        """A copy of every timed operation's schedule, in posting order."""
        with self._lock:
            self._advance(self._clock())
            return [replace(run) for run in self._runs.values()]

    def _advance(self, now: float) -> None:
        """Start queued exports at the moments slots freed, up to ``now``."""
        config = self._config()
        seconds, cap = config.export_seconds, config.max_running_exports
        while self._queue:
            head = self._queue[0]
            # A run that ended before the head was posted never competes with it or any later one.
            self._started = [r for r in self._started if r.ends > head.posted]
            start: float | None = head.posted
            if cap is not None and len(self._started) >= cap:
                # Busy when posted: it starts when enough of the running ones have ended.
                ends = sorted(r.ends for r in self._started)
                start = ends[len(ends) - cap]
            if start is None or start > now:
                return
            self._queue.pop(0)
            head.started, head.ends = start, start + (seconds or 0.0)
            self._started.append(head)
