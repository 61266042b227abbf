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
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from tap_partner_billing.errors import (
    PERMISSION_HINT,
    ExportFailedError,
    MissingPermissionError,
    OperationGoneError,
    ServiceError,
)
from tap_partner_billing.redact import redact_text
from tap_partner_billing.service.manifest import Manifest
from tap_partner_billing.service.responses import MAX_ERROR_BODY_CHARS, read_body, service_error
from tap_partner_billing.service.transport import (
    Outcome,
    RetryPolicy,
    Transient,
    attempt,
    classify,
    parse_retry_after,
)
from tap_partner_billing.service.url_policy import CheckedSession, UrlPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests


LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
BILLING_PATH = "/reports/partners/billing"
NO_DATA_ERROR_CODE = "5000"  # the only documented failed-operation code: "No data available"


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
    """One export of one partition: the action path, its body, and where it is (for messages)."""

    action: str  # e.g. "usage/billed"
    body: dict[str, str]
    where: str  # e.g. "billed_usage invoice G000000001 (full)"


@dataclass(frozen=True)
class ExportResult:
    """How an export ended: a manifest, or no data (Graph error code 5000)."""

    operation_id: str
    manifest: Manifest | None
    message: str = ""
    operation_url: str = ""  # re-read it for a fresh SAS


@dataclass(frozen=True)
class Reading:
    """One read of an operation: still waiting (with the wait it asks for), or ended."""

    operation_id: str
    status: OperationStatus
    said: str  # the service's word for the status, cut short for the log
    retry_after: float | None = None  # seconds, as the service asked (not clamped)
    result: ExportResult | None = None  # once it ended: a manifest, or no data (5000)
    manifest_link: str = ""  # succeeded, its manifest behind this link (not fetched yet)


MAX_LOCATION_CHARS = 2048  # an operation URL saved in Singer state


