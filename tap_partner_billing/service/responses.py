"""Reading a service's answer: its body, bounded, and an error answer in words.

Every answer the tap reads whole (an operation, a manifest, an invoice page, an error) is read
by :func:`read_body`, which refuses a body too large or too slow to arrive. An error answer of
Graph or Partner Center is described by :func:`service_error` (status, the service's code and
message, the ids a support case asks for), cut short and redacted: the service's text never
reaches a log or an error unbounded. No Singer in here; sending and retrying are
``service/transport.py``'s.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from tap_partner_billing.errors import ServiceError
from tap_partner_billing.redact import redact_text
from tap_partner_billing.service.transport import READ_ERRORS, describe_failure

if TYPE_CHECKING:
    import requests

MAX_BODY_BYTES = 16 << 20  # an operation, manifest or invoice page is a few kilobytes
BODY_DEADLINE_SECONDS = 120.0  # the read timeout restarts with every byte; this does not


def read_body(response: requests.Response, where: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of a (streamed) answer, refusing one too large or too slow to arrive.

    Raises:
        ServiceError: The body is larger than ``limit``, takes longer than
            ``BODY_DEADLINE_SECONDS``, or breaks off.
    """
    data = bytearray()
    ends = time.monotonic() + BODY_DEADLINE_SECONDS
    try:
        # read1 returns what has arrived, so a body sent a byte at a time meets the deadline.
        while chunk := response.raw.read1(1 << 16, decode_content=True):
            data += chunk
            if len(data) > limit:
                response.close()
                msg = f"{where}: the answer is larger than {limit} bytes; refused"
                raise ServiceError(msg)
            if time.monotonic() > ends:
                response.close()
                msg = f"{where}: the answer took over {BODY_DEADLINE_SECONDS:.0f} s to arrive"
                raise ServiceError(msg)
    except READ_ERRORS as err:
        msg = f"{where}: the answer broke off ({describe_failure(err)})"
        raise ServiceError(msg) from None
    return bytes(data)


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


def service_error(response: requests.Response) -> str:
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
