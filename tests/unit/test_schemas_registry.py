"""The registry read API of embedded mode, and registration with an external registry.

Beyond the JSON bodies, confluent-kafka's own ``SchemaRegistryClient``, ``AvroDeserializer``
and ``AvroSerializer`` are pointed at them through an in-memory HTTP transport (no socket):
what a downstream app does against ``http://127.0.0.1:8080`` is what these tests do.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from hutong.errors import SchemaError, WireFormatError
from schemas import catalog, registry, wire
from schemas.registry import IdMap, Reply
from tests.unit.test_wire import LAB_RESULT

ACK_TOPIC = "hutong.alerts.ack"
ACK = {
    "alert_id": "A-1",
    "acknowledged_by": "doctor-7",
    "acknowledged_at": dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC),
    "channel": "web",
    "note": "已通知主治医生",
}
SUBJECTS = sorted(f"{topic}-value" for topic in catalog.TOPICS)

Handler = Callable[[httpx.Request], httpx.Response]


def embedded(request: httpx.Request) -> httpx.Response:
    """The read API routed the way the hub's HTTP layer mounts it."""
    match request.url.path.strip("/").split("/"):
        case ["schemas", "ids", schema_id]:
            reply = registry.schema_by_id(int(schema_id))
        case ["subjects"]:
            reply = registry.subjects(request.url.params.get("subjectPrefix"))
        case ["subjects", subject, "versions"]:
            reply = registry.subject_versions(subject)
        case ["subjects", subject, "versions", version]:
            reply = registry.subject_version(subject, version)
        case _:
            reply = Reply(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
    return httpx.Response(reply.status, json=reply.body)


def client_over(handler: Handler) -> SchemaRegistryClient:
    client = SchemaRegistryClient({"url": "http://127.0.0.1:8080"})
    client._rest_client.session = httpx.Client(transport=httpx.MockTransport(handler))
    return client


def test_schema_by_id_body_is_the_schema_string_without_schema_type() -> None:
    entry = catalog.schema("lab-result")
    assert registry.schema_by_id(4) == Reply(200, {"schema": entry.schema_str})
    assert registry.schema_by_id(99) == Reply(
        404, {"error_code": 40403, "message": "Schema not found"}
    )


def test_subjects_and_versions_bodies() -> None:
    assert registry.subjects() == Reply(200, SUBJECTS)
    assert registry.subjects("hutong.alerts.") == Reply(
        200, ["hutong.alerts.ack-value", "hutong.alerts.critical-value",
              "hutong.alerts.rule-files-value"]
    )
    assert registry.subject_versions("hutong.dlq-value") == Reply(200, [1])
    assert registry.subject_versions("hutong.dlq") == Reply(
        404, {"error_code": 40401, "message": "Subject not found"}
    )


@pytest.mark.parametrize("version", ["latest", "-1", "1"])
def test_subject_version_body(version: str) -> None:
    entry = catalog.schema("dead-letter")
    assert registry.subject_version("hutong.dlq-value", version) == Reply(
        200, {"subject": "hutong.dlq-value", "version": 1, "id": 10, "schema": entry.schema_str}
    )


@pytest.mark.parametrize(
    ("subject", "version", "status", "code"),
    [
        ("hutong.dlq-value", "2", 404, 40402),
        ("hutong.dlq-value", "one", 422, 42202),
        ("hutong.dlq-key", "latest", 404, 40401),
    ],
)
def test_subject_version_errors(subject: str, version: str, status: int, code: int) -> None:
    reply = registry.subject_version(subject, version)
    assert (reply.status, reply.body["error_code"]) == (status, code)


def test_confluent_client_reads_the_embedded_api() -> None:
    client = client_over(embedded)
    assert client.get_schema(4).schema_str == catalog.schema("lab-result").schema_str
    assert client.get_schema(4).schema_type == "AVRO"
    latest = client.get_latest_version("hutong.std.lab-result-value")
    assert (latest.schema_id, latest.version, latest.subject) == (4, 1, latest.subject)
    assert client.get_versions("hutong.std.lab-result-value") == [1]
    assert client.get_subjects() == SUBJECTS
    with pytest.raises(SchemaRegistryError) as caught:
        client.get_schema(99)
    assert (caught.value.http_status_code, caught.value.error_code) == (404, 40403)


def test_avro_deserializer_reads_what_wire_encode_wrote() -> None:
    data = wire.encode(catalog.for_topic(ACK_TOPIC), ACK)
    deserialize = AvroDeserializer(client_over(embedded))
    assert deserialize(data, SerializationContext(ACK_TOPIC, MessageField.VALUE)) == ACK


def test_avro_serializer_writes_the_same_bytes_as_wire_encode() -> None:
    serialize = AvroSerializer(
        client_over(embedded),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    data = serialize(ACK, SerializationContext(ACK_TOPIC, MessageField.VALUE))
    assert data == wire.encode(catalog.for_topic(ACK_TOPIC), ACK)


class FakeRegistry:
    """An external registry: same schema text, same id (ids start at 100 here)."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.ids: dict[str, int] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, body))
        match request.method, request.url.path.strip("/").split("/"):
            case "PUT", ["config", _]:
                return httpx.Response(200, json=body)
            case "POST", ["subjects", subject, "versions"]:
                if subject == self.refuse:
                    message = "Schema being registered is incompatible with an earlier schema"
                    return httpx.Response(409, json={"error_code": 409, "message": message})
                schema_id = self.ids.setdefault(body["schema"], 100 + len(self.ids))
                return httpx.Response(200, json={"id": schema_id})
        return httpx.Response(404, json={"error_code": 404, "message": "not here"})


def test_register_with_sets_backward_then_registers_every_subject() -> None:
    fake = FakeRegistry()
    ids = registry.register_with(client_over(fake))
    assert sorted(ids) == SUBJECTS
    assert len(set(ids.values())) == len(catalog.all_schemas())
    assert ids["hutong.events.order-value"] == ids["hutong.std.order-value"]
    for subject in SUBJECTS:
        config = ("PUT", f"/config/{subject}", {"compatibility": "BACKWARD"})
        post = next(call for call in fake.calls if call[1] == f"/subjects/{subject}/versions")
        assert fake.calls.index(config) < fake.calls.index(post)
        assert post[2]["schema"] == catalog.for_topic(subject.removesuffix("-value")).schema_str


def test_a_refused_subject_is_named() -> None:
    fake = FakeRegistry(refuse="hutong.dlq-value")
    with pytest.raises(SchemaError, match=r"refused subject 'hutong\.dlq-value': .*incompatible"):
        registry.register_with(client_over(fake))


def test_id_map_encodes_and_decodes_with_the_registry_ids() -> None:
    ids = registry.register_with(client_over(FakeRegistry()))
    id_map = IdMap(ids)
    entry = id_map.for_topic(ACK_TOPIC)
    assert entry.schema_id == ids[f"{ACK_TOPIC}-value"] != catalog.for_topic(ACK_TOPIC).schema_id
    assert entry.schema_str == catalog.for_topic(ACK_TOPIC).schema_str
    data = wire.encode(entry, ACK)
    assert data[1:5] == entry.schema_id.to_bytes(4, "big")
    assert wire.decode(data, id_map.by_id) == (entry, ACK)
    with pytest.raises(WireFormatError, match="unknown schema id 16"):
        wire.decode(wire.encode(catalog.for_topic(ACK_TOPIC), ACK), id_map.by_id)
    with pytest.raises(SchemaError, match=r"topic 'hutong\.alerts' is not"):
        id_map.for_topic("hutong.alerts")


def test_id_map_needs_every_subject() -> None:
    with pytest.raises(
        SchemaError, match=r"no registry id for subjects hutong\.alerts\.ack-value$"
    ):
        IdMap({subject: 1 for subject in SUBJECTS if subject != "hutong.alerts.ack-value"})


class FakeMessage:
    def __init__(self, topic: str, value: bytes) -> None:
        self._topic, self._value = topic, value

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


class FakeConsumer:
    """Hands out one message, then stops the example's endless loop."""

    def __init__(self, conf: dict[str, Any]) -> None:
        assert conf["bootstrap.servers"] == "127.0.0.1:9092"
        self.pending = [FakeMessage("hutong.std.lab-result", LAB_VALUE)]
        self.closed = False

    def subscribe(self, topics: list[str]) -> None:
        assert topics == ["hutong.std.lab-result"]

    def poll(self, timeout: float) -> FakeMessage | None:
        if not self.pending:
            raise StopIteration("no more messages")
        return self.pending.pop()

    def close(self) -> None:
        self.closed = True


LAB_VALUE = wire.encode(catalog.schema("lab-result"), {**LAB_RESULT, "empi_id": "E-1"})


def test_the_reading_example_of_docs_topics_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "topics.md").read_text("utf-8")
    example = text.split("```python\n", 1)[1].split("```", 1)[0]

    def registry_client(conf: dict[str, Any]) -> SchemaRegistryClient:
        assert conf == {"url": "http://127.0.0.1:8080"}
        return client_over(embedded)

    monkeypatch.setattr("confluent_kafka.Consumer", FakeConsumer)
    monkeypatch.setattr("confluent_kafka.schema_registry.SchemaRegistryClient", registry_client)
    with pytest.raises(StopIteration):
        exec(compile(example, "docs/topics.md", "exec"), {})  # noqa: S102 - our own docs
    assert capsys.readouterr().out == "E-1 K 6.8 mmol/L\n"
