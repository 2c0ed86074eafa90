"""The schema catalog against the public contract: topics, ids, ADR 0001 fields, docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema

from hutong.errors import SchemaError
from schemas import catalog, registry, validation, wire

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"

# The topic table of design.md, written out here on purpose: the catalog computes it.
EVENT_TYPES = [
    "patient",
    "encounter",
    "lab-result",
    "imaging-report",
    "order",
    "medication",
    "diagnosis",
    "document",
]
CONTRACT_TOPICS = {
    "hutong.raw.hl7v2": "raw-envelope",
    "hutong.raw.cda": "raw-envelope",
    "hutong.raw.json": "raw-envelope",
    **{f"hutong.events.{kind}": kind for kind in EVENT_TYPES},
    **{f"hutong.std.{kind}": kind for kind in EVENT_TYPES},
    "hutong.empi.links": "empi-link",
    "hutong.empi.review": "empi-review",
    "hutong.empi.golden": "empi-golden",
    "hutong.empi.decisions": "empi-decision",
    "hutong.terminology.maps": "concept-map",
    "hutong.terminology.unmapped": "unmapped-code",
    "hutong.alerts.critical": "critical-alert",
    "hutong.alerts.ack": "alert-ack",
    "hutong.registry.facilities": "facility",
    "hutong.registry.practitioners": "practitioner",
    "hutong.registry.unknown-practitioners": "unknown-practitioner",
    "hutong.alerts.rule-files": "rule-file",
    "hutong.federation.conflicts": "federation-conflict",
    "hutong.dlq": "dead-letter",
}

# Published ids: a change here breaks every reader of data already on a topic.
PINNED_IDS = {
    "raw-envelope": 1,
    "patient": 2,
    "encounter": 3,
    "lab-result": 4,
    "imaging-report": 5,
    "order": 6,
    "medication": 7,
    "diagnosis": 8,
    "document": 9,
    "dead-letter": 10,
    "empi-link": 11,
    "empi-review": 12,
    "concept-map": 13,
    "unmapped-code": 14,
    "critical-alert": 15,
    "alert-ack": 16,
    "empi-decision": 17,
    "empi-golden": 18,
    "facility": 19,
    "practitioner": 20,
    "unknown-practitioner": 21,
    "federation-conflict": 22,
    "rule-file": 23,
}

# ADR 0001, as (field, Avro type) in order; "?" marks a null union defaulting to null.
TS = "timestamp-millis"
ADR_HEADER = [
    ("event_id", "string"),
    ("event_type", "string"),
    ("facility_id", "string"),
    ("source_system", "?string"),
    ("message_control_id", "?string"),
    ("source_patient_id", "string"),
    ("empi_id", "?string"),
    ("occurred_at", f"?{TS}"),
    ("received_at", TS),
    ("patient", "hutong.PatientIdentity"),
    ("quality_warnings", "array<string>"),
    ("map_version", "?string"),
    ("codes", "array<hutong.Coding>"),
    ("unmapped", "array<string>"),
]
ADR_PATIENT_IDENTITY = [
    ("source_patient_id", "string"),
    ("identifiers", "array<hutong.Identifier>"),
    *((name, "?string") for name in ("id_card_number", "health_card_number", "name", "sex")),
    *((name, "?string") for name in ("phone", "address")),
    ("birth_date", "?date"),
]
ADR_IDENTIFIER = [("value", "string"), ("type", "?string"), ("authority", "?string")]
ADR_LAB_RESULT = [
    ("set_id", "int"),
    *((name, "?string") for name in ("placer_order_number", "filler_order_number")),
    *((name, "?string") for name in ("panel_code", "panel_name", "specimen_type")),
    ("specimen_collected_at", f"?{TS}"),
    ("test_code", "string"),
    ("test_name", "?string"),
    ("test_system", "?string"),
    ("value_type", "string"),
    ("value", "?string"),
    ("value_numeric", "?double"),
    ("unit", "?string"),
    ("reference_range", "?string"),
    ("abnormal_flags", "array<string>"),
    ("result_status", "?string"),
    ("observed_at", f"?{TS}"),
    ("performing_lab", "?string"),
    ("standard_value", "?double"),
    ("standard_unit", "?string"),
    *((name, "?string") for name in ("ordering_provider_id", "ordering_department",
                                     "visit_number", "patient_class")),
    *((name, "?string") for name in ("practitioner_id", "practitioner_status")),
]
ADR_CODING = [("field", "string"), ("system", "string"), ("code", "string"),
              ("display", "?string")]


def _type(avro: Any) -> str:
    """A short spelling of a (non-parsed, file-level) Avro type, as in the ADR tables."""
    if isinstance(avro, list):
        assert avro[0] == "null" and len(avro) == 2, avro
        return "?" + _type(avro[1])
    if isinstance(avro, str):
        return avro
    if "logicalType" in avro:
        return str(avro["logicalType"])
    if avro["type"] == "array":
        return f"array<{_type(avro['items'])}>"
    return str(avro["type"])


def _avsc(filename: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
    return result


def _fields(filename: str) -> list[tuple[str, str]]:
    return [(field["name"], _type(field["type"])) for field in _avsc(filename)["fields"]]


def test_every_topic_of_the_contract_has_its_schema() -> None:
    assert list(catalog.EVENT_TYPES) == EVENT_TYPES
    assert catalog.TOPICS == CONTRACT_TOPICS
    for topic, name in CONTRACT_TOPICS.items():
        assert catalog.for_topic(topic).name == name


def test_schema_ids_are_pinned_and_unique() -> None:
    assert {entry.name: entry.schema_id for entry in catalog.all_schemas()} == PINNED_IDS
    assert [entry.schema_id for entry in catalog.all_schemas()] == sorted(PINNED_IDS.values())
    for name, schema_id in PINNED_IDS.items():
        assert catalog.by_id(schema_id) is catalog.schema(name)


def test_every_avsc_file_is_a_catalog_schema_or_a_shared_named_type() -> None:
    files = {path.name for path in SCHEMA_DIR.glob("*.avsc")}
    shared = {"hutong.PatientIdentity.avsc", "hutong.Identifier.avsc", "hutong.Coding.avsc"}
    assert files == {f"{name}.avsc" for name in PINNED_IDS} | shared
    for filename in shared:  # fastavro finds a named type in <namespace>.<name>.avsc
        schema = _avsc(filename)
        assert filename == f"{schema['namespace']}.{schema['name']}.avsc"


@pytest.mark.parametrize("entry", catalog.all_schemas(), ids=lambda entry: entry.name)
def test_every_schema_is_self_contained(entry: catalog.SchemaEntry) -> None:
    schema = json.loads(entry.schema_str)
    parse_schema(schema, named_schemas={})  # raises UnknownType for a type defined elsewhere
    assert not any(key.startswith("__") for key in schema)  # no fastavro markers
    if entry.name in EVENT_TYPES:
        patient = schema["fields"][9]
        assert patient["type"]["name"] == "hutong.PatientIdentity"
        assert patient["type"]["type"] == "record"  # inlined, not a reference


@pytest.mark.parametrize("filename", sorted(path.name for path in SCHEMA_DIR.glob("*.avsc")))
def test_every_record_and_field_is_documented_with_the_defaults_we_promise(filename: str) -> None:
    schema = _avsc(filename)
    assert schema["doc"] and schema["namespace"] in ("hutong", "hutong.events")
    for field in schema["fields"]:
        assert field["doc"], field["name"]
        kind = _type(field["type"])
        if kind.startswith("?"):
            assert field.get("default", "absent") is None, field["name"]
        if kind.startswith("array<"):
            assert field["default"] == [], field["name"]


def test_event_schemas_share_the_adr_header_and_live_in_hutong_events() -> None:
    for kind in EVENT_TYPES:
        assert _fields(f"{kind}.avsc")[: len(ADR_HEADER)] == ADR_HEADER, kind
        assert _avsc(f"{kind}.avsc")["namespace"] == "hutong.events"
    headers = {json.dumps(_avsc(f"{kind}.avsc")["fields"][:12]) for kind in EVENT_TYPES}
    assert len(headers) == 1  # the same docs and defaults in every event schema


def test_lab_result_and_the_shared_types_are_exactly_the_adr() -> None:
    assert _fields("lab-result.avsc") == ADR_HEADER + ADR_LAB_RESULT
    assert _fields("hutong.PatientIdentity.avsc") == ADR_PATIENT_IDENTITY
    assert _fields("hutong.Identifier.avsc") == ADR_IDENTIFIER
    assert _fields("hutong.Coding.avsc") == ADR_CODING


def test_patient_events_carry_action_and_merge_source() -> None:
    fields = dict(_fields("patient.avsc"))
    assert fields["action"] == "string"
    assert fields["merged_source_patient_id"] == "?string"


def test_topic_specs() -> None:
    specs = {spec.name: spec for spec in catalog.TOPIC_SPECS}
    assert list(specs) == list(catalog.TOPICS)
    day = 24 * 3600 * 1000
    for name, spec in specs.items():
        assert spec.key and spec.what
        # the decisions are applied in one order by one resolver: one partition, always
        single = name == "hutong.empi.decisions"
        assert (spec.partitions, spec.fixed_partitions) == ((1, True) if single else (3, False))
        if name in ("hutong.empi.links", "hutong.empi.golden", "hutong.terminology.maps",
                    "hutong.registry.facilities", "hutong.registry.practitioners",
                    "hutong.alerts.rule-files"):
            assert (spec.cleanup_policy, spec.retention_ms) == ("compact", None)
        else:
            expected = 30 * day if name in ("hutong.dlq", "hutong.empi.decisions",
                                            "hutong.federation.conflicts") else 7 * day
            assert (spec.cleanup_policy, spec.retention_ms) == ("delete", expected)


def test_lookups_that_fail_name_what_was_asked() -> None:
    with pytest.raises(SchemaError, match=r"topic 'hutong\.std\.x-ray' is not in the topic"):
        catalog.for_topic("hutong.std.x-ray")
    with pytest.raises(SchemaError, match="no schema with id 99"):
        catalog.by_id(99)
    with pytest.raises(SchemaError, match="no schema named 'lab_result'"):
        catalog.schema("lab_result")


def test_subject_is_topic_name_strategy() -> None:
    assert catalog.subject_for("hutong.std.lab-result") == "hutong.std.lab-result-value"


def test_docs_topic_catalog_covers_every_topic_and_links_real_schemas() -> None:
    text = (ROOT / "docs" / "topics.md").read_text(encoding="utf-8")
    per_type = ("hutong.events.", "hutong.std.")
    topics = [topic for topic in CONTRACT_TOPICS if not topic.startswith(per_type)]
    for topic in [*topics, "hutong.events.<type>", "hutong.std.<type>"]:
        assert f"`{topic}`" in text, topic
    for name in PINNED_IDS:
        assert f"](../schemas/{name}.avsc)" in text, name


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (catalog, ["EVENT_TYPES", "SCHEMA_IDS", "TOPICS", "TOPIC_SPECS", "SchemaEntry",
                   "TopicSpec", "all_schemas", "by_id", "for_topic", "schema", "subject_for"]),
        (wire, ["HEADER_SIZE", "MAGIC_BYTE", "Framed", "check", "decode", "decode_framed",
                "decode_written_with", "encode", "encode_changed"]),
        (registry, ["COMPATIBILITY", "EMBEDDED", "IdMap", "RegistryClient", "Reply", "Resolver",
                    "register_all", "register_with", "resolver", "schema_by_id",
                    "subject_version", "subject_versions", "subjects"]),
        (validation, ["Check", "Problem", "compile_check"]),
    ],
)  # fmt: skip
def test_exported_members(module: Any, names: list[str]) -> None:
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert hasattr(module, name)
