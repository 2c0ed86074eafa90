"""``POST /api/v1/ingest/{hl7v2,cda,json,batch}``: the HTTP door for facilities.

Every request carries the facility's API key (``Authorization: Bearer <key>``
or ``X-API-Key``); the registry keeps only its hash. The answer says what
happened, after the records are durable in Kafka:

    202  accepted: {"outcome": "AA", "event_ids": [...], "duplicate": false}
         (hl7v2 also returns the HL7 ACK; batch returns the file report)
    400  unreadable or unsupported                        (outcome AR)
    401  no API key or an unknown one                     (audited)
    403  the content names another facility than the key  (audited, nothing stored)
    409  control id / document id reused for other content
    413  body over ``http_max_body_bytes`` (hl7v2, cda and json: also over what one
         Kafka record holds, ``producers.records.MAX_MESSAGE_BYTES``, just under 8 MiB)
    422  readable but wrong: the reason, location and HL7 error code (AE)
    429  the facility is over ``facility_rate_limit``: resend later (Retry-After)
    503  Kafka did not confirm: resend (Retry-After)

Everything refused with a 4xx is also a dead letter, except 401/403, 413, 429 and an
empty body: of those nothing is kept but an audit record (rate-limited per address).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from connectors.batch import process_batch
from connectors.facilities import FacilityRegistry, Peer
from connectors.http.body import read_limited
from producers.cda.adapter import adapt_cda
from producers.intake import Intake, Receipt
from producers.json_events import adapt_json
from producers.records import MAX_MESSAGE_BYTES

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])

_AUTH_HEADERS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or one no facility holds."},
    403: {"description": "The content names another facility than the key's."},
    413: {"description": "The body is larger than the configured limit."},
    429: {"description": "The facility sends faster than its rate limit: resend later."},
}


async def _arrival(request: Request, authorization: str | None, api_key: str | None,
                   limit: int = MAX_MESSAGE_BYTES) -> tuple[Intake, Peer, bytes]:
    """The intake, the facility the key names, and the body within the size limit."""
    state = request.app.state
    intake: Intake | None = getattr(state, "intake", None)
    if intake is None:
        raise HTTPException(503, "intake is not running")
    registry: FacilityRegistry = state.registry
    address = request.client.host if request.client else None
    key = api_key or (authorization[7:].strip() if authorization and
                      authorization[:7].lower() == "bearer " else None)
    facility = registry.for_api_key(key) if key else None
    if facility is None:
        reason = "no API key" if not key else "API key unknown"
        intake.refuse_connection(Peer("http", address), reason)
        raise HTTPException(401, f"{reason}: send the facility's key as 'Authorization: "
                                 "Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
    peer = Peer("http", address, facility.id, "API key")
    over = intake.admit(peer)  # before the body is read: a flood costs no parsing
    if over is not None:
        raise HTTPException(429, over, headers={"Retry-After": "1"})
    try:
        # One message is one record (and a dead letter): larger could never be stored.
        return intake, peer, await _body(request, min(state.max_body_bytes, limit))
    except HTTPException as exc:  # oversized or empty: nothing kept but the audit record
        intake.refuse_connection(peer, str(exc.detail), status=exc.status_code)
        raise


async def _body(request: Request, limit: int) -> bytes:
    body = await read_limited(request, limit)
    if body is None:
        raise HTTPException(413, f"body over the {limit}-byte limit")
    if not body:
        raise HTTPException(400, "empty body")
    return body


def _answer(receipt: Receipt, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"outcome": receipt.code, "event_ids": list(receipt.event_ids),
                            "duplicate": receipt.duplicate, **extra}
    error = receipt.error
    if receipt.code == "AA":
        return JSONResponse(body, status_code=202)
    body.update(reason=error.reason if error else receipt.reason,
                location=error.location if error else None,
                error_code=error.code if error else None)
    if receipt.unauthorised:
        status = 403
    elif not receipt.stored:
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    elif error is not None and error.code == "205":
        status = 409
    else:
        status = 400 if receipt.code == "AR" else 422
    return JSONResponse(body, status_code=status)


Key = Annotated[str | None, Header(alias="X-API-Key", include_in_schema=True)]
Auth = Annotated[str | None, Header()]


@router.post("/hl7v2", status_code=202, responses=_AUTH_HEADERS)
async def ingest_hl7v2(request: Request, authorization: Auth = None,
                       x_api_key: Key = None) -> JSONResponse:
    """One HL7 v2 message (ER7 text, any segment ending); MSH-4 must be the key's facility.

    The answer carries the HL7 ACKs as the sender would get them over MLLP: ``acks``
    (commit then application ACK in enhanced mode) and ``ack``, the first.
    """
    intake, peer, payload = await _arrival(request, authorization, x_api_key)
    receipt = await intake.receive(payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r"), peer)
    acks = [ack.decode("utf-8", errors="replace") for ack in receipt.acks]
    return _answer(receipt, ack=acks[0] if acks else None, acks=acks)


@router.post("/cda", status_code=202, responses=_AUTH_HEADERS)
async def ingest_cda(request: Request, authorization: Auth = None,
                     x_api_key: Key = None) -> JSONResponse:
    """One CDA R2 document (WS/T 500 header); stored whole, with its registry metadata."""
    intake, peer, payload = await _arrival(request, authorization, x_api_key)
    system = request.headers.get("x-source-system")
    receipt = await intake.receive_content(
        payload, peer, lambda adapted: adapt_cda(adapted, source_system=system))
    return _answer(receipt)


@router.post("/json", status_code=202, responses=_AUTH_HEADERS)
async def ingest_json(request: Request, authorization: Auth = None,
                      x_api_key: Key = None) -> JSONResponse:
    """Canonical events as JSON (see docs/topics.md, "JSON ingest")."""
    intake, peer, payload = await _arrival(request, authorization, x_api_key)
    receipt = await intake.receive_content(payload, peer, adapt_json)
    return _answer(receipt)


@router.post("/batch", responses=_AUTH_HEADERS)
async def ingest_batch(request: Request, authorization: Auth = None,
                       x_api_key: Key = None, name: str = "upload.hl7") -> JSONResponse:
    """An HL7 v2 batch file (FHS/BHS/BTS/FTS, or messages one after another).

    Answers with the file report once every message has its outcome: 200 when
    every message is durable (look at ``outcomes`` and ``problems``), 503 when some
    could not be stored (upload the file again: stored messages are recognised).
    """
    intake, peer, payload = await _arrival(request, authorization, x_api_key,
                                           limit=request.app.state.max_body_bytes)
    report = await process_batch(payload, name[:200], peer, intake)
    status = 200 if report.complete else (400 if not report.messages else 503)
    return JSONResponse(report.to_dict(), status_code=status)
