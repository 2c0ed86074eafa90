"""The warehouse against a real chDB in a temporary directory.

chDB hosts one data directory per process at a time: each test opens its own
and closes it, so none holds the engine while another opens a different path.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hutong.errors import WarehouseError
from hutong.metrics import Metrics
from schemas import catalog, wire
from sinks.base import Decoded
from sinks.warehouse import TABLES, Warehouse, WarehouseWriter, migrate, open_warehouse
from sinks.warehouse.sink import WarehouseSink
from tests.warehouse_events import DOCUMENT_CONTENT, FREE_TEXT, OBSERVED, SAMPLES, header

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECEIVED = datetime(2026, 3, 1, 1, 2, 3, 456000, tzinfo=UTC)
PAYLOAD = b"MSH|^~\\&|\xb2\xe2\r"  # GB18030 bytes: not UTF-8


def lab_result(**overrides: Any) -> dict[str, Any]:
    """A lab-result event with exactly the ADR 0001 keys."""
    patient: dict[str, Any] = {
        "source_patient_id": "P123",
        "identifiers": [],
        "id_card_number": None,
        "health_card_number": None,
        "name": None,
        "sex": "2",
        "phone": None,
        "address": None,
        "birth_date": date(1936, 5, 6),
    }
    event: dict[str, Any] = {
        "event_id": "ev-1",
        "event_type": "lab-result",
        "facility_id": "F001",
        "source_system": "LIS",
        "message_control_id": "MSG0001",
        "source_patient_id": "P123",
        "empi_id": None,
        "occurred_at": None,
        "received_at": RECEIVED,
        "patient": patient,
        "quality_warnings": [],
        "map_version": None,
        "codes": [{"field": "test_code", "system": "LOINC", "code": "718-7",
                   "display": "Hemoglobin"}],
        "unmapped": [],
        "set_id": 1,
        "placer_order_number": None,
        "filler_order_number": None,
        "panel_code": "CBC",
        "panel_name": None,
        "specimen_type": None,
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
        "observed_at": RECEIVED,
        "performing_lab": None,
        "standard_value": 98.0,
        "standard_unit": "g/L",
        "ordering_provider_id": None,
        "practitioner_id": None,
        "practitioner_status": None,
        "ordering_department": None,
        "visit_number": None,
        "patient_class": None,
    }
    return event | overrides


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
        "original_key": None,
        "payload": PAYLOAD,
        "failed_at": RECEIVED,
    }
    return letter | overrides


def events(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [lab_result(event_id=f"ev-{n:05d}", set_id=n) for n in range(start, start + count)]


def count(wh: Warehouse, table: str = "lab_results") -> int:
    _, rows = wh.query_rows("SELECT count() FROM {t:Identifier}", {"t": table})
    return int(rows[0][0])


MIGRATIONS = ["0001_lab_results_and_dead_letters", "0002_patients_and_encounters",
              "0003_imaging_orders_medications_diagnoses_documents",
              "0004_document_replacements", "0005_patient_links_and_reviews",
              "0006_standard_codes", "0007_terminology_and_critical_alerts",
              "0008_pseudonymised_identity", "0009_analyst_views",
              "0010_dead_letter_position", "0011_practitioners"]


def test_migrate_creates_tables_and_is_idempotent(tmp_path: Path) -> None:
    with open_warehouse(None, tmp_path) as wh:
        assert migrate(wh) == MIGRATIONS
        assert migrate(wh) == []
        _, tables = wh.query_rows("SHOW TABLES FROM hutong")
        assert {name for (name,) in tables} == {
            "dead_letters", "lab_results", "patients", "encounters", "imaging_reports", "orders",
            "medications", "diagnoses", "documents", "schema_migrations", "patient_links",
            "current_patient_links", "empi_reviews", "concept_maps", "current_concept_maps",
            "unmapped_codes", "unmapped_code_summary", "critical_alert_events",
            "critical_alerts", "facility_daily_activity", "diagnosis_ranking", "prescriptions",
            "antibiotic_share", "large_prescriptions", "critical_value_turnaround",
            "facility_data_quality", "empi_duplicates_resolved", "practitioners",
            "current_practitioners", "unknown_practitioners", "unknown_practitioner_summary"}
        _, applied = wh.query_rows("SELECT version, name FROM schema_migrations ORDER BY version")
        assert applied == list(enumerate(MIGRATIONS, start=1))


def test_a_half_applied_migration_applies_again(tmp_path: Path) -> None:
    """0003 with one table missing and no ledger row (a crash between its statements, or a
    second worker migrating at once) runs again: IF NOT EXISTS keeps the tables there are."""
    with open_warehouse(None, tmp_path) as wh:
        assert migrate(wh) == MIGRATIONS
        wh.command("DROP TABLE orders")
        wh.command("ALTER TABLE schema_migrations DELETE WHERE version = 3 "
                   "SETTINGS mutations_sync = 1")
        wh.command("ALTER TABLE schema_migrations DELETE WHERE version = 4 "
                   "SETTINGS mutations_sync = 1")
        assert migrate(wh) == MIGRATIONS[2:4]  # 0004's ADD COLUMN IF NOT EXISTS runs again too
        assert count(wh, "orders") == 0


def decoded(kind: str, offset: int, **overrides: Any) -> Decoded:
    """A sample event as the sink gets it: framed on the wire, read back from it."""
    value = wire.encode(catalog.schema(kind), SAMPLES[kind](**overrides))
    entry, record = wire.decode(value)
    return Decoded(f"hutong.std.{kind}", 0, offset, entry.name, record, raw=value)


def test_each_new_event_type_lands_once_through_the_sink(warehouse: Warehouse) -> None:
    metrics = Metrics()
    sink = WarehouseSink(warehouse, metrics)
    batch = [decoded(kind, offset) for offset, kind in enumerate(SAMPLES)]
    twice = batch[0].schema_name
    assert sink.write([*batch, batch[0]]) == []  # one of them twice within the batch
    assert sink.write(batch) == []  # then the whole batch replayed
    for kind in SAMPLES:
        table = TABLES[kind].table
        assert count(warehouse, table) == 1, table
        written = metrics.registry.get_sample_value(
            "hutong_sink_rows_written_total", {"table": table})
        skipped = metrics.registry.get_sample_value(
            "hutong_sink_duplicates_skipped_total", {"table": table})
        assert (written, skipped) == (1, 2 if kind == twice else 1), table


def test_new_tables_read_back_what_was_written(warehouse: Warehouse) -> None:
    sink = WarehouseSink(warehouse, Metrics())
    assert sink.write([decoded(kind, offset) for offset, kind in enumerate(SAMPLES)]) == []

    def one(sql: str) -> tuple[Any, ...]:
        [row] = warehouse.query_rows(sql)[1]
        return row

    assert one(
        "SELECT facility_id, empi_id, patient_sex, patient_birth_date, accession_number, "
        "modality, critical_finding, report_text_chars, impression_chars, study_at, "
        "toString(study_at) FROM imaging_reports"
    ) == ("F001", "E-42", "2", date(1936, 5, 6), "ACC-7001", "CT", True, len(FREE_TEXT), 5,
          OBSERVED, "2026-03-01 07:00:00.000")
    assert one(
        "SELECT order_control, item_code, priority, clinical_info_chars, ordering_provider_id, "
        "filler_order_number, ordered_at FROM orders"
    ) == ("NW", "CT-CHEST", "S", len(FREE_TEXT), "D-1", None, OBSERVED)
    assert one(
        "SELECT action, drug_code, dose, frequency, duration_days, quantity, dispensed_at "
        "FROM medications"
    ) == ("prescribe", "86900001", 0.5, "TID", 7, 42.0, None)
    assert one(
        "SELECT set_id, diagnosis_code, diagnosis_name, priority, clinician_id, visit_number "
        "FROM diagnoses"
    ) == (1, "J06.9", "急性上呼吸道感染", 1, "D-1", "MZ-0001")
    assert one(
        "SELECT document_type_code, set_id, version_number, replaces_document_id, "
        "content_type, content_size, quality_warnings, effective_time FROM documents"
    ) == ("C0003", "2.16.156.10011.1.1^SET-1", 2, "2.16.156.10011.1.1^DOC-0", "text/xml",
          len(DOCUMENT_CONTENT), ["PID-19: bad check digit"], OBSERVED)


def encounter(event_id: str, facility_id: str, visit_number: str, patient_class: str
              ) -> dict[str, Any]:
    """An encounter event with what the diagnosis ranking reads of it."""
    return header("encounter", event_id=event_id, facility_id=facility_id) | {
        "action": "register", "trigger_event": "A04",
        "visit_number": visit_number, "patient_class": patient_class,
        "department_code": None, "department_name": None, "ward": None, "room": None,
        "bed": None, "prior_location": None, "attending_doctor_id": None, "practitioner_id": None,
        "practitioner_status": None, "admit_source": None,
        "admit_reason": None, "admitted_at": None, "discharged_at": None,
        "discharge_disposition": None}


def test_the_analyst_guide_answers_from_the_new_tables(warehouse: Warehouse) -> None:
    """The guide's diagnosis ranking and critical-findings queries, on known rows."""
    guide = (REPO / "docs" / "analytics.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", guide, flags=re.S)
    [ranking] = [sql for sql in blocks if "FROM hutong.diagnoses" in sql]
    [critical] = [sql for sql in blocks if "FROM hutong.imaging_reports" in sql]
    # empty tables still answer with the total row (the pipeline test runs every block)
    assert warehouse.query_rows(ranking, read_only=True)[1] == [("合计", None, 0)]
    assert warehouse.query_rows(critical, read_only=True)[1] == [("合计", 0, 0, None)]

    WarehouseWriter(warehouse).write("encounter", [
        encounter("e-o1", "F001", "MZ-1", "O"), encounter("e-o2", "F001", "MZ-2", "O"),
        encounter("e-o3", "F002", "MZ-1", "O"), encounter("e-i1", "F001", "ZY-1", "I")])
    WarehouseWriter(warehouse).write("diagnosis", [
        SAMPLES["diagnosis"](event_id="d1", visit_number="MZ-1"),
        SAMPLES["diagnosis"](event_id="d1-again", visit_number="MZ-1"),  # resent: one visit
        SAMPLES["diagnosis"](event_id="d2", visit_number="MZ-2", diagnosis_code="I10",
                             diagnosis_name="高血压"),
        SAMPLES["diagnosis"](event_id="d3", facility_id="F002", visit_number="MZ-1",
                             diagnosis_code="I10", diagnosis_name="高血压"),
        SAMPLES["diagnosis"](event_id="d4", visit_number="MZ-2", diagnosis_code="E11",
                             priority=2),  # secondary
        SAMPLES["diagnosis"](event_id="d5", visit_number="ZY-1", diagnosis_code="I21"),  # inpatient
    ])
    assert warehouse.query_rows(ranking, read_only=True)[1] == [
        ("合计", None, 3), ("I10", "高血压", 2), ("J06.9", "急性上呼吸道感染", 1)]

    WarehouseWriter(warehouse).write("imaging-report", [
        SAMPLES["imaging-report"](event_id="i1", report_status="P"),
        SAMPLES["imaging-report"](event_id="i2"),  # the final report of the same study
        SAMPLES["imaging-report"](event_id="i3", accession_number="ACC-2",
                                  critical_finding=False),
        SAMPLES["imaging-report"](event_id="i4", facility_id="F002", critical_finding=False),
        SAMPLES["imaging-report"](event_id="i5", facility_id="F002", accession_number=None),
    ])
    assert warehouse.query_rows(critical, read_only=True)[1] == [
        ("合计", 4, 2, 0.5), ("F001", 2, 1, 0.5), ("F002", 2, 1, 0.5)]


