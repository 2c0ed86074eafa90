"""A record written again with most fields as read (schemas.wire.encode_changed) is what the
writer gives for it, with the unchanged fields' bytes copied rather than written."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hutong.errors import SchemaError, WireFormatError
from schemas import catalog, wire
from schemas.catalog import SchemaEntry
from schemas.reader import compile_fields_reader
from schemas.writer import compile_splicer
from tests.unit.test_wire_roundtrip import STRATEGIES
from tests.warehouse_events import diagnosis

ENTRIES = catalog.all_schemas()
MANY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@MANY
@given(data=st.data())
def test_any_fields_replaced_are_written_as_the_whole_record_would_be(
        entry: SchemaEntry, data: st.DataObject) -> None:
    before = wire.encode(entry, data.draw(STRATEGIES[entry.name]))
    other = data.draw(STRATEGIES[entry.name])
    names = [field["name"] for field in entry.parsed["fields"]]
    replaced = data.draw(st.sets(st.sampled_from(names)))
    read = wire.decode_framed(before)
    record = {**read.record, **{name: other[name] for name in replaced}}
    assert wire.encode_changed(entry, read, record) == wire.encode(entry, record, checked=False)


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@MANY
@given(data=st.data())
def test_fields_as_read_are_the_bytes_as_read(entry: SchemaEntry, data: st.DataObject) -> None:
    before = wire.encode(entry, data.draw(STRATEGIES[entry.name]))
    read = wire.decode_framed(before)
    assert read.record == wire.decode(before)[1]
    assert read.starts is not None
    assert read.starts[0] == wire.HEADER_SIZE and read.starts[-1] == len(before)
    assert list(read.starts) == sorted(read.starts)
    assert wire.encode_changed(entry, read, dict(read.record)) == before
    for field in entry.parsed["fields"]:
        alone = parse_schema({"type": "record", "name": "One", "fields": [
            {"name": "v", "type": field["type"]}]}, named_schemas=_named(entry))
        assert read.field_bytes(field["name"]) == _body(alone, read.record[field["name"]])


def _named(entry: SchemaEntry) -> dict[str, Any]:
    named: dict[str, Any] = {}
    parse_schema(json.loads(entry.schema_str), named_schemas=named)
    return named


def _body(parsed: Any, value: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, parsed, {"v": value})
    return out.getvalue()


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@settings(max_examples=30, deadline=None)
@given(body=st.binary(max_size=64))
def test_junk_is_refused_as_decode_refuses_it(entry: SchemaEntry, body: bytes) -> None:
    framed = b"\x00" + entry.schema_id.to_bytes(4, "big") + body
    try:
        expected: Any = wire.decode(framed)[1]
    except WireFormatError as exc:
        expected = str(exc)
    try:
        got: Any = wire.decode_framed(framed).record
    except WireFormatError as exc:
        got = str(exc)
    assert got == expected


DIAGNOSIS = catalog.schema("diagnosis")


def read_diagnosis(**overrides: Any) -> wire.Framed:
    return wire.decode_framed(wire.encode(DIAGNOSIS, diagnosis(**overrides)))


def test_a_record_of_another_schema_is_written_whole() -> None:
    read = read_diagnosis()
    other = catalog.schema("lab-result")
    assert other.schema_id != DIAGNOSIS.schema_id
    with pytest.raises(SchemaError, match="'lab-result'"):  # written whole: no test_code
        wire.encode_changed(other, read, {**read.record, "empi_id": "E1"})


def test_a_replaced_value_that_does_not_fit_raises_naming_the_schema_only() -> None:
    read = read_diagnosis()
    with pytest.raises(SchemaError) as raised:
        wire.encode_changed(DIAGNOSIS, read, {**read.record, "empi_id": 13800138000})
    assert "diagnosis" in str(raised.value) and "13800138000" not in str(raised.value)


def test_a_value_changed_in_place_is_not_seen() -> None:
    """The documented limit: replace a value read, never change it in place."""
    read = read_diagnosis(quality_warnings=[])
    record = dict(read.record)
    record["quality_warnings"].append("late")  # the very list read
    assert wire.decode(wire.encode_changed(DIAGNOSIS, read, record))[1]["quality_warnings"] == []
    record["quality_warnings"] = ["late"]  # replaced: written
    assert wire.decode(wire.encode_changed(DIAGNOSIS, read, record))[1]["quality_warnings"] == [
        "late"]


def test_what_the_compiled_code_does_not_cover_is_not_spliced() -> None:
    parsed: Any = parse_schema({"type": "record", "name": "E", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED"]}}]})
    assert compile_fields_reader(parsed) is None and compile_splicer(parsed) is None
