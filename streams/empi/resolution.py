"""The resolver's step: an event or a reviewer's decision in, EMPI changes out (pure).

:class:`IdentityResolver` wraps the :class:`~streams.empi.linker.MasterIndex`
the one resolver owns (ADR 0004). For each event with identity news it links
the event's patient and stamps the event with the EMPI id; an ADT^A40 merge
also merges the EMPI ids of the two facility records. For each decision
(``hutong.empi.decisions``) it accepts or rejects a review pair, or merges or
splits two EMPI ids. What it returns is what the stream worker writes: the
stamped event, the link changes, the review pairs raised or decided, the golden
record of each EMPI id that changed, and the state entries to store.

A decision it cannot apply (an unknown pair, a merge it has no history of) is
answered with the reason, for the dead-letter queue; a decision id seen before
is applied once.

The model's m and u come from the data: once the index holds
``ResolverConfig.train_from`` records, and again each time it has doubled, the
resolver estimates them by EM over its own records (:func:`training.train`),
then applies the levels the configuration sets by hand. The model is stored
with the index, so a restart decides with the same one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.empi.linker import LinkChange, MasterIndex, ReviewPair, Thresholds
from streams.empi.model import DEFAULT_MODEL, Model
from streams.empi.person import person_from_event
from streams.empi.state import (
    MODEL,
    Entries,
    changed_entries,
    decision_key,
    encode_model,
    restore,
)
from streams.empi.training import train

__all__ = ["DECISIONS", "IdentityResolver", "Resolution", "ResolverConfig"]

log = logging.getLogger(__name__)

#: Records drawn for one training (the newest); random pairs are sampled from them.
_TRAINING_SAMPLE = 100_000
#: Random pairs for u: enough to see the rare levels, no more than the index can tell.
_RANDOM_PAIRS = 200_000
_PAIRS_PER_RECORD = 25

#: What a decision may ask for.
DECISIONS = ("accept", "reject", "merge", "unmerge")


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """What the hub's settings say about the index (``HUTONG_EMPI_*``)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Train from this many records, again at each doubling; 0: never, the default model.
    train_from: int = 1000
    #: Levels set by hand: ``{"name": {"exact": {"m": 0.9, "u": 0.0005}}}``.
    model_overrides: Mapping[str, Mapping[str, Mapping[str, float]]] = field(
        default_factory=dict)
    #: Facility id -> trust for the golden record.
    trust: Mapping[str, int] = field(default_factory=dict)
    #: Key of the EMPI and pair ids minted (`hutong.keys`); None: unkeyed (tests, benches).
    id_secret: bytes | None = None

    def model(self, base: Model = DEFAULT_MODEL) -> Model:
        return base.with_overrides(self.model_overrides) if self.model_overrides else base


@dataclass(slots=True)
class Resolution:
    """What one event or decision changed."""

    #: The event stamped with its EMPI id (None for a decision).
    event: dict[str, Any] | None = None
    changes: list[LinkChange] = field(default_factory=list)
    reviews: list[ReviewPair] = field(default_factory=list)
    #: Why a decision was not applied (it goes to the dead-letter queue).
    refused: str | None = None


