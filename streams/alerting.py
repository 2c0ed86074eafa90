"""The critical-value loop in the stream worker: raise, escalate, acknowledge (危急值闭环).

Two agents and a timer, thin around :mod:`streams.alerts`:

``critical-values``
    the translation stage compares every standard result with its facility's
    rules as it writes it (:func:`~streams.alerts.evaluate.evaluate`, a few
    microseconds) and copies the rare one that crosses a rule to
    ``hutong.alerts.candidates``, keyed like the results (by EMPI id); this
    agent reads those, asks the de-duplication, and raises the alert on
    ``hutong.alerts.critical`` (status ``raised``, the ordering provider to
    notify, a deadline). The de-duplication state is the ``alert-dedup`` table,
    partitioned like the candidates. (Reading every standard result here
    instead would double the worker's Kafka messages for the 1-2 % that matter.)
``alert-tracker``
    reads ``hutong.alerts.critical`` and ``hutong.alerts.ack`` (both keyed by
    alert id) one by one, keeps each alert's latest state in the
    ``alerts-open`` table, and answers an acknowledgement with the
    ``acknowledged`` state (who, when, how), after which nothing escalates. An
    acknowledgement that arrives before its alert waits for it (it is stored);
    one for an alert that is closed already is a dead letter with the reason.
the timer
    every second, each open alert whose deadline passed is escalated to the
    next step of its facility's plan (on-duty doctor, then the medical affairs
    office, ...): a new state on ``hutong.alerts.critical``.

Every state goes to the warehouse (``critical_alert_events``, the view
``critical_alerts`` with the turnaround) and to webhooks. Alert ids are derived
from the result and the rule, so a replayed result raises the same alert.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from hutong.config import Settings
from hutong.errors import SchemaError, WireFormatError
from hutong.metrics import StageMetrics
from hutong.metrics.labels import oldest_age
from schemas import wire
from schemas.registry import Resolver
from streams.alerts.dedup import Dedup
from streams.alerts.evaluate import evaluate
from streams.alerts.lifecycle import acknowledge, escalate, raise_alert
from streams.alerts.live import LiveRuleBook
from streams.alerts.loading import RuleBook
from streams.topology import ALERTS_TABLE, CANDIDATES_TOPIC, DEDUP_TABLE

__all__ = ["ACK_TOPIC", "ALERTS_TOPIC", "CANDIDATES_TOPIC", "add_alerting", "candidate_check"]

log = logging.getLogger(__name__)

ALERTS_TOPIC = "hutong.alerts.critical"
ACK_TOPIC = "hutong.alerts.ack"
_RESULT_TYPES = frozenset({"lab-result", "imaging-report"})
_BATCH = 500
_WITHIN_S = 0.05
#: An acknowledgement waits this long for an alert it names before it is a dead letter.
_ACK_GRACE = timedelta(minutes=10)
#: Closed alerts are forgotten this long after they closed.
_KEEP_CLOSED = timedelta(days=2)

DeadLetter = Callable[[Any, str], Any]
AsCurrent = Callable[[Any], None]


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, default=_iso, ensure_ascii=False).encode()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


_TIMES = ("raised_at", "observed_at", "deadline", "status_at", "acknowledged_at")


def _load(raw: bytes) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(raw)
    for name in _TIMES:
        if record.get(name):
            record[name] = datetime.fromisoformat(record[name])
    return record


Rules = RuleBook | LiveRuleBook


def candidate_check(book: Rules) -> Callable[[dict[str, Any]], bool]:
    """Whether a standard event crosses one of its facility's rules (a candidate alert)."""
    def crosses(event: dict[str, Any]) -> bool:
        if event["event_type"] not in _RESULT_TYPES:
            return False
        return bool(evaluate(event, book.for_facility(event["facility_id"])))

    return crosses


