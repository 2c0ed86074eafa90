"""The stream worker's Kafka credentials, from the librdkafka settings every client shares.

The hub's other clients are librdkafka and take ``kafka_config`` as it is; Faust
(aiokafka) wants credentials objects. This maps the usual cluster settings
(``security.protocol``, ``sasl.mechanism``, ``sasl.username``, ``sasl.password``,
``ssl.ca.location``, ``ssl.certificate.location``, ``ssl.key.location``) and
refuses what aiokafka cannot do here (GSSAPI, OAUTHBEARER), rather than connect
without them.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import faust

from hutong.errors import ConfigError

__all__ = ["faust_credentials"]

_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


def _ssl_context(config: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.get("ssl.ca.location"))
    if config.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    cert = config.get("ssl.certificate.location")
    if cert:
        context.load_cert_chain(cert, config.get("ssl.key.location"),
                                config.get("ssl.key.password"))
    return context


def faust_credentials(config: Mapping[str, Any]) -> Any | None:
    """Faust ``broker_credentials`` for these librdkafka settings; None for plaintext."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(config))
    if protocol not in {"SASL_SSL", "SASL_PLAINTEXT"}:
        raise ConfigError(f"kafka_config: security.protocol {protocol!r} is not one of "
                          "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    mechanism = str(config.get("sasl.mechanism", "GSSAPI")).upper()
    if mechanism not in _MECHANISMS:
        raise ConfigError(f"kafka_config: the stream worker cannot use sasl.mechanism "
                          f"{mechanism!r}; use one of {', '.join(sorted(_MECHANISMS))}")
    username, password = config.get("sasl.username"), config.get("sasl.password")
    if not username or not password:
        raise ConfigError("kafka_config: SASL needs sasl.username and a password "
                          "(kafka_sasl_password)")
    context = _ssl_context(config) if protocol == "SASL_SSL" else None
    return faust.SASLCredentials(username=username, password=password, mechanism=mechanism,
                                 ssl_context=context)
