"""The compiled Avro reader (schemas.reader) reads what fastavro reads, into equal records."""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import catalog
from schemas.catalog import SchemaEntry
from schemas.reader import READER_ERRORS, Reader, compile_reader
from tests.unit.test_avro_writer import BASE, EDGES, deep_arrays, fastavro_bytes
from tests.unit.test_wire_roundtrip import STRATEGIES

ENTRIES = catalog.all_schemas()
MANY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reader_of(parsed: Any) -> Reader:
    reader = compile_reader(parsed)
    assert reader is not None
    return reader


READERS = {entry.name: reader_of(entry.parsed) for entry in ENTRIES}


def fastavro_read(parsed: Any, body: bytes) -> tuple[Any, int]:
    stream = BytesIO(body)
    return schemaless_reader(stream, parsed, None), stream.tell()


def same(a: Any, b: Any) -> bool:
    """Equal, and every datetime in the same zone (== on datetimes compares instants)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dt.datetime):
        return isinstance(b, dt.datetime) and a == b and a.utcoffset() == b.utcoffset()
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@MANY
@given(data=st.data())
def test_every_catalog_record_reads_as_fastavro_reads_it(entry: SchemaEntry,
                                                         data: st.DataObject) -> None:
    body = fastavro_bytes(entry.parsed, data.draw(STRATEGIES[entry.name]))
    record, end = READERS[entry.name](b"head" + body, 4)
    assert end == 4 + len(body)
    assert same(record, fastavro_read(entry.parsed, body)[0])


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@MANY
@given(body=st.binary(max_size=96))
def test_junk_is_refused_or_read_as_fastavro_reads_it(entry: SchemaEntry, body: bytes) -> None:
    """Never another record than fastavro's: refused (READER_ERRORS, or an end past the
    bytes), or the same record with the same end."""
    try:
        record, end = READERS[entry.name](body, 0)
    except READER_ERRORS:
        return
    if end > len(body):
        return  # a length past the end: the caller's offset check refuses it
    expected, expected_end = fastavro_read(entry.parsed, body)
    assert (end, same(record, expected)) == (expected_end, True)


def test_edges_read_back() -> None:
    record = {**BASE, "n": -(2**63), "i": 2**31 - 1, "day": dt.date(1, 1, 1),
              "tags": ["甲", "x" * 300], "attrs": {"钾": 6.8}, "raw": b"\x00\xff", "s": ""}
    body = fastavro_bytes(EDGES, record)
    assert same(reader_of(EDGES)(body, 0)[0], fastavro_read(EDGES, body)[0])


@pytest.mark.parametrize(("body", "what"), [
    (b"\x02" + b"\xff" * 10 + b"\x01", "a varint of eleven bytes"),
    (b"\x02" + b"\xff" * 9 + b"\x7f", "a varint outside 64 bits"),
    (b"\x04", "union index 2 of two branches"),
    (b"\x80\x00", "union index 0 in two bytes"),
    (b"\x02", "the bytes end inside the value"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_what_the_reader_refuses(body: bytes, what: str) -> None:
    schema = parse_schema({"type": "record", "name": "N", "fields": [
        {"name": "n", "type": ["null", "long"]}]})
    with pytest.raises(READER_ERRORS):
        reader_of(schema)(body, 0)


def test_a_negative_length_is_refused() -> None:
    schema = parse_schema({"type": "record", "name": "S", "fields": [
        {"name": "s", "type": "string"}]})
    with pytest.raises(READER_ERRORS):
        reader_of(schema)(b"\x01abc", 0)


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "E", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "Sex", "symbols": ["M", "F"]}}]},
    {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    {"type": "record", "name": "W", "fields": [
        {"name": "d", "type": {"type": "long", "logicalType": "date"}}]},
    deep_arrays(40),
], ids=["enum", "recursive", "date-on-a-long", "arrays-40-deep"])
def test_what_it_does_not_cover_is_left_to_fastavro(schema: dict[str, Any]) -> None:
    assert compile_reader(parse_schema(schema)) is None
