"""Avro binary readers compiled from a schema, for the hot path.

The reading side of :mod:`schemas.writer`: :func:`compile_reader` turns a parsed
schema into the Python source of one function that reads a record of it from a
``bytes`` at an offset, field by field, and returns the record and the offset after
it. Where fastavro's reader walks the schema and a file-like object for every
value, the compiled one reads the bytes in place, a one-byte length or union index
without a call. The records are equal to fastavro's, ``datetime`` zones included
(a property test holds every catalog schema to it, ``tests/unit/test_avro_reader.py``);
``make bench`` measures both.

Bytes that are not a record of the schema raise, as fastavro's do, one of
:data:`READER_ERRORS`; the reader is stricter than fastavro in two places that
only a hostile or broken writer reaches: a varint longer than ten bytes or outside
64 bits, and a union index written in more than one byte, are refused rather than
read. It does not check that the bytes end with the record: the caller compares the
offset it returns with their length (``schemas.wire``). :func:`compile_reader`
returns ``None`` for a schema it does not cover (as :func:`~schemas.writer.compile_writer`).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Mapping
from typing import Any

from schemas.codegen import (
    GeneratedSource,
    Unsupported,
    compiled,
    null_union,
    opened,
    resolved,
    walked,
)

__all__ = ["READER_ERRORS", "FieldsReader", "Reader", "compile_fields_reader",
           "compile_reader"]

#: ``reader(data, offset)``: the record that starts at ``offset``, and the offset after it.
Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]
#: ``reader(data, offset)``: the record, the offset after it, and where each of its fields
#: starts, in the schema's order, then that offset after the last.
FieldsReader = Callable[[bytes, int], tuple[dict[str, Any], int, tuple[int, ...]]]

#: What a compiled reader raises for bytes that are not a record of its schema
#: (``IndexError`` and ``struct.error``: the bytes end inside the record).
READER_ERRORS = (IndexError, struct.error, ValueError, OverflowError)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_SHIFT = dt.date(1970, 1, 1).toordinal()
_TIMEDELTA = dt.timedelta


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """The zig-zag varint at ``offset`` (its first byte has the continuation bit) as an
    int, and the offset after it."""
    shift = z = 0
    while True:
        byte = data[offset]
        offset += 1
        z |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than ten bytes")
    if z >> 64:
        raise OverflowError("a varint outside 64 bits")
    return (z >> 1) ^ -(z & 1), offset


#: Datetimes read lately, by their milliseconds: the events of one message share their
#: times, and building a datetime costs more than a lookup. Emptied when full.
_TIMES: dict[int, dt.datetime] = {}
_TIMES_HELD = 4096


def _timestamp(ms: int) -> dt.datetime:
    held = _TIMES.get(ms)
    if held is None:
        if len(_TIMES) >= _TIMES_HELD:
            _TIMES.clear()
        held = _TIMES[ms] = _EPOCH + _TIMEDELTA(microseconds=ms * 1000)
    return held


def _date(days: int) -> dt.date:
    return dt.date.fromordinal(days + _DAYS_SHIFT)


_NAMESPACE = {"V": _varint, "TS": _timestamp, "DATE": _date,
              "UD": struct.Struct("<d").unpack_from, "UF": struct.Struct("<f").unpack_from}


def _long(src: GeneratedSource, target: str, depth: int) -> None:
    """Lines that read one zig-zag varint at ``p`` into ``target``."""
    src.emit(depth, f"{target} = d[p]; p += 1")
    src.emit(depth, f"if {target} & 0x80: {target}, p = V(d, p - 1)")
    src.emit(depth, f"else: {target} = ({target} >> 1) ^ -({target} & 1)")


def _read(src: GeneratedSource, schema: Any, target: str, depth: int,
          named: dict[str, Any], open_names: frozenset[str]) -> None:
    """Lines that read a value of ``schema`` at ``p`` into the variable ``target``."""
    if isinstance(schema, list):
        _union(src, schema, target, depth, named, open_names)
        return
    schema, kind, logical = resolved(schema, named, open_names)
    if kind == "null":
        src.emit(depth, f"{target} = None")
    elif kind == "boolean":
        src.emit(depth, f"{target} = d[p] != 0; p += 1")
    elif kind in ("int", "long"):
        _long(src, target, depth)
        if logical == "timestamp-millis":
            src.emit(depth, f"{target} = TS({target})")
        elif logical == "date":
            src.emit(depth, f"{target} = DATE({target})")
    elif kind in ("double", "float"):
        unpack, size = ("UD", 8) if kind == "double" else ("UF", 4)
        src.emit(depth, f"{target} = {unpack}(d, p)[0]; p += {size}")
    elif kind in ("string", "bytes"):
        n = src.var("n")
        # A length under 64 is one byte, even (zig-zag); anything else takes the varint.
        src.emit(depth, f"{n} = d[p]")
        src.emit(depth, f"if {n} & 0x81:")
        src.emit(depth + 1, f"{n}, p = V(d, p)")
        src.emit(depth + 1, f"if {n} < 0: raise ValueError('a negative length')")
        src.emit(depth, f"else: {n} >>= 1; p += 1")
        decoded = ".decode()" if kind == "string" else ""
        src.emit(depth, f"{target} = d[p:p + {n}]{decoded}; p += {n}")
    elif kind == "record":
        _record(src, schema, target, depth, named, open_names)
    elif kind in ("array", "map"):
        _blocks(src, schema, target, depth, named, open_names)
    else:
        raise Unsupported(f"type {kind}")


def _blocks(src: GeneratedSource, schema: dict[str, Any], target: str, depth: int,
            named: dict[str, Any], open_names: frozenset[str]) -> None:
    """An array or a map: blocks of a count (negative: a byte size follows) and the items,
    until a count of zero."""
    is_map = schema["type"] == "map"
    count, size, item, key = src.var("c"), src.var("s"), src.var("x"), src.var("k")
    src.emit(depth, f"{target} = {{}}" if is_map else f"{target} = []")
    src.emit(depth, "if d[p] == 0: p += 1")  # empty, as most are: no loop
    src.emit(depth, "else:")
    depth += 1
    src.emit(depth, "while True:")
    _long(src, count, depth + 1)
    src.emit(depth + 1, f"if not {count}: break")
    src.emit(depth + 1, f"if {count} < 0:")
    src.emit(depth + 2, f"{count} = -{count}")
    _long(src, size, depth + 2)
    src.emit(depth + 1, f"for _ in range({count}):")
    if is_map:
        _read(src, {"type": "string"}, key, depth + 2, named, open_names)
        _read(src, schema["values"], item, depth + 2, named, open_names)
        src.emit(depth + 2, f"{target}[{key}] = {item}")
    else:
        _read(src, schema["items"], item, depth + 2, named, open_names)
        src.emit(depth + 2, f"{target}.append({item})")


def _union(src: GeneratedSource, branches: list[Any], target: str, depth: int,
           named: dict[str, Any], open_names: frozenset[str]) -> None:
    null_index, other = null_union(branches)  # an index 0 or 1 is one zig-zag byte: 0 or 2
    index = src.var("i")
    src.emit(depth, f"{index} = d[p]; p += 1")
    src.emit(depth, f"if {index} == {null_index << 1}: {target} = None")
    src.emit(depth, f"elif {index} == {(1 - null_index) << 1}:")
    _read(src, other, target, depth + 1, named, open_names)
    src.emit(depth, "else: raise ValueError('union index out of range')")


#: The name the generated function gives the record it returns (an inner one's is ``fN``).
_TOP = "record"


def _record(src: GeneratedSource, schema: dict[str, Any], target: str, depth: int,
            named: dict[str, Any], open_names: frozenset[str]) -> None:
    open_names = opened(schema, named, open_names)
    values = []
    for n, field in enumerate(schema["fields"]):
        if target == _TOP and src.marks:  # where the field starts: M0, M1, ...
            src.emit(depth, f"M{n} = p")
        value = src.var("f")
        _read(src, field["type"], value, depth, named, open_names)
        values.append(f"{field['name']!r}: {value}")
    src.emit(depth, f"{target} = {{{', '.join(values)}}}")


def compile_reader(parsed: Mapping[str, Any]) -> Reader | None:
    """A function reading records of ``parsed`` (fastavro's parsed schema) from Avro
    binary, or ``None`` when the schema uses what the compiled reader does not cover."""
    src = GeneratedSource()
    if not walked(_read, parsed, src):
        return None
    code = f"def read(d, p):\n{chr(10).join(src.lines)}\n    return {_TOP}, p\n"
    reader: Reader | None = compiled(code, "read", _NAMESPACE)
    return reader


def compile_fields_reader(parsed: Mapping[str, Any]) -> FieldsReader | None:
    """As :func:`compile_reader`, a reader that also returns where each field of the record
    starts in the bytes (for :func:`schemas.writer.compile_splicer`: a record written
    again with most fields unchanged copies their bytes)."""
    src = GeneratedSource(marks=True)
    if not walked(_read, parsed, src):
        return None
    starts = "".join(f"M{n}, " for n in range(len(parsed["fields"])))
    code = (f"def read(d, p):\n{chr(10).join(src.lines)}\n"
            f"    return {_TOP}, p, ({starts}p)\n")
    reader: FieldsReader | None = compiled(code, "read", _NAMESPACE)
    return reader
