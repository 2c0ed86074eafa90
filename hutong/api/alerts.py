"""``/api/v1/alerts``: open critical-value alerts, and their acknowledgement.

An acknowledgement is written to ``hutong.alerts.ack``; the stream worker that
tracks the alert closes it (no more escalation) and publishes the acknowledged
state on ``hutong.alerts.critical``, which the warehouse keeps with the
turnaround (``critical_alerts``). The answer is ``202 Accepted``: the loop
closes a moment later. An alert the warehouse shows acknowledged already is
answered 409. Clinicians and admins list and acknowledge alerts, each under their
own name (a shared identity names the person in ``by``). One the warehouse does
not show yet (it may be seconds old) is accepted; if the stream worker knows no
such alert either, the acknowledgement becomes a dead letter that says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from hutong.api.auth import acting_as, caller, record_action, require
from hutong.api.sql import jsonable, warehouse_of
from hutong.errors import DeliveryError
from producers.kafka import AsyncProducer, OutRecord
from schemas import wire
from schemas.registry import Resolver
from sinks.warehouse import Warehouse

__all__ = ["ACK_TOPIC", "Ack", "Acknowledged", "router"]

ACK_TOPIC = "hutong.alerts.ack"

_ALERTS = """
SELECT alert_id, state, facility_id, empi_id, source_patient_id, visit_number, test_code,
       test_name, standard_code, value, unit, rule_id, rule_description, escalation_level,
       ordering_provider_id, ordering_department, observed_at, raised_at, acknowledged_at,
       acknowledged_by, result_to_alert_s, alert_to_ack_s
FROM critical_alerts
WHERE ({state:String} = 'all' OR (state = 'acknowledged') = ({state:String} = 'acknowledged'))
  AND ({facility:String} = '' OR facility_id = {facility:String})
ORDER BY raised_at DESC
LIMIT {limit:UInt32}
"""

_ONE = "SELECT state FROM critical_alerts WHERE alert_id = {alert_id:String}"


class Ack(BaseModel):
    by: str = Field(..., min_length=1, max_length=128, description="Who acknowledges: user id.")
    channel: str = Field("api", max_length=32, description="web, api, cli, phone, sms, hl7.")
    note: str | None = Field(None, max_length=1000, description="A note, without patient data.")


class Acknowledged(BaseModel):
    alert_id: str
    status: Literal["accepted"] = "accepted"


router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"],
                   dependencies=[Depends(require("clinician", "admin"))])


@router.get("")
def alerts(warehouse: Annotated[Warehouse, Depends(warehouse_of)],
           state: Literal["open", "acknowledged", "all"] = "open", facility: str = "",
           limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    """Critical-value alerts, newest first: open ones (raised or escalated) by default."""
    columns, rows = warehouse.query_rows(_ALERTS, {"state": state, "facility": facility,
                                                   "limit": limit}, read_only=True)
    return [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]


@router.post("/{alert_id}/ack", status_code=202)
async def acknowledge(alert_id: str, body: Ack, request: Request,
                      warehouse: Annotated[Warehouse, Depends(warehouse_of)]) -> Acknowledged:
    """Acknowledge an alert: who, and when (now); escalation stops."""
    principal = caller(request)
    by = acting_as(principal, body.by)
    _, rows = warehouse.query_rows(_ONE, {"alert_id": alert_id}, read_only=True)
    if rows and rows[0][0] == "acknowledged":
        raise HTTPException(409, f"alert {alert_id} is acknowledged already")
    producer: AsyncProducer | None = request.app.state.producer
    ids: Resolver = request.app.state.ids
    if producer is None:
        raise HTTPException(503, "this process cannot write acknowledgements to Kafka")
    record_action(request, "alert.acknowledge", principal, acting_as=by, alert_id=alert_id,
                  channel=body.channel)
    record = {"alert_id": alert_id, "acknowledged_by": by,
              "acknowledged_at": datetime.now(UTC), "channel": body.channel, "note": body.note}
    try:
        await producer.send([OutRecord(ACK_TOPIC, alert_id.encode(),
                                       wire.encode(ids.for_topic(ACK_TOPIC), record))])
    except DeliveryError as exc:
        record_action(request, "alert.acknowledge.failed", principal, alert_id=alert_id)
        raise HTTPException(503, f"Kafka did not take the acknowledgement: {exc}") from exc
    return Acknowledged(alert_id=alert_id)