def test_database_becomes_the_default_when_reopened(tmp_path: Path) -> None:
    with open_warehouse(None, tmp_path) as wh:
        migrate(wh)
    with open_warehouse(None, tmp_path) as wh:
        assert count(wh) == 0  # unqualified name resolves in hutong without migrate


def test_tables_have_the_spec_columns(warehouse: Warehouse) -> None:
    for spec in TABLES.values():
        _, rows = warehouse.query_rows(
            "SELECT name FROM system.columns WHERE database = 'hutong' AND table = {t:String} "
            "ORDER BY position",
            {"t": spec.table},
        )
        assert [name for (name,) in rows] == [*spec.column_names, "ingested_at"]


def test_write_is_idempotent_across_batches(warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse)
    assert writer.write("lab-result", events(5)) == 5
    assert writer.write("lab-result", events(5)) == 0
    assert count(warehouse) == 5
    assert writer.write("lab-result", events(4, start=3)) == 2
    assert count(warehouse) == 7


def test_duplicates_within_a_batch_collapse(warehouse: Warehouse) -> None:
    batch = events(3) + events(2)
    assert WarehouseWriter(warehouse).write("lab-result", batch) == 3
    assert count(warehouse) == 3


def test_existence_lookup_in_chunks(warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse, lookup_chunk=2)
    assert writer.write("lab-result", events(5)) == 5
    assert writer.write("lab-result", events(7)) == 2
    assert count(warehouse) == 7


