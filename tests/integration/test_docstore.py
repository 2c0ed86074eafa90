"""The document store and its sink on SQLite and on PostgreSQL (the machine's ``test``).

Every test runs on both databases: each gets a fresh SQLite file or a PostgreSQL
schema of its own (`tests.docstore_support.store_on`).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import inspect, select

from hutong.metrics import Metrics
from schemas import catalog, wire
from sinks.base import Decoded, Rejected
from sinks.docstore import assembly
from sinks.docstore import store as docstore_store
from sinks.docstore.schema import MIGRATIONS, schema_version
from sinks.docstore.sink import DocumentSink
from sinks.docstore.store import AccessRecord, DocumentStore
from sinks.runner import SinkRunner
from tests.docstore_support import (
    BACKENDS,
    decoded,
    document_event,
    make_document,
    store_on,
)
from tests.warehouse_events import OBSERVED, SAMPLES, header

from .conftest import wait_for

pytestmark = pytest.mark.integration

V1 = "2.16.156.10011.1.1^DOC-1"
V2 = "2.16.156.10011.1.1^DOC-2"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentStore]:
    from tests.docstore_support import store_on

    with store_on(request.param, tmp_path) as opened:
        yield opened


def sample(name: str, metrics: Metrics, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# --- the store -------------------------------------------------------------------------------


def test_migrations_are_recorded_once(store: DocumentStore) -> None:
    assert store.migrate() == []  # store_on migrated already
    with store.engine.connect() as conn:
        applied = conn.execute(select(schema_version.c.version, schema_version.c.name)).all()
        tables = set(inspect(conn).get_table_names())
        indexes = {i["name"] for i in inspect(conn).get_indexes("documents")}
    assert applied == [(number, name) for number, name, _ in MIGRATIONS]
    assert {"documents", "document_parts", "document_groups", "access_audit",
            "schema_version"} <= tables
    assert "documents_by_patient" in indexes


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    from tests.docstore_support import store_on

    with store_on("sqlite", tmp_path) as opened, opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "documents.sqlite").is_file()


def test_a_newer_schema_is_refused(store: DocumentStore) -> None:
    from hutong.errors import DocumentStoreError

    with store.engine.begin() as conn:
        conn.execute(schema_version.insert().values(version=999, name="from the future",
                                                    applied_at=dt.datetime.now(dt.UTC)))
    with pytest.raises(DocumentStoreError, match="newer"):
        store.migrate()


def test_documents_are_written_once(store: DocumentStore) -> None:
    document = make_document(V1)
    assert store.put(document) == "stored"
    assert store.put(document) == "duplicate"
    assert store.put(make_document(V1, body="other content")) == "conflict"
    assert store.count() == 1
    stored = store.get(V1)
    assert stored is not None and stored.content == document.content
    assert stored.effective_time == document.effective_time
    assert stored.stored_at.tzinfo is not None


def test_parts_are_written_once(store: DocumentStore) -> None:
    def add(payload: bytes) -> bool:  # a stand-in order: the greater bytes win
        return writer.add_part("imaging:F001:ACC-1", "ev-1", "imaging-report", payload,
                               supersedes=lambda stored: payload > stored)

    with store.writing() as writer:
        assert add(b"\0one")
        assert not add(b"\0one")
        assert add(b"\0two")
        assert not add(b"\0one")  # the delivery that loses changes nothing
        assert writer.parts("imaging:F001:ACC-1") == [("imaging-report", b"\0two")]
    assert store.count("document_parts") == 1


def test_an_sqlite_without_returning_writes_parts_and_documents_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite before 3.35 has no INSERT ... RETURNING: there the rowcount says whether an
    insert wrote its row (the statements the writer builds for such an SQLite)."""
    monkeypatch.setattr(docstore_store, "_STATEMENTS", {
        "sqlite": docstore_store._Statements("sqlite", returning=False)})
    with store_on("sqlite", tmp_path) as store:
        test_parts_are_written_once(store)
        test_documents_are_written_once(store)
        grouped = make_document(V2)  # a group's document: inserted first, no read before
        for outcome in ("stored", "duplicate"):
            with store.writing() as writer:
                assert writer.put(grouped, group_key="lab:F001:FO-1") == outcome
        assert store.count() == 2


