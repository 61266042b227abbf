"""Redaction of log records: messages, arguments and whole exception chains."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests
import responses
from singer_sdk.logging import StructuredFormatter

from tap_partner_billing.errors import ServiceError
from tap_partner_billing.redact import install_redaction, redact_text, register_sas, register_secret
from tap_partner_billing.service.transport import (
    Outcome,
    RetryPolicy,
    clamp_wait,
    classify,
    parse_retry_after,
    send,
)
from tap_partner_billing.service.url_policy import (
    REQUEST_TIMEOUT_SECONDS,
    CheckedSession,
    UrlPolicy,
)

SECRET = "s3cr3t-value-for-redaction-tests"


@pytest.fixture(autouse=True)
def _redaction() -> None:
    install_redaction()
    register_secret(SECRET)


def _inner() -> None:
    raise ValueError(f"inner {SECRET}")


def _middle() -> None:
    try:
        _inner()
    except ValueError:
        raise KeyError(f"https://h/x?sig={SECRET}") from None  # context suppressed


def _fail() -> None:
    try:
        _middle()
    except KeyError as err:
        raise RuntimeError(f"outer {SECRET}") from err


def _log_through(formatter: logging.Formatter) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("redaction-test")
    logger.addHandler(handler)
    try:
        _fail()
    except RuntimeError:
        logger.exception("failed with %s", SECRET)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("formatter", [logging.Formatter(), StructuredFormatter()])
def test_a_traceback_is_redacted_in_every_formatter(formatter: logging.Formatter) -> None:
    text = _log_through(formatter)
    assert SECRET not in text
    assert "RuntimeError" in text
    assert "KeyError" in text  # the cause is still shown, redacted
    assert "<redacted>" in text
    if isinstance(formatter, StructuredFormatter):
        assert json.loads(text)["exception"]["type"] == "RuntimeError"


def test_known_values_are_masked_in_every_encoding() -> None:
    register_sas("sv=2024&sig=abc%2Bdef%3D&se=x")
    text = redact_text("echo abc+def= and abc%2Bdef%3D and " + SECRET.upper() + " " + SECRET)
    assert "abc+def=" not in text
    assert "abc%2Bdef%3D" not in text
    assert SECRET not in text


def test_status_classes() -> None:
    assert [classify(s) for s in (200, 206, 302, 401, 403, 404, 410, 408, 429, 500, 503, 400)] == [
        Outcome.OK,
        Outcome.OK,
        Outcome.REDIRECT,
        Outcome.TOKEN_REFUSED,
        Outcome.FORBIDDEN,
        Outcome.GONE,
        Outcome.GONE,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
        Outcome.FATAL,
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 1.0),
        ("7", 7.0),
        ("1000000000", 300.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 300.0),
        ("Mon, 01 Jan 1990 00:00:00 GMT", 1.0),
        ("٣", 30.0),  # not ASCII digits: unreadable, the fallback
        ("soon", 30.0),
        (None, 30.0),
    ],
)
def test_retry_after_is_clamped(header: str | None, expected: float) -> None:
    assert clamp_wait(parse_retry_after(header), 30.0) == expected


def test_a_wait_never_passes_the_remaining_time() -> None:
    assert clamp_wait(300.0, 30.0, remaining=12.5) == 12.5


def test_an_untouched_record_keeps_its_arguments() -> None:
    """The SDK's structured formatter needs a METRIC record's point object in ``args``."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("redaction-test-metrics")
    handler = Keep()
    logger.addHandler(handler)
    point = ["record_count", 3]  # any object: the SDK's is a metrics.Point
    try:
        logger.warning("METRIC: %s", point)
        logger.warning("leaked %s", SECRET)
    finally:
        logger.removeHandler(handler)
    assert seen[0].args == (point,)
    assert seen[1].args is None
    assert SECRET not in seen[1].getMessage()


def test_a_request_that_cannot_be_sent_is_named_without_its_url() -> None:
    class Refusing(requests.Session):
        def request(self, *args: object, **kwargs: object) -> requests.Response:
            msg = f"Invalid URL 'https://acct.blob.test:99999/x?sig={SECRET}': bad port"
            raise requests.exceptions.InvalidURL(msg)

    budget = RetryPolicy().budget("blob part-0: download", sleep=lambda _: None)
    with pytest.raises(
        ServiceError, match="blob part-0: download: the request cannot be sent"
    ) as raised:
        send(Refusing(), "GET", "https://acct.blob.test/x", budget=budget)
    assert SECRET not in str(raised.value)
    assert "sig=" not in str(raised.value) or "<redacted>" in str(raised.value)


def test_every_request_gets_a_timeout_even_when_the_caller_passes_none() -> None:
    session = CheckedSession(UrlPolicy.for_base("https://login.test", "authority_url"))
    with responses.RequestsMock() as mock:
        mock.get("https://login.test/x", json={})
        session.get("https://login.test/x", timeout=None)  # as MSAL does
        sent = mock.calls[0].request
        assert sent.req_kwargs["timeout"] == REQUEST_TIMEOUT_SECONDS  # type: ignore[attr-defined]  # responses records it
