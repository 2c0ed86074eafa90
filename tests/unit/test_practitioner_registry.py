"""The practitioner registry's pure parts: the record and its checks, the file (YAML and
CSV), what the file publishes, the index that finds an event's clinician, and the link
the stream worker sets on each event type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hutong.errors import ConfigError
from hutong.keys import keyed_pseudonym
from hutong.registry.practitioners import (
    FILE,
    PRACTITIONERS_TOPIC,
    Practitioner,
    PractitionerFeed,
    PractitionerIndex,
    PractitionerRecord,
    changed,
    file_changes,
    load_practitioners,
    record_of,
)
from schemas import wire
from schemas.registry import EMBEDDED
from streams.practitioners import CLINICIAN_FIELDS, UnknownPractitioner, link_practitioner
from streams.terminology.tally import Tally

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
KEY = b"k" * 32
ID_NUMBER = "11010519491231002X"


def pseudonymise(number: str) -> str:
    return keyed_pseudonym(KEY, number)


def doctor(local_id: str = "D100", facility: str = "QSXRMYY", **more: Any) -> Practitioner:
    return Practitioner.model_validate({"facility_id": facility, "local_id": local_id,
                                        "name": "王医生", **more})


def record(practitioner: Practitioner, version: int = 1, by: str = "ops") -> PractitionerRecord:
    return record_of(practitioner, pseudonymise, version=version, at=AT, by=by, reason=None)


@pytest.mark.parametrize(("given", "problem"), [
    ({"id_number": "1101051949123100"}, "id_number"),  # 16 characters
    ({"id_number": "11010519491331002X"}, "id_number"),  # month 13
    ({"certificate_number": "12-34"}, "certificate_number"),
    ({"role": "surgeon"}, "role must be one of"),
    ({"local_id": "D|1"}, "local_id"),  # the key's separator
    ({"facility_id": ""}, "facility_id"),
    ({"name": ""}, "name"),
    ({"status": "gone"}, "status"),
    ({"salary": 1}, "salary"),  # a field the registry does not have
])
def test_what_a_record_may_not_say(given: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        doctor(**given)
    assert problem in str(caught.value)
    assert "1101051949" not in str(caught.value).split("input_value")[0]


def test_numbers_are_normalised_and_roles_read_in_english_too() -> None:
    p = doctor(id_number=" 11010519491231002x ", certificate_number=" 110620521000123 ",
               role="Nurse")
    assert (p.id_number, p.certificate_number, p.role) == (ID_NUMBER, "110620521000123", "护士")
    assert p.key == "QSXRMYY|D100" and p.warnings == ()
    assert doctor(id_number="110105491231002").id_number == ID_NUMBER  # 15 digits upgraded
    assert doctor(id_number="110105194912310021").warnings == (
        "id_number: the GB 11643 check character does not match",)  # kept, warned


def test_the_record_round_trips_the_topic_and_never_shows_the_id_number() -> None:
    held = record(doctor(id_number=ID_NUMBER, certificate_number="110620521000123",
                         department="心内科", title="主治医师"))
    entry = EMBEDDED.for_topic(PRACTITIONERS_TOPIC)
    _, decoded = wire.decode(wire.encode(entry, held.to_record()))
    assert PractitionerRecord.from_record(decoded) == held
    assert decoded["practitioner_id"] == "QSXRMYY|D100"
    assert held.id_pseudonym == pseudonymise(ID_NUMBER) and held.id_pseudonym.startswith("ps_")
    shown = held.shown()
    assert "id_number" not in shown and ID_NUMBER not in str(shown)
    assert shown["id_pseudonym"] == held.id_pseudonym


def test_a_yaml_file_and_a_csv_file_say_the_same(tmp_path: Path) -> None:
    yaml_file = tmp_path / "practitioners.yaml"
    yaml_file.write_text(
        "practitioners:\n"
        f"  - {{facility_id: QSXRMYY, local_id: D100, name: 王医生, id_number: '{ID_NUMBER}',\n"
        "     certificate_number: '110620521000123', department: 心内科, role: doctor}\n"
        "  - {facility_id: QSXRMYY, local_id: N7, name: 李护士, role: 护士}\n",
        encoding="utf-8")
    csv_file = tmp_path / "practitioners.csv"
    csv_file.write_text(
        "\ufefffacility_id,local_id,name,id_number,certificate_number,department,role,title\n"
        f"QSXRMYY,D100,王医生,{ID_NUMBER},110620521000123,心内科,doctor,\n"
        "QSXRMYY,N7,李护士,,,,护士,\n", encoding="utf-8")
    assert load_practitioners(yaml_file) == load_practitioners(csv_file)
    assert [p.key for p in load_practitioners(csv_file)] == ["QSXRMYY|D100", "QSXRMYY|N7"]


@pytest.mark.parametrize(("text", "problem"), [
    ("facility_id,local_id,name,role\nQSXRMYY,D1,王,surgeon\n", "line 2: role: Value error"),
    ("facility_id,local_id,name,id_number\nQSXRMYY,D1,王,123\n", "line 2: id_number"),
    ("facility_id,local_id,name\nQSXRMYY,D1,王\nQSXRMYY,D1,李\n", "entry 2 repeats"),
    ("facility_id,local_id,name,grade\nQSXRMYY,D1,王,7\n", "grade"),
])
def test_a_bad_file_names_the_line_and_field_never_the_value(tmp_path: Path, text: str,
                                                              problem: str) -> None:
    path = tmp_path / "staff.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_practitioners(path)
    assert problem in str(caught.value) and str(path) in str(caught.value)
    assert "123" not in str(caught.value).replace(str(path), "")


def test_what_the_file_publishes() -> None:
    file_v1 = [doctor("D100", department="心内科"), doctor("D200")]
    first = file_changes(file_v1, {}, AT, pseudonymise)
    assert [(r.practitioner_id, r.version, r.changed_by) for r in first] == [
        ("QSXRMYY|D100", 1, FILE), ("QSXRMYY|D200", 1, FILE)]
    published = {r.practitioner_id: r for r in first}
    assert file_changes(file_v1, published, AT, pseudonymise) == []  # unchanged: nothing

    # an admin moves D100 to another department through the API; the file is unchanged
    moved = changed(published["QSXRMYY|D100"], doctor("D100", department="急诊科"),
                    pseudonymise, by="ops", reason="调岗")
    published["QSXRMYY|D100"] = moved
    assert moved.file_digest == first[0].file_digest
    assert file_changes(file_v1, published, AT, pseudonymise) == []  # the API change stands

    # the file then sets D100's title (not its department) and drops D200
    later = file_changes([doctor("D100", department="心内科", title="主治医师")], published,
                         AT + timedelta(days=1), pseudonymise)
    assert [(r.practitioner_id, r.version, r.practitioner.status) for r in later] == [
        ("QSXRMYY|D100", 3, "active"), ("QSXRMYY|D200", 2, "retired")]
    assert later[0].practitioner.title == "主治医师"
    assert later[0].practitioner.department == "心内科"  # the file's entry sets it again


def test_the_index_finds_by_staff_id_then_certificate() -> None:
    cert = "110620521000123"
    home = record(doctor("D100", certificate_number=cert))
    visiting = record(doctor("X9", facility="XZWSY", certificate_number=cert))
    index = PractitionerIndex([home, visiting])
    assert index.find("QSXRMYY", "D100") == (home, "staff-id")
    assert index.find("XZWSY", cert) == (visiting, "certificate")  # the one at that facility
    assert index.find("OTHER", cert.lower()) == (home, "certificate")  # lowest id elsewhere
    assert index.find("XZWSY", "D100") is None  # staff ids are per facility
    index.put(record(doctor("D100", certificate_number="999999"), version=2))  # cert changed
    assert index.find("OTHER", cert) == (visiting, "certificate")
    assert index.find("OTHER", "999999")[0].version == 2  # type: ignore[index]
    assert index.remove("XZWSY|X9") and not index.remove("XZWSY|X9")
    assert index.find("OTHER", cert) is None and len(index) == 1


def test_the_feed_takes_records_and_tombstones() -> None:
    feed = PractitionerFeed({})
    held = record(doctor(certificate_number="110620521000123"))
    assert feed.apply(held.to_record())
    assert feed.index.find("QSXRMYY", "110620521000123") == (held, "certificate")
    assert not feed.apply({"practitioner_id": "QSXRMYY|D100", "name": "newer shape"})
    assert feed.index.find("QSXRMYY", "D100") is None  # unreadable: nobody, not the old one
    feed.put(held)
    newer = record(doctor(department="急诊科"), version=2)
    feed.put(newer)  # this process's API write, before the topic hands over version 1 again
    feed.put(held)
    assert feed.records["QSXRMYY|D100"] == newer
    assert feed.remove(b"QSXRMYY|D100") and feed.records == {}


EVENTS = [(kind, fields) for kind, fields in CLINICIAN_FIELDS.items()]


@pytest.mark.parametrize(("event_type", "fields"), EVENTS)
def test_every_event_type_links_its_clinician(event_type: str,
                                              fields: tuple[str, str | None, str]) -> None:
    id_field, name_field, role = fields
    index = PractitionerIndex([record(doctor("D100")),
                               record(doctor("D300", status="retired"))])
    base = {"event_type": event_type, "facility_id": "QSXRMYY"}
    known = {**base, id_field: "D100"}
    assert link_practitioner(known, index) is None
    assert (known["practitioner_id"], known["practitioner_status"]) == ("QSXRMYY|D100", "known")
    retired = {**base, id_field: "D300"}
    assert link_practitioner(retired, index) is None
    assert retired["practitioner_status"] == "retired"
    nobody = {**base, id_field: None}
    assert link_practitioner(nobody, index) is None
    assert (nobody["practitioner_id"], nobody["practitioner_status"]) == (None, None)
    stranger = {**base, id_field: "D999", **({name_field: "赵医生"} if name_field else {})}
    hit = link_practitioner(stranger, index)
    assert (stranger["practitioner_id"], stranger["practitioner_status"]) == (None, "unknown")
    assert hit == UnknownPractitioner("QSXRMYY", "D999", "赵医生" if name_field else None,
                                      role, event_type)


def test_a_patient_event_names_nobody() -> None:
    event = {"event_type": "patient", "facility_id": "QSXRMYY"}
    assert link_practitioner(event, PractitionerIndex()) is None
    assert event["practitioner_status"] is None


def test_unknown_clinicians_are_counted_per_batch() -> None:
    tally: Tally[UnknownPractitioner] = Tally()
    hit = UnknownPractitioner("QSXRMYY", "D999", None, "ordering", "lab-result")
    tally.add([hit], AT)
    tally.add([hit], AT - timedelta(minutes=5))
    [(key, counted)] = tally.drain()
    assert key == b"QSXRMYY|D999" and len(tally) == 0
    assert (counted["count"], counted["first_seen"], counted["last_seen"]) == (
        2, AT - timedelta(minutes=5), AT)
    entry = EMBEDDED.for_topic("hutong.registry.unknown-practitioners")
    assert wire.decode(wire.encode(entry, counted))[1] == counted
