"""What ``--test`` proves, and the credential check before every run. No Singer in here.

``--test`` goes as far as it can without starting an export: a token for each audience in
use, the Graph token's ``roles`` claim, one request Graph answers, and the invoice list when
discovery is on. Every step that passes says so; the first that fails stops with a message
naming what to fix.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from http import HTTPStatus
from typing import TYPE_CHECKING

from tap_partner_billing.errors import (
    PERMISSION_HINT,
    REQUIRED_ROLE,
    MissingPermissionError,
    ServiceError,
    TransientHTTPError,
)
from tap_partner_billing.service.export import BILLING_PATH
from tap_partner_billing.service.responses import service_error
from tap_partner_billing.service.transport import RetryPolicy, send
from tap_partner_billing.service.url_policy import CheckedSession, UrlPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_partner_billing.service.auth import TokenProvider

LOGGER = logging.getLogger(__name__)
_JWT_PARTS = 3  # header.payload.signature
# --test should not spend half a minute on a Graph that is not there: two quick retries.
PROBE_POLICY = RetryPolicy(max_attempts=3, base_delay_seconds=1.0, max_delay_seconds=2.0)


def token_roles(token: str) -> list[str] | None:
    """The ``roles`` claim of a JWT access token (None: not a readable JWT).

    The signature is not checked: the token is our own, fresh from Entra over TLS, and the
    claim is read only to explain a refusal before Graph gives one.
    """
    parts = token.split(".")
    if len(parts) != _JWT_PARTS:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    roles = claims.get("roles") or []
    return [str(role) for role in roles] if isinstance(roles, list) else None


def require_graph_role(tokens: TokenProvider, client_id: str) -> str:
    """Acquire the Graph token and check it carries ``PartnerBilling.Read.All``.

    Returns:
        What was found, for the log.

    Raises:
        MissingPermissionError: The token's roles lack the permission.
    """
    roles = token_roles(tokens.token())
    if roles is None:
        LOGGER.warning("The Graph token is not a JWT; its roles claim cannot be checked")
        return "a Graph token was acquired (roles not readable)"
    if REQUIRED_ROLE not in roles:
        held = ", ".join(roles) or "none"
        msg = (
            f"the Graph token of client {client_id} lacks the {REQUIRED_ROLE} permission "
            f"(roles: {held}); {PERMISSION_HINT}"
        )
        raise MissingPermissionError(msg)
    return f"a Graph token with the {REQUIRED_ROLE} role was acquired"


def probe_graph(
    graph_url: str,
    token: Callable[[], str],
    sleep: Callable[[float], None],
) -> str:
    """GET an operation that does not exist; Graph answering 404 proves it is reachable.

    A GET never starts an export (only ``POST …/export`` does), and a random UUID names no
    operation, so this reads and changes nothing; it is the request the tap sends while
    polling, with the same token, through the same URL policy (``url_policy.CheckedSession``).

    Raises:
        ServiceError: Graph is unreachable, refused the token or the permission, or answered
            something else than "no such operation".
    """
    session = CheckedSession(UrlPolicy.for_base(graph_url, "graph_url"), bearer=token)
    url = f"{graph_url.rstrip('/')}{BILLING_PATH}/operations/{uuid.uuid4()}"
    where = f"Graph at {graph_url}"
    try:
        response = send(
            session, "GET", url, budget=PROBE_POLICY.budget(where, sleep=sleep), stream=True
        )
    except TransientHTTPError as err:
        msg = f"{err}; check graph_url and the network path to it (proxy, firewall)"
        raise ServiceError(msg) from None
    with response:
        status, described = response.status_code, service_error(response)
    if status == HTTPStatus.NOT_FOUND:  # the expected answer
        return "Graph answered 404 for an unknown export operation, as it should"
    if status == HTTPStatus.FORBIDDEN:
        msg = f"{where} refused the app: {described}; {PERMISSION_HINT}"
        raise MissingPermissionError(msg)
    if status == HTTPStatus.UNAUTHORIZED:
        msg = f"{where} refused the token: {described} (is graph_url the Graph of this tenant?)"
        raise ServiceError(msg)
    msg = f"{where} answered {described} to a GET of an unknown operation; expected 404"
    raise ServiceError(msg)
