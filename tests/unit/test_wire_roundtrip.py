"""Randomised round trips through the wire format, for every schema of the catalog.

``records(schema)`` turns a fastavro-parsed Avro schema into a Hypothesis strategy for valid
records: so every field of every schema, present and future, is exercised without listing them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from hutong.errors import WireFormatError
from schemas import catalog, wire
from schemas.catalog import SchemaEntry

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)  # CJK unified ideographs
TEXT = st.text(max_size=12) | st.text(CHINESE, max_size=6)
# timestamp-millis: timezone-aware, whole milliseconds; Avro keeps the instant, not the zone.
TIMESTAMPS = st.datetimes(
    min_value=dt.datetime(2, 1, 1),  # a day's margin: the UTC instant must be a datetime too
    max_value=dt.datetime(9998, 12, 31),
    timezones=st.sampled_from([dt.UTC, BEIJING]),
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "double": st.floats(allow_nan=False),
    "string": TEXT,
    "bytes": st.binary(max_size=24),
}
LOGICAL: dict[str, st.SearchStrategy[Any]] = {"timestamp-millis": TIMESTAMPS, "date": st.dates()}


def records(schema: Any, named: dict[str, st.SearchStrategy[Any]] | None = None) -> Any:
    """A strategy for values of ``schema`` (records, unions, arrays, maps, primitives)."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of([records(branch, named) for branch in schema])
    if isinstance(schema, str):
        return named[schema] if schema in named else PRIMITIVES[schema]
    if schema.get("logicalType") in LOGICAL:
        return LOGICAL[schema["logicalType"]]
    kind = schema["type"]
    if kind == "record":
        fields = {field["name"]: records(field["type"], named) for field in schema["fields"]}
        named[schema["name"]] = st.fixed_dictionaries(fields)
        return named[schema["name"]]
    if kind == "array":
        return st.lists(records(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(TEXT, records(schema["values"], named), max_size=3)
    return PRIMITIVES[kind]


ENTRIES = catalog.all_schemas()
STRATEGIES = {entry.name: records(entry.parsed) for entry in ENTRIES}
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@FAST
@given(data=st.data())
def test_decode_of_encode_is_the_record(entry: SchemaEntry, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[entry.name])
    decoded_entry, decoded = wire.decode(wire.encode(entry, record))
    assert decoded_entry is entry
    assert decoded == record


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
@FAST
@given(body=st.binary(max_size=64))
def test_any_body_decodes_or_raises_wire_format_error(entry: SchemaEntry, body: bytes) -> None:
    framed = b"\x00" + entry.schema_id.to_bytes(4, "big") + body
    try:
        decoded_entry, _ = wire.decode(framed)
    except WireFormatError:
        return
    assert decoded_entry is entry


def test_the_strategies_reach_chinese_text_and_beijing_time() -> None:
    once = settings(database=None)
    find(TEXT, lambda text: any("\u4e00" <= char <= "\u9fff" for char in text), settings=once)
    find(TIMESTAMPS, lambda moment: moment.tzinfo is BEIJING, settings=once)
