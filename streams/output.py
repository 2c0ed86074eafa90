"""What the stream worker writes for a linked event, as records to send.

Both stages that stamp events with an EMPI id, the partitioned stage
(:mod:`streams.partitioned`) and the resolver (:mod:`streams.app`), hand each
linked event to :meth:`StandardOutput.event`: it is translated
(:func:`streams.standardize.standardize`), its clinician linked
(:func:`streams.practitioners.link_practitioner`), encoded for
``hutong.std.<type>``, and, when it crosses a critical-value rule, written to the
alert stage's candidates too. Unmapped codes and unknown clinicians are counted
per batch and drained by :meth:`StandardOutput.counts`. Each stage keeps its own
instance (its own counts; the warehouse sums them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hutong.registry.practitioners import PractitionerFeed
from producers.kafka import OutRecord
from schemas import wire
from schemas.registry import Resolver
from streams.mapfeed import MapFeed
from streams.practitioners import UnknownPractitioner, link_practitioner
from streams.standardize import standardize, std_key
from streams.terminology.tally import Tally
from streams.terminology.translate import UnmappedHit
from streams.topology import CANDIDATES_TOPIC

__all__ = ["UNKNOWN_TOPIC", "UNMAPPED_TOPIC", "StandardOutput"]

UNMAPPED_TOPIC = "hutong.terminology.unmapped"
UNKNOWN_TOPIC = "hutong.registry.unknown-practitioners"


class StandardOutput:
    """Linked events to standard records; counts of what no map or registry knew."""

    def __init__(self, maps: MapFeed, practitioners: PractitionerFeed, ids: Resolver,
                 crosses_rule: Callable[[dict[str, Any]], bool]) -> None:
        self._maps = maps
        self._practitioners = practitioners
        self._ids = ids
        self._crosses_rule = crosses_rule
        self.unmapped_codes: Tally[UnmappedHit] = Tally()
        self.unknown_practitioners: Tally[UnknownPractitioner] = Tally()

    def event(self, record: dict[str, Any], read: wire.Framed | None = None) -> list[OutRecord]:
        """The records of one linked event: its standard event, and its alert candidate.

        ``read``: the event as read from Kafka, ``record`` made from it by replacing fields
        (the EMPI id): the fields no step changed are copied from its bytes."""
        translated = standardize(record, self._maps.store)
        out = translated.event
        if translated.unmapped:
            self.unmapped_codes.add(translated.unmapped, out["received_at"])
        if (unknown := link_practitioner(out, self._practitioners.index)) is not None:
            self.unknown_practitioners.add((unknown,), out["received_at"])
        topic = f"hutong.std.{out['event_type']}"
        # Decoded, linked and translated here: the field check would cost as much again.
        schema = self._ids.for_topic(topic)
        value = (wire.encode(schema, out, checked=False) if read is None
                 else wire.encode_changed(schema, read, out))
        key = std_key(out)
        if self._crosses_rule(out):  # a critical-value candidate: the alert stage's input
            return [OutRecord(CANDIDATES_TOPIC, key, value), OutRecord(topic, key, value)]
        return [OutRecord(topic, key, value)]

    def counts(self) -> list[OutRecord]:
        """The unmapped codes and unknown clinicians counted since the last call, one
        record each."""
        records = []
        for topic, tally in ((UNMAPPED_TOPIC, self.unmapped_codes),
                             (UNKNOWN_TOPIC, self.unknown_practitioners)):
            schema = self._ids.for_topic(topic)
            records += [OutRecord(topic, key, wire.encode(schema, record))
                        for key, record in tally.drain()]
        return records
