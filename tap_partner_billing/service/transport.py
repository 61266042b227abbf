"""One retry and classification policy for every request the tap sends.

:func:`classify` says what an answer (or a failure to get one) means; a :class:`RetryBudget`,
one per operation (a token request, an export request, one poll, one blob download with its
resumes), owns how often and how long that operation may be retried; :func:`send` is the one
loop that uses both. ``Retry-After`` is honoured but clamped to ``[1 s, 300 s]`` and never
past an operation's deadline: a server cannot make the tap wait forever, nor hammer it.

A failure to get an answer at all is described by :func:`connection_failure`: the origin it
tried (never a path or query) and the cause in words. Connection refused, resets and timeouts
are retried within the budget (6 attempts, 31 s of backoff: a restart or a network blip rides
through it; an unattended daily run that gives up loses a day); a host name DNS says does not
exist, and a certificate that fails verification, are refused at once: asking again cannot
change either, it only makes a user wait half a minute for the same answer.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import urllib3

from tap_partner_billing.errors import ServiceError, TransientHTTPError, UrlPolicyError
from tap_partner_billing.redact import redact_text
from tap_partner_billing.service.url_policy import (
    REQUEST_TIMEOUT_SECONDS,
    origin_of,
    redirect_target,
)

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger(__name__)
MIN_WAIT_SECONDS = 1.0  # also the floor of a poll interval, whatever Retry-After says
MAX_RETRY_AFTER_SECONDS = 300.0
TOO_MANY_REQUESTS = 429
_MAX_CAUSES = 20  # a chain longer than this is cut
_E = TypeVar("_E", bound=BaseException)


class Outcome(enum.Enum):
    """What an HTTP answer means to the caller."""

    OK = "ok"  # 2xx
    REDIRECT = "redirect"  # 3xx: never followed
    TOKEN_REFUSED = "token refused"  # 401  # noqa: S105 - not a password
    FORBIDDEN = "forbidden"  # 403: a missing permission (Graph) or a refused SAS (storage)
    GONE = "gone"  # 404, 410
    TRANSIENT = "transient"  # 408, 429, 5xx, a dropped connection
    FATAL = "fatal"  # any other answer


_BY_STATUS = {
    401: Outcome.TOKEN_REFUSED,
    403: Outcome.FORBIDDEN,
    404: Outcome.GONE,
    410: Outcome.GONE,
    408: Outcome.TRANSIENT,
    429: Outcome.TRANSIENT,
}
_BY_FAMILY = {2: Outcome.OK, 3: Outcome.REDIRECT, 5: Outcome.TRANSIENT}


def classify(status: int) -> Outcome:
    """The :class:`Outcome` of an HTTP status code."""
    return _BY_STATUS.get(status) or _BY_FAMILY.get(status // 100, Outcome.FATAL)


# Failures to get an answer at all: worth another try. Anything else requests raises
# (InvalidURL, InvalidSchema, …) is a bug or bad input, and never retried.
TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)
# What reading a body can raise: the transient failures and requests' own errors.
READ_ERRORS: tuple[type[Exception], ...] = (*TRANSIENT_EXCEPTIONS, requests.RequestException)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (integer seconds or an HTTP date).

    Returns:
        The seconds, not yet clamped; ``None`` when absent, unreadable or out of range.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when - current)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one operation may be retried."""

    max_attempts: int = 6
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 120.0

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff after failed ``attempt`` (1-based), capped."""
        return float(min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1)))

    def budget(
        self,
        where: str,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
        deadline: float | None = None,
    ) -> RetryBudget:
        """A fresh budget for one operation (``deadline`` on ``clock``'s scale)."""
        return RetryBudget(self, where, sleep, clock, deadline)


def clamp_wait(seconds: float | None, fallback: float, *, remaining: float | None = None) -> float:
    """``seconds`` (or ``fallback`` when unknown) within ``[1 s, 300 s]`` and ``remaining``."""
    wait = fallback if seconds is None else seconds
    wait = min(max(wait, MIN_WAIT_SECONDS), MAX_RETRY_AFTER_SECONDS)
    return wait if remaining is None else max(0.0, min(wait, remaining))


@dataclass
class RetryBudget:
    """The attempts left to one operation; :meth:`failed` waits or gives up."""

    policy: RetryPolicy
    where: str
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    deadline: float | None = None
    attempts: int = field(default=0)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def failed(self, reason: str, retry_after: str | None = None) -> None:
        """Record a transient failure; wait before the next attempt.

        Raises:
            TransientHTTPError: The attempts are used up, or waiting would pass the deadline.
        """
        self.attempts += 1
        if self.attempts >= self.policy.max_attempts:
            tried = self.clock() - self.started
            msg = f"{self.where} failed {self.attempts} times in {tried:.0f} s: {reason}"
            raise TransientHTTPError(msg)
        remaining = None if self.deadline is None else self.deadline - self.clock()
        delay = clamp_wait(
            parse_retry_after(retry_after),
            self.policy.backoff_seconds(self.attempts),
            remaining=remaining,
        )
        if remaining is not None and remaining <= 0:
            msg = f"{self.where} failed ({reason}) and its deadline has passed"
            raise TransientHTTPError(msg)
        LOGGER.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            self.where,
            reason,
            delay,
            self.attempts + 1,
            self.policy.max_attempts,
        )
        self.sleep(delay)


