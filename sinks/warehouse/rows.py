"""From event dicts to warehouse rows: one `TableSpec` per event type (pure, no I/O).

A table is a tuple of `Column`s, each a name and a getter over the event dict.
Every event table starts with `HEADER_COLUMNS` (the ADR 0001 header, with the
patient reduced to what analysis needs); adding an event type is one entry in
`TABLES` listing its own fields. The column names must match the migration
that creates the table.

Identity stays in the EMPI: names, ID card and health card numbers, phones,
addresses and the identifier list never reach the analytics tables. Of the
patient only `source_patient_id`, `empi_id`, sex and birth date are kept.

Timestamps must be timezone-aware (ADR 0001); a naive one is refused rather
than guessed at, since ClickHouse would read it in the server's zone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hutong.errors import WarehouseError

__all__ = ["HEADER_COLUMNS", "TABLES", "Column", "TableSpec", "field", "patient", "timestamp"]

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

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

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


def patient(name: str) -> Column:
    """A ``patient_<name>`` column from the event's `hutong.PatientIdentity`."""
    return Column(f"patient_{name}", lambda event: event["patient"][name])


def _payload_bytes(event: Event) -> bytes:
    payload = event["payload"]
    return payload.encode() if isinstance(payload, str) else bytes(payload)


HEADER_COLUMNS: tuple[Column, ...] = (
    field("event_id"),
    field("facility_id"),
    field("source_system"),
    field("message_control_id"),
    field("source_patient_id"),
    field("empi_id"),
    patient("sex"),
    patient("birth_date"),
    timestamp("occurred_at"),
    timestamp("received_at"),
    field("quality_warnings"),
    field("map_version"),
)

LAB_RESULT_COLUMNS: tuple[Column, ...] = (
    field("set_id"),
    field("placer_order_number"),
    field("filler_order_number"),
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
    field("admit_source"),
    field("admit_reason"),
    timestamp("admitted_at"),
    timestamp("discharged_at"),
    field("discharge_disposition"),
)

#: A dead letter (``hutong.dlq``): what failed where, with the raw bytes.
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
    Column("payload_size", lambda event: len(_payload_bytes(event))),
    Column("payload", _payload_bytes),
)

#: Event schema name -> the table it lands in.
TABLES: dict[str, TableSpec] = {
    "patient": TableSpec("patients", "event_id", HEADER_COLUMNS + PATIENT_COLUMNS),
    "encounter": TableSpec("encounters", "event_id", HEADER_COLUMNS + ENCOUNTER_COLUMNS),
    "lab-result": TableSpec("lab_results", "event_id", HEADER_COLUMNS + LAB_RESULT_COLUMNS),
    "dead-letter": TableSpec("dead_letters", "dead_letter_id", DEAD_LETTER_COLUMNS),
}