class ExportClient:
    """Single steps of exports against Graph (``post``, ``read``); clock and sleep injected.

    ``scheduler.ExportScheduler`` drives the steps of a run's exports; only a retry budget's
    backoff (a manifest, a re-read) sleeps in here.
    """

    def __init__(
        self,
        *,
        graph_url: str,
        token: Callable[[], str],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
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
        self._policy = policy or RetryPolicy()

    def _answer(
        self,
        method: str,
        url: str,
        *,
        where: str,
        **kwargs: Any,
    ) -> requests.Response | Transient:
        """One attempt (one step): the answer, or a transient failure to try again later."""
        self.url_policy.check(url, where)  # where it arrived; the session checks it again
        answer = self._attempt(method, url, where, **kwargs)
        if (
            isinstance(answer, Transient)
            or classify(answer.status_code) is not Outcome.TOKEN_REFUSED
            or not self._renew_token
        ):
            return answer
        # A token refused before its expiry (revoked, clock skew): once more with a new one.
        LOGGER.warning("%s: Graph refused the token (HTTP 401); acquiring a new one", where)
        answer.close()
        self._renew_token()
        return self._attempt(method, url, where, **kwargs)

    def _attempt(
        self,
        method: str,
        url: str,
        where: str,
        **kwargs: Any,
    ) -> requests.Response | Transient:
        headers = {"client-request-id": str(uuid.uuid4())}
        # Streamed, so that read_body can bound what a body may hold.
        return attempt(
            self._session, method, url, where=where, headers=headers, stream=True, **kwargs
        )

    def _get(self, url: str, where: str, *, gone: str, step: str) -> requests.Response | Transient:
        """GET once: a 200 answer, or a transient failure (404/410: ``gone``; else refused)."""
        answer = self._answer("GET", url, where=f"{where}: {step}")
        if isinstance(answer, Transient):
            return answer
        if classify(answer.status_code) is Outcome.GONE:
            raise OperationGoneError(f"{where}: {gone} answered {service_error(answer)}")
        if answer.status_code != HTTPStatus.OK:
            raise ServiceError(f"{where}: {step} answered {service_error(answer)}")
        return answer

    def _retried(self, step: Callable[[], _T | Transient], where: str) -> _T:
        """Run a single step until it answers, within the retry budget (download threads)."""
        budget = self._policy.budget(where, sleep=self._sleep)
        while isinstance(answer := step(), Transient):
            budget.failed(answer.reason, answer.retry_after)
        return answer

    def post(self, request: ExportRequest) -> str | Transient:
        """POST the export once: the operation URL from ``Location``, or a transient failure.

        Raises:
            ServiceError: On any other answer than 202 with a same-origin ``Location``.
        """
        url = f"{self._graph_url}{BILLING_PATH}/{request.action}/export"
        answer = self._answer(
            "POST", url, where=f"{request.where}: export request", json=request.body
        )
        if isinstance(answer, Transient):
            return answer
        return self._accepted(answer, request)

    def _accepted(self, response: requests.Response, request: ExportRequest) -> str:
        if response.status_code == HTTPStatus.FORBIDDEN:  # Graph: the app lacks its permission
            msg = f"{request.where}: export request answered {service_error(response)}; "
            raise MissingPermissionError(msg + PERMISSION_HINT)
        if response.status_code != HTTPStatus.ACCEPTED:  # the documented answer
            msg = f"{request.where}: export request answered {service_error(response)}"
            raise ServiceError(msg)
        location = response.headers.get("Location", "")
        response.close()
        if len(location) > MAX_LOCATION_CHARS:
            msg = (
                f"{request.where}: export answered 202 with a Location of {len(location)} "
                f"characters (more than {MAX_LOCATION_CHARS}); refusing to save it in the state"
            )
            raise ServiceError(msg)
        return self.url_policy.check(location, f"{request.where}: export answered 202, Location")

    def read(self, operation_url: str, where: str) -> Reading | Transient:
        """Read the operation once (one step): waiting, ended, or a transient failure.

        A succeeded operation whose manifest is behind a link answers that link
        (``Reading.manifest_link``); :meth:`manifest` fetches it, as a step of its own.

        Raises:
            ExportFailedError: Failed (other than 5000), skipped or unknown status.
            OperationGoneError: The operation answered 404 or 410.
            ServiceError: Any other answer but 200 with a JSON object.
        """
        answer = self._get(operation_url, where, gone="operation", step="operation poll")
        if isinstance(answer, Transient):
            return answer
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        body = _json_object(answer, f"{where}: operation poll")
        operation_id = str(body.get("id") or operation_url.rsplit("/", 1)[-1])[:200]
        status = OperationStatus.parse(body.get("status"))
        said = str(body.get("status"))[:40]
        LOGGER.debug("%s: operation %s polled: %s", where, operation_id, said)
        result, link = None, ""
        if status is OperationStatus.SUCCEEDED:
            inline = body.get("resourceLocation")
            if isinstance(inline, dict):
                manifest = Manifest.parse(inline, where=where)
                result = ExportResult(operation_id, manifest, operation_url=operation_url)
            else:
                link = _manifest_link(body, inline, where)
        elif not status.is_waiting:
            result = self._ended_without_data(body, operation_id, where)
        return Reading(operation_id, status, said, retry_after, result, link)

    def manifest(self, link: str, where: str) -> Manifest | Transient:
        """Fetch a succeeded operation's linked manifest once (one step).

        Raises:
            OperationGoneError: The manifest answered 404 or 410.
            ServiceError: Any other answer but 200 with a manifest.
        """
        answer = self._get(link, where, gone="manifest", step="manifest request")
        if isinstance(answer, Transient):
            return answer
        return Manifest.parse(_json_object(answer, f"{where}: manifest"), where=where)

    def reread(self, operation_url: str, where: str) -> ExportResult:
        """Read an operation that ended, retrying transient failures: a fresh manifest SAS.

        Raises:
            OperationGoneError: The operation answered 404 or 410, or runs again.
        """
        reading = self._retried(lambda: self.read(operation_url, where), f"{where}: operation read")
        if reading.manifest_link:
            link = reading.manifest_link
            manifest = self._retried(
                lambda: self.manifest(link, where), f"{where}: manifest request"
            )
            return ExportResult(reading.operation_id, manifest, operation_url=operation_url)
        if reading.result is None:
            msg = f"{where}: operation {reading.operation_id} is {reading.said} again"
            raise OperationGoneError(msg)
        return reading.result

    def _ended_without_data(
        self, body: dict[str, Any], operation_id: str, where: str
    ) -> ExportResult:
        raw_error = body.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = str(error.get("code", ""))[:60]
        message = redact_text(str(error.get("message", ""))[:MAX_ERROR_BODY_CHARS])
        if (
            OperationStatus.parse(body.get("status")) is OperationStatus.FAILED
            and code == NO_DATA_ERROR_CODE
        ):
            # Whether "no data" was to be expected is the stream's to say (planner.py).
            LOGGER.debug(
                "%s: operation %s failed with code %s (%s): no data for this partition",
                where,
                operation_id,
                code,
                message,
            )
            return ExportResult(operation_id, None, message)
        msg = (
            f"{where}: operation {operation_id} ended with status {str(body.get('status'))[:40]!r}"
            f"; Graph error {code or '-'}: {message or '-'}"
        )
        raise ExportFailedError(msg)


def _json_object(response: requests.Response, where: str) -> dict[str, Any]:
    """The JSON object of a 200 answer.

    Raises:
        ServiceError: The body is not a JSON object.
    """
    try:
        body = json.loads(read_body(response, where))
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        msg = f"{where}: the answer is not a JSON object"
        raise ServiceError(msg)
    return body


def _manifest_link(body: dict[str, Any], inline: object, where: str) -> str:
    """The link to a succeeded operation's manifest.

    Raises:
        ServiceError: The operation carries no manifest.
    """
    link = body.get("resourceLocation@odata.navigationLink") or (
        inline if isinstance(inline, str) else None
    )
    if not link:
        msg = f"{where}: succeeded operation {body.get('id')} carries no manifest"
        raise ServiceError(msg)
    return str(link)
