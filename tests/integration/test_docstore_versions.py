"""The document sink's versions, rejections and withdrawals, on SQLite and on PostgreSQL.

Each test replays what the review of the document store found (findings 4-12):
redeliveries in any order, one bad event among good ones, data a column cannot
take, a replacement naming another facility's document, a lab correction, a
document whose events withdraw it, an ED visit that became an admission.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hutong.metrics import Metrics
from sinks.base import Decoded
from sinks.docstore import assembly
from sinks.docstore import store as docstore_store
from sinks.docstore.model import Document
from sinks.docstore.sink import DocumentSink
from sinks.docstore.store import DocumentStore, StoredDocument
from tests.docstore_support import BACKENDS, decoded, document_event, store_on
from tests.unit.test_assembly import (
    EMPI,
    OBSERVED,
    RECEIVED,
    diagnosis,
    encounter,
    lab_result,
    medication,
)

pytestmark = pytest.mark.integration

LATER = OBSERVED + timedelta(hours=1)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentStore]:
    with store_on(request.param, tmp_path) as opened:
        yield opened


def events(*records: tuple[str, dict[str, Any]]) -> list[Decoded]:
    return [decoded(kind, record, n) for n, (kind, record) in enumerate(records)]


def current(store: DocumentStore, empi_id: str = EMPI) -> list[StoredDocument]:
    return store.index(empi_id)


def content_of(store: DocumentStore, document_id: str) -> bytes:
    found = store.get(document_id)
    assert found is not None and found.content is not None
    return found.content


# --- finding 4: redeliveries converge ------------------------------------------------------

def _untranslated(record: dict[str, Any]) -> dict[str, Any]:
    return record | {"codes": [c for c in record["codes"] if c["field"] != "test_code"],
                     "unmapped": ["test_code"], "map_version": None}


def test_a_replay_of_older_deliveries_makes_no_version(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    fresh = lab_result(1)
    stale = _untranslated(fresh)
    for record in (stale, fresh, stale, fresh):  # first delivery, then a replay, one a batch
        assert sink.write(events(("lab-result", record))) == []
    [report] = current(store)
    assert report.set_id is not None
    assert [v.version_number for v in store.versions(report.set_id)] == [1, 2]
    assert b"2823-3" in content_of(store, report.document_id)  # the translated delivery


def test_a_stale_delivery_after_the_fresh_one_changes_nothing(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    fresh = lab_result(1)
    for record in (fresh, _untranslated(fresh), fresh):
        assert sink.write(events(("lab-result", record))) == []
    [report] = current(store)
    assert report.version_number == 1 and store.count() == 1
    assert b"2823-3" in content_of(store, report.document_id)


# --- finding 5: data a column cannot take is the item's problem, not the batch's -----------

def test_unusual_but_valid_values_are_stored(store: DocumentStore) -> None:
    event = document_event("1.2.3^" + "D" * 200, confidentiality_code="VERYRESTRICTED",
                           document_type_code="HSDB03.02.VERY-LONG-TYPE-CODE",
                           visit_number="V" * 300, set_id="1.2.3^" + "S" * 200)
    assert DocumentSink(store, Metrics()).write([decoded("document", event)]) == []
    stored = store.get(event["document_id"])
    assert stored is not None and stored.confidentiality_code == "VERYRESTRICTED"


def test_an_id_too_long_is_a_dead_letter_and_the_rest_is_stored(store: DocumentStore) -> None:
    batch = events(("encounter", encounter(visit_number="V" * 2000)),
                   ("document", document_event("1.2.3^" + "D" * 2000)),
                   ("document", document_event("1.2.3^FINE")))
    rejected = DocumentSink(store, Metrics()).write(batch)
    assert [(r.item.offset, "too long" in r.reason) for r in rejected] == [(0, True),
                                                                          (1, True)]
    assert store.get("1.2.3^FINE") is not None
    assert store.count("document_parts") == 0


class _Faulty:
    """The hub's assembly, except where a test makes it fail on a marked event."""

    def __init__(self, *, broken_row: bool = False) -> None:
        self._broken_row = broken_row

    def group_keys(self, schema_name: str, record: dict[str, Any]) -> list[str]:
        return assembly.group_keys(schema_name, record)

    def supersedes(self, new: dict[str, Any], stored: dict[str, Any]) -> bool:
        return assembly.supersedes(new, stored)

    def assemble(self, group_key: str, parts: Sequence[Any], *, version_number: int = 1,
                 replaces_document_id: str | None = None) -> Document | None:
        if any(record.get("diagnosis_name") == "BOOM" for _, record in parts):
            raise ValueError("assembly cannot take this event")
        return assembly.assemble(group_key, parts, version_number=version_number,
                                 replaces_document_id=replaces_document_id)

    def withdrawn(self, group_key: str, parts: Sequence[Any]) -> frozenset[str]:
        return assembly.withdrawn(group_key, parts)

    def received(self, record: dict[str, Any]) -> Document:
        document = assembly.received(record)
        if self._broken_row and record.get("title") == "BROKEN":
            # a row the database refuses: NOT NULL on both backends
            return dataclasses.replace(document, type_name=None)  # type: ignore[arg-type]
        return document


