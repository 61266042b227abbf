"""The asynchronous export: start → poll the operation → manifest. No Singer in here.

Flow (reference §3-§5): ``POST …/export`` answers ``202 Accepted`` with a ``Location`` header
naming the operation; ``GET`` on it answers 200 with a status and, while running, a
``Retry-After`` header; a succeeded operation carries the manifest inline under
``resourceLocation`` or links it with ``resourceLocation@odata.navigationLink``.
"""

from __future__ import annotations

import enum
import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_partner_billing.errors import (
    PERMISSION_HINT,
    ExportFailedError,
    ExportTimeoutError,
    MissingPermissionError,
    OperationGoneError,
    ServiceError,
    TransientHTTPError,
)
from tap_partner_billing.http import (
    Outcome,
    RetryPolicy,
    clamp_wait,
    classify,
    parse_retry_after,
    read_body,
    send,
)
from tap_partner_billing.manifest import Manifest
from tap_partner_billing.redact import redact_text
from tap_partner_billing.urls import CheckedSession, UrlPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

    from tap_partner_billing.http import RetryBudget

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


MAX_ERROR_BODY_CHARS = 300
# The ids a support case asks for: Graph's (request-id; client-request-id is the one the tap
# sent) and Partner Center's (MS-CorrelationId, MS-RequestId).
SUPPORT_ID_HEADERS = ("request-id", "client-request-id", "MS-CorrelationId", "MS-RequestId")


def support_ids(response: requests.Response) -> str:
    """The answer's support ids as ``name value`` pairs (empty when it carries none)."""
    found = [
        f"{header} {response.headers[header][:60]}"
        for header in SUPPORT_ID_HEADERS
        if response.headers.get(header)
    ]
    return redact_text(", ".join(found))


def graph_error(response: requests.Response) -> str:
    """Describe an error answer of Graph or Partner Center: status, code, message, support ids.

    Graph writes ``{"error": {"code", "message"}}``, Partner Center ``{"code",
    "description"}`` (``{"statusCode", "message"}`` when throttling). The body is the
    service's text: it is cut short and redacted before it goes anywhere.
    """
    try:
        body = json.loads(read_body(response, "error answer"))
    except (ValueError, RecursionError, ServiceError):
        body = None
    error = body.get("error", body) if isinstance(body, dict) else None
    code = message = None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message") or error.get("description")
    parts = [f"HTTP {response.status_code}"]
    described = None if message is None else str(message)[:MAX_ERROR_BODY_CHARS]
    if code is not None:
        described = f"{str(code)[:60]}: {described}" if described else f"code {str(code)[:60]}"
    if described:
        parts.append(described)
    if ids := support_ids(response):
        parts.append(ids)
    return redact_text(", ".join(parts))


class ExportClient:
    """Runs exports against Graph with a bearer token; clock and sleep are injected."""

    def __init__(
        self,
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
        self.url_policy = UrlPolicy.for_base(graph_url, "graph_url")
        # The token is attached per request, after the URL passed the policy.
        self._session = CheckedSession(self.url_policy, bearer=token)
        self._graph_url = graph_url.rstrip("/")
        self._renew_token = renew_token
        self._clock = clock
        self._sleep = sleep
        self._interval = poll_interval_seconds
        self._timeout = poll_timeout_seconds
        self._policy = policy or RetryPolicy()

    def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        deadline: float | None = None,
        **kwargs: Any,  # noqa: ANN401
    ) -> requests.Response:
        self.url_policy.check(url, what)  # where it arrived; the session checks it again
        budget = self._policy.budget(what, sleep=self._sleep, clock=self._clock, deadline=deadline)
        response = self._send(method, url, budget, **kwargs)
        if classify(response.status_code) is Outcome.TOKEN_REFUSED and self._renew_token:
            # A token refused before its expiry (revoked, clock skew): one retry with a new one.
            LOGGER.warning("%s: Graph refused the token (HTTP 401); acquiring a new one", what)
            response.close()
            self._renew_token()
            response = self._send(method, url, budget, **kwargs)
        return response

    def _send(
        self,
        method: str,
        url: str,
        budget: RetryBudget,
        **kwargs: Any,  # noqa: ANN401
    ) -> requests.Response:
        headers = {"client-request-id": str(uuid.uuid4())}
        # Streamed, so that read_body can bound what a body may hold.
        return send(
            self._session, method, url, budget=budget, headers=headers, stream=True, **kwargs
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
        response.close()
        return self.url_policy.check(location, f"{request.label}: export answered 202, Location")

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
        self.url_policy.check(operation_url, f"{label}: operation URL")
        while True:
            try:
                response = self._request(
                    "GET", operation_url, what=f"{label}: operation poll", deadline=deadline
                )
            except TransientHTTPError as err:
                if self._clock() < deadline:
                    raise
                msg = f"{err} (poll_timeout_seconds={self._timeout:g}); the next run resumes it"
                raise ExportTimeoutError(msg) from None
            if response.status_code in {404, 410}:
                raise OperationGoneError(f"{label}: operation answered {graph_error(response)}")
            if response.status_code != 200:  # noqa: PLR2004
                raise ServiceError(f"{label}: operation poll answered {graph_error(response)}")
            body = _json_object(response, f"{label}: operation poll")
            operation_id = str(body.get("id") or operation_url.rsplit("/", 1)[-1])[:200]
            status = OperationStatus.parse(body.get("status"))
            said = str(body.get("status"))[:40]  # the service's word, cut short for the log
            LOGGER.debug("%s: operation %s polled: %s", label, operation_id, said)
            if status != last_status:
                LOGGER.info("%s: operation %s is %s", label, operation_id, said)
                last_status = status
            if status is OperationStatus.SUCCEEDED:
                manifest = self._manifest(body, label)
                return ExportResult(operation_id, manifest, operation_url=operation_url)
            if not status.is_waiting:
                return self._ended_without_data(body, operation_id, label)
            # Retry-After is honoured within [1 s, 300 s]: 0 would poll in a tight loop, a
            # billion would never come back.
            asked = parse_retry_after(response.headers.get("Retry-After"))
            wait = clamp_wait(asked, self._interval)
            now = self._clock()
            if now >= deadline:
                msg = (
                    f"{label}: operation {operation_id} still {said} after "
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
        code = str(error.get("code", ""))[:60]
        message = redact_text(str(error.get("message", ""))[:MAX_ERROR_BODY_CHARS])
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
            f"{label}: operation {operation_id} ended with status {str(body.get('status'))[:40]!r}"
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
        return Manifest.parse(_json_object(response, f"{label}: manifest"), where=label)


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 200 answer.

    Raises:
        ServiceError: The body is not a JSON object.
    """
    try:
        body = json.loads(read_body(response, what))
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        msg = f"{what}: the answer is not a JSON object"
        raise ServiceError(msg)
    return body
