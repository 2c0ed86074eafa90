"""The Confluent wire format: how every value on a hutong topic is framed.

    offset 0      magic byte 0
    offset 1..4   schema id, 4-byte big-endian
    offset 5..    the record in Avro binary encoding (no container, no schema)

This is what confluent-kafka's ``AvroSerializer`` writes and ``AvroDeserializer`` reads, so any
Kafka client with a schema-registry client can read hutong's topics. ``encode`` checks the
record first (see ``schemas.validation``) and raises ``SchemaError``; ``decode`` raises
``WireFormatError`` for bytes that are not a framed record of a known schema. Neither message
carries a record's values, only schema names, field paths, ids and offsets. The Avro body is
written and read by code compiled from each schema (``schemas.writer``, ``schemas.reader``;
fastavro's for a schema they do not cover: ADR 0011).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, NamedTuple, TypeVar, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from hutong.errors import SchemaError, WireFormatError
from schemas import catalog
from schemas.catalog import SchemaEntry
from schemas.reader import (
    READER_ERRORS,
    FieldsReader,
    Reader,
    compile_fields_reader,
    compile_reader,
)
from schemas.validation import Check, Problem, compile_check
from schemas.writer import (
    WRITER_ERRORS,
    Splicer,
    Writer,
    compile_splicer,
    compile_writer,
)

__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "Framed", "check", "decode", "decode_framed",
           "decode_written_with", "encode", "encode_changed"]

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">BI")
_T = TypeVar("_T")
# What fastavro's reader raises on bytes that are not a record of the schema: truncation
# (EOFError), a union branch or enum index out of range (IndexError), bad UTF-8
# (UnicodeDecodeError, a ValueError), dates and times out of range (ValueError, OverflowError).
_BODY_ERRORS = (EOFError, IndexError, ValueError, OverflowError)

# Compiled record checks, writers and readers, one per distinct schema text (entries
# differing only in id share one); a writer or reader is None where the schema needs
# fastavro's own.
_checks: dict[str, Check] = {}
_writers: dict[str, Writer | None] = {}
_readers: dict[str, Reader | None] = {}
_fields_readers: dict[str, FieldsReader | None] = {}
_splicers: dict[str, Splicer | None] = {}
_field_numbers: dict[str, dict[str, int]] = {}


def _compiled(cache: dict[str, _T], build: Callable[[Mapping[str, Any]], _T],
              entry: SchemaEntry) -> _T:
    if entry.schema_str not in cache:
        cache[entry.schema_str] = build(entry.parsed)
    return cache[entry.schema_str]


def _check_for(entry: SchemaEntry) -> Check:
    return _compiled(_checks, compile_check, entry)


def check(entry: SchemaEntry, record: Mapping[str, Any]) -> Problem | None:
    """Where ``record`` does not fit schema ``entry`` (field path and reason), or None."""
    return _check_for(entry)(record)


def encode(entry: SchemaEntry, record: Mapping[str, Any], *, checked: bool = True) -> bytes:
    """Frame ``record`` as schema ``entry``: magic byte, ``entry.schema_id``, Avro body.

    Raises ``SchemaError`` naming the schema and the field path when the record does not fit.
    ``checked=False`` leaves the field-by-field check out, for records the hub built
    itself from a decoded one on the hot path (it costs as much as the writing); a record
    that does not fit still raises, naming the schema but not the field.
    """
    problem = _check_for(entry)(record) if checked else None
    if problem is not None:
        raise SchemaError(
            f"record does not fit schema {entry.name!r} at {problem.where}: {problem.reason}"
        )
    writer = _compiled(_writers, compile_writer, entry)
    try:
        if writer is not None:
            return writer(record, _HEADER.pack(MAGIC_BYTE, entry.schema_id))
        out = BytesIO()
        out.write(_HEADER.pack(MAGIC_BYTE, entry.schema_id))
        schemaless_writer(out, entry.parsed, record)
    except WRITER_ERRORS as exc:
        raise _unwritable(entry, exc) from None
    return out.getvalue()


def _unwritable(entry: SchemaEntry, exc: Exception) -> SchemaError:
    # Checked records still fail here when a string cannot be UTF-8 (a lone surrogate).
    # The library's message may quote the value, so only the exception type is kept.
    return SchemaError(
        f"record does not fit schema {entry.name!r}: Avro writer failed ({type(exc).__name__})")


class Framed(NamedTuple):
    """A framed record as read (:func:`decode_framed`), with where its fields lie in the bytes."""

    entry: SchemaEntry
    record: dict[str, Any]
    data: bytes
    #: Where each top-level field starts in ``data``, then the end (None: read by fastavro).
    starts: tuple[int, ...] | None

    def field_bytes(self, name: str) -> bytes | None:
        """The Avro bytes of the top-level field ``name`` (None where not known)."""
        if self.starts is None:
            return None
        n = _compiled(_field_numbers, _numbered, self.entry)[name]
        return self.data[self.starts[n]:self.starts[n + 1]]


def _numbered(parsed: Mapping[str, Any]) -> dict[str, int]:
    return {field["name"]: n for n, field in enumerate(parsed["fields"])}


def encode_changed(entry: SchemaEntry, framed: Framed, record: Mapping[str, Any]) -> bytes:
    """``record`` framed as ``entry``, as ``encode(entry, record, checked=False)`` frames it,
    for a ``record`` made from ``framed.record`` by replacing some of its fields: where the
    schema is the one read, a field whose value is still the object read is copied from
    ``framed.data`` rather than written again (:func:`schemas.writer.compile_splicer`). A
    value read must not have been changed in place (replace it instead)."""
    if framed.starts is None or record is framed.record or \
            entry.schema_id != framed.entry.schema_id or \
            entry.schema_str != framed.entry.schema_str:
        return encode(entry, record, checked=False)
    splicer = _compiled(_splicers, compile_splicer, entry)
    if splicer is None:
        return encode(entry, record, checked=False)
    try:
        return splicer(framed.data, framed.starts, framed.record, record)
    except WRITER_ERRORS as exc:
        raise _unwritable(entry, exc) from None


def decode(
    data: bytes, resolve: Callable[[int], SchemaEntry] = catalog.by_id
) -> tuple[SchemaEntry, dict[str, Any]]:
    """Read one framed record; ``resolve`` turns the schema id into a schema entry.

    Raises ``WireFormatError`` for short data, a wrong magic byte, an id ``resolve`` does not
    know (it raises ``SchemaError``), or a body that is not exactly one record of the schema.
    """
    entry, record, _ = _read(data, resolve, fields=False)
    return entry, record


def decode_framed(data: bytes,
                  resolve: Callable[[int], SchemaEntry] = catalog.by_id) -> Framed:
    """As :func:`decode`, with where each field of the record lies in ``data``: for
    :func:`encode_changed`, which copies the fields a stage did not change."""
    entry, record, starts = _read(data, resolve, fields=True)
    return Framed(entry, record, data, starts)


def _read(data: bytes, resolve: Callable[[int], SchemaEntry], *, fields: bool
          ) -> tuple[SchemaEntry, dict[str, Any], tuple[int, ...] | None]:
    if len(data) < HEADER_SIZE:
        raise WireFormatError(
            f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte wire-format header"
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise WireFormatError(f"magic byte at offset 0 is {magic:#04x}, expected 0x00")
    try:
        entry = resolve(schema_id)
    except SchemaError:
        raise WireFormatError(f"unknown schema id {schema_id} at offset 1") from None
    reader: Reader | FieldsReader | None = (
        _compiled(_fields_readers, compile_fields_reader, entry) if fields
        else _compiled(_readers, compile_reader, entry))
    if reader is None:
        return entry, _fastavro_decode(data, entry, schema_id), None
    starts = None
    try:
        if fields:
            record, end, starts = reader(data, HEADER_SIZE)  # type: ignore[misc]
        else:
            record, end = reader(data, HEADER_SIZE)  # type: ignore[misc]
    except (IndexError, struct.error):
        end = len(data) + 1  # the bytes ended inside the record
    except READER_ERRORS as exc:
        raise WireFormatError(f"body does not decode as schema {entry.name!r} (id "
                              f"{schema_id}): {type(exc).__name__}") from None
    if end > len(data):
        raise WireFormatError(f"body does not decode as schema {entry.name!r} (id "
                              f"{schema_id}): EOFError near offset {len(data)}")
    if end != len(data):
        raise WireFormatError(
            f"{len(data) - end} bytes left over after the {entry.name!r} record at offset {end}")
    return entry, record, starts


def _fastavro_decode(data: bytes, entry: SchemaEntry, schema_id: int) -> dict[str, Any]:
    body = BytesIO(data)
    body.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(body, entry.parsed, None)
    except _BODY_ERRORS as exc:
        raise WireFormatError(
            f"body does not decode as schema {entry.name!r} (id {schema_id}): "
            f"{type(exc).__name__} near offset {body.tell()}"
        ) from None
    if body.tell() != len(data):
        raise WireFormatError(
            f"{len(data) - body.tell()} bytes left over after the {entry.name!r} record "
            f"at offset {body.tell()}"
        )
    return cast(dict[str, Any], record)  # every catalog schema is a record


def decode_written_with(data: bytes, writer: dict[str, Any],
                        reader: SchemaEntry) -> dict[str, Any]:
    """Read one framed record written with the parsed schema ``writer`` (another hub's
    version of the schema) as this hub's ``reader``: Avro schema resolution fills fields
    the writer did not have from their defaults and drops the ones this hub does not
    know. The header's schema id is not used (the writer's registry numbered it)."""
    if len(data) < HEADER_SIZE or data[0] != MAGIC_BYTE:
        raise WireFormatError("not a wire-format record (short, or a wrong magic byte)")
    body = BytesIO(data)
    body.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(body, writer, reader.parsed)
    except (*_BODY_ERRORS, SchemaResolutionError) as exc:
        raise WireFormatError(
            f"body does not decode as the sender's {reader.name!r} read as this hub's: "
            f"{type(exc).__name__} near offset {body.tell()}") from None
    if body.tell() != len(data):
        raise WireFormatError(f"{len(data) - body.tell()} bytes left over after the "
                              f"{reader.name!r} record at offset {body.tell()}")
    return cast(dict[str, Any], record)
