"""``/api/v1/practitioners``: the practitioner registry, read by analysts, changed by admins.

A practitioner's id is ``facility|staff id``; in a path it is the two parts,
``/api/v1/practitioners/{facility_id}/{local_id}``. Every change (``POST``,
``PATCH``, ``POST .../retire``) is checked (GB 11643 ID number, certificate number,
role, a facility the facility registry knows), audited, published to
``hutong.registry.practitioners`` and answered once Kafka has it; the stream
workers link events to it from their next read of the topic. A ``version`` in
the body makes a change conditional (409 when it changed since).

Listings never show an ID number: its keyed pseudonym stands for it.
``GET /unknown`` lists the clinicians events named whom the registry does not
know, from the warehouse, most frequent first: what to register next.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hutong.api.auth import acting_as, record_action, require
from hutong.api.facilities import By, Reason, Retirement, Version, change_lock
from hutong.api.sql import jsonable, warehouse_of
from hutong.errors import DeliveryError
from hutong.keys import keyed_pseudonym
from hutong.registry.practitioners import (
    Practitioner,
    PractitionerFeed,
    PractitionerRecord,
    Pseudonymise,
    changed,
    publish_practitioners,
    record_of,
)
from hutong.users import Principal
from hutong.yamlfile import validation_problems
from sinks.warehouse import Warehouse

__all__ = ["router"]

_admin = require("admin")
router = APIRouter(prefix="/api/v1/practitioners", tags=["practitioners"],
                   dependencies=[Depends(require("admin", "analyst"))])

_UNKNOWN = """
SELECT facility_id, local_id, name, role, event_type, count, first_seen, last_seen, registered
FROM unknown_practitioner_summary
WHERE ({facility:String} = '' OR facility_id = {facility:String})
  AND ({include_registered:Bool} OR NOT registered)
