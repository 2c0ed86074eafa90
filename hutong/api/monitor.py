"""``/api/v1/monitor``: the exchange monitor's data (交换监控), for admins.

What each facility sent and what became of it, from the warehouse (and the
facility registry, for facilities that have sent nothing yet): status, counts
and a 24-hour series per facility, dead letters with their reasons, codes no
map covers, open critical-value alerts with their deadlines, the EMPI review
queue. ``/overview`` is all of it at once (what the console at ``/console``
polls every 5 seconds). Answers are shared for `CACHE_S` seconds (a retry
forgets them), so many open consoles cost the warehouse one set of queries per
15 seconds. No answer carries a patient's name or id, or a message's bytes.
Dead letters whose retry this process saw accepted no longer count as failures.

``POST /dead-letters/{id}/retry`` submits a dead letter's message again
(`hutong.monitor.retry`) and answers with the new outcome: ``AA`` (events),
``AE``/``AR`` (a dead letter again, with the reason). 404 for an unknown letter,
409 when it cannot be retried (and why), 410 when ``hutong.dlq`` no longer holds
it, 503 when this process cannot read the topic or runs no intake (every process
that runs the ``api`` component has one for retries, `hutong.hub`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from hutong.api.auth import require
from hutong.api.sql import warehouse_of
from hutong.errors import DlqUnreachable, LetterGone, NotRetryable
from hutong.monitor import queries
from hutong.monitor.retry import DeadLetterSource, RetryLedger, refusal, resubmit
from hutong.monitor.status import Thresholds
from hutong.users import Principal
from sinks.warehouse import Warehouse

__all__ = ["CACHE_S", "Answers", "router"]

#: How long an answer is shared between callers: the console polls every 5 s, and
#: each facility list and series reads a day of every event table.
CACHE_S = 15.0
T = TypeVar("T")


class Answers:
    """Answers of the last `CACHE_S` seconds, by question; a retry forgets them all."""

    def __init__(self, ttl_s: float = CACHE_S, size: int = 256) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._lock = threading.Lock()
        self._kept: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._kept.get(key)
        if hit is not None and now - hit[0] < self._ttl_s:
            kept: T = hit[1]
            return kept
        value = compute()
        with self._lock:
            if len(self._kept) >= self._size:
                self._kept.clear()
            self._kept[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


_admin = require("admin")
Admin = Annotated[Principal, Depends(_admin)]
Wh = Annotated[Warehouse, Depends(warehouse_of)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Facility = Annotated[str, Query(max_length=64, description="One facility id; all if empty.")]

router = APIRouter(prefix="/api/v1/monitor", tags=["monitor"], dependencies=[Depends(_admin)])


def _answers(request: Request) -> Answers:
    answers: Answers = request.app.state.monitor_answers
    return answers


_DEFAULT = Thresholds()


def _thresholds(quiet_after_s: Annotated[float, Query(gt=0)] = _DEFAULT.quiet_after_s,
                silent_after_s: Annotated[float, Query(gt=0)] = _DEFAULT.silent_after_s,
                failing_error_rate: Annotated[float, Query(gt=0, le=1)]
                = _DEFAULT.failing_error_rate) -> Thresholds:
    if silent_after_s < quiet_after_s:
        raise HTTPException(422, "silent_after_s must not be shorter than quiet_after_s")
    return Thresholds(quiet_after_s, silent_after_s, failing_error_rate)


Limits = Annotated[Thresholds, Depends(_thresholds)]


def _facilities(request: Request, warehouse: Warehouse, thresholds: Thresholds
                ) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        now = datetime.now(UTC)
        items = queries.facilities(warehouse, request.app.state.registry, now, thresholds,
                                   _excused(request))
        return {"now": now.isoformat(timespec="milliseconds"),
                "thresholds": {"quiet_after_s": thresholds.quiet_after_s,
                               "silent_after_s": thresholds.silent_after_s,
                               "failing_error_rate": thresholds.failing_error_rate},
                "total": len(items), "items": items}

    return _answers(request).get(("facilities", thresholds), compute)


def _dead_letters(request: Request, warehouse: Warehouse, hours: int, facility: str,
                  limit: int) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(hours=hours)
    found = _answers(request).get(
        ("dead-letters", hours, facility, limit),
        lambda: queries.dead_letters(warehouse, since, facility, limit))
    ledger: RetryLedger = request.app.state.retries
    items = []
    for letter in found["items"]:
        why = refusal(letter)
        last = ledger.get(letter["dead_letter_id"])
        items.append({**letter, "retryable": why is None, "not_retryable": why,
                      "last_retry": last.to_dict() if last else None})
    return {"total": found["total"], "items": items}


def _excused(request: Request) -> frozenset[str]:
    """Dead letters whose retry was accepted: no failure any more (this process's ledger)."""
    ledger: RetryLedger = request.app.state.retries
    return ledger.accepted()


def _cached(request: Request, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    return _answers(request).get(key, compute)


@router.get("/facilities")
def facilities(request: Request, warehouse: Wh, thresholds: Limits) -> dict[str, Any]:
    """Every facility registered or heard from in 30 days: status (ok, quiet, silent,
    failing), last message, messages and dead letters in the last hour and day, error
    rates. Failing first, then silent, quiet and ok."""
    return _facilities(request, warehouse, thresholds)


@router.get("/series")
def series(request: Request, warehouse: Wh, facility: Facility = "") -> dict[str, Any]:
    """Messages and dead letters per 5 minutes over 24 hours, per facility."""
    return _cached(request, ("series", facility),
                   lambda: queries.series(warehouse, datetime.now(UTC), facility,
                                          _excused(request)))


@router.get("/dead-letters")
def dead_letters(request: Request, warehouse: Wh, facility: Facility = "",
                 hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
                 limit: Limit = 100) -> dict[str, Any]:
    """Dead letters of the last ``hours``, newest first: stage, reason, error code,
    location, facility, size; whether a retry is possible (else why not) and the last
    retry this hub made. Never the payload."""
    return _dead_letters(request, warehouse, hours, facility, limit)


@router.get("/unmapped")
def unmapped(request: Request, warehouse: Wh, facility: Facility = "",
             limit: Limit = 100) -> dict[str, Any]:
    """Local codes no map covers now, the most frequent first."""
    return _cached(request, ("unmapped", facility, limit),
                   lambda: queries.unmapped(warehouse, facility, limit))


@router.get("/alerts")
def alerts(request: Request, warehouse: Wh, facility: Facility = "",
           limit: Limit = 100) -> dict[str, Any]:
    """Open critical-value alerts, the nearest deadline first: state, escalation level,
    who is notified, raised at and the deadline of the current step (None at the last)."""
    return _cached(request, ("alerts", facility, limit),
                   lambda: queries.open_alerts(warehouse, facility, limit))


@router.get("/reviews")
def reviews(request: Request, warehouse: Wh, limit: Limit = 100) -> dict[str, Any]:
    """EMPI pairs waiting for a reviewer, the likeliest first (the facilities, the score
    and the weight of each field compared; no patient ids)."""
    return _cached(request, ("reviews", limit), lambda: queries.open_reviews(warehouse, limit))


@router.get("/overview")
def overview(request: Request, warehouse: Wh, thresholds: Limits) -> dict[str, Any]:
    """Everything above at once, with the default windows and limits."""
    return {"facilities": _facilities(request, warehouse, thresholds),
            "series": series(request, warehouse),
            "dead_letters": _dead_letters(request, warehouse, 24, "", 100),
            "unmapped": unmapped(request, warehouse),
            "alerts": alerts(request, warehouse),
            "reviews": reviews(request, warehouse)}


@router.post("/dead-letters/{dead_letter_id}/retry")
async def retry(dead_letter_id: str, request: Request, warehouse: Wh,
                principal: Admin) -> dict[str, Any]:
    """Submit the dead letter's original message again, as its facility; the outcome."""
    state = request.app.state
    letter = await asyncio.to_thread(queries.dead_letter, warehouse, dead_letter_id)
    if letter is None:
        raise HTTPException(404, f"no dead letter {dead_letter_id}")
    source: DeadLetterSource | None = state.dead_letter_source
    intake = state.retry_intake
    if intake is None or source is None:
        why = refusal(letter)
        if why is not None:
            raise HTTPException(409, why)
        raise HTTPException(503, "this process runs no intake or cannot read hutong.dlq; "
                                 "retry from one that does")
    address = request.client.host if request.client else None
    try:
        retried = await resubmit(letter, source, intake, state.registry,
                                 by=principal.name, address=address, audit=state.audit)
    except NotRetryable as exc:
        raise HTTPException(409, str(exc)) from exc
    except LetterGone as exc:
        raise HTTPException(410, str(exc)) from exc
    except DlqUnreachable as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from exc
    ledger: RetryLedger = state.retries
    ledger.put(retried)
    _answers(request).clear()
    return retried.to_dict()
