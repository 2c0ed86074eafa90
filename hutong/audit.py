"""The audit trail: append-only JSON lines, each chained to the one before by hash.

One file per month under ``<data_dir>/audit/`` (``audit-2026-11.jsonl``), kept
until an operator archives it (the guidelines ask for six months at least).
Every record carries ``prev``, the hash of the record before it (across files),
and ``hash``, SHA-256 of its own canonical JSON without ``hash``; an edited,
removed or reordered line breaks the chain, which :func:`verify` reports. Records cut
off the end leave an intact but shorter chain: :attr:`AuditLog.head`, printed by
``hutong audit-verify``, is the hash to note elsewhere so that a shorter chain shows.

Several processes may append (the hub, ``hutong users add``): each record is written
under an exclusive lock (flock) on the directory, after the last record on disk (re-read
when another process wrote since).

Records say who did what, from where, and why it was refused; never message
content or a patient's values.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hutong.errors import HutongError

__all__ = ["GENESIS", "AuditLog", "verify"]

#: ``prev`` of the very first record.
GENESIS = "0" * 64


def _digest(record: dict[str, Any]) -> str:
    body = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


#: Longest text kept of a detail: whatever a sender claims is cut to this.
MAX_DETAIL = 120


def _bounded(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v[:MAX_DETAIL] if isinstance(v, str) else v for k, v in details.items()}


class AuditLog:
    """Append records to the month's file under ``directory``; safe across threads."""

    def __init__(self, directory: Path,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._last = self._last_hash()
        #: The file and size after this process's last write: unchanged, ``_last`` holds.
        self._end: tuple[Path, int] | None = None

    @property
    def head(self) -> str:
        """The hash of the newest record (GENESIS when there is none)."""
        return self._last_hash()

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("audit-*.jsonl"))

    def _last_hash(self) -> str:
        for path in reversed(self._files()):
            lines = path.read_bytes().rstrip(b"\n").splitlines()
            for line in reversed(lines):  # a line cut short by a crash is skipped
                try:
                    return str(json.loads(line)["hash"])
                except (ValueError, KeyError):
                    continue
        return GENESIS

    def record(self, action: str, **details: Any) -> dict[str, Any]:
        """Append one record; returns it with its ``hash``."""
        now = self._clock()
        with self._lock:
            entry: dict[str, Any] = {"at": now.isoformat(timespec="milliseconds"),
                                     "action": action, **_bounded(details)}
            path = self.directory / f"audit-{now:%Y-%m}.jsonl"
            lock = os.open(self.directory, os.O_RDONLY)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when it is closed
                if self._end is None or self._end != (path, _size(path)):
                    self._last = self._last_hash()  # another process wrote since
                entry["prev"] = self._last
                entry["hash"] = _digest(entry)
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
                self._end = (path, _size(path))
            finally:
                os.close(lock)
            self._last = entry["hash"]
        return entry

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first."""
        for path in self._files():
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        yield json.loads(line)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def verify(directory: Path) -> int:
    """Check the chain under ``directory``; the number of records, or HutongError naming
    the first record that does not follow from the one before."""
    prev = GENESIS
    count = 0
    try:
        entries = list(AuditLog(directory).records())
    except ValueError as exc:
        raise HutongError(f"audit log under {directory}: a line is not JSON ({exc})") from None
    for count, entry in enumerate(entries, start=1):
        claimed = entry.pop("hash", None)
        if entry.get("prev") != prev or claimed != _digest(entry):
            raise HutongError(f"audit log: record {count} ({entry.get('at')}) breaks the chain")
        prev = claimed
    return count
