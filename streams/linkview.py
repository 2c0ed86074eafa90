"""A stream worker's copy of ``hutong.empi.links``: which EMPI id each record has.

The partitioned stage (:mod:`streams.partitioned`) stamps an event with the EMPI
id of its record from here. Every worker keeps the whole topic, whatever
partitions of the events it holds (as a global table would): a rebalance then
needs no reading, and the links grow with new records, not with events. The copy
is in RocksDB (rocksdict) beside the worker's tables, with the offset read up to
in each partition and the Kafka cluster's id, so a restarted worker reads only
what is new; a copy of another cluster (the embedded broker keeps its log in
memory and takes a new cluster id at each start) or ahead of the topic (the
topic recreated) is dropped and read again from the start.

A copy that lags is safe: an event whose link is not here yet goes to the
resolver, which stamps it there (ADR 0004).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict, WriteBatch

from hutong.offsets import watermarks
from hutong.topicfeed import TopicFeed
from schemas.registry import EMBEDDED, Resolver

__all__ = ["LINKS_TOPIC", "LinkView"]

log = logging.getLogger(__name__)

LINKS_TOPIC = "hutong.empi.links"
#: Keys of the offsets read to, and of the cluster they are of: a record key never
#: starts with a NUL.
_OFFSET = b"\x00offset:"
_CLUSTER = b"\x00cluster"


class LinkView(TopicFeed):
    """record key (``facility|source patient id``) -> EMPI id, followed by a daemon thread."""

    topic = LINKS_TOPIC
    what = "EMPI links"
    #: On the hot path: an event whose link has not come yet goes the resolver's way.
    settled_wait_ms = 50

    def __init__(self, client_config: dict[str, Any], path: Path,
                 ids: Resolver = EMBEDDED) -> None:
        super().__init__(client_config, ids)
        self._client_config = client_config
        self._db = Rdict(str(path), Options(raw_mode=True))

    def empi_id(self, key: bytes) -> str | None:
        """The EMPI id of the record ``key``, if linked."""
        held = self._db.get(key)
        return None if held is None else held.partition(b"|")[2].decode()

    def apply(self, record: Mapping[str, Any]) -> bool:
        key = f"{record['facility_id']}|{record['source_patient_id']}".encode()
        sequence = int(record["sequence"])
        held = self._db.get(key)
        if held is not None and int(held.partition(b"|")[0]) > sequence:
            return False  # an older change read again: the copy has a newer one
        self._db[key] = f"{sequence}|{record['empi_id']}".encode()
        return True

    def read_to(self, partition: int, offset: int) -> None:
        self._db[_OFFSET + str(partition).encode()] = str(offset + 1).encode()

    def start_offsets(self, partitions: list[int], cluster_id: str | None) -> dict[int, int]:
        stored = {p: int(held) for p in partitions
                  if (held := self._db.get(_OFFSET + str(p).encode())) is not None}
        held_cluster = self._db.get(_CLUSTER)
        if stored and held_cluster is not None and held_cluster != (cluster_id or "").encode():
            log.warning("this worker's copy of %s is of another Kafka cluster (the embedded "
                        "broker restarted?): it is dropped and read again", self.topic)
            stored = self._clear()
        if stored:
            ends = watermarks(self._client_config, [(self.topic, p) for p in stored])
            if any(offset > ends[(self.topic, p)][1] for p, offset in stored.items()):
                log.warning("the topic %s ends before this worker's copy of it (recreated?): "
                            "the copy is dropped and read again", self.topic)
                stored = self._clear()
        self._db[_CLUSTER] = (cluster_id or "").encode()
        return {**super().start_offsets(partitions, cluster_id), **stored}

    def _clear(self) -> dict[int, int]:
        """Drop the copy; no offsets read."""
        batch = WriteBatch(raw_mode=True)
        for key in self._db.keys():  # noqa: SIM118 - iterating an Rdict gives items
            batch.delete(key)
        self._db.write(batch)
        return {}

    def close(self) -> None:
        """Stop following and close the files."""
        self.stop()
        self._db.close()
