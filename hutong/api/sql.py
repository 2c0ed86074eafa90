"""``POST /api/v1/sql``: read-only queries against the warehouse this hub owns.

chDB lets one process open a data directory, so in embedded mode the hub
answers analysts' queries for everyone (``hutong sql`` comes here).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import ipaddress
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from hutong.api.auth import caller, record_action, require
from hutong.errors import WarehouseError
from hutong.users import Principal
from sinks.warehouse import Warehouse

__all__ = [
    "READ_ONLY_STATEMENTS",
    "SqlRequest",
    "SqlResult",
    "authorised",
    "engine_refusal",
    "is_read_only",
    "jsonable",
    "may_query",
    "refusal",
    "router",
    "warehouse_of",
]

READ_ONLY_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")


class SqlRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=100_000)


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]


#: Table functions that reach the host's files or the network, and file output.
_REACHES_OUT = re.compile(
    r"\b(file|url|s3|s3Cluster|gcs|azureBlobStorage|hdfs|remote|remoteSecure|cluster|"
    r"clusterAllReplicas|mysql|postgresql|sqlite|mongodb|redis|jdbc|odbc|executable|input|"
    r"deltaLake|iceberg|hudi)\s*\(|\bINTO\s+OUTFILE\b", re.IGNORECASE)


def refusal(query: str) -> str | None:
    """Why ``query`` may not run for an analyst, or None when it may."""
    text = query.strip().rstrip(";").strip()
    if ";" in text:
        return "only one statement is allowed"
    first = text.split(None, 1)[0].upper() if text else ""
    if first not in READ_ONLY_STATEMENTS:
        return f"only read-only statements are allowed ({', '.join(READ_ONLY_STATEMENTS)})"
    if _REACHES_OUT.search(text):
        return "table functions that reach files or the network, and INTO OUTFILE, are refused"
    return None


def engine_refusal(warehouse: Warehouse, query: str) -> str | None:
    """`refusal` of the text as sent and of the engine's rendering of it (comments
    removed), so ``INTO/**/OUTFILE`` or ``file/**/(`` do not slip past the text check."""
    reason = refusal(query)
    if reason is not None:
        return reason
    try:
        canonical = warehouse.canonical_sql(query.strip().rstrip(";"))
    except WarehouseError:
        return "the statement does not parse"
    return refusal(canonical)


def is_read_only(query: str) -> bool:
    """Whether an analyst may run ``query``."""
    return refusal(query) is None


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


def warehouse_of(request: Request) -> Warehouse:
    """The warehouse this process owns, or 503."""
    warehouse: Warehouse | None = request.app.state.warehouse
    if warehouse is None:
        raise HTTPException(503, "the warehouse is not open in this process")
    return warehouse


def authorised(request: Request) -> None:
    """Any authenticated caller (`hutong.api.auth.caller`)."""
    caller(request)


#: Who may query the warehouse: analysts and admins (clinicians read documents instead).
may_query = require("analyst", "admin")


router = APIRouter(prefix="/api/v1", tags=["warehouse"])


def query_digest(query: str) -> str:
    """What the audit log keeps of a query: a SHA-256 prefix of its text (the text itself
    may name a patient), enough to match it against the analyst's own copy."""
    return hashlib.sha256(query.encode()).hexdigest()[:16]


@router.post("/sql", response_model=SqlResult)
def run_sql(body: SqlRequest, request: Request,
            principal: Annotated[Principal, Depends(may_query)],
            warehouse: Annotated[Warehouse, Depends(warehouse_of)]) -> SqlResult:
    """Run one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS); who ran
    it, when and which (a digest of its text) is in the audit log first."""
    record_action(request, "warehouse.query", principal, interface="api",
                  query_sha256=query_digest(body.query))
    reason = engine_refusal(warehouse, body.query)
    if reason is not None:
        raise HTTPException(400, reason)
    try:
        columns, rows = warehouse.query_rows(body.query, read_only=True)
    except WarehouseError as exc:
        raise HTTPException(400, str(exc)) from exc
    return SqlResult(columns=columns, rows=[[jsonable(v) for v in row] for row in rows])
