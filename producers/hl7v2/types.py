"""Strict parsers for HL7 v2 primitive data types: DTM/TS, DT and NM.

Each takes the value and its location (``OBX[2]-14``) and raises
ValidationError with table 0357 code 102 ("data type error") naming the
location and the expected type, never the value, which may be a patient's.
Empty values (and the HL7 null ``""``) are None.

A timestamp without a UTC offset is local time in China (Asia/Shanghai, UTC+8
all year); every datetime returned is timezone aware.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hutong.errors import ValidationError

__all__ = ["DEFAULT_TZ", "parse_date", "parse_nm", "parse_ts"]

#: The zone of timestamps sent without an offset.
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")

_TS = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d+))?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?",
    re.ASCII,
)
_NM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)


def _is_empty(value: str) -> bool:
    return not value or value == '""'


def _match_ts(value: str, location: str, kind: str) -> re.Match[str]:
    match = _TS.fullmatch(value)
    if match is None:
        raise ValidationError(f"not a valid {kind} (YYYYMMDDHHMMSS[.S][+/-ZZZZ])",
                              location=location, code="102")
    return match


#: Years a clinical or birth date can have; outside them a value is a typo, and years
#: near 1 or 9999 cannot be converted to every timezone downstream.
MIN_YEAR, MAX_YEAR = 1850, 2199


def _plausible_year(year: int, location: str, what: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError(f"{what} year outside {MIN_YEAR}-{MAX_YEAR}", location=location,
                              code="102")


def parse_ts(value: str, location: str) -> datetime | None:
    """Parse DTM (v2.5) or TS.1 (v2.3/2.4): YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ].

    Missing parts take their lowest value (``2024`` is 2024-01-01 00:00);
    fractions beyond microseconds are truncated.
    """
    value = value.strip()
    if _is_empty(value):
        return None
    m = _match_ts(value, location, "timestamp")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = m.groups()
    _plausible_year(int(year), location, "timestamp")
    tz: timezone | ZoneInfo = DEFAULT_TZ
    if sign:
        if int(off_h) > 14 or int(off_m) > 59:
            raise ValidationError("timestamp has an impossible UTC offset", location=location,
                                  code="102")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), int((fraction or "0")[:6].ljust(6, "0")), tzinfo=tz,
        )
    except ValueError:
        raise ValidationError("timestamp is not a real calendar date and time",
                              location=location, code="102") from None


def parse_date(value: str, location: str) -> date | None:
    """Parse DT: YYYY[MM[DD]]; a full timestamp is accepted and its date kept as sent.

    Missing month or day are taken as 1 (check ``len(value) < 8`` to tell).
    """
    value = value.strip()
    if _is_empty(value):
        return None
    m = _match_ts(value, location, "date")
    year, month, day = m.group(1, 2, 3)
    _plausible_year(int(year), location, "date")
    try:
        if m.group(4):  # validates the time part too
            parse_ts(value, location)
        return date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise ValidationError("date is not a real calendar date", location=location,
                              code="102") from None


def parse_nm(value: str, location: str) -> float | None:
    """Parse NM: an optional sign, ASCII digits and at most one decimal point."""
    value = value.strip()
    if _is_empty(value):
        return None
    if _NM.fullmatch(value) is None:
        raise ValidationError("not a number (NM: optional sign, digits, one decimal point)",
                              location=location, code="102")
    return float(value)
