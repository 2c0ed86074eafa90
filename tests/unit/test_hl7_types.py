"""Strict HL7 primitive parsers: DTM/TS, DT, NM."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.types import DEFAULT_TZ, parse_date, parse_nm, parse_ts

SHANGHAI = DEFAULT_TZ


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240115083012", datetime(2024, 1, 15, 8, 30, 12, tzinfo=SHANGHAI)),
        ("202401150830", datetime(2024, 1, 15, 8, 30, tzinfo=SHANGHAI)),
        ("2024011508", datetime(2024, 1, 15, 8, tzinfo=SHANGHAI)),
        ("20240115", datetime(2024, 1, 15, tzinfo=SHANGHAI)),
        ("202401", datetime(2024, 1, 1, tzinfo=SHANGHAI)),
        ("2024", datetime(2024, 1, 1, tzinfo=SHANGHAI)),
        ("20240115083012.5", datetime(2024, 1, 15, 8, 30, 12, 500000, tzinfo=SHANGHAI)),
        ("20240115083012.1234567", datetime(2024, 1, 15, 8, 30, 12, 123456, tzinfo=SHANGHAI)),
        ("20240115083012+0800", datetime(2024, 1, 15, 0, 30, 12, tzinfo=UTC)),
        ("20240115083012-0500", datetime(2024, 1, 15, 13, 30, 12, tzinfo=UTC)),
        ("20240115083012+0000", datetime(2024, 1, 15, 8, 30, 12, tzinfo=UTC)),
        ("202401150830+0530", datetime(2024, 1, 15, 3, 0, tzinfo=UTC)),
        (" 20240115 ", datetime(2024, 1, 15, tzinfo=SHANGHAI)),
        ("", None),
        ('""', None),
    ],
)
def test_parse_ts(value: str, expected: datetime | None) -> None:
    parsed = parse_ts(value, "OBX[1]-14")
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


def test_no_offset_means_china_standard_time() -> None:
    parsed = parse_ts("20240701120000", "OBR[1]-7")
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=8)
    offset = parse_ts("20240701120000-0330", "OBR[1]-7")
    assert offset is not None and offset.tzinfo == timezone(-timedelta(hours=3, minutes=30))


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15 08:30:00",  # ISO-ish, common from HIS exports, still not HL7
        "20240115 083000",
        "2024011",  # odd number of digits
        "20241315",  # month 13
        "20240230",  # 30 February
        "20240115250000",  # hour 25
        "20240115083060",  # second 60
        "20240115083012.",  # point without digits
        "20240115083012+08",  # short offset
        "20240115083012+1500",  # no such offset
        "２０２４０１１５",  # full-width digits
        "abc",
    ],
)
def test_parse_ts_rejects(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_ts(value, "OBX[2]-14")
    error = caught.value
    assert (error.code, error.location) == ("102", "OBX[2]-14")
    assert value.strip() not in str(error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19491231", date(1949, 12, 31)),
        ("194912", date(1949, 12, 1)),
        ("1949", date(1949, 1, 1)),
        ("19491231083000", date(1949, 12, 31)),  # PID-7 is a TS in v2.3-2.5
        ("19491231230000-0500", date(1949, 12, 31)),  # the date as sent, not moved
        ("", None),
    ],
)
def test_parse_date(value: str, expected: date | None) -> None:
    assert parse_date(value, "PID[1]-7") == expected


@pytest.mark.parametrize("value", ["1949-12-31", "19491232", "19491231256000", "49"])
def test_parse_date_rejects(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_date(value, "PID[1]-7")
    assert (caught.value.code, caught.value.location) == ("102", "PID[1]-7")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6.5", 6.5),
        ("-0.25", -0.25),
        ("+3", 3.0),
        ("5.", 5.0),
        (".5", 0.5),
        ("0012", 12.0),
        (" 7.1 ", 7.1),
        ("", None),
        ('""', None),
    ],
)
def test_parse_nm(value: str, expected: float | None) -> None:
    assert parse_nm(value, "OBX[1]-5") == expected


@pytest.mark.parametrize(
    "value", ["1,2", "abc", "1.2.3", "1e5", "nan", "inf", ">100", "--1", ".", "+", "１２", "1 2"]
)
def test_parse_nm_rejects(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_nm(value, "OBX[2]-5")
    error = caught.value
    assert (error.code, error.location) == ("102", "OBX[2]-5")
    assert "(at OBX[2]-5)" in str(error)


@pytest.mark.parametrize("value", ["00010101", "99991231235959", "18000101"])
def test_implausible_years_are_refused_with_the_location(value: str) -> None:
    with pytest.raises(ValidationError, match="year outside") as caught:
        parse_ts(value, "OBX[1]-14")
    assert caught.value.location == "OBX[1]-14" and caught.value.code == "102"
    with pytest.raises(ValidationError, match="year outside"):
        parse_date(value[:8], "PID[1]-7")
