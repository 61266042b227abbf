"""The export manifest: where a partition's blobs live and the SAS that opens them."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from tap_partner_billing.errors import ManifestError, RecordValueError, UrlPolicyError
from tap_partner_billing.records.fields import to_datetime_text
from tap_partner_billing.redact import register_sas
from tap_partner_billing.service.url_policy import UrlPolicy

LOGGER = logging.getLogger(__name__)

# Both spellings are in circulation: the Graph docs say compressedJSONLines, real responses
# and the doc example say compressedJSON. Both mean gzip + JSON Lines.
SUPPORTED_DATA_FORMATS = frozenset({"compressedjson", "compressedjsonlines"})
_SEGMENT = re.compile(r"(?i)^(BillingMonth|InvoiceId|InvoiceVersion|Currency|Fragment)=(.+)$")
MAX_BLOBS = 100_000
MAX_BLOB_NAME_CHARS = 1024  # Azure's own limit for a blob name
# A blob name is a relative path below rootDirectory: printable, no backslash, no scheme.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\\?#]|://")


def blob_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be fetched below ``rootDirectory`` (``None``: it can)."""
    if not name or len(name) > MAX_BLOB_NAME_CHARS:
        return "is empty or too long"
    if _UNSAFE_NAME.search(name):
        return "holds a control character, backslash, ?, # or a scheme"
    if name.startswith("/"):
        return "is absolute"
    if any(segment in {"", ".", ".."} for segment in name.split("/")):
        return "has an empty, . or .. path segment"
    return None


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)[:200]


@dataclass(frozen=True)
class BlobRef:
    """One gzip JSON-lines file of a manifest."""

    name: str
    partition_value: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest (reference §5)."""

    id: str
    etag: str
    created: str | None
    root_directory: str
    sas_token: str = field(repr=False)
    blobs: tuple[BlobRef, ...]
    schema_version: str | None = None

    @classmethod
    def parse(cls, body: object, *, where: str) -> Manifest:
        """Validate a manifest JSON object.

        Args:
            body: The decoded manifest (inline ``resourceLocation`` or the manifest GET).
            where: Dataset and partition, for error messages.

        Raises:
            ManifestError: When a required field is missing or inconsistent.
        """
        if not isinstance(body, dict):
            raise ManifestError(f"{where}: manifest is not a JSON object")
        missing = [key for key in ("rootDirectory", "sasToken", "blobs") if not body.get(key)]
        if "blobs" in missing and isinstance(body.get("blobs"), list):
            missing.remove("blobs")  # an empty blob list is a (strange but) valid empty export
        if missing:
            raise ManifestError(f"{where}: manifest {body.get('id')} lacks {', '.join(missing)}")
        data_format = str(body.get("dataFormat", "compressedJSON"))
        if data_format.lower() not in SUPPORTED_DATA_FORMATS:
            raise ManifestError(
                f"{where}: manifest dataFormat {data_format!r} is not gzip JSON lines"
            )
        root = str(body["rootDirectory"]).rstrip("/")
        try:
            UrlPolicy.for_base(root, "manifest rootDirectory", folder=True)
        except UrlPolicyError as err:
            raise ManifestError(f"{where}: {err}") from None
        blobs = _blob_refs(body["blobs"], body.get("blobCount"), where)
        created = _created(body.get("createdDateTime"), where)
        sas_token = str(body["sasToken"]).lstrip("?")
        register_sas(sas_token)
        return cls(
            id=str(body.get("id") or "")[:200],
            etag=str(body.get("eTag") or ""),
            created=created,
            root_directory=root,
            sas_token=sas_token,
            blobs=blobs,
            schema_version=_text_or_none(body.get("schemaVersion")),
        )

    def path_segments(self) -> dict[str, str]:
        """Hive-style ``Key=Value`` segments of ``rootDirectory`` (lower-cased keys)."""
        found: dict[str, str] = {}
        for segment in urlsplit(self.root_directory).path.split("/"):
            match = _SEGMENT.match(segment)
            if match:
                found[match.group(1).lower()] = match.group(2)
        return found

    @property
    def billing_month(self) -> str | None:
        """``YYYYMM`` from the ``BillingMonth=`` segment, if present."""
        month = self.path_segments().get("billingmonth")
        return month if month and re.fullmatch(r"\d{6}", month) else None

    @property
    def invoice_version(self) -> str | None:
        """The ``InvoiceVersion=`` segment of billed exports, if present."""
        return self.path_segments().get("invoiceversion")

    @property
    def blob_list_digest(self) -> str:
        """A short fingerprint of the blob list, so resume progress can tell it is the same."""
        joined = "\n".join(b.name for b in self.blobs).encode()
        return hashlib.sha256(joined).hexdigest()[:16]

    @property
    def url_policy(self) -> UrlPolicy:
        """Where this manifest's blobs may be fetched from: below ``rootDirectory``."""
        return UrlPolicy.for_base(self.root_directory, "manifest rootDirectory", folder=True)

    def blob_url(self, blob: BlobRef) -> str:
        """``rootDirectory/name?sasToken`` — secret: never log it (redact_text masks it)."""
        return f"{self.root_directory}/{quote(blob.name)}?{self.sas_token}"


def _blob_refs(raw: object, count: object, where: str) -> tuple[BlobRef, ...]:
    """The manifest's blobs, validated, in name order.

    Raises:
        ManifestError: Naming what is wrong with the blob list (a ``blobCount`` that
            differs from it is only a warning).
    """
    if not isinstance(raw, list) or not all(
        isinstance(b, dict) and isinstance(b.get("name"), str) and b["name"] for b in raw
    ):
        raise ManifestError(f"{where}: manifest blobs must be objects with a name")
    if len(raw) > MAX_BLOBS:
        raise ManifestError(f"{where}: manifest lists more than {MAX_BLOBS} blobs")
    names = [b["name"] for b in raw]
    for name in names:
        if problem := blob_name_problem(name):
            shown = repr(name[:80])
            raise ManifestError(f"{where}: manifest blob name {shown} {problem}; refused")
    if len(set(names)) != len(names):
        raise ManifestError(f"{where}: manifest lists a blob name twice")
    if count is not None and count != len(raw):
        # The docs define blobCount as "the total file count for this partner tenant ID";
        # Microsoft's own sample ignores it. The list is what can be read: it is read whole.
        LOGGER.warning(
            "%s: manifest blobCount is %s but its blob list names %d; reading the %d listed",
            where,
            str(count)[:40],
            len(raw),
            len(raw),
        )
    # Ordinals are assigned over blobs in name order, so the order is part of the key.
    return tuple(
        BlobRef(b["name"], _text_or_none(b.get("partitionValue")))
        for b in sorted(raw, key=lambda b: str(b["name"]))
    )


def _created(created: object, where: str) -> str | None:
    """``createdDateTime`` as UTC text.

    Raises:
        ManifestError: It is not a date.
    """
    if created is None:
        return None
    if not isinstance(created, str):
        raise ManifestError(f"{where}: manifest createdDateTime is not a string")
    try:
        return to_datetime_text(created)
    except RecordValueError as err:
        raise ManifestError(f"{where}: manifest createdDateTime: {err}") from None
