"""Microsoft Entra ID tokens for Graph through MSAL's confidential client (client credentials)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msal
import requests

from tap_partner_billing.errors import AuthenticationError
from tap_partner_billing.http import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger(__name__)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Entra answers these AADSTS error families for throttling and outages; worth another try.
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


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
        http_client: requests.Session | None = None,
    ) -> None:
        self._credentials = credentials
        self._authority = f"{authority_url.rstrip('/')}/{credentials.tenant_id}"
        self._scope = scope
        self._sleep = sleep
        # MSAL caches a 429/5xx answer until its Retry-After (5 s by default) has passed, so
        # retrying sooner only replays the cached failure.
        self._policy = policy or RetryPolicy(base_delay_seconds=5.0)
        self._http_client = http_client
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            try:
                # instance_discovery=False: MSAL would otherwise ask a public Microsoft endpoint
                # about any authority host it does not know (the sandbox, sovereign proxies).
                self._app = msal.ConfidentialClientApplication(
                    client_id=self._credentials.client_id,
                    client_credential=self._credentials.msal_credential(),
                    authority=self._authority,
                    instance_discovery=False,
                    http_client=self._http_client,
                )
            except (ValueError, requests.RequestException) as err:
                msg = f"cannot reach the authority for tenant {self._credentials.tenant_id}: {err}"
                raise AuthenticationError(msg) from None
        return self._app

    def token(self) -> str:
        """Return a valid access token, from MSAL's cache when it has one.

        Raises:
            AuthenticationError: When Entra refuses the credentials or stays unavailable.
        """
        for attempt in range(1, self._policy.max_attempts + 1):
            try:
                result: dict[str, Any] = self._application().acquire_token_for_client(
                    scopes=[self._scope]
                )
            except (msal.exceptions.MsalServiceError, requests.RequestException) as err:
                # MSAL raises on a 5xx from the token endpoint and does not retry on its own.
                reason = f"{type(err).__name__}"
                self._app = self._app if isinstance(err, msal.exceptions.MsalServiceError) else None
            else:
                if "access_token" in result:
                    return str(result["access_token"])
                error = str(result.get("error", "unknown_error"))
                reason = f"{error}: {result.get('error_description', '')}".strip()
                if error not in _TRANSIENT_ERRORS and "throttl" not in reason.lower():
                    msg = (
                        f"Entra ID refused a token for client {self._credentials.client_id} "
                        f"in tenant {self._credentials.tenant_id}: {reason}"
                    )
                    raise AuthenticationError(msg)
            if attempt == self._policy.max_attempts:
                break
            delay = self._policy.backoff_seconds(attempt)
            LOGGER.warning("Token request failed (%s); retrying in %.1f s", reason, delay)
            self._sleep(delay)
        msg = f"no token after {self._policy.max_attempts} attempts: {reason}"
        raise AuthenticationError(msg)
