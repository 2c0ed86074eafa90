"""The exchange monitor (交换监控): what each facility sent and what became of it.

`status` decides a facility's status from its counts (pure); `queries` asks the
warehouse; `retry` sends a dead letter's message through the intake again. The
HTTP side is `hutong.api.monitor` (JSON) and `hutong.api.console` (the page).
"""

from hutong.monitor.status import Activity, Status, Thresholds, status

__all__ = ["Activity", "Status", "Thresholds", "status"]
