"""From event dicts to warehouse rows: one `TableSpec` per event type (pure, no I/O).

A table is a tuple of `Column`s, each a name and a getter over the event dict.
Every event table starts with `HEADER_COLUMNS` (the ADR 0001 header, with the
patient reduced to what analysis needs); adding an event type is one entry in
`TABLES` listing its own fields. The column names must match the migration
that creates the table.

Identity stays in the EMPI: names, ID card and health card numbers, phones,
addresses and the identifier list never reach the analytics tables. Of the
patient only `source_patient_id`, `empi_id`, sex, birth date, age band and
region code are kept, and by default the facility's id becomes a pseudonym and
the birth date is withheld (`sinks.warehouse.pseudonyms.protect`).
Events keep their clinicians by id, never by name, with the registry id the
stream gave them (`PRACTITIONER_COLUMNS`); the practitioner registry's own
tables (``practitioners``, ``unknown_practitioners``) are the staff directory
and hold names, never an ID number. Clinical free text that may name
people (an imaging report's findings and impression, an order's clinical
information) is kept as its length (`chars`), and a document as its registry
metadata and size (`size`), never its content: the events keep the text.

Timestamps must be timezone-aware (ADR 0001); a naive one is refused rather
than guessed at, since ClickHouse would read it in the server's zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hutong.errors import WarehouseError
from sinks.warehouse.derived import age_band, region_code

__all__ = [
    "HEADER_COLUMNS",
    "TABLES",
    "Column",
    "TableSpec",
    "chars",
    "coded",
    "coded_system",
    "field",
    "located",
    "patient",
    "size",
    "timestamp",
]

Event = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """A warehouse column and how to read its value from an event."""

    name: str
    get: Callable[[Event], Any]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Where one event type lands: the table, its id column and its columns in order."""

    table: str
    id_column: str
    columns: tuple[Column, ...]
    #: Columns whose change means "this event was processed again, differently" (the map
    #: version, the clinician's registry link, after a replay): the writer replaces the
    #: row instead of skipping it.
    version_columns: tuple[str, ...] = ()
    #: Fields the sink sets to where it read the record (partition, offset), for a table
    #: whose rows must find their record on the topic again (`locate`).
    position_fields: tuple[str, str] | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def locate(self, event: Event, partition: int, offset: int) -> Event:
        """``event`` with the position it was read at in `position_fields`, if the table
        keeps one (else ``event`` itself)."""
        if self.position_fields is None:
            return event
        partition_field, offset_field = self.position_fields
        return {**event, partition_field: partition, offset_field: offset}

    def to_row(self, event: Event) -> tuple[Any, ...]:
        """The row for `event`, values in `column_names` order."""
        try:
            return tuple(column.get(event) for column in self.columns)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WarehouseError(
                f"{self.table}: event {event.get(self.id_column)!r} does not fit the row "
                f"({type(exc).__name__}: {exc})"
            ) from exc


def field(name: str) -> Column:
    """A column holding the event field `name` as it is."""
    return Column(name, lambda event: event[name])


def timestamp(name: str) -> Column:
    """A column holding the (nullable) timezone-aware timestamp field `name`."""

    def get(event: Event) -> datetime | None:
        value: datetime | None = event[name]
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name} is a naive datetime; events carry timezone-aware ones")
        return value

    return Column(name, get)


def coded(name: str, coded_field: str) -> Column:
    """A column holding the standard code translation gave ``coded_field``, or None."""
    return Column(name, lambda event: next(
        (c["code"] for c in event["codes"] if c["field"] == coded_field), None))


def coded_system(name: str, coded_field: str) -> Column:
    """A column holding the system of the standard code of ``coded_field``, or None."""
    return Column(name, lambda event: next(
        (c["system"] for c in event["codes"] if c["field"] == coded_field), None))


def patient(name: str) -> Column:
    """A ``patient_<name>`` column from the event's `hutong.PatientIdentity`."""
    return Column(f"patient_{name}", lambda event: event["patient"][name])


def located(name: str) -> Column:
    """A column holding the position field `name` that `TableSpec.locate` set (else None)."""
    return Column(name, lambda event: event.get(name))


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def size(name: str) -> Column:
    """A ``<name>_size`` column: the length in bytes of field `name` (text counts as UTF-8)."""
    return Column(f"{name}_size", lambda event: len(_as_bytes(event[name])))


def chars(name: str) -> Column:
    """A ``<name>_chars`` column: the length in characters of text field `name`, None if absent.

    For free text that stays out of the warehouse: the length tells whether there
    was any and how much, without a word of it.
    """

    def get(event: Event) -> int | None:
        value: str | None = event[name]
        return None if value is None else len(value)

    return Column(f"{name}_chars", get)


