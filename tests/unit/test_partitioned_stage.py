"""The partitioned stage's choice per event: stamp here, send to the resolver, or a dead letter."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hutong.metrics import StageMetrics
from hutong.registry.practitioners import PractitionerFeed
from producers.kafka import OutRecord
from producers.records import DLQ_TOPIC
from schemas import catalog, wire
from schemas.registry import EMBEDDED
from streams.linkview import LinkView
from streams.mapfeed import MapFeed
from streams.output import UNKNOWN_TOPIC, UNMAPPED_TOPIC, StandardOutput
from streams.partitioned import PartitionedStage, Stamper, _next_offsets
from streams.topology import CANDIDATES_TOPIC, RESOLVE_TOPIC
from tests.unit.test_warehouse_rows import lab_result
from tests.warehouse_events import diagnosis, header

KEY = b"F001|P123"


class Message:
    """What librdkafka's consumer hands over, as far as the stage reads it."""

    def __init__(self, value: bytes, topic: str = "hutong.events.diagnosis",
                 offset: int = 7) -> None:
        self._value, self._topic, self._offset = value, topic, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return KEY

    def value(self) -> bytes:
        return self._value


class Links:
    def __init__(self, held: dict[bytes, str] | None = None) -> None:
        self.held = held or {}

    def empi_id(self, key: bytes) -> str | None:
        return self.held.get(key)


class Broken:
    def empi_id(self, key: bytes) -> str | None:
        raise ValueError("a bug")


def encoded(event_type: str = "diagnosis", **overrides: Any) -> bytes:
    return wire.encode(catalog.schema(event_type), diagnosis(empi_id=None, **overrides))


def stamper(links: Any, crosses: bool = False) -> Stamper:
    output = StandardOutput(MapFeed({}), PractitionerFeed({}), EMBEDDED, lambda event: crosses)
    return Stamper(EMBEDDED, links, output)


def test_an_unknown_record_goes_to_the_resolver_bytes_unchanged() -> None:
    value = encoded()
    records, stamped = stamper(Links()).records([Message(value)])  # type: ignore[list-item]
    [forward] = [r for r in records if r.topic == RESOLVE_TOPIC]
    assert (forward.key, forward.value, stamped) == (KEY, value, [])


def test_a_linked_record_is_stamped_here_once_the_resolver_has_seen_its_identity() -> None:
    step = stamper(Links({KEY: "E-7"}))
    value = encoded()
    first, _ = step.records([Message(value)])  # type: ignore[list-item]
    assert [r.topic for r in first] == [RESOLVE_TOPIC]  # this worker has not sent it yet
    second, stamped = step.records([Message(value, offset=8)])  # type: ignore[list-item]
    std = [r for r in second if r.topic == "hutong.std.diagnosis"]
    assert len(std) == 1 and std[0].key == b"E-7" and len(stamped) == 1
    assert wire.decode(std[0].value)[1]["empi_id"] == "E-7"
    # a local diagnosis code no map covers: passed with it, and counted; so is its
    # clinician, whom the (empty) registry does not know
    local = encoded(diagnosis_code="LOCAL-1", diagnosis_system="L")
    step.records([Message(local, offset=10)])  # type: ignore[list-item]
    counted, _ = step.records([Message(local, offset=11)])  # type: ignore[list-item]
    assert {r.topic for r in counted} == {"hutong.std.diagnosis", UNMAPPED_TOPIC, UNKNOWN_TOPIC}
    assert wire.decode(counted[0].value)[1]["unmapped"]
    changed = encoded(patient={**diagnosis()["patient"], "phone": "13900000000"})
    third, _ = step.records([Message(changed, offset=9)])  # type: ignore[list-item]
    assert [r.topic for r in third] == [RESOLVE_TOPIC]  # identity news: the resolver's


def test_a_patient_event_always_goes_to_the_resolver() -> None:
    step = stamper(Links({KEY: "E-7"}))
    value = wire.encode(catalog.schema("patient"), header("patient", empi_id=None) | {
        "action": "update"})
    for offset in (1, 2):
        records, _ = step.records([Message(value, "hutong.events.patient", offset)])  # type: ignore[list-item]
        assert [r.topic for r in records] == [RESOLVE_TOPIC]


def test_a_candidate_goes_to_the_alert_stage_before_its_standard_event() -> None:
    step = stamper(Links({KEY: "E-7"}), crosses=True)
    step.records([Message(encoded())])  # type: ignore[list-item]
    records, _ = step.records([Message(encoded(), offset=8)])  # type: ignore[list-item]
    assert [r.topic for r in records][:2] == [CANDIDATES_TOPIC, "hutong.std.diagnosis"]


@pytest.mark.parametrize(("value", "links", "reason"), [
    (b"\x00junk", Links(), "schema id"),
    (b"{}", Links(), "shorter than the 5-byte wire-format header"),
    (encoded(), Broken(), "internal error in the partitioned stage (ValueError)"),
])
def test_what_cannot_be_used_is_a_dead_letter_with_its_reason_and_place(
        value: bytes, links: Any, reason: str) -> None:
    records, stamped = stamper(links).records([Message(value)])  # type: ignore[list-item]
    [letter] = records
    assert letter.topic == DLQ_TOPIC and stamped == []
    record = wire.decode(letter.value)[1]
    assert record["stage"] == "stream" and reason in record["reason"]
    assert record["location"] == "hutong.events.diagnosis[1]@7"
    assert dict(letter.headers)["hutong.stage"] in (b"stream", "stream")


