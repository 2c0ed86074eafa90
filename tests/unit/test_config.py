"""Settings: environment, YAML, and refusing what is not a setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from hutong.config import Settings, load_settings
from hutong.errors import ConfigError
from hutong.hub import child_environment


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUTONG_CONFIG", raising=False)


def test_defaults_match_the_public_contract() -> None:
    s = load_settings()
    assert (s.mllp_port, s.http_port, s.kafka_port) == (2575, 8080, 9092)
    assert s.data_dir == Path("var") and s.embedded_broker
    assert s.bootstrap == "127.0.0.1:9092"


def test_yaml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hutong.yaml"
    config.write_text("mllp_port: 3575\nhttp_port: 9080\nkafka_config:\n  client.id: hub-a\n")
    monkeypatch.setenv("HUTONG_HTTP_PORT", "9999")
    s = load_settings(config)
    assert (s.mllp_port, s.http_port) == (3575, 9999)  # the environment wins over the file
    assert s.kafka_client_config()["client.id"] == "hub-a"


@pytest.mark.parametrize(("yaml_text", "named"), [
    ("mllp_prot: 1\n", "mllp_prot"),
    ("kafka_config:\n  sasl.usernme: x\n", "sasl.usernme"),
    ("log_level: LOUD\n", "log_level"),
    ("mllp_max_frame_bytes: 10\n", "mllp_max_frame_bytes"),
])
def test_bad_yaml_is_named(tmp_path: Path, yaml_text: str, named: str) -> None:
    config = tmp_path / "hutong.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError, match=named):
        load_settings(config)


def test_unknown_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUTONG_KAFKA_BOOTSTRAPS", "kafka:9092")
    with pytest.raises(ConfigError, match="HUTONG_KAFKA_BOOTSTRAPS"):
        load_settings()


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_children_get_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hutong.yaml"
    config.write_text("mllp_port: 3575\nkafka_config:\n  client.id: hub-a\napi_token: s3cret\n")
    parent = load_settings(config)
    env = child_environment(parent)
    monkeypatch.delenv("HUTONG_CONFIG")
    for name, value in env.items():
        if name.startswith("HUTONG_"):
            monkeypatch.setenv(name, value)
    child = load_settings()
    # A child finds the broker as an external one, so it is told how the topics are sized.
    assert child.model_dump() == {**parent.model_dump(), "kafka_bootstrap": parent.bootstrap,
                                  "kafka_partitions": 1}
    assert child.topic_partitions == parent.topic_partitions == 1


@pytest.mark.parametrize(("settings", "partitions"), [
    ({}, 1),  # the embedded broker, one stream worker
    ({"streams_workers": 3}, 3),  # one partition for each worker
    ({"streams_workers": 0}, 1),
    ({"kafka_bootstrap": "kafka:9092"}, 3),  # a cluster: room for more workers
    ({"kafka_bootstrap": "kafka:9092", "kafka_partitions": 12}, 12),
    ({"kafka_partitions": 2}, 2),
])
def test_topics_get_one_partition_a_worker_on_the_embedded_broker(
        settings: dict[str, object], partitions: int) -> None:
    assert Settings(**settings).topic_partitions == partitions
