"""``POST /api/v1/sql``: read-only queries against the warehouse this hub owns.

chDB lets one process open a data directory, so in embedded mode the hub
answers analysts' queries for everyone (``hutong sql`` comes here).
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from hutong.errors import WarehouseError
from sinks.warehouse import Warehouse

__all__ = ["READ_ONLY_STATEMENTS", "SqlRequest", "SqlResult", "is_read_only", "jsonable", "router"]

READ_ONLY_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")


class SqlRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=100_000)


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]


def is_read_only(query: str) -> bool:
    """Whether the statement only reads (a single statement starting with a read keyword)."""
    text = query.strip().rstrip(";").strip()
    if ";" in text:
        return False
    first = text.split(None, 1)[0].upper() if text else ""
    return first in READ_ONLY_STATEMENTS


def jsonable(value: Any) -> Any:
    """Warehouse values as JSON values."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, decimal.Decimal | uuid.UUID | ipaddress.IPv4Address
                  | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def _warehouse(request: Request) -> Warehouse:
    warehouse: Warehouse | None = request.app.state.warehouse
    if warehouse is None:
        raise HTTPException(503, "the warehouse is not open in this process")
    return warehouse


def _authorised(request: Request) -> None:
    token = request.app.state.api_token
    if token and request.headers.get("authorization") != f"Bearer {token}":
        raise HTTPException(401, "a valid bearer token is required")


router = APIRouter(prefix="/api/v1", tags=["warehouse"])


@router.post("/sql", response_model=SqlResult, dependencies=[Depends(_authorised)])
def run_sql(body: SqlRequest,
            warehouse: Annotated[Warehouse, Depends(_warehouse)]) -> SqlResult:
    """Run one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)."""
    if not is_read_only(body.query):
        raise HTTPException(400, "only one read-only statement is allowed "
                                 f"({', '.join(READ_ONLY_STATEMENTS)})")
    try:
        columns, rows = warehouse.query_rows(body.query)
    except WarehouseError as exc:
        raise HTTPException(400, str(exc)) from exc
    return SqlResult(columns=columns, rows=[[jsonable(v) for v in row] for row in rows])