ORDER BY count DESC, facility_id, local_id
LIMIT {limit:UInt32}
"""


class Change(BaseModel):
    """A change: the fields to set, and who and why."""

    model_config = ConfigDict(extra="forbid")

    practitioner: dict[str, Any] = Field(default_factory=dict, description=(
        "Fields as the practitioner file writes them (facility_id, local_id, name, id_number, "
        "certificate_number, department, role, title)."))
    by: By = None
    reason: Reason = None
    version: Version = None


def _feed(request: Request) -> PractitionerFeed:
    feed: PractitionerFeed | None = getattr(request.app.state, "practitioner_feed", None)
    if feed is None or request.app.state.producer is None:
        raise HTTPException(503, "this process does not keep the practitioner registry")
    return feed


def _pseudonymise(request: Request) -> Pseudonymise:
    key: bytes | None = request.app.state.pseudonym_key
    if key is None:
        raise HTTPException(503, "this process has no pseudonym key")
    return lambda number: keyed_pseudonym(key, number, "practitioner")


@router.get("")
def practitioners(request: Request, facility: str = "", certificate: str = "",
                  status: Literal["active", "retired", "all"] = "active",
                  limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
                  ) -> list[dict[str, Any]]:
    """Registered practitioners (active by default), by id; filtered by facility or by
    practising-certificate number."""
    chosen = []
    for _, record in sorted(_feed(request).records.items()):
        p = record.practitioner
        if ((status == "all" or p.status == status)
                and (not facility or p.facility_id == facility)
                and (not certificate or p.certificate_number == certificate.strip().upper())):
            chosen.append(record.shown())
            if len(chosen) >= limit:
                break
    return chosen


@router.get("/unknown")
def unknown(warehouse: Annotated[Warehouse, Depends(warehouse_of)], facility: str = "",
            include_registered: bool = False,
            limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> list[dict[str, Any]]:
    """Clinicians events named whom the registry did not know, most frequent first; those
    registered since are left out unless ``include_registered``."""
    columns, rows = warehouse.query_rows(_UNKNOWN, {
        "facility": facility, "include_registered": include_registered, "limit": limit},
        read_only=True)
    return [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]


@router.get("/{facility_id}/{local_id}")
def practitioner(facility_id: str, local_id: str, request: Request) -> dict[str, Any]:
    """One practitioner, active or retired."""
    return _current(request, facility_id, local_id, None).shown()


def _current(request: Request, facility_id: str, local_id: str,
             version: int | None) -> PractitionerRecord:
    held = _feed(request).records.get(f"{facility_id}|{local_id}")
    if held is None:
        raise HTTPException(404, f"no practitioner {local_id!r} of facility {facility_id!r} "
                                 "in the registry")
    if version is not None and version != held.version:
        raise HTTPException(409, f"practitioner {held.practitioner_id} is at version "
                                 f"{held.version}, not {version}: read it again and redo "
                                 "the change")
    return held


def _validated(request: Request, data: dict[str, Any]) -> Practitioner:
    try:
        practitioner = Practitioner.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, validation_problems(exc, root="practitioner")) from None
    facilities = getattr(request.app.state, "registry", None)
    if facilities is not None and len(facilities) and \
            facilities.get(practitioner.facility_id) is None:
        raise HTTPException(422, f"practitioner.facility_id: no facility "
                                 f"{practitioner.facility_id!r} in the facility registry")
    return practitioner


async def _publish(request: Request, principal: Principal, action: str,
                   record: PractitionerRecord) -> dict[str, Any]:
    record_action(request, f"practitioner.{action}", principal, acting_as=record.changed_by,
                  practitioner_id=record.practitioner_id, version=record.version)
    try:
        await publish_practitioners(request.app.state.producer, [record], request.app.state.ids)
    except DeliveryError as exc:
        record_action(request, f"practitioner.{action}.failed", principal,
                      practitioner_id=record.practitioner_id)
        raise HTTPException(503, f"Kafka did not take the change: {exc}") from exc
    _feed(request).put(record)
    return record.shown()


@router.post("", status_code=202)
async def add(body: Change, request: Request,
              principal: Annotated[Principal, Depends(_admin)]) -> dict[str, Any]:
    """Register a practitioner at a facility."""
    by = acting_as(principal, body.by or principal.name)
    practitioner = _validated(request, body.practitioner)
    async with change_lock(request, "practitioner"):
        if practitioner.key in _feed(request).records:
            raise HTTPException(409, f"practitioner {practitioner.key} is registered already "
                                     "(change them with PATCH)")
        record = record_of(practitioner, _pseudonymise(request), version=1,
                           at=datetime.now(UTC), by=by, reason=body.reason)
        return await _publish(request, principal, "add", record)


@router.patch("/{facility_id}/{local_id}", status_code=202)
async def update(facility_id: str, local_id: str, body: Change, request: Request,
                 principal: Annotated[Principal, Depends(_admin)]) -> dict[str, Any]:
    """Change some fields (``status: active`` brings a retired practitioner back)."""
    by = acting_as(principal, body.by or principal.name)
    if (body.practitioner.get("facility_id", facility_id) != facility_id
            or body.practitioner.get("local_id", local_id) != local_id):
        raise HTTPException(422, "a practitioner's facility and staff id cannot change: "
                                 "register the new one and retire this one")
    async with change_lock(request, "practitioner"):
        held = _current(request, facility_id, local_id, body.version)
        practitioner = _validated(request, {**held.practitioner.model_dump(),
                                            **body.practitioner})
        if practitioner == held.practitioner:
            return held.shown()
        action = "update" if practitioner.status == held.practitioner.status else (
            "retire" if practitioner.status == "retired" else "reactivate")
        return await _publish(request, principal, action, changed(
            held, practitioner, _pseudonymise(request), by=by, reason=body.reason))


@router.post("/{facility_id}/{local_id}/retire", status_code=202)
async def retire(facility_id: str, local_id: str, body: Retirement, request: Request,
                 principal: Annotated[Principal, Depends(_admin)]) -> dict[str, Any]:
    """Retire a practitioner: events still name them, marked retired; the record stays."""
    by = acting_as(principal, body.by or principal.name)
    async with change_lock(request, "practitioner"):
        held = _current(request, facility_id, local_id, body.version)
        if not held.active:
            raise HTTPException(409, f"practitioner {held.practitioner_id} is retired already")
        practitioner = held.practitioner.model_copy(update={"status": "retired"})
        return await _publish(request, principal, "retire", changed(
            held, practitioner, _pseudonymise(request), by=by, reason=body.reason))
