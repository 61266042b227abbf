"""Exceptions raised by the export, blob and record layers (no Singer imports here)."""

from __future__ import annotations


class PartnerBillingError(Exception):
    """Base class for every error this tap raises on purpose."""


class ConfigurationError(PartnerBillingError):
    """A setting is missing, malformed or contradicts another."""


class AuthenticationError(PartnerBillingError):
    """A token could not be acquired from Microsoft Entra ID."""


class TransientHTTPError(PartnerBillingError):
    """A request failed in a way worth retrying (429, 5xx, connection loss)."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ServiceError(PartnerBillingError):
    """The service answered in a way the tap cannot continue from."""


class UrlPolicyError(ServiceError):
    """A URL is not one the tap may send a credential to or fetch data from (see url_policy.py)."""


class ExportFailedError(ServiceError):
    """An export operation ended as failed, skipped or with an unknown status."""


class ExportTimeoutError(ServiceError):
    """An export operation did not finish before the poll deadline."""


class OperationGoneError(ServiceError):
    """The operation or manifest URL answered 404/410: the export must be started again."""


class ManifestError(ServiceError):
    """A manifest is missing fields or describes data the tap cannot read."""


class SasExpiredError(ServiceError):
    """Blob storage refused the SAS (HTTP 403): a fresh manifest is needed."""


class BlobDataError(PartnerBillingError):
    """A blob holds bytes or lines that are not valid gzip JSON lines."""


class RecordValueError(PartnerBillingError):
    """A field of a line holds a value that does not fit its declared type."""


class ResourceLimitError(BlobDataError):
    """A blob or line is larger, more compressed or deeper than the configured limits allow."""


class StateError(PartnerBillingError):
    """The saved state holds something the tap refuses to use (the message says how to recover)."""


class TerminatedError(SystemExit):
    """The run was asked to stop (SIGTERM); raised between messages, never inside one."""


# What an app without the Graph permission must do; used by --test and a 403 at run time.
REQUIRED_ROLE = "PartnerBilling.Read.All"
PERMISSION_HINT = (
    f"the app registration needs the Microsoft Graph application permission {REQUIRED_ROLE} "
    "with admin consent: Microsoft Entra admin center → App registrations → (the app) → "
    f"API permissions → Add a permission → Microsoft Graph → Application permissions → "
    f"{REQUIRED_ROLE}, then 'Grant admin consent for (the partner tenant)'; a token issued "
    "before the consent lacks the role for up to an hour (see the README's Permissions section)"
)


class MissingPermissionError(ServiceError):
    """Graph refused the app for want of its permission (403), or the token lacks the role."""