def test_a_row_the_database_refuses_is_a_dead_letter(store: DocumentStore) -> None:
    batch = events(("document", document_event("1.2.3^A")),
                   ("document", document_event("1.2.3^B", title="BROKEN")),
                   ("document", document_event("1.2.3^C")))
    rejected = DocumentSink(store, Metrics(), assembly=_Faulty(broken_row=True)).write(batch)
    assert [r.item.offset for r in rejected] == [1]
    assert "refused" in rejected[0].reason and "1.2.3^B" not in rejected[0].reason
    assert store.get("1.2.3^A") is not None and store.get("1.2.3^C") is not None
    assert store.get("1.2.3^B") is None


def test_a_nul_in_a_visit_number_is_stored_alike_on_both_databases(
        store: DocumentStore) -> None:
    number = "MZ\x00-0001"  # PostgreSQL text cannot hold a NUL
    batch = events(("encounter", encounter(visit_number=number)),
                   ("diagnosis", diagnosis(visit_number=number)))
    assert DocumentSink(store, Metrics()).write(batch) == []
    [record] = current(store)
    assert record.visit_number == "MZ-0001"  # as the CDA says it


def test_a_group_the_database_refuses_to_read_is_a_dead_letter(store: DocumentStore) -> None:
    odd = lab_result(1) | {"event_id": "ev\x00nul"}  # no hub makes such an id; a driver may
    batch = events(("lab-result", odd), ("document", document_event("1.2.3^FINE")))
    rejected = DocumentSink(store, Metrics()).write(batch)
    # SQLite takes it; PostgreSQL refuses even to look it up
    assert [r.item.offset for r in rejected] == ([0] if store.backend == "postgresql" else [])
    assert all("refused" in r.reason for r in rejected)
    assert store.get("1.2.3^FINE") is not None


# --- finding 6: one bad part does not break its group -------------------------------------

