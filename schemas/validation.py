"""Checking a Python record against a parsed Avro schema before it is written.

fastavro's writer coerces what it should refuse (``1.5`` into an ``int``, ``"1"`` into a
``double``, a string into an array of characters) and ignores unknown keys, so records are
checked first. A schema is compiled once into a tree of small check functions; a check returns
``None`` when the datum fits and a ``Problem`` naming the field path and the expected type
otherwise. Problems never carry the value itself, only its Python type, so they are safe to log.

Beyond plain Avro the checks hold records to ADR 0001: ``timestamp-millis`` takes
timezone-aware ``datetime``s only, ``date`` takes ``date``s but not ``datetime``s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "Problem", "compile_check"]

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "string": (str,),
    "bytes": (bytes, bytearray),
}


@dataclass(frozen=True)
class Problem:
    """Where a record does not fit its schema (``path``: field names and list indexes) and why."""

    path: tuple[str | int, ...]
    reason: str

    def within(self, step: str | int) -> Problem:
        """The same problem seen from one level further out."""
        return Problem((step, *self.path), self.reason)

    @property
    def where(self) -> str:
        """The path as text: ``patient.identifiers[0].value``."""
        text = ""
        for step in self.path:
            text += f"[{step}]" if isinstance(step, int) else f".{step}"
        return text.lstrip(".") or "<record>"


Check = Callable[[Any], Problem | None]

#: Python types that always fit a check, without calling it (the hot path: most fields
#: of most records are a plain string, a float or None). Only where the type decides.
_ALWAYS: dict[Check, frozenset[type]] = {}


def _always(check: Check, types: frozenset[type]) -> Check:
    _ALWAYS[check] = types
    return check


def _kind(datum: Any) -> str:
    if isinstance(datum, dt.datetime) and datum.tzinfo is None:
        return "naive datetime"
    return "None" if datum is None else type(datum).__name__


def _expecting(expected: str, fits: Callable[[Any], bool]) -> Check:
    def check(datum: Any) -> Problem | None:
        return None if fits(datum) else Problem((), f"expected {expected}, got {_kind(datum)}")

    return check


def _integer(low: int, high: int) -> Callable[[Any], bool]:
    return lambda d: isinstance(d, int) and not isinstance(d, bool) and low <= d <= high


def _primitive(avro_type: str, logical: str | None) -> Check:
    if logical == "timestamp-millis":
        return _expecting(
            "timezone-aware datetime", lambda d: isinstance(d, dt.datetime) and d.tzinfo is not None
        )
    if logical == "date":
        return _always(_expecting(
            "date", lambda d: isinstance(d, dt.date) and not isinstance(d, dt.datetime)
        ), frozenset({dt.date}))
    if avro_type in _INT_RANGES:
        return _expecting(f"{avro_type} (integer)", _integer(*_INT_RANGES[avro_type]))
    if avro_type in ("float", "double"):
        number = (int, float)
        return _always(_expecting(avro_type, lambda d: isinstance(d, number)
                                  and not isinstance(d, bool)), frozenset({float}))
    if avro_type in _PLAIN_TYPES:
        types = _PLAIN_TYPES[avro_type]
        return _always(_expecting(avro_type, lambda d: isinstance(d, types)), frozenset(types))
    raise ValueError(f"unsupported Avro type {avro_type!r}")


def _record(fields: list[dict[str, Any]], named: dict[str, Check]) -> Check:
    checks = [(f["name"], check, _ALWAYS.get(check, frozenset()), "default" in f)
              for f in fields for check in (_compile(f["type"], named),)]
    names = frozenset(name for name, _, _, _ in checks)

    def check(datum: Any) -> Problem | None:
        if not isinstance(datum, Mapping):
            return Problem((), f"expected a record (mapping), got {_kind(datum)}")
        for name, check_field, always, has_default in checks:
            if name in datum:
                value = datum[name]
                if type(value) in always:
                    continue
                problem = check_field(value)
                if problem is not None:
                    return problem.within(name)
            elif not has_default:
                return Problem((name,), "missing, and the schema gives no default")
        if not names.issuperset(datum):
            unknown = next(key for key in datum if key not in names)
            return Problem((str(unknown),), "not a field of the schema")
        return None

    return check


def _array(items: Check) -> Check:
    def check(datum: Any) -> Problem | None:
        if not isinstance(datum, list | tuple):
            return Problem((), f"expected an array (list), got {_kind(datum)}")
        for index, item in enumerate(datum):
            problem = items(item)
            if problem is not None:
                return problem.within(index)
        return None

    return check


def _map(values: Check) -> Check:
    def check(datum: Any) -> Problem | None:
        if not isinstance(datum, Mapping):
            return Problem((), f"expected a map (mapping), got {_kind(datum)}")
        for key, value in datum.items():
            if not isinstance(key, str):
                return Problem((), f"map keys must be str, got {_kind(key)}")
            problem = values(value)
            if problem is not None:
                return problem.within(key)
        return None

    return check


def _union(branches: list[Check], names: list[str]) -> Check:
    expected = " or ".join(names)
    nullable = "null" in names
    always = frozenset().union(*(_ALWAYS.get(branch, frozenset()) for branch in branches))

    def check(datum: Any) -> Problem | None:
        if datum is None and nullable:
            return None
        if type(datum) in always:
            return None
        for branch in branches:
            if branch(datum) is None:
                return None
        return Problem((), f"expected {expected}, got {_kind(datum)}")

    return _always(check, always | ({type(None)} if nullable else frozenset()))


def _type_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema["type"])
    return str(schema)


def _compile(schema: Any, named: dict[str, Check]) -> Check:
    if isinstance(schema, list):
        return _union([_compile(s, named) for s in schema], [_type_name(s) for s in schema])
    if isinstance(schema, str):
        return named[schema] if schema in named else _primitive(schema, None)
    avro_type = schema["type"]
    if avro_type == "record":
        # fastavro's parsed form defines a named type where it first occurs and refers to it
        # by its full name afterwards. (Recursive types are not supported: hutong has none.)
        named[schema["name"]] = _record(schema["fields"], named)
        return named[schema["name"]]
    if avro_type == "array":
        return _array(_compile(schema["items"], named))
    if avro_type == "map":
        return _map(_compile(schema["values"], named))
    return _primitive(avro_type, schema.get("logicalType"))


def compile_check(parsed: Mapping[str, Any]) -> Check:
    """Compile a fastavro-parsed record schema into a check for records."""
    return _compile(parsed, {})
