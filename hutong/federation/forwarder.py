"""Reporting up: standardized events forwarded to the platform above, at least once.

The forwarder is a sink (:mod:`sinks.runner`) on the ``hutong.std.<type>`` topics
the federation file names, in its own consumer group (``hutong-federation-up``):
a batch is decided by the rules (:mod:`hutong.federation.rules`: sent, sent
de-identified, or kept home), delivered, and only then are its offsets committed.
An upstream that is down stalls the forwarder, which retries with back-off and
resumes where it stopped; nothing is skipped. The upstream collapses repeats on
``event_id`` (its sinks are idempotent), so at-least-once delivery ends as
exactly one row there.

Three ways up:

``http`` (:class:`HttpForwarder`)
    ``POST`` batches to another hutong's ``/api/v1/ingest/federation`` with the API
    key the upstream gave this platform. A 2xx means the upstream's Kafka has them.
    A 422 lists the events it will never take: they become dead letters here, the
    others are sent again. A 413 halves the batch.
``kafka`` (:class:`KafkaForwarder`)
    writes the same records to the upstream cluster's ``hutong.events.<type>``,
    acknowledged by all its replicas.
``report`` (:class:`ReportForwarder`)
    for platforms that take files: JSON lines in ``report_dir``, one file per
    period with a manifest (count, SHA-256, time range), each line written
    durably before the offsets are committed.

Events go up to the upstream's ``hutong.events.<type>``: the upstream links them
to its own resident index and translates them with its own maps (the same
dictionaries, kept identical by federation down). The district's EMPI id is not
sent.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import KafkaException, Producer

from hutong.errors import DeliveryError
from hutong.federation.config import Federation, Up
from hutong.federation.rules import decide, deidentified
from hutong.metrics import Metrics
from producers.records import event_key
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from sinks.base import Decoded, Rejected

__all__ = ["FEDERATION_GROUP", "Envelope", "HttpForwarder", "KafkaForwarder",
           "ReportForwarder", "envelopes_body", "forwarder_for"]

log = logging.getLogger(__name__)

FEDERATION_GROUP = "hutong-federation-up"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event on its way up: the upstream topic, key and Avro value."""

    topic: str
    key: bytes
    value: bytes
    event: dict[str, Any]
    #: The schema the value was written with (its name, and its text).
    schema: str = ""
    schema_text: str = ""

    def to_json(self) -> dict[str, str]:
        return {"topic": self.topic, "schema": self.schema,
                "key": base64.b64encode(self.key).decode(),
                "value": base64.b64encode(self.value).decode()}


def envelopes_body(platform_id: str, envelopes: Sequence[Envelope]) -> bytes:
    """The JSON body of one ``POST /api/v1/ingest/federation``: the events, and the text of
    each schema they were written with, so that an upstream on another release reads them
    by Avro schema resolution."""
    schemas = {e.schema: e.schema_text for e in envelopes if e.schema}
    return json.dumps({"platform": platform_id, "schemas": schemas,
                       "events": [e.to_json() for e in envelopes]},
                      separators=(",", ":"), ensure_ascii=False).encode()


class _Forwarder:
    """Decides each event of a batch and hands what leaves to :meth:`deliver`."""

    name = "federation"

    def __init__(self, federation: Federation, metrics: Metrics,
                 pseudonymise: Callable[[str], str], ids: Resolver = EMBEDDED) -> None:
        assert federation.up is not None  # noqa: S101 - the hub builds one only then
        self.platform_id = federation.platform_id
        self.up: Up = federation.up
        self._metrics = metrics
        self._pseudonymise = pseudonymise
        self._ids = ids

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        leaving: list[tuple[Decoded, Envelope]] = []
        for item in batch:
            if not item.topic.startswith("hutong.std."):
                continue
            action, rule = decide(item.record, self.up.rules)
            if action == "withhold":
                self._metrics.federation_events.labels("withheld").inc()
                continue
            event = {**item.record, "empi_id": None}  # the upstream links to its own index
            if action == "deidentify":
                event = deidentified(event, self._pseudonymise, rule or "")
            topic = "hutong.events." + item.topic[len("hutong.std."):]
            entry = self._ids.for_topic(topic)
            value = wire.encode(entry, event)
            leaving.append((item, Envelope(topic, event_key(event), value, event, entry.name,
                                           entry.schema_str)))
            self._metrics.federation_events.labels(
                "deidentified" if action == "deidentify" else "sent").inc()
        if not leaving:
            return []
        try:
            refused = self.deliver([envelope for _, envelope in leaving])
        except DeliveryError:
            self._metrics.federation_failures.inc()
            raise
        self._metrics.federation_events.labels("refused").inc(len(refused))
        return [Rejected(leaving[index][0], reason) for index, reason in sorted(refused.items())]

    def deliver(self, envelopes: Sequence[Envelope]) -> dict[int, str]:
        """Make ``envelopes`` durable upstream; the ones it will never take, by index, with
        the reason. Raise DeliveryError when it may later (the runner retries)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the forwarder holds."""