def test_a_control_character_in_a_diagnosis_name_makes_no_dead_letter(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    batch = events(("encounter", encounter()),
                   ("diagnosis", diagnosis(diagnosis_name="急性\x01上呼吸道感染")))
    assert sink.write(batch) == []
    assert sink.write(events(("diagnosis", diagnosis(2, diagnosis_code="R05",
                                                     diagnosis_name="咳嗽")))) == []
    [record] = current(store)
    assert record.version_number == 2
    assert "急性上呼吸道感染".encode() in content_of(store, record.document_id)


def test_a_failing_event_is_rejected_and_the_rest_of_its_group_assembled(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics(), assembly=_Faulty())
    bad = ("diagnosis", diagnosis(2, diagnosis_code="R05", diagnosis_name="BOOM"))
    batch = events(("encounter", encounter()), bad, ("diagnosis", diagnosis(1)))
    [rejected] = sink.write(batch)
    assert rejected.item.offset == 1 and "ValueError" in rejected.reason
    [record] = current(store)
    assert b"J06.9" in content_of(store, record.document_id) and b"BOOM" not in content_of(
        store, record.document_id)
    assert store.count("document_parts") == 2  # the failing event's part was rolled back
    # replayed (say the dead letter was never published): rejected again, not lost
    [again] = sink.write(events(bad))
    assert "ValueError" in again.reason
    assert sink.write(events(("diagnosis", diagnosis(3, diagnosis_code="R50.9",
                                                     diagnosis_name="发热")))) == []
    assert [d.version_number for d in current(store)] == [2]


def test_a_refused_group_leaves_the_other_groups_of_its_batch_written_and_counted_once(
        store: DocumentStore) -> None:
    """The sink tries a batch's groups together first; one refused group sends every
    group of the batch through again on its own, the ones before it included."""
    metrics = Metrics()
    sink = DocumentSink(store, metrics, assembly=_Faulty())
    bad = ("diagnosis", diagnosis(2, diagnosis_code="R05", diagnosis_name="BOOM"))
    batch = events(("lab-result", lab_result(1)), ("lab-result", lab_result(2)),
                   ("encounter", encounter()), bad, ("diagnosis", diagnosis(1)),
                   ("medication", medication(1)), ("lab-result", lab_result(1)))
    [rejected] = sink.write(batch)
    assert rejected.item.offset == 3 and "ValueError" in rejected.reason
    assert sorted(d.kind for d in current(store)) == ["lab-report", "outpatient-record",
                                                      "prescription"]
    assert store.count("document_parts") == 5  # the failing event's part was rolled back
    stored = {kind: metrics.registry.get_sample_value(
        "hutong_documents_stored_total", {"kind": kind}) for kind in (
        "lab-report", "outpatient-record", "prescription")}
    assert stored == {"lab-report": 1.0, "outpatient-record": 1.0, "prescription": 1.0}
    assert metrics.registry.get_sample_value("hutong_document_duplicates_total",
                                             {"item": "part"}) == 1.0


def test_groups_read_together_in_chunks_make_each_its_document(
        store: DocumentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink reads a batch's groups in IN lists of a bounded length; with two keys a
    list, five groups (two of them known already) still make each its document."""
    monkeypatch.setattr(docstore_store, "_IN_CHUNK", 2)
    sink = DocumentSink(store, Metrics())
    known = events(*(("medication", medication(1, control_id=f"RX{n}",
                                               prescription_number=f"RX-{n}"))
                     for n in range(2)))
    assert sink.write(known) == []
    batch = events(*(("medication", medication(2, control_id=f"RXB{n}",
                                               prescription_number=f"RX-{n}",
                                               drug_code="86900002", drug_name="布洛芬片"))
                     for n in range(5)))
    assert sink.write(batch) == []
    versions = sorted(d.version_number for d in current(store))
    assert versions == [1, 1, 1, 2, 2]  # the two known prescriptions have a second line


# --- finding 7: a replacement only within one facility and patient ------------------------

V1 = "2.16.156.10011.1.1^DOC-1"


def test_a_replacement_naming_another_facilitys_document_is_refused(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write([decoded("document", document_event(V1))]) == []
    foreign = document_event("2.16.156.10011.1.1^F002-9", version=2, replaces=V1,
                             body="other", facility_id="F002", custodian_id="F002",
                             empi_id="E-7")
    [rejected] = sink.write([decoded("document", foreign)])
    assert "another facility or patient" in rejected.reason
    assert store.get("2.16.156.10011.1.1^F002-9") is None
    assert [d.document_id for d in current(store, "E-42")] == [V1]
    other_patient = document_event("2.16.156.10011.1.1^DOC-2", version=2, replaces=V1,
                                   body="other patient", empi_id="E-7")
    [rejected] = sink.write([decoded("document", other_patient)])
    assert "another facility or patient" in rejected.reason
    old = store.get(V1)
    assert old is not None and old.replaced_by is None


def test_a_foreign_replacement_that_arrived_first_does_not_hide_the_document(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    foreign = document_event("2.16.156.10011.1.1^F002-9", version=2, replaces=V1,
                             body="other", facility_id="F002", custodian_id="F002",
                             empi_id="E-7")
    assert sink.write([decoded("document", foreign)]) == []  # nothing to check it against yet
    assert sink.write([decoded("document", document_event(V1))]) == []
    old = store.get(V1)
    assert old is not None and old.replaced_by is None
    assert [d.document_id for d in current(store, "E-42")] == [V1]


# --- finding 8: a lab correction is a version of its report --------------------------------

def test_a_lab_correction_in_a_new_message_replaces_the_report(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write(events(("lab-result", lab_result(1, "LAB0001")))) == []
    corrected = lab_result(1, "LAB0002", value="5.1", value_numeric=5.1, standard_value=5.1,
                           result_status="C", received_at=RECEIVED + timedelta(hours=2))
    assert sink.write(events(("lab-result", corrected))) == []
    [report] = current(store)
    assert (report.version_number, report.kind) == (2, "lab-report")
    assert b'value="5.1"' in content_of(store, report.document_id)
    assert report.replaces_document_id is not None
    replaced = store.get(report.replaces_document_id)
    assert replaced is not None and replaced.replaced_by == report.document_id


# --- finding 9: withdrawn content is no longer current ---------------------------------------

def test_a_prescription_whose_lines_are_all_cancelled_is_withdrawn(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write(events(("medication", medication(1)))) == []
    [prescription] = current(store)
    cancel = medication(1, "RX0002", action="cancel", order_control="CA", occurred_at=LATER)
    assert sink.write(events(("medication", cancel))) == []
    assert current(store) == []
    kept = store.get(prescription.document_id)
    assert kept is not None and kept.withdrawn_at is not None and kept.content  # for audit
    assert [d.document_id for d in store.index(EMPI, include_withdrawn=True)] == [
        prescription.document_id]
    assert sink.write(events(("medication", cancel))) == []  # redelivered: nothing more
    again = medication(2, "RX0003", drug_code="86900002", drug_name="布洛芬片",
                       occurred_at=LATER + timedelta(hours=1),
                       prescribed_at=LATER + timedelta(hours=1))
    assert sink.write(events(("medication", again))) == []
    [renewed] = current(store)
    assert (renewed.version_number, renewed.replaces_document_id) == (
        2, prescription.document_id)
    assert renewed.withdrawn_at is None


def test_a_cancelled_registration_withdraws_the_outpatient_record(
        store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write(events(("encounter", encounter()), ("diagnosis", diagnosis()))) == []
    [record] = current(store)
    cancel = encounter("ADT0002", action="cancel", trigger_event="A11", occurred_at=LATER)
    assert sink.write(events(("encounter", cancel))) == []
    assert current(store) == []
    withdrawn = store.get(record.document_id)
    assert withdrawn is not None and withdrawn.withdrawn_at is not None


def test_a_report_whose_results_are_all_deleted_is_withdrawn(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    assert sink.write(events(("lab-result", lab_result(1)))) == []
    deleted = lab_result(1, "LAB0002", result_status="D",
                         received_at=RECEIVED + timedelta(hours=1))
    assert sink.write(events(("lab-result", deleted))) == []
    assert current(store) == []


# --- finding 12: an ED visit that became an admission keeps its record ----------------------

def test_an_ed_record_is_not_replaced_by_the_discharge_summary(store: DocumentStore) -> None:
    sink = DocumentSink(store, Metrics())
    stay = {"visit_number": "MZ-0001", "patient_class": "I"}
    assert sink.write(events(("encounter", encounter(patient_class="E")),
                             ("diagnosis", diagnosis()))) == []
    [ed] = current(store)
    admit = encounter("ADT0002", action="admit", trigger_event="A01", occurred_at=LATER,
                      **stay)
    assert sink.write(events(("encounter", admit))) == []
    assert [d.document_id for d in current(store)] == [ed.document_id]  # still current
    out = LATER + timedelta(days=3)
    discharge = encounter("ADT0003", action="discharge", trigger_event="A03",
                          occurred_at=out, discharged_at=out, **stay)
    assert sink.write(events(("encounter", discharge))) == []
    documents = {d.type_code: d for d in current(store)}
    assert set(documents) == {"C0002", "C0053"}
    assert documents["C0053"].version_number == 1
    assert documents["C0053"].replaces_document_id is None
    assert documents["C0053"].set_id != documents["C0002"].set_id
    assert documents["C0002"].replaced_by is None
    assert hashlib.sha256(content_of(store, ed.document_id)).hexdigest() == ed.content_sha256
