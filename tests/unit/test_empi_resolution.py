"""The resolver's step, its stored state, and the partitioned stage's routing (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from schemas import catalog, wire
from streams.empi.linker import MasterIndex
from streams.empi.person import person_from_event, updated
from streams.empi.resolution import IdentityResolver, ResolverConfig
from streams.empi.routing import Router, fingerprint, identity
from streams.empi.state import decode_person, encode_person
from tests.unit.test_warehouse_rows import lab_result
from tests.warehouse_events import diagnosis as diagnosis_event

AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
ID_CARD = "11010519491231002X"


def event(facility: str, spid: str, event_type: str = "lab-result", at: datetime = AT,
          **patient: Any) -> dict[str, Any]:
    return {"event_id": f"{facility}-{spid}-{event_type}", "event_type": event_type,
            "facility_id": facility, "source_patient_id": spid, "received_at": at,
            "occurred_at": None, "empi_id": None,
            "patient": {"source_patient_id": spid, **patient}}


ZHANG = {"name": "张三", "sex": "1", "birth_date": date(1949, 12, 31)}


def decision(action: str, n: int = 1, **fields: Any) -> dict[str, Any]:
    return {"decision_id": f"d{n}", "action": action, "decided_by": "dr.zhou",
            "decided_at": AT + timedelta(minutes=n), "reason": None, "pair_id": None,
            "survivor_empi_id": None, "loser_empi_id": None, **fields}


def test_an_event_comes_back_stamped_with_its_empi_id() -> None:
    resolver = IdentityResolver()
    first = resolver.resolve(event("A", "1", id_card_number=ID_CARD, **ZHANG))
    second = resolver.resolve(event("B", "9", id_card_number=ID_CARD, name="张三"))
    assert first.event is not None and second.event is not None
    assert first.event["empi_id"] == second.event["empi_id"]
    assert second.event["event_id"] == "B-9-lab-result"  # the rest of the event untouched
    assert [(c.action, c.decided_by) for c in second.changes] == [("link", "id_card")]


def test_changes_are_numbered_so_the_latest_of_a_record_can_be_told() -> None:
    resolver = IdentityResolver()
    sequences = [c.sequence for n in range(3)
                 for c in resolver.resolve(event("A", str(n), name=f"患者{n}")).changes]
    assert sequences == [1, 2, 3]


def test_an_a40_merges_the_retired_registration_into_the_survivor() -> None:
    resolver = IdentityResolver()
    keep = resolver.resolve(event("A", "1", "patient", **ZHANG)).event
    drop = resolver.resolve(event("A", "2", "patient", name="张三", sex="1")).event
    assert keep is not None and drop is not None and keep["empi_id"] != drop["empi_id"]
    merge = event("A", "1", "patient", **ZHANG)
    merge.update(action="merge", merged_source_patient_id="2")
    result = resolver.resolve(merge)
    assert [(c.source_patient_id, c.action, c.decided_by) for c in result.changes] == [
        ("2", "merge", "facility:A")]
    assert resolver.index.links[("A", "2")] == resolver.index.links[("A", "1")]


def test_a_thin_result_does_not_wipe_what_a_registration_said() -> None:
    resolver = IdentityResolver()
    resolver.resolve(event("A", "1", "patient", id_card_number=ID_CARD, phone="13800138000",
                           **ZHANG))
    assert resolver.take_entries()
    assert resolver.resolve(event("A", "1", name="张三")).changes == []
    kept = resolver.index.records[("A", "1")]
    assert (kept.id_card, kept.phone) == (ID_CARD, "13800138000")
    assert resolver.take_entries() == {}  # nothing changed: nothing to store


def _doubtful() -> tuple[IdentityResolver, str]:
    resolver = IdentityResolver()
    resolver.resolve(event("A", "1", name="刘洋", sex="1", birth_date=date(1988, 1, 1),
                           phone="13600000007"))
    result = resolver.resolve(event("B", "2", name="刘洋", sex="1",
                                    birth_date=date(1988, 1, 10)))
    [pair] = result.reviews
    return resolver, pair.pair_id


def test_accepting_a_review_merges_and_rejecting_keeps_apart() -> None:
    resolver, pair_id = _doubtful()
    accepted = resolver.decide(decision("accept", pair_id=pair_id))
    assert [c.action for c in accepted.changes] == ["merge"]
    assert accepted.changes[0].decided_by == "dr.zhou"
    assert accepted.reviews[0].status == "linked"
    assert resolver.index.links[("A", "1")] == resolver.index.links[("B", "2")]

    resolver, pair_id = _doubtful()
    rejected = resolver.decide(decision("reject", pair_id=pair_id))
    assert rejected.changes == [] and rejected.reviews[0].status == "rejected"
    assert resolver.index.links[("A", "1")] != resolver.index.links[("B", "2")]


@pytest.mark.parametrize(("fields", "refusal"), [
    ({"action": "accept", "pair_id": "nope"}, "no review pair 'nope'"),
    ({"action": "merge", "survivor_empi_id": "x", "loser_empi_id": "x"},
     "two different EMPI ids"),
    ({"action": "merge", "survivor_empi_id": "x", "loser_empi_id": "y"}, "no EMPI id 'x'"),
    ({"action": "unmerge", "survivor_empi_id": "x", "loser_empi_id": "y"},
     "no merge of y into x"),
    ({"action": "split"}, "unknown action 'split'"),
])
def test_a_decision_that_cannot_apply_says_why(fields: dict[str, Any], refusal: str) -> None:
    resolver, _ = _doubtful()
    result = resolver.decide({**decision("accept"), **fields})
    assert result.refused is not None and refusal in result.refused


def test_a_decided_pair_and_a_repeated_decision_change_nothing_more() -> None:
    resolver, pair_id = _doubtful()
    assert resolver.decide(decision("accept", 1, pair_id=pair_id)).changes
    again = resolver.decide(decision("accept", 1, pair_id=pair_id))  # the same decision id
    assert (again.changes, again.refused) == ([], None)
    other = resolver.decide(decision("reject", 2, pair_id=pair_id))
    assert other.refused is not None and "already linked" in other.refused


def test_merge_and_unmerge_by_a_reviewer() -> None:
    resolver, _ = _doubtful()
    left, right = resolver.index.links[("A", "1")], resolver.index.links[("B", "2")]
    merged = resolver.decide(decision("merge", 1, survivor_empi_id=left, loser_empi_id=right))
    assert [(c.empi_id, c.previous_empi_id) for c in merged.changes] == [(left, right)]
    split = resolver.decide(decision("unmerge", 2, survivor_empi_id=left, loser_empi_id=right))
    assert [(c.action, c.empi_id) for c in split.changes] == [("unmerge", right)]
    assert resolver.index.links[("B", "2")] == right


def test_the_stored_state_restores_an_index_that_decides_the_same() -> None:
    resolver, pair_id = _doubtful()
    resolver.resolve(event("C", "3", id_card_number=ID_CARD, **ZHANG))
    left, right = resolver.index.links[("A", "1")], resolver.index.links[("C", "3")]
    resolver.decide(decision("merge", 1, survivor_empi_id=left, loser_empi_id=right))
    resolver.decide(decision("reject", 2, pair_id=pair_id))
    stored = {k: v for k, v in resolver.take_entries().items() if v is not None}

    again = IdentityResolver.restored(sorted(stored.items()))
    index, before = again.index, resolver.index
    assert index.links == before.links and dict(index.members) == dict(before.members)
    assert index.records == before.records and index.separated == before.separated
    assert [(m.seq, m.survivor, m.loser) for m in index.merges] == [
        (m.seq, m.survivor, m.loser) for m in before.merges]
    assert index.reviews[pair_id].status == "rejected"
    assert (index.sequence, again.decided) == (before.sequence, {"d1", "d2"})
    # and it goes on where the first left off: an unmerge of the stored merge works
    split = again.decide(decision("unmerge", 3, survivor_empi_id=left, loser_empi_id=right))
    assert split.changes and split.changes[0].sequence == before.sequence + 1


def test_an_unmerge_deletes_the_stored_merge() -> None:
    resolver, _ = _doubtful()
    left, right = resolver.index.links[("A", "1")], resolver.index.links[("B", "2")]
    resolver.decide(decision("merge", 1, survivor_empi_id=left, loser_empi_id=right))
    assert resolver.take_entries()["m:000000000001"] is not None
    resolver.decide(decision("unmerge", 2, survivor_empi_id=left, loser_empi_id=right))
    assert resolver.take_entries()["m:000000000001"] is None


@pytest.mark.parametrize("patient", [
    {"source_patient_id": "1", "name": "張三", "birth_date": date(1949, 12, 31),
     "id_card_number": "110105491231002", "address": "北京市朝阳区建国路88号",
     "identifiers": [{"value": "X1", "authority": "NHSA", "type": "SS"}]},
    {"source_patient_id": "2", "name": "ZHANG SAN", "phone": "+86 138 0013 8000"},
    {"source_patient_id": "3"},
])
def test_a_record_survives_its_json_form(patient: dict[str, Any]) -> None:
    person = person_from_event("A", patient, AT)
    assert decode_person(encode_person(person)) == person


def test_updated_keeps_what_the_news_leaves_out_and_takes_what_it_says() -> None:
    known = person_from_event("A", {"source_patient_id": "1", "id_card_number": ID_CARD,
                                    "phone": "13800138000", **ZHANG}, AT)
    news = person_from_event("A", {"source_patient_id": "1", "phone": "13900139000"},
                             AT + timedelta(days=1))
    both = updated(known, news)
    assert (both.id_card, both.phone, both.name, both.observed_at) == (
        ID_CARD, "13900139000", known.name, AT + timedelta(days=1))


def test_the_router_sends_news_to_the_resolver_and_stamps_the_rest() -> None:
    router = Router(capacity=10)
    lab = event("A", "1", name="张三")
    assert not router.local_link(b"A|1", lab, None, fingerprint(lab["patient"]))  # no link yet
    # linked, same identity as sent
    assert router.local_link(b"A|1", lab, "E1", fingerprint(lab["patient"]))
    changed = event("A", "1", name="张三", phone="13800138000")
    # identity news
    assert not router.local_link(b"A|1", changed, "E1", fingerprint(changed["patient"]))
    assert router.local_link(b"A|1", changed, "E1", fingerprint(changed["patient"]))
    registration = event("A", "1", "patient", name="张三")
    assert not router.local_link(b"A|1", registration, "E1", fingerprint(registration["patient"]))


def test_the_fingerprint_ignores_key_order_and_sees_every_value() -> None:
    a = {"source_patient_id": "1", "name": "张三", "birth_date": date(1949, 12, 31)}
    b = {"birth_date": date(1949, 12, 31), "name": "张三", "source_patient_id": "1"}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({**a, "birth_date": date(1949, 12, 30)})


def test_the_index_journal_names_every_record_a_merge_moved() -> None:
    index = MasterIndex()
    index.link(person_from_event("A", {"source_patient_id": "1", **ZHANG}, AT), AT)
    index.link(person_from_event("B", {"source_patient_id": "2", "name": "李四"}, AT), AT)
    index.take_journal()
    left, right = index.links[("A", "1")], index.links[("B", "2")]
    index.merge(left, right, reason="test", decided_by="dr.zhou", at=AT)
    journal = index.take_journal()
    assert journal.records == {("B", "2")} and journal.merges == {1}
    assert not index.take_journal()


def test_golden_records_follow_the_changes_and_bury_merged_away_ids() -> None:
    resolver = IdentityResolver(ResolverConfig(trust={"HOSP": 10}))
    first = resolver.resolve(event("HOSP", "1", "patient", phone="13800138000", **ZHANG))
    second = resolver.resolve(event("CLINIC", "2", "patient", name="张三", sex="1",
                                    phone="13911112222", at=AT + timedelta(days=1)))
    golden = resolver.golden_records([*first.changes, *second.changes], AT)
    assert len(golden) == 2 and all(g is not None for g in golden.values())
    left, right = resolver.index.links[("HOSP", "1")], resolver.index.links[("CLINIC", "2")]
    merged = resolver.decide(decision("merge", 1, survivor_empi_id=left, loser_empi_id=right))
    after = resolver.golden_records(merged.changes, AT + timedelta(days=2))
    assert after[right] is None  # a tombstone on the compacted topic
    kept = after[left]
    assert kept is not None and (kept["records"], kept["facilities"]) == (2, ["CLINIC", "HOSP"])
    assert kept["phone"] == "13800138000"  # the trusted hospital's, though older
    assert kept["updated_at"] == AT + timedelta(days=2)


def test_the_model_is_estimated_from_the_index_as_it_grows_and_kept_with_it() -> None:
    from streams.empi.model import DEFAULT_MODEL
    from tests.bench.population import generate

    config = ResolverConfig(train_from=300, model_overrides={"sex": {"other": {"m": 0.05}}})
    resolver = IdentityResolver(config)
    records = generate(250).records
    for n, record in enumerate(records):
        resolver.resolve({"event_id": str(n), "event_type": "patient", "received_at": AT,
                          "facility_id": record.facility_id, "patient": record.patient})
        if n == 298:
            assert resolver.index.model.m == config.model().m  # not yet
    trained = resolver.index.model
    assert trained.m != DEFAULT_MODEL.m and resolver.train_at == 600
    assert trained.m[2][1] == 0.05  # a level set by hand stays as set
    stored = resolver.take_entries()
    again = IdentityResolver.restored(((k, v) for k, v in stored.items() if v is not None),
                                      config)
    assert (again.index.model.m, again.index.model.u) == (trained.m, trained.u)
    assert again.train_at == 600


# --- what the second read found (each failed before its fix) ----------------------------

MING = {"name": "张一鸣", "sex": "1", "birth_date": date(2015, 3, 1),
        "id_card_number": "440305201503010018"}
PENG = {"name": "张一鹏", "sex": "1", "birth_date": date(2015, 3, 1),
        "id_card_number": "440305201503010034"}


def test_a_health_card_never_links_into_an_id_holding_another_id_card() -> None:
    resolver = IdentityResolver()  # twins; one's record carries the other's health card
    ming = resolver.resolve(event("CHILD", "m1", "patient", health_card_number="H1", **MING))
    peng = resolver.resolve(event("CLINIC", "p1", "patient", health_card_number="H1", **PENG))
    assert ming.event is not None and peng.event is not None
    assert peng.event["empi_id"] != ming.event["empi_id"] and peng.reviews
    gains = IdentityResolver()
    gains.resolve(event("CHILD", "m1", "patient", health_card_number="H1", **MING))
    gains.resolve(event("CLINIC", "p1", "patient", **PENG))
    update = gains.resolve(event("CLINIC", "p1", "patient", health_card_number="H1", **PENG))
    assert update.changes == [] and update.reviews
    assert gains.index.links[("CHILD", "m1")] != gains.index.links[("CLINIC", "p1")]


def test_an_id_card_decides_before_a_health_card_and_says_so() -> None:
    resolver = IdentityResolver()
    resolver.resolve(event("CHILD", "m1", "patient", health_card_number="H1", **MING))
    peng = resolver.resolve(event("CLINIC", "p1", "patient", **PENG)).event
    again = resolver.resolve(event("ER", "p9", "patient", health_card_number="H1", **PENG))
    assert again.event is not None and peng is not None
    assert again.event["empi_id"] == peng["empi_id"]
    assert [(c.action, c.decided_by) for c in again.changes] == [("link", "id_card")]


def test_a_shared_household_number_does_not_join_father_and_son() -> None:
    resolver = IdentityResolver()
    home = {"address": "浙江省杭州市西湖区文三路100号3单元501", "phone": "0571-88001234",
            "identifiers": [{"authority": "XNH", "value": "330106001234", "type": "SS"}]}
    resolver.resolve(event("HOSP", "P1", "patient", name="张伟", sex="1",
                           birth_date=date(1960, 3, 5), **home))
    resolver.resolve(event("CLINIC", "P7", "patient", name="张玮", sex="1",
                           birth_date=date(1988, 3, 5), **home))
    assert resolver.index.links[("HOSP", "P1")] != resolver.index.links[("CLINIC", "P7")]


def test_a_rejection_still_holds_after_one_side_was_merged_into_a_third_id() -> None:
    resolver, pair_id = _doubtful()
    resolver.decide(decision("reject", 1, pair_id=pair_id))
    other = resolver.resolve(event("C", "9", "patient", name="王强", sex="1",
                                   birth_date=date(1990, 5, 5))).event
    assert other is not None
    resolver.decide(decision("merge", 2, survivor_empi_id=other["empi_id"],
                             loser_empi_id=resolver.index.links[("B", "2")]))
    resolver.resolve(event("B", "2", "patient", name="刘洋", sex="1",
                           birth_date=date(1988, 1, 1), phone="13600000007"))
    assert resolver.index.links[("A", "1")] != resolver.index.links[("B", "2")]


def test_rejecting_a_pair_already_under_one_id_is_refused() -> None:
    resolver, pair_id = _doubtful()
    left, right = resolver.index.links[("A", "1")], resolver.index.links[("B", "2")]
    resolver.decide(decision("merge", 1, survivor_empi_id=left, loser_empi_id=right))
    refused = resolver.decide(decision("reject", 2, pair_id=pair_id))
    assert refused.refused is not None and "already under one EMPI id" in refused.refused
    assert "d2" not in resolver.decided


def test_an_unmerge_whose_records_moved_on_is_refused_until_the_later_merge_is_undone(
        ) -> None:
    resolver = IdentityResolver()
    ids = [resolver.resolve(event(f, "1", "patient", name=name, sex="1",
                                  birth_date=date(1970 + n, 1, 1))).event
           for n, (f, name) in enumerate((("A", "甲"), ("S", "乙"), ("T", "丙")))]
    a, s, t = (e["empi_id"] for e in ids if e is not None)
    resolver.decide(decision("merge", 1, survivor_empi_id=s, loser_empi_id=a))
    resolver.decide(decision("merge", 2, survivor_empi_id=t, loser_empi_id=s))
    early = resolver.decide(decision("unmerge", 3, survivor_empi_id=s, loser_empi_id=a))
    assert early.refused is not None and "since moved" in early.refused
    assert resolver.decide(decision("unmerge", 4, survivor_empi_id=t, loser_empi_id=s)).changes
    assert resolver.decide(decision("unmerge", 5, survivor_empi_id=s, loser_empi_id=a)).changes
    assert resolver.index.links[("A", "1")] == a


def test_a_demographic_update_republishes_the_golden_record() -> None:
    resolver = IdentityResolver()
    first = resolver.resolve(event("A", "1", "patient", phone="13800000001", **ZHANG))
    resolver.golden_records(first.changes, AT)
    update = resolver.resolve(event("A", "1", "patient", phone="13900000002", **ZHANG,
                                    at=AT + timedelta(days=1)))
    assert update.changes == []
    [golden] = resolver.golden_records(update.changes, AT).values()
    assert golden is not None and golden["phone"] == "13900000002"


def test_a_late_message_does_not_overwrite_newer_data() -> None:
    resolver = IdentityResolver()
    newer = event("A", "1", "patient", phone="13900000002", **ZHANG, at=AT + timedelta(days=1))
    resolver.resolve(newer)
    resolver.resolve(event("A", "1", "patient", phone="13800000001", **ZHANG))  # sent earlier
    assert resolver.index.records[("A", "1")].phone == "13900000002"


def test_a_removed_hand_set_level_is_gone_after_a_restart() -> None:
    from tests.bench.population import generate

    with_override = ResolverConfig(train_from=300,
                                   model_overrides={"sex": {"other": {"m": 0.3}}})
    resolver = IdentityResolver(with_override)
    for n, record in enumerate(generate(200).records):
        resolver.resolve({"event_id": str(n), "event_type": "patient", "received_at": AT,
                          "facility_id": record.facility_id, "patient": record.patient})
    stored = [(k, v) for k, v in resolver.take_entries().items() if v is not None]
    assert resolver.index.model.m[2][1] == 0.3
    plain = IdentityResolver.restored(stored, ResolverConfig(train_from=300))
    assert plain.index.model.m[2][1] != 0.3
    builtin = IdentityResolver.restored(stored, ResolverConfig(train_from=0))
    assert builtin.index.model == ResolverConfig().model()


def test_equal_candidates_are_chosen_alike_in_every_process() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from datetime import date, datetime, UTC\n"
        "from streams.empi.resolution import IdentityResolver\n"
        "r = IdentityResolver()\n"
        "p = dict(name='刘洋', sex='1', birth_date=date(1988, 1, 1), phone='13600000007',"
        " id_card_number='110105198801010016')\n"
        "at = datetime(2026, 12, 4, tzinfo=UTC)\n"
        "def ev(f, s, **x): return {'event_id': f + s, 'event_type': 'patient',"
        " 'facility_id': f, 'received_at': at, 'patient': {'source_patient_id': s, **x}}\n"
        "for f in 'ABCDEFGH': r.resolve(ev(f, '1', **p))\n"
        "res = r.resolve(ev('Z', '9', name='刘洋', sex='1', birth_date=date(1988, 1, 10)))\n"
        "print([q.pair_id for q in res.reviews])\n")
    root = Path(__file__).parents[2]
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True, cwd=root,
                              env={"PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)}
                              ).stdout for seed in (1, 2, 3, 4)}
    assert len(outputs) == 1


def test_a_patient_digests_alike_in_every_event_type() -> None:
    """A patient's orders and results share their record's last-sent identity: the digest
    is of the patient and its type, not of the event's schema (found in review)."""
    lab = lab_result(empi_id=None)
    other = diagnosis_event(patient=lab["patient"], facility_id=lab["facility_id"],
                            source_patient_id=lab["source_patient_id"])
    digests = {identity(wire.decode_framed(wire.encode(catalog.schema(kind), event)))
               for kind, event in (("lab-result", lab), ("diagnosis", other))}
    assert len(digests) == 1
    router, key = Router(), b"F001|P123"
    taken = [router.local_link(key, event, "E1", identity(wire.decode_framed(
                 wire.encode(catalog.schema(event["event_type"]), event))))
             for event in (lab, other, lab, other)]
    assert taken == [False, True, True, True]


def test_the_identity_as_read_changes_with_the_patient_and_nothing_else() -> None:
    lab = catalog.schema("lab-result")
    event = lab_result(empi_id=None)
    base = identity(wire.decode_framed(wire.encode(lab, event)))
    assert base == identity(wire.decode_framed(wire.encode(lab, {**event, "value": "7.1"})))
    for patient in ({**event["patient"], "phone": "13900000000"},
                    {**event["patient"], "birth_date": date(1949, 12, 30)}):
        assert base != identity(wire.decode_framed(wire.encode(lab, {**event,
                                                                     "patient": patient})))
