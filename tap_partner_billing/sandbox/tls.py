"""A throwaway certificate authority for the sandbox's HTTPS endpoints."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """The CA bundle clients trust (``REQUESTS_CA_BUNDLE``) and the server's cert and key."""

    ca_bundle: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for a server on 127.0.0.1 / localhost."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and a certificate for 127.0.0.1 and localhost under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="tap-partner-billing sandbox CA")
    server = authority.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    authority.cert_pem.write_to_path(str(files.ca_bundle))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files.server_cert), append=True)
    server.private_key_pem.write_to_path(str(files.server_key))
    return files
