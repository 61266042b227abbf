"""Invoice discovery through Partner Center REST ``GET /v1/invoices``. No Singer in here.

Graph offers no invoice list (reference §7), so the billed exports learn their invoice numbers
from Partner Center, which wants a token of its own audience. The list is read once per run
and shared: the ``invoices`` stream emits it, the billed streams export from it, and the
unbilled streams use it to see that a month has been invoiced.

The list is read as documents (``docs/invoices.md``): an amendment nested in its invoice's
``amendments`` is a document of its own, and a document listed twice is one document.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tap_partner_billing.dates import previous_month
from tap_partner_billing.errors import RecordValueError, ServiceError
from tap_partner_billing.records.fields import to_datetime_text, to_decimal_text
from tap_partner_billing.service.responses import read_body, service_error
from tap_partner_billing.service.transport import Outcome, RetryPolicy, classify, send
from tap_partner_billing.service.url_policy import CheckedSession, UrlPolicy, describe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

LOGGER = logging.getLogger(__name__)
PARTNER_CENTER_SCOPE = "https://api.partnercenter.microsoft.com/.default"
INVOICES_PATH = "/v1/invoices"
MAX_PAGES = 1_000
MAX_HEADERS = 8
# Amendments nested in amendments are read to this depth, and at most this many documents
# per top-level item: deeper or more is an error, not an unbounded walk.
MAX_NESTING_DEPTH = 16
MAX_NESTED_DOCUMENTS = 10_000
# documentType of a nested document that names none: it amends the one that lists it, and it
# is no invoice (it never closes an unbilled month, and has no usage).
AMENDMENT = "amendment"
# A next link may carry a continuation header; never one that could replace ours.
_RESERVED_HEADERS = frozenset({"authorization", "host", "cookie", "content-length"})
# Modern (new commerce) invoices are "G" + digits; only they have Graph export data. Legacy
# recurring licence invoices start with "D" (reference §7).
_EXPORTABLE = re.compile(r"^G[0-9]+$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})")


@dataclass(frozen=True)
class Invoice:
    """One entry of the invoice list, with the fields the tap uses and emits."""

    id: str
    invoice_date: str | None  # dates as UTC ISO 8601 text
    billing_period_start: str | None
    billing_period_end: str | None
    document_type: str | None
    invoice_type: str | None
    currency_code: str | None
    total_charges: str | None  # exact decimal text
    paid_amount: str | None
    amends_of: str | None  # amendsOf, else the document whose amendments list it
    amendments: tuple[str, ...]
    details: str | None  # invoiceDetails as JSON text
    billing_month: str | None  # YYYYMM, see _own_billing_month and list_documents

    @property
    def has_export_data(self) -> bool:
        """Whether Graph can have billed exports for it (``G…`` ids only)."""
        return bool(_EXPORTABLE.match(self.id))


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return None if value is None else str(value)


def _typed(item: dict[str, Any], key: str, where: str, convert: Callable[[Any], str]) -> str | None:
    """``item[key]`` through ``convert`` (exact decimal or UTC date text); errors name it."""
    value = item.get(key)
    if value is None:
        return None
    try:
        return convert(value)
    except RecordValueError as err:
        msg = f"{where}: {key}: {err}"
        raise ServiceError(msg) from None


def _date_text(value: object) -> str:
    if not isinstance(value, str):
        msg = f"{value!r} is not a date"
        raise RecordValueError(msg)
    return to_datetime_text(value)


def _own_billing_month(item: dict[str, Any]) -> str | None:
    """``YYYYMM`` of the billing period start, else the month before the invoice date.

    Read from the text as written, not shifted to UTC: a period that starts at local midnight
    east of Greenwich is still that month. An amendment without a period takes its amended
    document's month instead when that is listed (:func:`list_documents`).
    """
    start = _MONTH.match(str(item.get("billingPeriodStartDate") or ""))
    if start:
        return start.group(1) + start.group(2)
    issued = _MONTH.match(str(item.get("invoiceDate") or ""))
    if issued:
        return previous_month(issued.group(1) + issued.group(2))
    return None


def _nested(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The amendments listed inside ``item``: invoice objects (bare ids are read as ``{id}``)."""
    amendments = item.get("amendments") or []
    if not isinstance(amendments, list):
        msg = f"{where}: amendments is not a list"
        raise ServiceError(msg)
    return [a if isinstance(a, dict) else {"id": str(a)} for a in amendments if a]


def _own_amends_of(item: dict[str, Any]) -> str | None:
    """``amendsOf`` as listed; a document naming itself amends nothing."""
    amends = _text(item, "amendsOf")
    return None if amends == item["id"] else amends


