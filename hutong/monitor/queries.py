"""The exchange monitor's questions to the warehouse, and their answers as JSON-ready dicts.

A message is counted once per facility and message control id (an event
table row without one counts by its event id); a dead letter counts as one
message that failed, unless a retry of it was accepted since (``excused``: the
ids the caller's retry ledger knows). Counts and series look back a day; the last
message of each facility, `LAST_SEEN_DAYS`, table by table (newest row per
facility). Everything here is read-only and leaves out patients' ids, names and
the raw bytes: the monitor answers operators, not clinicians.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from connectors.facilities import FacilityRegistry
from hutong.api.sql import jsonable
from hutong.monitor.status import (
    BUCKET_S,
    BUCKETS,
    Activity,
    Thresholds,
    bucket_start,
    error_rate,
    status,
)
from sinks.warehouse import TABLES, Warehouse

__all__ = [
    "ALERTS",
    "DEAD_LETTER",
    "DEAD_LETTERS",
    "EVENT_TABLES",
    "FACILITY_COUNTS",
    "LAST_SEEN",
    "LAST_SEEN_DAYS",
    "REVIEWS",
    "SERIES",
    "UNMAPPED",
    "dead_letter",
    "dead_letters",
    "facilities",
    "open_alerts",
    "open_reviews",
    "series",
    "unmapped",
]

#: The tables of canonical events: every message that became events has rows in some.
EVENT_TABLES = tuple(spec.table for spec in TABLES.values() if spec.id_column == "event_id")
#: How far back "last message" looks; a facility silent for longer shows none.
LAST_SEEN_DAYS = 30

_SINCE = "fromUnixTimestamp64Milli({since_ms:Int64})"
_FACILITY = "({facility:String} = '' OR facility_id = {facility:String})"
_EVENT_ARRIVALS = (
    "SELECT facility_id, coalesce(message_control_id, event_id) AS message, "
    "received_at AS at, 0 AS failed FROM {table} WHERE received_at >= {since} AND {facility}")
#: (The WHERE names the table's column: ``facility_id`` alone would be the alias.) Letters
#: whose retry was accepted (``excused``) are no failure any more.
_LETTER_ARRIVALS = (
    "SELECT assumeNotNull(facility_id) AS facility_id, dead_letter_id AS message, "
    "failed_at AS at, 1 AS failed FROM dead_letters "
    "WHERE dead_letters.facility_id IS NOT NULL AND failed_at >= {since} "
    "AND ({{facility:String}} = '' OR dead_letters.facility_id = {{facility:String}}) "
    "AND NOT has({{excused:Array(String)}}, dead_letter_id)")
#: Everything received since ``since_ms`` (of ``facility``, or all with ''): one row per
#: event-table row (``failed`` 0) or dead letter (``failed`` 1). Asked with a day at most.
_ARRIVALS = "\nUNION ALL\n".join(
    [_EVENT_ARRIVALS.format(table=table, since=_SINCE, facility=_FACILITY)
     for table in EVENT_TABLES]
    + [_LETTER_ARRIVALS.format(since=_SINCE)])

FACILITY_COUNTS = f"""
SELECT facility_id,
       uniqExactIf(message, failed = 0 AND at >= fromUnixTimestamp64Milli({{hour_ms:Int64}}))
           AS messages_hour,
       uniqExactIf(message, failed = 0) AS messages_day,
       countIf(failed = 1 AND at >= fromUnixTimestamp64Milli({{hour_ms:Int64}})) AS errors_hour,
       countIf(failed = 1) AS errors_day
FROM ({_ARRIVALS})
GROUP BY facility_id
"""  # noqa: S608 (made of module constants; values are parameters)

#: The newest row per facility of each table, merged: each part reads two narrow columns
#: (``facility_id``, the table's order key prefix, and the time) of the months it needs
#: (tables are partitioned by month) and hands on one row per facility, not every
#: message's id.
_LATEST = ("SELECT facility_id, max(received_at) AS at, 0 AS failed FROM {table} "
           "WHERE received_at >= {since} GROUP BY facility_id")
_LATEST_LETTER = ("SELECT assumeNotNull(facility_id) AS facility_id, max(failed_at) AS at, "
                  "1 AS failed FROM dead_letters WHERE dead_letters.facility_id IS NOT NULL "
                  "AND failed_at >= {since} GROUP BY facility_id")
_LATEST_PARTS = "\nUNION ALL\n".join(
    [_LATEST.format(table=table, since=_SINCE) for table in EVENT_TABLES]
    + [_LATEST_LETTER.format(since=_SINCE)])

LAST_SEEN = f"""
SELECT facility_id, max(at) AS last_message_at, maxIfOrNull(at, failed = 1) AS last_error_at
FROM ({_LATEST_PARTS})
GROUP BY facility_id
"""  # noqa: S608 (made of module constants; values are parameters)

SERIES = f"""
SELECT facility_id,
       intDiv(toUnixTimestamp64Milli(at) - {{since_ms:Int64}}, {BUCKET_S * 1000}) AS bucket,
       uniqExactIf(message, failed = 0) AS messages,
       countIf(failed = 1) AS errors
