"""Fields derived from a patient's identity that analysis may keep (pure).

They replace what the warehouse withholds (`sinks.warehouse.pseudonyms`): an
age band instead of the birth date, a county-level region instead of the ID
number.
"""

from __future__ import annotations

import datetime as dt

from producers.idcard import validate_id_card

__all__ = ["age_band", "region_code"]


def age_band(birth: dt.date | None, at: dt.datetime | dt.date | None) -> str | None:
    """Age at ``at`` in the bands of population statistics: <1, 1-4, 5-9, ..., 85+."""
    if birth is None or at is None:
        return None
    day = at.date() if isinstance(at, dt.datetime) else at
    years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    if years < 0:
        return None
    if years < 1:
        return "<1"
    if years < 5:
        return "1-4"
    if years >= 85:
        return "85+"
    low = years // 5 * 5
    return f"{low}-{low + 4}"


def region_code(id_card: str | None) -> str | None:
    """The six-digit administrative division (GB/T 2260) a valid 身份证号 starts with."""
    if not id_card:
        return None
    checked = validate_id_card(id_card)
    return checked.number[:6] if checked.valid else None
