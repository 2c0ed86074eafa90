"""How ``python -m streams`` builds Faust's worker (no broker: nothing runs)."""

from __future__ import annotations

import io
import logging

import faust

from streams.__main__ import quiet_worker


def test_the_worker_leaves_the_root_logger_at_the_level_asked_for() -> None:
    """Faust's terminal spinner would set the root logger to DEBUG at WARNING, so that
    every debug call of Faust and aiokafka built a record no handler writes."""
    app = faust.App("hutong-test-quiet-worker", broker="kafka://127.0.0.1:1",
                    web_enabled=False)
    worker = quiet_worker(app, "WARNING")
    root = logging.Logger("a stand-in for the root logger", logging.WARNING)
    root.addHandler(logging.StreamHandler(io.StringIO()))
    worker.on_setup_root_logger(root, logging.WARNING)
    assert root.level == logging.WARNING and len(root.handlers) == 1
    assert not root.isEnabledFor(logging.DEBUG)