FROM ({_ARRIVALS})
GROUP BY facility_id, bucket
ORDER BY facility_id, bucket
"""  # noqa: S608 (made of module constants; values are parameters)

DEAD_LETTERS = f"""
SELECT dead_letter_id, failed_at, facility_id, stage, error_code, location, reason,
       payload_size, dlq_partition, dlq_offset, count() OVER () AS total
FROM dead_letters
WHERE failed_at >= {_SINCE} AND (
    {{facility:String}} = '' OR facility_id = {{facility:String}})
ORDER BY failed_at DESC, dead_letter_id
LIMIT {{limit:UInt32}}
"""  # noqa: S608 (made of module constants; values are parameters)

DEAD_LETTER = """
SELECT dead_letter_id, failed_at, facility_id, stage, error_code, location, reason,
       payload_size, dlq_partition, dlq_offset
FROM dead_letters
WHERE dead_letter_id = {dead_letter_id:String}
LIMIT 1
"""

UNMAPPED = f"""
SELECT facility_id, code_system, local_code, local_display, count, first_seen, last_seen,
       count() OVER () AS total
FROM unmapped_code_summary
WHERE NOT mapped_now AND {_FACILITY}
ORDER BY count DESC, last_seen DESC, facility_id, code_system, local_code
LIMIT {{limit:UInt32}}
"""  # noqa: S608 (made of module constants; values are parameters)

#: Open alerts, the most urgent first: the deadline and notify target are those of the
#: latest state (escalation level); a deadline is NULL at the last step of the plan.
ALERTS = """
SELECT alert_id, facility_id, test_code, test_name, standard_code, value, unit, rule_id,
       rule_description, severity, ordering_department, level AS escalation_level,
       if(level > 0, 'escalated', 'raised') AS state, step_notify AS notify,
       first_raised AS raised_at, step_deadline AS deadline, count() OVER () AS total
FROM (
    SELECT alert_id, any(facility_id) AS facility_id, any(test_code) AS test_code,
           any(test_name) AS test_name, any(standard_code) AS standard_code,
           any(value) AS value, any(unit) AS unit, any(rule_id) AS rule_id,
           any(rule_description) AS rule_description, any(severity) AS severity,
           any(ordering_department) AS ordering_department,
           max(escalation_level) AS level, min(raised_at) AS first_raised,
           argMax(tuple(notify), tuple(escalation_level, ifNull(status_at, raised_at))).1
               AS step_notify,
           argMax(tuple(deadline), tuple(escalation_level, ifNull(status_at, raised_at))).1
               AS step_deadline,
           countIf(status = 'acknowledged') AS acknowledgements
    FROM critical_alert_events
    WHERE {facility:String} = '' OR critical_alert_events.facility_id = {facility:String}
    GROUP BY alert_id
)
WHERE acknowledgements = 0
ORDER BY deadline IS NULL, deadline, raised_at
LIMIT {limit:UInt32}
"""

REVIEWS = """
SELECT pair_id, argMax(status, tuple(status != 'open', ingested_at)) AS status,
       any(score) AS score, any(left_facility_id) AS left_facility_id,
       any(right_facility_id) AS right_facility_id, any(comparison) AS comparison,
       min(created_at) AS created_at, count() OVER () AS total
FROM empi_reviews
GROUP BY pair_id
HAVING status = 'open'
ORDER BY score DESC, created_at, pair_id
LIMIT {limit:UInt32}
"""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _rows(warehouse: Warehouse, sql: str, parameters: Mapping[str, Any]
          ) -> list[dict[str, Any]]:
    columns, rows = warehouse.query_rows(sql, parameters, read_only=True)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _listing(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"total": n, "items": [...]}``: the rows as JSON values, ``total`` before the limit."""
    total = int(rows[0]["total"]) if rows else 0
    return {"total": total,
            "items": [{k: jsonable(v) for k, v in row.items() if k != "total"} for row in rows]}


