"""The resident master index: source records linked to EMPI ids, as records arrive.

:class:`MasterIndex` holds every source record (facility + patient id), the
EMPI id each is linked to, the blocking index, the review queue and the merge
history, and decides, for each record it is given (:meth:`MasterIndex.link`):

1. **Deterministic rules.** A valid GB 11643 ID-card number or a health card
   number already in the index links to its EMPI id, provided the name and
   birth date do not contradict it (a newborn registered under the mother's ID
   card is common: that case goes to review instead). A record already known
   (same facility and patient id) keeps its EMPI id; if it now carries an ID or
   health card of another EMPI id, the two are merged by that rule.
2. **Fellegi-Sunter scoring** against the records sharing a blocking key, best
   per EMPI id. Records whose valid ID cards differ are never linked, nor an
   EMPI id holding another valid ID card, nor two EMPI ids a reviewer or an
   unmerge separated.
3. **Two thresholds.** At or above ``upper``: link. Between ``lower`` and
   ``upper``: a new EMPI id, and the pair goes to review. Below: a new EMPI id.

Every change is a :class:`LinkChange` (the ``hutong.empi.links`` event) with
its reason and who or what decided; merges keep their history so that
:meth:`MasterIndex.unmerge` can split them again. Precision comes first: in a
clinical record a false merge is worse than a missed link, so the defaults
link only on overwhelming evidence and send the doubtful to a person.

EMPI ids are deterministic (UUIDv5 of the founding record), so replaying the
same records in the same order gives the same ids.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from producers.ids import uuid5_text
from streams.empi.blocking import blocking_keys
from streams.empi.compare import (
    COMPARISONS,
    Vector,
    compare,
    compare_birth_dates,
    compare_names,
)
from streams.empi.model import DEFAULT_MODEL, Model, probability
from streams.empi.person import Person, RecordKey, updated

__all__ = ["Journal", "LinkChange", "MasterIndex", "Outcome", "ReviewPair", "Thresholds",
           "empi_id_for", "pair_id_for"]

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6a1f3c52-5e0b-4d0e-9a57-2f1b8c0d4e71")
_NAME_CLOSE = 3
_NAME_OTHER = 4
_BIRTH_OTHER = 3
_IDENTIFIER = [c.name for c in COMPARISONS].index("identifier")
#: The deterministic rules, strongest first.
_RULES = ("id_card", "health_card")
#: A card a deterministic rule links on: (rule, number).
Card = tuple[str, str]


def empi_id_for(key: RecordKey, secret: bytes | None = None) -> str:
    """The EMPI id founded by a record: deterministic, so a replay gives the same ids.

    With the hub's ``secret`` (`hutong.keys`) it is a keyed HMAC of the record's
    facility and id, shaped as a UUID: nobody without the key can recompute it
    from a guessed MRN and so undo the warehouse's pseudonyms.
    """
    name = f"empi|{key[0]}|{key[1]}"
    if secret is None:
        return uuid5_text(_NAMESPACE, name)
    digest = hmac.new(secret, name.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def pair_id_for(a: RecordKey, b: RecordKey, secret: bytes | None = None) -> str:
    """The same id for (a, b) and (b, a); keyed like `empi_id_for` with ``secret``."""
    first, second = sorted((a, b))
    text = f"{first[0]}|{first[1]}|{second[0]}|{second[1]}".encode()
    if secret is None:
        return hashlib.sha256(text).hexdigest()[:32]
    return hmac.new(secret, text, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match probabilities: link at ``upper`` and above, review from ``lower``."""

    upper: float = 0.995
    lower: float = 0.90

    def __post_init__(self) -> None:
        if not 0.0 < self.lower <= self.upper < 1.0:
            raise ValueError("thresholds must satisfy 0 < lower <= upper < 1")


