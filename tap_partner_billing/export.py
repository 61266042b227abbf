"""The asynchronous export: start → poll the operation → manifest. No Singer in here.

Flow (reference §3-§5): ``POST …/export`` answers ``202 Accepted`` with a ``Location`` header
naming the operation; ``GET`` on it answers 200 with a status and, while running, a
``Retry-After`` header; a succeeded operation carries the manifest inline under
``resourceLocation`` or links it with ``resourceLocation@odata.navigationLink``.
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tap_partner_billing.errors import (
    PERMISSION_HINT,
    ExportFailedError,
    ExportTimeoutError,
    MissingPermissionError,
    OperationGoneError,
    ServiceError,
)
from tap_partner_billing.http import RetryPolicy, parse_retry_after, send
from tap_partner_billing.manifest import Manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

LOGGER = logging.getLogger(__name__)
BILLING_PATH = "/reports/partners/billing"
NO_DATA_ERROR_CODE = "5000"  # the only documented failed-operation code: "No data available"
HEARTBEAT_SECONDS = 60.0


class OperationStatus(enum.Enum):
    """Operation statuses, parsed case-insensitively (reference §4.1)."""

    NOT_STARTED = "notstarted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: object) -> OperationStatus:
        """Map the service's status string; the doc table's ``completed`` means succeeded."""
        text = str(raw).lower()
        if text == "completed":
            return cls.SUCCEEDED
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN

    @property
    def is_waiting(self) -> bool:
        """Still queued or running."""
        return self in {OperationStatus.NOT_STARTED, OperationStatus.RUNNING}


@dataclass(frozen=True)
class ExportRequest:
    """One export of one partition: the action path, its body and a label for messages."""

    action: str  # e.g. "usage/billed"
    body: dict[str, str]
    label: str  # e.g. "billed_usage invoice G000000001 (full)"


@dataclass(frozen=True)
class ExportResult:
    """How an export ended: a manifest, or no data (Graph error code 5000)."""

    operation_id: str
    manifest: Manifest | None
    message: str = ""
    operation_url: str = ""  # re-read it for a fresh SAS


def same_origin(url: str, base_url: str) -> bool:
    """True when ``url`` is https and on the scheme, host and port of ``base_url``."""
    a, b = urlsplit(url), urlsplit(base_url)
    return (
        a.scheme == "https"
        and b.scheme == "https"
        and (a.hostname or "").lower() == (b.hostname or "").lower()
        and (a.port or 443) == (b.port or 443)
    )


def graph_error(response: requests.Response) -> str:
    """Describe a Graph error response: status, error code and message, request ids."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    parts = [f"HTTP {response.status_code}"]
    if code or message:
        parts.append(f"{code}: {message}")
    for header in ("request-id", "client-request-id"):
        if response.headers.get(header):
            parts.append(f"{header} {response.headers[header]}")
    return ", ".join(parts)


