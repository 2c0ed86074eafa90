"""Avro binary writers compiled from a schema, for the hot path.

fastavro's writer walks the schema for every record it writes: for each field it
looks up the field's type, and for each ``["null", X]`` union it tries the branches
in turn until one validates the value. For hutong's event records, about forty
fields, most of them nullable, that walk is most of the cost of an encode (about
34 µs a lab result here, more than decoding it). :func:`compile_writer` turns a
parsed schema into the Python source of one function that writes a record of it
field by field, with the schema's decisions taken once, at compile time: a
nullable field is a test of ``is None``, a string its UTF-8 bytes behind their
length. The output is byte for byte what fastavro writes (a property test holds
every catalog schema to it, ``tests/unit/test_avro_writer.py``), and
``make bench`` measures both (``docs/performance.md``).

What the compiled writer covers is what the catalog uses: records (named types
referred to again by name), arrays, maps, unions of ``null`` and one other type,
the primitive types, and the logical types ``timestamp-millis`` and ``date``.
For any other schema :func:`compile_writer` returns ``None`` and the caller keeps
fastavro's writer.

A record that does not fit its schema raises ``TypeError``, ``ValueError``,
``KeyError``, ``AttributeError``, ``OverflowError`` or ``struct.error`` from the
writer (``schemas.wire`` turns any of them into a ``SchemaError``); records are
checked against the schema before they are written (``schemas.validation``),
except on the hot path for records the hub built itself from a decoded one.
"""

from __future__ import annotations

import datetime as dt
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

from schemas.codegen import (
    NOT_COVERED,
    GeneratedSource,
    Unsupported,
    compiled,
    null_union,
    opened,
    resolved,
    walked,
)

__all__ = ["WRITER_ERRORS", "Splicer", "Writer", "compile_splicer", "compile_writer"]

#: ``writer(record, prefix)``: ``prefix`` (a wire-format header, say) then the record.
Writer = Callable[[Mapping[str, Any], bytes], bytes]
#: ``splicer(data, starts, read, record)``: ``record`` written as ``read`` was in ``data``,
#: whose fields start at ``starts`` (:func:`compile_splicer`).
Splicer = Callable[[bytes, tuple[int, ...], Mapping[str, Any], Mapping[str, Any]], bytes]

#: What a compiled writer raises for a record that does not fit its schema.
WRITER_ERRORS = (TypeError, ValueError, KeyError, AttributeError, OverflowError,
                 struct.error)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_SHIFT = dt.date(1970, 1, 1).toordinal()


def _long(n: int) -> bytes:
    """``n`` as an Avro ``long``: zig-zag, then a base-128 varint; outside 64 bits it raises
    (``ValueError`` or ``OverflowError``)."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return bytes((z,))
    if z >> 64:
        raise OverflowError("a long outside 64 bits")
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _timestamp_millis(value: Any) -> Any:
    """What fastavro writes for a ``timestamp-millis``: milliseconds since the epoch of an
    aware datetime; a naive one as local time, anything else as it is (as fastavro does;
    ``schemas.validation`` refuses both before a checked write)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            delta = value - _EPOCH
            return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        return int(time.mktime(value.timetuple())) * 1000 + value.microsecond // 1000
    return value


def _date(value: Any) -> Any:
    return value.toordinal() - _DAYS_SHIFT if isinstance(value, dt.date) else value


def _sequence(value: Any) -> Any:
    """An array's items: a list or a tuple (fastavro refuses None and would write a
    string's characters or a mapping's keys)."""
    if not isinstance(value, (list, tuple)):
        raise TypeError("an array needs a list")
    return value


