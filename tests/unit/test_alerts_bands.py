"""Age bands on the day of the result, in China time, and the result time itself."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from streams.alerts.bands import AgeBands, result_time
from tests.unit.test_alerts_events import OBSERVED, RECEIVED, imaging_report, lab_result

#: 2026-03-01 01:30 UTC is 2026-03-01 09:30 in China.
AT = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(("born", "band"), [
    (date(2026, 3, 1), "neonate"),  # day of birth
    (date(2026, 2, 1), "neonate"),  # day 28
    (date(2026, 1, 31), "child"),  # day 29
    (date(2008, 3, 2), "child"),  # 18 tomorrow
    (date(2008, 3, 1), "adult"),  # 18 today
    (date(1936, 5, 6), "adult"),
    (date(2026, 3, 2), None),  # born after the result: a data error, no band
    (None, None),
])
def test_bands(born: date | None, band: str | None) -> None:
    assert AgeBands().band(born, AT) == band


def test_the_day_is_the_day_in_china() -> None:
    # 2026-02-28 17:00 UTC is already 1 March in China: day 28 of a child born 1 February.
    late = datetime(2026, 2, 28, 17, 0, tzinfo=UTC)
    assert AgeBands().band(date(2026, 1, 31), late) == "child"
    assert AgeBands().band(date(2026, 1, 31), late.replace(hour=15)) == "neonate"


def test_a_facility_moves_the_cut_offs() -> None:
    paediatric_to_14 = AgeBands(neonate_days=28, adult_years=14)
    assert paediatric_to_14.band(date(2011, 3, 1), AT) == "adult"
    assert AgeBands().band(date(2011, 3, 1), AT) == "child"
    assert AgeBands(neonate_days=7).band(date(2026, 2, 20), AT) == "child"


@pytest.mark.parametrize(("neonate_days", "adult_years"), [(-1, 18), (28, 0)])
def test_cut_offs_that_cannot_be(neonate_days: int, adult_years: int) -> None:
    with pytest.raises(ValueError, match="neonat"):
        AgeBands(neonate_days, adult_years)


@pytest.mark.parametrize(("event", "at"), [
    (lab_result(), OBSERVED),
    (lab_result(observed_at=None, occurred_at=datetime(2026, 3, 1, tzinfo=UTC)),
     datetime(2026, 3, 1, tzinfo=UTC)),
    (lab_result(observed_at=None), RECEIVED),
    (imaging_report(), imaging_report()["reported_at"]),
    (imaging_report(reported_at=None), RECEIVED),
])
def test_result_time(event: dict[str, object], at: datetime) -> None:
    assert result_time(event) == at
