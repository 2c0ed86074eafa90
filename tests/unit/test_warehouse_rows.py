"""Event dicts to warehouse rows, and the migration files that must agree with them."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

import sinks.warehouse
from hutong.errors import WarehouseError
from schemas import catalog, wire
from sinks.warehouse import TABLES, open_warehouse
from sinks.warehouse.migrate import load_migrations, split_statements
from sinks.warehouse.pseudonyms import Pseudonyms, protect
from tests.warehouse_events import (
    CLINICIAN_NAME,
    DOCUMENT_CONTENT,
    DOCUMENT_SHA256,
    FREE_TEXT,
    IDENTITY_VALUES,
    OBSERVED,
    RECEIVED,
    SAMPLES,
    header,
)


def lab_result(**overrides: Any) -> dict[str, Any]:
    """A lab-result event with exactly the ADR 0001 keys."""
    event: dict[str, Any] = header("lab-result") | {
        "set_id": 3,
        "placer_order_number": "PO1",
        "filler_order_number": "FO1",
        "panel_code": "CBC",
        "panel_name": "血常规",
        "specimen_type": "BLD",
        "specimen_collected_at": None,
        "test_code": "718-7",
        "test_name": "血红蛋白",
        "test_system": "LN",
        "value_type": "NM",
        "value": "98",
        "value_numeric": 98.0,
        "unit": "g/L",
        "reference_range": "115-150",
        "abnormal_flags": ["L"],
        "result_status": "F",
        "observed_at": OBSERVED,
        "performing_lab": "检验科",
        "standard_value": 98.0,
        "standard_unit": "g/L",
        "ordering_provider_id": "D0012",
        "practitioner_id": "F001|D0012",
        "practitioner_status": "known",
        "ordering_department": "NK",
        "visit_number": "ZY001",
        "patient_class": "I",
    }
    event.update(overrides)
    return event


def dead_letter(**overrides: Any) -> dict[str, Any]:
    """A dead-letter record with the keys of schemas/dead-letter.avsc."""
    letter: dict[str, Any] = {
        "dead_letter_id": "dl-1",
        "stage": "producer",
        "reason": "PID-3 is missing",
        "error_code": "101",
        "location": "PID-3",
        "facility_id": "F001",
        "source_topic": "hutong.raw.hl7v2",
        "source_partition": 2,
        "source_offset": 1234,
        "original_key": b"F001|MSG0001",
        "payload": b"MSH|^~\\&|\xb2\xe2\r",
        "failed_at": RECEIVED,
    }
    letter.update(overrides)
    return letter


HEADER_KEYS = ("event_id", "facility_id", "source_system", "message_control_id",
               "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
               "quality_warnings", "map_version", "codes", "unmapped")


def patient_event(**overrides: Any) -> dict[str, Any]:
    """A patient event (schemas/patient.avsc) with the lab result's header and patient."""
    event: dict[str, Any] = {k: v for k, v in lab_result().items() if k in HEADER_KEYS}
    event.update({
        "event_type": "patient", "action": "merge", "trigger_event": "A40",
        "merged_source_patient_id": "P099", "ethnic_group": "01", "marital_status": "20",
        "nationality": "CHN", "occupation": None, "deceased": True, "deceased_at": OBSERVED,
    })
    event.update(overrides)
    return event


def encounter_event(**overrides: Any) -> dict[str, Any]:
    """An encounter event (schemas/encounter.avsc) with the lab result's header and patient."""
    event: dict[str, Any] = {k: v for k, v in lab_result().items() if k in HEADER_KEYS}
    event.update({
        "event_type": "encounter", "action": "admit", "trigger_event": "A01",
        "visit_number": "ZY001", "patient_class": "I", "department_code": "NK",
        "department_name": "内科", "ward": "0301", "room": "312", "bed": "03",
        "prior_location": None, "attending_doctor_id": "D001",
        "practitioner_id": "F001|D001", "practitioner_status": "retired",
        "attending_doctor_name": "李四", "admit_source": "7", "admit_reason": "头痛",
        "admitted_at": OBSERVED, "discharged_at": None, "discharge_disposition": None,
    })
    event.update(overrides)
    return event


