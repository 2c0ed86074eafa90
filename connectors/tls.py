"""TLS contexts: MLLP (client certificates required), the HTTP servers, a facility's side.

Modern defaults on every server context (:func:`harden`): TLS 1.2 at least,
forward-secret AEAD cipher suites only for TLS 1.2 (TLS 1.3 suites are all
AEAD), the server's cipher order, no compression, no renegotiation. The MLLP
server verifies every client certificate against the CA bundle configured for
facilities; the facility is then named by the certificate (see
:mod:`connectors.facilities`). The HTTP API and the ClickHouse HTTP interface
authenticate callers by token instead, so they ask for no client certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from hutong.errors import ConfigError

__all__ = ["MINIMUM_VERSION", "TLS12_CIPHERS", "client_context", "harden",
           "http_server_context", "server_context"]

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: TLS 1.2 suites allowed: ECDHE or DHE key exchange (forward secrecy), AES-GCM or
#: ChaCha20-Poly1305; no CBC, RC4, 3DES, static RSA key exchange, or anonymous suites.
TLS12_CIPHERS = ("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:"
                 "!aNULL:!eNULL:!MD5:!DSS:!SHA1")


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """The server defaults of every hutong listener, applied to ``context``."""
    context.minimum_version = MINIMUM_VERSION
    context.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
                        | ssl.OP_CIPHER_SERVER_PREFERENCE)
    context.set_ciphers(TLS12_CIPHERS)
    return context


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
    """The hub's MLLP side: presents ``cert``, requires a client certificate signed by
    ``client_ca``."""
    context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.verify_mode = ssl.CERT_REQUIRED
    _load_chain(context, cert, key, "MLLP over TLS")
    _load_ca(context, client_ca, "MLLP over TLS (tls_client_ca_file)")
    return context


def http_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The HTTP API's and the ClickHouse HTTP interface's side: presents ``cert``;
    callers authenticate by token, not by certificate."""
    context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    _load_chain(context, cert, key, "HTTP over TLS (http_tls)")
    return context


def client_context(ca: Path | None, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    """A facility's side: trusts ``ca`` (else the system store), presents ``cert`` if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = MINIMUM_VERSION
    if ca is not None:
        _load_ca(context, ca, "hutong send --ca")
    if cert is not None:
        _load_chain(context, cert, key or cert, "hutong send --cert")
    return context
