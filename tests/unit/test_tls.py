"""Every hutong listener's TLS defaults, and the HTTP servers' use of them.

What a handshake with TLS 1.0/1.1 meets is tested on a running hub
(tests/integration/test_security_hub.py); here, the contexts themselves.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from connectors.tls import http_server_context, server_context
from hutong.config import Settings
from hutong.errors import ConfigError
from hutong.hub import http_config


@pytest.fixture
def pem(tmp_path: Path) -> tuple[Path, Path]:
    ca = trustme.CA()
    ca.issue_cert("hub.example").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return tmp_path / "server.pem", tmp_path / "ca.pem"


def _contexts(pem: tuple[Path, Path]) -> list[ssl.SSLContext]:
    server, ca = pem
    return [server_context(server, server, ca), http_server_context(server, server)]


def test_servers_take_tls_1_2_and_up_only(pem: tuple[Path, Path]) -> None:
    for context in _contexts(pem):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.options & ssl.OP_NO_COMPRESSION
        assert context.options & ssl.OP_NO_RENEGOTIATION


def test_tls_1_2_suites_are_forward_secret_aead_only(pem: tuple[Path, Path]) -> None:
    for context in _contexts(pem):
        tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12
        for cipher in tls12:
            assert cipher["aead"], cipher["name"]
            assert cipher["kea"] in ("kx-ecdhe", "kx-dhe"), cipher["name"]


def test_mllp_requires_a_client_certificate_and_http_does_not(pem: tuple[Path, Path]) -> None:
    mllp, http = _contexts(pem)
    assert mllp.verify_mode == ssl.CERT_REQUIRED
    assert http.verify_mode == ssl.CERT_NONE  # callers authenticate by token


def test_the_http_servers_use_the_hardened_context(pem: tuple[Path, Path]) -> None:
    server, _ = pem
    settings = Settings(http_tls=True, tls_cert_file=server, tls_key_file=server)
    config = http_config(settings, app=None, port=1)
    config.load()
    assert config.ssl is not None and config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.ssl.options & ssl.OP_NO_COMPRESSION
    assert settings.api_url.startswith("https://")
    plain = http_config(Settings(), app=None, port=1)
    plain.load()
    assert plain.ssl is None


def test_http_tls_needs_a_certificate_and_a_readable_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http_tls needs tls_cert_file"):
        Settings(http_tls=True)
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match="cannot load certificate"):
        http_config(Settings(http_tls=True, tls_cert_file=missing, tls_key_file=missing),
                    app=None, port=1)
