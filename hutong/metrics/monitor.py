"""Gauges of shared state, refreshed by the hub every few seconds in one thread.

Read where the state already is rather than counted on the hot path: consumer lag
from Kafka (`hutong.metrics.lag`); the EMPI review backlog and the open
critical-value alerts from the warehouse, whose sink stores every review pair
and alert state. A failed refresh keeps the last values, logs once until it
succeeds again, and counts in ``hutong_monitor_errors_total{check}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hutong.metrics.declared import Metrics
from hutong.metrics.lag import LagReader

if TYPE_CHECKING:
    from sinks.warehouse import Warehouse

__all__ = ["OPEN_ALERTS", "REVIEW_BACKLOG", "Monitor"]

log = logging.getLogger(__name__)

#: Review pairs that have not reached linked or rejected.
REVIEW_BACKLOG = """
SELECT count() FROM (
    SELECT pair_id FROM empi_reviews GROUP BY pair_id HAVING countIf(status != 'open') = 0)
"""
#: Unacknowledged alerts and the age in seconds of the oldest (0 when none).
OPEN_ALERTS = """
SELECT count(), if(count() = 0, 0, dateDiff('second', min(raised_at), now64(3)))
FROM critical_alerts WHERE state != 'acknowledged'
"""


class Monitor:
    """Refreshes lag (when ``groups`` are given) and warehouse gauges every ``every`` s."""

    def __init__(self, metrics: Metrics, *, client_config: Mapping[str, Any] | None = None,
                 groups: Mapping[str, Sequence[str]] | None = None,
                 warehouse: Warehouse | None = None, every: float = 5.0) -> None:
        self._metrics = metrics
        self._client_config = dict(client_config or {})
        self._groups = dict(groups or {})
        self._warehouse = warehouse
        self._every = every
        self._stop = threading.Event()
        self._failing: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="metrics-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        lag = LagReader(self._client_config, self._groups) if self._groups else None
        try:
            while not self._stop.is_set():
                if lag is not None:
                    self._check("lag", lambda: self._refresh_lag(lag))
                if self._warehouse is not None:
                    self._check("warehouse", self.refresh_warehouse)
                self._stop.wait(self._every)
        finally:
            if lag is not None:
                lag.close()

    def _check(self, name: str, refresh: Any) -> None:
        try:
            refresh()
        except Exception as exc:  # Kafka or the warehouse away: keep the last values
            self._metrics.monitor_errors.labels(name).inc()
            if name not in self._failing:
                log.warning("metrics: the %s gauges could not be refreshed: %s", name, exc)
                self._failing.add(name)
            return
        if name in self._failing:
            log.info("metrics: the %s gauges are refreshed again", name)
            self._failing.discard(name)

    def _refresh_lag(self, reader: LagReader) -> None:
        for (group, topic), value in reader.read().items():
            self._metrics.consumer_lag.labels(group, topic).set(value)

    def refresh_warehouse(self) -> None:
        """Set the review backlog and open-alert gauges from the warehouse."""
        warehouse = self._warehouse
        if warehouse is None:
            return
        backlog = warehouse.query_rows(REVIEW_BACKLOG)[1]
        alerts = warehouse.query_rows(OPEN_ALERTS)[1]
        self._metrics.empi_review_backlog.set(float(backlog[0][0]) if backlog else 0.0)
        if alerts:
            self._metrics.critical_alerts_open.set(float(alerts[0][0]))
            self._metrics.critical_alert_oldest_open.set(float(alerts[0][1]))
