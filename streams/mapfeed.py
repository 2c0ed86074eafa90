"""The code maps a stream worker translates with: ``hutong.terminology.maps``, followed live.

Every worker needs every map (an event of any partition may name any code), so
each reads the whole compacted topic into its own
:class:`~streams.terminology.maps.MapStore` (:class:`hutong.topicfeed.TopicFeed`:
a thread of its own, no consumer group, read again on restart) and keeps reading:
a map published later (a file dropped in the terminology folder, an API upload)
applies to the next event, without a restart.

:meth:`MapFeed.wait_ready` returns once the maps that existed when the worker
started have been read, so the first events are not translated with half the
maps and wrongly marked unmapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hutong.topicfeed import TopicFeed
from schemas.registry import EMBEDDED, Resolver
from streams.terminology.maps import MapEntry, MapStore

__all__ = ["MAPS_TOPIC", "MapFeed"]

MAPS_TOPIC = "hutong.terminology.maps"


class MapFeed(TopicFeed):
    """A MapStore kept up to date from the maps topic by a daemon thread."""

    topic = MAPS_TOPIC
    what = "code maps"

    def __init__(self, client_config: dict[str, Any], ids: Resolver = EMBEDDED) -> None:
        super().__init__(client_config, ids)
        self.store = MapStore()

    def apply(self, record: Mapping[str, Any]) -> bool:
        return self.store.put(MapEntry.from_record(record))

    def loaded(self) -> str:
        return f"{len(self.store)} in force"
