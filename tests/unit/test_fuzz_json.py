"""Bad input, JSON events: submissions built from the Avro schemas, then broken.

A valid submission is generated from each event type's schema (``schemas/*.avsc``):
every field a sender may set, with values of its type, timestamps as ISO text. It
is then mutated: a value anywhere replaced by any JSON value, a field added that
the schema lacks or that hutong sets, a required one removed, the body nested
deeply or cut. Through the intake (``adapt_json``, records, dead letter) every
submission ends in events that fit their schemas (AA) or in a dead letter whose
reason names a JSON path, is bounded, quotes no value, and is not an "internal
error".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.facilities import Peer
from hutong.errors import HL7Error
from hutong.metrics import Metrics
from producers.intake import Intake, Receipt
from producers.json_events import MAX_EVENTS, SET_BY_HUTONG, adapt_json
from producers.kafka import OutRecord
from producers.records import DLQ_TOPIC
from schemas import catalog, wire
from tests.fuzzing import PATIENT_MARK, TIMEOUT, fuzzed, hanzi

pytestmark = TIMEOUT

NOW = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
TYPES = tuple(t for t in catalog.EVENT_TYPES if t != "document")
#: Set by hutong from the key, the message id and the clock: never generated.
HEADER = SET_BY_HUTONG | {"event_type", "received_at", "source_patient_id"}
MAX_REASON = 300

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False), st.text(max_size=20))
any_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=12)
marked_text = st.one_of(st.text(max_size=12), hanzi(1, 6)).map(lambda t: PATIENT_MARK + t)
timestamps = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-11-22T09:30:00+08:00", "2026-11-22T09:30:00", "2026-11-22",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "", "now",
                     "2026-13-01T00:00:00+08:00", "2026-11-22T09:30:00.123456789+08:00"]))
dates = st.one_of(st.dates().map(lambda d: d.isoformat()),
                  st.sampled_from(["1949-12-31", "0001-01-01", "9999-12-31", "1949-02-30", "",
                                   "19491231", "1949-12-31T00:00"]))


def _named(schema: Any, names: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema in names:
        return names[schema]
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum") and "name" in schema:
        names[schema["name"]] = schema
    return schema


def value_for(schema: Any, names: dict[str, Any]) -> st.SearchStrategy[Any]:
    """JSON a sender could put for ``schema`` (mostly valid)."""
    schema = _named(schema, names)
    if isinstance(schema, list):
        return st.one_of([value_for(branch, names) for branch in schema])
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical == "timestamp-millis":
            return timestamps
        if logical == "date":
            return dates
        kind = schema["type"]
        if kind == "record":
            return record_for(schema, names, skip=frozenset())
        if kind == "array":
            return st.lists(value_for(schema["items"], names), max_size=3)
        if kind == "enum":
            return st.sampled_from(schema["symbols"])
        if kind == "map":
            return st.dictionaries(st.text(max_size=5), value_for(schema["values"], names),
                                   max_size=2)
        return value_for(kind, names)
    return {
        "null": st.none(), "boolean": st.booleans(), "string": marked_text,
        "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(-1e30, 1e30), "double": st.floats(allow_nan=False),
        "bytes": st.text(max_size=5),
    }[schema]


def record_for(schema: dict[str, Any], names: dict[str, Any], *,
               skip: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = {}, {}
    for spec in schema["fields"]:
        if spec["name"] in skip:
            continue
        target = optional if "default" in spec else required
        target[spec["name"]] = value_for(spec["type"], names)
    return st.fixed_dictionaries(required, optional=optional)


def event_for(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = catalog.for_topic(f"hutong.events.{kind}").parsed
    return record_for(schema, {}, skip=frozenset(HEADER)).map(
        lambda fields: {"event_type": kind, **fields})


events = st.sampled_from(TYPES).flatmap(event_for)


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*here, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += paths(item, (*here, n))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    out = list(value)
    out[head] = replaced(out[head], rest, new)
    return out


@st.composite
def submissions(draw: st.DrawFn) -> bytes:
    body: Any = {"message_id": draw(st.text(min_size=1, max_size=20) | st.just("M-1")),
                 "events": draw(st.lists(events, min_size=1, max_size=3))}
    if draw(st.booleans()):
        body["source_system"] = draw(json_scalars)
    for _ in range(draw(st.integers(0, 3))):
        choice = draw(st.sampled_from(["replace", "unknown", "hutong", "remove", "none"]))
        where = draw(st.sampled_from(paths(body)))
        if choice == "replace":
            body = replaced(body, where, draw(any_json | marked_text))
        elif choice in ("unknown", "hutong") and where and isinstance(
                target := _at(body, where), dict):
            key = draw(st.text(max_size=8)) if choice == "unknown" else draw(
                st.sampled_from(sorted(SET_BY_HUTONG)))
            body = replaced(body, where, {**target, key: draw(json_scalars)})
        elif choice == "remove" and where and isinstance(target := _at(body, where), dict) \
                and target:
            key = draw(st.sampled_from(sorted(target)))
            body = replaced(body, where, {k: v for k, v in target.items() if k != key})
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "gb18030"])),
                       errors="surrogatepass")


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


class Recorder:
    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    async def send(self, records: Sequence[OutRecord]) -> None:
        self.sent.extend(records)


def check(payload: bytes) -> Receipt:
    recorder = Recorder()
    intake = Intake(recorder, Metrics(), clock=lambda: NOW)  # type: ignore[arg-type]
    receipt = asyncio.run(intake.receive_content(
        payload, Peer("http", "127.0.0.1", "FUZZ", "API key"), adapt_json))
    assert receipt.stored and receipt.code in {"AA", "AE", "AR"}
    if receipt.code == "AA":
        topics = [r.topic for r in recorder.sent]
        assert topics[0] == "hutong.raw.json" and len(topics) >= 2
        for record in recorder.sent[1:]:
            assert record.topic.startswith("hutong.events.")
        return receipt
    error = receipt.error
    assert isinstance(error, HL7Error)
    assert not error.reason.startswith("internal error"), error.reason
    assert error.location, error.reason
    assert len(str(error)) <= MAX_REASON, str(error)[:400]
    assert PATIENT_MARK not in str(error), str(error)
    assert recorder.sent[0].topic == DLQ_TOPIC
    assert wire.decode(recorder.sent[0].value)[1]["payload"] == payload
    return receipt


@fuzzed(250)
@given(submissions())
def test_submissions_end_in_events_or_a_located_dead_letter(payload: bytes) -> None:
    check(payload)


@fuzzed(200)
@given(any_json.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=500))
def test_any_json_or_bytes(payload: bytes) -> None:
    check(payload)


def test_unmutated_submissions_are_accepted() -> None:
    """The generator's starting point is valid, so the mutations test the checks."""
    accepted = 0

    @fuzzed(60)
    @given(st.sampled_from(TYPES).flatmap(event_for))
    def one(event: dict[str, Any]) -> None:
        nonlocal accepted
        body = json.dumps({"message_id": "M-1", "events": [event]}).encode()
        accepted += check(body).code == "AA"

    one()
    assert accepted >= 20


