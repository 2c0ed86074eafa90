"""Concept map entries (schemas/concept-map.avsc) and the store that looks them up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import catalog, wire
from streams.terminology.maps import KINDS, REGION, MapEntry, MapStore

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def entry(facility: str = "F1", kind: str = "lab-test", code: str = "K",
          target: str = "2823-3", **changes: Any) -> MapEntry:
    return replace(MapEntry(facility, kind, code, "LOINC", target, None, "v1", AT), **changes)


def test_record_fits_the_schema_and_round_trips() -> None:
    original = entry(target_display="Potassium [Moles/volume] in Serum or Plasma")
    record = original.to_record()
    schema = catalog.schema("concept-map")
    assert [f["name"] for f in schema.parsed["fields"]] == list(record)
    _, decoded = wire.decode(wire.encode(schema, record))
    assert MapEntry.from_record(decoded) == original
    assert original.topic_key == b"F1|lab-test|K"


def test_a_record_without_optional_fields_reads() -> None:
    record = {k: v for k, v in entry().to_record().items()
              if k not in ("target_display", "deleted")}
    assert MapEntry.from_record(record) == entry()


def test_keys_are_normalised_as_documented() -> None:
    spelled = MapEntry(" F1 ", " Lab-Test ", " K\u3000", "LOINC", "2823-3", None, "v1", AT)
    assert spelled.key == ("F1", "lab-test", "K")
    assert entry(code="k").key != entry(code="K").key       # local codes keep their case


def test_kinds() -> None:
    expected = {"lab-test", "unit", "diagnosis", "drug", "sex", "marital-status", "ethnicity",
                "id-document-type"}
    assert expected == KINDS


@pytest.mark.parametrize(("stored", "facility", "expected"), [
    # the facility's own entry wins over the region-wide one
    ([entry(REGION, target="2951-2"), entry("F1")], "F1", "2823-3"),
    ([entry("F1"), entry(REGION, target="2951-2")], "F1", "2823-3"),
    # another facility falls back to the region-wide entry
    ([entry(REGION, target="2951-2"), entry("F1")], "F2", "2951-2"),
    # nothing for this facility and nothing region-wide
    ([entry("F1")], "F2", None),
    # a deleted entry removes the earlier one, and the region-wide entry shows through
    ([entry(REGION, target="2951-2"), entry("F1"), entry("F1", deleted=True)], "F1", "2951-2"),
    ([entry("F1"), entry("F1", deleted=True)], "F1", None),
    # deleting what is not stored changes nothing; a later entry replaces an earlier one
    ([entry("F1", deleted=True), entry("F1")], "F1", "2823-3"),
    ([entry("F1"), entry("F1", target="6298-4")], "F1", "6298-4"),
])
def test_lookup_precedence(stored: list[MapEntry], facility: str, expected: str | None) -> None:
    found = MapStore(stored).lookup(facility, "lab-test", "K")
    assert (found.target_code if found else None) == expected


@pytest.mark.parametrize(("kind", "code", "found"), [
    ("lab-test", "K", True), ("LAB-TEST", "K", True), ("lab-test", " K ", True),
    ("lab-test", "k", False), ("unit", "K", False),
])
def test_lookup_compares_as_documented(kind: str, code: str, found: bool) -> None:
    assert (MapStore([entry()]).lookup("F1", kind, code) is not None) is found


def test_put_says_whether_the_store_changed() -> None:
    store = MapStore()
    assert store.put(entry()) is True
    assert store.put(entry(updated_at=datetime(2026, 12, 2, tzinfo=UTC))) is False
    assert store.put(entry(target_display="Potassium")) is True
    assert store.put(entry(deleted=True)) is True
    assert store.put(entry(deleted=True)) is False
    assert len(store) == 0


def test_store_iterates_and_gets_exact_keys() -> None:
    store = MapStore([entry(), entry(REGION, code="NA", target="2951-2")])
    assert {e.key for e in store} == {("F1", "lab-test", "K"), ("*", "lab-test", "NA")}
    assert store.get(("F1", "lab-test", "NA")) is None                 # no region fallback
    assert ("*", "lab-test", "NA") in store