def parse_invoice(item: object, where: str, *, nested_in: Invoice | None = None) -> Invoice:
    """Read one document of the list; ``where`` names it in errors.

    ``nested_in``: the document whose ``amendments`` list this one. A nested document takes
    from it what it does not say itself (``docs/invoices.md``): it amends that document, is
    in its currency, and its documentType is :data:`AMENDMENT`.
    """
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        msg = f"{where}: an item without a string id"
        raise ServiceError(msg)
    where = f"{where}, invoice {item['id']}"
    amendment_ids = tuple(str(a.get("id")) for a in _nested(item, where))
    details = item.get("invoiceDetails")
    return Invoice(
        id=item["id"],
        invoice_date=_typed(item, "invoiceDate", where, _date_text),
        billing_period_start=_typed(item, "billingPeriodStartDate", where, _date_text),
        billing_period_end=_typed(item, "billingPeriodEndDate", where, _date_text),
        document_type=_text(item, "documentType") or (None if nested_in is None else AMENDMENT),
        invoice_type=_text(item, "invoiceType"),
        currency_code=_text(item, "currencyCode")
        or (nested_in.currency_code if nested_in else None),
        total_charges=_typed(item, "totalCharges", where, to_decimal_text),
        paid_amount=_typed(item, "paidAmount", where, to_decimal_text),
        amends_of=_own_amends_of(item) or (nested_in.id if nested_in else None),
        amendments=amendment_ids,
        details=None if details is None else json.dumps(details, sort_keys=True, default=str),
        billing_month=_own_billing_month(item),
    )


def list_documents(items: Iterable[tuple[object, str]]) -> list[Invoice]:
    """Every document of the list once, in list order, each amendment after its invoice.

    ``items``: the top-level items of every page, each with its name for errors. A document
    nested in another's ``amendments`` is a document of its own. A document listed more than
    once (nested and at the top level, or on two pages) is one document with the fields of
    its first top-level copy: that is the document's own entry, while a nested copy is an
    abridged view inside another document (the documented one lacks the top-level copy's
    links and PDF link). An amendment without billing-period dates takes the billing month of
    the document it amends when that is listed (``docs/invoices.md``).
    """
    top: dict[str, Invoice] = {}
    listed: list[Invoice] = []  # every copy, in list order
    for item, where in items:
        copies = _copies(item, where)
        top.setdefault(copies[0].id, copies[0])
        listed.extend(copies)
    amended: dict[str, str] = {}  # id → what the first copy that names one says it amends
    for copy in listed:
        if copy.amends_of:  # a document never names itself (_own_amends_of, _copies)
            amended.setdefault(copy.id, copy.amends_of)
    documents: dict[str, Invoice] = {}
    for copy in listed:
        if copy.id not in documents:
            chosen = top.get(copy.id, copy)
            documents[copy.id] = replace(chosen, amends_of=chosen.amends_of or amended.get(copy.id))
    return [replace(d, billing_month=_billing_month(d, documents)) for d in documents.values()]


def _copies(item: object, where: str) -> list[Invoice]:
    """A top-level item's own document, then every document nested in it, each after its lister.

    An amendment may list amendments of its own: they are documents too, each nested one
    read in the context of the document that lists it (:func:`parse_invoice`). An id already
    read inside this item is not read again (a document listing itself, or a loop), and
    nesting deeper than :data:`MAX_NESTING_DEPTH` or more than :data:`MAX_NESTED_DOCUMENTS`
    documents is an error naming the item.
    """
    invoice = parse_invoice(item, where)
    copies = [invoice]
    seen = {invoice.id}
    # (raw item, its document, where, depth of what it lists): a stack, not recursion.
    stack = [(item, invoice, f"{where}, invoice {invoice.id}", 1)]
    while stack:
        parent_item, parent, parent_where, depth = stack.pop()
        children = _nested(parent_item, parent_where) if isinstance(parent_item, dict) else []
        found: list[tuple[object, Invoice, str, int]] = []
        for n, child in enumerate(children, 1):
            child_where = f"{parent_where}, amendment {n}"
            if depth > MAX_NESTING_DEPTH:
                msg = f"{child_where}: amendments nested more than {MAX_NESTING_DEPTH} deep"
                raise ServiceError(msg)
            document = parse_invoice(child, child_where, nested_in=parent)
            if document.id in seen:
                continue
            seen.add(document.id)
            if len(seen) > MAX_NESTED_DOCUMENTS + 1:
                msg = f"{where}: more than {MAX_NESTED_DOCUMENTS} nested amendments"
                raise ServiceError(msg)
            copies.append(document)
            found.append((child, document, f"{child_where}, invoice {document.id}", depth + 1))
        stack.extend(reversed(found))
    return copies


def _billing_month(document: Invoice, documents: dict[str, Invoice]) -> str | None:
    """The billing month of ``document``, following ``amends_of`` while it names no period.

    The chain ends at a document with a period, or whose amended document is not listed:
    that one's own month counts (its period, else the month before its invoice date).
    """
    current, seen = document, {document.id}
    while (
        current.billing_period_start is None
        and current.amends_of in documents
        and current.amends_of not in seen
    ):
        current = documents[current.amends_of]
        seen.add(current.id)
    return current.billing_month or document.billing_month


