"""Original and enhanced acknowledgement modes (MSH-15/16)."""

from __future__ import annotations

import pytest

from producers.hl7v2.ackmode import acknowledgements
from producers.hl7v2.message import Message


def message(accept: str = "", application: str = "") -> Message:
    return Message.parse(f"MSH|^~\\&|HIS|H1|HUTONG|R|20261122||ADT^A01|C1|P|2.4|||{accept}|"
                         f"{application}\rPID|1||M1\r")


@pytest.mark.parametrize("outcome, stored, expected", [
    ("AA", True, ["AA"]), ("AE", True, ["AE"]), ("AR", True, ["AR"]), ("AR", False, ["AR"]),
    ("AA", False, ["AE"]),  # not durable: never AA
])
def test_original_mode_is_one_ack(outcome: str, stored: bool, expected: list[str]) -> None:
    assert acknowledgements(message(), outcome, stored=stored) == expected
    assert acknowledgements(None, outcome, stored=stored) == expected


@pytest.mark.parametrize("accept, application, outcome, stored, expected", [
    ("AL", "AL", "AA", True, ["CA", "AA"]),
    ("AL", "AL", "AE", True, ["CA", "AE"]),   # a dead letter is durable: committed, then AE
    ("AL", "AL", "AR", True, ["CR"]),         # refused: no application ACK follows
    ("AL", "AL", "AA", False, ["CE"]),        # not stored: commit error, resend
    ("NE", "AL", "AA", True, ["AA"]),
    ("AL", "NE", "AA", True, ["CA"]),
    ("ER", "ER", "AA", True, []),             # only errors wanted, none happened
    ("ER", "ER", "AE", True, ["AE"]),
    ("ER", "SU", "AA", False, ["CE"]),
    ("SU", "SU", "AA", True, ["CA", "AA"]),
    ("SU", "ER", "AE", True, ["CA", "AE"]),
    ("", "AL", "AA", True, ["CA", "AA"]),     # enhanced with MSH-15 empty: commit ACK anyway
    ("NE", "NE", "AA", True, []),
])
def test_enhanced_mode_commit_then_application_ack(accept: str, application: str, outcome: str,
                                                   stored: bool, expected: list[str]) -> None:
    assert acknowledgements(message(accept, application), outcome, stored=stored) == expected


def test_unknown_condition_falls_back_to_original_mode() -> None:
    assert acknowledgements(message("XX", "AL"), "AA", stored=True) == ["AA"]


def test_outcome_must_be_an_application_code() -> None:
    with pytest.raises(ValueError, match="outcome"):
        acknowledgements(message(), "CA", stored=True)


def test_a_facility_may_be_held_to_original_mode() -> None:
    assert acknowledgements(message("AL", "NE"), "AA", stored=True, mode="original") == ["AA"]
