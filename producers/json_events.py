"""Canonical events sent as JSON over HTTP (``POST /api/v1/ingest/json``), checked and completed.

For systems that can build hutong's events themselves (a regional app, a
facility's own integration layer) instead of HL7 v2. The body::

    {
      "message_id": "HIS-20261122-000123",     # required: the sender's id of this
                                                # submission; a resend reuses it
      "source_system": "HIS",                  # optional
      "events": [
        {"event_type": "lab-result",
         "patient": {"source_patient_id": "M1", "name": "测试甲", "sex": "2",
                     "birth_date": "1980-01-01"},
         "occurred_at": "2026-11-22T09:30:00+08:00",
         "set_id": 1, "test_code": "GLU", "value_type": "NM", "value": "5.6", ...}
      ]
    }

Each event has the fields of its schema (``schemas/<event_type>.avsc``, see
docs/topics.md) except those hutong sets: ``event_id`` (from the facility, the
message id and the event's position, so a resend gives the same ids),
``facility_id`` (from the API key), ``message_control_id`` (the message id),
``received_at``, ``empi_id`` and ``map_version``. ``source_patient_id`` defaults
to the patient's. Timestamps are ISO 8601 with an offset; dates are ISO dates.
Documents go to ``/api/v1/ingest/cda`` instead.

Problems are ValidationErrors whose location is the JSON path
(``events[0].patient.birth_date``); they never quote the value.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hutong.errors import ValidationError, quoted
from producers.hl7v2.adapter import Adapted, envelope
from producers.hl7v2.types import MAX_YEAR, MIN_YEAR
from producers.idcard import checked_id_card
from producers.ids import event_id
from schemas import catalog, wire

__all__ = ["MAX_EVENTS", "SET_BY_HUTONG", "adapt_json"]

#: Events in one submission at most.
MAX_EVENTS = 1000
#: Header fields a sender may not set.
SET_BY_HUTONG = frozenset({"event_id", "facility_id", "message_control_id", "received_at",
                           "empi_id", "map_version", "codes", "unmapped", "standard_value",
                           "standard_unit", "practitioner_id", "practitioner_status"})
_JSON_TYPES = tuple(t for t in catalog.EVENT_TYPES if t != "document")
def _plausible(moment: dt.date, where: str) -> None:
    """The years HL7 v2 dates are held to (``producers.hl7v2.types``); outside them a value
    is a typo, and one near year 1 or 9999 cannot even be converted to UTC."""
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValidationError(f"year outside {MIN_YEAR}-{MAX_YEAR}", location=where, code="102")


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _convert(value: Any, schema: Any, where: str) -> Any:
    """JSON value -> what the Avro schema takes: ISO text to aware datetimes and dates."""
    branches = schema if isinstance(schema, list) else [schema]
    for branch in branches:
        logical = _logical(branch)
        if logical == "timestamp-millis" and isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValidationError("not an ISO 8601 timestamp", location=where,
                                      code="102") from None
            if moment.tzinfo is None:
                raise ValidationError("timestamp has no UTC offset", location=where, code="102")
            _plausible(moment, where)
            return moment
        if logical == "date" and isinstance(value, str):
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                raise ValidationError("not an ISO 8601 date", location=where,
                                      code="102") from None
            _plausible(day, where)
            return day
        if isinstance(branch, dict) and branch.get("type") == "record" and isinstance(
                value, dict):
            return _record(value, branch, where)
        if isinstance(branch, dict) and branch.get("type") == "array" and isinstance(
                value, list):
            return [_convert(item, branch["items"], f"{where}[{n}]")
                    for n, item in enumerate(value)]
    return value


def _record(value: dict[str, Any], schema: dict[str, Any], where: str) -> dict[str, Any]:
    fields = {f["name"]: f for f in schema["fields"]}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValidationError(f"unknown field {quoted(unknown[0])}", location=where, code="102")
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in value:
            out[name] = _convert(value[name], spec["type"], f"{where}.{name}")
        elif "default" in spec:
            out[name] = spec["default"] if not isinstance(spec["default"], list) else []
    return out


def _event(raw: Any, n: int, *, facility_id: str, message_id: str, source_system: str | None,
           received_at: dt.datetime) -> dict[str, Any]:
    where = f"events[{n}]"
    if not isinstance(raw, dict):
        raise ValidationError("event is not an object", location=where, code="102")
    kind = raw.get("event_type")
    if kind not in _JSON_TYPES:
        raise ValidationError(f"event_type must be one of {', '.join(_JSON_TYPES)}",
                              location=f"{where}.event_type", code="103")
    for name in sorted(SET_BY_HUTONG & set(raw)):
        raise ValidationError("field is set by hutong, not by the sender",
                              location=f"{where}.{name}", code="102")
    patient = raw.get("patient")
    if not isinstance(patient, dict) or not patient.get("source_patient_id"):
        raise ValidationError("patient.source_patient_id is required",
                              location=f"{where}.patient", code="101")
    entry = catalog.for_topic(f"hutong.events.{kind}")
    event = _record({
        **raw, "source_patient_id": raw.get("source_patient_id", patient["source_patient_id"]),
        "event_id": event_id(facility_id, message_id, f"E{n}"), "facility_id": facility_id,
        "message_control_id": message_id, "received_at": received_at, "empi_id": None,
        "map_version": None, "codes": [], "unmapped": [],
        "source_system": raw.get("source_system", source_system),
    }, entry.parsed, where)
    warnings = event.get("quality_warnings") or []
    if not isinstance(warnings, list):  # list() of a text would take it letter by letter
        raise ValidationError("expected an array of texts", location=f"{where}.quality_warnings",
                              code="102")
    event["quality_warnings"] = list(warnings)
    problem = wire.check(entry, event)  # types first: the ID card check below reads text
    if problem is None and (id_card := event["patient"].get("id_card_number")):
        event["patient"]["id_card_number"] = checked_id_card(
            id_card, f"{where}.patient.id_card_number", event["quality_warnings"])
        problem = wire.check(entry, event)
    if problem is not None:
        raise ValidationError(problem.reason, location=f"{where}.{problem.where}", code="102")
    return event


def adapt_json(adapted: Adapted, *, source_system: str | None = None) -> Adapted:
    """Read ``adapted.arrival.payload`` as a JSON submission from ``adapted.facility_id``.

    Fills ``adapted`` (events and envelope, or the error) and returns it; never raises
    for bad input.
    """
    assert adapted.facility_id is not None  # noqa: S101 - the API key named the facility
    adapted.content_type = "json"
    try:
        body = json.loads(adapted.arrival.payload)
    except (ValueError, UnicodeDecodeError):
        adapted.fail(ValidationError("body is not JSON", location="body", code="102"), "AR")
        return adapted
    except RecursionError:  # arrays or objects nested about a thousand deep
        adapted.fail(ValidationError("body nests too deeply", location="body", code="102"), "AR")
        return adapted
    message_id = body.get("message_id") if isinstance(body, dict) else None
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > 200:
        adapted.fail(ValidationError("message_id (text, at most 200 characters) is required",
                                     location="message_id", code="101"), "AR")
        return adapted
    adapted.control_id = message_id
    adapted.envelope = envelope(adapted)
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        adapted.fail(ValidationError(f"events must be a list of 1 to {MAX_EVENTS} events",
                                     location="events", code="101"), "AE")
        return adapted
    system = body.get("source_system", source_system)
    try:
        adapted.events = [
            _event(raw, n, facility_id=adapted.facility_id, message_id=message_id,
                   source_system=system if isinstance(system, str) else None,
                   received_at=adapted.arrival.received_at)
            for n, raw in enumerate(events)]
    except ValidationError as exc:
        adapted.events = []
        adapted.fail(exc, "AE")
    adapted.event_type = "json"
    return adapted