def add_alerting(app: faust.App, settings: Settings, ids: Resolver, book: Rules, *,
                 dead_letter: DeadLetter, as_current: AsCurrent,
                 durably: Callable[[Any], Any], stages: StageMetrics | None = None) -> None:
    """Add the critical-value agents, tables and timer to ``app``; ``stages`` counts the
    candidates read and the alerts raised (stage ``alerts``)."""
    window = timedelta(minutes=settings.critical_value_window_minutes)

    def named(*names: str) -> Any:
        return app.topic(*names, value_type=bytes, key_type=bytes)

    results, alerts = named(CANDIDATES_TOPIC), named(ALERTS_TOPIC)
    dedup_table = app.Table(DEDUP_TABLE, partitions=settings.topic_partitions,
                            key_type=bytes, value_type=bytes)
    open_table = app.Table(ALERTS_TABLE, partitions=settings.topic_partitions,
                           key_type=bytes, value_type=bytes)
    dedup: list[Dedup] = []  # rebuilt from the table when the partitions move
    tracked: dict[str, dict[str, Any]] = {}  # the open alerts of this worker's partitions
    loaded: list[bool] = []
    sent_steps: set[tuple[str, int]] = set()
    alert_schema = ids.for_topic(ALERTS_TOPIC)

    @app.on_partitions_revoked.connect
    async def _forget(_: Any, /, *args: Any, signal: Any = None, **__: Any) -> None:
        dedup.clear()
        loaded.clear()
        tracked.clear()

    def _dedup() -> Dedup:
        if not dedup:
            entries = {key.decode(): json.loads(value) for key, value in dedup_table.items()}
            dedup.append(Dedup.restore(entries, window))
        return dedup[0]

    def _tracked() -> dict[str, dict[str, Any]]:
        if not loaded:
            tracked.clear()
            for key, value in open_table.items():
                if not key.startswith(b"ack:"):
                    tracked[key.decode()] = _load(value)
            loaded.append(True)
        return tracked

    async def _send(alert: dict[str, Any]) -> Any:
        return await alerts.send(key=alert["alert_id"].encode(),
                                 value=wire.encode(alert_schema, alert))

    @app.agent(results, name="critical-values")
    async def critical_values(stream: Any) -> None:
        async for batch in stream.take_events(_BATCH, within=_WITHIN_S):
            await durably(_evaluate(batch))

    async def _evaluate(batch: list[Any]) -> None:
        state = _dedup()
        pending: list[Any] = []
        received: list[Any] = []
        now = datetime.now(UTC)
        for event in batch:
            try:
                _, record = wire.decode(event.value, ids.by_id)
            except (WireFormatError, SchemaError) as exc:
                # The warehouse sink reads the same record and writes its dead letter.
                log.warning("critical values: record at %s[%d]@%d skipped: %s",
                            event.message.topic, event.message.partition,
                            event.message.offset, exc)
                continue
            received.append(record.get("received_at"))
            rules = book.for_facility(record["facility_id"])
            for hit in evaluate(record, rules):
                if state.admit(record, hit).alert:
                    pending.append(await _send(raise_alert(record, hit, rules, raised_at=now)))
            changes = state.changes()
            if changes:
                as_current(event)  # this result's partition holds its patient's state
                for key, entry in changes.items():
                    if entry is None:
                        dedup_table.pop(key.encode(), None)
                    else:
                        dedup_table[key.encode()] = json.dumps(entry).encode()
        await asyncio.gather(*pending)
        if stages is not None:
            stages.passed("alerts", len(batch), len(pending),
                          oldest_age(received, datetime.now(UTC)))

    @app.agent(named(ALERTS_TOPIC, ACK_TOPIC), name="alert-tracker")
    async def alert_tracker(stream: Any) -> None:
        async for event in stream.events():  # one by one: each writes its own partition
            await durably(_track(event))

    async def _track(event: Any) -> None:
        known = _tracked()
        try:
            entry, record = wire.decode(event.value, ids.by_id)
        except (WireFormatError, SchemaError) as exc:
            await (await dead_letter(event, str(exc)))
            return
        alert_id = record["alert_id"]
        if entry.name == "critical-alert":
            _keep(known, record)
            waiting = open_table.get(f"ack:{alert_id}".encode())
            if waiting is not None and record["status"] != "acknowledged":
                await _answer(event, known.get(alert_id), _load(waiting))
            return
        await _answer(event, known.get(alert_id), record)

    def _keep(known: dict[str, dict[str, Any]], alert: dict[str, Any]) -> None:
        held = known.get(alert["alert_id"])
        if held is not None and (held["status"] == "acknowledged" or held["escalation_level"]
                                 > alert["escalation_level"]):
            return  # an older state read again
        known[alert["alert_id"]] = alert
        open_table[alert["alert_id"].encode()] = _dump(alert)

    async def _answer(event: Any, alert: dict[str, Any] | None, ack: dict[str, Any]) -> None:
        outcome = acknowledge(alert, ack)
        key = f"ack:{ack['alert_id']}".encode()
        if outcome.record is not None:
            open_table.pop(key, None)
            _keep(_tracked(), outcome.record)  # closed now: the clock must not escalate it
            await (await _send(outcome.record))
            return
        if outcome.refused == "unknown-alert" and datetime.now(UTC) - ack[
                "acknowledged_at"] < _ACK_GRACE:
            open_table[key] = _dump(ack)  # its alert is on its way (another topic)
            return
        open_table.pop(key, None)
        log.warning("acknowledgement of alert %s not applied: %s", ack["alert_id"],
                    outcome.refused)
        await (await dead_letter(event, f"acknowledgement not applied: {outcome.refused}"))

    async def _escalate_due() -> None:
        now = datetime.now(UTC)
        for alert_id, alert in list(_tracked().items()):
            if alert["status"] == "acknowledged":
                closed = alert.get("acknowledged_at") or now
                if now - closed > _KEEP_CLOSED:
                    tracked.pop(alert_id, None)
                continue
            plan = book.for_facility(alert["facility_id"]).escalation
            step = escalate(alert, now, plan)
            if step is None or (alert_id, step["escalation_level"]) in sent_steps:
                continue
            sent_steps.add((alert_id, step["escalation_level"]))
            log.info("alert %s escalated to step %d (%s)", alert_id, step["escalation_level"],
                     step["notify"])
            await (await _send(step))

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def _escalation_clock() -> None:
        recovery: Any = getattr(app.tables, "recovery", None)
        if app.in_recovery or recovery is None or not recovery.completed.is_set():
            return  # the open alerts are not all read back yet
        try:
            await _escalate_due()
        except Exception:
            log.exception("escalation check failed; trying again in a second")
