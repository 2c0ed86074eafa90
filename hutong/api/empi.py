"""``/api/v1/empi``: the review work list and reviewers' decisions.

The review queue and the links are read from the warehouse (``empi_reviews``,
``patient_links``); a decision is written to ``hutong.empi.decisions``, which
the one EMPI resolver applies in order (ADR 0004), so the answer is ``202
Accepted`` with the decision's id: the changes it makes appear on
``hutong.empi.links`` and in ``patient_links`` a moment later.

Only admins decide (``admin`` role). Who decided travels with every link change
the decision makes: the caller's user name; under a shared identity (this
machine in development, the hub's ``api_token``) the ``reviewer`` the request
names. Every decision is in the audit log (who, which ids, the decision id) before it
is published; the reason text stays out of it (it is free text).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from hutong.api.auth import acting_as, caller, record_action, require
from hutong.api.sql import jsonable, warehouse_of
from hutong.errors import DeliveryError
from hutong.users import Principal
from producers.kafka import AsyncProducer, OutRecord
from schemas import wire
from schemas.registry import Resolver
from sinks.warehouse import Warehouse

__all__ = ["DECISIONS_TOPIC", "Decision", "Merge", "ReviewDecision", "router"]

DECISIONS_TOPIC = "hutong.empi.decisions"

_REVIEWS = """
SELECT pair_id, argMax(status, tuple(status != 'open', ingested_at)) AS status,
       any(score) AS score, any(left_facility_id) AS left_facility_id,
       any(left_source_patient_id) AS left_source_patient_id,
       any(right_facility_id) AS right_facility_id,
       any(right_source_patient_id) AS right_source_patient_id,
       any(left_empi_id) AS left_empi_id, any(right_empi_id) AS right_empi_id,
       any(comparison) AS comparison, min(created_at) AS created_at,
       max(decided_by) AS decided_by, max(decided_at) AS decided_at
FROM empi_reviews
{where}
GROUP BY pair_id
HAVING {status_filter}
ORDER BY score DESC, created_at
LIMIT {{limit:UInt32}}
"""

_LINKS = """
SELECT facility_id, source_patient_id, empi_id, action, decided_by, linked_at
FROM current_patient_links
WHERE empi_id = {empi_id:String}
ORDER BY facility_id, source_patient_id
"""

Reviewer = Annotated[str, Field(min_length=1, max_length=128,
                                description="Who decides: the reviewer's user id.")]
Reason = Annotated[str | None, Field(None, max_length=1000,
                                     description="Why, without patient data.")]


class ReviewDecision(BaseModel):
    decision: Literal["accept", "reject"]
    reviewer: Reviewer
    reason: Reason = None


class Merge(BaseModel):
    survivor_empi_id: str = Field(..., min_length=1, max_length=64)
    loser_empi_id: str = Field(..., min_length=1, max_length=64)
    reviewer: Reviewer
    reason: Reason = None


class Decision(BaseModel):
    decision_id: str
    action: str
    status: Literal["accepted"] = "accepted"


router = APIRouter(prefix="/api/v1/empi", tags=["empi"], dependencies=[Depends(require("admin"))])


def _rows(warehouse: Warehouse, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    columns, rows = warehouse.query_rows(sql, parameters, read_only=True)
    return [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]


@router.get("/reviews")
def reviews(warehouse: Annotated[Warehouse, Depends(warehouse_of)],
            status: Literal["open", "linked", "rejected", "all"] = "open",
            limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    """Pairs that may be one person, most likely first (``status=open`` by default)."""
    return _rows(warehouse, _review_query(status), {"limit": limit})


def _review_query(status: str, pair: bool = False) -> str:
    where = "WHERE pair_id = {pair_id:String}" if pair else ""
    status_filter = "1" if status == "all" else f"status = '{status}'"
    return _REVIEWS.format(where=where, status_filter=status_filter)


@router.get("/patients/{empi_id}/links")
def links(empi_id: str, warehouse: Annotated[Warehouse, Depends(warehouse_of)]
          ) -> list[dict[str, Any]]:
    """The facility records linked to an EMPI id now."""
    return _rows(warehouse, _LINKS, {"empi_id": empi_id})


@router.post("/reviews/{pair_id}", status_code=202)
async def decide(pair_id: str, body: ReviewDecision, request: Request,
                 warehouse: Annotated[Warehouse, Depends(warehouse_of)]) -> Decision:
    """Accept (merge the two EMPI ids) or reject (keep them apart) an open pair."""
    found = _rows(warehouse, _review_query("all", pair=True), {"pair_id": pair_id, "limit": 1})
    if not found:
        raise HTTPException(404, f"no review pair {pair_id}")
    if found[0]["status"] != "open":
        raise HTTPException(409, f"pair {pair_id} is already {found[0]['status']}")
    return await _publish(request, body.decision, caller(request), body.reviewer, body.reason,
                          pair_id=pair_id)


@router.post("/merges", status_code=202)
async def merge(body: Merge, request: Request) -> Decision:
    """Merge ``loser_empi_id`` into ``survivor_empi_id`` (history kept for unmerge)."""
    return await _publish(request, "merge", caller(request), body.reviewer, body.reason,
                          survivor=body.survivor_empi_id, loser=body.loser_empi_id)


@router.post("/unmerges", status_code=202)
async def unmerge(body: Merge, request: Request) -> Decision:
    """Split ``loser_empi_id`` off ``survivor_empi_id`` again, undoing their last merge."""
    return await _publish(request, "unmerge", caller(request), body.reviewer, body.reason,
                          survivor=body.survivor_empi_id, loser=body.loser_empi_id)


async def _publish(request: Request, action: str, principal: Principal, named: str,
                   reason: str | None, *, pair_id: str | None = None,
                   survivor: str | None = None, loser: str | None = None) -> Decision:
    reviewer = acting_as(principal, named)
    producer: AsyncProducer | None = request.app.state.producer
    ids: Resolver = request.app.state.ids
    if producer is None:
        raise HTTPException(503, "this process cannot write decisions to Kafka")
    decision_id = str(uuid.uuid4())
    where = {"pair_id": pair_id} if pair_id else {"survivor": survivor, "loser": loser}
    record_action(request, f"empi.{action}", principal, acting_as=reviewer,
                  decision_id=decision_id, **where)
    decision = {"decision_id": decision_id, "action": action, "pair_id": pair_id,
                "survivor_empi_id": survivor, "loser_empi_id": loser, "decided_by": reviewer,
                "reason": reason, "decided_at": datetime.now(UTC)}
    value = wire.encode(ids.for_topic(DECISIONS_TOPIC), decision)
    try:
        await producer.send([OutRecord(DECISIONS_TOPIC, decision_id.encode(), value)])
    except DeliveryError as exc:
        record_action(request, f"empi.{action}.failed", principal, decision_id=decision_id)
        raise HTTPException(503, f"Kafka did not take the decision: {exc}") from exc
    return Decision(decision_id=decision_id, action=action)
