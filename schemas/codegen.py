"""What the compiled Avro writer and reader share (:mod:`schemas.writer`,
:mod:`schemas.reader`): the generated function's source, the part of Avro they
cover, named types, and compiling the source.

Both walk a parsed schema once and emit the Python source of one function; a
construct they do not cover raises :class:`Unsupported` while walking, and the
caller keeps fastavro's own writer or reader for that schema (ADR 0011).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["NOT_COVERED", "GeneratedSource", "Unsupported", "compiled", "null_union", "opened",
           "resolved", "walked"]

#: The logical types covered, on the one base type each is defined on (the Avro
#: specification ignores one on another type; fastavro handles those).
_COVERED_LOGICAL = frozenset({("long", "timestamp-millis"), ("int", "date")})
#: What generating or compiling may raise for a schema nested too deep for Python's
#: parser or for the generator's recursion: not covered either.
_COMPILE_ERRORS = (SyntaxError, RecursionError, MemoryError)


class Unsupported(Exception):
    """A schema construct the compiled code does not cover (fastavro's handles it)."""


#: What walking a schema raises for one the generated code does not cover: a construct
#: it leaves to fastavro, or a nesting too deep for the generator or Python's parser.
NOT_COVERED = (Unsupported, *_COMPILE_ERRORS)


class GeneratedSource:
    """The lines of the generated function, with fresh variable names."""

    def __init__(self, *, marks: bool = False) -> None:
        #: Whether the reader notes where each field of the top record starts.
        self.marks = marks
        self.lines: list[str] = []
        self._names = 0
        self.constants: dict[str, Any] = {}

    def var(self, stem: str) -> str:
        self._names += 1
        return f"{stem}{self._names}"

    def constant(self, value: Any) -> str:
        name = self.var("K")
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def resolved(schema: str | dict[str, Any], named: dict[str, Any],
             open_names: frozenset[str]) -> tuple[dict[str, Any], str, str | None]:
    """``schema`` (not a union) as a dict, its type, and its covered logical type: a
    primitive's name as ``{"type": name}``, a named type's name as the type defined
    before. A record inside itself and another logical type are ``Unsupported``."""
    if isinstance(schema, str):
        if schema in open_names:
            raise Unsupported(f"recursive type {schema}")
        schema = dict(named[schema]) if schema in named else {"type": schema}
    kind, logical = schema["type"], schema.get("logicalType")
    if logical is not None and (kind, logical) not in _COVERED_LOGICAL:
        raise Unsupported(f"logical type {logical} on {kind}")
    return schema, kind, logical


def null_union(branches: list[Any]) -> tuple[int, Any]:
    """The index of ``null`` in a union of ``null`` and one other type, and the other."""
    others = [b for b in branches if b != "null"]
    if len(branches) != 2 or len(others) != 1:
        raise Unsupported("a union other than null and one type")
    return branches.index("null"), others[0]


def opened(record: dict[str, Any], named: dict[str, Any],
           open_names: frozenset[str]) -> frozenset[str]:
    """Enter the named ``record``: it is known by name from now on, and open until its
    fields are done."""
    name = record.get("name")
    if name is None:
        return open_names
    named[name] = record
    return open_names | {name}


def compiled(code: str, name: str, namespace: Mapping[str, Any]) -> Any:
    """The function ``name`` that ``code`` defines, run in a copy of ``namespace``; None when
    Python cannot compile it."""
    scope = dict(namespace)
    try:
        exec(compile(code, f"<avro {name}>", "exec"), scope)  # noqa: S102
    except _COMPILE_ERRORS:
        return None
    return scope[name]


def walked(walk: Any, parsed: Mapping[str, Any], src: GeneratedSource) -> bool:
    """Whether ``walk(src, schema, "record", 1, named, open_names)`` covered ``parsed``."""
    try:
        walk(src, dict(parsed), "record", 1, {}, frozenset())
    except NOT_COVERED:
        return False
    return True
