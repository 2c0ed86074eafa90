"""HL7 v2 files as messages: line endings normalised, one message per MSH."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["BATCH_SEGMENTS", "iter_files", "split_messages"]

#: Batch envelope segments (FHS/BHS/BTS/FTS) are not messages.
BATCH_SEGMENTS = (b"FHS", b"BHS", b"BTS", b"FTS")
_LINES = re.compile(rb"\r\n|\n|\r")


def split_messages(data: bytes) -> list[bytes]:
    """The messages of a file, each with ``\\r`` segment terminators.

    Segments may end in CR, LF or CRLF; blank lines and batch envelope segments
    are dropped; a new message starts at each ``MSH`` segment.
    """
    messages: list[list[bytes]] = []
    for line in _LINES.split(data.lstrip(b"\xef\xbb\xbf")):
        if not line.strip() or line[:3] in BATCH_SEGMENTS:
            continue
        if line.startswith(b"MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return [b"\r".join(segments) + b"\r" for segments in messages]


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
