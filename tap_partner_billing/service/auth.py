"""Microsoft Entra ID tokens for Graph through MSAL's confidential client (client credentials)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msal
import requests
from msal.exceptions import MsalServiceError  # not reachable as msal.exceptions in 1.31

from tap_partner_billing.errors import AuthenticationError, TransientHTTPError, UrlPolicyError
from tap_partner_billing.redact import redact_text, register_secret
from tap_partner_billing.service.transport import (
    TRANSIENT_EXCEPTIONS,
    Outcome,
    RetryPolicy,
    classify,
    connection_failure,
)
from tap_partner_billing.service.url_policy import CheckedSession, UrlPolicy, redirect_target

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger(__name__)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# OAuth 2.0 error codes for throttling and outages (RFC 6749 §5.2); worth another try.
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_CHECK_AUTHORITY = "check authority_url and this machine's network path to it (proxy, firewall)"


class _StatusRecordingSession(CheckedSession):
    """MSAL's HTTP client: only the authority's origin, no redirects, statuses remembered.

    MSAL hides HTTP statuses from its caller, and follows the token endpoint that the
    authority's metadata names; the URL policy keeps the client secret on the authority's
    origin whatever that metadata says.
    """

    last_status: int | None = None
    last_retry_after: str | None = None

    def answered(self) -> bool:
        """Whether the last attempt got an answer at all."""
        return self.last_status is not None

    def answered_transiently(self) -> bool:
        """Whether the last answer was a 429/5xx."""
        status = self.last_status
        return status is not None and classify(status) is Outcome.TRANSIENT

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        self.last_status = response.status_code
        self.last_retry_after = response.headers.get("Retry-After")
        if classify(response.status_code) is Outcome.REDIRECT:
            target = redirect_target(response)
            response.close()
            msg = (
                f"the token endpoint answered HTTP {response.status_code}, a redirect to "
                f"{target}; not followed"
            )
            raise AuthenticationError(msg)
        return response


@dataclass(frozen=True)
class ClientCredentials:
    """What identifies the app registration: a secret, or a certificate and its thumbprint."""

    tenant_id: str
    client_id: str
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_thumbprint: str | None = None

    def msal_credential(self) -> str | dict[str, str]:
        """Return the ``client_credential`` argument MSAL expects."""
        if self.client_secret:
            return self.client_secret
        if not (self.certificate_path and self.certificate_thumbprint):
            msg = "either client_secret or client_certificate_path with its thumbprint is needed"
            raise AuthenticationError(msg)
        private_key = Path(self.certificate_path).read_text(encoding="utf-8")
        return {"private_key": private_key, "thumbprint": self.certificate_thumbprint}


class TokenProvider:
    """Acquires and caches an app-only token; MSAL renews it when under 5 minutes remain."""

    def __init__(
        self,
        credentials: ClientCredentials,
        *,
        authority_url: str,
        scope: str = GRAPH_SCOPE,
        sleep: Callable[[float], None],
        policy: RetryPolicy | None = None,
    ) -> None:
        self._credentials = credentials
        self._authority = f"{authority_url.rstrip('/')}/{credentials.tenant_id}"
        self._scope = scope
        self._sleep = sleep
        self._policy = policy or RetryPolicy()
        policy_of_authority = UrlPolicy.for_base(authority_url, "authority_url")
        self._http = _StatusRecordingSession(policy_of_authority)
        self._where = f"token request to {policy_of_authority.origin}"
        if credentials.client_secret:
            register_secret(credentials.client_secret)
        self._app: msal.ConfidentialClientApplication | None = None
        # One acquisition at a time: any thread may ask (blob renewals, the scheduler), and
        # MSAL's cache and this provider's recording session are not made for two at once.
        self._lock = threading.RLock()

    def _application(self) -> msal.ConfidentialClientApplication:
        # After a transient failure the app is built anew: MSAL would otherwise replay the
        # cached 429/5xx answer until its own Retry-After clock runs out.
        if self._app is None:
            # instance_discovery=False: MSAL would otherwise ask a public Microsoft endpoint
            # about any authority host it does not know (the sandbox, sovereign proxies).
            self._app = msal.ConfidentialClientApplication(
                client_id=self._credentials.client_id,
                client_credential=self._credentials.msal_credential(),
                authority=self._authority,
                instance_discovery=False,
                http_client=self._http,
            )
        return self._app

    def renew(self) -> None:
        """Forget the cached token: the next :meth:`token` call acquires a new one."""
        with self._lock:
            self._app = None

    def token(self) -> str:
        """Return a valid access token, from MSAL's cache when it has one (thread-safe).

        Raises:
            AuthenticationError: When Entra refuses the credentials or stays unavailable.
        """
        with self._lock:
            return self._acquire()

    def _acquire(self) -> str:
        budget = self._policy.budget(self._where, sleep=self._sleep)
        while True:
            self._http.last_status = self._http.last_retry_after = None
            try:
                result: dict[str, Any] = self._application().acquire_token_for_client(
                    scopes=[self._scope]
                )
            except UrlPolicyError as err:
                raise AuthenticationError(f"token request: {err}") from None
            except MsalServiceError as err:
                # MSAL raises on a 5xx from the token endpoint and does not retry on its own.
                reason = f"HTTP {self._http.last_status} ({type(err).__name__})"
            except TRANSIENT_EXCEPTIONS as err:  # no answer at all
                failure = connection_failure(err)
                if failure.permanent:
                    msg = f"no token: {self._where}: {failure.cause}; {_CHECK_AUTHORITY}"
                    raise AuthenticationError(msg) from None
                reason = failure.cause
            except (requests.RequestException, ValueError) as err:
                # ValueError is MSAL's word for an authority it cannot use.
                msg = f"cannot use the authority {self._authority}: {redact_text(str(err))[:300]}"
                raise AuthenticationError(msg) from None
            else:
                if "access_token" in result:
                    token = str(result["access_token"])
                    register_secret(token)
                    return token
                error = str(result.get("error", "unknown_error"))[:80]
                description = str(result.get("error_description", ""))[:300]
                reason = redact_text(f"HTTP {self._http.last_status}, {error}: {description}")
                if error not in _TRANSIENT_ERRORS and not self._http.answered_transiently():
                    msg = (
                        f"Entra ID refused a token for client {self._credentials.client_id} "
                        f"in tenant {self._credentials.tenant_id}: {reason.strip()}"
                    )
                    raise AuthenticationError(msg)
            self._app = None
            try:
                budget.failed(reason, self._http.last_retry_after)
            except TransientHTTPError as err:
                hint = "" if self._http.answered() else f"; {_CHECK_AUTHORITY}"
                raise AuthenticationError(f"no token: {err}{hint}") from None