@dataclass(frozen=True, slots=True)
class LinkChange:
    """One change of one source record's link (schemas/empi-link.avsc)."""

    facility_id: str
    source_patient_id: str
    empi_id: str
    #: link, merge, unmerge or review.
    action: str
    reason: str
    decided_by: str
    linked_at: datetime
    score: float | None = None
    previous_empi_id: str | None = None
    #: The index's change counter: the higher of two changes to a record is current.
    sequence: int = 0

    def to_event(self) -> dict[str, Any]:
        return {"facility_id": self.facility_id, "source_patient_id": self.source_patient_id,
                "empi_id": self.empi_id, "action": self.action, "score": self.score,
                "reason": self.reason, "decided_by": self.decided_by,
                "previous_empi_id": self.previous_empi_id, "linked_at": self.linked_at,
                "sequence": self.sequence}


@dataclass(slots=True)
class ReviewPair:
    """Two records that may be one person (schemas/empi-review.avsc)."""

    pair_id: str
    left: RecordKey
    right: RecordKey
    left_empi_id: str
    right_empi_id: str
    score: float
    comparison: dict[str, float]
    created_at: datetime
    status: str = "open"
    decided_by: str | None = None
    decided_at: datetime | None = None

    def to_event(self) -> dict[str, Any]:
        return {"pair_id": self.pair_id, "left_facility_id": self.left[0],
                "left_source_patient_id": self.left[1], "right_facility_id": self.right[0],
                "right_source_patient_id": self.right[1], "left_empi_id": self.left_empi_id,
                "right_empi_id": self.right_empi_id, "score": self.score,
                "comparison": self.comparison, "status": self.status,
                "created_at": self.created_at, "decided_by": self.decided_by,
                "decided_at": self.decided_at}


@dataclass(slots=True)
class Outcome:
    """What one :meth:`MasterIndex.link` call decided."""

    empi_id: str
    changes: list[LinkChange] = field(default_factory=list)
    reviews: list[ReviewPair] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Merge:
    """One merge in the history, kept so that it can be undone."""

    #: Order of the merge in the history (unmerge undoes the latest of a pair).
    seq: int
    survivor: str
    loser: str
    moved: tuple[RecordKey, ...]


@dataclass(slots=True)
class Journal:
    """What changed since :meth:`MasterIndex.take_journal`: the state to write back."""

    records: set[RecordKey] = field(default_factory=set)
    reviews: set[str] = field(default_factory=set)
    merges: set[int] = field(default_factory=set)
    separated: set[frozenset[str]] = field(default_factory=set)
    founded: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.records or self.reviews or self.merges or self.separated
                    or self.founded)


@dataclass(slots=True)
class _Candidate:
    empi_id: str
    key: RecordKey
    probability: float
    weights: dict[str, float]


