"""``/api/v1/facilities``: the facility registry, read by analysts and changed by admins.

Every change (``POST`` a facility, ``PATCH`` one, ``POST .../retire``) is checked
(GB 32100 USCC, GB 11714 organisation code, GB/T 2260 region, level and kind from
their lists, certificate names and API keys no other facility holds), recorded in
the audit log, published to ``hutong.registry.facilities`` and answered once Kafka
has it; this process applies it at once, the others on their next read of the
topic. A ``version`` in the body makes the change conditional: 409 when the
facility has changed since that version was read (two admins editing at once).

Listings show how a facility connects but never its API key hashes: their count.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.facilities import Facility, FacilityRegistry
from hutong.api.auth import acting_as, record_action, require
from hutong.errors import DeliveryError
from hutong.registry.facilities import FacilityFeed, FacilityRecord, changed, publish_facilities
from hutong.users import Principal
from hutong.yamlfile import validation_problems

__all__ = ["router"]

_admin = require("admin")
router = APIRouter(prefix="/api/v1/facilities", tags=["facilities"],
                   dependencies=[Depends(require("admin", "analyst"))])

By = Annotated[str | None, Field(None, min_length=1, max_length=128,
                                 description="Who makes the change (under a shared identity).")]
Reason = Annotated[str | None, Field(None, max_length=1000, description="Why.")]
Version = Annotated[int | None, Field(None, ge=1, description=(
    "The version the change is based on: 409 if the facility changed since."))]


class Change(BaseModel):
    """A change: the fields to set (any of the registry file's), and who and why."""

    model_config = ConfigDict(extra="forbid")

    facility: dict[str, Any] = Field(default_factory=dict, description=(
        "Fields of the facility as the registry file writes them (id, name, uscc, org_code, "
        "level, kind, community, region_code, mllp_sources, tls_names, api_keys, ack_mode, "
        "profile)."))
    by: By = None
    reason: Reason = None
    version: Version = None


class Retirement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: By = None
    reason: Reason = None
    version: Version = None


def _feed(request: Request) -> FacilityFeed:
    feed: FacilityFeed | None = getattr(request.app.state, "facility_feed", None)
    if feed is None or request.app.state.producer is None:
        raise HTTPException(503, "this process does not keep the facility registry")
    return feed


def _shown(record: FacilityRecord) -> dict[str, Any]:
    data = record.facility.model_dump(mode="json")
    data["api_keys"] = len(record.facility.api_keys)
    return {**data, "warnings": list(record.facility.code_warnings), "version": record.version,
            "changed_at": record.changed_at.isoformat(), "changed_by": record.changed_by,
            "reason": record.reason}


@router.get("")
def facilities(request: Request, status: Literal["active", "retired", "all"] = "active"
               ) -> list[dict[str, Any]]:
    """The registered facilities (active by default), by id."""
    records = _feed(request).records
    return [_shown(r) for _, r in sorted(records.items())
            if status == "all" or r.facility.status == status]


@router.get("/{facility_id}")
def facility(facility_id: str, request: Request) -> dict[str, Any]:
    """One facility, active or retired."""
    record = _feed(request).records.get(facility_id)
    if record is None:
        raise HTTPException(404, f"no facility {facility_id!r} in the registry")
    return _shown(record)


def _validated(data: dict[str, Any]) -> Facility:
    try:
        return Facility.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, validation_problems(exc, root="facility")) from None


def change_lock(request: Request, registry: str) -> asyncio.Lock:
    """One change at a time to ``registry`` in this process: from reading a record's
    version to applying the record Kafka confirmed, so two requests cannot both build on
    one version. (API processes in other pods check against what they have read.)"""
    state = request.app.state
    locks: dict[str, asyncio.Lock] | None = getattr(state, "registry_locks", None)
    if locks is None:
        locks = state.registry_locks = {}
    return locks.setdefault(registry, asyncio.Lock())


async def _publish(request: Request, principal: Principal, action: str,
                   record: FacilityRecord) -> dict[str, Any]:
    feed = _feed(request)
    registry: FacilityRegistry = feed.registry
    if (problem := registry.check(record.facility)) is not None:
        raise HTTPException(409, problem)
    record_action(request, f"facility.{action}", principal, acting_as=record.changed_by,
                  facility_id=record.facility_id, version=record.version)
    try:
        await publish_facilities(request.app.state.producer, [record], request.app.state.ids)
    except DeliveryError as exc:
        record_action(request, f"facility.{action}.failed", principal,
                      facility_id=record.facility_id)
        raise HTTPException(503, f"Kafka did not take the change: {exc}") from exc
    feed.put(record)
    return _shown(record)


def _current(request: Request, facility_id: str, version: int | None) -> FacilityRecord:
    held = _feed(request).records.get(facility_id)
    if held is None:
        raise HTTPException(404, f"no facility {facility_id!r} in the registry")
    if version is not None and version != held.version:
        raise HTTPException(409, f"facility {facility_id} is at version {held.version}, not "
                                 f"{version}: read it again and redo the change")
    return held


@router.post("", status_code=202)
async def add(body: Change, request: Request,
              principal: Annotated[Principal, Depends(_admin)]) -> dict[str, Any]:
    """Register a new facility."""
    by = acting_as(principal, body.by or principal.name)
    facility = _validated(body.facility)
    async with change_lock(request, "facility"):
        if facility.id in _feed(request).records:
            raise HTTPException(409, f"facility {facility.id} is registered already (change "
                                     "it with PATCH, or give the new one another id)")
        record = FacilityRecord(facility, 1, datetime.now(UTC), by, body.reason)
        return await _publish(request, principal, "add", record)


@router.patch("/{facility_id}", status_code=202)
async def update(facility_id: str, body: Change, request: Request,
                 principal: Annotated[Principal, Depends(_admin)]) -> dict[str, Any]:
    """Change some fields of a facility (``status: active`` brings a retired one back)."""
    by = acting_as(principal, body.by or principal.name)
    if body.facility.get("id", facility_id) != facility_id:
        raise HTTPException(422, "a facility's id cannot change: register the new id and "
                                 "retire this one")
    async with change_lock(request, "facility"):
        held = _current(request, facility_id, body.version)
        facility = _validated({**held.facility.model_dump(mode="json"), **body.facility})
        if facility == held.facility:
            return _shown(held)
        action = "update" if facility.status == held.facility.status else (
            "retire" if facility.status == "retired" else "reactivate")
        return await _publish(request, principal, action,
                              changed(held, facility, by=by, reason=body.reason))


@router.post("/{facility_id}/retire", status_code=202)
async def retire(facility_id: str, body: Retirement, request: Request,
                 principal: Annotated[Principal, Depends(_admin)]) -> dict[str, Any]:
    """Retire a facility: from now on its messages are refused; its record stays."""
    by = acting_as(principal, body.by or principal.name)
    async with change_lock(request, "facility"):
        held = _current(request, facility_id, body.version)
        if held.facility.status == "retired":
            raise HTTPException(409, f"facility {facility_id} is retired already")
        facility = held.facility.model_copy(update={"status": "retired"})
        return await _publish(request, principal, "retire",
                              changed(held, facility, by=by, reason=body.reason))
