"""``POST /api/v1/ingest/federation``: standardized events from a platform below.

A district hub's forwarder (:mod:`hutong.federation.forwarder`) posts batches here
with the API key this hub gave it: the key must belong to a registered facility of
kind 区域卫生信息平台 (a platform, not a hospital). The body::

    {"platform": "QSX-PLATFORM",
     "schemas": {"lab-result": "<the Avro schema the values were written with>"},
     "events": [{"topic": "hutong.events.lab-result", "schema": "lab-result",
                 "key": "<base64>", "value": "<base64 Confluent wire bytes>"}, ...]}

Every event must decode as its topic's type: by Avro schema resolution from the
sender's schema when the body carries it (``"schemas": {"lab-result": "<schema
text>"}``, so hubs on different releases understand each other), else with this
hub's. An event may not speak for a facility registered at this hub unless that
facility's ``community`` is the sending platform (it sends to this hub itself
otherwise). All of a batch is checked before any is written: a batch with
events this hub will never take is answered 422 with ``refused`` (``index`` and
``reason`` of each, no values), and nothing of it is written, so the sender
dead-letters those and sends the rest again. Otherwise the events are written to
``hutong.events.<type>`` (keyed as this hub keys them), and answered 202 once
Kafka has them; this hub's stream workers link them to its own resident index.
Delivery is at least once: an event sent again after a lost answer is collapsed
by the sinks on its ``event_id``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fastavro import parse_schema

from connectors.facilities import FacilityRegistry
from connectors.http.ingest import _AUTH_HEADERS, Auth, Key, _arrival
from hutong.errors import DeliveryError, SchemaError, WireFormatError
from producers.kafka import OutRecord
from producers.records import event_key
from schemas import catalog, wire
from schemas.registry import EMBEDDED, Resolver

__all__ = ["PLATFORM_KIND", "router"]

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])

#: The facility kind whose API key may forward events (docs/federation.md).
PLATFORM_KIND = "区域卫生信息平台"
#: Events in one request at most.
MAX_EVENTS = 5000
_EVENT_TOPICS = {f"hutong.events.{kind}": kind for kind in catalog.EVENT_TYPES}


#: Schemas a body may carry, and how large each may be.
_MAX_SCHEMAS = 16
_MAX_SCHEMA_BYTES = 256 * 1024


class _Refused(Exception):
    """A body this endpoint will not read at all (400)."""


def _writer_schemas(given: Any) -> dict[str, dict[str, Any]]:
    """The sender's schemas, parsed: name -> fastavro schema."""
    if given is None:
        return {}
    if not isinstance(given, dict) or len(given) > _MAX_SCHEMAS:
        raise _Refused(f"schemas: an object of at most {_MAX_SCHEMAS} schemas")
    parsed: dict[str, dict[str, Any]] = {}
    for name, text in given.items():
        if name not in catalog.EVENT_TYPES or not isinstance(text, str) or \
                len(text) > _MAX_SCHEMA_BYTES:
            raise _Refused(f"schemas: {str(name)[:40]!r} is not an event schema of at most "
                           f"{_MAX_SCHEMA_BYTES} bytes")
        try:
            schema = parse_schema(json.loads(text), _write_hint=False)
        except Exception:  # anything fastavro or json refuses in a sender's schema
            raise _Refused(f"schemas: {name!r} is not an Avro schema") from None
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise _Refused(f"schemas: {name!r} is not a record schema")
        parsed[name] = schema
    return parsed


def _checked(item: Any, writers: dict[str, dict[str, Any]], ids: Resolver,
             may_send: Callable[[str], bool]) -> tuple[OutRecord | None, str | None]:
    """The record to write for one event of the body, or why it is refused."""
    if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
        return None, "not an object with a topic"
    topic = item["topic"]
    if topic not in _EVENT_TOPICS:
        return None, f"topic {topic[:80]!r} is not an event topic (hutong.events.<type>)"
    kind = _EVENT_TOPICS[topic]
    try:
        value = base64.b64decode(item.get("value") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        return None, "value is not base64"
    try:
        writer = writers.get(item.get("schema") or "")
        if writer is not None:
            if item["schema"] != kind:
                return None, f"a {item['schema']} record does not go on {topic}"
            event = wire.decode_written_with(value, writer, ids.for_topic(topic))
        else:  # no schema sent: this hub's version of it
            entry, event = wire.decode(value, ids.by_id)
            if entry.name != kind:
                return None, f"a {entry.name} record does not go on {topic}"
    except (WireFormatError, SchemaError) as exc:
        return None, str(exc)
    if event.get("event_type") != kind:
        return None, f"an event of type {str(event.get('event_type'))[:40]!r} on {topic}"
    if not may_send(str(event.get("facility_id"))):
        return None, (f"facility {str(event.get('facility_id'))[:64]!r} sends to this hub "
                      "itself, or belongs to another platform")
    return OutRecord(topic, event_key(event), wire.encode(ids.for_topic(topic), event)), None


def _read(payload: bytes, ids: Resolver, may_send: Callable[[str], bool]
          ) -> tuple[list[OutRecord], list[dict[str, Any]]]:
    """The records of a body, and the events refused (index and reason); in a thread."""
    try:
        body = json.loads(payload)
        events = body["events"]
        if not isinstance(events, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise _Refused("the body is not {\"platform\": ..., \"events\": [...]}") from None
    if len(events) > MAX_EVENTS:
        raise _Refused(f"at most {MAX_EVENTS} events in one request")
    writers = _writer_schemas(body.get("schemas"))
    records: list[OutRecord] = []
    refused: list[dict[str, Any]] = []
    for position, item in enumerate(events):
        record, reason = _checked(item, writers, ids, may_send)
        if record is None:
            refused.append({"index": position, "reason": reason})
        else:
            records.append(record)
    return records, refused


@router.post("/federation", status_code=202, responses=_AUTH_HEADERS)
async def ingest_federation(request: Request, authorization: Auth = None,
                            x_api_key: Key = None) -> JSONResponse:
    """Events a platform below forwards (see docs/federation.md): all or none of a batch."""
    intake, peer, payload = await _arrival(request, authorization, x_api_key,
                                           limit=request.app.state.max_body_bytes)
    registry: FacilityRegistry = request.app.state.registry
    facility = registry.get(peer.facility_id or "")
    if facility is None or facility.kind != PLATFORM_KIND:
        intake.refuse_connection(peer, "federation: the key is not a platform's", status=403)
        raise HTTPException(403, f"only a platform (a facility of kind {PLATFORM_KIND}) may "
                                 "forward events")
    platform = facility.id

    def may_send(facility_id: str) -> bool:
        """Not one of this hub's own facilities, unless it belongs to this platform."""
        registered = registry.get(facility_id)
        return registered is None or registered.community == platform

    ids: Resolver = getattr(request.app.state, "ids", None) or EMBEDDED
    try:
        records, refused = await asyncio.to_thread(_read, payload, ids, may_send)
    except _Refused as exc:
        intake.refuse_connection(peer, f"federation: {exc}", status=400)
        raise HTTPException(400, str(exc)) from None
    if refused:
        intake.refuse_connection(peer, f"federation: {len(refused)} event(s) refused",
                                 status=422)
        return JSONResponse({"detail": f"{len(refused)} event(s) refused; nothing was written",
                             "refused": refused}, status_code=422)
    try:
        await intake.receive_forwarded(peer, records)
    except DeliveryError as exc:
        return JSONResponse({"detail": f"Kafka did not confirm: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})
    return JSONResponse({"accepted": len(records)}, status_code=202)
