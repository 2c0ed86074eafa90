"""Record checks on their own: paths, maps, unions, and the types hutong does not use."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastavro import parse_schema

from schemas import catalog
from schemas.validation import Problem, compile_check

REVIEW = {
    "pair_id": "pair-1",
    "left_facility_id": "RMYY",
    "left_source_patient_id": "P1",
    "right_facility_id": "ZYY",
    "right_source_patient_id": "Q9",
    "left_empi_id": None,
    "right_empi_id": "E-1",
    "score": 0.87,
    "comparison": {"name": 0.9, "birth_date": 1.0},
    "status": "open",
    "created_at": dt.datetime(2024, 1, 15, tzinfo=dt.UTC),
}
check_review = compile_check(catalog.schema("empi-review").parsed)


def test_a_fitting_record_has_no_problem() -> None:
    assert check_review(REVIEW) is None
    assert check_review({**REVIEW, "comparison": {}}) is None


@pytest.mark.parametrize(
    ("datum", "problem"),
    [
        (["pair-1"], Problem((), "expected a record (mapping), got list")),
        (
            {**REVIEW, "comparison": {"name": "0.9"}},
            Problem(("comparison", "name"), "expected double, got str"),
        ),
        (
            {**REVIEW, "comparison": {1: 0.9}},
            Problem(("comparison",), "map keys must be str, got int"),
        ),
        (
            {**REVIEW, "comparison": [0.9]},
            Problem(("comparison",), "expected a map (mapping), got list"),
        ),
        (
            {**REVIEW, "left_empi_id": 7},
            Problem(("left_empi_id",), "expected null or string, got int"),
        ),
    ],
)
def test_problems_name_the_path_and_the_type(datum: Any, problem: Problem) -> None:
    assert check_review(datum) == problem


@pytest.mark.parametrize(
    ("path", "where"),
    [((), "<record>"), (("patient", "identifiers", 0, "value"), "patient.identifiers[0].value")],
)
def test_where_spells_the_path(path: tuple[str | int, ...], where: str) -> None:
    assert Problem(path, "reason").where == where


def test_a_union_names_its_record_branches() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "hutong.Outer",
            "fields": [
                {"name": "inner", "type": ["null", {"type": "record", "name": "hutong.Inner",
                                                    "fields": [{"name": "x", "type": "long"}]}]},
                {"name": "again", "type": "hutong.Inner"},
            ],
        }
    )  # fmt: skip
    check = compile_check(schema)
    assert check({"inner": None, "again": {"x": 1}}) is None
    assert check({"inner": 5, "again": {"x": 1}}) == Problem(
        ("inner",), "expected null or hutong.Inner, got int"
    )
    assert check({"inner": None, "again": {"x": 2**63}}) == Problem(
        ("again", "x"), "expected long (integer), got int"
    )


def test_types_hutong_does_not_use_are_refused_when_compiled() -> None:
    enum = {"type": "enum", "name": "hutong.Sex", "symbols": ["M", "F"]}
    schema = parse_schema({"type": "record", "name": "hutong.R", "fields": [
        {"name": "sex", "type": enum}]})  # fmt: skip
    with pytest.raises(ValueError, match="unsupported Avro type 'enum'"):
        compile_check(schema)


@pytest.mark.parametrize(("field", "value", "fits"), [
    # A field whose Python type alone decides skips its check; the rest still meet it.
    ("score", 0.87, True), ("score", 1, True), ("score", True, False), ("score", "0.87", False),
    ("left_empi_id", None, True), ("left_empi_id", "E-2", True), ("left_empi_id", b"E-2", False),
    ("left_empi_id", False, False), ("status", "open", True), ("status", None, False),
    ("created_at", dt.datetime(2024, 1, 15), False),  # naive
    ("created_at", dt.date(2024, 1, 15), False),
])
def test_the_quick_path_refuses_what_the_full_check_refuses(field: str, value: Any,
                                                             fits: bool) -> None:
    assert (check_review({**REVIEW, field: value}) is None) is fits
