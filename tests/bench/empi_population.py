"""``make bench``: the EMPI linker on a synthetic Chinese population with known truth.

The population (tests/bench/population.py, Faker zh_CN) has typos, homophones,
traditional characters, pinyin-only names, missing, mistyped and 15-digit ID
numbers, newborns on the mother's card, moved addresses, changed phones and
households sharing a phone and address, twins among them. Records arrive
shuffled and are linked one at a time, three ways:

- ``default model``: :class:`streams.empi.linker.MasterIndex` with the built-in m and u;
- ``EM, then linked``: the model first estimated on all the records (as a batch
  linker would), then the records linked one at a time;
- ``resolver (hub)``: :class:`streams.empi.resolution.IdentityResolver` as the stream
  worker runs it: the default model until 1,000 records, then EM on its own index
  at 1,000 and each doubling. Its time includes normalising the records.

Pairwise precision and recall against the truth, pairs left for review,
records/s. Printed, never asserted.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from streams.empi.linker import MasterIndex
from streams.empi.person import person_from_event
from streams.empi.resolution import IdentityResolver
from streams.empi.training import train
from tests.bench.population import generate, pairwise_scores

PEOPLE = int(os.environ.get("BENCH_EMPI_PEOPLE", "10000"))
_AT = datetime(2026, 11, 22, tzinfo=UTC)


def main() -> list[dict[str, object]]:
    population = generate(PEOPLE)
    records = [person_from_event(r.facility_id, r.patient, _AT) for r in population.records]
    truth = [r.person for r in population.records]
    print(f"\nEMPI, synthetic population: {PEOPLE} people, {len(records)} records")
    print(f"{'linker':24} {'precision':>10} {'recall':>8} {'false links':>12} {'missed':>8} "
          f"{'to review':>10} {'records/s':>10}")
    started = time.perf_counter()
    trained = train(records).model
    training_s = time.perf_counter() - started
    figures: list[dict[str, object]] = []

    def report(label: str, links: list[str], reviews: int, elapsed: float) -> None:
        precision, recall, _, false_links, missed = pairwise_scores(truth, links)
        print(f"{label:24} {precision:>10.5f} {recall:>8.4f} {false_links:>12} {missed:>8} "
              f"{reviews:>10} {len(records) / elapsed:>10.0f}")
        slug = label.split(" (")[0].replace(" ", "_").replace(",", "")
        figures.extend([
            {"name": f"empi.population.{slug}.precision", "value": round(precision, 5),
             "unit": "ratio", "target": 0.999},
            {"name": f"empi.population.{slug}.recall", "value": round(recall, 4),
             "unit": "ratio", "target": 0.98},
            {"name": f"empi.population.{slug}.records_per_s",
             "value": round(len(records) / elapsed), "unit": "records/s"},
        ])

    for label, model in (("default model", None), (f"EM, then linked ({training_s:.1f} s)",
                                                     trained)):
        index = MasterIndex() if model is None else MasterIndex(model)
        started = time.perf_counter()
        for record in records:
            index.link(record, _AT)
        report(label, [index.links[r.key] for r in records], len(index.open_reviews()),
               time.perf_counter() - started)

    resolver = IdentityResolver()
    started = time.perf_counter()
    for n, source in enumerate(population.records):
        resolver.resolve({"event_id": str(n), "event_type": "patient", "received_at": _AT,
                          "facility_id": source.facility_id, "patient": source.patient})
    report("resolver (hub)", [resolver.index.links[r.key] for r in records],
           len(resolver.index.open_reviews()), time.perf_counter() - started)
    print(f"thresholds: link at {resolver.index.thresholds.upper}, review from "
          f"{resolver.index.thresholds.lower}; targets (issue 4): precision >= 0.999, "
          "recall >= 0.98")
    return figures


if __name__ == "__main__":
    main()
