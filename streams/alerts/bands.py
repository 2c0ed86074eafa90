"""Age bands: which rows of a critical-value list apply to a patient.

Published lists (reference §4.3) print adult rows and neonatal (新生儿) rows;
none of the lists A-F prints a separate row for children (儿童). hutong
therefore knows three bands, with cut-offs that belong to the rule set so a
facility can move them:

=========  ===============================================  ==================
band       age on the day of the result (China time)        default cut-off
=========  ===============================================  ==================
neonate    0 to ``neonate_days`` days                       28 days
child      ``neonate_days`` + 1 days to < ``adult_years``   18 years
adult      ``adult_years`` and older                        18 years
=========  ===============================================  ==================

The child band ends at 18 years, the age of majority; many Chinese hospitals'
paediatric departments (儿科) take patients under 14 only, which a facility
sets with ``adult_years: 14``. The default rules treat child and adult alike
(their rows exclude neonates), so the choice only matters to a facility that
writes child or adult rows of its own.

A patient without a birth date, or born after the result, has no band
(``None``). A rule restricted to a band (``bands: [neonate]``) does not fire
for them; a rule that only excludes one (``exclude_bands: [neonate]``) does.
So a neonatal limit never fires on an adult of unknown age, and the adult
limit still does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final, Literal

__all__ = ["BANDS", "CHINA_TIME", "AgeBands", "Band", "result_time"]

Band = Literal["neonate", "child", "adult"]
BANDS: Final[tuple[Band, ...]] = ("neonate", "child", "adult")

#: Birth dates are local dates; results carry UTC instants. China keeps UTC+8 all year.
CHINA_TIME: Final = timezone(timedelta(hours=8), "CST")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AgeBands:
    """The band cut-offs of a rule set."""

    #: The last day of life (day of birth = 0) that is still neonatal.
    neonate_days: int = 28
    #: From this birthday on, a patient is an adult.
    adult_years: int = 18

    def __post_init__(self) -> None:
        if self.neonate_days < 0:
            raise ValueError("neonate_days must be 0 or more")
        if self.adult_years * 365 <= self.neonate_days:
            raise ValueError("adult_years must come after the neonatal period")

    def band(self, birth_date: date | None, at: datetime) -> Band | None:
        """The patient's band on the day of ``at``, or None when the age is unknown."""
        if birth_date is None:
            return None
        day = (at.astimezone(CHINA_TIME) if at.tzinfo else at).date()
        days = (day - birth_date).days
        if days < 0:
            return None
        if days <= self.neonate_days:
            return "neonate"
        birthday_to_come = (day.month, day.day) < (birth_date.month, birth_date.day)
        years = day.year - birth_date.year - birthday_to_come
        return "adult" if years >= self.adult_years else "child"


def result_time(event: dict[str, Any]) -> datetime:
    """When the result came to be: what ages, windows and turnaround are measured on.

    A lab result: ``observed_at``, else ``occurred_at``, else ``received_at``.
    An imaging report: ``reported_at`` (the report is the result), else the same.
    """
    first = event.get("reported_at") if event.get("event_type") == "imaging-report" \
        else event.get("observed_at")
    at = first or event.get("occurred_at") or event.get("received_at")
    if not isinstance(at, datetime):
        # received_at is required by every event schema; an event without it is a bug
        # upstream, and the epoch keeps such an event from stopping the stream.
        return _EPOCH
    return at
