"""The master index as key-value state: what the resolver keeps in its RocksDB table.

:func:`changed_entries` turns a :class:`~streams.empi.linker.Journal` into the
entries to write (``None`` deletes one), :func:`restore` builds the index
again from every entry after a restart. The derived parts (blocking index,
members of each EMPI id, name counts) are not stored: :func:`restore` rebuilds
them as it loads the records, so they can never disagree with the records.

============  ======================================================  ==============
key           value (JSON)                                            written when
============  ======================================================  ==============
``r:<key>``   the normalised record and its EMPI id                   linked, updated
``v:<pair>``  a review pair and its status                            raised, decided
``m:<seq>``   a merge: survivor, loser, the records moved             merged
``s:<ids>``   two EMPI ids a person kept apart                        rejected, split
``f:<id>``    the order an EMPI id was founded in (older survives)    founded
``d:<id>``    a reviewer's decision already applied                   decided
``c``         the change and merge counters                           any change
``model``     the m, u and prior estimated from the records           trained
============  ======================================================  ==============

Records are stored normalised, so a restart does not parse names again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from streams.empi.address import Address
from streams.empi.compare import COMPARISONS
from streams.empi.linker import Journal, MasterIndex, Merge, ReviewPair
from streams.empi.model import Model
from streams.empi.names import Name
from streams.empi.person import Person, RecordKey

__all__ = ["COUNTERS", "MODEL", "Entries", "changed_entries", "decision_key", "decode_model",
           "decode_person", "encode_model", "encode_person", "record_key", "restore"]

COUNTERS = "c"
MODEL = "model"

Entries = dict[str, bytes | None]


def record_key(key: RecordKey) -> str:
    return "r:" + json.dumps(list(key), ensure_ascii=False)


def decision_key(decision_id: str) -> str:
    return f"d:{decision_id}"


def _separated_key(pair: frozenset[str]) -> str:
    return "s:" + "|".join(sorted(pair))


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """A dataclass (Name, Address) as a dict of its fields; anything else as it is."""
    if value is None:
        return None
    return {f.name: getattr(value, f.name) for f in fields(value)}


def encode_person(person: Person) -> dict[str, Any]:
    """The JSON form of a normalised record."""
    return {
        "facility_id": person.facility_id, "source_patient_id": person.source_patient_id,
        "id_card": person.id_card, "id_card_unchecked": person.id_card_unchecked,
        "health_card": person.health_card, "name": _plain(person.name), "sex": person.sex,
        "birth_date": person.birth_date.isoformat() if person.birth_date else None,
        "phone": person.phone, "address": _plain(person.address),
        "identifiers": sorted(person.identifiers),
        "observed_at": person.observed_at.isoformat() if person.observed_at else None,
    }


def decode_person(data: Mapping[str, Any]) -> Person:
    """The record :func:`encode_person` wrote."""
    name, address = data.get("name"), data.get("address")
    born, observed = data.get("birth_date"), data.get("observed_at")
    return Person(
        facility_id=data["facility_id"], source_patient_id=data["source_patient_id"],
        id_card=data.get("id_card"), id_card_unchecked=data.get("id_card_unchecked"),
        health_card=data.get("health_card"), name=Name(**name) if name else None,
        sex=data.get("sex"), birth_date=date.fromisoformat(born) if born else None,
        phone=data.get("phone"), address=Address(**address) if address else None,
        identifiers=frozenset(data.get("identifiers") or ()),
        observed_at=datetime.fromisoformat(observed) if observed else None,
    )


def _encode_review(pair: ReviewPair) -> dict[str, Any]:
    return {"pair_id": pair.pair_id, "left": list(pair.left), "right": list(pair.right),
            "left_empi_id": pair.left_empi_id, "right_empi_id": pair.right_empi_id,
            "score": pair.score, "comparison": pair.comparison,
            "created_at": pair.created_at.isoformat(), "status": pair.status,
            "decided_by": pair.decided_by,
            "decided_at": pair.decided_at.isoformat() if pair.decided_at else None}


def _decode_review(data: Mapping[str, Any]) -> ReviewPair:
    decided = data.get("decided_at")
    return ReviewPair(data["pair_id"], (data["left"][0], data["left"][1]),
                      (data["right"][0], data["right"][1]), data["left_empi_id"],
                      data["right_empi_id"], data["score"], dict(data["comparison"]),
                      datetime.fromisoformat(data["created_at"]), data["status"],
                      data.get("decided_by"),
                      datetime.fromisoformat(decided) if decided else None)


def changed_entries(index: MasterIndex, journal: Journal) -> Entries:
    """The table entries that ``journal`` says changed, read from ``index``."""
    entries: Entries = {}
    for key in journal.records:
        person = index.records.get(key)
        entries[record_key(key)] = None if person is None else _dump(
            {"person": encode_person(person), "empi_id": index.links[key]})
    for pair_id in journal.reviews:
        entries[f"v:{pair_id}"] = _dump(_encode_review(index.reviews[pair_id]))
    merges = {m.seq: m for m in index.merges if m.seq in journal.merges}
    for seq in journal.merges:
        done = merges.get(seq)
        entries[f"m:{seq:012d}"] = None if done is None else _dump(
            {"seq": done.seq, "survivor": done.survivor, "loser": done.loser,
             "moved": [list(k) for k in done.moved]})
    for pair in journal.separated:
        entries[_separated_key(pair)] = b"1" if pair in index.separated else None
    for empi_id in journal.founded:
        entries[f"f:{empi_id}"] = _dump(index.founded[empi_id])
    if entries:
        entries[COUNTERS] = _dump({"sequence": index.sequence, "merge_seq": index.merge_seq})
    return entries


def encode_model(model: Model, trained_on: int) -> bytes:
    """The stored form of a trained model, with the comparisons it was made for."""
    return _dump({"comparisons": [c.name for c in COMPARISONS], "m": model.m, "u": model.u,
                  "prior": model.prior, "trained_on": trained_on})


def decode_model(raw: bytes) -> tuple[Model, int] | None:
    """The model :func:`encode_model` stored and the record count it was trained on;
    None when this version compares other things (it will be trained again)."""
    data = json.loads(raw)
    if data.get("comparisons") != [c.name for c in COMPARISONS]:
        return None
    return (Model(tuple(tuple(levels) for levels in data["m"]),
                  tuple(tuple(levels) for levels in data["u"]), data["prior"]),
            int(data["trained_on"]))


def restore(index: MasterIndex, entries: Iterable[tuple[str, bytes]]
            ) -> tuple[set[str], tuple[Model, int] | None]:
    """Load every stored entry into an empty ``index``; return the decisions applied and
    the stored model (with the record count it was trained on), if any."""
    decided: set[str] = set()
    merges: list[Merge] = []
    model: tuple[Model, int] | None = None
    for key, raw in entries:
        kind, value = key[:2], json.loads(raw)
        if kind == "r:":
            index.load(decode_person(value["person"]), value["empi_id"])
        elif kind == "v:":
            review = _decode_review(value)
            index.reviews[review.pair_id] = review
        elif kind == "m:":
            merges.append(Merge(value["seq"], value["survivor"], value["loser"],
                                tuple((k[0], k[1]) for k in value["moved"])))
        elif kind == "s:":
            index.separated.add(frozenset(key[2:].split("|")))
        elif kind == "f:":
            index.founded[key[2:]] = int(value)
        elif kind == "d:":
            decided.add(key[2:])
        elif key == COUNTERS:
            index.sequence, index.merge_seq = value["sequence"], value["merge_seq"]
        elif key == MODEL:
            model = decode_model(raw)
    index.merges = sorted(merges, key=lambda m: m.seq)
    index.take_journal()  # loading is not a change
    return decided, model
