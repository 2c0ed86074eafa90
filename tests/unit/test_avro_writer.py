"""The compiled Avro writer (schemas.writer) writes what fastavro writes, byte for byte."""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import catalog
from schemas.catalog import SchemaEntry
from schemas.writer import WRITER_ERRORS, Writer, compile_writer
from tests.unit.test_wire_roundtrip import STRATEGIES

ENTRIES = catalog.all_schemas()
MANY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fastavro_bytes(parsed: Any, record: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, parsed, record)
    return out.getvalue()


def writer_of(parsed: Any) -> Writer:
    writer = compile_writer(parsed)
    assert writer is not None
    return writer


WRITERS = {entry.name: writer_of(entry.parsed) for entry in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@MANY
@given(data=st.data())
def test_every_catalog_record_is_written_as_fastavro_writes_it(entry: SchemaEntry,
                                                                 data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[entry.name])
    assert WRITERS[entry.name](record, b"") == fastavro_bytes(entry.parsed, record)


def test_the_prefix_goes_first() -> None:
    parsed = parse_schema({"type": "record", "name": "P", "fields": [
        {"name": "s", "type": "string"}]})
    assert writer_of(parsed)({"s": "钾"}, b"\x00\x00\x00\x00\x07") == (
        b"\x00\x00\x00\x00\x07" + fastavro_bytes(parsed, {"s": "钾"}))


EDGES = parse_schema({"type": "record", "name": "Edges", "fields": [
    {"name": "n", "type": "long"},
    {"name": "i", "type": ["null", "int"], "default": None},
    {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    {"name": "attrs", "type": {"type": "map", "values": "double"}, "default": {}},
    {"name": "flag", "type": "boolean", "default": True},
    {"name": "raw", "type": ["bytes", "null"]},  # null second: index 1
    {"name": "f", "type": "float"},
    {"name": "s", "type": "string", "default": "缺省"},
]})
BASE: dict[str, Any] = {"n": 0, "when": dt.datetime(2026, 12, 5, 8, 0, 0, 123000, dt.UTC),
                        "raw": None, "f": 1.5}


@pytest.mark.parametrize("changes", [
    {},
    {"n": -1}, {"n": 63}, {"n": 64}, {"n": -65}, {"n": 2**63 - 1}, {"n": -(2**63)},
    {"i": 2**31 - 1, "day": dt.date(1969, 12, 31), "tags": ["甲", "", "x" * 300]},
    {"when": dt.datetime(1900, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))},
    {"when": 1_764_921_600_000},  # already milliseconds
    {"when": dt.datetime(2026, 12, 5, 8, 0, 0, 999999)},  # naive: local time, as fastavro
    {"day": dt.datetime(2026, 12, 5, 23, 59), "i": None},  # a datetime as a date: its day
    {"attrs": {"钾": 6.8, "": -0.0}, "flag": False, "raw": b"\x00\xff", "s": "设定"},
], ids=lambda c: ",".join(c) or "defaults")
def test_edges_of_numbers_defaults_and_branches(changes: dict[str, Any]) -> None:
    record = {**BASE, **changes}
    assert writer_of(EDGES)(record, b"") == fastavro_bytes(EDGES, record)


@pytest.mark.parametrize(("changes", "what"), [
    ({"tags": "甲乙"}, "a string for an array (fastavro would write its characters)"),
    ({"tags": {"a": 1}}, "a mapping for an array"),
    ({"n": 1.5}, "a float for a long"),
    ({"n": "1"}, "a string for a long"),
    ({"f": "1.5"}, "a string for a float"),
    ({"s": 7}, "a number for a string"),
    ({"s": "\udc80"}, "a lone surrogate"),
    ({"when": "2026-12-05"}, "a string for a timestamp"),
    ({"attrs": [1.0]}, "a list for a map"),
    ({"n": None}, "null for a long"),
    ({"n": 2**63}, "a long past 64 bits"),
    ({"n": -(2**63) - 5}, "a long below 64 bits"),
    ({"n": True}, "a boolean for a long"),
    ({"i": 2**40}, "an int past 32 bits"),
    ({"i": -(2**31) - 1}, "an int below 32 bits"),
    ({"flag": "no"}, "a string for a boolean"),
    ({"flag": 1}, "a number for a boolean"),
    ({"raw": 7}, "a number for bytes (bytes(7) is seven zero bytes)"),
    ({"raw": 2**50}, "a huge number for bytes (no MemoryError)"),
    ({"raw": [104, 105]}, "a list for bytes"),
    ({"raw": "hi"}, "a string for bytes"),
    ({"tags": None}, "null for an array"),
    ({"tags": 0}, "zero for an array"),
    ({"attrs": None}, "null for a map"),
    ({"attrs": False}, "false for a map"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_record_that_does_not_fit_raises(changes: dict[str, Any], what: str) -> None:
    with pytest.raises(WRITER_ERRORS):
        writer_of(EDGES)({**BASE, **changes}, b"")


def test_an_empty_record_is_still_a_mapping() -> None:
    schema = parse_schema({"type": "record", "name": "Outer", "fields": [
        {"name": "inner", "type": {"type": "record", "name": "Empty", "fields": []}}]})
    assert writer_of(schema)({"inner": {}}, b"") == fastavro_bytes(schema, {"inner": {}})
    with pytest.raises(WRITER_ERRORS):
        writer_of(schema)({"inner": None}, b"")


def test_a_missing_field_without_a_default_raises() -> None:
    record = dict(BASE)
    del record["n"]
    with pytest.raises(WRITER_ERRORS):
        writer_of(EDGES)(record, b"")


def deep_arrays(depth: int) -> dict[str, Any]:
    """A record whose one field is an array of arrays ... ``depth`` deep (past what Python's
    parser takes in one function)."""
    items: Any = "long"
    for _ in range(depth):
        items = {"type": "array", "items": items}
    return {"type": "record", "name": "Deep", "fields": [{"name": "a", "type": items}]}


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "E", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "Sex", "symbols": ["M", "F"]}}]},
    {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["null", "string", "long"]}]},
    {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]},
    {"type": "record", "name": "D", "fields": [
        {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4}}]},
    {"type": "record", "name": "W", "fields": [
        {"name": "d", "type": {"type": "long", "logicalType": "date"}}]},
    {"type": "record", "name": "T", "fields": [
        {"name": "t", "type": {"type": "int", "logicalType": "timestamp-millis"}}]},
    deep_arrays(40),
], ids=["enum", "three-branch-union", "recursive", "decimal", "date-on-a-long",
        "timestamp-on-an-int", "arrays-40-deep"])
def test_what_it_does_not_cover_is_left_to_fastavro(schema: dict[str, Any]) -> None:
    assert compile_writer(parse_schema(schema)) is None
