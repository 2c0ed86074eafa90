"""``make bench``: the EMPI linker on a synthetic Chinese population with known truth.

The population (tests/bench/population.py, Faker zh_CN) has typos, homophones,
traditional characters, pinyin-only names, missing, mistyped and 15-digit ID
numbers, newborns on the mother's card, moved addresses, changed phones and
households sharing a phone and address, twins among them. Records arrive
shuffled and are linked one at a time by :class:`streams.empi.linker.MasterIndex`
with its default model, and again after training it on the records (EM). Pairwise
precision and recall against the truth, records/s. Printed, never asserted.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from streams.empi.linker import MasterIndex
from streams.empi.person import person_from_event
from streams.empi.training import train
from tests.bench.population import generate, pairwise_scores

PEOPLE = int(os.environ.get("BENCH_EMPI_PEOPLE", "10000"))


def main() -> None:
    at = datetime(2026, 11, 22, tzinfo=UTC)
    population = generate(PEOPLE)
    records = [person_from_event(r.facility_id, r.patient, at) for r in population.records]
    truth = [r.person for r in population.records]
    print(f"\nEMPI, synthetic population: {PEOPLE} people, {len(records)} records")
    print(f"{'model':22} {'precision':>10} {'recall':>8} {'false links':>12} {'missed':>8} "
          f"{'to review':>10} {'records/s':>10}")
    started = time.perf_counter()
    trained = train(records).model
    training_s = time.perf_counter() - started
    for label, model in (("default", None), (f"EM ({training_s:.1f} s)", trained)):
        index = MasterIndex() if model is None else MasterIndex(model)
        started = time.perf_counter()
        for record in records:
            index.link(record, at)
        elapsed = time.perf_counter() - started
        precision, recall, _, false_links, missed = pairwise_scores(
            truth, [index.links[r.key] for r in records])
        print(f"{label:22} {precision:>10.5f} {recall:>8.4f} {false_links:>12} {missed:>8} "
              f"{len(index.open_reviews()):>10} {len(records) / elapsed:>10.0f}")
    print("targets (issue 4): precision >= 0.999, recall >= 0.98")


if __name__ == "__main__":
    main()