def _mapping(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise TypeError("a map or a record needs a mapping")
    return value


def _bytes(value: Any) -> bytes:
    """``bytes`` of a ``bytearray`` or ``memoryview``; not of an int or a list (``bytes(7)``
    is seven zero bytes, and ``bytes(2**50)`` a MemoryError)."""
    if not isinstance(value, (bytearray, memoryview)):
        raise TypeError("bytes expected")
    return bytes(value)


_NAMESPACE = {"L": _long, "TS": _timestamp_millis, "DATE": _date, "SEQ": _sequence,
              "MAP": _mapping, "BYTES": _bytes,
              "PD": struct.Struct("<d").pack, "PF": struct.Struct("<f").pack}


def _write(src: GeneratedSource, schema: Any, value: str, depth: int,
           named: dict[str, Any], open_names: frozenset[str]) -> None:
    """Lines that append ``value`` (an expression evaluated once) written as ``schema``."""
    if isinstance(schema, list):
        _union(src, schema, value, depth, named, open_names)
        return
    schema, kind, logical = resolved(schema, named, open_names)
    if kind == "null":
        src.emit(depth, f"if {value} is not None: raise TypeError('null expected')")
    elif kind == "boolean":
        src.emit(depth, f"if {value} is True: o.append(1)")
        src.emit(depth, f"elif {value} is False: o.append(0)")
        src.emit(depth, "else: raise TypeError('a boolean expected')")
    elif logical == "timestamp-millis":
        src.emit(depth, f"o += L(TS({value}))")
    elif logical == "date":
        src.emit(depth, f"o += L(DATE({value}))")
    elif kind in ("int", "long"):
        src.emit(depth, f"if {value}.__class__ is bool: raise TypeError('a number expected')")
        if kind == "int":
            src.emit(depth, f"if not -2147483648 <= {value} <= 2147483647: "
                            "raise OverflowError('an int outside 32 bits')")
        src.emit(depth, f"o += L({value})")
    elif kind == "double":
        src.emit(depth, f"o += PD({value})")
    elif kind == "float":
        src.emit(depth, f"o += PF({value})")
    elif kind == "string":
        b, n = src.var("b"), src.var("n")
        src.emit(depth, f"{b} = {value}.encode(); {n} = len({b})")
        src.emit(depth, f"if {n} < 64: o.append({n} << 1)")
        src.emit(depth, f"else: o += L({n})")
        src.emit(depth, f"o += {b}")
    elif kind == "bytes":
        b = src.var("b")
        src.emit(depth, f"{b} = {value} if {value}.__class__ is bytes else BYTES({value})")
        src.emit(depth, f"o += L(len({b})); o += {b}")
    elif kind == "record":
        _record(src, schema, value, depth, named, open_names)
    elif kind == "array":
        items, item = src.var("a"), src.var("x")
        src.emit(depth, f"{items} = SEQ({value})")
        src.emit(depth, f"if {items}:")
        src.emit(depth + 1, f"o += L(len({items}))")
        src.emit(depth + 1, f"for {item} in {items}:")
        _write(src, schema["items"], item, depth + 2, named, open_names)
        src.emit(depth, "o += b'\\x00'")
    elif kind == "map":
        entries, key, item = src.var("m"), src.var("k"), src.var("x")
        src.emit(depth, f"{entries} = MAP({value})")
        src.emit(depth, f"if {entries}:")
        src.emit(depth + 1, f"o += L(len({entries}))")
        src.emit(depth + 1, f"for {key}, {item} in {entries}.items():")
        _write(src, {"type": "string"}, key, depth + 2, named, open_names)
        _write(src, schema["values"], item, depth + 2, named, open_names)
        src.emit(depth, "o += b'\\x00'")
    else:
        raise Unsupported(f"type {kind}")


def _union(src: GeneratedSource, branches: list[Any], value: str, depth: int,
           named: dict[str, Any], open_names: frozenset[str]) -> None:
    null_index, other = null_union(branches)  # an index 0 or 1 is one zig-zag byte: 0 or 2
    src.emit(depth, f"if {value} is None: o.append({null_index << 1})")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"o.append({(1 - null_index) << 1})")
    _write(src, other, value, depth + 1, named, open_names)


def _record(src: GeneratedSource, schema: dict[str, Any], value: str, depth: int,
            named: dict[str, Any], open_names: frozenset[str]) -> None:
    open_names = opened(schema, named, open_names)
    if not schema["fields"]:  # nothing would read it: still a mapping, as fastavro wants
        src.emit(depth, f"MAP({value})")
    for field in schema["fields"]:
        v = src.var("f")
        src.emit(depth, f"{v} = {_field_value(src, field, value)}")
        _write(src, field["type"], v, depth, named, open_names)


def _field_value(src: GeneratedSource, field: dict[str, Any], record: str) -> str:
    """The expression of ``field``'s value in ``record``: its default when missing, None
    for a nullable field; a required field without a default raises ``KeyError``."""
    key = repr(field["name"])
    if "default" in field and field["default"] is not None:
        return f"{record}.get({key}, {src.constant(field['default'])})"
    if field["type"] == "null" or (isinstance(field["type"], list)
                                   and "null" in field["type"]):
        return f"{record}.get({key})"
    return f"{record}[{key}]"


def compile_writer(parsed: Mapping[str, Any]) -> Writer | None:
    """A function writing records of ``parsed`` (fastavro's parsed schema) in Avro binary,
    or ``None`` when the schema uses what the compiled writer does not cover."""
    src = GeneratedSource()
    if not walked(_write, parsed, src):
        return None
    body = "\n".join(src.lines)
    code = (f"def write(record, prefix=b''):\n    o = bytearray(prefix)\n{body}\n"
            "    return bytes(o)\n")
    writer: Writer | None = compiled(code, "write", {**_NAMESPACE, **src.constants})
    return writer


def compile_splicer(parsed: Mapping[str, Any]) -> Splicer | None:
    """A function that writes a record of ``parsed`` made from one read from bytes, writing
    only the fields that changed, or ``None`` where :func:`compile_writer` would be.

    ``splicer(data, starts, read, record)``: ``read`` is the record read from ``data``, with
    its fields starting at ``starts`` (:func:`schemas.reader.compile_fields_reader`);
    ``record`` is a copy of it with some fields replaced. A field whose value in ``record``
    is the very object read is copied from ``data``; any other is written, as
    :func:`compile_writer`'s function writes it; the bytes before the first field (a
    wire-format header) are copied too. The output is what the writer gives for ``record``
    provided no value read was changed in place (a list appended to, say): replace such a
    value, do not change it.
    """
    fields = parsed["fields"]
    src = GeneratedSource()
    named: dict[str, Any] = {}
    open_names = opened(dict(parsed), named, frozenset())
    try:
        for n, field in enumerate(fields):
            v = src.var("f")
            src.emit(1, f"{v} = {_field_value(src, field, 'record')}")
            src.emit(1, f"if {v} is not read[{field['name']!r}]:")
            src.emit(2, f"o += d[q:s[{n}]]")
            _write(src, field["type"], v, 2, named, open_names)
            src.emit(2, f"q = s[{n + 1}]")
    except NOT_COVERED:
        return None
    body = "\n".join(src.lines)
    code = (f"def splice(d, s, read, record):\n    o = bytearray(); q = 0\n{body}\n"
            f"    o += d[q:s[{len(fields)}]]\n    return bytes(o)\n")
    splicer: Splicer | None = compiled(code, "splice", {**_NAMESPACE, **src.constants})
    return splicer