def test_patient_row() -> None:
    spec = TABLES["patient"]
    row = dict(zip(spec.column_names, spec.to_row(patient_event()), strict=True))
    assert spec.table == "patients"
    assert spec.column_names[:2] == ("event_id", "facility_id")
    assert (row["action"], row["trigger_event"], row["merged_source_patient_id"]) == (
        "merge", "A40", "P099")
    assert (row["ethnic_group"], row["deceased"], row["deceased_at"]) == ("01", True, OBSERVED)
    assert (row["patient_sex"], row["patient_birth_date"]) == ("2", date(1936, 5, 6))
    assert row["occupation"] is None


def test_encounter_row() -> None:
    spec = TABLES["encounter"]
    row = dict(zip(spec.column_names, spec.to_row(encounter_event()), strict=True))
    assert spec.table == "encounters"
    assert (row["action"], row["visit_number"], row["ward"], row["bed"]) == (
        "admit", "ZY001", "0301", "03")
    assert (row["admitted_at"], row["discharged_at"]) == (OBSERVED, None)
    assert row["attending_doctor_id"] == "D001"
    assert "attending_doctor_name" not in row  # a name: kept in the event, not in analytics


def test_patient_and_encounter_rows_hold_no_identity() -> None:
    for kind, event in (("patient", patient_event()), ("encounter", encounter_event())):
        spec = TABLES[kind]
        assert not {"name", "id_card_number", "health_card_number", "phone", "address",
                    "identifiers", "patient_name", "patient_id_card_number",
                    "patient_health_card_number", "patient_phone", "patient_address",
                    "patient_identifiers", "attending_doctor_name"} & set(spec.column_names)
        row = spec.to_row(event)
        assert not any(value in str(row) for value in (*IDENTITY_VALUES, "李四"))


def test_naive_admission_time_is_refused() -> None:
    with pytest.raises(WarehouseError, match=r"encounters: .*admitted_at is a naive datetime"):
        TABLES["encounter"].to_row(encounter_event(admitted_at=datetime(2026, 3, 1, 9, 0)))


def test_lab_result_row_follows_column_order() -> None:
    spec = TABLES["lab-result"]
    row = dict(zip(spec.column_names, spec.to_row(lab_result()), strict=True))
    assert spec.table == "lab_results"
    assert spec.column_names[:2] == ("event_id", "facility_id")
    assert row["event_id"] == "6f1c2a4e-0000-5000-8000-000000000001"
    assert row["patient_sex"] == "2"
    assert row["patient_birth_date"] == date(1936, 5, 6)
    assert row["received_at"] == RECEIVED
    assert row["specimen_collected_at"] is None
    assert row["set_id"] == 3
    assert row["value_numeric"] == 98.0
    assert row["abnormal_flags"] == ["L"]
    assert row["quality_warnings"] == ["PID-19: bad check digit"]


#: The practitioner registry's tables: the staff directory, names included (never ID numbers).
STAFF_TABLES = {"practitioner", "unknown-practitioner"}


def test_identity_stays_out_of_every_table() -> None:
    sensitive = {"name", "id_card_number", "health_card_number", "phone", "address",
                 "identifiers", "id_number"}
    for kind, spec in TABLES.items():
        # patient_class is the encounter's PV1-2, not a field of the PatientIdentity
        from_patient = {c for c in spec.column_names if c.startswith("patient_")} - {
            "patient_class"}
        assert from_patient <= {"patient_sex", "patient_birth_date", "patient_age_band",
                                "patient_region_code"}
        assert not (sensitive - {"name"} if kind in STAFF_TABLES else sensitive) & set(
            spec.column_names), kind
    row = TABLES["lab-result"].to_row(lab_result())
    assert not any(value in str(row) for value in IDENTITY_VALUES)


def test_dead_letter_row_keeps_raw_bytes() -> None:
    spec = TABLES["dead-letter"]
    row = dict(zip(spec.column_names, spec.to_row(dead_letter()), strict=True))
    assert spec.table == "dead_letters"
    assert row["payload"] == b"MSH|^~\\&|\xb2\xe2\r"
    assert row["payload_size"] == 12
    assert row["source_offset"] == 1234
    assert "original_key" not in row