def test_empty_batch_and_unknown_type(warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse)
    assert writer.write("lab-result", []) == 0
    with pytest.raises(WarehouseError, match="no warehouse table for event type 'x-ray'"):
        writer.write("x-ray", events(1))


def test_query_rows_returns_names_and_rows(warehouse: Warehouse) -> None:
    WarehouseWriter(warehouse).write("lab-result", events(2))
    names, rows = warehouse.query_rows(
        "SELECT event_id, test_code, value_numeric FROM lab_results "
        "WHERE facility_id = {f:String} ORDER BY event_id",
        {"f": "F001"},
    )
    assert names == ["event_id", "test_code", "value_numeric"]
    assert rows == [("ev-00000", "718-7", 98.0), ("ev-00001", "718-7", 98.0)]
    names, rows = warehouse.query_rows("SELECT event_id, set_id FROM lab_results WHERE 0")
    assert (names, rows) == (["event_id", "set_id"], [])


def test_standard_codes_land_as_columns_and_as_the_codes_array(warehouse: Warehouse) -> None:
    WarehouseWriter(warehouse).write("lab-result", events(1))
    _, rows = warehouse.query_rows(
        "SELECT standard_code, standard_system, standard_value, standard_unit, "
        "codes[1].code, unmapped FROM lab_results")
    assert rows == [("718-7", "LOINC", 98.0, "g/L", "718-7", [])]


