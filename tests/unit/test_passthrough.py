"""TLS and SASL settings reach the clients: Kafka (librdkafka and Faust), ClickHouse,
PostgreSQL. Each client is built from the settings without connecting anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect.driver
import faust
import pytest
import trustme
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine

from hutong.config import Settings
from producers.kafka import producer_config
from sinks.docstore.store import store_url
from sinks.runner import consumer_config
from sinks.warehouse import open_warehouse
from streams.app import _faust_kafka_settings


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def sasl_settings(ca_file: Path) -> Settings:
    return Settings(kafka_bootstrap="kafka-0.example:9093", kafka_sasl_password="pw-1",
                    kafka_config={"security.protocol": "SASL_SSL",
                                  "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "hutong",
                                  "ssl.ca.location": str(ca_file)})


def test_every_librdkafka_client_gets_sasl_over_tls(ca_file: Path) -> None:
    base = sasl_settings(ca_file).kafka_client_config()
    for built in (producer_config(base), consumer_config(base, "hutong-sink-warehouse"), base):
        assert built["security.protocol"] == "SASL_SSL" and built["sasl.password"] == "pw-1"
        assert built["ssl.ca.location"] == str(ca_file)
    # librdkafka itself takes them (an unknown or unusable one raises here)
    Producer(producer_config(base)).flush(0)
    Consumer(consumer_config(base, "hutong-sink-warehouse")).close()
    AdminClient(base)


def test_the_stream_worker_gets_the_same_credentials(ca_file: Path) -> None:
    credentials = _faust_kafka_settings(sasl_settings(ca_file))["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("hutong", "pw-1")
    assert credentials.ssl_context is not None and credentials.ssl_context.check_hostname


class Captured(Exception):
    """Raised by the stand-in HTTP client with what clickhouse-connect gave it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.args_given, self.kwargs = args, kwargs


def _http_client(*args: Any, **kwargs: Any) -> None:
    raise Captured(*args, **kwargs)


@pytest.mark.parametrize(("url", "interface", "port"), [
    ("https://hutong:pw@ch.example:9443/?ca_cert=/etc/hutong/ch-ca.pem", "https", 9443),
    ("https://hutong:pw@ch.example/?ca_cert=/etc/hutong/ch-ca.pem", "https", 8443),
    ("http://hutong:pw@ch.example:8123", "http", 8123),
])
def test_clickhouse_tls_options_reach_clickhouse_connect(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, interface: str,
        port: int) -> None:
    """https in clickhouse_url means TLS whatever the port (clickhouse-connect reads the
    scheme of a DSN only for its default port), and the CA given is the one verified."""
    monkeypatch.setattr(clickhouse_connect.driver, "HttpClient", _http_client)
    with pytest.raises(Captured) as built:
        open_warehouse(url, tmp_path)
    given_interface, host, given_port = built.value.args_given[:3]
    assert (given_interface, host, given_port) == (interface, "ch.example", port)
    if interface == "https":
        assert built.value.kwargs["ca_cert"] == "/etc/hutong/ch-ca.pem"
        assert built.value.kwargs.get("verify", True) is True


@pytest.mark.parametrize("url", [
    "postgresql://hutong@db.example/hutong?sslmode=verify-full&sslrootcert=/etc/hutong/pg-ca.pem",
    "postgresql+psycopg://hutong@db.example/hutong?sslmode=verify-full"
    "&sslrootcert=/etc/hutong/pg-ca.pem",
])
def test_postgresql_tls_options_reach_psycopg(url: str, tmp_path: Path) -> None:
    engine = create_engine(store_url(url, tmp_path))
    _, options = engine.dialect.create_connect_args(engine.url)
    assert options["sslmode"] == "verify-full"
    assert options["sslrootcert"] == "/etc/hutong/pg-ca.pem"
    engine.dispose()
