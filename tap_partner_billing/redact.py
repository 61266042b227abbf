"""Keep SAS signatures, bearer tokens and client secrets out of every log line and traceback.

Two layers, both applied to every log record the process creates (a log record factory, so
no handler or logger configured later escapes it):

- **known values**: the client secret, every token acquired and every SAS handed out are
  registered the moment the tap learns them, and masked wherever they appear, in whatever
  words a service echoed them;
- **shapes**: URL query strings (where a SAS lives), ``Bearer …`` and secret form fields.

A record's traceback is redacted too: its exceptions are replaced by stand-ins of the same
type name whose text went through :func:`redact_text`, so neither the plain formatter nor the
SDK's structured one (which prints chained exceptions even after ``raise … from None``) can
repeat a secret an exception carried.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus, unquote

# A URL query string may be a SAS token (sig=..., skoid=...); we never need it in a message.
_QUERY = re.compile(r"\?[^\s\"'<>]+")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_FORM_SECRET = re.compile(
    r"(?i)\b(client_secret|client_assertion|access_token|refresh_token|sig)([=:]\s*\"?)[^&\s\"',]+"
)
REDACTED = "<redacted>"
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words
_MAX_CHAIN_DEPTH = 10  # causes and contexts deeper than this are cut
_SECRETS: set[str] = set()
_LOCK = threading.Lock()


def register_secret(value: str) -> None:
    """Mask ``value`` (and its URL-encoded forms) in everything redacted from now on."""
    if len(value) < MIN_SECRET_CHARS:
        return
    forms = {value, quote(value, safe=""), quote_plus(value), unquote(value)}
    with _LOCK:
        _SECRETS.update(form for form in forms if len(form) >= MIN_SECRET_CHARS)


def register_sas(sas_token: str) -> None:
    """Register a SAS token and its signature."""
    register_secret(sas_token)
    for part in sas_token.split("&"):
        key, _, value = part.partition("=")
        if key.lower() == "sig" and value:
            register_secret(value)


def redact_text(text: str) -> str:
    """Return ``text`` with known secrets, query strings, bearer tokens and secret fields masked."""
    with _LOCK:
        known = sorted(_SECRETS, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _QUERY.sub("?" + REDACTED, text)
    text = _BEARER.sub("Bearer " + REDACTED, text)
    return _FORM_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


class RedactedException(Exception):
    """Stands in for an exception in a log record: same type name, redacted text."""


_STAND_INS: dict[tuple[str, str], type[RedactedException]] = {}


def _stand_in(exc: BaseException, depth: int = 0) -> BaseException:
    """A redacted copy of ``exc`` and of the exceptions it was raised from."""
    key = (type(exc).__module__, type(exc).__qualname__)
    kind = _STAND_INS.get(key)
    if kind is None:
        kind = _STAND_INS[key] = type(type(exc).__name__, (RedactedException,), {})
        kind.__module__ = key[0]
        kind.__qualname__ = key[1]
    copy = kind(redact_text(str(exc)))
    copy.__traceback__ = exc.__traceback__
    copy.__suppress_context__ = exc.__suppress_context__
    if depth < _MAX_CHAIN_DEPTH:
        if exc.__cause__ is not None:
            copy.__cause__ = _stand_in(exc.__cause__, depth + 1)
        if exc.__context__ is not None and not exc.__suppress_context__:
            copy.__context__ = _stand_in(exc.__context__, depth + 1)
    return copy


def redact_exc_info(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None],
) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    """``exc_info`` with its exception (chain) replaced by redacted stand-ins."""
    copy = _stand_in(exc_info[1])
    return type(copy), copy, exc_info[2]


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact a log record in place: message, arguments, traceback and stack."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a bad format string: keep what we can show
        message = str(record.msg)
    cleaned = redact_text(message)
    if cleaned != message:  # untouched records keep their arguments (the SDK's METRIC points)
        record.msg, record.args = cleaned, None
    if record.exc_info:
        kind, value, tb = record.exc_info
        if kind is not None and value is not None:
            record.exc_info = redact_exc_info((kind, value, tb))
            record.exc_text = None
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


_BASE_FACTORY = logging.getLogRecordFactory()


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    return redact_record(_BASE_FACTORY(*args, **kwargs))


class _RedactingExcepthook:
    """Wraps an excepthook (the SDK's logs through the tap's logger) with redaction."""

    def __init__(
        self,
        inner: Callable[[type[BaseException], BaseException, TracebackType | None], object],
    ) -> None:
        self.inner = inner

    def __call__(
        self, kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        self.inner(*redact_exc_info((kind, value, tb)))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        sys.__excepthook__(*redact_exc_info((args.exc_type, args.exc_value, args.exc_traceback)))


def install_redaction() -> None:
    """Redact every log record and every traceback Python prints.

    Idempotent; call it again after something else replaced ``sys.excepthook`` (the SDK's
    CLI installs its own when it starts) to wrap that one too.
    """
    if logging.getLogRecordFactory() is not _redacting_factory:
        logging.setLogRecordFactory(_redacting_factory)
    if not isinstance(sys.excepthook, _RedactingExcepthook):
        sys.excepthook = _RedactingExcepthook(sys.excepthook)
    if threading.excepthook is threading.__excepthook__:  # leave a test runner's hook alone
        threading.excepthook = _thread_hook
