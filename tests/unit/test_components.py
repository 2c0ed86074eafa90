"""The ``components`` setting: what one process runs, and what a partial set needs."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
import trustme

from hutong.audit import AuditLog
from hutong.components import COMPONENTS, plan
from hutong.config import Settings, load_settings
from hutong.errors import ConfigError
from hutong.hub import Hub, child_environment
from streams.kafka_auth import faust_credentials

EXTERNAL = {"kafka_bootstrap": "kafka:9092", "clickhouse_url": "http://clickhouse:8123",
            "docstore_url": "postgresql+psycopg://hutong@db/hutong"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUTONG_CONFIG", raising=False)
    monkeypatch.delenv("HUTONG_COMPONENTS", raising=False)


def test_the_default_is_the_whole_hub_on_the_embedded_parts() -> None:
    s = load_settings()
    assert s.components == list(COMPONENTS) == ["connectors", "streams", "sinks", "api"]
    assert s.plan.everything and s.plan.embedded_broker and s.plan.embedded_warehouse
    assert s.plan.clickhouse_http


@pytest.mark.parametrize(("given", "read"), [
    ("api", ["api"]),
    ("api, sinks", ["sinks", "api"]),              # one order, whatever was written
    ("connectors,connectors", ["connectors"]),
    ('["streams", "connectors"]', ["connectors", "streams"]),  # how child processes get it
])
def test_components_from_the_environment(monkeypatch: pytest.MonkeyPatch, given: str,
                                         read: list[str]) -> None:
    for name, value in EXTERNAL.items():
        monkeypatch.setenv(f"HUTONG_{name.upper()}", value)
    monkeypatch.setenv("HUTONG_COMPONENTS", given)
    assert load_settings().components == read


def test_components_from_a_yaml_list(tmp_path: Path) -> None:
    config = tmp_path / "hutong.yaml"
    config.write_text("kafka_bootstrap: kafka:9092\ncomponents: [connectors]\n")
    assert load_settings(config).components == ["connectors"]


@pytest.mark.parametrize(("given", "named"), [
    ("connectors,sink", "unknown component.*sink"),
    ("", "name at least one of connectors"),
])
def test_a_bad_component_list_is_named(monkeypatch: pytest.MonkeyPatch, given: str,
                                       named: str) -> None:
    monkeypatch.setenv("HUTONG_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("HUTONG_COMPONENTS", given)
    with pytest.raises(ConfigError, match=named):
        load_settings()


@pytest.mark.parametrize(("components", "given", "missing"), [
    (["connectors"], {}, ["HUTONG_KAFKA_BOOTSTRAP"]),
    (["streams"], {}, ["HUTONG_KAFKA_BOOTSTRAP"]),
    (["sinks"], {"kafka_bootstrap": "kafka:9092"},
     ["HUTONG_CLICKHOUSE_URL", "HUTONG_DOCSTORE_URL"]),
    (["api"], {"kafka_bootstrap": "kafka:9092", "clickhouse_url": "http://ch:8123"},
     ["HUTONG_DOCSTORE_URL"]),
    (["connectors", "streams", "sinks"], {"kafka_bootstrap": "kafka:9092"},
     ["HUTONG_CLICKHOUSE_URL", "HUTONG_DOCSTORE_URL"]),
])
def test_a_partial_set_refuses_the_embedded_parts(components: list[str], given: dict[str, str],
                                                  missing: list[str]) -> None:
    with pytest.raises(ConfigError, match="run only part of the hub") as caught:
        load_settings(components=components, **given)
    for setting in missing:
        assert setting in str(caught.value)
    named = {"HUTONG_KAFKA_BOOTSTRAP", "HUTONG_CLICKHOUSE_URL", "HUTONG_DOCSTORE_URL"}
    for setting in named - set(missing):
        assert setting not in str(caught.value)  # only what is missing is asked for


@pytest.mark.parametrize(("components", "given"), [
    (["connectors"], {"kafka_bootstrap": "kafka:9092"}),
    (["connectors", "streams"], {"kafka_bootstrap": "kafka:9092"}),
    (["sinks"], EXTERNAL),
    (list(COMPONENTS), {"kafka_bootstrap": "kafka:9092"}),  # whole hub: chDB is its own
    # the sinks with the API own the embedded warehouse and document store between them
    (["sinks", "api"], {"kafka_bootstrap": "kafka:9092"}),
    (["streams", "sinks", "api"], {"kafka_bootstrap": "kafka:9092"}),
])
def test_sets_that_can_run(components: list[str], given: dict[str, str]) -> None:
    assert load_settings(components=components, **given).components == components


@pytest.mark.parametrize(("components", "expected"), [
    # components          warehouse documents producer clickhouse_http intake
    (COMPONENTS,          (True,     True,     True,    False,          True)),
    (("connectors",),     (False,    False,    True,    False,          True)),
    (("streams",),        (False,    False,    False,   False,          False)),
    (("sinks",),          (True,     True,     False,   False,          False)),
    (("api",),            (True,     True,     True,    False,          True)),  # retries
])
def test_what_each_set_opens(components: tuple[str, ...],
                             expected: tuple[bool, bool, bool, bool, bool]) -> None:
    p = plan(components, kafka_bootstrap="kafka:9092", clickhouse_url="http://ch:8123")
    assert (p.warehouse, p.documents, p.producer, p.clickhouse_http, p.intake) == expected
    assert not p.embedded_broker and not p.embedded_warehouse


class _Producer:
    """Stands in for the Kafka producer: the intake only keeps it until a message comes."""


def test_the_api_alone_opens_an_intake_for_retries_and_no_listener(tmp_path: Path) -> None:
    """The chart's API pods serve the console: its dead-letter Retry needs an intake there,
    with its own receipts and audit log under the pod's data dir, and no MLLP port."""
    hub = Hub(Settings(data_dir=tmp_path, components=["api"], **EXTERNAL))
    assert hub.settings.plan.intake and not hub.settings.plan.connectors
    hub.audit = AuditLog(tmp_path / "audit")
    hub.producer = _Producer()  # type: ignore[assignment]
    hub._open_intake()
    try:
        assert hub.intake is not None and hub.receipts is not None
        assert (tmp_path / "receipts.sqlite").exists()
        assert hub.mllp is None and hub.mllps is None and hub.batch is None
        assert hub.metrics.registry.get_sample_value(
            "hutong_dead_letters_total", {"stage": "producer"}) == 0.0
    finally:
        hub.receipts.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(("components", "ingest"), [
    (("api",), False),            # retries only: HTTP ingest belongs to the connectors
    (("connectors",), True),
    (COMPONENTS, True),
])
def test_the_http_app_retries_through_the_intake_and_ingests_with_connectors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, components: tuple[str, ...],
        ingest: bool) -> None:
    given: dict[str, Any] = {}

    class Built(Exception):
        pass

    def create_api(*args: Any, **kwargs: Any) -> None:
        given.update(kwargs)
        raise Built

    monkeypatch.setattr("hutong.hub.create_api", create_api)
    hub = Hub(Settings(data_dir=tmp_path, components=list(components), **EXTERNAL))
    hub.intake = intake = object()  # type: ignore[assignment]
    with pytest.raises(Built):
        asyncio.run(hub._start_api())
    assert given["retry_intake"] is intake
    assert given["intake"] is (intake if ingest else None)


