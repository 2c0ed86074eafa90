"""A guard on linking quality: a small synthetic population (tests/bench/population.py).

The bench reports the full figures on 10,000 people; this keeps a change from
quietly trading precision away. Floors, not targets: see the issue notes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from streams.empi.linker import MasterIndex
from streams.empi.person import person_from_event
from tests.bench.population import generate, pairwise_scores


def test_linking_a_synthetic_population_keeps_precision_first() -> None:
    at = datetime(2026, 11, 22, tzinfo=UTC)
    population = generate(600, seed=7)
    index = MasterIndex()
    records = [person_from_event(r.facility_id, r.patient, at) for r in population.records]
    for record in records:
        index.link(record, at)
    precision, recall, *_ = pairwise_scores([r.person for r in population.records],
                                            [index.links[r.key] for r in records])
    assert precision >= 0.999
    assert recall >= 0.90
