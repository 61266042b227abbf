"""One place for HTTP retries: 429, 5xx and dropped connections, honouring ``Retry-After``."""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from tap_partner_billing.errors import TransientHTTPError
from tap_partner_billing.redact import redact_text

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger(__name__)
REQUEST_TIMEOUT_SECONDS = (30.0, 300.0)  # (connect, read)
RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    max_attempts: int = 6
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 120.0

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff for ``attempt`` (1-based), capped."""
        return float(min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: integer seconds (``0`` = now) or an HTTP date.

    Returns:
        Seconds to wait, or ``None`` when the header is absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    sleep: Callable[[float], None],
    policy: RetryPolicy,
    **kwargs: Any,  # noqa: ANN401 - passed through to requests
) -> requests.Response:
    """Send a request, retrying transient failures; return the first non-transient response.

    Args:
        session: The session to send with (its headers decide what credentials go along).
        method: HTTP method.
        url: Absolute URL.
        what: A short, secret-free description used in logs and errors.
        sleep: Called with the seconds to wait between attempts.
        policy: Retry limits.
        **kwargs: Passed to ``session.request``.

    Returns:
        The response, whose status is not 429/5xx.

    Raises:
        TransientHTTPError: When every attempt failed transiently.
    """
    kwargs.setdefault("timeout", REQUEST_TIMEOUT_SECONDS)
    for attempt in range(1, policy.max_attempts + 1):
        retry_after: float | None = None
        try:
            response = session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            reason = redact_text(f"{type(err).__name__}: {err}")
        else:
            if response.status_code not in RETRIABLE_STATUSES:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            reason = f"HTTP {response.status_code}"
            response.close()
        if attempt == policy.max_attempts:
            msg = f"{what} failed after {attempt} attempts: {reason}"
            raise TransientHTTPError(msg, retry_after_seconds=retry_after)
        delay = policy.backoff_seconds(attempt) if retry_after is None else retry_after
        LOGGER.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            what,
            reason,
            delay,
            attempt + 1,
            policy.max_attempts,
        )
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
