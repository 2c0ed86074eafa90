"""The practitioner registry in the warehouse (migration 0011), against a real chDB.

Records go through the sink as the hub writes them: framed on the wire, read back,
with the hub's default pseudonymised tables.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hutong.metrics import Metrics
from schemas import catalog, wire
from sinks.base import Decoded
from sinks.warehouse import TABLES, Warehouse
from sinks.warehouse.pseudonyms import Pseudonyms, protect
from sinks.warehouse.sink import WarehouseSink
from tests.warehouse_events import CLINICIAN_NAME, OBSERVED, SAMPLES, header

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = b"a key of at least sixteen bytes"
ID_NUMBER = "110101198001010014"
PSEUDONYM = "ps_0123456789abcdef0123456789abcdef"
T0 = datetime.fromisoformat("2026-12-04T09:00:00+08:00")
REGISTRY = "hutong.registry.practitioners"
UNKNOWN = "hutong.registry.unknown-practitioners"


@pytest.fixture
def sink(warehouse: Warehouse) -> WarehouseSink:
    """The sink with the hub's default tables (patient ids pseudonymised)."""
    return WarehouseSink(warehouse, Metrics(), protect(TABLES, Pseudonyms(KEY)))


def practitioner(staff_id: str, facility_id: str = "F001", version: int = 1,
                 **overrides: Any) -> dict[str, Any]:
    """A registry record (schemas/practitioner.avsc)."""
    return {
        "practitioner_id": f"{facility_id}|{staff_id}", "facility_id": facility_id,
        "local_id": staff_id, "name": "王医生", "id_number": ID_NUMBER,
        "id_pseudonym": PSEUDONYM, "certificate_number": None, "department": "呼吸内科",
        "role": "医师", "title": "主治医师", "status": "active", "warnings": [],
        "version": version, "changed_at": T0 + timedelta(days=version),
        "changed_by": "registry-file", "reason": None, "file_digest": None, **overrides,
    }


def unknown(local_id: str, count: int, first: datetime, last: datetime,
            **overrides: Any) -> dict[str, Any]:
    """A clinician the registry did not know, over one batch (unknown-practitioner.avsc)."""
    return {"facility_id": "F001", "local_id": local_id, "name": CLINICIAN_NAME,
            "role": "ordering", "event_type": "lab-result", "count": count,
            "first_seen": first, "last_seen": last, **overrides}


def lab_result(event_id: str, **overrides: Any) -> dict[str, Any]:
    """A lab result ordered by staff id D-1 (schemas/lab-result.avsc)."""
    return header("lab-result", event_id=event_id) | {
        "set_id": 1, "placer_order_number": None, "filler_order_number": None,
        "panel_code": "CBC", "panel_name": None, "specimen_type": None,
        "specimen_collected_at": None, "test_code": "718-7", "test_name": "血红蛋白",
        "test_system": "LN", "value_type": "NM", "value": "98", "value_numeric": 98.0,
        "unit": "g/L", "reference_range": "115-150", "abnormal_flags": ["L"],
        "result_status": "F", "observed_at": OBSERVED, "performing_lab": None,
        "standard_value": 98.0, "standard_unit": "g/L", "ordering_provider_id": "D-1",
        "practitioner_id": "F001|D-1", "practitioner_status": "known",
        "ordering_department": "呼吸内科", "visit_number": "MZ-1", "patient_class": "O",
    } | overrides


def on_the_wire(topic: str, kind: str, records: list[dict[str, Any]]) -> list[Decoded]:
    """``records`` as the sink gets them: framed on the wire, read back from it."""
    batch: list[Decoded] = []
    for offset, record in enumerate(records):
        value = wire.encode(catalog.schema(kind), record)
        entry, decoded = wire.decode(value)
        batch.append(Decoded(topic, 0, offset, entry.name, decoded, raw=value))
    return batch