def facilities(warehouse: Warehouse, registry: FacilityRegistry, now: datetime,
               thresholds: Thresholds, excused: Collection[str] = ()) -> list[dict[str, Any]]:
    """Every facility registered or heard from in `LAST_SEEN_DAYS`, with its counts and
    status: failing first, then silent, quiet and ok, each by id. Dead letters in
    ``excused`` (retried and accepted) are not counted as failures."""
    counts = {row["facility_id"]: row for row in _rows(warehouse, FACILITY_COUNTS, {
        "since_ms": _ms(now - timedelta(days=1)), "hour_ms": _ms(now - timedelta(hours=1)),
        "facility": "", "excused": sorted(excused)})}
    seen = {row["facility_id"]: row for row in _rows(warehouse, LAST_SEEN, {
        "since_ms": _ms(now - timedelta(days=LAST_SEEN_DAYS))})}
    names = {facility.id: facility.name for facility in registry.facilities()}
    found: list[dict[str, Any]] = []
    for facility_id in sorted(set(names) | set(counts) | set(seen)):
        count, last = counts.get(facility_id, {}), seen.get(facility_id, {})
        activity = Activity(
            messages_hour=int(count.get("messages_hour", 0)),
            messages_day=int(count.get("messages_day", 0)),
            errors_hour=int(count.get("errors_hour", 0)),
            errors_day=int(count.get("errors_day", 0)),
            last_message_at=last.get("last_message_at"))
        found.append({
            "facility_id": facility_id, "name": names.get(facility_id) or None,
            "registered": facility_id in names,
            "status": status(activity, now, thresholds),
            **{k: jsonable(v) for k, v in asdict(activity).items()},
            "last_error_at": jsonable(last.get("last_error_at")),
            "error_rate_hour": error_rate(activity.messages_hour, activity.errors_hour),
            "error_rate_day": error_rate(activity.messages_day, activity.errors_day),
        })
    order = {"failing": 0, "silent": 1, "quiet": 2, "ok": 3}
    found.sort(key=lambda row: (order[row["status"]], row["facility_id"]))
    return found


def series(warehouse: Warehouse, now: datetime, facility: str = "",
           excused: Collection[str] = ()) -> dict[str, Any]:
    """Messages and dead letters (but those in ``excused``) per `BUCKET_S` seconds over the
    last day, per facility: ``messages[i]`` counts bucket ``i`` from ``start`` (the last
    one is under way)."""
    start = bucket_start(now)
    per: dict[str, dict[str, list[int]]] = {}
    for row in _rows(warehouse, SERIES, {"since_ms": _ms(start), "facility": facility,
                                         "excused": sorted(excused)}):
        bucket = int(row["bucket"])
        if not 0 <= bucket < BUCKETS:
            continue  # received "in the future" (a clock ahead of ours): left out
        lines = per.setdefault(row["facility_id"], {"messages": [0] * BUCKETS,
                                                    "errors": [0] * BUCKETS})
        lines["messages"][bucket] = int(row["messages"])
        lines["errors"][bucket] = int(row["errors"])
    return {"start": jsonable(start), "bucket_s": BUCKET_S, "buckets": BUCKETS,
            "facilities": per}


def dead_letters(warehouse: Warehouse, since: datetime, facility: str = "",
                 limit: int = 100) -> dict[str, Any]:
    """Dead letters since ``since``, newest first (no payload: its size only)."""
    return _listing(_rows(warehouse, DEAD_LETTERS, {"since_ms": _ms(since),
                                                    "facility": facility, "limit": limit}))


def dead_letter(warehouse: Warehouse, dead_letter_id: str) -> dict[str, Any] | None:
    """One dead letter as the warehouse has it, or None."""
    rows = _rows(warehouse, DEAD_LETTER, {"dead_letter_id": dead_letter_id})
    return {k: jsonable(v) for k, v in rows[0].items()} if rows else None


def unmapped(warehouse: Warehouse, facility: str = "", limit: int = 100) -> dict[str, Any]:
    """Local codes no map covers now, the most frequent first."""
    return _listing(_rows(warehouse, UNMAPPED, {"facility": facility, "limit": limit}))


def open_alerts(warehouse: Warehouse, facility: str = "", limit: int = 100) -> dict[str, Any]:
    """Critical-value alerts not acknowledged, the nearest deadline first."""
    return _listing(_rows(warehouse, ALERTS, {"facility": facility, "limit": limit}))


def open_reviews(warehouse: Warehouse, limit: int = 100) -> dict[str, Any]:
    """EMPI pairs waiting for a reviewer, the likeliest first (no patient ids)."""
    return _listing(_rows(warehouse, REVIEWS, {"limit": limit}))