HEADER_COLUMNS: tuple[Column, ...] = (
    field("event_id"),
    field("facility_id"),
    field("source_system"),
    field("message_control_id"),
    field("source_patient_id"),
    field("empi_id"),
    patient("sex"),
    patient("birth_date"),
    Column("patient_age_band", lambda event: age_band(event["patient"]["birth_date"],
                                                      event["occurred_at"])),
    Column("patient_region_code", lambda event: region_code(event["patient"]["id_card_number"])),
    timestamp("occurred_at"),
    timestamp("received_at"),
    field("quality_warnings"),
    field("map_version"),
    Column("codes", lambda event: [(c["field"], c["system"], c["code"], c["display"])
                                   for c in event["codes"]]),
    field("unmapped"),
)

#: Who the clinician an event names is in the practitioner registry, set by the stream
#: worker: the registry id (facility|staff id) and known, retired or unknown.
PRACTITIONER_COLUMNS: tuple[Column, ...] = (
    field("practitioner_id"),
    field("practitioner_status"),
)

#: The order numbers (ORC-2, ORC-3) that tie results, reports and medications to their order.
ORDER_NUMBER_COLUMNS: tuple[Column, ...] = (
    field("placer_order_number"),
    field("filler_order_number"),
)

LAB_RESULT_COLUMNS: tuple[Column, ...] = (
    field("set_id"),
    *ORDER_NUMBER_COLUMNS,
    field("panel_code"),
    field("panel_name"),
    field("specimen_type"),
    timestamp("specimen_collected_at"),
    field("test_code"),
    field("test_name"),
    field("test_system"),
    field("value_type"),
    field("value"),
    field("value_numeric"),
    field("unit"),
    field("reference_range"),
    field("abnormal_flags"),
    field("result_status"),
    timestamp("observed_at"),
    field("performing_lab"),
    coded("standard_code", "test_code"),
    coded_system("standard_system", "test_code"),
    field("standard_value"),
    field("standard_unit"),
    field("ordering_provider_id"),
    *PRACTITIONER_COLUMNS,
    field("ordering_department"),
    field("visit_number"),
    field("patient_class"),
)

#: A patient event (ADT A01-A40): what happened to the record, and the demographics
#: analysis needs (no names or numbers: those stay in the EMPI).
PATIENT_COLUMNS: tuple[Column, ...] = (
    field("action"),
    field("trigger_event"),
    field("merged_source_patient_id"),
    field("ethnic_group"),
    field("marital_status"),
    field("nationality"),
    field("occupation"),
    coded("sex_code", "patient.sex"),
    coded("marital_status_code", "marital_status"),
    coded("ethnic_group_code", "ethnic_group"),
    field("deceased"),
    timestamp("deceased_at"),
)

#: An encounter event (ADT A01-A13: PV1, PV2). The attending doctor's name stays out;
#: the id is enough to count by doctor.
ENCOUNTER_COLUMNS: tuple[Column, ...] = (
    field("action"),
    field("trigger_event"),
    field("visit_number"),
    field("patient_class"),
    field("department_code"),
    field("department_name"),
    field("ward"),
    field("room"),
    field("bed"),
    field("prior_location"),
    field("attending_doctor_id"),
    *PRACTITIONER_COLUMNS,
    field("admit_source"),
    field("admit_reason"),
    timestamp("admitted_at"),
    timestamp("discharged_at"),
    field("discharge_disposition"),
)

#: An imaging report (ORU, MDM from a PACS/RIS). The findings and impression are free
#: text that may name people: only their lengths are kept. The radiologist by id only.
IMAGING_REPORT_COLUMNS: tuple[Column, ...] = (
    field("accession_number"),
    *ORDER_NUMBER_COLUMNS,
    field("study_instance_uid"),
    field("modality"),
    field("procedure_code"),
    field("procedure_name"),
    field("body_part"),
    timestamp("study_at"),
    timestamp("reported_at"),
    field("report_status"),
    chars("report_text"),
    chars("impression"),
    field("critical_finding"),
    field("radiologist_id"),
    *PRACTITIONER_COLUMNS,
    field("performing_department"),
)

#: An order (ORM, OML: ORC, OBR). The clinical information (OBR-13) is free text:
#: only its length is kept. The ordering provider by id only.
ORDER_COLUMNS: tuple[Column, ...] = (
    field("order_control"),
    *ORDER_NUMBER_COLUMNS,
    field("placer_group_number"),
    field("order_status"),
    field("item_code"),
    field("item_name"),
    field("item_system"),
    field("diagnostic_service"),
    field("priority"),
    field("specimen_type"),
    chars("clinical_info"),
    timestamp("ordered_at"),
    field("ordering_provider_id"),
    *PRACTITIONER_COLUMNS,
    field("ordering_department"),
    field("visit_number"),
)

