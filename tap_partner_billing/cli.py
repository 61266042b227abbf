"""The command line around the SDK's: ``--test``, the run, and errors a user can fix.

This is the one place where the tap turns its exceptions into what a user reads. An error the
tap raises on purpose (a ``PartnerBillingError``: an invalid config, a refused secret, a missing
Graph permission, a service that stays down, a bad blob line) is one ERROR message saying what
and where, with no traceback (the traceback goes to DEBUG); everything printed passes through
:func:`tap_partner_billing.redact.redact_text`. Any other exception is a bug: it goes on to the
SDK's handling, traceback included.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any, Protocol

from singer_sdk.exceptions import ConfigValidationError

from tap_partner_billing.errors import (
    PartnerBillingError,
)
from tap_partner_billing.redact import redact_text
from tap_partner_billing.service.checks import probe_graph, require_graph_role
from tap_partner_billing.streams.sdk_seam import config_input

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator, Mapping
    from typing import IO

    import click

    from tap_partner_billing.sync.shared import SyncRun

TEST_HELP = (
    "Use --test to prove the setup without starting an export: a token for Graph (and for "
    "Partner Center when discover_invoices is on), the PartnerBilling.Read.All role in the "
    "Graph token, Graph reached with a GET of an unknown operation (expects 404), and the "
    "invoice list read when discover_invoices is on. Use --test=schema to print the SCHEMA "
    "messages."
)


class RunnableTap(Protocol):
    """What a run and ``--test`` use of the tap (the tap class is passed in, not imported)."""

    @property
    def config(self) -> Mapping[str, Any]:
        """The validated settings."""

    @property
    def sync_run(self) -> SyncRun:
        """The run's clients and invoice index."""

    def preflight(self) -> None:
        """Check the credentials and read the invoice list before the streams."""

    def sync_all(self) -> None:
        """Sync every selected stream."""

    def log_summary(self) -> None:
        """Log the summary line of each selected stream."""


class TapClass(Protocol):
    """The tap class as the command line uses it (its logger is passed beside it).

    The SDK's ``logger`` is a class property, which a protocol cannot describe on a class.
    """

    def print_version(self, print_fn: Callable[[Any], None] = ...) -> None:
        """Print the tap's and the SDK's version."""

    def __call__(
        self,
        *,
        config: object,
        state: object = ...,
        catalog: object = ...,
        parse_env_config: bool = ...,
        validate_config: bool = ...,
    ) -> RunnableTap:
        """Make the tap (the SDK's constructor)."""


def _debug_traceback(logger: logging.Logger, err: BaseException) -> None:
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    logger.debug("%s", redact_text(text))


def config_message(err: ConfigValidationError) -> str:
    """Every problem of an invalid config in one message."""
    problems = err.errors or [str(err)]
    lines = [f"Config validation failed ({len(problems)} problem(s)):"]
    lines.extend(f"  - {problem}" for problem in problems)
    return redact_text("\n".join(lines))


@contextlib.contextmanager
def user_errors(logger: logging.Logger, prefix: str = "") -> Iterator[None]:
    """Print a config error or the tap's own error as one message; exit 1 (traceback at DEBUG)."""
    try:
        yield
    except ConfigValidationError as err:
        _debug_traceback(logger, err)
        logger.error("%s", prefix + config_message(err))
        sys.exit(1)
    except PartnerBillingError as err:
        _debug_traceback(logger, err)
        logger.error("%s", redact_text(prefix + str(err)))
        sys.exit(1)


def _load(handle: IO[str] | None) -> object:
    return None if handle is None else json.loads(handle.read())


def invoke(
    tap_class: TapClass,
    logger: logging.Logger,
    *,
    config: object,
    state: IO[str] | None,
    catalog: IO[str] | None,
) -> None:
    """A run: check the credentials first, sync, then the summary line of each stream."""
    tap_class.print_version(print_fn=logger.info)
    settings, parse_env = config_input(config)
    with user_errors(logger):
        tap = tap_class(
            config=settings,
            state=_load(state),
            catalog=_load(catalog),
            parse_env_config=parse_env,
            validate_config=True,
        )
        try:  # the preflight POSTs exports ahead: a SIGTERM or a 403 there ends the run too
            tap.preflight()
            tap.sync_all()
        except BaseException:  # SIGTERM included: workers are not waited for
            tap.sync_run.close(at_once=True)
            raise
        else:
            tap.sync_run.close()
        finally:
            tap.log_summary()


def connection_test(tap_class: TapClass, logger: logging.Logger, ctx: click.Context) -> None:
    """``--test``: each step logs what it proved; the first failure is the message, exit 1."""
    settings, parse_env = config_input(ctx.params.get("config"))
    with user_errors(logger, "Connection test failed: "):
        tap = tap_class(config=settings, parse_env_config=parse_env, validate_config=True)
        services = tap.sync_run.services
        proved = [require_graph_role(services.tokens, tap.config["client_id"])]
        logger.info("Connection test: %s", proved[-1])
        proved.append(probe_graph(tap.config["graph_url"], services.tokens.token, services.sleep))
        logger.info("Connection test: %s", proved[-1])
        invoices = tap.sync_run.invoice_index.invoices
        if invoices is not None:  # discovery is on: Partner Center must answer too
            proved.append(
                "a Partner Center token was acquired and the invoice list shows "
                f"{len(invoices)} invoice(s)"
            )
            logger.info("Connection test: %s", proved[-1])
        else:
            proved.append("discover_invoices is off: Partner Center not asked")
    logger.info("Connection test passed (%d checks); no export was started", len(proved))
    ctx.exit()


def with_test_help(command: click.Command) -> click.Command:
    """The SDK's command with ``--test`` described as this tap runs it."""
    for param in command.params:
        if param.name == "test":
            param.help = TEST_HELP
    return command
