"""From ``hutong.events.<type>`` to ``hutong.std.<type>``: the pure step.

For now the standard event is the facility's event unchanged; EMPI linking and
code translation plug in here (issues 4 and 5). The key of ``hutong.std.*``
is the EMPI id once linking exists; until then it is the facility-scoped
patient id, the same key the event arrived with.
"""

from __future__ import annotations

from typing import Any

from producers.records import event_key

__all__ = ["standardize", "std_key", "std_topic"]


def std_topic(source_topic: str) -> str:
    """``hutong.events.lab-result`` -> ``hutong.std.lab-result``."""
    prefix = "hutong.events."
    if not source_topic.startswith(prefix):
        raise ValueError(f"not an events topic: {source_topic}")
    return "hutong.std." + source_topic[len(prefix):]


def std_key(event: dict[str, Any]) -> bytes:
    """The key on ``hutong.std.*``: the EMPI id, or the facility-scoped patient id."""
    if event.get("empi_id"):
        return str(event["empi_id"]).encode()
    return event_key(event)


def standardize(event: dict[str, Any]) -> dict[str, Any]:
    """The standard form of one canonical event."""
    return event