class HttpForwarder(_Forwarder):
    """Posts batches to the upstream hutong's federation ingest."""

    def __init__(self, federation: Federation, metrics: Metrics,
                 pseudonymise: Callable[[str], str], ids: Resolver = EMBEDDED,
                 client: httpx.Client | None = None) -> None:
        super().__init__(federation, metrics, pseudonymise, ids)
        assert self.up.url is not None  # noqa: S101 - checked by the config
        self._url = self.up.url
        self._where = httpx.URL(self._url).copy_with(query=None)
        self._client = client or httpx.Client(timeout=self.up.timeout_s)
        self._headers = {"Authorization": f"Bearer {self.up.key()}",
                         "Content-Type": "application/json"}

    def deliver(self, envelopes: Sequence[Envelope]) -> dict[int, str]:
        refused: dict[int, str] = {}
        pending = list(range(len(envelopes)))
        while pending:
            answer = self._post([envelopes[i] for i in pending])
            if answer.status_code == 413 and len(pending) > 1:
                half = len(pending) // 2
                refused |= {pending[i]: r for i, r in self.deliver(
                    [envelopes[i] for i in pending[:half]]).items()}
                pending = pending[half:]
                continue
            if answer.status_code == 413:
                refused[pending[0]] = f"upstream {self._where}: one event is over its size limit"
                return refused
            if answer.status_code < 300:
                return refused
            if answer.status_code == 422:  # nothing stored: send the rest again
                told = self._refusals(answer, len(pending))
                refused |= {pending[i]: f"upstream refused it: {reason}"
                            for i, reason in told.items()}
                pending = [p for i, p in enumerate(pending) if i not in told]
                continue
            raise DeliveryError(f"upstream {self._where} answered {answer.status_code}: "
                                f"{answer.text[:200]}")
        return refused

    def _refusals(self, answer: httpx.Response, sent: int) -> dict[int, str]:
        """The events a 422 names, by their index in what was sent; a 422 that does not
        say which (a proxy's page, a hub of another kind) is an error to retry."""
        try:
            told = {int(r["index"]): str(r["reason"])[:500]
                    for r in answer.json()["refused"]}
        except (ValueError, KeyError, TypeError):
            told = {}
        if not told or any(not 0 <= index < sent for index in told):
            raise DeliveryError(f"upstream {self._where} refused a batch without saying "
                                "which events")
        return told

    def _post(self, envelopes: Sequence[Envelope]) -> httpx.Response:
        try:
            return self._client.post(self._url, content=envelopes_body(self.platform_id,
                                                                       envelopes),
                                     headers=self._headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"upstream {self._where} unreachable "
                                f"({type(exc).__name__})") from exc

    def close(self) -> None:
        self._client.close()


