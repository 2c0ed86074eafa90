"""The facility registry's pure parts: institution codes, the facility record, the
registry's lookups as facilities come and go, and what the registry file publishes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connectors.facilities import Facility, FacilityRegistry, Peer, Refusal, hash_api_key
from hutong.errors import ConfigError
from hutong.registry.codes import check_org_code, check_region_code, check_uscc
from hutong.registry.facilities import (
    FACILITIES_TOPIC,
    FILE,
    FacilityFeed,
    FacilityRecord,
    changed,
    file_changes,
    file_digest,
)
from schemas import wire
from schemas.registry import EMBEDDED

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
LOCAL = Peer("mllp", "127.0.0.1")


@pytest.mark.parametrize(("raw", "code", "problem", "warning"), [
    ("12360000491015900T", "12360000491015900T", None, None),  # a public hospital (12...)
    ("913502000728319549", "913502000728319549", None, None),
    ("91350200MA2YJ1XR9G", "91350200MA2YJ1XR9G", None, None),
    ("91440101ma5cj q4n59", "91440101MA5CJQ4N59", None, None),  # spaces, lower case
    ("９１４４０１０１ＭＡ５ＣＪＱ４Ｎ５９", "91440101MA5CJQ4N59", None, None),  # full width
    ("91350203M0001QAY9B", "91350203M0001QAY9B", None, "computes '9'"),  # pilot era: warned
    ("1236000049101590", None, "18 characters, not 16", None),
    ("12360000491015900I", None, "without I, O, S, V, Z", None),
    ("N23600004910159005", "N23600004910159005", None, "registration authority"),
    ("12AB0000491015900T", None, "division code", None),
])
def test_unified_social_credit_codes(raw: str, code: str | None, problem: str | None,
                                     warning: str | None) -> None:
    checked = check_uscc(raw)
    if problem is None:
        assert checked.acceptable and checked.code == code
    else:
        assert checked.problem is not None and problem in checked.problem
    assert (warning is None) == (checked.warning is None)
    if warning is not None:
        assert checked.warning is not None and warning in checked.warning


@pytest.mark.parametrize(("raw", "acceptable", "warned"), [
    ("49101590-0", True, False), ("072831954", True, False), ("491015901", True, True),
    ("4910159", False, False), ("4910159*0", False, False),
])
def test_organisation_codes(raw: str, acceptable: bool, warned: bool) -> None:
    checked = check_org_code(raw)
    assert checked.acceptable is acceptable
    assert (checked.warning is not None) is warned


@pytest.mark.parametrize(("raw", "acceptable"), [
    ("620521", True), ("110105", True), ("990101", False), ("62052", False), ("62O521", False),
])
def test_region_codes(raw: str, acceptable: bool) -> None:
    assert check_region_code(raw).acceptable is acceptable


def test_a_facility_keeps_normalised_codes_and_reports_what_only_warns() -> None:
    facility = Facility(id="QSX", name="清水县人民医院", uscc="91350203m0001qay9b",
                        org_code="M0001QAY-9", level="二级甲等", kind="综合医院",
                        region_code="620521")
    assert (facility.uscc, facility.org_code) == ("91350203M0001QAY9B", "M0001QAY9")
    assert [w.split(":")[0] for w in facility.code_warnings] == ["uscc"]
    other = Facility(id="QSX", uscc="12360000491015900T", org_code="072831954")
    assert other.code_warnings == ("org_code differs from the organisation code inside the "
                                   "uscc",)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("uscc", "123", "18 characters"), ("level", "三级", "level must be one of"),
    ("kind", "医院", "kind must be one of"), ("region_code", "99", "six digits"),
    ("id", "FAC 1", "pattern"),
])
def test_a_facility_with_a_wrong_field_is_refused_naming_it(field: str, value: str,
                                                            says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Facility.model_validate({"id": "F1", field: value})
    [error] = caught.value.errors()
    assert error["loc"] == (field,) and says in str(error["msg"])


def test_registry_puts_retires_and_removes_while_lookups_follow() -> None:
    key = "htk_registry-unit"
    registry = FacilityRegistry([Facility(id="A", mllp_sources=["127.0.0.0/8"])])
    assert registry.authorize("B", LOCAL) is not None
    registry.put(Facility(id="B", mllp_sources=["127.0.0.0/8"], api_keys=[hash_api_key(key)]))
    assert registry.authorize("B", LOCAL) is None and registry.for_api_key(key) is not None
    registry.put(Facility(id="B", status="retired", api_keys=[hash_api_key(key)]))
    refusal = registry.authorize("B", LOCAL)
    assert refusal is not None and "retired" in refusal.reason
    assert registry.for_api_key(key) is None and "B" not in registry
    assert [f.id for f in registry.facilities()] == ["A"]
    assert [f.id for f in registry.facilities(retired=True)] == ["A", "B"]
    registry.remove("B")
    assert registry.get("B") is None


def test_a_key_two_facilities_claim_is_refused_as_a_change_and_opens_neither_on_the_topic(
        ) -> None:
    """A change is checked first (409 at the API, a start refused for the file); two API
    pods may still each publish one claim: then, as every follower reads it, the key opens
    neither facility, whichever came first, and the feed goes on."""
    shared = hash_api_key("htk_one-key")
    registry = FacilityRegistry([Facility(id="A", api_keys=[shared])])
    intruder = Facility(id="B", api_keys=[shared])
    assert "one API key is given to two facilities (A and B)" in (registry.check(intruder)
                                                                  or "")
    assert registry.check(intruder.model_copy(update={"status": "retired"})) is None
    registry.put(intruder)  # as the topic says: no exception
    assert registry.for_api_key("htk_one-key") is None
    registry.put(intruder.model_copy(update={"status": "retired"}))
    found = registry.for_api_key("htk_one-key")
    assert found is not None and found.id == "A"
    with pytest.raises(ConfigError, match="listed twice"):
        FacilityRegistry([Facility(id="A"), Facility(id="A")])


def test_an_open_connection_loses_what_its_facility_lost() -> None:
    """Authenticated when it opened (a certificate, a batch folder): each message is
    checked again, so retiring the facility or taking the certificate's name away stops a
    connection that stays open."""
    registry = FacilityRegistry([Facility(id="A", tls_names=["his.a.example"])])
    tls = Peer("mllps", "10.0.0.5", "A", "certificate his.a.example", ("his.a.example",))
    assert registry.authorize("A", tls) is None
    registry.put(Facility(id="A", tls_names=["his-new.a.example"]))
    refusal = registry.authorize("A", tls)
    assert refusal is not None and "no longer names" in refusal.reason
    registry.put(Facility(id="A", status="retired"))
    folder = Peer("file", None, "A")
    assert "retired" in (registry.authorize("A", folder) or Refusal("")).reason


def test_a_record_travels_through_its_avro_schema_without_loss() -> None:
    facility = Facility(id="QSX", name="清水县人民医院", uscc="12360000491015900T",
                        level="二级甲等", kind="综合医院", community="QSX-YGT",
                        region_code="620521", mllp_sources=["10.20.0.0/24"],
                        api_keys=[hash_api_key("htk_x")], profile={"name_component": 2})
    record = FacilityRecord(facility, 3, AT, "admin-li", "moved to the new network", "d" * 64)
    schema = EMBEDDED.for_topic(FACILITIES_TOPIC)
    _, decoded = wire.decode(wire.encode(schema, record.to_record()), EMBEDDED.by_id)
    assert FacilityRecord.from_record(decoded) == record


def _file(**changes: object) -> Facility:
    return Facility.model_validate({"id": "A", "name": "甲医院", **changes})


def test_the_registry_file_publishes_what_is_new_or_edited_and_never_undoes_the_api() -> None:
    [first] = file_changes([_file()], {}, AT)
    assert (first.version, first.changed_by, first.facility.name) == (1, FILE, "甲医院")
    published = {"A": first}
    assert file_changes([_file()], published, AT) == []  # the same file again: nothing
    by_api = changed(first, _file(name="甲医院（新院区）"), by="admin-li", reason="renamed")
    assert file_changes([_file()], {"A": by_api}, AT) == []  # the API's change stands
    [edited] = file_changes([_file(level="二级乙等")], {"A": by_api}, AT)
    assert (edited.version, edited.facility.level, edited.changed_by) == (3, "二级乙等", FILE)


def test_taking_a_facility_out_of_the_file_retires_it_even_after_an_api_change() -> None:
    [first] = file_changes([_file()], {}, AT)
    [retired] = file_changes([], {"A": first}, AT)
    assert (retired.facility.status, retired.version, retired.reason) == (
        "retired", 2, "taken out of the registry file")
    assert file_changes([], {"A": retired}, AT) == []  # retired once
    [back] = file_changes([_file()], {"A": retired}, AT)  # put back in the file
    assert back.facility.status == "active"
    by_api = changed(first, _file(name="改名"), by="admin-li", reason=None)
    [gone] = file_changes([], {"A": by_api}, AT)
    assert gone.facility.status == "retired"
    api_only = FacilityRecord(_file(), 1, AT, "admin-li")  # added through the API
    assert file_changes([], {"A": api_only}, AT) == []


def test_a_file_edit_over_an_api_change_sets_only_what_the_entry_says() -> None:
    [first] = file_changes([_file(mllp_sources=["10.0.0.0/24"])], {}, AT)
    key = hash_api_key("htk_rotated")
    by_api = changed(first, first.facility.model_copy(update={"api_keys": [key],
                                                              "status": "retired"}),
                     by="admin-li", reason="key leaked")
    [edited] = file_changes([_file(mllp_sources=["10.0.0.0/24"], level="二级乙等")],
                            {"A": by_api}, AT)
    assert (edited.facility.level, edited.facility.api_keys, edited.facility.status) == (
        "二级乙等", [key], "retired")  # the API's rotation and retirement stand


def test_the_file_digest_is_of_what_the_entry_says() -> None:
    assert file_digest(_file()) == file_digest(Facility.model_validate(
        {"name": "甲医院", "id": "A"}))
    assert file_digest(_file()) != file_digest(_file(ack_mode="auto"))  # said, if default
    assert "profile" not in _file().model_dump(exclude_unset=True)


def test_an_unreadable_registry_record_opens_nothing_and_the_feed_goes_on() -> None:
    registry = FacilityRegistry()
    feed = FacilityFeed({"bootstrap.servers": "127.0.0.1:9"}, registry)  # never started
    [record] = file_changes([_file(mllp_sources=["127.0.0.0/8"])], {}, AT)
    assert feed.apply(record.to_record())
    assert registry.authorize("A", LOCAL) is None
    newer = {**record.to_record(), "kind": "未来的机构类别", "version": 2}  # a newer hub's
    assert not feed.apply(newer)
    assert registry.authorize("A", LOCAL) is not None and "A" not in feed.records


def test_the_topic_catching_up_behind_an_api_write_undoes_nothing() -> None:
    registry = FacilityRegistry()
    feed = FacilityFeed({"bootstrap.servers": "127.0.0.1:9"}, registry)  # never started
    [first] = file_changes([_file(mllp_sources=["127.0.0.0/8"])], {}, AT)
    retired = changed(first, first.facility.model_copy(update={"status": "retired"}),
                      by="admin-li", reason="并入")
    feed.put(retired)  # written by this process's API, applied at once
    assert feed.apply(first.to_record())  # the topic, behind, hands over version 1 again
    assert feed.records["A"].version == 2
    assert "retired" in (registry.authorize("A", LOCAL) or Refusal("")).reason
    assert feed.apply(retired.to_record())  # its own copy: the same version, taken
    back = changed(retired, first.facility, by="admin-li", reason="恢复")
    assert feed.apply(back.to_record()) and registry.authorize("A", LOCAL) is None