class InvoiceClient:
    """Reads the whole invoice list, following ``links.next`` on the same origin."""

    def __init__(
        self,
        *,
        base_url: str,
        token: Callable[[], str],
        sleep: Callable[[float], None],
        policy: RetryPolicy | None = None,
    ) -> None:
        self._url_policy = UrlPolicy.for_base(base_url, "partner_center_url")
        self._session = CheckedSession(self._url_policy, bearer=token)
        self._base = base_url.rstrip("/")
        self._sleep = sleep
        self._policy = policy or RetryPolicy()

    def list_invoices(self) -> list[Invoice]:
        """Every document Partner Center lists, once each, in its order (:func:`list_documents`).

        Raises:
            ServiceError: A refused request, a body that is not an invoice list, or a next
                link on another origin (the token would go there).
        """
        url = f"{self._base}{INVOICES_PATH}"
        headers: dict[str, str] = {}
        items: list[tuple[object, str]] = []
        asked: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        # One budget for the whole list: transient failures are counted over all its pages.
        budget = self._policy.budget("Partner Center invoice list", sleep=self._sleep)
        for page in range(1, MAX_PAGES + 1):
            where = f"Partner Center invoice list, page {page}"
            self._url_policy.check(url, where)
            request = (url, tuple(sorted(headers.items())))
            if request in asked:  # modern invoices ignore size/offset: a link could repeat
                msg = f"{where}: the next link asks for a page already read ({describe(url)})"
                raise ServiceError(msg)
            asked.add(request)
            response = send(self._session, "GET", url, budget=budget, headers=headers, stream=True)
            if response.status_code != HTTPStatus.OK:
                hint = (
                    " (the app needs Partner Center API access; set discover_invoices to false "
                    "to export invoice_ids only)"
                    if classify(response.status_code) in {Outcome.TOKEN_REFUSED, Outcome.FORBIDDEN}
                    else ""
                )
                msg = f"{where}: {service_error(response)}{hint}"
                raise ServiceError(msg)
            try:
                body = json.loads(read_body(response, where), parse_float=Decimal)
            except (ValueError, RecursionError):
                msg = f"{where}: the body is not JSON"
                raise ServiceError(msg) from None
            page_items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(page_items, list):
                msg = f"{where}: no items list in the answer"
                raise ServiceError(msg)
            items.extend((item, f"{where}, item {n}") for n, item in enumerate(page_items, 1))
            next_url, headers = _next_page(body, self._base)
            if next_url is None:
                return list_documents(items)
            url = next_url
        msg = f"Partner Center invoice list: more than {MAX_PAGES} pages"
        raise ServiceError(msg)


def _next_page(body: dict[str, Any], base: str) -> tuple[str | None, dict[str, str]]:
    """The next page's URL and headers (a continuation token travels as a header)."""
    links = body.get("links")
    nxt = links.get("next") if isinstance(links, dict) else None
    if not isinstance(nxt, dict) or not nxt.get("uri"):
        return None, {}
    uri = str(nxt["uri"])
    raw_headers = nxt.get("headers") or []
    headers = {
        str(h["key"]): str(h["value"])
        for h in (raw_headers if isinstance(raw_headers, list) else [])
        if isinstance(h, dict) and "key" in h and "value" in h
    }
    if any(key.lower() in _RESERVED_HEADERS for key in headers) or len(headers) > MAX_HEADERS:
        msg = "Partner Center invoice list: a next link asks for headers the tap does not send"
        raise ServiceError(msg)
    parts = urlsplit(uri)
    if parts.scheme or parts.netloc:  # it names a host (or a scheme): the policy judges it
        # the caller checks the origin before sending the token; "//host/…" is https
        return (uri if parts.scheme else f"https:{uri}"), headers
    # Partner Center writes next links relative to its /v1 root ("/invoices?size=…").
    path = uri.lstrip("/")
    if not path.startswith("v1/"):
        path = "v1/" + path
    return f"{base}/{path}", headers


def invoices_to_export(
    invoices: Iterable[Invoice], *, start_month: str | None, explicit: Iterable[str]
) -> list[str]:
    """The invoice ids the billed streams export, sorted.

    Explicit ids always count (even legacy ones or ones the list does not show: they are
    the escape hatch). Discovered ones count when Graph can have data for them and their
    billing month is ``start_month`` or later (unknown months count, with a warning).
    """
    chosen = set(explicit)
    for invoice in invoices:
        if invoice.id in chosen:
            continue
        if not invoice.has_export_data:
            LOGGER.info(
                "invoice %s (%s) is skipped: only G… invoices have Graph export data",
                invoice.id,
                invoice.document_type or "unknown type",
            )
            continue
        month = invoice.billing_month
        if month is None:
            LOGGER.warning("invoice %s names no billing period; exporting it", invoice.id)
        elif start_month is not None and month < start_month:
            continue
        chosen.add(invoice.id)
    return sorted(chosen)
