"""The sandbox's credentials: access tokens per audience, and directory SAS signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

if TYPE_CHECKING:
    from collections.abc import Callable

# Microsoft's literals, spelled here and never taken from the tap: a wrong scope in the tap
# must meet the sandbox's refusal (AADSTS70011), as it would meet Entra's.
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PARTNER_CENTER_SCOPE = "https://api.partnercenter.microsoft.com/.default"
AUDIENCES = (GRAPH_SCOPE, PARTNER_CENTER_SCOPE)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """JWT-shaped bearer tokens, each good for one audience until it expires.

    Like Entra's, a Graph token carries the app's consented application permissions in its
    ``roles`` claim (``graph_roles``; empty: an app without admin consent). The signature is
    random bytes: the sandbox knows its tokens by their text.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        lifetime: Callable[[], int],
        graph_roles: Callable[[], tuple[str, ...]] = lambda: (),
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._graph_roles = graph_roles
        # token → (expiry, audience, roles)
        self._tokens: dict[str, tuple[float, str, tuple[str, ...]]] = {}

    def issue(self, scope: str, client_id: str = "") -> tuple[str, int] | None:
        """A new token for ``scope`` and its lifetime (None: a scope the sandbox does not know)."""
        audience = next((a for a in AUDIENCES if a in scope.split()), None)
        if audience is None:
            return None
        lifetime = self._lifetime()
        expiry = self._clock() + lifetime
        roles = self._graph_roles() if audience == GRAPH_SCOPE else ()
        claims = {
            "aud": audience.removesuffix("/.default"),
            "appid": client_id,
            "exp": int(expiry),
            "roles": list(roles),
        }
        header = _b64(json.dumps({"typ": "JWT", "alg": "RS256"}).encode())
        token = f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"
        self._tokens[token] = (expiry, audience, tuple(roles))
        return token, lifetime

    def valid(self, header: str | None, audience: str = GRAPH_SCOPE) -> bool:
        """True for ``Bearer <a token issued for audience, not yet expired>``."""
        if not header or not header.startswith("Bearer "):
            return False
        issued = self._tokens.get(header[7:])
        return issued is not None and issued[1] == audience and issued[0] > self._clock()

    def has_role(self, header: str | None, role: str) -> bool:
        """Whether the (valid) token in ``header`` carries ``role``."""
        issued = self._tokens.get((header or "")[7:])
        return issued is not None and role in issued[2]

    def issued(self, audience: str | None = None) -> list[str]:
        """Every token handed out (tests check none leaks), or those for one ``audience``."""
        return [t for t, (_, aud, _) in self._tokens.items() if audience in {None, aud}]


class SasSigner:
    """Directory SAS tokens (``sr=d``, read + list) signed with a key only the sandbox has."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self.issued_signatures: list[str] = []  # every signature handed out

    def sign(self, directory: str, expires: float) -> str:
        """The SAS query string for ``directory``, expiring at ``expires`` (epoch seconds)."""
        se = sas_time(expires)
        sig = self._signature(directory, se)
        self.issued_signatures.append(sig)
        return f"sv=2021-08-06&se={quote(se, safe='')}&sr=d&sp=rl&sdd=7&sig={quote(sig, safe='')}"

    def allows(self, directory: str, query: str) -> bool:
        """Whether ``query`` holds a valid, unexpired SAS for ``directory``."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        se = params.get("se", "")
        if not se or not hmac.compare_digest(params.get("sig", ""), self._signature(directory, se)):
            return False
        try:
            expires = datetime.strptime(se, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return False
        return expires.timestamp() >= self._clock()

    def _signature(self, directory: str, se: str) -> str:
        digest = hmac.new(self._key, f"{directory}\n{se}\nrl".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()


def sas_time(epoch: float) -> str:
    """An epoch as a SAS ``se`` value (seconds, Z)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
