"""``/api/v1/terminology``: code maps in, and the codes no map covers out.

``POST /maps`` takes one map file (CSV or YAML, the formats of
:mod:`streams.terminology.files`) and publishes its maps to
``hutong.terminology.maps``; every problem is answered 422 with its line, and
then nothing is published. ``GET /maps`` lists the maps in force and ``GET
/unmapped`` the local codes that came without a map, for data stewards, from
the warehouse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from hutong.api.auth import record_action, require
from hutong.api.sql import jsonable, warehouse_of
from hutong.errors import DeliveryError
from hutong.terminology import publish_maps
from hutong.users import Principal
from sinks.warehouse import Warehouse
from streams.terminology.files import read_map_file

__all__ = ["router"]

_MAX_BYTES = 16 * 1024 * 1024

_MAPS = """
SELECT facility_id, source_system, local_code, target_system, target_code, target_display,
       map_version, updated_at
FROM current_concept_maps
WHERE ({facility:String} = '' OR facility_id = {facility:String})
  AND ({kind:String} = '' OR source_system = {kind:String})
ORDER BY facility_id, source_system, local_code
LIMIT {limit:UInt32}
"""

_UNMAPPED = """
SELECT facility_id, code_system, local_code, local_display, count, first_seen, last_seen,
       mapped_now
FROM unmapped_code_summary
WHERE ({facility:String} = '' OR facility_id = {facility:String})
  AND ({include_mapped:Bool} OR NOT mapped_now)
ORDER BY count DESC, facility_id, code_system, local_code
LIMIT {limit:UInt32}
"""

_admin = require("admin")
router = APIRouter(prefix="/api/v1/terminology", tags=["terminology"],
                   dependencies=[Depends(_admin)])
Limit = Annotated[int, Query(ge=1, le=100_000)]


def _rows(warehouse: Warehouse, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    columns, rows = warehouse.query_rows(sql, parameters, read_only=True)
    return [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]


@router.get("/maps")
def maps(warehouse: Annotated[Warehouse, Depends(warehouse_of)], facility: str = "",
         kind: str = "", limit: Limit = 1000) -> list[dict[str, Any]]:
    """The code maps in force (a facility's own, and region-wide ones with facility ``*``)."""
    return _rows(warehouse, _MAPS, {"facility": facility, "kind": kind, "limit": limit})


@router.get("/unmapped")
def unmapped(warehouse: Annotated[Warehouse, Depends(warehouse_of)], facility: str = "",
             include_mapped: bool = False, limit: Limit = 1000) -> list[dict[str, Any]]:
    """Local codes that came without a map, most frequent first, with when they were seen;
    the ones a map covers now are left out unless ``include_mapped``."""
    return _rows(warehouse, _UNMAPPED, {"facility": facility, "include_mapped": include_mapped,
                                        "limit": limit})


@router.post("/maps", status_code=202, response_model=None)
async def upload(request: Request, principal: Annotated[Principal, Depends(_admin)],
                 name: str = "upload.csv") -> JSONResponse:
    """One map file as the body: CSV (``text/csv``) or YAML (``application/yaml``); ``name``
    is how problems refer to it and, for a YAML body, should end in ``.yaml``."""
    producer = request.app.state.producer
    feed = request.app.state.mapfeed
    if producer is None or feed is None:
        raise HTTPException(503, "this process cannot publish code maps")
    data = await request.body()
    if len(data) > _MAX_BYTES:
        raise HTTPException(413, f"a map file may have at most {_MAX_BYTES} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if "yaml" in kind and not name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0] + ".yaml"
    read = read_map_file(data, name, updated_at=datetime.now(UTC))
    if read.problems or not read.readable:
        record_action(request, "terminology.maps.refused", principal, file=name,
                      problems=len(read.problems))
        return JSONResponse(status_code=422, content={
            "detail": f"{len(read.problems)} problem(s); nothing was published",
            "problems": [str(problem) for problem in read.problems]})
    record_action(request, "terminology.maps.upload", principal, file=name,
                  maps=len(read.entries), version=read.version)
    try:
        written = await publish_maps(producer, request.app.state.ids, read.entries, feed)
    except DeliveryError as exc:
        record_action(request, "terminology.maps.upload.failed", principal, file=name)
        raise HTTPException(503, f"Kafka did not take the maps: {exc}") from exc
    return JSONResponse(status_code=202, content={
        "maps": len(read.entries), "published": written, "version": read.version})
