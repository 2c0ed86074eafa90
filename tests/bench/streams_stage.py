"""``make bench``: the stream worker's translation stage and the critical-value latency.

On the embedded broker (Tansu), with one stream worker (``python -m streams``):

1. **translate() alone**, the pure function on lab results with a warm map store;
   and **Avro decode + encode alone** of the same results (``schemas.wire``'s
   compiled reader and writer; beside it fastavro's, the library's figure): the limits
   the stage cannot beat.
2. **The stage**, events/s through one worker: ``BENCH_STREAM_EVENTS`` lab results
   (default 100,000) for 2,000 patients already linked, written to
   ``hutong.events.lab-result`` while the worker is paused (SIGSTOP), so that the
   sending does not share the machine with it; the clock runs from the worker's
   first standard event after it resumes to the last. Every event is decoded, stamped
   with its EMPI id from the worker's links copy, translated and written to
   ``hutong.std.lab-result``, and compared with the critical-value rules.
   Beside it, the same number of records read by librdkafka alone (the raw
   consumer limit) and by a bare Faust agent that only counts (the Faust loop).
3. **Alert latency**: results sent at ``BENCH_ALERT_RATE`` per second (default
   5,000) for ``BENCH_ALERT_SECONDS`` (default 20), 1 % of them critical
   (potassium 6.8 mmol/L, each for another linked patient); the latency is from
   each critical result's write to its alert on ``hutong.alerts.critical``, read
   by a consumer of its own as the results are sent, p50 and p99.

Printed, never asserted; :func:`main` returns the figures for a results file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from fastavro import schemaless_reader, schemaless_writer

from hutong.offsets import watermarks
from hutong.stack.broker import EmbeddedBroker
from hutong.stack.topics import ensure_topics
from producers.ids import event_id
from producers.kafka import producer_config
from producers.records import event_key
from schemas import catalog, wire
from streams.terminology.maps import MapEntry, MapStore
from streams.terminology.translate import translate
from tests.integration.conftest import free_port

EVENTS = int(os.environ.get("BENCH_STREAM_EVENTS", "100000"))
PATIENTS = 2000
RATE = int(os.environ.get("BENCH_ALERT_RATE", "5000"))
SECONDS = int(os.environ.get("BENCH_ALERT_SECONDS", "20"))
FACILITY = "BENCHLAB"
_AT = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
_CODES = (("K", "2823-3", "4.1", "mmol/L"), ("NA", "2951-2", "140", "mmol/L"),
          ("GLU", "14749-6", "5.5", "mmol/L"), ("HGB", "718-7", "135", "g/L"))


def lab_result(n: int, patient: int, critical: bool = False) -> dict[str, Any]:
    local, _, value, unit = _CODES[n % len(_CODES)]
    if critical:
        local, value, unit = "K", "6.8", "mmol/L"
    spid = f"P{patient:06d}"
    return {
        "event_id": event_id(FACILITY, f"M{n}", "OBX1"), "event_type": "lab-result",
        "facility_id": FACILITY, "source_system": "LIS", "message_control_id": f"M{n}",
        "source_patient_id": spid, "empi_id": None, "occurred_at": _AT,
        "received_at": datetime.now(UTC),
        "patient": {"source_patient_id": spid, "identifiers": [], "id_card_number": None,
                    "health_card_number": None, "name": f"病人{patient}", "sex": "1",
                    "phone": None, "address": None, "birth_date": None},
        "quality_warnings": [], "map_version": None, "codes": [], "unmapped": [],
        "set_id": 1, "placer_order_number": None, "filler_order_number": None,
        "panel_code": None, "panel_name": None, "specimen_type": None,
        "specimen_collected_at": None, "test_code": local, "test_name": None,
        "test_system": "L", "value_type": "NM", "value": value, "value_numeric": float(value),
        "unit": unit, "reference_range": None, "abnormal_flags": [], "result_status": "F",
        "observed_at": _AT, "performing_lab": None, "standard_value": None,
        "standard_unit": None, "ordering_provider_id": "D1", "ordering_department": "NK",
        "visit_number": None, "patient_class": "I",
    }


def maps() -> list[MapEntry]:
    return [MapEntry(FACILITY, "lab-test", local, "LOINC", loinc, None, "bench-1", _AT)
            for local, loinc, _, _ in _CODES]


def translate_alone() -> float:
    store = MapStore(maps())
    events = [lab_result(n, n % PATIENTS) | {"empi_id": "E"} for n in range(50_000)]
    started = time.perf_counter()
    for event in events:
        translate(event, store)
    return len(events) / (time.perf_counter() - started)


def codec_alone() -> tuple[float, float]:
    """Events/s that ``schemas.wire`` decodes and encodes again (its compiled reader and
    writer): the limit of a stage that reads and writes every event, before any work on
    it; and the same through fastavro's own reader and writer, the library's figure."""
    entry = catalog.schema("lab-result")
    values = [wire.encode(entry, lab_result(n, n % PATIENTS)) for n in range(50_000)]
    started = time.perf_counter()
    for value in values:
        wire.encode(entry, wire.decode(value)[1], checked=False)
    compiled = len(values) / (time.perf_counter() - started)
    started = time.perf_counter()
    for value in values:
        body = BytesIO(value)
        body.seek(wire.HEADER_SIZE)
        record = schemaless_reader(body, entry.parsed, None)
        out = BytesIO()
        out.write(value[:wire.HEADER_SIZE])
        schemaless_writer(out, entry.parsed, record)
    return compiled, len(values) / (time.perf_counter() - started)


class Stack:
    """Tansu with the contract's topics and a stream worker on it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hutong-bench-"))
        self.broker = EmbeddedBroker(self.dir, port=free_port())
        self.worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Stack:
        self.broker.start()
        ensure_topics({"bootstrap.servers": self.broker.bootstrap})
        self.config = {"bootstrap.servers": self.broker.bootstrap}
        self.producer = Producer(producer_config(self.config))
        self.publish_maps()
        return self

    def __exit__(self, *_: Any) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(20)
        self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def publish_maps(self) -> None:
        schema = catalog.schema("concept-map")
        for entry in maps():
            self.producer.produce("hutong.terminology.maps", key=entry.topic_key,
                                  value=wire.encode(schema, entry.to_record()))
        self.producer.flush(30)

    def send(self, event: dict[str, Any]) -> None:
        value = wire.encode(catalog.schema("lab-result"), event)
        while True:
            try:
                self.producer.produce("hutong.events.lab-result", key=event_key(event),
                                      value=value)
                return
            except BufferError:
                self.producer.poll(0.05)

    def start_worker(self) -> None:
        env = {**os.environ, "HUTONG_DATA_DIR": str(self.dir),
               "HUTONG_KAFKA_BOOTSTRAP": self.broker.bootstrap, "HUTONG_LOG_LEVEL": "WARNING"}
        log = (self.dir / "worker.log").open("wb")
        self.worker = subprocess.Popen([sys.executable, "-m", "streams"], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)

    def link_patients(self) -> float:
        """One result per patient, through a worker started now; when all are linked, the
        monotonic deadline the rest of the run keeps to."""
        for patient in range(PATIENTS):
            self.send(lab_result(patient, patient))
        self.producer.flush(60)
        self.start_worker()
        deadline = time.monotonic() + 180
        self.settle("hutong.std.lab-result", PATIENTS, deadline)
        return deadline

    def settle(self, topic: str, expected: int, deadline: float) -> int:
        """Wait until ``topic`` holds about ``expected`` records and stops growing. (Tansu's
        high watermarks can read a record or two off, so "about" and "stops".)"""
        seen, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.count(topic)
            if now != seen:
                seen, still_since = now, time.monotonic()
            elif now >= expected * 0.99 and time.monotonic() - still_since > 2.0:
                break
            time.sleep(0.3)
        return seen

    def count(self, topic: str) -> int:
        """Records on ``topic`` (read to the end: Tansu's ListOffsets can answer short)."""
        consumer = Consumer({**self.config, "group.id": "bench-count"})
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        finally:
            consumer.close()
        marks = watermarks(self.config, [(topic, p) for p in partitions])
        return sum(high for _, high in marks.values())


