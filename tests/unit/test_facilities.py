"""The facility registry decides who may send what, from where."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.facilities import (
    Facility,
    FacilityRegistry,
    Peer,
    hash_api_key,
    new_api_key,
)
from hutong.errors import ConfigError

KEY = "htk_test-key-for-qsxrmyy"

REGISTRY = f"""
facilities:
  - id: QSXRMYY
    name: 清水县人民医院
    mllp_sources: [10.20.0.0/24, "::1/128"]
    tls_names: [his.qsxrmyy.example]
    api_keys: [{hash_api_key(KEY)}]
    profile: {{id_card_types: [SFZH], id_card_field: PID-19, name_component: 2}}
  - id: HHXWSY
"""


@pytest.fixture
def registry(tmp_path: Path) -> FacilityRegistry:
    path = tmp_path / "facilities.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return FacilityRegistry.load(path)


def test_plain_mllp_needs_a_registered_facility_from_its_own_address(
        registry: FacilityRegistry) -> None:
    assert registry.authorize("QSXRMYY", Peer("mllp", "10.20.0.7")) is None
    assert registry.authorize("QSXRMYY", Peer("mllp", "::1")) is None
    wrong_place = registry.authorize("QSXRMYY", Peer("mllp", "10.99.0.7"))
    assert wrong_place is not None and "10.99.0.7" in wrong_place.reason
    unknown = registry.authorize("NOSUCH", Peer("mllp", "10.20.0.7"))
    assert unknown is not None and "not registered" in unknown.reason
    no_sources = registry.authorize("HHXWSY", Peer("mllp", "10.20.0.7"))
    assert no_sources is not None and "TLS" in no_sources.reason


def test_ipv4_mapped_ipv6_address_is_matched_as_ipv4(registry: FacilityRegistry) -> None:
    assert registry.authorize("QSXRMYY", Peer("mllp", "::ffff:10.20.0.9")) is None


def test_an_authenticated_connection_may_only_send_for_its_own_facility(
        registry: FacilityRegistry) -> None:
    peer = Peer("mllps", "203.0.113.5", "QSXRMYY", "certificate his.qsxrmyy.example")
    assert registry.authorize("QSXRMYY", peer) is None
    mismatch = registry.authorize("HHXWSY", peer)
    assert mismatch is not None and "authenticated as 'QSXRMYY'" in mismatch.reason
    nameless = registry.authorize("QSXRMYY", Peer("mllps", "203.0.113.5", None, "certificate x"))
    assert nameless is not None and "names no registered facility" in nameless.reason


def test_certificates_and_api_keys_name_facilities(registry: FacilityRegistry) -> None:
    facility = registry.for_certificate(["other", "HIS.QSXRMYY.example"])
    assert facility is not None and facility.id == "QSXRMYY"
    by_default_name = registry.for_certificate(["HHXWSY"])
    assert by_default_name is not None and by_default_name.id == "HHXWSY"
    assert registry.for_certificate(["nobody"]) is None
    found = registry.for_api_key(KEY)
    assert found is not None and found.id == "QSXRMYY"
    assert registry.for_api_key(KEY + "x") is None


def test_profiles_come_from_the_registry(registry: FacilityRegistry) -> None:
    profile = registry.profile("QSXRMYY")
    assert profile.id_card_types == frozenset({"SFZH"})
    assert (profile.id_card_field, profile.name_component) == ("PID-19", 2)
    assert registry.profile("UNKNOWN").id_card_field is None


def test_open_intake_lets_unknown_facilities_in_but_holds_registered_ones_to_their_addresses(
        tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    registry = FacilityRegistry.load(path, open_intake=True)
    assert registry.authorize("ANYONE", Peer("mllp", "192.0.2.1")) is None
    assert registry.authorize("QSXRMYY", Peer("mllp", "192.0.2.1")) is not None
    assert registry.may_connect(Peer("mllp", "192.0.2.1"))


def test_unauthenticated_http_is_refused(registry: FacilityRegistry) -> None:
    refusal = registry.authorize("QSXRMYY", Peer("http", "10.20.0.7"))
    assert refusal is not None and "authenticated" in refusal.reason


def test_files_from_the_operator_need_a_registered_facility(registry: FacilityRegistry) -> None:
    assert registry.authorize("QSXRMYY", Peer("file")) is None
    assert registry.authorize("NOSUCH", Peer("file")) is not None


def test_may_connect_knows_addresses_some_facility_sends_from(
        registry: FacilityRegistry) -> None:
    assert registry.may_connect(Peer("mllp", "10.20.0.200"))
    assert not registry.may_connect(Peer("mllp", "192.0.2.1"))
    assert not registry.may_connect(Peer("mllp", None))


@pytest.mark.parametrize("text, problem", [
    ("facilities:\n  - id: A\n    api_keys: [plaintext-key]\n", "stored hashed"),
    ("facilities:\n  - id: A\n  - id: A\n", "listed twice"),
    ("facilities:\n  - id: A\n    colour: blue\n", "colour"),
    ("facilities:\n  - id: A\n    mllp_sources: [not-an-address]\n", "mllp_sources"),
    ("facilities: [\n", "not YAML"),
])
def test_a_bad_registry_file_is_a_config_error_naming_the_problem(
        tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "facilities.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        FacilityRegistry.load(path)


def test_new_api_keys_are_random_and_hash_to_the_stored_form() -> None:
    first, second = new_api_key(), new_api_key()
    assert first != second and len(first) > 40
    Facility(id="X", api_keys=[hash_api_key(first)])  # accepted as a stored key