def describe_failure(err: BaseException) -> str:
    """A secret-free one-line description of an exception raised while sending."""
    return redact_text(f"{type(err).__name__}: {err}")[:500]


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and what it wraps: arguments, urllib3's ``reason``, cause and context."""
    found: list[BaseException] = []
    pending = [err]
    while pending and len(found) < _MAX_CAUSES:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        inner = [*current.args, getattr(current, "reason", None)]
        inner += [current.__cause__, current.__context__]
        pending += [e for e in inner if isinstance(e, BaseException)]
    return found


def _first(causes: list[BaseException], kind: type[_E]) -> _E | None:
    return next((e for e in causes if isinstance(e, kind)), None)


@dataclass(frozen=True)
class ConnectionFailure:
    """Why no answer came, in words; ``permanent`` when asking again cannot help."""

    cause: str
    permanent: bool = False


_CONNECT_S, _READ_S = REQUEST_TIMEOUT_SECONDS
# The first of these found in an exception's chain says why (the order matters).
_WORDS: dict[type[BaseException], str] = {
    ConnectionRefusedError: "connection refused (nothing accepts connections on that port)",
    urllib3.exceptions.ConnectTimeoutError: f"timed out connecting ({_CONNECT_S:.0f} s)",
    requests.ConnectTimeout: f"timed out connecting ({_CONNECT_S:.0f} s)",
    urllib3.exceptions.ReadTimeoutError: f"timed out waiting for the answer ({_READ_S:.0f} s)",
    requests.ReadTimeout: f"timed out waiting for the answer ({_READ_S:.0f} s)",
    ConnectionResetError: "the connection was reset",
    urllib3.exceptions.ProtocolError: "the connection closed before an answer came",
    TimeoutError: "timed out",
}


def _certificate_or_dns(causes: list[BaseException]) -> ConnectionFailure | None:
    if (cert := _first(causes, ssl.SSLCertVerificationError)) is not None:
        why = getattr(cert, "verify_message", None) or "certificate verify failed"
        return ConnectionFailure(
            f"TLS certificate verification failed ({why}); behind a proxy that inspects "
            "TLS, point REQUESTS_CA_BUNDLE at a bundle holding its CA",
            permanent=True,
        )
    if (dns := _first(causes, socket.gaierror)) is not None:
        if dns.args and dns.args[0] == socket.EAI_NONAME:
            return ConnectionFailure("DNS does not know this host name", permanent=True)
        return ConnectionFailure(f"DNS lookup failed ({dns.args[-1] if dns.args else dns})")
    return None


def connection_failure(err: BaseException) -> ConnectionFailure:
    """What a failure to get an answer means: refused, DNS, timeout, TLS, a reset."""
    causes = _causes(err)
    if (failure := _certificate_or_dns(causes)) is not None:
        return failure
    for kind, text in _WORDS.items():
        if _first(causes, kind) is not None:
            return ConnectionFailure(text)
    if (handshake := _first(causes, ssl.SSLError)) is not None:
        return ConnectionFailure(redact_text(f"the TLS handshake failed ({handshake})")[:300])
    if (os_error := _first(causes, OSError)) is not None and os_error.strerror:
        return ConnectionFailure(str(os_error.strerror).lower())
    return ConnectionFailure(describe_failure(err))


@dataclass(frozen=True)
class Transient:
    """A transient failure of one attempt: worth another try, after ``retry_after``."""

    reason: str  # e.g. "HTTP 429", or the connection error, secret-free
    retry_after: str | None = None  # the header as the service sent it
    status: int | None = None  # None: no answer at all

    @property
    def throttled(self) -> bool:
        """The service said 429: back-pressure rather than a fault."""
        return self.status == TOO_MANY_REQUESTS


def attempt(
    session: requests.Session,
    method: str,
    url: str,
    *,
    where: str,
    **kwargs: Any,
) -> requests.Response | Transient:
    """Send a request once: its answer, or a :class:`Transient` failure (a single step).

    The session decides the URL policy and credentials (see ``url_policy.CheckedSession``).

    Raises:
        ServiceError: A redirect, or a request that cannot be sent.
    """
    kwargs.setdefault("timeout", REQUEST_TIMEOUT_SECONDS)
    try:
        response = session.request(method, url, **kwargs)
    except UrlPolicyError:
        raise
    except TRANSIENT_EXCEPTIONS as err:
        failure = connection_failure(err)
        reason = f"{origin_of(url)}: {failure.cause}"
        if failure.permanent:
            raise ServiceError(f"{where}: {reason}") from None
        return Transient(reason)
    except (requests.RequestException, ValueError) as err:
        # InvalidURL, InvalidSchema, a bad port…: its text may hold the whole URL.
        msg = f"{where}: the request cannot be sent ({describe_failure(err)})"
        raise ServiceError(msg) from None
    outcome = classify(response.status_code)
    if outcome is Outcome.REDIRECT:
        target = redirect_target(response)
        response.close()
        status = response.status_code
        msg = f"{where}: answered HTTP {status}, a redirect to {target}; not followed"
        raise ServiceError(msg)
    if outcome is not Outcome.TRANSIENT:
        return response
    retry_after = response.headers.get("Retry-After")
    response.close()
    return Transient(f"HTTP {response.status_code}", retry_after, response.status_code)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    budget: RetryBudget,
    **kwargs: Any,
) -> requests.Response:
    """Send a request, retrying transient failures within ``budget`` (see :func:`attempt`).

    Returns:
        The first answer that is not transient, and not a redirect.

    Raises:
        TransientHTTPError: The budget ran out.
    """
    while True:
        answer = attempt(session, method, url, where=budget.where, **kwargs)
        if not isinstance(answer, Transient):
            return answer
        budget.failed(answer.reason, answer.retry_after)
