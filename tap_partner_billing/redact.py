"""Keep SAS signatures, bearer tokens and client secrets out of every log line and error."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

# A URL query string may be a SAS token (sig=..., skoid=...); we never need it in a message.
_QUERY = re.compile(r"\?[^\s\"'<>]+")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_FORM_SECRET = re.compile(
    r"(?i)\b(client_secret|client_assertion|access_token|refresh_token|sig)([=:]\s*\"?)[^&\s\"',]+"
)
REDACTED = "<redacted>"

# Loggers of the libraries that may print URLs or request bodies at DEBUG.
_LIBRARY_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "msal", "azure", "requests")


def redact_text(text: str) -> str:
    """Return ``text`` with query strings, bearer tokens and secret form fields masked."""
    text = _QUERY.sub("?" + REDACTED, text)
    text = _BEARER.sub("Bearer " + REDACTED, text)
    return _FORM_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_url(url: str) -> str:
    """Return ``url`` without its query string (where a SAS token lives)."""
    parts = urlsplit(url)
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message through :func:`redact_text`."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()


def install_log_redaction(*extra_loggers: str) -> None:
    """Attach the redacting filter to library loggers and to every handler of the root logger.

    Logger filters only see records logged directly on that logger, so the filter is also put
    on the root handlers, which every propagated record passes through.
    """
    for name in (*_LIBRARY_LOGGERS, *extra_loggers):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