class ExportClient:
    """Runs exports against Graph with a bearer token; clock and sleep are injected."""

    def __init__(
        self,
        session: requests.Session,
        *,
        graph_url: str,
        token: Callable[[], str],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        poll_interval_seconds: float,
        poll_timeout_seconds: float,
        policy: RetryPolicy | None = None,
        renew_token: Callable[[], None] | None = None,
    ) -> None:
        self._session = session
        self._graph_url = graph_url.rstrip("/")
        self._token = token
        self._renew_token = renew_token
        self._clock = clock
        self._sleep = sleep
        self._interval = poll_interval_seconds
        self._timeout = poll_timeout_seconds
        self._policy = policy or RetryPolicy()

    def _request(self, method: str, url: str, *, what: str, **kwargs: Any) -> requests.Response:  # noqa: ANN401
        if not same_origin(url, self._graph_url):
            # Checked before the token is attached: a bearer token only ever goes to graph_url.
            where = url.split("?", maxsplit=1)[0]
            msg = f"{what}: refusing {where!r}, which is not on the origin of graph_url"
            raise ServiceError(msg)
        response = self._send(method, url, what, **kwargs)
        if response.status_code == 401 and self._renew_token is not None:  # noqa: PLR2004
            # A token refused before its expiry (revoked, clock skew): one retry with a new one.
            LOGGER.warning("%s: Graph refused the token (HTTP 401); acquiring a new one", what)
            response.close()
            self._renew_token()
            response = self._send(method, url, what, **kwargs)
        return response

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:  # noqa: ANN401
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "client-request-id": str(uuid.uuid4()),
        }
        return send(
            self._session,
            method,
            url,
            what=what,
            sleep=self._sleep,
            policy=self._policy,
            headers=headers,
            **kwargs,
        )

    def start(self, request: ExportRequest) -> str:
        """POST the export and return the operation URL from ``Location``.

        Raises:
            ServiceError: On any answer but 202 with a same-origin https ``Location``.
        """
        url = f"{self._graph_url}{BILLING_PATH}/{request.action}/export"
        response = self._request(
            "POST", url, what=f"{request.label}: export request", json=request.body
        )
        if response.status_code == 403:  # noqa: PLR2004 - Graph: the app lacks its permission
            msg = f"{request.label}: export request answered {graph_error(response)}; "
            raise MissingPermissionError(msg + PERMISSION_HINT)
        if response.status_code != 202:  # noqa: PLR2004 - the documented answer
            msg = f"{request.label}: export request answered {graph_error(response)}"
            raise ServiceError(msg)
        location = response.headers.get("Location", "")
        if not same_origin(location, self._graph_url):
            msg = (
                f"{request.label}: export answered 202 with Location {location.split('?')[0]!r},"
                " which is not an https URL on the origin of graph_url; refusing to follow it"
            )
            raise ServiceError(msg)
        return location

    def poll(self, operation_url: str, label: str) -> ExportResult:
        """Poll until the operation ends or the deadline passes (``label`` names it in logs).

        Raises:
            ExportFailedError: Failed (other than 5000), skipped or unknown status.
            ExportTimeoutError: The deadline passed; the operation may still finish later.
            OperationGoneError: The operation answered 404 or 410.
        """
        started = self._clock()
        deadline = started + self._timeout
        last_status: OperationStatus | None = None
        while True:
            response = self._request("GET", operation_url, what=f"{label}: operation poll")
            if response.status_code in {404, 410}:
                raise OperationGoneError(f"{label}: operation answered {graph_error(response)}")
            if response.status_code != 200:  # noqa: PLR2004
                raise ServiceError(f"{label}: operation poll answered {graph_error(response)}")
            body = response.json()
            operation_id = str(body.get("id") or operation_url.rsplit("/", 1)[-1])
            status = OperationStatus.parse(body.get("status"))
            LOGGER.debug("%s: operation %s polled: %s", label, operation_id, body.get("status"))
            if status != last_status:
                LOGGER.info("%s: operation %s is %s", label, operation_id, body.get("status"))
                last_status = status
            if status is OperationStatus.SUCCEEDED:
                manifest = self._manifest(body, label)
                return ExportResult(operation_id, manifest, operation_url=operation_url)
            if not status.is_waiting:
                return self._ended_without_data(body, operation_id, label)
            wait = parse_retry_after(response.headers.get("Retry-After"))
            wait = self._interval if wait is None else wait
            now = self._clock()
            if now >= deadline:
                msg = (
                    f"{label}: operation {operation_id} still {body.get('status')} after "
                    f"{now - started:.0f} s (poll_timeout_seconds={self._timeout:g}); the next "
                    "run resumes polling it"
                )
                raise ExportTimeoutError(msg)
            self._wait(min(wait, deadline - now), label, operation_id, status, started)

    def _wait(
        self, seconds: float, label: str, operation_id: str, status: OperationStatus, started: float
    ) -> None:
        """Sleep, logging a heartbeat at least every minute of a long wait."""
        remaining = seconds
        while True:
            if seconds >= HEARTBEAT_SECONDS / 2:
                LOGGER.info(
                    "%s: waiting for operation %s (%s, %.0f s elapsed, next poll in %.0f s)",
                    label,
                    operation_id,
                    status.name.lower(),
                    self._clock() - started,
                    remaining,
                )
            chunk = min(remaining, HEARTBEAT_SECONDS)
            self._sleep(chunk)
            remaining -= chunk
            if remaining <= 0:
                return

    def _ended_without_data(
        self, body: dict[str, Any], operation_id: str, label: str
    ) -> ExportResult:
        raw_error = body.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        if (
            OperationStatus.parse(body.get("status")) is OperationStatus.FAILED
            and code == NO_DATA_ERROR_CODE
        ):
            LOGGER.warning(
                "%s: operation %s failed with code %s (%s): no data for this partition yet",
                label,
                operation_id,
                code,
                message,
            )
            return ExportResult(operation_id, None, message)
        msg = (
            f"{label}: operation {operation_id} ended with status {body.get('status')!r}"
            f"; Graph error {code or '-'}: {message or '-'}"
        )
        raise ExportFailedError(msg)

    def _manifest(self, body: dict[str, Any], label: str) -> Manifest:
        inline = body.get("resourceLocation")
        if isinstance(inline, dict):
            return Manifest.parse(inline, where=label)
        link = body.get("resourceLocation@odata.navigationLink") or (
            inline if isinstance(inline, str) else None
        )
        if not link:
            msg = f"{label}: succeeded operation {body.get('id')} carries no manifest"
            raise ServiceError(msg)
        response = self._request("GET", str(link), what=f"{label}: manifest request")
        if response.status_code in {404, 410}:
            raise OperationGoneError(f"{label}: manifest answered {graph_error(response)}")
        if response.status_code != 200:  # noqa: PLR2004
            raise ServiceError(f"{label}: manifest request answered {graph_error(response)}")
        return Manifest.parse(response.json(), where=label)