def rows(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    return warehouse.query_rows(sql, read_only=True)[1]


def test_every_version_lands_once_and_the_latest_is_current(
        warehouse: Warehouse, sink: WarehouseSink) -> None:
    batch = on_the_wire(REGISTRY, "practitioner", [
        practitioner("D-1"),
        practitioner("D-1", version=2, title="副主任医师", certificate_number="110110000012345"),
        practitioner("D-2"),
        practitioner("D-2", version=2, status="retired", reason="调离"),
    ])
    assert sink.write(batch) == []
    assert sink.write(batch) == []  # the compacted topic read again: nothing doubles
    assert rows(warehouse, "SELECT count() FROM practitioners") == [(4,)]
    assert rows(warehouse, "SELECT practitioner_id, facility_id, local_id, name, id_pseudonym, "
                "certificate_number, department, role, title, status, version, changed_at, "
                "reason FROM current_practitioners ORDER BY practitioner_id") == [
        ("F001|D-1", "F001", "D-1", "王医生", PSEUDONYM, "110110000012345", "呼吸内科", "医师",
         "副主任医师", "active", 2, T0 + timedelta(days=2), None),
        ("F001|D-2", "F001", "D-2", "王医生", PSEUDONYM, None, "呼吸内科", "医师", "主治医师",
         "retired", 2, T0 + timedelta(days=2), "调离")]


def test_the_id_number_never_reaches_the_warehouse(warehouse: Warehouse,
                                                   sink: WarehouseSink) -> None:
    assert sink.write(on_the_wire(REGISTRY, "practitioner", [practitioner("D-1")])) == []
    assert rows(warehouse, "SELECT table, name FROM system.columns WHERE database = 'hutong' "
                "AND name ILIKE '%id_number%'") == []
    everything = rows(warehouse, "SELECT * FROM practitioners")
    assert ID_NUMBER not in str(everything)
    assert PSEUDONYM in str(everything)


def test_unknown_clinicians_are_summed_and_show_registered_once_the_registry_knows_them(
        warehouse: Warehouse, sink: WarehouseSink) -> None:
    hour = timedelta(hours=1)
    batch = on_the_wire(UNKNOWN, "unknown-practitioner", [
        unknown("D-404", 3, T0, T0 + hour),
        unknown("D-404", 2, T0 + 2 * hour, T0 + 3 * hour, name=None),  # a later batch
        unknown("D-404", 1, T0, T0, role="attending", event_type="encounter"),
        unknown("110110000099999", 5, T0, T0 + hour, facility_id="F002", event_type="order"),
        unknown("D-500", 4, T0, T0 + hour),
        unknown(" gz0001x ", 1, T0, T0, facility_id="F002"),  # a certificate, as typed
    ])
    assert sink.write(batch) == []
    assert sink.write(batch) == []  # read again: nothing doubles
    assert rows(warehouse, "SELECT count() FROM unknown_practitioners") == [(6,)]
    summary = ("SELECT facility_id, local_id, name, role, event_type, count, first_seen, "
               "last_seen, registered FROM unknown_practitioner_summary "
               "ORDER BY facility_id, local_id, role")
    assert rows(warehouse, summary) == [
        ("F001", "D-404", CLINICIAN_NAME, "attending", "encounter", 1, T0, T0, False),
        ("F001", "D-404", CLINICIAN_NAME, "ordering", "lab-result", 5, T0, T0 + 3 * hour, False),
        ("F001", "D-500", CLINICIAN_NAME, "ordering", "lab-result", 4, T0, T0 + hour, False),
        ("F002", " gz0001x ", CLINICIAN_NAME, "ordering", "lab-result", 1, T0, T0, False),
        ("F002", "110110000099999", CLINICIAN_NAME, "ordering", "order", 5, T0, T0 + hour,
         False)]

    assert sink.write(on_the_wire(REGISTRY, "practitioner", [
        practitioner("D-404"),  # by the facility's staff id
        practitioner("D-500", facility_id="F002"),  # another facility's D-500 is not F001's
        practitioner("Z-9", facility_id="F003", certificate_number="110110000099999"),
        practitioner("Y-1", facility_id="F004", certificate_number="110110000099999"),  # 多点执业
        practitioner("X-1", facility_id="F002", certificate_number="GZ0001X"),
    ])) == []
    assert rows(warehouse, "SELECT facility_id, local_id, role, registered "
                "FROM unknown_practitioner_summary ORDER BY facility_id, local_id, role") == [
        ("F001", "D-404", "attending", True), ("F001", "D-404", "ordering", True),
        ("F001", "D-500", "ordering", False), ("F002", " gz0001x ", "ordering", True),
        ("F002", "110110000099999", "ordering", True)]
    assert rows(warehouse, "SELECT sum(count) FROM unknown_practitioner_summary") == [(16,)]

    # retired since: the registry still knows them (their events are linked, marked retired)
    assert sink.write(on_the_wire(REGISTRY, "practitioner", [
        practitioner("D-404", version=2, status="retired")])) == []
    assert rows(warehouse, "SELECT count(), countIf(registered) FROM unknown_practitioner_summary "
                "WHERE local_id = 'D-404'") == [(2, 2)]


def test_clinical_rows_carry_the_practitioner_the_stream_found(
        warehouse: Warehouse, sink: WarehouseSink) -> None:
    results = on_the_wire("hutong.std.lab-result", "lab-result", [
        lab_result("lr-1"),
        lab_result("lr-2", ordering_provider_id="D-404", practitioner_id=None,
                   practitioner_status="unknown"),
        lab_result("lr-3", ordering_provider_id=None, practitioner_id=None,
                   practitioner_status=None),
    ])
    assert sink.write(results) == []
    assert sink.write(results) == []
    assert sink.write(on_the_wire(REGISTRY, "practitioner", [practitioner("D-1")])) == []
    assert rows(warehouse, "SELECT l.event_id, l.ordering_provider_id, l.practitioner_id, "
                "l.practitioner_status, p.name FROM lab_results AS l "
                "LEFT JOIN current_practitioners AS p ON p.practitioner_id = l.practitioner_id "
                "ORDER BY l.event_id") == [
        ("lr-1", "D-1", "F001|D-1", "known", "王医生"),
        ("lr-2", "D-404", None, "unknown", ""),
        ("lr-3", None, None, None, "")]

    assert sink.write([item for kind in SAMPLES for item in on_the_wire(
        f"hutong.std.{kind}", kind,
        [SAMPLES[kind](practitioner_id=f"F001|{kind}", practitioner_status="retired")])]) == []
    for kind in SAMPLES:
        table = TABLES[kind].table
        assert warehouse.query_rows(
            "SELECT practitioner_id, practitioner_status FROM {t:Identifier}", {"t": table}
        )[1] == [(f"F001|{kind}", "retired")], table


def guide_block(needle: str) -> str:
    guide = (REPO / "docs" / "analytics.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```sql\n(.*?)```", guide, flags=re.S)
    [sql] = [sql for sql in blocks if needle in sql]
    return sql


def test_the_analyst_guide_answers_from_the_registry(warehouse: Warehouse,
                                                     sink: WarehouseSink) -> None:
    """The guide's queries on the registry tables, on known rows."""
    to_register = guide_block("FROM hutong.unknown_practitioner_summary")
    by_department = guide_block("JOIN hutong.current_practitioners")
    assert rows(warehouse, to_register) == []
    assert rows(warehouse, by_department) == []

    hour = timedelta(hours=1)
    assert sink.write(on_the_wire(UNKNOWN, "unknown-practitioner", [
        unknown("D-404", 3, T0, T0 + hour),
        unknown("D-404", 2, T0, T0 + 2 * hour, role="attending", event_type="encounter"),
        unknown("D-500", 9, T0, T0 + hour, name=None),
        unknown("D-1", 1, T0, T0),  # registered below
    ])) == []
    assert sink.write(on_the_wire(REGISTRY, "practitioner", [
        practitioner("D-1"), practitioner("D-2", department="检验科", title=None),
    ])) == []
    assert rows(warehouse, to_register) == [
        ("F001", "D-500", None, ["ordering"], 9, T0 + hour),
        ("F001", "D-404", CLINICIAN_NAME, ["attending", "ordering"], 5, T0 + 2 * hour)]

    assert sink.write(on_the_wire("hutong.std.lab-result", "lab-result", [
        lab_result("lr-1"), lab_result("lr-2"),
        lab_result("lr-3", ordering_provider_id="D-2", practitioner_id="F001|D-2"),
        lab_result("lr-4", ordering_provider_id="D-404", practitioner_id=None,
                   practitioner_status="unknown"),
    ])) == []
    assert rows(warehouse, by_department) == [
        ("F001", "呼吸内科", "主治医师", 1, 2), ("F001", "检验科", None, 1, 1),
        ("F001", None, None, 0, 1)]