def test_children_keep_the_component_set(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(components=["streams"], kafka_bootstrap="kafka:9092")
    env = child_environment(s)
    assert env["HUTONG_COMPONENTS"] == '["streams"]'
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().components == ["streams"]


@pytest.mark.parametrize(("components", "health"), [
    (COMPONENTS, {"mllp", "warehouse", "sink", "documents"}),
    (("connectors",), {"mllp"}),
    (("streams",), set()),  # the worker children appear once started
    (("sinks",), {"warehouse", "sink", "documents"}),
    (("api",), {"warehouse"}),
    (("connectors", "api"), {"mllp", "warehouse"}),
])
def test_healthz_names_only_what_this_process_runs(tmp_path: Path, components: tuple[str, ...],
                                                   health: set[str]) -> None:
    hub = Hub(Settings(data_dir=tmp_path, components=list(components), **EXTERNAL))
    assert set(hub.health()) == health
    assert all(state == "down" for state in hub.health().values())  # nothing started yet


def test_healthz_names_the_tls_listener_of_connectors(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    tls = {"mllps_port": 2576, "tls_cert_file": pem, "tls_key_file": pem,
           "tls_client_ca_file": pem}
    assert set(Hub(Settings(data_dir=tmp_path, components=["connectors"], **tls,
                            **EXTERNAL)).health()) == {"mllp", "mllps"}
    assert set(Hub(Settings(data_dir=tmp_path, components=["api"], **tls,
                            **EXTERNAL)).health()) == {"warehouse"}


@pytest.mark.parametrize(("components", "checked"), [
    (COMPONENTS, {"MLLP", "HTTP API"}),
    (("connectors",), {"MLLP", "HTTP API"}),
    (("sinks",), {"HTTP API"}),
    (("api",), {"HTTP API"}),
])
def test_only_the_ports_a_process_opens_are_checked(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    components: tuple[str, ...],
                                                    checked: set[str]) -> None:
    seen: set[str] = set()
    monkeypatch.setattr("hutong.hub.ensure_port_free",
                        lambda host, port, what, setting: seen.add(what))
    Hub(Settings(data_dir=tmp_path, components=list(components), **EXTERNAL))._check_free()
    assert seen == checked


def test_the_embedded_warehouse_port_belongs_to_the_whole_hub(tmp_path: Path) -> None:
    whole = Hub(Settings(data_dir=tmp_path))
    assert whole._clickhouse_http_port == 8123 and "clickhouse" in whole.describe()
    part = Hub(Settings(data_dir=tmp_path, components=["api"], **EXTERNAL))
    assert part._clickhouse_http_port is None
    assert part.describe()["parts"] == "api" and "mllp" not in part.describe()


def test_the_sasl_password_joins_every_client_config() -> None:
    s = Settings(kafka_bootstrap="kafka:9093", kafka_sasl_password="s3cret",
                 kafka_config={"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                               "sasl.username": "hub"})
    assert s.kafka_client_config()["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(s)
    assert child_environment(s)["HUTONG_KAFKA_SASL_PASSWORD"] == "s3cret"


def test_the_sasl_password_is_set_in_one_place_only() -> None:
    with pytest.raises(ConfigError, match="set twice"):
        load_settings(kafka_sasl_password="a", kafka_config={"sasl.password": "b"})


def _ca_file(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def test_faust_gets_no_credentials_for_plaintext() -> None:
    assert faust_credentials({"bootstrap.servers": "kafka:9092"}) is None


def test_faust_gets_sasl_over_tls(tmp_path: Path) -> None:
    creds = faust_credentials({"security.protocol": "sasl_ssl",
                               "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "hub",
                               "sasl.password": "pw", "ssl.ca.location": _ca_file(tmp_path)})
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("hub", "pw")
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"
    assert isinstance(creds.ssl_context, ssl.SSLContext) and creds.ssl_context.check_hostname


def test_faust_gets_tls_alone(tmp_path: Path) -> None:
    creds = faust_credentials({"security.protocol": "SSL",
                               "ssl.ca.location": _ca_file(tmp_path),
                               "ssl.endpoint.identification.algorithm": "none"})
    assert isinstance(creds, faust.SSLCredentials)
    assert not creds.context.check_hostname


@pytest.mark.parametrize(("config", "named"), [
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI", "sasl.username": "u",
      "sasl.password": "p"}, "GSSAPI"),
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.username": "u", "sasl.password": "p"},
     "GSSAPI"),  # librdkafka's default mechanism: aiokafka here cannot do it
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u"},
     "password"),
    ({"security.protocol": "TLS"}, "security.protocol"),
])
def test_what_the_stream_worker_cannot_use_is_refused(config: dict[str, Any],
                                                      named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        faust_credentials(config)