def test_an_event_processed_again_with_other_maps_replaces_its_row(
        warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse)
    unmapped = lab_result(map_version=None, codes=[], unmapped=["test_code"])
    assert writer.write_changes("lab-result", [TABLES["lab-result"].to_row(unmapped)]) == (1, 0)
    assert writer.write_changes("lab-result", [TABLES["lab-result"].to_row(unmapped)]) == (0, 0)
    mapped = lab_result(map_version="qsx-2", unmapped=[])  # the replay, after a map was added
    assert writer.write_changes("lab-result", [TABLES["lab-result"].to_row(mapped)]) == (0, 1)
    assert writer.write_changes("lab-result", [TABLES["lab-result"].to_row(mapped)]) == (0, 0)
    _, rows = warehouse.query_rows(
        "SELECT count(), any(standard_code), any(map_version), any(unmapped) FROM lab_results")
    assert rows == [(1, "718-7", "qsx-2", [])]


def test_an_event_processed_again_with_its_clinician_registered_replaces_its_row(
        warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse)
    spec = TABLES["lab-result"]
    unknown = lab_result(event_id="e-staff", practitioner_id=None,
                         practitioner_status="unknown")
    assert writer.write_changes("lab-result", [spec.to_row(unknown)]) == (1, 0)
    known = {**unknown, "practitioner_id": "QSXRMYY|D100", "practitioner_status": "known"}
    assert writer.write_changes("lab-result", [spec.to_row(known)]) == (0, 1)  # the replay
    assert writer.write_changes("lab-result", [spec.to_row(known)]) == (0, 0)
    _, rows = warehouse.query_rows(
        "SELECT count(), any(practitioner_id), any(practitioner_status) FROM lab_results "
        "WHERE event_id = 'e-staff'")
    assert rows == [(1, "QSXRMYY|D100", "known")]