def test_hostile_shapes() -> None:
    """Deep nesting, huge numbers, huge keys, too many events: each a located 4xx."""
    event = {"event_type": "lab-result", "patient": {"source_patient_id": "J1"}}
    cases = {
        b"[" * 100_000 + b"]" * 100_000: "body",
        b'{"message_id": "m", "events": ' + b"[" * 50_000 + b"]" * 50_000 + b"}": "body",
        b'{"message_id": "m", "events": [{"set_id": ' + b"9" * 10_000 + b"}]}": "body",
        json.dumps({"message_id": "m", "events": [{**event, "x" * 100_000: 1}]}).encode():
            "events[0]",
        json.dumps({"message_id": "m", "events": [event] * (MAX_EVENTS + 1)}).encode(): "events",
        json.dumps({"message_id": "m", "events": [
            {**event, "patient": {"source_patient_id": "J1", "id_card_number": 110105}}]}
        ).encode(): "events[0].patient.id_card_number",
        json.dumps({"message_id": "m", "events": [{**event, "quality_warnings": 5}]}).encode():
            "events[0].quality_warnings",
        json.dumps({"message_id": "m", "events": [{**event, "quality_warnings": "abc"}]}
                   ).encode(): "events[0].quality_warnings",
        json.dumps({"message_id": "m", "events": [
            {**event, "occurred_at": "0001-01-01T00:00:00+14:00"}]}).encode():
            "events[0].occurred_at",
    }
    for payload, location in cases.items():
        receipt = check(payload)
        assert receipt.code != "AA" and receipt.error is not None
        assert receipt.error.location == location, (location, receipt.error)