#: A medication line (RDE, RDS: ORC, RXE, RXR, RXD, TQ1). The prescriber by id only.
MEDICATION_COLUMNS: tuple[Column, ...] = (
    field("action"),
    field("order_control"),
    *ORDER_NUMBER_COLUMNS,
    field("prescription_number"),
    field("drug_code"),
    coded("standard_drug_code", "drug_code"),
    field("drug_name"),
    field("drug_system"),
    field("dose"),
    field("dose_unit"),
    field("dosage_form"),
    field("route"),
    field("frequency"),
    field("duration"),
    field("duration_days"),
    field("quantity"),
    field("quantity_unit"),
    timestamp("prescribed_at"),
    timestamp("dispensed_at"),
    field("prescriber_id"),
    *PRACTITIONER_COLUMNS,
    field("department"),
    field("visit_number"),
)

#: A diagnosis (DG1). The clinician by id only.
DIAGNOSIS_COLUMNS: tuple[Column, ...] = (
    field("set_id"),
    field("diagnosis_code"),
    field("diagnosis_system"),
    coded("standard_code", "diagnosis_code"),
    field("diagnosis_name"),
    field("diagnosis_type"),
    field("priority"),
    timestamp("diagnosed_at"),
    field("clinician_id"),
    *PRACTITIONER_COLUMNS,
    field("visit_number"),
)

#: A shared document (CDA, WS/T 500): its registry metadata and size, never the content
#: (the document store keeps that). The author by id only.
DOCUMENT_COLUMNS: tuple[Column, ...] = (
    field("document_id"),
    field("document_type_code"),
    field("document_type_name"),
    field("document_code"),
    field("title"),
    timestamp("effective_time"),
    field("confidentiality_code"),
    field("set_id"),
    field("version_number"),
    field("replaces_document_id"),
    field("author_id"),
    *PRACTITIONER_COLUMNS,
    field("custodian_id"),
    field("custodian_name"),
    field("visit_number"),
    field("content_type"),
    field("content_sha256"),
    size("content"),
)

#: A dead letter (``hutong.dlq``): what failed where, with the raw bytes, and where the
#: letter itself sits on ``hutong.dlq`` (a retry reads its bytes from there).
DEAD_LETTER_COLUMNS: tuple[Column, ...] = (
    field("dead_letter_id"),
    field("stage"),
    field("reason"),
    field("error_code"),
    field("location"),
    field("facility_id"),
    field("source_topic"),
    field("source_partition"),
    field("source_offset"),
    timestamp("failed_at"),
    size("payload"),
    Column("payload", lambda event: _as_bytes(event["payload"])),
    located("dlq_partition"),
    located("dlq_offset"),
)

