"""TLS contexts for MLLP: the hub's (client certificates required) and a facility's.

Modern defaults: TLS 1.2 at least, the ssl module's default ciphers, no
compression, no renegotiation. The server verifies every client certificate
against the CA bundle configured for facilities; the facility is then named by
the certificate (see :mod:`connectors.facilities`).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from hutong.errors import ConfigError

__all__ = ["client_context", "server_context"]


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path, what: str) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{what}: cannot load certificate {cert} with key {key} "
                          f"({getattr(exc, 'reason', None) or exc})") from exc


def _load_ca(context: ssl.SSLContext, ca: Path, what: str) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{what}: cannot load CA bundle {ca} "
                          f"({getattr(exc, 'reason', None) or exc})") from exc


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """The hub's side: presents ``cert``, requires a client certificate signed by ``client_ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.verify_mode = ssl.CERT_REQUIRED
    _load_chain(context, cert, key, "MLLP over TLS")
    _load_ca(context, client_ca, "MLLP over TLS (tls_client_ca_file)")
    return context


def client_context(ca: Path | None, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    """A facility's side: trusts ``ca`` (else the system store), presents ``cert`` if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        _load_ca(context, ca, "hutong send --ca")
    if cert is not None:
        _load_chain(context, cert, key or cert, "hutong send --cert")
    return context
