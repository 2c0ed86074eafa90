"""HL7 v2 batch files: every message through the intake, one report per file.

A file is split by :func:`producers.hl7v2.files.parse_batch` (FHS/BHS … BTS/FTS
envelopes or plain messages one after another). Each message
is handed to :class:`producers.intake.Intake` exactly as an MLLP message would be
(authorised, recognised as a resend, stored, dead-lettered), so a file dropped
twice is stored once. The report counts the outcomes, lists every message that
was not accepted with its reason, and notes a trailer count that does not match.

:class:`BatchWatcher` serves a directory::

    <batch_dir>/inbox/            drop files here (write elsewhere, then move in; names
                                  ending .part, .tmp or starting with . are left alone);
    <batch_dir>/inbox/<FACILITY>/ or here: the folder names the facility
    <batch_dir>/done/             every message got a durable outcome
    <batch_dir>/failed/           unreadable, or some messages could not be stored:
                                  drop it in again once the cause is fixed
    <batch_dir>/reports/          <file>.report.json, one per file processed
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.facilities import FacilityRegistry, Peer
from producers.hl7v2.files import parse_batch
from producers.intake import Intake

__all__ = ["BatchWatcher", "FileReport", "process_batch"]

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 5.0
#: A file is taken once unchanged for this many polls and this many seconds.
_SETTLE_POLLS = 2
_SETTLE_S = 5.0
_SKIPPED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


@dataclass(slots=True)
class FileReport:
    """What became of one file."""

    file: str
    started_at: str
    finished_at: str = ""
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # AA / AE / AR counts
    resends: int = 0
    not_stored: int = 0
    #: Messages not accepted: position (1-based), control id, outcome, reason.
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every message has a durable outcome (events, dead letter, or a refusal)."""
        return self.messages > 0 and self.not_stored == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def _control_id(message: bytes) -> str:
    msh = message.split(b"\r", 1)[0]
    fields = msh.split(msh[3:4]) if len(msh) > 3 else []
    return fields[9].decode("latin-1")[:50] if len(fields) > 9 else ""


async def process_batch(data: bytes, name: str, peer: Peer, intake: Intake, *,
                        progress: Callable[[int, int], None] | None = None) -> FileReport:
    """Hand every message of ``data`` to ``intake``; ``progress(done, total)`` now and then."""
    report = FileReport(name, datetime.now(UTC).isoformat(timespec="seconds"))
    batch = parse_batch(data)
    report.messages = len(batch.messages)
    report.notes.extend(batch.problems)
    if not batch.messages:
        report.notes.append("no HL7 v2 message (MSH segment) in the file")
    outcomes: Counter[str] = Counter()
    last = time.monotonic()
    for position, message in enumerate(batch.messages, start=1):
        receipt = await intake.receive(message, peer)
        outcomes[receipt.code] += 1
        report.resends += receipt.duplicate
        if not receipt.stored and not receipt.unauthorised:
            report.not_stored += 1
        if receipt.code != "AA":
            error = receipt.error
            report.problems.append({
                "position": position, "control_id": _control_id(message),
                "outcome": receipt.code, "reason": error.reason if error else receipt.reason,
                "location": error.location if error else None,
                "error_code": error.code if error else None})
        if progress is not None and (time.monotonic() - last > _PROGRESS_EVERY_S
                                     or position == len(batch.messages)):
            progress(position, len(batch.messages))
            last = time.monotonic()
    report.outcomes = dict(sorted(outcomes.items()))
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    return report


class BatchWatcher:
    """Polls ``<root>/inbox`` and processes each file once its size has settled."""

    def __init__(self, root: Path, intake: Intake, registry: FacilityRegistry, *,
                 poll_s: float = 2.0) -> None:
        self.root = root
        self._intake = intake
        self._registry = registry
        self._poll_s = poll_s
        self._seen: dict[Path, tuple[int, float, int]] = {}  # size, mtime, polls unchanged
        self.inbox, self.done, self.failed, self.reports = (
            root / name for name in ("inbox", "done", "failed", "reports"))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for folder in (self.inbox, self.done, self.failed, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="batch-watcher")
        log.info("watching %s for HL7 batch files", self.inbox)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                ready = self._settled()
            except OSError:
                log.exception("batch intake: cannot read %s", self.inbox)
                ready = []
            for path in ready:
                try:
                    await self.process(path)
                except Exception:  # one bad file must not stop the folder
                    log.exception("batch intake: %s could not be processed; moving it to "
                                  "failed/", path.name)
                    self._set_aside(path)
            await asyncio.sleep(self._poll_s)

    def _set_aside(self, path: Path) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        try:
            shutil.move(path, self.failed / f"{stamp}-{path.name}")
        except OSError:
            log.exception("batch intake: cannot move %s out of the inbox", path)
        self._seen.pop(path, None)

    def _settled(self) -> list[Path]:
        """Files unchanged (size and modification time) for a few polls and seconds."""
        ready: list[Path] = []
        seen: dict[Path, tuple[int, float, int]] = {}
        now = time.time()
        for path in sorted(self.inbox.rglob("*")):
            if not path.is_file() or path.name.startswith(".") or path.name.endswith(
                    _SKIPPED_SUFFIXES):
                continue
            stat = path.stat()
            size, mtime, polls = self._seen.get(path, (-1, -1.0, 0))
            polls = polls + 1 if (size, mtime) == (stat.st_size, stat.st_mtime) else 0
            seen[path] = (stat.st_size, stat.st_mtime, polls)
            if polls >= _SETTLE_POLLS and now - stat.st_mtime >= _SETTLE_S:
                ready.append(path)
        self._seen = seen
        return ready

    def _peer(self, path: Path) -> Peer | str:
        """Who sent the file: its facility folder, or the operator (MSH-4 decides)."""
        relative = path.relative_to(self.inbox)
        if len(relative.parts) == 1:
            return Peer("file", None, None, "batch inbox")
        facility = relative.parts[0]
        if facility not in self._registry and not self._registry.open_intake:
            return f"folder {facility} is not a registered facility"
        return Peer("file", None, facility, f"batch folder {facility}")

    async def process(self, path: Path) -> FileReport:
        """Process one file of the inbox: report, then move it to done or failed."""
        name = str(path.relative_to(self.inbox))
        peer = self._peer(path)
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            log.info("batch %s: %d of %d messages (%.0f/s)", name, done, total,
                     done / max(time.monotonic() - started, 1e-3))

        if isinstance(peer, str):
            report = FileReport(name, datetime.now(UTC).isoformat(timespec="seconds"))
            report.notes.append(peer)
            self._intake.refuse_connection(Peer("file", None, None, name), peer)
        else:
            before = path.stat()
            report = await process_batch(path.read_bytes(), name, peer, self._intake,
                                         progress=progress)
            after = path.stat()
            if (after.st_size, after.st_mtime) != (before.st_size, before.st_mtime):
                # Written to while we read it: leave it; the next look takes it whole (the
                # messages already stored are recognised as resends).
                log.warning("batch %s changed while it was read; it will be read again", name)
                self._seen.pop(path, None)
                return report
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        flat = name.replace("/", "__")
        target = (self.done if report.complete else self.failed) / f"{stamp}-{flat}"
        (self.reports / f"{stamp}-{flat}.report.json").write_text(report.to_json(),
                                                                   encoding="utf-8")
        shutil.move(path, target)
        self._seen.pop(path, None)
        log.info("batch %s: %d messages, %s -> %s", name, report.messages, report.outcomes,
                 target.parent.name)
        return report
