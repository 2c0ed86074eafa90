"""The ClickHouse HTTP interface of the embedded warehouse: analysts' read-only access.

chDB lets one process open the warehouse, so the hub that owns it answers the
ClickHouse HTTP protocol itself (``clickhouse_http_port``, 8123 by default),
enough for clickhouse-connect's HTTP client, curl and BI tools' HTTP drivers::

    GET  /ping, /replicas_status           Ok.
    GET  /?query=SELECT+1                  the query in the URL
    POST /   (body: SELECT ... FORMAT JSON) the query in the body

Who: a user holding ``analyst`` or ``admin`` (`hutong.users`), by HTTP basic
auth, ``X-ClickHouse-User``/``X-ClickHouse-Key``, the ``user``/``password``
parameters or a bearer token. With no users configured, this machine only, as
``default`` without a password (a development hub), like `hutong.api.auth`.

What: one statement `hutong.api.sql.refusal` accepts, judged on the text as
sent and on the engine's own rendering of it (so comments cannot hide a table
function or ``INTO OUTFILE``), run on the warehouse's read-only analyst session
(`sinks.warehouse.analyst`: ``readonly = 1``, limits the query cannot lift).
Settings passed as URL parameters are accepted only at the value they already
have. Bounds: a query of at most `MAX_QUERY_BYTES`, an answer of at most
`MAX_RESPONSE_BYTES` (and the session's ``max_result_bytes`` before formatting),
`MAX_PENDING` queries in progress or waiting. Query text is never logged: it may
name patients.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from connectors.http.body import read_limited
from hutong.api.clickhouse_protocol import (
    ClickHouseError,
    Credentials,
    QueryRequest,
    choose_encoding,
    content_type,
    credentials,
    decode_body,
    encode_body,
    engine_message,
    error_body,
    http_status,
    output_format,
    parse_request,
    setting_refusal,
    summary,
)
from hutong.api.sql import query_digest, refusal
from hutong.audit import AuditLog
from hutong.errors import WarehouseError, WarehouseQueryError
from hutong.users import Principal, Users
from sinks.warehouse import Warehouse
from sinks.warehouse.analyst import SPECIAL_FORMATS, RawResult

__all__ = ["MAX_PENDING", "MAX_QUERY_BYTES", "MAX_RESPONSE_BYTES", "ROLES", "authorise",
           "create_clickhouse_http"]

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 1024 * 1024
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
MAX_PENDING = 8
ROLES = ("analyst", "admin")
_DEVELOPMENT = Principal("default", frozenset({"admin", "analyst"}))
_OK = b"Ok.\n"


@dataclass(frozen=True, slots=True)
class _Server:
    """What the engine says about itself, read once through the analyst session."""

    version: str
    timezone: str
    settings: dict[str, str]


def authorise(users: Users, given: Credentials, client_host: str | None) -> Principal:
    """The analyst (or admin) behind ``given``, or `ClickHouseError` 194/195/497/516."""
    principal: Principal | None
    if given.token is not None:
        principal = users.authenticate(given.token)
    elif users.configured:
        if not given.given:
            raise ClickHouseError(194, "default: a user name and password are required")
        principal = users.login(given.user or "default", given.password)
    else:
        if not _loopback(client_host):
            raise ClickHouseError(195, "requests from other hosts need users "
                                       "(HUTONG_USERS_FILE) or HUTONG_API_TOKEN to be set")
        if (given.user or "default") == "default" and not given.password:
            return _DEVELOPMENT
        principal = None
    if principal is None:
        name = given.user or "default"
        raise ClickHouseError(516, f"{name}: Authentication failed: password is incorrect, "
                                   "or there is no user with such name")
    if not any(principal.has(role) for role in ROLES):
        raise ClickHouseError(497, f"{principal.name}: Not enough privileges: the ClickHouse "
                                   f"HTTP interface needs the role {' or '.join(ROLES)}")
    return principal


def create_clickhouse_http(warehouse: Warehouse, users: Users,
                           audit: AuditLog | None = None) -> FastAPI:
    """The app the hub serves on ``clickhouse_http_port`` (embedded warehouse only); each
    query goes to the ``audit`` log first (who, from where, a digest of its text)."""
    app = FastAPI(title="hutong ClickHouse HTTP interface", openapi_url=None, docs_url=None,
                  redoc_url=None)
    display_name = socket.gethostname()
    pending = [0]
    known: list[_Server] = []

    def server() -> _Server:
        if not known:
            facts = json.loads(warehouse.query_raw("SELECT version() AS v, timezone() AS tz",
                                                   "JSONEachRow").data)
            rows = warehouse.query_raw("SELECT name, value FROM system.settings",
                                       "JSONEachRow").data.splitlines()
            known.append(_Server(facts["v"], facts["tz"],
                                 {r["name"]: r["value"] for r in map(json.loads, rows)}))
        return known[0]

    def execute(query: QueryRequest) -> tuple[_Server, RawResult, str]:
        facts = server()
        refused = setting_refusal(query.settings, facts.settings)
        if refused is not None:
            raise refused
        canonical = warehouse.format_query(query.sql)  # the engine's parse: no comments
        reason = refusal(query.sql) or refusal(canonical)
        if reason is not None:
            raise ClickHouseError(164, f"{reason}; this interface is read-only")
        fmt = output_format(canonical, query.default_format)
        if fmt.lower() in SPECIAL_FORMATS:
            raise ClickHouseError(73, f"Unknown format {fmt}")
        result = warehouse.query_raw(query.sql, query.default_format,
                                     parameters=query.parameters, database=query.database)
        if len(result.data) > MAX_RESPONSE_BYTES:
            raise ClickHouseError(396, f"Limit for result exceeded: the answer is larger than "
                                       f"{MAX_RESPONSE_BYTES} bytes; aggregate or add LIMIT")
        return facts, result, fmt

    @app.api_route("/ping", methods=["GET", "HEAD"])
    @app.api_route("/replicas_status", methods=["GET", "HEAD"])
    def ping() -> Response:
        return Response(_OK, media_type="text/plain; charset=UTF-8")

    @app.api_route("/", methods=["GET", "POST"])
    async def query(request: Request) -> Response:
        query_id = request.query_params.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Server-Display-Name": display_name,
                   "X-ClickHouse-Query-Id": query_id}
        version = known[0].version if known else ""
        try:
            if request.method == "GET" and "query" not in request.query_params:
                return Response(_OK, media_type="text/plain; charset=UTF-8", headers=headers)
            client = request.client.host if request.client else None
            principal = authorise(users, credentials(request.headers, request.query_params),
                                  client)
            body = decode_body(await _body(request), request.headers.get("content-encoding"),
                               MAX_QUERY_BYTES)
            parsed = parse_request(request.query_params.multi_items(), request.headers, body)
            if audit is not None:
                try:
                    audit.record("warehouse.query", principal=principal.name, address=client,
                                 interface="clickhouse-http",
                                 query_sha256=query_digest(parsed.sql))
                except OSError:
                    raise ClickHouseError(1001, "the audit log cannot be written; the query "
                                                "was not run") from None
            if pending[0] >= MAX_PENDING:
                raise ClickHouseError(202, f"Too many simultaneous queries ({MAX_PENDING} "
                                           "in progress or waiting); try again shortly")
            pending[0] += 1
            try:
                facts, result, fmt = await run_in_threadpool(execute, parsed)
            finally:
                pending[0] -= 1
        except ClickHouseError as exc:
            return _error(exc.code, exc.message, version, headers)
        except WarehouseQueryError as exc:
            return _error(exc.code, engine_message(exc.detail), version, headers)
        except WarehouseError as exc:
            log.error("ClickHouse HTTP interface: %s", exc)
            return _error(1001, "the warehouse is not available", version, headers)
        except Exception as exc:  # its text could quote the query: the type only
            log.error("ClickHouse HTTP interface failed a request: %s", type(exc).__name__)
            return _error(1001, "internal error", version, headers)
        log.debug("%s ran a query: %d bytes of %s", principal.name, len(result.data), fmt)
        data = result.data
        encoding = choose_encoding(request.headers.get("accept-encoding")) \
            if parsed.compress else None
        if encoding is not None:
            data = await run_in_threadpool(encode_body, data, encoding)
            headers["Content-Encoding"] = encoding
        headers.update({
            "X-ClickHouse-Format": fmt, "X-ClickHouse-Timezone": facts.timezone,
            "X-ClickHouse-Summary": summary(result.read_rows, result.read_bytes,
                                            result.elapsed_ns, len(result.data))})
        return Response(data, media_type=content_type(fmt), headers=headers)

    return app


async def _body(request: Request) -> bytes:
    body = await read_limited(request, MAX_QUERY_BYTES)
    if body is None:
        raise ClickHouseError(229, f"The query is larger than {MAX_QUERY_BYTES} bytes")
    return body


def _error(code: int, message: str, version: str, headers: dict[str, str]) -> Response:
    answer: dict[str, Any] = {**headers, "X-ClickHouse-Exception-Code": str(code)}
    if code == 194:
        answer["WWW-Authenticate"] = 'Basic realm="hutong ClickHouse HTTP interface"'
    return Response(error_body(code, message, version or "hutong"), status_code=http_status(code),
                    media_type="text/plain; charset=UTF-8", headers=answer)


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
