"""What the streams of one run share: the clients, the invoice index, the summary counters.

The tap builds one :class:`SyncRun` and passes it to each stream's constructor, so a stream
never reaches back into the tap. Clients and the invoice index are built on first use:
``--discover`` and ``--about`` make no network call. No Singer in here.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from tap_partner_billing.emission.summary import StreamSummary
from tap_partner_billing.emission.workers import DecodeWorkers, default_worker_count
from tap_partner_billing.service.scheduler import DEFAULT_MAX_CONCURRENT_EXPORTS, ExportScheduler
from tap_partner_billing.sync.invoice_index import InvoiceIndex, invoice_list_warnings
from tap_partner_billing.sync.planner import refresh_warnings
from tap_partner_billing.sync.services import Services, build_services

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Mapping

    from tap_partner_billing.service.partner_center import Invoice


class SyncRun:
    """One run's shared objects, each built once, when first needed.

    Args:
        config: The validated, normalised settings (read when a part is first built).
        logger: Where the invoice list's count and warnings go (the tap's logger).
        make_services: Makes the clients from the settings (tests give a fake clock).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        logger: logging.Logger,
        make_services: Callable[[Mapping[str, Any]], Services] = build_services,
    ) -> None:
        self._config = config
        self._logger = logger
        self._make_services = make_services
        self.summaries: dict[str, StreamSummary] = {}

    @cached_property
    def services(self) -> Services:
        """The clients all streams use."""
        return self._make_services(self._config)

    @cached_property
    def scheduler(self) -> ExportScheduler:
        """Every export of the run, started ahead and polled together (``service/scheduler.py``)."""
        services = self.services
        return ExportScheduler(
            services.exports,
            clock=services.clock,
            sleep=services.sleep,
            interval=float(self._config["poll_interval_seconds"]),
            timeout=float(self._config["poll_timeout_seconds"]),
            max_concurrent=int(
                self._config.get("max_concurrent_exports") or DEFAULT_MAX_CONCURRENT_EXPORTS
            ),
        )

    @cached_property
    def decode_workers(self) -> DecodeWorkers | None:
        """The run's decode worker processes (``None``: decode in this process)."""
        count = self._config.get("decode_workers") or default_worker_count()
        if count <= 1:
            return None
        return DecodeWorkers(count, folder=self.services.blobs.spool_dir)

    def close(self, *, at_once: bool = False) -> None:
        """End what the run started (the decode workers; killed ``at_once`` after an error)."""
        workers: DecodeWorkers | None = self.__dict__.get("decode_workers")
        if workers is not None:
            workers.close(at_once=at_once)

    @cached_property
    def invoice_index(self) -> InvoiceIndex:
        """The invoice list read once (when discovery is on) and what it means for the run."""
        invoice_index = InvoiceIndex.from_settings(self._read_invoice_list(), self._config)
        refresh = self._config.get("refresh_invoice_ids") or []
        for warning in refresh_warnings(refresh, invoice_index.billed_invoice_ids):
            self._logger.warning("%s", warning)
        return invoice_index

    def _read_invoice_list(self) -> list[Invoice] | None:
        """Partner Center's invoice list, its count and warnings logged (None: discovery off)."""
        if not self._config.get("discover_invoices", True):
            return None
        invoices = self.services.invoices.list_invoices()
        self._logger.info("Partner Center lists %d invoice(s)", len(invoices))
        for warning in invoice_list_warnings(
            invoices,
            invoice_ids=self._config.get("invoice_ids") or [],
            currency_codes=self._config.get("currency_codes") or [],
        ):
            self._logger.warning("%s", warning)
        return invoices

    def summary_of(self, stream: str) -> StreamSummary:
        """The counters of ``stream`` in this run."""
        return self.summaries.setdefault(stream, StreamSummary())

    def log_summary(self, streams: Iterable[str], invoice_list_stream: str) -> None:
        """One line per stream in ``streams``: partitions, records, bytes, time.

        ``invoice_list_stream`` emits the invoice list: its line counts the list (0 when the
        run never read it).
        """
        for name in streams:
            if name == invoice_list_stream:
                invoice_index: InvoiceIndex | None = self.__dict__.get("invoice_index")
                count = len(invoice_index.invoices or ()) if invoice_index else 0
                self._logger.info("Run summary %s: %d records (the invoice list)", name, count)
            else:
                self._logger.info("%s", self.summary_of(name).line(name))
        scheduler: ExportScheduler | None = self.__dict__.get("scheduler")
        if scheduler is not None:
            self._logger.info("%s", scheduler.summary_line())