def test_the_link_view_keeps_the_newest_change_of_each_record(tmp_path: Path) -> None:
    view = LinkView({}, tmp_path / "links")
    change = {"facility_id": "F001", "source_patient_id": "P123", "empi_id": "E-2",
              "sequence": 5}
    assert view.apply(change)
    assert not view.apply({**change, "empi_id": "E-1", "sequence": 4})  # older, read again
    assert view.empi_id(KEY) == "E-2"
    assert view.apply({**change, "empi_id": "E-3", "sequence": 9})  # a merge
    assert view.empi_id(KEY) == "E-3" and view.empi_id(b"F001|P999") is None
    view.read_to(2, 41)
    view.close()
    again = LinkView({}, tmp_path / "links")  # a restart keeps the copy
    assert again.empi_id(KEY) == "E-3"
    again.close()


@pytest.mark.parametrize("value", [
    encoded(),
    encoded(diagnosis_code="LOCAL-1", diagnosis_system="L", quality_warnings=["late"]),
    wire.encode(catalog.schema("lab-result"), lab_result(empi_id=None)),
], ids=["diagnosis", "unmapped diagnosis", "lab result"])
def test_the_standard_event_is_what_writing_it_whole_gives(
        value: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage copies the fields no step changed from the bytes read (wire.encode_changed):
    the same bytes as the translated event written whole, without writing it whole."""
    topic = f"hutong.events.{wire.decode(value)[1]['event_type']}"
    step = stamper(Links({KEY: "E-7"}))
    step.records([Message(value, topic)])  # type: ignore[list-item]
    whole_write = wire.encode

    def checked_only(entry: Any, record: Any, *, checked: bool = True) -> bytes:
        assert checked, "the standard event was written whole, not spliced"
        return whole_write(entry, record)

    with monkeypatch.context() as patched:
        patched.setattr(wire, "encode", checked_only)
        records, _ = step.records([Message(value, topic, offset=8)])  # type: ignore[list-item]
    [std] = [r for r in records if r.topic.startswith("hutong.std.")]
    whole = StandardOutput(MapFeed({}), PractitionerFeed({}), EMBEDDED, lambda event: False)
    [expected] = whole.event({**wire.decode(value)[1], "empi_id": "E-7"})
    assert std.value == expected.value and std.key == expected.key == b"E-7"


class Placed(Message):
    def __init__(self, topic: str, partition: int, offset: int, error: object = None) -> None:
        super().__init__(b"", topic, offset)
        self._partition, self._error = partition, error

    def partition(self) -> int:
        return self._partition

    def error(self) -> Any:
        return self._error


def test_a_batch_commits_the_offset_after_its_last_event_per_partition() -> None:
    batch = [Placed("a", 0, 5), Placed("a", 1, 9), Placed("a", 0, 6), Placed("b", 0, 2),
             Placed("a", 1, 10, error="a consumer error")]
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in _next_offsets(batch)) == [  # type: ignore[arg-type]
        ("a", 0, 7), ("a", 1, 10), ("b", 0, 3)]


class Kafka:
    """What the stage asks of its producer and consumer, in the order it asks (the real
    ones are exercised by the integration tests; here, only the order of the protocol)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.confirms = True

    def send(self, records: list[Any]) -> list[Any]:
        self.calls.append(("send", [r.value for r in records]))
        return records

    def confirm(self, sending: list[Any], stop: threading.Event) -> bool:
        self.calls.append(("confirm", [r.value for r in sending]))
        return self.confirms

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.calls.append(("commit", [(tp.topic, tp.partition, tp.offset) for tp in offsets]))


class Echo:
    def records(self, messages: list[Any]) -> tuple[list[OutRecord], list[Any]]:
        return [OutRecord("hutong.std.diagnosis", None, m.value()) for m in messages], []


def pipelined(kafka: Kafka) -> PartitionedStage:
    stage = object.__new__(PartitionedStage)  # no librdkafka clients: the protocol alone
    stage._producer, stage._consumer, stage._stamper = kafka, kafka, Echo()  # type: ignore[assignment]
    stage._metered = StageMetrics(CollectorRegistry())
    stage._ready, stage._stop, stage._in_flight = lambda: None, threading.Event(), None
    return stage


def test_a_batch_is_committed_only_after_kafka_confirmed_it_while_the_next_is_worked_out() -> None:
    kafka = Kafka()
    stage = pipelined(kafka)
    stage._handle([Placed("t", 0, 1), Placed("t", 0, 2)])  # type: ignore[list-item]
    stage._handle([Placed("t", 0, 3)])  # type: ignore[list-item]
    assert kafka.calls == [("send", [b"", b""]),
                           ("confirm", [b"", b""]), ("commit", [("t", 0, 3)]),
                           ("send", [b""])]
    stage._revoked(None, [])  # type: ignore[arg-type]  # partitions leave: settled first
    assert kafka.calls[-2:] == [("confirm", [b""]), ("commit", [("t", 0, 4)])]
    stage._settle()  # nothing in flight: nothing asked
    assert len(kafka.calls) == 6


def test_a_batch_kafka_did_not_confirm_is_not_committed_nor_is_the_next_sent() -> None:
    kafka = Kafka()
    stage = pipelined(kafka)
    stage._handle([Placed("t", 1, 7)])  # type: ignore[list-item]
    kafka.confirms = False  # stopping before Kafka confirmed it
    stage._handle([Placed("t", 1, 8)])  # type: ignore[list-item]
    assert kafka.calls == [("send", [b""]), ("confirm", [b""])]
