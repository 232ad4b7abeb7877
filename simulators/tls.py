"""A throw-away certificate authority for the local HTTPS endpoints.

MSAL insists on an HTTPS authority and Microsoft's Dataverse SDK refuses http, so every simulator
serves TLS with a certificate issued by this CA. Clients trust it through the CA bundle file.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import trustme


class LocalCA:
    """A CA plus one server certificate for the loopback names."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="bcsync local test CA")
        self._server = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        self.ca_file = self.folder / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.configure_cert(ctx)
        return ctx

    def server_files(self) -> tuple[Path, Path]:
        """The server certificate (with its chain) and key as PEM files, for servers that read files (Azurite)."""
        cert, key = self.folder / "server.pem", self.folder / "server-key.pem"
        if not cert.exists():
            cert.write_bytes(b"".join(blob.bytes() for blob in self._server.cert_chain_pems))
            self._server.private_key_pem.write_to_path(str(key))
        return cert, key

    def combined_bundle(self) -> Path:
        """The system trust store plus this CA, for tools that only read REQUESTS_CA_BUNDLE."""
        import certifi  # requests depends on certifi, so it is always present

        path = self.folder / "ca-bundle.pem"
        system = Path(os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where())
        parts = [system.read_text() if system.is_file() else "", self.ca_file.read_text()]
        path.write_text("\n".join(parts))
        return path