def test_query_error_is_a_warehouse_error(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="UNKNOWN_TABLE"):
        warehouse.query_rows("SELECT * FROM no_such_table")


def test_timestamps_and_dates_round_trip_in_shanghai_time(warehouse: Warehouse) -> None:
    WarehouseWriter(warehouse).write("lab-result", events(1))
    _, rows = warehouse.query_rows(
        "SELECT received_at, toString(received_at), patient_birth_date, specimen_collected_at "
        "FROM lab_results"
    )
    received, as_text, birth_date, collected = rows[0]
    assert received == datetime(2026, 3, 1, 1, 2, 3, 456000, tzinfo=UTC)
    assert str(received.tzinfo) == "Asia/Shanghai"
    assert as_text == "2026-03-01 09:02:03.456"
    assert birth_date == date(1936, 5, 6)  # before 1970: needs Date32
    assert collected is None


def test_dead_letters_keep_raw_bytes(warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse)
    letters = [dead_letter(), dead_letter(dead_letter_id="dl-2", source_partition=None)]
    assert writer.write("dead-letter", letters) == 2
    assert writer.write("dead-letter", letters) == 0
    _, rows = warehouse.query_rows(
        "SELECT dead_letter_id, payload_size, hex(payload) FROM dead_letters ORDER BY 1"
    )
    assert rows[0] == ("dl-1", len(PAYLOAD), PAYLOAD.hex().upper())


