"""The terminology folder: code map files a data steward drops in, published as they change.

The hub reads every CSV and YAML map file under ``terminology_dir`` (default
``<data_dir>/terminology``; formats in :mod:`streams.terminology.files`) when it
starts and every ``terminology_poll_s`` seconds after, and publishes to
``hutong.terminology.maps`` what changed: at start, the maps that differ from
what the topic holds already; afterwards, maps added or changed in a file, and
a withdrawal (``deleted``) for a line taken out of a file. Stream workers apply
them to the next event, without a restart (:mod:`streams.mapfeed`).

A bad line is reported in the log with its file and line and left out; the
other maps of the file still apply. A file that cannot be read at all (half
saved, not UTF-8) keeps the maps it had. Maps uploaded through the API live
beside the folder's: a folder change never withdraws them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from producers.kafka import AsyncProducer, OutRecord
from schemas import wire
from schemas.registry import Resolver
from streams.mapfeed import MAPS_TOPIC, MapFeed
from streams.terminology.files import LoadedMaps, diff_loads, load_folder
from streams.terminology.maps import MapEntry

__all__ = ["TerminologyFolder", "publish_maps"]

log = logging.getLogger(__name__)


async def publish_maps(producer: AsyncProducer, ids: Resolver, entries: Sequence[MapEntry],
                       published: MapFeed | None = None) -> int:
    """Write ``entries`` that say something new to the maps topic; how many were written."""
    schema = ids.for_topic(MAPS_TOPIC)
    fresh = [e for e in entries if published is None or (held := published.store.get(e.key))
             is None or not held.same_mapping(e)]
    if fresh:
        await producer.send([OutRecord(MAPS_TOPIC, e.topic_key, wire.encode(schema,
                                                                            e.to_record()))
                             for e in fresh])
    return len(fresh)


class TerminologyFolder:
    """Loads the folder, publishes changes, and keeps watching."""

    def __init__(self, folder: Path, producer: AsyncProducer, ids: Resolver,
                 published: MapFeed, poll_s: float = 5.0) -> None:
        self.folder = folder
        self._producer = producer
        self._ids = ids
        self._published = published
        self._poll_s = poll_s
        self._loaded = LoadedMaps((), ())
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Publish what the folder says that the topic does not; then watch it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._published.wait_ready, 30.0)
        self._loaded = await asyncio.to_thread(self._load)
        written = await publish_maps(self._producer, self._ids, self._loaded.entries,
                                     self._published)
        log.info("terminology folder %s: %d maps, %d published", self.folder,
                 len(self._loaded.entries), written)
        self._task = asyncio.create_task(self._watch(), name="terminology-folder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _load(self) -> LoadedMaps:
        loaded = load_folder(self.folder)
        for problem in loaded.problems:
            log.warning("terminology: %s", problem)
        return loaded

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.reload()
            except Exception:  # a bad moment (Kafka away) must not end the watching
                log.exception("terminology folder %s: reload failed; trying again",
                              self.folder)

    async def reload(self) -> int:
        """Read the folder again and publish the differences; how many were written."""
        loaded = await asyncio.to_thread(self._load)
        changes = diff_loads(self._loaded, loaded)
        if not changes:
            self._loaded = loaded
            return 0
        written = await publish_maps(self._producer, self._ids,
                                     changes.to_publish(datetime.now(UTC)))
        self._loaded = loaded
        log.info("terminology folder %s: %d added, %d changed, %d withdrawn", self.folder,
                 len(changes.added), len(changes.changed), len(changes.removed))
        return written
