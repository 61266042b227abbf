"""Put a partition's blobs into Azurite (the real Azure Storage emulator) and hand out its SAS.

Azurite has no hierarchical namespace, so it cannot issue the directory SAS (``sr=d``) the
real service does; a read-only container SAS stands in for it.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteStore:
    """Uploads blobs on first use and signs container SAS tokens."""

    def __init__(self, account_url: str, *, ca_bundle: str) -> None:
        self.account_url = account_url.rstrip("/")
        self._client = BlobServiceClient(
            self.account_url,
            credential={"account_name": DEV_ACCOUNT, "account_key": DEV_KEY},
            connection_verify=ca_bundle,
        )
        self._uploaded: set[str] = set()

    def place(
        self, container: str, directory: str, blobs: dict[str, bytes], expires: float
    ) -> tuple[str, str]:
        """Upload ``blobs`` under ``container/directory`` once; return (rootDirectory, SAS)."""
        if container not in self._uploaded:
            with contextlib.suppress(ResourceExistsError):
                self._client.create_container(container)
            self._uploaded.add(container)
        container_client = self._client.get_container_client(container)
        for name, body in blobs.items():
            path = f"{directory}/{name}"
            if path not in self._uploaded:
                container_client.upload_blob(path, body, overwrite=True)
                self._uploaded.add(path)
        sas = generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_KEY,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.fromtimestamp(expires, tz=timezone.utc),
        )
        return f"{self.account_url}/{container}/{directory}", sas
