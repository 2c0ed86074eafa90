"""What makes one document, a new version of it, or its withdrawal (review findings 4-12).

Redeliveries of one event choose the same record whatever their order; a lab
report is keyed by its order, not its message; an ED visit and the admission it
became are two documents; a group that no longer makes its document says so;
text XML 1.0 forbids never reaches lxml; ids too long to index are refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sinks.docstore.assembly import (
    AssemblyError,
    assemble,
    group_keys,
    received,
    set_id_of,
    supersedes,
    withdrawn,
)
from sinks.docstore.assembly.cda import add, new_root, serialize
from sinks.docstore.assembly.events import records_of
from sinks.docstore.assembly.keys import MAX_KEY_LENGTH
from sinks.docstore.assembly.received import MAX_ID_LENGTH
from sinks.docstore.assembly.visit import visit_state
from sinks.docstore.model import Part
from tests.unit.test_assembly import (
    OBSERVED,
    RECEIVED,
    diagnosis,
    encounter,
    lab_result,
    medication,
    one,
    tree,
)
from tests.warehouse_events import document as document_event

LATER = OBSERVED + timedelta(hours=1)


def _untranslated(record: dict[str, Any]) -> dict[str, Any]:
    """The same event before a code map covered its test: no LOINC, the field unmapped."""
    return record | {"codes": [c for c in record["codes"] if c["field"] != "test_code"],
                     "unmapped": ["test_code"], "map_version": None}


# --- finding 4: which delivery of an event counts ----------------------------------------

@pytest.mark.parametrize("order", ["stale first", "fresh first"])
def test_the_better_delivery_of_an_event_wins_whatever_the_order(order: str) -> None:
    fresh = lab_result(1)
    stale = _untranslated(fresh)
    deliveries = [stale, fresh] if order == "stale first" else [fresh, stale]
    [chosen] = records_of([("lab-result", record) for record in deliveries], "lab-result")
    assert chosen == fresh
    assert supersedes(fresh, stale) and not supersedes(stale, fresh)
    assert not supersedes(fresh, fresh)


def test_a_linked_delivery_wins_over_an_unlinked_one() -> None:
    linked = lab_result(1)
    unlinked = linked | {"empi_id": None}
    assert supersedes(linked, unlinked) and not supersedes(unlinked, linked)
    [chosen] = records_of([("lab-result", linked), ("lab-result", unlinked)], "lab-result")
    assert chosen == linked


def test_records_without_an_event_id_are_merged_only_when_they_are_the_same() -> None:
    first = lab_result(1) | {"event_id": None}
    other = first | {"value": "7.1", "value_numeric": 7.1}
    chosen = records_of([("lab-result", r) for r in (first, other, dict(first))],
                        "lab-result")
    assert sorted(r["value"] for r in chosen) == ["6.8", "7.1"]  # the copy of one merged


# --- finding 5: ids too long to index -----------------------------------------------------

def test_a_group_key_too_long_is_refused_without_quoting_it() -> None:
    number = "V" * (MAX_KEY_LENGTH + 1)
    with pytest.raises(AssemblyError, match="too long") as caught:
        group_keys("encounter", encounter(visit_number=number))
    assert number not in str(caught.value)


@pytest.mark.parametrize("field", ["document_id", "set_id", "replaces_document_id",
                                   "document_type_code"])
def test_a_received_id_too_long_is_refused(field: str) -> None:
    event = document_event() | {"document_id": "1.2^D-1", field: "9" * (MAX_ID_LENGTH + 1),
                                "content_sha256": None}
    with pytest.raises(AssemblyError, match=field):
        received(event)


def test_an_unusual_confidentiality_code_is_kept_as_sent() -> None:
    event = document_event() | {"confidentiality_code": "VERYRESTRICTED",
                                "content_sha256": None}
    assert received(event).confidentiality_code == "VERYRESTRICTED"


# --- finding 6: characters XML 1.0 forbids ------------------------------------------------

def test_characters_xml_forbids_are_left_out_of_text_and_attributes() -> None:
    root = new_root("ClinicalDocument")
    add(root, "title", "急性\x01上呼吸道\x0b感染\ufffe\ud800", displayName="a\x00b\x1fc")
    content = serialize(root)
    title = one(tree(content), "/v3:ClinicalDocument/v3:title")
    assert title.text == "急性上呼吸道感染"
    assert title.get("displayName") == "abc"


def test_a_diagnosis_name_with_a_control_character_still_makes_the_record() -> None:
    parts: list[Part] = [("encounter", encounter()),
                         ("diagnosis", diagnosis(diagnosis_name="急性\x01上呼吸道感染"))]
    document = assemble("visit:F001:MZ-0001", parts)
    assert document is not None and "急性上呼吸道感染".encode() in document.content


# --- finding 8: a lab report is its order ---------------------------------------------------

@pytest.mark.parametrize(("overrides", "key"), [
    ({}, "lab:F001:FO-5001:"),
    ({"message_control_id": "LAB0002"}, "lab:F001:FO-5001:"),
    ({"filler_order_number": None}, "lab:F001:PO-5001:"),
    ({"filler_order_number": None, "placer_order_number": ""}, "lab:F001::LAB0001"),
])
def test_lab_group_key_is_the_order(overrides: dict[str, Any], key: str) -> None:
    assert group_keys("lab-result", lab_result(**overrides)) == [key]


def _potassium(document: Any) -> str | None:
    value: str | None = one(tree(document.content),
                            "//v3:organizer/v3:component/v3:observation/v3:value").get("value")
    return value


def test_a_correction_in_a_new_message_is_the_same_report_corrected() -> None:
    final = lab_result(1, "LAB0001")
    corrected = lab_result(1, "LAB0002", value="5.1", value_numeric=5.1, standard_value=5.1,
                           result_status="C", received_at=RECEIVED + timedelta(hours=2))
    [key] = group_keys("lab-result", final)
    assert group_keys("lab-result", corrected) == [key]
    for parts in ([("lab-result", final), ("lab-result", corrected)],
                  [("lab-result", corrected), ("lab-result", final)]):
        document = assemble(key, parts)
        assert document is not None and _potassium(document) == "5.1"


def test_final_results_after_preliminary_ones_make_the_report() -> None:
    preliminary = lab_result(1, "LAB0001", result_status="P")
    final = lab_result(1, "LAB0002", result_status="F", received_at=RECEIVED + timedelta(hours=1))
    [key] = group_keys("lab-result", preliminary)
    assert assemble(key, [("lab-result", preliminary)]) is None
    document = assemble(key, [("lab-result", preliminary), ("lab-result", final)])
    assert document is not None and document.event_ids == (final["event_id"],)


# --- finding 9: a document withdrawn ----------------------------------------------------------

ADMIT = {"visit_number": "MZ-0001", "patient_class": "I"}
WITHDRAWN_CASES: list[tuple[str, str, list[Part], set[str]]] = [
    ("every prescription line cancelled", "rx:F001:RX-8001",
     [("medication", medication(1)),
      ("medication", medication(1, "RX0002", action="cancel", occurred_at=LATER))],
     {"prescription"}),
    ("a line left", "rx:F001:RX-8001",
     [("medication", medication(1)), ("medication", medication(2, drug_code="B")),
      ("medication", medication(1, "RX0002", action="cancel", occurred_at=LATER))], set()),
    ("every result deleted or wrong", "lab:F001:FO-5001:",
     [("lab-result", lab_result(1)),
      ("lab-result", lab_result(1, "LAB0002", result_status="D",
                                received_at=RECEIVED + timedelta(hours=1)))],
     {"lab-report"}),
    ("a result pending again is not a withdrawal", "lab:F001:FO-5001:",
     [("lab-result", lab_result(1)),
      ("lab-result", lab_result(1, "LAB0002", result_status="P",
                                received_at=RECEIVED + timedelta(hours=1)))], set()),
    ("a registration cancelled (A11)", "visit:F001:MZ-0001",
     [("encounter", encounter()), ("diagnosis", diagnosis()),
      ("encounter", encounter("ADT0002", action="cancel", trigger_event="A11",
                              occurred_at=LATER))],
     {"outpatient-record", "discharge-summary"}),
    ("a discharge cancelled (A13)", "visit:F001:MZ-0001",
     [("encounter", encounter(action="admit", trigger_event="A01", **ADMIT)),
      ("encounter", encounter("ADT0002", action="discharge", trigger_event="A03",
                              occurred_at=LATER, discharged_at=LATER, **ADMIT)),
      ("encounter", encounter("ADT0003", action="cancel", trigger_event="A13",
                              occurred_at=LATER + timedelta(hours=1), **ADMIT)),
      ("diagnosis", diagnosis())],
     {"discharge-summary"}),
    ("an ED visit admitted, not yet discharged: its record stands", "visit:F001:MZ-0001",
     [("encounter", encounter(patient_class="E")), ("diagnosis", diagnosis()),
      ("encounter", encounter("ADT0002", action="admit", trigger_event="A01",
                              occurred_at=LATER, **ADMIT))], {"discharge-summary"}),
    ("an outpatient visit: no discharge summary stands", "visit:F001:MZ-0001",
     [("encounter", encounter()), ("diagnosis", diagnosis())], {"discharge-summary"}),
    ("a visit not yet a document", "visit:F001:MZ-0001", [("diagnosis", diagnosis())], set()),
]


@pytest.mark.parametrize(("why", "key", "parts", "kinds"), WITHDRAWN_CASES,
                         ids=[case[0] for case in WITHDRAWN_CASES])
def test_withdrawn(why: str, key: str, parts: list[Part], kinds: set[str]) -> None:
    assert withdrawn(key, parts) == frozenset(kinds)
    document = assemble(key, parts)
    assert document is None or document.kind not in kinds


def test_an_admission_cancelled_after_an_ed_visit_leaves_the_ed_visit() -> None:
    ed = encounter(patient_class="E")
    admit = encounter("ADT0002", action="admit", trigger_event="A01", occurred_at=LATER,
                      **ADMIT)
    cancel = encounter("ADT0003", action="cancel", trigger_event="A11",
                       occurred_at=LATER + timedelta(hours=1), **ADMIT)
    state = visit_state([ed, admit, cancel])
    assert state is not None and state["patient_class"] == "E"
    parts: list[Part] = [("encounter", ed), ("encounter", admit), ("encounter", cancel),
                         ("diagnosis", diagnosis())]
    document = assemble("visit:F001:MZ-0001", parts)
    assert document is not None and document.kind == "outpatient-record"
    assert withdrawn("visit:F001:MZ-0001", parts) == {"discharge-summary"}


# --- finding 12: one set per kind of document -------------------------------------------------

def test_an_ed_record_and_the_discharge_summary_of_its_admission_are_two_sets() -> None:
    key = "visit:F001:MZ-0001"
    ed: list[Part] = [("encounter", encounter(patient_class="E")), ("diagnosis", diagnosis())]
    admitted: list[Part] = [
        *ed, ("encounter", encounter("ADT0002", action="admit", trigger_event="A01",
                                     occurred_at=LATER, **ADMIT)),
        ("encounter", encounter("ADT0003", action="discharge", trigger_event="A03",
                                occurred_at=LATER + timedelta(days=2),
                                discharged_at=LATER + timedelta(days=2), **ADMIT))]
    record, summary = assemble(key, ed), assemble(key, admitted)
    assert record is not None and summary is not None
    assert (record.type_code, summary.type_code) == ("C0002", "C0053")
    assert record.set_id == set_id_of(key, "outpatient-record")
    assert summary.set_id == set_id_of(key, "discharge-summary")
    assert record.set_id != summary.set_id
    assert one(tree(summary.content), "/v3:ClinicalDocument/v3:setId").get(
        "extension") == summary.set_id


def test_a_set_id_for_a_kind_the_group_cannot_make_is_refused() -> None:
    with pytest.raises(AssemblyError, match="kind"):
        set_id_of("lab:F001:FO-5001:", "prescription")


# --- RPLC: the parent's version -----------------------------------------------------------------

def test_the_replaced_version_is_named_with_its_version_number() -> None:
    key = "rx:F001:RX-8001"
    parts: list[Part] = [("medication", medication(1))]
    first = assemble(key, parts)
    third = assemble(key, parts, version_number=3,
                     replaces_document_id=f"{set_id_of(key, 'prescription')}-v2")
    assert first is not None and third is not None
    parent = one(tree(third.content),
                 "/v3:ClinicalDocument/v3:relatedDocument[@typeCode='RPLC']/v3:parentDocument")
    assert [child.tag.rsplit("}", 1)[1] for child in parent] == ["id", "setId", "versionNumber"]
    assert one(parent, "v3:setId").get("extension") == first.set_id
    assert one(parent, "v3:versionNumber").get("value") == "2"
    with pytest.raises(AssemblyError, match="replaces"):
        assemble(key, parts, version_number=1, replaces_document_id="x")