def test_concurrent_writers_share_one_warehouse(warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for batch in range(5):
                writer.write("lab-result", events(20, start=n * 1000 + batch * 20))
                warehouse.query_rows("SELECT count() FROM lab_results")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(warehouse) == 400


def test_closed_warehouse_refuses(tmp_path: Path) -> None:
    wh = open_warehouse(None, tmp_path)
    wh.close()
    wh.close()
    with pytest.raises(WarehouseError, match="closed"):
        wh.query_rows("SELECT 1")


def test_one_path_at_a_time_per_process(tmp_path: Path) -> None:
    with (
        open_warehouse(None, tmp_path / "a"),
        pytest.raises(WarehouseError, match="cannot open the embedded warehouse"),
    ):
        open_warehouse(None, tmp_path / "b")
    with open_warehouse(None, tmp_path / "b") as other:
        assert other.query_rows("SELECT 1")[1] == [(1,)]


def test_second_process_is_told_who_owns_the_warehouse(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hutong.errors import WarehouseError\n"
        "from sinks.warehouse import open_warehouse\n"
        "try:\n"
        "    open_warehouse(None, Path(sys.argv[1]))\n"
        "except WarehouseError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    sys.exit('opened a warehouse another process owns')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    message = done.stdout
    assert "another process" in message
    assert "hutong up" in message
    assert "hutong sql" in message
    assert str((tmp_path / "warehouse").resolve()) in message


def view(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    return warehouse.query_rows(sql, read_only=True)[1]


def test_the_analyst_views_count_what_the_guidelines_ask(warehouse: Warehouse) -> None:
    """Activity, diagnosis ranking, prescriptions, data quality and EMPI views on known rows."""
    writer = WarehouseWriter(warehouse)
    admit = encounter("v-i1", "F001", "ZY-9", "I") | {"action": "admit", "empi_id": "E-1"}
    discharge = encounter("v-i2", "F001", "ZY-9", "I") | {"action": "discharge",
                                                          "empi_id": "E-1"}
    writer.write("encounter", [
        encounter("v-o1", "F001", "MZ-7", "O"), encounter("v-o1b", "F001", "MZ-7", "O"),
        encounter("v-e1", "F001", "MZ-8", "E") | {"empi_id": "E-2"}, admit, discharge,
        encounter("v-x", "F001", "MZ-9", "O") | {"action": "cancel"}])
    assert view(warehouse, "SELECT facility_id, outpatient_visits, emergency_visits, "
                "admissions, discharges, people FROM facility_daily_activity") == [
        ("F001", 2, 1, 1, 1, 3)]  # E-42 (the samples), E-2, E-1

    writer.write("diagnosis", [
        SAMPLES["diagnosis"](event_id="r1", visit_number="MZ-7", diagnosis_code="I10"),
        SAMPLES["diagnosis"](event_id="r2", visit_number="MZ-8", diagnosis_code="I10"),
        SAMPLES["diagnosis"](event_id="r3", visit_number="MZ-8", diagnosis_code="J20"),
        SAMPLES["diagnosis"](event_id="r4", visit_number="ZY-9", diagnosis_code="I21")])
    assert view(warehouse, "SELECT setting, code, visits, rank FROM diagnosis_ranking "
                "ORDER BY setting, rank, code") == [
        ("inpatient", "I21", 1, 1), ("outpatient", "I10", 2, 1), ("outpatient", "J20", 1, 2)]

    big = [SAMPLES["medication"](event_id=f"m{n}", prescription_number="RX-BIG",
                                 drug_code=f"D{n}", drug_name=f"药{n}", duration_days=3)
           for n in range(6)]
    writer.write("medication", [
        *big,
        SAMPLES["medication"](event_id="a1"),  # 阿莫西林, 7 days: an antimicrobial, not large
        SAMPLES["medication"](event_id="l1", prescription_number="RX-LONG", drug_code="D9",
                              drug_name="二甲双胍片", duration_days=30),
        SAMPLES["medication"](event_id="c1", prescription_number="RX-CANCEL",
                              action="cancel")])
    assert view(warehouse, "SELECT prescription, drugs, antimicrobial_lines, longest_days "
                "FROM prescriptions ORDER BY prescription") == [
        ("RX-8001", 1, 1, 7), ("RX-BIG", 6, 0, 3), ("RX-LONG", 1, 0, 30)]
    assert view(warehouse, "SELECT prescriptions, with_antimicrobial, share "
                "FROM antibiotic_share") == [(3, 1, 0.3333)]
    assert view(warehouse, "SELECT prescription, reasons FROM large_prescriptions "
                "ORDER BY prescription") == [("RX-BIG", ["more than 5 drugs"]),
                                             ("RX-LONG", ["more than 7 days"])]

    quality = view(warehouse, "SELECT facility_id, events, events_with_warnings, "
                   "quality_score FROM facility_data_quality")
    # every sample event carries one quality warning: 100 x (1 - 0.2)
    assert quality == [("F001", 19, 19, 80.0)]

    writer.write("empi-link", [
        {"facility_id": fac, "source_patient_id": mrn, "empi_id": empi, "action": "link",
         "score": 1.0, "reason": "same ID card", "decided_by": "id_card", "previous_empi_id": None,
         "linked_at": RECEIVED, "sequence": 1}
        for fac, mrn, empi in (("F001", "A", "E-1"), ("F002", "B", "E-1"), ("F001", "C", "E-2"))])
    assert view(warehouse, "SELECT * FROM empi_duplicates_resolved") == [(3, 2, 1, 2, 1)]
