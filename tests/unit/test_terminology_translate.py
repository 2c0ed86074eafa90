"""translate(): one canonical event in, its standard codes and unmapped local codes out.

Every person, number and facility below is fictional.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hutong.demo.feed import generate
from producers.hl7v2.adapter import Arrival, adapt
from schemas import catalog, wire
from streams.terminology.files import load_folder
from streams.terminology.maps import REGION, MapEntry, MapStore
from streams.terminology.tables import BUILTIN_VERSION
from streams.terminology.translate import UnmappedHit, translate

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
B = BUILTIN_VERSION
DEMO = Path(__file__).parents[2] / "hutong" / "demo" / "terminology"


def header(event_type: str, **patient: Any) -> dict[str, Any]:
    """The ADR 0001 header, a man with an ID card unless ``patient`` says otherwise."""
    return {
        "event_id": "6f1c2a4e-0000-5000-8000-000000000001",
        "event_type": event_type,
        "facility_id": "F1",
        "source_system": "LIS",
        "message_control_id": "MSG0001",
        "source_patient_id": "P1",
        "empi_id": None,
        "occurred_at": AT,
        "received_at": AT,
        "patient": {
            "source_patient_id": "P1",
            "identifiers": [{"value": "P1", "type": "MR", "authority": "F1"},
                            {"value": "11010519491231002X", "type": "SFZH", "authority": None}],
            "id_card_number": "11010519491231002X",
            "health_card_number": None,
            "name": "张三",
            "sex": "M",
            "phone": None,
            "address": None,
            "birth_date": date(1949, 12, 31),
        } | patient,
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }


def lab(**fields: Any) -> dict[str, Any]:
    return header("lab-result") | {
        "set_id": 1, "placer_order_number": None, "filler_order_number": None,
        "panel_code": None, "panel_name": None, "specimen_type": None,
        "specimen_collected_at": None, "test_code": "K", "test_name": "钾", "test_system": "L",
        "value_type": "NM", "value": "4.1", "value_numeric": 4.1, "unit": "mmol/L",
        "reference_range": "3.5-5.5", "abnormal_flags": [], "result_status": "F",
        "observed_at": AT, "performing_lab": None, "standard_value": None,
        "standard_unit": None, "ordering_provider_id": None, "ordering_department": None,
        "visit_number": None, "patient_class": None,
    } | fields


def diagnosis(**fields: Any) -> dict[str, Any]:
    return header("diagnosis") | {
        "set_id": 1, "diagnosis_code": "E11.900", "diagnosis_system": "ICD-10",
        "diagnosis_name": "2型糖尿病", "diagnosis_type": "A", "priority": 1,
        "diagnosed_at": AT, "clinician_id": None, "clinician_name": None, "visit_number": None,
    } | fields


def medication(**fields: Any) -> dict[str, Any]:
    return header("medication") | {
        "action": "prescribe", "order_control": "NW", "placer_order_number": None,
        "filler_order_number": None, "prescription_number": None, "drug_code": "YP0001",
        "drug_name": "二甲双胍片", "drug_system": "HIS", "dose": 0.5, "dose_unit": "g",
        "dosage_form": None, "route": None, "frequency": "BID", "duration": None,
        "duration_days": None, "quantity": None, "quantity_unit": None, "prescribed_at": AT,
        "dispensed_at": None, "prescriber_id": None, "prescriber_name": None,
        "department": None, "visit_number": None,
    } | fields


def patient_event(**fields: Any) -> dict[str, Any]:
    return header("patient") | {
        "action": "register", "trigger_event": "A04", "merged_source_patient_id": None,
        "ethnic_group": "01", "marital_status": "M", "nationality": None, "occupation": None,
        "deceased": None, "deceased_at": None,
    } | fields


def m(kind: str, code: str, system: str, target: str, *, facility: str = "F1",
      version: str = "v1", display: str | None = None) -> MapEntry:
    return MapEntry(facility, kind, code, system, target, display, version, AT)


def coded(event: dict[str, Any], field: str) -> tuple[str, str, str | None] | None:
    found = [(c["system"], c["code"], c["display"]) for c in event["codes"] if c["field"] == field]
    assert len(found) <= 1
    return found[0] if found else None


K_MAP = m("lab-test", "K", "LOINC", "2823-3", display="Potassium [Moles/volume] in Serum or Plasma")


@pytest.mark.parametrize(("maps", "fields", "test_code", "unit", "standard", "unmapped"), [
    # a mapped local code in the standard unit
    ([K_MAP], {}, ("LOINC", "2823-3", K_MAP.target_display), ("UCUM", "mmol/L", None),
     (4.1, "mmol/L"), []),
    # a region-wide map serves a facility with none of its own
    ([m("lab-test", "K", "LOINC", "2823-3", facility=REGION)], {},
     ("LOINC", "2823-3", None), ("UCUM", "mmol/L", None), (4.1, "mmol/L"), []),
    # LOINC already: no map needed; mass glucose converted to mmol/L
    ([], {"test_code": "2345-7", "test_system": "LN", "unit": "MG/DL", "value_numeric": 90.08},
     ("LOINC", "2345-7", None), ("UCUM", "mg/dL", None), (5.0, "mmol/L"), []),
    # a mapped mass creatinine converted to umol/L
    ([m("lab-test", "CR", "LOINC", "2160-0")],
     {"test_code": "CR", "unit": "mg/dl", "value_numeric": 1.2},
     ("LOINC", "2160-0", None), ("UCUM", "mg/dL", None), (106.104, "umol/L"), []),
    # a LOINC analyte with no conversion keeps its value in the normalised unit
    ([m("lab-test", "WBC", "LOINC", "6690-2")],
     {"test_code": "WBC", "unit": "×10⁹/L", "value_numeric": 5.2},
     ("LOINC", "6690-2", None), ("UCUM", "10*9/L", None), (5.2, "10*9/L"), []),
    # "LN" on a code that is not LOINC: unmapped, but the unit still counts
    ([], {"test_code": "2345-8", "test_system": "LN", "unit": "mg/dL", "value_numeric": 90.0},
     None, ("UCUM", "mg/dL", None), (90.0, "mg/dL"), ["test_code"]),
    # nothing known: both unmapped, no standard value
    ([], {"test_code": "XYZ", "unit": "furlong"}, None, None, (None, None),
     ["test_code", "unit"]),
    # a facility's unit map beats the built-in reading (G/L is ambiguous without one)
    ([m("lab-test", "WBC", "LOINC", "6690-2"), m("unit", "G/L", "UCUM", "10*9/L")],
     {"test_code": "WBC", "unit": "G/L", "value_numeric": 5.2},
     ("LOINC", "6690-2", None), ("UCUM", "10*9/L", None), (5.2, "10*9/L"), []),
    # a facility's lab map beats a LOINC pass-through
    ([m("lab-test", "2345-7", "LOINC", "14749-6")],
     {"test_code": "2345-7", "test_system": "LN", "value_numeric": 5.5},
     ("LOINC", "14749-6", None), ("UCUM", "mmol/L", None), (5.5, "mmol/L"), []),
    # no unit sent: an analyte that needs one gets no standard value, one that does not keeps it
    ([K_MAP], {"unit": None}, ("LOINC", "2823-3", K_MAP.target_display), None,
     (None, None), []),
    ([], {"test_code": "2744-1", "test_system": "LN", "unit": " ", "value_numeric": 7.4},
     ("LOINC", "2744-1", None), None, (7.4, None), []),
    # a text result: codes, but no standard value
    ([K_MAP], {"value_numeric": None, "value": "溶血"},
     ("LOINC", "2823-3", K_MAP.target_display), ("UCUM", "mmol/L", None), (None, None), []),
])
def test_lab_results(maps: list[MapEntry], fields: dict[str, Any],
                     test_code: tuple[str, str, str | None] | None,
                     unit: tuple[str, str, str | None] | None,
                     standard: tuple[float | None, str | None], unmapped: list[str]) -> None:
    out = translate(lab(**fields), MapStore(maps)).event
    assert coded(out, "test_code") == test_code
    assert coded(out, "unit") == unit
    assert (out["standard_value"], out["standard_unit"]) == standard
    assert out["unmapped"] == unmapped


def test_unmapped_lab_codes_become_hits() -> None:
    result = translate(lab(test_code=" XYZ ", test_name="某项目", unit="furlong"), MapStore())
    assert result.unmapped == (UnmappedHit("F1", "lab-test", "XYZ", "某项目"),
                               UnmappedHit("F1", "unit", "furlong", None))
    assert result.unmapped[0].topic_key == b"F1|lab-test|XYZ"


@pytest.mark.parametrize(("patient", "maps", "sex", "document", "unmapped"), [
    ({}, [], ("GB/T 2261.1", "1", "男性"), ("CV02.01.101", "01", "居民身份证"), []),
    ({"sex": "女"}, [], ("GB/T 2261.1", "2", "女性"), ("CV02.01.101", "01", "居民身份证"), []),
    # a facility's sex map beats the built-in table
    ({"sex": "1"}, [m("sex", "1", "GB/T 2261.1", "2", display="女性")],
     ("GB/T 2261.1", "2", "女性"), ("CV02.01.101", "01", "居民身份证"), []),
    # a sex nothing knows is unmapped; a missing sex is not
    ({"sex": "X"}, [], None, ("CV02.01.101", "01", "居民身份证"), ["patient.sex"]),
    ({"sex": None}, [], None, ("CV02.01.101", "01", "居民身份证"), []),
    ({"sex": ""}, [], None, ("CV02.01.101", "01", "居民身份证"), []),
    # no ID card: the first identifier whose type maps, by the built-in table or a map
    ({"id_card_number": None, "identifiers": [{"value": "P1", "type": "MR", "authority": None},
                                              {"value": "E1", "type": "PPN", "authority": None}]},
     [], ("GB/T 2261.1", "1", "男性"), ("CV02.01.101", "03", "护照"), []),
    ({"id_card_number": None, "identifiers": [{"value": "J1", "type": "JGZ", "authority": None}]},
     [m("id-document-type", "JGZ", "CV02.01.101", "04", display="军官证")],
     ("GB/T 2261.1", "1", "男性"), ("CV02.01.101", "04", "军官证"), []),
    # identifiers that are not ID documents are neither coded nor unmapped
    ({"id_card_number": None, "identifiers": [{"value": "P1", "type": "MR", "authority": None},
                                              {"value": "P2", "type": None, "authority": None}]},
     [], ("GB/T 2261.1", "1", "男性"), None, []),
])
def test_patient_codes_on_every_event(patient: dict[str, Any], maps: list[MapEntry],
                                      sex: tuple[str, str, str] | None,
                                      document: tuple[str, str, str] | None,
                                      unmapped: list[str]) -> None:
    for event in (lab(), diagnosis(), medication(), patient_event(), header("encounter")):
        event["patient"] = event["patient"] | patient
        result = translate(event, MapStore(maps))
        assert coded(result.event, "patient.sex") == sex
        assert coded(result.event, "patient.id_document_type") == document
        assert [f for f in result.event["unmapped"] if f.startswith("patient.")] == unmapped
        assert [h.code_system for h in result.unmapped if h.code_system == "sex"] == (
            ["sex"] if unmapped else [])


@pytest.mark.parametrize(("maps", "fields", "expected", "hit"), [
    ([], {}, ("ICD-10 国家临床版 2.0", "E11.900", None), None),
    ([], {"diagnosis_code": "i10.X00x002", "diagnosis_system": "I10"},
     ("ICD-10 国家临床版 2.0", "I10.x00x002", None), None),
    ([], {"diagnosis_code": "J18", "diagnosis_system": "GB/T 14396-2016"},
     ("ICD-10 国家临床版 2.0", "J18", None), None),
    # an ICD-10 label on a code that does not look like one
    ([], {"diagnosis_code": "00004", "diagnosis_name": "伤寒"}, None,
     UnmappedHit("F1", "diagnosis", "00004", "伤寒")),
    # an ICD-10-looking code from a local system: the label is what counts
    ([], {"diagnosis_system": "HIS"}, None, UnmappedHit("F1", "diagnosis", "E11.900", "2型糖尿病")),
    ([], {"diagnosis_system": None}, None, UnmappedHit("F1", "diagnosis", "E11.900", "2型糖尿病")),
    # a local code mapped; a facility's map beats the pass-through
    ([m("diagnosis", "00004", "ICD-10 国家临床版 2.0", "A01.000", display="伤寒")],
     {"diagnosis_code": "00004", "diagnosis_system": "HIS"},
     ("ICD-10 国家临床版 2.0", "A01.000", "伤寒"), None),
    ([m("diagnosis", "E11.900", "ICD-10 国家临床版 2.0", "E11.901")], {},
     ("ICD-10 国家临床版 2.0", "E11.901", None), None),
])
def test_diagnoses(maps: list[MapEntry], fields: dict[str, Any],
                   expected: tuple[str, str, str | None] | None,
                   hit: UnmappedHit | None) -> None:
    result = translate(diagnosis(**fields), MapStore(maps))
    assert coded(result.event, "diagnosis_code") == expected
    assert result.event["unmapped"] == ([] if hit is None else ["diagnosis_code"])
    assert result.unmapped == (() if hit is None else (hit,))


@pytest.mark.parametrize(("maps", "expected", "hit"), [
    ([m("drug", "YP0001", "YPBM-2024", "XA10BAE001", display="二甲双胍")],
     ("YPBM-2024", "XA10BAE001", "二甲双胍"), None),
    ([m("drug", "YP0001", "YPBM-2024", "X", facility="F9")], None,
     UnmappedHit("F1", "drug", "YP0001", "二甲双胍片")),
    ([], None, UnmappedHit("F1", "drug", "YP0001", "二甲双胍片")),
])
def test_medications_need_a_map(maps: list[MapEntry],
                                expected: tuple[str, str, str | None] | None,
                                hit: UnmappedHit | None) -> None:
    result = translate(medication(), MapStore(maps))
    assert coded(result.event, "drug_code") == expected
    assert result.unmapped == (() if hit is None else (hit,))


@pytest.mark.parametrize(("maps", "fields", "marital", "ethnic", "unmapped"), [
    ([], {}, ("GB/T 2261.2", "20", "已婚"), ("GB 3304", "01", "汉族"), []),
    ([], {"marital_status": "S", "ethnic_group": "回族"},
     ("GB/T 2261.2", "10", "未婚"), ("GB 3304", "03", "回族"), []),
    ([], {"marital_status": None, "ethnic_group": None}, None, None, []),
    ([], {"marital_status": "C", "ethnic_group": "97"}, None, None,
     ["marital_status", "ethnic_group"]),
    # a facility whose PID-22 holds its own numbers: 17 is 汉族 there, not 哈萨克族
    ([m("ethnicity", "17", "GB 3304", "01", display="汉族")], {"ethnic_group": "17"},
     ("GB/T 2261.2", "20", "已婚"), ("GB 3304", "01", "汉族"), []),
    ([], {"ethnic_group": "17"}, ("GB/T 2261.2", "20", "已婚"), ("GB 3304", "17", "哈萨克族"), []),
])
def test_patient_events(maps: list[MapEntry], fields: dict[str, Any],
                        marital: tuple[str, str, str] | None, ethnic: tuple[str, str, str] | None,
                        unmapped: list[str]) -> None:
    result = translate(patient_event(**fields), MapStore(maps))
    assert coded(result.event, "marital_status") == marital
    assert coded(result.event, "ethnic_group") == ethnic
    assert result.event["unmapped"] == unmapped
    assert [h.code_system for h in result.unmapped] == [
        {"marital_status": "marital-status", "ethnic_group": "ethnicity"}[f] for f in unmapped]


def test_other_event_types_get_the_patient_codes_only() -> None:
    event = header("encounter") | {"department_code": "NK"}
    out = translate(event, MapStore([K_MAP])).event
    assert [c["field"] for c in out["codes"]] == ["patient.sex", "patient.id_document_type"]
    assert "standard_value" not in out


#: A patient with nothing to code: no sex, no ID card, no identifiers.
UNCODED = {"sex": None, "id_card_number": None, "identifiers": []}


@pytest.mark.parametrize(("event", "maps", "expected"), [
    # nothing translated at all
    (lab(test_code="XYZ", unit=None, patient=header("x", **UNCODED)["patient"]), [], None),
    # built-in tables only (sex, ID card, unit)
    (lab(test_code="XYZ"), [], B),
    # maps only: the patient has nothing coded, the unit is mapped too
    (lab(patient=header("x", **UNCODED)["patient"]),
     [K_MAP, m("unit", "mmol/L", "UCUM", "mmol/L", version="u7")], "u7+v1"),
    # distinct versions, sorted, each once, then the built-in tables
    (lab(), [m("lab-test", "K", "LOINC", "2823-3", version="2026.12"),
             m("sex", "M", "GB/T 2261.1", "1", version="2026.12"),
             m("unit", "mmol/L", "UCUM", "mmol/L", version="0a1b")], f"0a1b+2026.12+{B}"),
    (diagnosis(), [m("sex", "M", "GB/T 2261.1", "1", version="s1")], f"s1+{B}"),
    (lab(patient=header("x", id_card_number=None, identifiers=[
        {"value": "J1", "type": "JGZ", "authority": None}])["patient"]),
     [m("id-document-type", "JGZ", "CV02.01.101", "04", version="d"),
      m("sex", "M", "GB/T 2261.1", "1", version="b"),
      m("unit", "mmol/L", "UCUM", "mmol/L", version="c"),
      m("lab-test", "K", "LOINC", "2823-3", version="a")], "a+b+c+d"),
])
def test_map_version_names_what_translated(event: dict[str, Any], maps: list[MapEntry],
                                           expected: str | None) -> None:
    assert translate(event, MapStore(maps)).event["map_version"] == expected


def test_a_map_added_later_changes_the_replayed_event() -> None:
    store = MapStore()
    first = translate(lab(), store).event
    store.put(K_MAP)
    replayed = translate(first, store).event
    assert first["unmapped"] == ["test_code"] and replayed["unmapped"] == []
    assert first["map_version"] == B and replayed["map_version"] == f"v1+{B}"
    assert [c["field"] for c in replayed["codes"]] == [
        "patient.sex", "patient.id_document_type", "test_code", "unit"]   # not doubled


def test_translate_never_changes_its_input() -> None:
    events = [lab(codes=[{"field": "old", "system": "x", "code": "y", "display": None}],
                  unmapped=["old"], map_version="old"),
              diagnosis(diagnosis_code="00004"), medication(), patient_event(ethnic_group="97")]
    store = MapStore([K_MAP, m("unit", "G/L", "UCUM", "10*9/L")])
    for event in events:
        before = copy.deepcopy(event)
        out = translate(event, store).event
        assert event == before
        assert out is not event and out["codes"] is not event["codes"]
        assert out["unmapped"] is not event["unmapped"]
        assert {c["field"] for c in out["codes"]}.isdisjoint({"old"})
        assert "old" not in out["unmapped"] and out["map_version"] != "old"


@pytest.mark.parametrize("event", [
    lab(), lab(test_code="XYZ", unit="furlong"), diagnosis(), diagnosis(diagnosis_code="0"),
    medication(), patient_event(), patient_event(marital_status="C"),
])
def test_translated_events_fit_their_schemas(event: dict[str, Any]) -> None:
    result = translate(event, MapStore([K_MAP]))
    assert wire.check(catalog.schema(event["event_type"]), result.event) is None


def test_an_unmapped_hit_makes_an_unmapped_code_record() -> None:
    hit = UnmappedHit("F1", "lab-test", "XYZ", "某项目")
    record = hit.to_record(count=3, first_seen=AT, last_seen=AT)
    assert wire.check(catalog.schema("unmapped-code"), record) is None


def test_the_demo_feed_with_the_demo_maps() -> None:
    store = MapStore(load_folder(DEMO, now=AT).entries)
    hits: Counter[tuple[str, str, str]] = Counter()
    translated = 0
    for facility, messages in generate().items():
        for message in messages:
            adapted = adapt(Arrival(message.encode(facility.encoding), "file", AT))
            for event in adapted.events:
                out = translate(event, store)
                assert wire.check(catalog.schema("lab-result"), out.event) is None
                assert coded(out.event, "unit") is not None
                hits.update((h.facility_id, h.code_system, h.local_code) for h in out.unmapped)
                translated += 1
    assert translated > 90
    assert set(hits) == {("HHXWSY", "lab-test", "CREA")}