class IdentityResolver:
    """The master index and the decisions already applied to it."""

    def __init__(self, config: ResolverConfig | None = None) -> None:
        self.config = config or ResolverConfig()
        self.index = MasterIndex(self.config.model(), self.config.thresholds,
                                 id_secret=self.config.id_secret)
        #: Facility id -> how far its demographics are trusted (golden record).
        self.trust = dict(self.config.trust)
        self.decided: set[str] = set()
        self._new_decisions: set[str] = set()
        #: The index size at which the model is estimated next (0: never).
        self.train_at = self.config.train_from
        #: The last model estimated from the index, before the levels set by hand.
        self.estimated: Model | None = None
        self._model_changed = False
        #: EMPI ids whose records changed since the last golden records.
        self._touched: set[str] = set()

    @classmethod
    def restored(cls, entries: Iterable[tuple[str, bytes]],
                 config: ResolverConfig | None = None) -> IdentityResolver:
        """The resolver as its stored state left it."""
        resolver = cls(config)
        resolver.decided, stored = restore(resolver.index, entries)
        if stored is not None and resolver.train_at:  # train_from 0: the built-in model
            model, trained_on = stored
            resolver.estimated = model
            resolver.index.model = resolver.config.model(model)
            resolver.train_at = max(resolver.train_at, trained_on * 2)
        return resolver

    def _maybe_train(self) -> None:
        """Estimate m and u from the index when it has grown enough (see the module)."""
        size = len(self.index.records)
        if not self.train_at or size < self.train_at:
            return
        started = time.perf_counter()
        # In key order, so that a restored index trains on the same list.
        records = [self.index.records[k] for k in sorted(self.index.records)][-_TRAINING_SAMPLE:]
        trained = train(records, self.config.model(),
                        random_pairs=min(_RANDOM_PAIRS, _PAIRS_PER_RECORD * len(records))).model
        self.estimated = trained
        self.index.model = self.config.model(trained)
        self.train_at = size * 2
        self._model_changed = True
        log.info("EMPI model estimated from %d records in %.1f s; next at %d records",
                 len(records), time.perf_counter() - started, self.train_at)

    def resolve(self, event: Mapping[str, Any]) -> Resolution:
        """Link the event's patient; the event comes back with ``empi_id`` set."""
        self._maybe_train()
        facility = event["facility_id"]
        at: datetime = event["received_at"]
        person = person_from_event(facility, event["patient"],
                                   observed_at=event.get("occurred_at") or at)
        outcome = self.index.link(person, at)
        if person.key in self.index.journal.records:  # stored anew: its golden record may move
            self._touched.add(self.index.links[person.key])
        changes, reviews = list(outcome.changes), list(outcome.reviews)
        retired = event.get("merged_source_patient_id")
        if event.get("event_type") == "patient" and event.get("action") == "merge" and retired:
            changes += self.index.merge_records(
                person.key, (facility, retired), at=at, decided_by=f"facility:{facility}",
                reason="the facility merged its two patient ids (ADT^A40)")
        return Resolution({**event, "empi_id": self.index.links[person.key]}, changes, reviews)

    def decide(self, decision: Mapping[str, Any]) -> Resolution:
        """Apply a reviewer's decision (schemas/empi-decision.avsc)."""
        decision_id, action = decision["decision_id"], decision["action"]
        if decision_id in self.decided:
            return Resolution()
        by, at = decision["decided_by"], decision["decided_at"]
        reason = decision.get("reason") or f"{action} by a reviewer"
        index = self.index
        if action in ("accept", "reject"):
            pair = index.reviews.get(decision.get("pair_id") or "")
            if pair is None:
                return Resolution(refused=f"{action}: no review pair {decision.get('pair_id')!r}")
            if pair.status != "open":
                return Resolution(refused=f"{action}: pair {pair.pair_id} is already "
                                          f"{pair.status}")
            try:
                changes = index.decide(pair.pair_id, action == "accept", by=by, at=at)
            except ValueError as exc:
                return Resolution(refused=f"{action}: {exc}")
            resolution = Resolution(changes=changes, reviews=[pair])
        elif action in ("merge", "unmerge"):
            survivor, loser = decision.get("survivor_empi_id"), decision.get("loser_empi_id")
            if not survivor or not loser or survivor == loser:
                return Resolution(refused=f"{action}: two different EMPI ids are needed")
            if action == "merge":
                unknown = [e for e in (survivor, loser) if e not in index.members]
                if unknown:
                    return Resolution(refused=f"merge: no EMPI id {unknown[0]!r} in the index")
                changes = index.merge(survivor, loser, reason=reason, decided_by=by, at=at)
            else:
                try:
                    changes = index.unmerge(survivor, loser, reason=reason, decided_by=by,
                                            at=at)
                except KeyError:
                    return Resolution(refused=f"unmerge: no merge of {loser} into {survivor} "
                                              "in the history")
                except ValueError as exc:
                    return Resolution(refused=f"unmerge: {exc}")
            resolution = Resolution(changes=changes)
        else:
            return Resolution(refused=f"unknown action {action!r}; one of {', '.join(DECISIONS)}")
        self.decided.add(decision_id)
        self._new_decisions.add(decision_id)
        return resolution

    def golden_records(self, changes: Iterable[LinkChange], at: datetime
                       ) -> dict[str, dict[str, Any] | None]:
        """The golden record of each EMPI id ``changes`` touched; None for an id that
        no longer holds a record (merged away): its tombstone."""
        touched = {c.empi_id for c in changes} | {c.previous_empi_id for c in changes
                                                   if c.previous_empi_id} | self._touched
        self._touched = set()
        return {empi_id: ({**self.index.golden(empi_id, self.trust), "updated_at": at}
                          if self.index.members.get(empi_id) else None)
                for empi_id in sorted(touched)}

    def take_entries(self) -> Entries:
        """The state entries changed since the last call (None deletes one)."""
        entries = changed_entries(self.index, self.index.take_journal())
        for decision_id in self._new_decisions:
            entries[decision_key(decision_id)] = b"1"
        self._new_decisions.clear()
        if self._model_changed and self.estimated is not None:
            entries[MODEL] = encode_model(self.estimated, self.train_at // 2)
            self._model_changed = False
        return entries
