"""From ``hutong.events.<type>`` to ``hutong.std.<type>``: the pure step after linking.

An event leaves the EMPI stage with its ``empi_id``; :func:`standardize`
translates its local codes with the maps in force (:mod:`streams.terminology`):
standard ``codes``, the ``unmapped`` fields, the ``map_version`` used, and for
lab results the value in the standard unit. The key of ``hutong.std.*`` is the
EMPI id (the facility-scoped patient id only if an event has none).
"""

from __future__ import annotations

from typing import Any

from producers.records import event_key
from streams.terminology.maps import MapStore
from streams.terminology.translate import Translated, translate

__all__ = ["standardize", "std_key"]


def std_key(event: dict[str, Any]) -> bytes:
    """The key on ``hutong.std.*``: the EMPI id, or the facility-scoped patient id."""
    if event.get("empi_id"):
        return str(event["empi_id"]).encode()
    return event_key(event)


def standardize(event: dict[str, Any], maps: MapStore) -> Translated:
    """The standard form of one linked event, and the local codes no map covered."""
    return translate(event, maps)
