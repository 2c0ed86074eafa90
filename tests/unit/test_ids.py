"""Deterministic event ids and raw keys."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from producers.ids import HUTONG_NAMESPACE, event_id, raw_key, uuid5_text


def test_event_id_is_a_stable_uuid5() -> None:
    value = event_id("RMYY", "MSG0001", "OBX1")
    parsed = uuid.UUID(value)
    assert parsed.version == 5
    # golden: changing it would change every event id already in the warehouse
    assert value == str(uuid.uuid5(HUTONG_NAMESPACE, "RMYY\x1fMSG0001\x1fOBX1"))
    assert value == event_id("RMYY", "MSG0001", "OBX1")


def test_position_may_be_an_int() -> None:
    assert event_id("RMYY", "M1", 3) == event_id("RMYY", "M1", "3")


def test_namespace_is_fixed() -> None:
    assert str(HUTONG_NAMESPACE) == "12bca761-6e4c-57bc-aae9-33dd468df786"


def test_parts_cannot_slide_into_each_other() -> None:
    assert event_id("a|b", "c", "OBX1") != event_id("a", "b|c", "OBX1")


@given(st.tuples(st.text(), st.text(), st.text()), st.tuples(st.text(), st.text(), st.text()))
def test_different_inputs_give_different_ids(a: tuple[str, str, str],
                                             b: tuple[str, str, str]) -> None:
    if "\x1f" in "".join(a + b):
        return
    assert (event_id(*a) == event_id(*b)) == (a == b)


def test_raw_key() -> None:
    assert raw_key("RMYY", "MSG0001") == "RMYY|MSG0001"


@given(st.text(), st.uuids())
def test_uuid5_text_is_the_standard_librarys_uuid5(name: str, namespace: uuid.UUID) -> None:
    assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))
