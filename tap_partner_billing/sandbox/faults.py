"""Fault injection and the request log of the sandbox."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass
class Fault:
    """Answer the next ``times`` requests of ``step`` with ``status`` (or drop the body).

    Steps: ``token``, ``export``, ``operation``, ``manifest``, ``blob``.
    ``drop_after_bytes`` (blob only) cuts the connection after that many body bytes instead.
    """

    step: str
    status: int = 503
    times: int = 1
    retry_after: int | None = None
    drop_after_bytes: int | None = None
    corrupt: bool = False  # blob only: serve the bytes with one byte flipped mid-stream
    match: str = ""  # only requests whose path contains this


@dataclass(frozen=True)
class LoggedRequest:
    """One request the sandbox answered (never its query string or credentials)."""

    step: str
    method: str
    path: str
    status: int
    authorized: bool  # an Authorization header was present
    range: str | None = None
    detail: str | None = None  # an export's invoice id or period/currency
    at: float = field(default_factory=time.time)  # when the answer was sent
    operation: str | None = None  # the operation id an export POST started (its 202)

    @property
    def export(self) -> tuple[str, str | None]:
        """An export POST's (dataset/kind, e.g. ``usage/billed``; invoice id or period/currency)."""
        return self.path.split("/billing/", 1)[-1].removesuffix("/export"), self.detail

    @property
    def operation_id(self) -> str:
        """The operation an operation GET (a poll) asked about: the last segment of its path."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class FaultBook:
    """Thread-safe pending faults and request log."""

    faults: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self.faults.append(fault)

    def take(self, step: str, path: str) -> Fault | None:
        """The next fault for this request, consuming one of its ``times``."""
        with self._lock:
            for fault in self.faults:
                if fault.step == step and fault.match in path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def record(self, entry: LoggedRequest) -> None:
        """Append to the request log."""
        with self._lock:
            self.log.append(entry)

    def requests(self, step: str | None = None) -> list[LoggedRequest]:
        """A copy of the log, optionally of one step."""
        with self._lock:
            return [entry for entry in self.log if step is None or entry.step == step]

    def started_exports(self) -> Counter[tuple[str, str | None]]:
        """Export POSTs answered 202, per partition (see :attr:`LoggedRequest.export`)."""
        return Counter(e.export for e in self.requests("export") if e.status == HTTPStatus.ACCEPTED)

    def polls(self) -> Counter[str]:
        """Operation GETs per operation id, whatever their answer."""
        return Counter(e.operation_id for e in self.requests("operation"))