def test_a_replacement_keeps_the_history(store: DocumentStore) -> None:
    assert store.put(make_document(V1)) == "stored"
    assert store.put(make_document(V2, body="corrected", version_number=2,
                                   replaces_document_id=V1)) == "stored"
    old, new = store.get(V1), store.get(V2)
    assert old is not None and new is not None
    assert (old.replaced_by, new.replaced_by) == (V2, None)
    assert [d.document_id for d in store.index("E-42")] == [V2]
    assert sorted(d.document_id for d in store.index("E-42", include_replaced=True)) == [V1, V2]
    assert [d.version_number for d in store.versions("2.16.156.10011.1.1^SET-1")] == [1, 2]


def test_a_replacement_that_arrives_first_still_marks_the_old_version(
        store: DocumentStore) -> None:
    store.put(make_document(V2, body="corrected", version_number=2, replaces_document_id=V1))
    store.put(make_document(V1))
    old = store.get(V1)
    assert old is not None and old.replaced_by == V2
    assert [d.document_id for d in store.index("E-42")] == [V2]


def test_the_index_filters_and_pages(store: DocumentStore) -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(5):
        store.put(make_document(f"1.2.3^D{n}", body=str(n), set_id=f"1.2.3^S{n}",
                                effective_time=base + dt.timedelta(days=n),
                                type_code="C0003" if n % 2 else "C0005",
                                facility_id="F002" if n == 4 else "F001"))
    store.put(make_document("1.2.3^OTHER", empi_id="E-7"))
    ids = [d.document_id for d in store.index("E-42")]
    assert ids == ["1.2.3^D4", "1.2.3^D3", "1.2.3^D2", "1.2.3^D1", "1.2.3^D0"]  # newest first
    assert [d.document_id for d in store.index("E-42", type_code="C0003")] == [
        "1.2.3^D3", "1.2.3^D1"]
    assert [d.document_id for d in store.index("E-42", facility_id="F002")] == ["1.2.3^D4"]
    window = store.index("E-42", since=base + dt.timedelta(days=1),
                         until=base + dt.timedelta(days=3))
    assert [d.document_id for d in window] == ["1.2.3^D2", "1.2.3^D1"]
    shanghai = dt.timezone(dt.timedelta(hours=8))  # the same instant in another zone
    assert [d.document_id for d in store.index(
        "E-42", since=(base + dt.timedelta(days=4)).astimezone(shanghai))] == ["1.2.3^D4"]
    assert [d.document_id for d in store.index("E-42", limit=2, offset=1)] == [
        "1.2.3^D3", "1.2.3^D2"]
    assert all(d.content is None for d in store.index("E-42"))  # metadata only


def test_access_audit_is_purged_only_past_retention(store: DocumentStore) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for days in (400, 191, 189, 1):
        store.record_access(AccessRecord("dr.wang", frozenset({"clinician"}), "read",
                                         "treatment", "allowed", "E-42", V1, "10.0.0.1",
                                         at=now - dt.timedelta(days=days)))
    with pytest.raises(ValueError, match="183"):
        store.purge_audit(182, now)
    assert store.purge_audit(190, now) == 2
    kept = store.access_records()
    assert [now - r.at for r in kept] == [dt.timedelta(days=189), dt.timedelta(days=1)]
    assert kept[0].roles == frozenset({"clinician"}) and kept[0].client_address == "10.0.0.1"


# --- the sink --------------------------------------------------------------------------------


def test_a_received_document_is_stored_as_received(store: DocumentStore) -> None:
    event = document_event(V1)
    assert DocumentSink(store, Metrics()).write([decoded("document", event)]) == []
    stored = store.get(V1)
    assert stored is not None
    assert stored.content == event["content"]  # byte for byte
    assert stored.content_sha256 == event["content_sha256"]
    assert (stored.kind, stored.empi_id, stored.type_code) == ("received", "E-42", "C0003")


