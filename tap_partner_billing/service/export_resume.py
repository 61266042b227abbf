"""A saved operation, resumed by the next run rather than POSTed again. No Singer.

A partition's ``pending`` dict (Singer state) holds ``{"operation_url", "started_at",
"resumed"}`` for each export in flight when a run wrote STATE. See docs/scheduler.md.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from tap_partner_billing.errors import StateError, UrlPolicyError
from tap_partner_billing.service.export_jobs import Phase, short_id

if TYPE_CHECKING:
    from tap_partner_billing.service.export_jobs import Job
    from tap_partner_billing.service.url_policy import UrlPolicy

LOGGER = logging.getLogger(__name__)
MAX_RESUMES = 1  # runs that may resume one saved operation


def age_seconds(started_at: object, now: datetime) -> float:
    """Seconds since a saved ``started_at`` (0 when absent, unreadable or ahead of ``now``)."""
    try:
        started = datetime.fromisoformat(str(started_at))
    except ValueError:
        return 0.0
    if started.tzinfo is None:
        return 0.0
    return max(0.0, (now - started).total_seconds())


def resume(job: Job, url_policy: UrlPolicy, clock: float, now: datetime) -> StateError | None:
    """Resume ``job``'s saved operation, if it has one: running, its deadline from its POST.

    A saved URL off ``graph_url``'s origin is dropped from ``pending`` and returned as the
    error of its turn: whoever can write the state could otherwise aim the token anywhere.
    An export is a snapshot: one that already waited through a run that ended before its
    turn is dropped, to be asked for again rather than carried from run to run.
    """
    saved = job.pending.get(job.slot)
    if not isinstance(saved, dict) or not saved.get("operation_url"):
        return None
    url = str(saved["operation_url"])
    try:
        url_policy.check(url, f"{job.where}: saved operation URL")
    except UrlPolicyError as err:
        job.pending.pop(job.slot)
        msg = (
            f"{err}. The state was edited, or graph_url changed since it was saved. The "
            "URL is removed from the state this run wrote, so the next run starts a new "
            "export; if you did not change graph_url, check who can write your state."
        )
        return StateError(msg)
    if int(saved.get("resumed") or 0) >= MAX_RESUMES:
        LOGGER.info(
            "%s: the saved export operation %s was resumed by a run that ended before "
            "its turn; asking Graph again for current data",
            job.where,
            short_id(url),
        )
        job.pending.pop(job.slot)
        return None
    saved["resumed"] = int(saved.get("resumed") or 0) + 1
    job.url, job.phase, job.next_at = url, Phase.RUNNING, clock
    job.posted_at = clock - age_seconds(saved.get("started_at"), now)
    LOGGER.info("%s: resuming the saved export operation %s", job.where, short_id(url))
    return None
