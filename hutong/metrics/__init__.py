"""hutong's Prometheus metrics (docs/operations.md, "Metrics"; ADR 0007).

=====================  ==========================================================
``declared``           every metric, declared once: :class:`Metrics` (the hub
                       process) and :class:`StageMetrics` (every stage, stream
                       workers included)
``labels``             the bounded label values, pure
``children``           stream workers' metrics merged into the hub's ``/metrics``
``lag``                consumer lag per group and topic
``monitor``            the hub's background refresh of lag and warehouse gauges
=====================  ==========================================================
"""

from hutong.metrics.declared import Metrics, StageMetrics

__all__ = ["Metrics", "StageMetrics"]