def _link_id(change: Event) -> str:
    text = "|".join(str(change[k]) for k in ("facility_id", "source_patient_id", "sequence",
                                              "empi_id", "action"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


#: A link change (hutong.empi.links): the id is derived, so a replay collapses.
PATIENT_LINK_COLUMNS: tuple[Column, ...] = (
    Column("link_id", _link_id),
    field("facility_id"),
    field("source_patient_id"),
    field("empi_id"),
    field("action"),
    field("score"),
    field("reason"),
    field("decided_by"),
    field("previous_empi_id"),
    timestamp("linked_at"),
    field("sequence"),
)

#: A review pair (hutong.empi.review), one row per status it reaches.
EMPI_REVIEW_COLUMNS: tuple[Column, ...] = (
    Column("review_row_id", lambda pair: f"{pair['pair_id']}:{pair['status']}"),
    field("pair_id"),
    field("left_facility_id"),
    field("left_source_patient_id"),
    field("right_facility_id"),
    field("right_source_patient_id"),
    field("left_empi_id"),
    field("right_empi_id"),
    field("score"),
    field("comparison"),
    field("status"),
    timestamp("created_at"),
    field("decided_by"),
    timestamp("decided_at"),
)

def _digest(*names: str) -> Callable[[Event], str]:
    """A row id derived from the record's own fields: a repeat lands on the same row."""
    def get(record: Event) -> str:
        text = "|".join(str(record[n]) for n in names)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    return get


#: A code map entry and each later version of it (hutong.terminology.maps).
CONCEPT_MAP_COLUMNS: tuple[Column, ...] = (
    Column("map_row_id", _digest("facility_id", "source_system", "local_code", "target_system",
                                 "target_code", "map_version", "updated_at", "deleted")),
    field("facility_id"),
    field("source_system"),
    field("local_code"),
    field("target_system"),
    field("target_code"),
    field("target_display"),
    field("map_version"),
    timestamp("updated_at"),
    field("deleted"),
)

#: A local code no map covered, counted over one batch (hutong.terminology.unmapped).
UNMAPPED_CODE_COLUMNS: tuple[Column, ...] = (
    Column("unmapped_row_id", _digest("facility_id", "code_system", "local_code", "count",
                                      "first_seen", "last_seen")),
    field("facility_id"),
    field("code_system"),
    field("local_code"),
    field("local_display"),
    field("count"),
    timestamp("first_seen"),
    timestamp("last_seen"),
)

#: A version of a practitioner registry record (hutong.registry.practitioners), without the
#: ID number: the hub keeps it, the warehouse its keyed pseudonym (``id_pseudonym``).
PRACTITIONER_REGISTRY_COLUMNS: tuple[Column, ...] = (
    Column("practitioner_row_id", _digest("practitioner_id", "version", "changed_at")),
    *(field(name) for name in (
        "practitioner_id", "facility_id", "local_id", "name", "id_pseudonym",
        "certificate_number", "department", "role", "title", "status", "warnings", "version")),
    timestamp("changed_at"),
    field("changed_by"),
    field("reason"),
    field("file_digest"),
)

#: A clinician the registry did not know, counted over one batch of one event type
#: (hutong.registry.unknown-practitioners).
UNKNOWN_PRACTITIONER_COLUMNS: tuple[Column, ...] = (
    Column("unknown_row_id", _digest("facility_id", "local_id", "name", "role", "event_type",
                                     "count", "first_seen", "last_seen")),
    field("facility_id"),
    field("local_id"),
    field("name"),
    field("role"),
    field("event_type"),
    field("count"),
    timestamp("first_seen"),
    timestamp("last_seen"),
)

#: One state of a critical-value alert (hutong.alerts.critical), without the patient's name.
CRITICAL_ALERT_COLUMNS: tuple[Column, ...] = (
    Column("alert_event_id", lambda alert: (f"{alert['alert_id']}:{alert['status']}:"
                                            f"{alert['escalation_level']}")),
    *(field(name) for name in (
        "alert_id", "event_id", "empi_id", "facility_id", "source_patient_id", "visit_number",
        "source_event_type", "test_code", "test_name", "standard_code", "value", "unit",
        "standard_value", "standard_unit", "reference_range")),
    timestamp("observed_at"),
    *(field(name) for name in ("rule_id", "rule_description", "rule_set", "severity",
                               "ordering_provider_id", "ordering_department")),
    timestamp("raised_at"),
    field("status"),
    field("escalation_level"),
    field("notify"),
    timestamp("deadline"),
    timestamp("status_at"),
    field("acknowledged_by"),
    timestamp("acknowledged_at"),
    field("ack_channel"),
)


def _event_table(table: str, columns: tuple[Column, ...]) -> TableSpec:
    """An event table: the ADR 0001 header, its own columns, replaced when processed again
    with another map version or another link to the practitioner registry."""
    names = {column.name for column in columns}
    linked = tuple(name for name in ("practitioner_id", "practitioner_status") if name in names)
    return TableSpec(table, "event_id", HEADER_COLUMNS + columns, ("map_version", *linked))


#: Event schema name -> the table it lands in.
TABLES: dict[str, TableSpec] = {
    **{kind: _event_table(table, columns) for kind, table, columns in (
        ("patient", "patients", PATIENT_COLUMNS),
        ("encounter", "encounters", ENCOUNTER_COLUMNS),
        ("lab-result", "lab_results", LAB_RESULT_COLUMNS),
        ("imaging-report", "imaging_reports", IMAGING_REPORT_COLUMNS),
        ("order", "orders", ORDER_COLUMNS),
        ("medication", "medications", MEDICATION_COLUMNS),
        ("diagnosis", "diagnoses", DIAGNOSIS_COLUMNS),
        ("document", "documents", DOCUMENT_COLUMNS),
    )},
    "dead-letter": TableSpec("dead_letters", "dead_letter_id", DEAD_LETTER_COLUMNS,
                             position_fields=("dlq_partition", "dlq_offset")),
    "empi-link": TableSpec("patient_links", "link_id", PATIENT_LINK_COLUMNS),
    "empi-review": TableSpec("empi_reviews", "review_row_id", EMPI_REVIEW_COLUMNS),
    "concept-map": TableSpec("concept_maps", "map_row_id", CONCEPT_MAP_COLUMNS),
    "unmapped-code": TableSpec("unmapped_codes", "unmapped_row_id", UNMAPPED_CODE_COLUMNS),
    "critical-alert": TableSpec("critical_alert_events", "alert_event_id",
                                CRITICAL_ALERT_COLUMNS),
    "practitioner": TableSpec("practitioners", "practitioner_row_id",
                              PRACTITIONER_REGISTRY_COLUMNS),
    "unknown-practitioner": TableSpec("unknown_practitioners", "unknown_row_id",
                                      UNKNOWN_PRACTITIONER_COLUMNS),
}
