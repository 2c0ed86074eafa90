"""De-duplication: first reports, the repeat window, replays, and the state after a restart."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from streams.alerts import Dedup, evaluate, load_default
from streams.alerts.dedup import dedup_key
from streams.alerts.evaluate import Hit
from tests.unit.test_alerts_events import OBSERVED, lab_result

DEFAULT = load_default()


def result(minutes: float, *, rule: str = "k", patient: str = "E-42",
           facility: str = "QSXRMYY", event_id: str | None = None) -> tuple[dict[str, Any], Hit]:
    """A result ``minutes`` after OBSERVED and its one hit: potassium 6.8, or PLT in haematology."""
    at = OBSERVED + timedelta(minutes=minutes)
    if rule == "plt":
        event = lab_result("777-3", 1200, "10*9/L", ordering_department="血液科")
    else:
        event = lab_result("2823-3", 6.8)
    event |= {"observed_at": at, "empi_id": patient, "facility_id": facility,
              "event_id": event_id or f"ev-{facility}-{patient}-{minutes}"}
    (hit,) = evaluate(event, DEFAULT)
    return event, hit


def decide(dedup: Dedup, *results: tuple[dict[str, Any], Hit]) -> list[str]:
    out = []
    for event, hit in results:
        decision = dedup.admit(event, hit)
        out.append(decision.reason if decision.alert else f"no:{decision.reason}")
    return out


@pytest.mark.parametrize(("minutes", "decisions"), [
    ([0, 20, 59], ["new", "no:window", "no:window"]),
    ([0, 60], ["new", "new"]),  # a window later: a new alert
    ([0, 59.9, 119.9], ["new", "no:window", "new"]),  # suppressed hits do not extend it
    ([0, 30, 70], ["new", "no:window", "new"]),
    ([70, 5], ["new", "new"]),  # a late result from before the window
    ([60, 20], ["new", "no:window"]),  # a late result within it
])
def test_the_window_is_measured_on_result_time(minutes: list[float],
                                               decisions: list[str]) -> None:
    assert decide(Dedup(), *(result(m) for m in minutes)) == decisions


def test_the_window_is_configurable() -> None:
    short = Dedup(timedelta(minutes=5))
    assert decide(short, result(0), result(4), result(5)) == ["new", "no:window", "new"]


def test_first_only_fires_once_per_patient_ever() -> None:
    dedup = Dedup()
    results = [result(0, rule="plt"), result(90, rule="plt"), result(60 * 24 * 400, rule="plt"),
               result(90, rule="plt", patient="E-43")]
    assert decide(dedup, *results) == ["new", "no:first-only", "no:first-only", "new"]


@pytest.mark.parametrize(("other", "decision"), [
    ({"patient": "E-43"}, "new"),
    ({"facility": "F002"}, "new"),  # another hospital must tell its own ward
    ({}, "no:window"),
])
def test_the_key_is_facility_patient_and_rule(other: dict[str, str], decision: str) -> None:
    assert decide(Dedup(), result(0), result(5, **other)) == ["new", decision]


def test_other_rules_are_not_suppressed() -> None:
    assert decide(Dedup(), result(0), result(5, rule="plt")) == ["new", "new"]


def test_a_redelivered_result_raises_its_alert_again() -> None:
    dedup = Dedup()
    first = result(0, event_id="ev-1")
    assert decide(dedup, first, result(5), first) == ["new", "no:window", "replay"]
    plt = result(0, rule="plt", event_id="ev-2")
    assert decide(dedup, plt, plt) == ["new", "replay"]


def test_without_an_empi_id_the_facility_patient_id_is_the_patient() -> None:
    event, hit = result(0)
    event["empi_id"] = None
    assert dedup_key("QSXRMYY", "source:P123", "potassium-high") == Dedup().admit(event, hit).key


def test_the_state_survives_a_restart_through_its_entries() -> None:
    before = Dedup()
    decide(before, result(0), result(0, rule="plt"))
    table: dict[str, Any] = {}
    table.update(json.loads(json.dumps(before.changes())))  # as a key-value table holds them
    assert before.changes() == {}  # each change is handed out once
    after = Dedup.restore(table)
    assert decide(after, result(30), result(24 * 60, rule="plt"), result(61)) == [
        "no:window", "no:first-only", "new"]
    again = Dedup.from_dict(json.loads(json.dumps(before.to_dict())))
    assert again.entries() == before.entries()
    assert decide(again, result(30)) == ["no:window"]


def test_old_window_entries_are_dropped_first_only_entries_kept() -> None:
    dedup = Dedup(max_entries=3)
    decide(dedup, result(0, rule="plt"), *(result(i * 10, patient=f"E-{i}") for i in range(3)))
    dedup.changes()
    decide(dedup, result(75, patient="E-9"))  # 4 window entries: the two a window old go
    assert len(dedup) == 1 + 2
    changes = dedup.changes()
    assert [json.loads(k)[1] for k, v in changes.items() if v is None] == ["E-0", "E-1"]
    assert decide(dedup, result(200, rule="plt")) == ["no:first-only"]
    assert decide(dedup, result(30, patient="E-0")) == ["new"]  # forgotten


def test_the_bound_holds_within_a_window_too() -> None:
    dedup = Dedup(max_entries=2)
    decide(dedup, *(result(i, patient=f"E-{i}") for i in range(5)))
    assert len(dedup) == 2
    assert sorted(json.loads(k)[1] for k in dedup.entries()) == ["E-3", "E-4"]


def test_prune_by_time() -> None:
    dedup = Dedup()
    decide(dedup, result(0), result(30, patient="E-43"), result(0, rule="plt"))
    assert dedup.prune(OBSERVED + timedelta(minutes=80)) == 1
    assert len(dedup) == 2
    assert dedup.prune(datetime.max.replace(tzinfo=OBSERVED.tzinfo)) == 1
    assert len(dedup) == 1  # the first-only entry


@pytest.mark.parametrize(("window", "max_entries"), [(timedelta(0), 10), (timedelta(1), 0)])
def test_settings_that_cannot_be(window: timedelta, max_entries: int) -> None:
    with pytest.raises(ValueError, match="window"):
        Dedup(window, max_entries=max_entries)
