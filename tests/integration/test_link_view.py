"""A stream worker's copy of hutong.empi.links against a real broker: resumed, or dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from producers.kafka import producer_config
from schemas import catalog, wire
from streams.linkview import LINKS_TOPIC, LinkView
from tests.integration.conftest import broker_of_its_own, wait_for

_AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def publish(bootstrap: str, *changes: tuple[str, str, int]) -> None:
    """Link changes (source patient id, EMPI id, sequence) of facility F1."""
    producer = Producer(producer_config({"bootstrap.servers": bootstrap}))
    schema = catalog.schema("empi-link")
    for patient, empi_id, sequence in changes:
        record = {"facility_id": "F1", "source_patient_id": patient,
                  "empi_id": empi_id, "previous_empi_id": None, "action": "link",
                  "score": None, "reason": "test", "decided_by": "test", "linked_at": _AT,
                  "sequence": sequence}
        producer.produce(LINKS_TOPIC, key=f"F1|{patient}".encode(),
                         value=wire.encode(schema, record))
    assert producer.flush(30) == 0


def view(bootstrap: str, path: Path) -> LinkView:
    links = LinkView({"bootstrap.servers": bootstrap}, path)
    links.start()
    assert links.wait_ready(60)
    return links


def test_a_copy_resumes_where_it_was_and_is_dropped_for_a_new_broker(tmp_path: Path) -> None:
    copy = tmp_path / "links"
    with broker_of_its_own(tmp_path / "a") as broker:
        publish(broker.bootstrap, ("P1", "E-1", 1), ("P2", "E-2", 2))
        links = view(broker.bootstrap, copy)
        assert (links.empi_id(b"F1|P1"), links.empi_id(b"F1|P2")) == ("E-1", "E-2")
        links.close()
        publish(broker.bootstrap, ("P1", "E-9", 3))  # a merge while the worker was away
        links = view(broker.bootstrap, copy)
        wait_for(lambda: links.empi_id(b"F1|P1") == "E-9")
        assert links.applied == 1  # only what was new was read
        links.close()
    # The embedded broker restarted: its log is gone, and the offsets the copy holds are
    # those of other records now (every partition is longer than before).
    with broker_of_its_own(tmp_path / "b") as broker:
        publish(broker.bootstrap, *((f"P{n}", f"E-{n}", n) for n in range(10, 40)))
        links = view(broker.bootstrap, copy)
        assert links.empi_id(b"F1|P1") is None and links.empi_id(b"F1|P2") is None
        assert [links.empi_id(f"F1|P{n}".encode()) for n in range(10, 40)] == [
            f"E-{n}" for n in range(10, 40)]
        links.close()
