"""A warehouse sink in a process of its own, for the crash test (test_sink_crash.py).

``python -m tests.integration.sink_process BOOTSTRAP TOPIC GROUP DATA_DIR [--die-after-write]``
feeds the chDB warehouse under DATA_DIR from TOPIC; with ``--die-after-write`` the
process kills itself (SIGKILL) right after its first batch is inserted, before the
runner commits the offsets: the crash the sink must survive without doubling rows.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hutong.metrics import Metrics
from sinks.base import Decoded, Rejected
from sinks.runner import SinkRunner
from sinks.warehouse import migrate, open_warehouse
from sinks.warehouse.sink import WarehouseSink


class _DieAfterWrite:
    """Writes through to the warehouse sink, then dies before the offsets are committed."""

    name = "warehouse"

    def __init__(self, sink: WarehouseSink) -> None:
        self._sink = sink

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        rejected = self._sink.write(batch)
        print(f"wrote {len(batch)}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return rejected

    def close(self) -> None:
        self._sink.close()


def main(argv: list[str]) -> None:
    bootstrap, topic, group, data_dir = argv[:4]
    warehouse = open_warehouse(None, Path(data_dir))
    migrate(warehouse)
    sink = WarehouseSink(warehouse, Metrics())
    runner = SinkRunner({"bootstrap.servers": bootstrap}, group, [topic],
                        _DieAfterWrite(sink) if "--die-after-write" in argv else sink,
                        Metrics(), batch_size=int(os.environ.get("SINK_BATCH", "1000")),
                        batch_wait_s=1.0)
    runner.start()
    print("started", flush=True)
    try:
        while runner.alive():
            time.sleep(0.2)
    finally:
        runner.stop()
        warehouse.close()


if __name__ == "__main__":
    main(sys.argv[1:])