def stage_throughput() -> tuple[float, float]:
    """(events/s through the worker, records/s librdkafka reads the same events)."""
    with Stack() as stack:
        stack.link_patients()
        assert stack.worker is not None
        stack.worker.send_signal(signal.SIGSTOP)  # the events wait for it, as after an outage
        for n in range(EVENTS):
            stack.send(lab_result(PATIENTS + n, n % PATIENTS))
        stack.producer.flush(120)
        stack.worker.send_signal(signal.SIGCONT)
        target = PATIENTS + EVENTS
        first = last = None
        base = seen = stack.count("hutong.std.lab-result")
        until = time.monotonic() + 900
        while seen < target - 10 and time.monotonic() < until:
            time.sleep(0.2)
            now, seen = time.perf_counter(), stack.count("hutong.std.lab-result")
            if first is None and seen > base:
                first = (now, seen)
            last = (now, seen)
        if first is None or last is None or last[1] <= first[1]:
            return 0.0, 0.0
        stage = (last[1] - first[1]) / (last[0] - first[0])
        raw = _raw_consume(stack.config, "hutong.events.lab-result", target)
        return stage, raw


def _raw_consume(config: dict[str, Any], topic: str, count: int) -> float:
    """Records/s librdkafka reads ``topic`` from the start (assigned: no group to join)."""
    consumer = Consumer({**config, "group.id": f"bench-raw-{time.time()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen, started = 0, None
    until = time.monotonic() + 120
    try:
        while seen < count and time.monotonic() < until:
            batch = consumer.consume(10_000, timeout=1.0)
            if batch and started is None:
                started = time.perf_counter()
            seen += sum(1 for m in batch if not m.error())
        return count / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        consumer.close()


def alert_latency() -> tuple[list[float], int]:
    """Seconds from each critical result's write to its alert; and how many were sent.

    The alerts are read in a thread of their own while the results are sent, so that
    each is timed when it arrives, not when the sending is over.
    """
    with Stack() as stack:
        stack.link_patients()
        arrived: dict[str, float] = {}
        reading = threading.Event()
        stop = threading.Event()

        def read_alerts() -> None:
            alerts = Consumer({**stack.config, "group.id": f"bench-alerts-{time.time()}",
                               "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
            alerts.subscribe(["hutong.alerts.critical"])
            try:
                while not stop.is_set():
                    msg = alerts.poll(0.05)
                    if alerts.assignment():
                        reading.set()
                    if msg is None or msg.error():
                        continue
                    alert = wire.decode(msg.value())[1]
                    if alert["status"] == "raised":
                        arrived.setdefault(alert["event_id"], time.perf_counter())
            finally:
                alerts.close()

        reader = threading.Thread(target=read_alerts, daemon=True)
        reader.start()
        reading.wait(60)
        sent: dict[str, float] = {}
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < SECONDS:
            due = started + n / RATE
            if time.perf_counter() < due:
                time.sleep(max(0.0, due - time.perf_counter()))
            critical = n % 100 == 0
            # each critical result for another linked patient: no de-duplication in the way
            event = lab_result(10_000_000 + n, (n // 100) % PATIENTS if critical
                               else n % PATIENTS, critical)
            stack.send(event)
            if critical:
                sent[event["event_id"]] = time.perf_counter()
            n += 1
            stack.producer.poll(0)
        stack.producer.flush(60)
        until = time.monotonic() + 60
        while not sent.keys() <= arrived.keys() and time.monotonic() < until:
            time.sleep(0.2)
        stop.set()
        reader.join(10)
        latencies = [arrived[event] - at for event, at in sent.items() if event in arrived]
        return sorted(latencies), len(sent)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> list[dict[str, Any]]:
    alone = translate_alone()
    codec, fastavro_codec = codec_alone()
    stage, raw = stage_throughput()
    latencies, critical = alert_latency()
    print(f"\nStream worker, translation stage ({EVENTS} lab results, one worker)")
    print(f"  translate() alone                {alone:>10.0f} events/s")
    print(f"  the stage (link, translate, alert) {stage:>8.0f} events/s   "
          f"{stage / alone:.3f} of translate() alone; target 20,000")
    print(f"  Avro decode + encode alone       {codec:>10.0f} events/s   "
          f"the stage is {stage / codec:.3f} of it (the codec limit)")
    print(f"  the same through fastavro        {fastavro_codec:>10.0f} events/s   "
          f"the compiled codec is {codec / fastavro_codec:.2f}x it")
    print(f"  librdkafka reading the same      {raw:>10.0f} records/s  (the consumer limit)")
    print(f"Critical-value alerts at {RATE} results/s for {SECONDS} s: {len(latencies)} of "
          f"{critical} alerts seen; latency p50 {_pct(latencies, 0.5) * 1000:.0f} ms, "
          f"p99 {_pct(latencies, 0.99) * 1000:.0f} ms (target p99 <= 1000 ms)")
    return [
        {"name": "streams.translate_alone", "value": round(alone), "unit": "events/s"},
        {"name": "streams.codec_alone", "value": round(codec), "unit": "events/s",
         "peer": "fastavro decode + encode", "peer_value": round(fastavro_codec),
         "ratio": round(codec / fastavro_codec, 3) if fastavro_codec else None},
        {"name": "streams.stage", "value": round(stage), "unit": "events/s",
         "limit": round(codec), "limit_name": "Avro decode + encode alone",
         "ratio": round(stage / codec, 4) if codec else None},
        {"name": "streams.consumer_limit", "value": round(raw), "unit": "records/s"},
        {"name": "alerts.latency_p50", "value": round(_pct(latencies, 0.5), 3), "unit": "s"},
        {"name": "alerts.latency_p99", "value": round(_pct(latencies, 0.99), 3), "unit": "s"},
    ]


if __name__ == "__main__":
    main()
