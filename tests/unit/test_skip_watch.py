"""The stream worker's watch for events Faust skipped (a hole before its acked offsets)."""

from __future__ import annotations

from faust.types import TP

from streams.app import SkipWatch

EVENTS = TP("hutong.events.lab-result", 0)


def test_a_hole_that_lasts_is_reported_and_a_passing_one_is_not() -> None:
    watch = SkipWatch(patience=30)
    in_flight = {EVENTS: [3700, 3701]}  # 3632..3699 still being processed
    assert watch.stuck(in_flight, {EVENTS: 3631}, now=0) == []
    assert watch.stuck(in_flight, {EVENTS: 3631}, now=20) == []
    assert watch.stuck({EVENTS: []}, {EVENTS: 3702}, now=25) == []  # done: the hole closed
    skipped = {EVENTS: [3808, 3809, 3810]}  # 3632..3807 never came
    assert watch.stuck(skipped, {EVENTS: 3631}, now=30) == []
    assert watch.stuck(skipped, {EVENTS: 3631}, now=61) == [
        "hutong.events.lab-result[0]@3631"]


def test_acked_offsets_right_after_the_commit_are_no_hole() -> None:
    watch = SkipWatch(patience=0)
    assert watch.stuck({EVENTS: [3632, 3633]}, {EVENTS: 3631}, now=100) == []  # commit pending
    assert watch.stuck({EVENTS: [5]}, {}, now=100) == []  # nothing committed yet
