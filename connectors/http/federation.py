"""``POST /api/v1/ingest/federation``: standardized events from a platform below.

A district hub's forwarder (:mod:`hutong.federation.forwarder`) posts batches here
with the API key this hub gave it: the key must belong to a registered facility of
kind 区域卫生信息平台 (a platform, not a hospital). The body::

    {"platform": "QSX-PLATFORM",
     "events": [{"topic": "hutong.events.lab-result", "key": "<base64>",
                 "value": "<base64 Confluent wire bytes>"}, ...]}

Every event must decode with this hub's schema of its topic. All of a batch is
checked before any is written: a batch with events this hub will never take is
answered 422 with ``refused`` (``index`` and ``reason`` of each, no values), and
nothing of it is written, so the sender dead-letters those and sends the rest
again. Otherwise the events are written to ``hutong.events.<type>`` (keyed as this
hub keys them), and answered 202 once Kafka has them; this hub's stream workers
link them to its own resident index. Delivery is at least once: an event sent
again after a lost answer is collapsed by the sinks on its ``event_id``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

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


def _checked(position: int, item: Any, ids: Resolver) -> tuple[OutRecord | None, str | None]:
    """The record to write for one event of the body, or why it is refused."""
    if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
        return None, "not an object with a topic"
    topic = item["topic"]
    if topic not in _EVENT_TOPICS:
        return None, f"topic {topic[:80]!r} is not an event topic (hutong.events.<type>)"
    try:
        value = base64.b64decode(item.get("value") or "", validate=True)
        entry, event = wire.decode(value, ids.by_id)
    except (binascii.Error, ValueError, TypeError):
        return None, "value is not base64"
    except (WireFormatError, SchemaError) as exc:
        return None, str(exc)
    if entry.name != _EVENT_TOPICS[topic] or event.get("event_type") != entry.name:
        return None, f"a {entry.name} record does not go on {topic}"
    return OutRecord(topic, event_key(event), wire.encode(ids.for_topic(topic), event)), None


@router.post("/federation", status_code=202, responses=_AUTH_HEADERS)
async def ingest_federation(request: Request, authorization: Auth = None,
                            x_api_key: Key = None) -> JSONResponse:
    """Events a platform below forwards (see docs/federation.md): all or none of a batch."""
    intake, peer, payload = await _arrival(request, authorization, x_api_key,
                                           limit=request.app.state.max_body_bytes)
    facility = request.app.state.registry.get(peer.facility_id or "")
    if facility is None or facility.kind != PLATFORM_KIND:
        intake.refuse_connection(peer, "federation: the key is not a platform's", status=403)
        raise HTTPException(403, f"only a platform (a facility of kind {PLATFORM_KIND}) may "
                                 "forward events")
    try:
        body = json.loads(payload)
        events = body["events"]
        if not isinstance(events, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise HTTPException(400, "the body is not {\"platform\": ..., \"events\": [...]}"
                            ) from None
    if len(events) > MAX_EVENTS:
        raise HTTPException(413, f"at most {MAX_EVENTS} events in one request")
    ids: Resolver = getattr(request.app.state, "ids", None) or EMBEDDED
    records: list[OutRecord] = []
    refused: list[dict[str, Any]] = []
    for position, item in enumerate(events):
        record, reason = _checked(position, item, ids)
        if record is None:
            refused.append({"index": position, "reason": reason})
        else:
            records.append(record)
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
