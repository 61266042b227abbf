"""The tap's calendar: the UTC wall clock, and billing months (``YYYYMM``) as text.

One place for the date arithmetic every layer shares (the service clients, the planner, the
streams, the events): it imports nothing of the tap. The sandbox keeps its own copy of the
month arithmetic on purpose (it must not import the tap).
"""

from __future__ import annotations

from datetime import date, datetime, timezone


def utc_now() -> datetime:
    """The wall clock, timezone-aware (UTC)."""
    return datetime.now(timezone.utc)


def utc_now_text() -> str:
    """Now as ISO 8601 text with its offset (``started_at``, ``_sdc_deleted_at``)."""
    return utc_now().isoformat()


def month_of_date(day: date) -> str:
    """``day``'s month as ``YYYYMM``."""
    return f"{day.year:04d}{day.month:02d}"


def shift_month(month: str, months: int) -> str:
    """``YYYYMM`` moved by ``months`` (``shift_month("202601", -1)`` is ``202512``)."""
    index = int(month[:4]) * 12 + int(month[4:]) - 1 + months
    return f"{index // 12:04d}{index % 12 + 1:02d}"


def previous_month(month: str) -> str:
    """``202601`` → ``202512``."""
    return shift_month(month, -1)