def test_dead_letter_text_payload_is_sized_in_utf8_bytes() -> None:
    spec = TABLES["dead-letter"]
    row = dict(zip(spec.column_names, spec.to_row(dead_letter(payload="检验")), strict=True))
    assert (row["payload_size"], row["payload"]) == (6, "检验".encode())


def test_naive_timestamp_is_refused_without_quoting_values() -> None:
    naive = datetime(2026, 3, 1, 9, 0)
    with pytest.raises(WarehouseError, match="observed_at is a naive datetime") as caught:
        TABLES["lab-result"].to_row(lab_result(observed_at=naive))
    assert "lab_results" in str(caught.value)
    assert "2026" not in str(caught.value)


def test_missing_field_names_table_and_field() -> None:
    event = lab_result()
    del event["test_code"]
    with pytest.raises(WarehouseError, match=r"lab_results: .*KeyError: 'test_code'"):
        TABLES["lab-result"].to_row(event)


def test_every_event_type_has_a_table() -> None:
    """An event type without a table would turn every one of its events into a dead letter."""
    assert set(catalog.EVENT_TYPES) <= set(TABLES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_sample_event_fits_its_schema(kind: str) -> None:
    event = SAMPLES[kind]()
    assert event["event_type"] == kind
    assert wire.encode(catalog.schema(kind), event)[:1] == b"\x00"


#: Event type -> the schema fields its table leaves out, besides ``event_type`` (the
#: table says it) and ``patient`` (reduced to sex and birth date): clinicians' names,
#: free text that may name people, a document's content.
LEFT_OUT: dict[str, set[str]] = {
    "imaging-report": {"radiologist_name", "report_text", "impression"},
    "order": {"ordering_provider_name", "clinical_info"},
    "medication": {"prescriber_name"},
    "diagnosis": {"clinician_name"},
    "document": {"author_name", "content"},
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_tables_leave_out_exactly_names_free_text_and_content(kind: str) -> None:
    """A field added to a schema later must be decided on here: kept, or left out."""
    fields = {f["name"] for f in catalog.schema(kind).parsed["fields"]}
    assert fields - set(TABLES[kind].column_names) == LEFT_OUT[kind] | {"event_type", "patient"}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_rows_hold_no_identity_clinician_name_free_text_or_content(kind: str) -> None:
    row = TABLES[kind].to_row(SAMPLES[kind]())
    text = str(row)
    assert not any(value in text for value in (*IDENTITY_VALUES, CLINICIAN_NAME, FREE_TEXT))
    assert DOCUMENT_CONTENT not in row


@pytest.mark.parametrize(
    ("kind", "overrides", "expected"),
    [
        ("imaging-report", {}, {
            "accession_number": "ACC-7001", "study_instance_uid": "1.2.156.112605.7001",
            "modality": "CT", "critical_finding": True, "report_status": "F",
            "report_text_chars": len(FREE_TEXT), "impression_chars": 5,
            "study_at": OBSERVED, "reported_at": RECEIVED, "radiologist_id": "R-9",
            "placer_order_number": "PO-7001"}),
        ("imaging-report", {"report_text": None, "impression": "", "critical_finding": False},
         {"report_text_chars": None, "impression_chars": 0, "critical_finding": False}),
        ("order", {}, {
            "order_control": "NW", "item_code": "CT-CHEST", "priority": "S",
            "clinical_info_chars": len(FREE_TEXT), "ordered_at": OBSERVED,
            "ordering_provider_id": "D-1", "filler_order_number": None}),
        ("order", {"clinical_info": None}, {"clinical_info_chars": None}),
        ("medication", {}, {
            "action": "prescribe", "drug_code": "86900001", "dose": 0.5, "dose_unit": "g",
            "duration": "7d", "duration_days": 7, "quantity": 42.0, "prescribed_at": OBSERVED,
            "dispensed_at": None, "prescriber_id": "D-1"}),
        ("diagnosis", {}, {
            "set_id": 1, "diagnosis_code": "J06.9", "diagnosis_name": "急性上呼吸道感染",
            "priority": 1, "diagnosed_at": OBSERVED, "clinician_id": "D-1",
            "visit_number": "MZ-0001"}),
        ("document", {}, {
            "document_id": "2.16.156.10011.1.1^DOC-1", "document_type_code": "C0003",
            "set_id": "2.16.156.10011.1.1^SET-1", "version_number": 2,
            "replaces_document_id": "2.16.156.10011.1.1^DOC-0", "author_id": "D-1",
            "custodian_name": "某区人民医院", "effective_time": OBSERVED,
            "content_sha256": DOCUMENT_SHA256, "content_size": len(DOCUMENT_CONTENT)}),
        ("document", {"content": b""}, {"content_size": 0}),
    ],
)
def test_new_event_rows(kind: str, overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = TABLES[kind]
    row = dict(zip(spec.column_names, spec.to_row(SAMPLES[kind](**overrides)), strict=True))
    assert row["event_id"] == "6f1c2a4e-0000-5000-8000-000000000001"
    assert (row["patient_sex"], row["patient_birth_date"]) == ("2", date(1936, 5, 6))
    assert {column: row[column] for column in expected} == expected


def test_new_table_names() -> None:
    assert {kind: TABLES[kind].table for kind in SAMPLES} == {
        "imaging-report": "imaging_reports", "order": "orders", "medication": "medications",
        "diagnosis": "diagnoses", "document": "documents"}


def test_naive_document_time_is_refused() -> None:
    event = SAMPLES["document"](effective_time=datetime(2026, 3, 1, 9, 0))
    with pytest.raises(WarehouseError, match=r"documents: .*effective_time is a naive datetime"):
        TABLES["document"].to_row(event)


def test_migration_columns_match_table_specs() -> None:
    """The CREATE TABLE of each table, with the columns later migrations add where they
    put them, lists the spec's columns in the same order."""
    created: dict[str, list[str]] = {}
    for migration in load_migrations():
        for statement in migration.statements:
            found = re.match(
                r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*ENGINE", statement, re.S
            )
            if found:
                lines = [line.split()[0] for line in found[2].strip().splitlines()]
                created[found[1]] = [name for name in lines if name != "INDEX"]
            added = re.match(r"ALTER TABLE (\w+)\s+ADD COLUMN IF NOT EXISTS (\w+)\b.*"
                             r"\bAFTER (\w+)\s*$", statement, re.S)
            if added:
                columns = created[added[1]]
                columns.insert(columns.index(added[3]) + 1, added[2])
    for spec in TABLES.values():
        assert created[spec.table] == [*spec.column_names, "ingested_at"], spec.table


def test_migrations_are_found_in_version_order() -> None:
    migrations = load_migrations()
    assert migrations[0].name == "0001_lab_results_and_dead_letters"
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert len(migrations[0].statements) == 2


def test_split_statements_drops_comments_and_splits_on_line_ending_semicolons() -> None:
    sql = (
        "-- a table;\nCREATE TABLE a\n(x String COMMENT 'a; b')\n;\n\n-- next\nSELECT 1;\nSELECT 2"
    )
    assert split_statements(sql) == (
        "CREATE TABLE a\n(x String COMMENT 'a; b')",
        "SELECT 1",
        "SELECT 2",
    )


def test_open_warehouse_rejects_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="http:// or https://"):
        open_warehouse("clickhouse://db:9000", tmp_path)


def test_public_names() -> None:
    assert sorted(sinks.warehouse.__all__) == [
        "TABLES",
        "TableSpec",
        "Warehouse",
        "WarehouseWriter",
        "migrate",
        "open_warehouse",
    ]


def _link(**overrides: Any) -> dict[str, Any]:
    return {"facility_id": "A", "source_patient_id": "1", "empi_id": "E1", "action": "link",
            "score": None, "reason": "same id card number", "decided_by": "id_card",
            "previous_empi_id": None, "sequence": 7,
            "linked_at": datetime.fromisoformat("2026-12-04T09:00:00+08:00"), **overrides}


def test_a_link_change_has_an_id_derived_from_the_change() -> None:
    spec = TABLES["empi-link"]
    row = dict(zip(spec.column_names, spec.to_row(_link()), strict=True))
    assert (spec.table, row["empi_id"], row["sequence"]) == ("patient_links", "E1", 7)
    assert spec.to_row(_link())[0] == row["link_id"]  # a replay lands on the same row
    assert spec.to_row(_link(sequence=8))[0] != row["link_id"]
    assert spec.to_row(_link(action="merge"))[0] != row["link_id"]
    assert wire.encode(catalog.schema("empi-link"), _link())[:1] == b"\x00"


def test_a_review_pair_has_one_row_per_status() -> None:
    pair = {"pair_id": "p1", "left_facility_id": "A", "left_source_patient_id": "1",
            "right_facility_id": "B", "right_source_patient_id": "2", "left_empi_id": "E1",
            "right_empi_id": "E2", "score": 0.95, "comparison": {"name": 9.1},
            "status": "open", "decided_by": None, "decided_at": None,
            "created_at": datetime.fromisoformat("2026-12-04T09:00:00+08:00")}
    spec = TABLES["empi-review"]
    assert spec.to_row(pair)[0] == "p1:open"
    assert spec.to_row({**pair, "status": "linked"})[0] == "p1:linked"
    assert wire.encode(catalog.schema("empi-review"), pair)[:1] == b"\x00"


#: Event type -> the field naming the clinician whose registry id the stream sets.
CLINICIAN_FIELD = {
    "encounter": "attending_doctor_id", "lab-result": "ordering_provider_id",
    "imaging-report": "radiologist_id", "order": "ordering_provider_id",
    "medication": "prescriber_id", "diagnosis": "clinician_id", "document": "author_id",
}
EVENT_BUILDERS = {"encounter": encounter_event, "lab-result": lab_result, **SAMPLES}


@pytest.mark.parametrize("kind", sorted(CLINICIAN_FIELD))
def test_event_rows_carry_the_practitioner_beside_the_clinician_id(kind: str) -> None:
    spec = TABLES[kind]
    at = spec.column_names.index(CLINICIAN_FIELD[kind])
    assert spec.column_names[at + 1 : at + 3] == ("practitioner_id", "practitioner_status")
    event = EVENT_BUILDERS[kind](practitioner_id="F001|D-7", practitioner_status="retired")
    row = dict(zip(spec.column_names, spec.to_row(event), strict=True))
    assert (row["practitioner_id"], row["practitioner_status"]) == ("F001|D-7", "retired")
    unknown = EVENT_BUILDERS[kind](practitioner_id=None, practitioner_status="unknown")
    row = dict(zip(spec.column_names, spec.to_row(unknown), strict=True))
    assert (row["practitioner_id"], row["practitioner_status"]) == (None, "unknown")
    assert wire.encode(catalog.schema(kind), event)[:1] == b"\x00"


def test_only_the_seven_clinical_tables_carry_a_practitioner() -> None:
    carrying = {kind for kind, spec in TABLES.items() if "practitioner_status" in spec.column_names}
    assert carrying == set(CLINICIAN_FIELD)


PRACTITIONER_ID_NUMBER = "110101198001010014"
CHANGED = datetime.fromisoformat("2026-12-04T09:00:00+08:00")


def practitioner(**overrides: Any) -> dict[str, Any]:
    """A registry record with the keys of schemas/practitioner.avsc."""
    return {
        "practitioner_id": "F001|D-1", "facility_id": "F001", "local_id": "D-1",
        "name": "王医生", "id_number": PRACTITIONER_ID_NUMBER,
        "id_pseudonym": "ps_0123456789abcdef0123456789abcdef",
        "certificate_number": "110110000012345", "department": "呼吸内科", "role": "医师",
        "title": "主治医师", "status": "active", "warnings": [], "version": 1,
        "changed_at": CHANGED, "changed_by": "registry-file", "reason": None,
        "file_digest": "ab" * 32, **overrides,
    }


def unknown_practitioner(**overrides: Any) -> dict[str, Any]:
    """A record with the keys of schemas/unknown-practitioner.avsc."""
    return {
        "facility_id": "F001", "local_id": "D-404", "name": "赵医生", "role": "ordering",
        "event_type": "lab-result", "count": 3, "first_seen": CHANGED, "last_seen": CHANGED,
        **overrides,
    }


def test_a_practitioner_row_keeps_the_pseudonym_and_leaves_out_the_id_number() -> None:
    spec = TABLES["practitioner"]
    assert (spec.table, spec.id_column) == ("practitioners", "practitioner_row_id")
    record = practitioner()
    assert wire.encode(catalog.schema("practitioner"), record)[:1] == b"\x00"
    row = dict(zip(spec.column_names, spec.to_row(record), strict=True))
    assert "id_number" not in row
    assert PRACTITIONER_ID_NUMBER not in str(spec.to_row(record))
    assert (row["practitioner_id"], row["local_id"], row["id_pseudonym"], row["version"]) == (
        "F001|D-1", "D-1", "ps_0123456789abcdef0123456789abcdef", 1)
    assert (row["certificate_number"], row["status"], row["changed_at"]) == (
        "110110000012345", "active", CHANGED)


def test_a_practitioner_row_id_is_one_per_version() -> None:
    spec = TABLES["practitioner"]
    first = spec.to_row(practitioner())[0]
    assert spec.to_row(practitioner())[0] == first  # the record read again lands on its row
    assert spec.to_row(practitioner(id_number=None))[0] == first  # not derived from the number
    assert spec.to_row(practitioner(version=2, status="retired"))[0] != first
    assert spec.to_row(practitioner(practitioner_id="F002|D-1", facility_id="F002"))[0] != first


def test_an_unknown_practitioner_row_id_is_a_digest_of_the_whole_record() -> None:
    spec = TABLES["unknown-practitioner"]
    assert (spec.table, spec.id_column) == ("unknown_practitioners", "unknown_row_id")
    record = unknown_practitioner()
    assert wire.encode(catalog.schema("unknown-practitioner"), record)[:1] == b"\x00"
    row = dict(zip(spec.column_names, spec.to_row(record), strict=True))
    assert (row["local_id"], row["name"], row["role"], row["event_type"], row["count"]) == (
        "D-404", "赵医生", "ordering", "lab-result", 3)
    assert spec.to_row(unknown_practitioner())[0] == row["unknown_row_id"]
    for change in ({"count": 4}, {"name": None}, {"role": "attending"},
                   {"event_type": "order"}, {"local_id": "D-405"}, {"facility_id": "F002"},
                   {"last_seen": datetime.fromisoformat("2026-12-04T09:01:00+08:00")}):
        assert spec.to_row(unknown_practitioner(**change))[0] != row["unknown_row_id"], change


@pytest.mark.parametrize(("kind", "left_out"), [
    ("practitioner", {"id_number"}), ("unknown-practitioner", set()),
])
def test_registry_tables_leave_out_exactly_the_id_number(kind: str, left_out: set[str]) -> None:
    """A field added to either schema later must be decided on here: kept, or left out."""
    fields = {f["name"] for f in catalog.schema(kind).parsed["fields"]}
    assert fields - set(TABLES[kind].column_names) == left_out


def test_protect_keeps_staff_ids_as_they_are() -> None:
    """Staff ids are work ids, not patient data: the pseudonymised warehouse keeps them."""
    protected = protect(TABLES, Pseudonyms(b"a key of at least sixteen bytes"))
    for kind, record in (("practitioner", practitioner()),
                         ("unknown-practitioner", unknown_practitioner())):
        assert protected[kind].to_row(record) == TABLES[kind].to_row(record), kind
    spec = protected["order"]
    row = dict(zip(spec.column_names, spec.to_row(SAMPLES["order"]()), strict=True))
    assert (row["ordering_provider_id"], row["practitioner_id"]) == ("D-1", "F001|D-1")
    assert row["source_patient_id"] != "P123"  # while the patient's id is a pseudonym


def test_every_table_is_fed_by_a_topic_the_sink_reads() -> None:
    """A table whose topic the sink does not subscribe to stays empty."""
    from hutong.hub import SINK_TOPICS

    def read(topic: str) -> bool:
        return any(re.fullmatch(pattern[1:], topic) if pattern.startswith("^")
                   else pattern == topic for pattern in SINK_TOPICS)

    unread = {kind for kind in TABLES
              if not any(read(topic) for topic, schema in catalog.TOPICS.items()
                         if schema == kind)}
    assert unread == set()
