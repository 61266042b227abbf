"""The secret scan every output check uses: a credential in any of the forms it travels in."""

from __future__ import annotations

from urllib.parse import quote, quote_plus, unquote


def forms(secret: str) -> set[str]:
    """``secret`` as written, URL-encoded (both ways) and URL-decoded."""
    return {secret, quote(secret, safe=""), quote_plus(secret), unquote(secret)}


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets found in ``text`` (shown cut short, so a report does not leak them)."""
    return sorted(
        {secret[:6] + "…" for secret in secrets if secret if any(f in text for f in forms(secret))}
    )