class MasterIndex:
    """Records, links, blocks, reviews and merge history, in memory."""

    def __init__(self, model: Model = DEFAULT_MODEL, thresholds: Thresholds | None = None,
                 *, max_block: int = 200, population_floor: int = 10_000,
                 expected_matches: float = 1.0, id_secret: bytes | None = None) -> None:
        self.model = model
        #: Key of the EMPI and pair ids this index mints (`empi_id_for`).
        self.id_secret = id_secret
        self.expected_matches = expected_matches
        #: Name frequencies are counted over at least this many records, so that a
        #: small index does not take every name for a common one.
        self.population_floor = population_floor
        self.name_counts: Counter[str] = Counter()
        self.thresholds = thresholds or Thresholds()
        self.max_block = max_block
        self.records: dict[RecordKey, Person] = {}
        self.links: dict[RecordKey, str] = {}
        self.members: dict[str, set[RecordKey]] = defaultdict(set)
        self.blocks: dict[str, set[RecordKey]] = defaultdict(set)
        #: card (``("id_card", number)`` or ``("health_card", number)``) -> EMPI id ->
        #: the records of that id holding it; and EMPI id -> how many of its records hold
        #: each card. The rules read them in time bounded by the people holding a card,
        #: not by the records: one person's card on thousands of records stays cheap.
        self.card_holders: dict[Card, dict[str, set[RecordKey]]] = {}
        self.cards_of: dict[str, Counter[Card]] = {}
        self.reviews: dict[str, ReviewPair] = {}
        self.merges: list[Merge] = []
        #: EMPI ids a person said are different people (unmerge, rejected review).
        self.separated: set[frozenset[str]] = set()
        #: EMPI id -> the order it was founded in (older ids survive merges).
        self.founded: dict[str, int] = {}
        #: The last change and merge numbers handed out.
        self.sequence = 0
        self.merge_seq = 0
        self.journal = Journal()

    def take_journal(self) -> Journal:
        """What changed since the last call, and a fresh journal for what comes next."""
        journal, self.journal = self.journal, Journal()
        return journal

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence

    # --- reading --------------------------------------------------------------------

    def load(self, person: Person, empi_id: str) -> None:
        """Put back a record and its link as they were stored (a restart)."""
        self._store(person)
        self._set_link(person.key, empi_id)

    def empi_of(self, key: RecordKey) -> str | None:
        return self.links.get(key)

    def open_reviews(self) -> list[ReviewPair]:
        return sorted((r for r in self.reviews.values() if r.status == "open"),
                      key=lambda r: (-r.score, r.created_at))

    # --- linking --------------------------------------------------------------------

    def link(self, person: Person, at: datetime) -> Outcome:
        """Link one record (new, or an update of a known one) and say what changed."""
        key = person.key
        known = self.links.get(key)
        if known is not None:  # what this message leaves out, the record still says
            old = self.records[key]
            person = updated(old, person)
            if replace(person, observed_at=old.observed_at) == old:
                return Outcome(known)  # nothing new: no change to decide or to store
        self._store(person)
        if known is not None:
            return self._relink_known(person, known, at)
        empi_id, rule, contradicted = self._deterministic(person)
        if empi_id is not None:
            outcome = self._attach(person, empi_id, at, decided_by=rule, score=None,
                                   reason=f"same {rule.replace('_', ' ')} number")
            for candidate in contradicted:
                outcome.reviews.append(self._raise(key, candidate, at))
            return self._with_scored(person, outcome, at)
        best = self._best(person)
        sure = [c for c in best if c.probability >= self.thresholds.upper]
        if sure:
            top = sure[0]
            outcome = self._attach(person, top.empi_id, at, score=top.probability,
                                   reason=f"match probability {top.probability:.6f} at or "
                                          f"above {self.thresholds.upper}",
                                   decided_by="fellegi-sunter")
            for other in sure[1:]:  # the record is surely each of them: they are one person
                self._join_or_review(person, other, outcome, at, reason=(
                    f"a new record matches both (probability {other.probability:.6f})"))
            outcome.empi_id = self.links[person.key]
            return outcome
        outcome = self._found(person, at)
        doubtful = [*contradicted, *(c for c in best if c.probability >= self.thresholds.lower)]
        for candidate in doubtful:
            pair = self._raise(key, candidate, at)
            if pair not in outcome.reviews:
                outcome.reviews.append(pair)
        if outcome.reviews:
            outcome.changes[0] = replace(
                outcome.changes[0], action="review",
                reason=f"new EMPI id; {len(outcome.reviews)} possible match(es) sent to review")
        return outcome

    def _relink_known(self, person: Person, empi_id: str, at: datetime) -> Outcome:
        """A known record keeps its EMPI id; a card it now shares with another id merges."""
        outcome = Outcome(empi_id)
        for (rule, card), other_id in self._card_people(person):
            holders = self._holders((rule, card), other_id, person.key)
            if not holders or other_id == self.links[person.key]:
                continue
            if not self._consistent_with_any(person, holders) or self._cards_conflict(
                    self.links[person.key], other_id):
                outcome.reviews.append(self._raise(person.key, self._candidate(
                    person, min(holders)), at))
                continue
            outcome.changes += self._join(self.links[person.key], other_id,
                                          reason=f"same {rule.replace('_', ' ')} number",
                                          decided_by=rule, at=at)
        return self._with_scored(person, outcome, at)

    def _with_scored(self, person: Person, outcome: Outcome, at: datetime) -> Outcome:
        """After a link by rule or an update: the other EMPI ids the record surely matches
        join it, the doubtful go to review.

        Records arrive in any order: one without a card may have come before the
        card holders and founded an id of its own; the first record that carries both
        the card and what the early one said (its phone, say) shows they are one.
        """
        for candidate in self._best(person):
            if candidate.empi_id == self.links[person.key]:
                continue
            if candidate.probability >= self.thresholds.upper:
                self._join_or_review(person, candidate, outcome, at, reason=(
                    f"the record also matches this id (probability "
                    f"{candidate.probability:.6f})"))
            elif candidate.probability >= self.thresholds.lower:
                pair = self._raise(person.key, candidate, at)
                if pair not in outcome.reviews:
                    outcome.reviews.append(pair)
        outcome.empi_id = self.links[person.key]
        return outcome

    def _deterministic(self, person: Person) -> tuple[str | None, str, list[_Candidate]]:
        """An EMPI id proved by a card, or None and the card holders that contradict."""
        contradicted: list[_Candidate] = []
        found: list[tuple[int, int, str, str]] = []
        for (rule, card), empi_id in self._card_people(person):
            holders = self._holders((rule, card), empi_id, person.key)
            if not holders:
                continue
            if self._may_join(person, empi_id) and self._consistent_with_any(person, holders):
                found.append((_RULES.index(rule), self.founded.get(empi_id, 0), empi_id, rule))
            else:  # the name or birth date, or another card of that id, says otherwise
                contradicted.append(self._candidate(person, min(holders)))
        if not found:
            return None, "", contradicted
        _, _, empi_id, rule = min(found)  # an ID card before a health card, then the oldest
        return empi_id, rule, contradicted

    def _card_people(self, person: Person) -> list[tuple[Card, str]]:
        """(card, EMPI id) for each EMPI id holding one of the record's cards, in order."""
        return [(card, empi_id) for card in _cards(person)
                for empi_id in sorted(self.card_holders.get(card, ()))]

    def _holders(self, card: Card, empi_id: str, besides: RecordKey) -> set[RecordKey]:
        """The records of ``empi_id`` holding ``card``, other than ``besides``."""
        return self.card_holders.get(card, {}).get(empi_id, set()) - {besides}

    def _consistent_with_any(self, person: Person, holders: Iterable[RecordKey]) -> bool:
        return any(self._consistent(person, self.records[k]) for k in holders)

    @staticmethod
    def _consistent(a: Person, b: Person) -> bool:
        """Whether name and birth date allow two card holders to be one person."""
        return (compare_names(a.name, b.name) != _NAME_OTHER
                and compare_birth_dates(a.birth_date, b.birth_date) != _BIRTH_OTHER)

    def _best(self, person: Person) -> list[_Candidate]:
        """The best-scoring record of each EMPI id sharing a blocking key, best first."""
        seen: set[RecordKey] = set()
        best: dict[str, _Candidate] = {}
        for block in blocking_keys(person):
            members = self.blocks.get(block, ())
            if len(members) > self.max_block:
                continue
            for other in members:
                if other == person.key or other in seen:
                    continue
                seen.add(other)
                empi_id = self.links[other]
                if not self._may_join(person, empi_id):
                    continue
                candidate = self._candidate(person, other)
                held = best.get(empi_id)
                if held is None or (-candidate.probability, candidate.key) < (
                        -held.probability, held.key):
                    best[empi_id] = candidate
        # Ties are broken by record key, so a replay decides the same way in any process.
        return sorted(best.values(), key=lambda c: (-c.probability, c.key))

    def _may_join(self, person: Person, empi_id: str) -> bool:
        """No EMPI id holding a different valid ID card or health card."""
        held = self.cards_of.get(empi_id)
        return not held or not _conflict(_cards(person), held)

    def _cards_conflict(self, a: str, b: str) -> bool:
        """Whether two EMPI ids hold different valid ID cards or health cards: two
        people, whatever a third record that matches both says."""
        mine, theirs = self.cards_of.get(a), self.cards_of.get(b)
        return bool(mine and theirs and _conflict(mine, theirs))

    def evidence(self, person: Person, other: RecordKey) -> tuple[Vector, dict[str, float]]:
        """The comparison vector of a record and an indexed one, and the weight each
        comparison adds, before the linker's safety rules (:meth:`held_by`)."""
        vector = compare(person, self.records[other])
        term_u = None
        if person.name is not None and vector[0] == 0:  # an exact name: how common is it?
            term_u = {"name": self.name_counts[person.name.text] / max(
                len(self.records), self.population_floor)}
        return vector, self.model.level_weights(vector, term_u)

    @staticmethod
    def held_by(vector: Vector) -> tuple[str, ...]:
        """The safety rules that hold back a pair of this vector, whatever its score.

        ``household``: the names differ, so a shared phone or address is the
        household's (twins, siblings, a child on the parent's phone), not evidence of
        one person. ``birth_date``: birth dates years apart (mother and daughter of
        one name at one address) are never linked on a score, at most reviewed;
        unless the two also share an identifier (an insurance number) and the very
        same name: then the birth date is the typo. (A homophone is not enough: 张伟
        and his son 张玮 may share the household's 新农合 number.)
        """
        rules: tuple[str, ...] = ()
        if vector[0] is not None and vector[0] >= _NAME_CLOSE:
            rules += ("household",)
        if vector[1] == _BIRTH_OTHER and not (vector[_IDENTIFIER] == 0 and vector[0] == 0):
            rules += ("birth_date",)
        return rules

    def _candidate(self, person: Person, other: RecordKey) -> _Candidate:
        vector, weights = self.evidence(person, other)
        held = self.held_by(vector)
        if "household" in held:
            for shared in ("phone", "address"):
                weights[shared] = min(weights.get(shared, 0.0), 0.0)
        chance = probability(self.prior_weight() + sum(weights.values()))
        if "birth_date" in held:
            chance = min(chance, self.thresholds.lower)
        return _Candidate(self.links[other], other, chance,
                          {k: round(v, 3) for k, v in weights.items()})

    def prior_weight(self) -> float:
        """log2 of the prior odds that a new record and one given record are one person.

        About ``expected_matches`` of the ``N`` records in the index are the new
        record's person, so the prior is ``expected_matches / N``, counting at
        least ``population_floor`` records: the bigger the index, the more
        evidence a link needs, because coincidences grow with the population.
        """
        size = max(len(self.records), self.population_floor)
        return math.log2(self.expected_matches / size)

    # --- changing links -------------------------------------------------------------

    def _store(self, person: Person) -> None:
        self.journal.records.add(person.key)
        old = self.records.get(person.key)
        linked = self.links.get(person.key)
        if old is not None:
            for block in blocking_keys(old):
                self.blocks[block].discard(person.key)
            if old.name is not None:
                self.name_counts[old.name.text] -= 1
            if linked is not None:
                self._index_cards(old, linked, present=False)
        self.records[person.key] = person
        if linked is not None:
            self._index_cards(person, linked, present=True)
        for block in blocking_keys(person):
            self.blocks[block].add(person.key)
        if person.name is not None:
            self.name_counts[person.name.text] += 1

    def _set_link(self, key: RecordKey, empi_id: str) -> None:
        self.journal.records.add(key)
        previous = self.links.get(key)
        person = self.records[key]
        if previous is not None:
            self.members[previous].discard(key)
            if not self.members[previous]:
                del self.members[previous]
            self._index_cards(person, previous, present=False)
        self.links[key] = empi_id
        self.members[empi_id].add(key)
        self._index_cards(person, empi_id, present=True)

    def _index_cards(self, person: Person, empi_id: str, *, present: bool) -> None:
        """Add (or take away) the record's cards under ``empi_id`` in the card indexes."""
        for card in _cards(person):
            by_id = self.card_holders.setdefault(card, {})
            holders = by_id.setdefault(empi_id, set())
            counts = self.cards_of.setdefault(empi_id, Counter())
            if present:
                holders.add(person.key)
                counts[card] += 1
                continue
            holders.discard(person.key)
            counts[card] -= 1
            if counts[card] <= 0:
                del counts[card]
            if not holders:
                del by_id[empi_id]
            if not by_id:
                del self.card_holders[card]
            if not counts:
                del self.cards_of[empi_id]

    def _attach(self, person: Person, empi_id: str, at: datetime, *, reason: str,
                decided_by: str, score: float | None) -> Outcome:
        self._set_link(person.key, empi_id)
        change = LinkChange(person.facility_id, person.source_patient_id, empi_id, "link",
                            reason, decided_by, at, score, sequence=self._next())
        return Outcome(empi_id, [change])

    def _found(self, person: Person, at: datetime) -> Outcome:
        empi_id = empi_id_for(person.key, self.id_secret)
        if empi_id not in self.founded:
            self.founded[empi_id] = len(self.founded)
            self.journal.founded.add(empi_id)
        return self._attach(person, empi_id, at, reason="no matching record: new EMPI id",
                            decided_by="fellegi-sunter", score=None)

    def _raise(self, key: RecordKey, candidate: _Candidate, at: datetime) -> ReviewPair:
        pair_id = pair_id_for(key, candidate.key, self.id_secret)
        existing = self.reviews.get(pair_id)
        if existing is not None:
            return existing
        pair = ReviewPair(pair_id, key, candidate.key, self.links[key], candidate.empi_id,
                          candidate.probability, candidate.weights, at)
        self.reviews[pair_id] = pair
        self.journal.reviews.add(pair_id)
        return pair

    def _survivor(self, a: str, b: str) -> str:
        """The EMPI id that stays: more records, then the older one."""
        return min((a, b), key=lambda e: (-len(self.members[e]), self.founded.get(e, 0), e))

    def _join_or_review(self, person: Person, candidate: _Candidate, outcome: Outcome,
                        at: datetime, *, reason: str) -> None:
        """Merge the record's EMPI id with the candidate's; when the two hold different
        cards, a person decides instead (twins with homophone names, one phone)."""
        mine = self.links[person.key]
        if self._cards_conflict(mine, candidate.empi_id):
            pair = self._raise(person.key, candidate, at)
            if pair not in outcome.reviews:
                outcome.reviews.append(pair)
            return
        outcome.changes += self._join(mine, candidate.empi_id, reason=reason,
                                      decided_by="fellegi-sunter", at=at)

    def _join(self, a: str, b: str, *, reason: str, decided_by: str,
              at: datetime) -> list[LinkChange]:
        """Merge two EMPI ids, the survivor chosen by rule, unless a person separated them."""
        if a == b or frozenset((a, b)) in self.separated:
            return []
        survivor = self._survivor(a, b)
        return self.merge(survivor, b if survivor == a else a, reason=reason,
                          decided_by=decided_by, at=at)

    def merge(self, survivor: str, loser: str, *, reason: str, decided_by: str,
              at: datetime) -> list[LinkChange]:
        """Move every record of ``loser`` to ``survivor``; kept in history for unmerge."""
        if survivor == loser or loser not in self.members:
            return []
        moved = tuple(sorted(self.members[loser]))
        for key in moved:
            self._set_link(key, survivor)
        self.merge_seq += 1
        self.merges.append(Merge(self.merge_seq, survivor, loser, moved))
        self.journal.merges.add(self.merge_seq)
        self._keep_apart(survivor, loser, False)
        for pair in sorted(p for p in self.separated if loser in p):
            # whom a person kept apart from the loser's records stays apart from them
            (other,) = pair - {loser}
            if other != survivor:
                self._keep_apart(survivor, other, True)
        log.info("EMPI %s merged into %s (%d records): %s", loser, survivor, len(moved), reason)
        return [LinkChange(k[0], k[1], survivor, "merge", reason, decided_by, at,
                           previous_empi_id=loser, sequence=self._next()) for k in moved]

    def unmerge(self, survivor: str, loser: str, *, reason: str, decided_by: str,
                at: datetime) -> list[LinkChange]:
        """Split ``loser`` off ``survivor`` again: the records it brought go back to it."""
        for index in range(len(self.merges) - 1, -1, -1):
            done = self.merges[index]
            if (done.survivor, done.loser) == (survivor, loser):
                break
        else:
            raise KeyError(f"no merge of {loser} into {survivor} in the history")
        back = [k for k in done.moved if self.links.get(k) == survivor]
        if not back:
            now = sorted({self.links[k] for k in done.moved if k in self.links})
            raise ValueError(f"the records of the merge of {loser} into {survivor} have "
                             f"since moved to {', '.join(now)}: undo that merge first")
        del self.merges[index]
        self.journal.merges.add(done.seq)
        for key in back:
            self._set_link(key, loser)
        self._keep_apart(survivor, loser, True)
        return [LinkChange(k[0], k[1], loser, "unmerge", reason, decided_by, at,
                           previous_empi_id=survivor, sequence=self._next()) for k in back]

    def _keep_apart(self, a: str, b: str, apart: bool) -> None:
        pair = frozenset((a, b))
        if (pair in self.separated) != apart:
            (self.separated.add if apart else self.separated.discard)(pair)
            self.journal.separated.add(pair)

    def merge_records(self, survivor: RecordKey, merged: RecordKey, *, reason: str,
                      decided_by: str, at: datetime) -> list[LinkChange]:
        """ADT^A40: the facility merged ``merged`` into ``survivor``; merge their EMPI ids."""
        keep, drop = self.links.get(survivor), self.links.get(merged)
        if keep is None or drop is None or keep == drop:
            return []
        return self.merge(keep, drop, reason=reason, decided_by=decided_by, at=at)

    def decide(self, pair_id: str, accept: bool, *, by: str, at: datetime) -> list[LinkChange]:
        """A reviewer's decision: accept merges the two EMPI ids, reject keeps them apart."""
        pair = self.reviews[pair_id]
        if pair.status != "open":
            raise ValueError(f"pair {pair_id} is already {pair.status}")
        left, right = self.links[pair.left], self.links[pair.right]
        if not accept and left == right:
            raise ValueError(f"the records of pair {pair_id} are already under one EMPI id "
                             f"({left}): split them with an unmerge")
        pair.status, pair.decided_by = ("linked" if accept else "rejected"), by
        pair.decided_at = at
        pair.left_empi_id, pair.right_empi_id = left, right  # as they are now
        self.journal.reviews.add(pair_id)
        if not accept:
            self._keep_apart(left, right, True)
            return []
        self._keep_apart(left, right, False)  # a person's word overrides
        return self._join(left, right, reason="reviewer accepted the pair", decided_by=by,
                          at=at)

    # --- golden record --------------------------------------------------------------

    def golden(self, empi_id: str, trust: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The best value of each field across the EMPI id's records (survivorship).

        Records are ranked by the facility's trust (higher first; unknown 0), then
        the most recent, then the most complete (then by record, so that the answer
        does not depend on the order records arrived in); each field takes the first
        non-empty value, a valid ID card before an unchecked one. The fields are
        those of schemas/empi-golden.avsc but ``updated_at``.
        """
        trust = trust or {}
        records = sorted((self.records[k] for k in self.members.get(empi_id, ())),
                         key=lambda p: (-trust.get(p.facility_id, 0),
                                        -(p.observed_at.timestamp() if p.observed_at else 0),
                                        -_completeness(p), p.key))

        def first(attribute: str) -> Any:
            return next((getattr(p, attribute) for p in records
                         if getattr(p, attribute) is not None), None)

        name, address = first("name"), first("address")
        return {
            "empi_id": empi_id,
            "records": len(records),
            "facilities": sorted({p.facility_id for p in records}),
            "id_card_number": first("id_card") or first("id_card_unchecked"),
            "health_card_number": first("health_card"),
            "name": name.text if name else None,
            "sex": first("sex"),
            "birth_date": first("birth_date"),
            "phone": first("phone"),
            "address": "".join(filter(None, (address.province, address.city,
                                             address.district, address.rest)))
            if address else None,
        }


def _completeness(person: Person) -> int:
    return sum(getattr(person, f) is not None for f in (
        "id_card", "health_card", "name", "sex", "birth_date", "phone", "address"))


def _cards(person: Person) -> list[Card]:
    return [(rule, value) for rule, value in (("id_card", person.id_card),
                                              ("health_card", person.health_card)) if value]


def _conflict(mine: Iterable[Card], theirs: Iterable[Card]) -> bool:
    """Whether two sets of cards hold different numbers under one rule."""
    held = list(theirs)
    return any(rule == other_rule and number != other_number
               for rule, number in mine for other_rule, other_number in held)
