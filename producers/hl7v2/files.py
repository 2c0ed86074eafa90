"""HL7 v2 files as messages: line endings normalised, one message per MSH.

A batch file wraps messages in an optional envelope::

    FHS ...            file header
      BHS ...          batch header
        MSH ... MSH ...  the messages
      BTS|<count>      batch trailer: how many messages the batch holds
    FTS|<count>        file trailer: how many batches

Plain files of messages one after another are read the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BatchFile", "iter_files", "parse_batch"]

_LINES = re.compile(rb"\r\n|\n|\r")


@dataclass(slots=True)
class BatchFile:
    """The messages of a file and what its envelope declared."""

    messages: list[bytes]
    batches: int = 0
    declared_messages: int | None = None  # sum of BTS-1, when every BTS gives one
    declared_batches: int | None = None  # FTS-1
    problems: list[str] = field(default_factory=list)


def _count(segment: bytes) -> int | None:
    fields = segment.split(segment[3:4]) if len(segment) > 3 else []
    value = fields[1].strip() if len(fields) > 1 else b""
    return int(value) if value.isdigit() else None


def parse_batch(data: bytes) -> BatchFile:
    """Split a (batch) file into messages with ``\\r`` segment ends; note envelope counts."""
    batch = BatchFile([])
    current: list[bytes] | None = None
    bts_counts: list[int | None] = []
    for line in _LINES.split(data.lstrip(b"\xef\xbb\xbf")):
        if not line.strip():
            continue
        name = line[:3]
        if name in (b"FHS", b"BHS", b"BTS", b"FTS"):
            if current:
                batch.messages.append(b"\r".join(current) + b"\r")
            current = None
            if name == b"BHS":
                batch.batches += 1
            elif name == b"BTS":
                bts_counts.append(_count(line))
            elif name == b"FTS":
                batch.declared_batches = _count(line)
            continue
        if name == b"MSH":
            if current:
                batch.messages.append(b"\r".join(current) + b"\r")
            current = [line]
        elif current is not None:
            current.append(line)
        else:
            batch.problems.append("segments before the first MSH were skipped")
    if current:
        batch.messages.append(b"\r".join(current) + b"\r")
    if bts_counts and all(n is not None for n in bts_counts):
        batch.declared_messages = sum(n for n in bts_counts if n is not None)
        if batch.declared_messages != len(batch.messages):
            batch.problems.append(f"batch trailers declare {batch.declared_messages} messages; "
                                  f"the file holds {len(batch.messages)}")
    if batch.declared_batches is not None and batch.declared_batches != batch.batches:
        batch.problems.append(f"file trailer declares {batch.declared_batches} batches; "
                              f"the file holds {batch.batches}")
    return batch



def iter_files(paths: list[Path]) -> list[Path]:
    """Files named, and the files inside folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()
                                and not p.name.startswith(".")))
        else:
            found.append(path)
    return found