def test_a_duplicate_delivery_leaves_one_document(store: DocumentStore) -> None:
    metrics = Metrics()
    sink = DocumentSink(store, metrics)
    item = decoded("document", document_event(V1))
    assert sink.write([item, item]) == []  # twice within a batch
    assert sink.write([item]) == []  # and once more
    assert store.count() == 1
    assert sample("hutong_documents_stored_total", metrics, kind="received") == 1
    assert sample("hutong_document_duplicates_total", metrics, item="document") == 2


def test_a_received_replacement_keeps_the_history(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    first = decoded("document", document_event(V1))
    second = decoded("document", document_event(V2, version=2, replaces=V1, body="corrected"))
    assert sink.write([first]) == []
    assert sink.write([second]) == []
    old, new = store.get(V1), store.get(V2)
    assert old is not None and new is not None and old.replaced_by == V2
    assert (new.version_number, new.replaces_document_id) == (2, V1)
    assert [d.document_id for d in store.index("E-42")] == [V2]


def test_an_id_sent_again_with_other_content_is_a_dead_letter(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write([decoded("document", document_event(V1))]) == []
    changed = decoded("document", document_event(V1, body="changed in place"))
    [rejected] = sink.write([changed])
    assert rejected.item is changed and "other content" in rejected.reason
    stored = store.get(V1)
    assert stored is not None and b"changed in place" not in (stored.content or b"")


def report(accession: str, status: str = "F", text: str = "右下肺结节，建议随访。",
           **overrides: Any) -> dict[str, Any]:
    """An imaging report event: its accession number makes its document group."""
    return SAMPLES["imaging-report"](
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{accession}:{status}:{text}")),
        accession_number=accession, report_status=status, report_text=text,
        message_control_id=f"MSG-{status}-{len(text)}") | overrides


def test_a_made_document_gets_a_new_version_only_when_its_content_changes(
        store: DocumentStore) -> None:
    metrics = Metrics()
    sink = DocumentSink(store, metrics)
    final = decoded("imaging-report", report("ACC-1"))
    assert sink.write([final]) == []
    [v1] = store.index("E-42")
    assert (v1.version_number, v1.kind) == (1, "imaging-report")
    assert sink.write([final]) == []  # redelivered: one part, no new version
    assert store.count() == 1 and store.count("document_parts") == 1
    corrected = decoded("imaging-report", report("ACC-1", status="C", text="更正：未见结节。"))
    assert sink.write([corrected]) == []
    [v2] = store.index("E-42")
    assert (v2.version_number, v2.replaces_document_id) == (2, v1.document_id)
    old = store.get(v1.document_id)
    assert old is not None and old.replaced_by == v2.document_id  # history kept
    assert store.count() == 2 and store.count("document_parts") == 2
    assert sample("hutong_documents_stored_total", metrics, kind="imaging-report") == 2
    assert sample("hutong_document_duplicates_total", metrics, item="part") == 1


def encounter(**overrides: Any) -> dict[str, Any]:
    """An outpatient registration of visit MZ-0001 (schemas/encounter.avsc)."""
    return header("encounter", source_system="HIS", event_id="enc-1") | {
        "action": "register", "trigger_event": "A04", "visit_number": "MZ-0001",
        "patient_class": "O", "department_code": "PSY", "department_name": "精神科",
        "ward": None, "room": None, "bed": None, "prior_location": None,
        "attending_doctor_id": "D-1", "attending_doctor_name": "李四医生",
        "admit_source": None, "admit_reason": None, "admitted_at": OBSERVED,
        "discharged_at": None, "discharge_disposition": None} | overrides


def test_a_document_waits_for_its_parts_and_carries_their_sensitivity(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    diagnosis = SAMPLES["diagnosis"](event_id="dx-1", diagnosis_code="F20.0",
                                     diagnosis_name="偏执型精神分裂症")
    assert sink.write([decoded("diagnosis", diagnosis)]) == []
    assert (store.count(), store.count("document_parts")) == (0, 1)  # no visit yet: nothing
    assert sink.write([decoded("encounter", encounter(), 1)]) == []
    [record] = store.index("E-42")
    assert (record.type_code, record.version_number) == ("C0002", 1)
    assert record.sensitivity == frozenset({"mental-health"}) and record.sensitive


def test_events_of_no_document_are_passed_over(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write([decoded("order", SAMPLES["order"]())]) == []
    assert store.count() == store.count("document_parts") == 0


def test_a_batch_replayed_after_a_crash_leaves_no_duplicate(store: DocumentStore) -> None:
    """Killed after the store write and before the offset commit: the batch comes again."""
    batch = [decoded("document", document_event(f"1.2.3^R{n}", body=str(n)), n)
             for n in range(5)]
    batch += [decoded("imaging-report", report(f"ACC-{n}"), 5 + n) for n in range(3)]
    for _ in range(2):
        assert DocumentSink(store, Metrics()).write(batch) == []
    assert store.count() == 8
    assert store.count("document_parts") == 3


class _Crash(BaseException):
    """The process dying: not an error anything may catch."""


class _CrashingAssembly:
    """The hub's assembly, except that the process dies while the batch is being made."""

    def group_keys(self, schema_name: str, record: dict[str, Any]) -> list[str]:
        return assembly.group_keys(schema_name, record)

    def supersedes(self, new: dict[str, Any], stored: dict[str, Any]) -> bool:
        return assembly.supersedes(new, stored)

    def assemble(self, group_key: str, parts: Sequence[Any], *, version_number: int = 1,
                 replaces_document_id: str | None = None) -> Any:
        raise _Crash

    def withdrawn(self, group_key: str, parts: Sequence[Any]) -> frozenset[str]:
        return assembly.withdrawn(group_key, parts)

    def received(self, record: dict[str, Any]) -> Any:
        return assembly.received(record)


def test_a_crash_within_a_batch_leaves_nothing_of_it(store: DocumentStore) -> None:
    batch = [decoded("document", document_event(V1)),
             decoded("imaging-report", report("ACC-1"), 1)]
    with pytest.raises(_Crash):
        DocumentSink(store, Metrics(), assembly=_CrashingAssembly()).write(batch)
    assert store.count() == store.count("document_parts") == 0
    assert DocumentSink(store, Metrics()).write(batch) == []  # the replay stores it all
    assert store.count() == 2


# --- a real runner on the real broker ------------------------------------------------------


class _DiesAfterWriting:
    """The document sink in a process killed right after its write, before the commit."""

    name = "documents"

    def __init__(self, sink: DocumentSink) -> None:
        self._sink = sink
        self.wrote = threading.Event()

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        self._sink.write(batch)
        self.wrote.set()
        raise _Crash  # ends the runner's thread: no commit, as if killed

    def close(self) -> None:
        self._sink.close()


class _Counting:
    name = "documents"

    def __init__(self, sink: DocumentSink) -> None:
        self._sink = sink
        self.records = 0

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        rejected = self._sink.write(batch)
        self.records += len(batch)
        return rejected

    def close(self) -> None:
        self._sink.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_runner_killed_before_its_commit_leaves_no_duplicate(
        store: DocumentStore, kafka_bootstrap: str) -> None:
    topic = f"test.docstore.{uuid.uuid4().hex[:8]}"
    config = {"bootstrap.servers": kafka_bootstrap}
    admin = AdminClient(config)  # held: a collected client cancels its futures
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer(config)
    events = [document_event(f"1.2.3^K{n}", body=str(n)) for n in range(4)]
    for event in events:
        producer.produce(topic, wire.encode(catalog.schema("document"), event), b"E-42")
    assert producer.flush(30) == 0
    group = f"test-documents-{uuid.uuid4().hex[:8]}"

    dying = _DiesAfterWriting(DocumentSink(store, Metrics()))
    first = SinkRunner(config, group, [topic], dying, Metrics(), batch_size=10,
                       batch_wait_s=1.0)
    first.start()
    assert dying.wrote.wait(60)
    wait_for(lambda: not first.alive(), 30)
    assert store.count() == len(events)

    metrics = Metrics()
    counting = _Counting(DocumentSink(store, metrics))
    second = SinkRunner(config, group, [topic], counting, Metrics(), batch_size=10,
                        batch_wait_s=1.0)
    second.start()
    try:
        wait_for(lambda: counting.records >= len(events), 60)  # the same records again
    finally:
        second.stop()
    assert store.count() == len(events)
    assert sample("hutong_document_duplicates_total", metrics, item="document") == len(events)
    assert sample("hutong_documents_stored_total", metrics, kind="received") == 0
