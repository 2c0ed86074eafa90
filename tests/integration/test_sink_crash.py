"""A warehouse sink killed between its insert and its offset commit doubles nothing."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from schemas import catalog, wire
from sinks.warehouse import open_warehouse
from tests.warehouse_events import SAMPLES

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


def _sink(bootstrap: str, topic: str, group: str, data_dir: Path,
          *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.sink_process", bootstrap, topic, group,
         str(data_dir), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _rows(data_dir: Path) -> list[tuple[str, int]]:
    with open_warehouse(None, data_dir) as warehouse:
        return [(str(event_id), int(n)) for event_id, n in warehouse.query_rows(
            "SELECT event_id, count() FROM diagnoses GROUP BY event_id")[1]]


def test_a_sink_killed_after_insert_before_commit_leaves_no_duplicate(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = f"test.sink-crash.{uuid.uuid4().hex[:8]}", f"crash-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    schema = catalog.schema("diagnosis")
    for n in range(40):
        producer.produce(topic, key=b"E-42", value=wire.encode(
            schema, SAMPLES["diagnosis"](event_id=f"crash-{n:03d}")))
    assert producer.flush(10) == 0

    with _sink(kafka_bootstrap, topic, group, tmp_path, "--die-after-write") as first:
        assert first.wait(90) == -9  # SIGKILL: inserted, never committed
        assert first.stdout is not None and "wrote" in first.stdout.read()
    written = _rows(tmp_path)
    assert written and all(n == 1 for _, n in written)

    with _sink(kafka_bootstrap, topic, group, tmp_path) as second:
        try:
            assert second.stdout is not None and second.stdout.readline().strip() == "started"
            time.sleep(8)  # joins the group (Tansu: a few seconds), reads from the last commit
        finally:
            second.terminate()
            second.wait(30)
    rows = _rows(tmp_path)
    assert len(rows) == 40 and all(n == 1 for _, n in rows)