class KafkaForwarder(_Forwarder):
    """Writes to the upstream cluster's event topics."""

    def __init__(self, federation: Federation, metrics: Metrics,
                 pseudonymise: Callable[[str], str], ids: Resolver = EMBEDDED) -> None:
        super().__init__(federation, metrics, pseudonymise, ids)
        self._config = {**self.up.kafka, "bootstrap.servers": self.up.bootstrap or "",
                        "acks": "all", "enable.idempotence": True,
                        "message.max.bytes": 8 * 1024 * 1024}
        self._producer = Producer(self._config)

    def deliver(self, envelopes: Sequence[Envelope]) -> dict[int, str]:
        errors: list[str] = []

        def done(error: Any, _msg: Any) -> None:
            if error is not None:
                errors.append(str(error))

        try:
            for envelope in envelopes:
                self._producer.produce(envelope.topic, envelope.value, envelope.key,
                                       on_delivery=done,
                                       headers=[("hutong-platform", self.platform_id)])
                self._producer.poll(0)
            left = self._producer.flush(self.up.timeout_s)
        except (KafkaException, BufferError) as exc:
            raise DeliveryError(f"upstream Kafka {self.up.bootstrap}: {exc}") from exc
        if left or errors:
            raise DeliveryError(f"upstream Kafka {self.up.bootstrap} did not confirm "
                                f"{left + len(errors)} event(s): {errors[:1]}")
        return {}

    def close(self) -> None:
        self._producer.flush(5)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def _durably(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file, flushed, renamed, and the
    folder flushed, so an uploader never takes half a file and a power cut loses none."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class ReportForwarder(_Forwarder):
    """Report files for platforms that take batches.

    Each period's events go, one JSON line each (``{"topic": ..., "event": ...}``,
    bytes in base64), to ``<platform>-<start>-<n>.ndjson.part``, flushed to disk
    before the batch's offsets are committed. When the period is over (checked with
    each batch and every few seconds) it becomes ``.ndjson`` and then, last, a
    ``.manifest.json`` (platform, period, count, SHA-256) says it is whole: an
    uploader takes a report once its manifest is there. A ``.part`` left by a crash
    is finished at the next start (a torn last line dropped), and the events after
    the restart go to a file of their own (``-2``, ...).
    """

    def __init__(self, federation: Federation, metrics: Metrics,
                 pseudonymise: Callable[[str], str], ids: Resolver = EMBEDDED,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(federation, metrics, pseudonymise, ids)
        assert self.up.report_dir is not None  # noqa: S101 - checked by the config
        self.folder = self.up.report_dir
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._period = self.up.report_every_s
        self._started = self._period_start(clock())
        self._current: Path | None = None
        for left in sorted(self.folder.glob("*.ndjson.part")):
            self._finish(left)
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, name="federation-report",
                                       daemon=True)
        self._timer.start()

    def _period_start(self, now: float) -> float:
        return now - now % self._period

    def _part(self) -> Path:
        """The period's file: a new name for each file of a period (a restart within the
        period starts another), so a finished report is never written over."""
        if self._current is None:
            stamp = datetime.fromtimestamp(self._started, UTC).strftime("%Y%m%dT%H%M%SZ")
            for sequence in itertools.count(1):
                name = f"{self.platform_id}-{stamp}-{sequence}"
                if not any(self.folder.glob(f"{glob.escape(name)}.*")):
                    break
            self._current = self.folder / f"{name}.ndjson.part"
        return self._current

    def deliver(self, envelopes: Sequence[Envelope]) -> dict[int, str]:
        with self._lock:
            self._roll()
            lines = b"".join(json.dumps({"topic": e.topic, "event": e.event},
                                        default=_jsonable, ensure_ascii=False,
                                        separators=(",", ":")).encode() + b"\n"
                             for e in envelopes)
            try:
                with self._part().open("ab") as out:
                    out.write(lines)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                raise DeliveryError(f"report folder {self.folder}: {exc.strerror}") from exc
        return {}

    def _roll(self) -> None:
        """Finish the period's file once the period is over (holding the lock)."""
        now = self._clock()
        if now - self._started < self._period:
            return
        if self._current is not None and self._current.exists():
            self._finish(self._current)
        self._current = None
        self._started = self._period_start(now)

    def _finish(self, part: Path) -> None:
        """``part`` becomes its report and, last, the manifest that says it is whole."""
        data = part.read_bytes()
        if data and not data.endswith(b"\n"):  # a torn last line: its batch is read again
            data = data[:data.rfind(b"\n") + 1]
        final = part.with_suffix("")  # .ndjson
        stem = final.name.removesuffix(".ndjson")
        _durably(final, data)
        manifest = {"platform": self.platform_id, "file": final.name,
                    "events": data.count(b"\n"),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "period_start": stem[len(self.platform_id) + 1:].rsplit("-", 1)[0],
                    "period_s": self._period,
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        _durably(final.with_name(f"{stem}.manifest.json"),
                 json.dumps(manifest, indent=2).encode())
        part.unlink()
        log.info("federation report %s: %d event(s)", final.name, manifest["events"])

    def _tick(self) -> None:
        while not self._stop.wait(min(5.0, self._period / 4)):
            with self._lock:
                self._roll()

    def close(self) -> None:
        self._stop.set()


def forwarder_for(federation: Federation, metrics: Metrics, pseudonymise: Callable[[str], str],
                  ids: Resolver = EMBEDDED) -> _Forwarder:
    """The forwarder the federation file's ``up.mode`` names."""
    assert federation.up is not None  # noqa: S101
    kinds: dict[str, type[_Forwarder]] = {"http": HttpForwarder, "kafka": KafkaForwarder,
                                          "report": ReportForwarder}
    return kinds[federation.up.mode](federation, metrics, pseudonymise, ids)
