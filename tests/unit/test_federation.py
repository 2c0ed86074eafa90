"""Federation's pure parts: the rules of what leaves, de-identification, the federation
file, how the forwarder answers an upstream's refusals and size limits, report files,
and how an upstream's code map meets this hub's."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastavro import parse_schema, schemaless_writer
from prometheus_client import CollectorRegistry

from connectors.facilities import Facility
from hutong.errors import ConfigError, DeliveryError, WireFormatError
from hutong.federation.config import Federation, load_federation
from hutong.federation.downlink import reconcile
from hutong.federation.forwarder import HttpForwarder, ReportForwarder
from hutong.federation.registry_down import Marks, registry_part
from hutong.federation.rules import (
    DROPPED,
    KEPT,
    PSEUDONYMISED,
    CodePattern,
    Rule,
    decide,
    deidentified,
)
from hutong.keys import keyed_pseudonym
from hutong.metrics import Metrics
from schemas import catalog, wire
from sinks.base import Decoded
from streams.terminology.maps import MapEntry

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
RULES = (Rule(name="HIV检测", action="withhold", event_types=("lab-result",),
              codes=("56888-1",)),
         Rule(name="传染病", codes=("A00-B99", "U07*")),
         Rule(name="精神卫生", codes=("F00-F99",)))


def pseudonymise(value: str) -> str:
    return keyed_pseudonym(b"d" * 32, value)


def patient() -> dict[str, Any]:
    return {"source_patient_id": "MRN-1", "name": "张三", "sex": "M",
            "id_card_number": "11010519491231002X", "health_card_number": "H1",
            "phone": "13800000000", "address": "某街1号", "birth_date": date(1949, 12, 31),
            "identifiers": [{"value": "MRN-1", "type": "MR", "authority": "QSXRMYY"}]}


def diagnosis(code: str, standard: str | None = None) -> dict[str, Any]:
    return {"event_id": "e-" + code, "event_type": "diagnosis", "facility_id": "QSXRMYY",
            "source_system": "HIS", "message_control_id": "M1", "source_patient_id": "MRN-1",
            "empi_id": "E-1", "occurred_at": None, "received_at": AT, "patient": patient(),
            "quality_warnings": [], "map_version": None,
            "codes": [{"field": "diagnosis_code", "system": "ICD-10", "code": standard,
                       "display": None}] if standard else [],
            "unmapped": [], "set_id": 1, "diagnosis_code": code, "diagnosis_system": "I10",
            "diagnosis_name": None, "diagnosis_type": None, "priority": 1,
            "diagnosed_at": None, "clinician_id": None, "clinician_name": None,
            "visit_number": None, "practitioner_id": None, "practitioner_status": None}


@pytest.mark.parametrize(("pattern", "code", "matches"), [
    ("A00-B99", "A15.001", True), ("A00-B99", "B99", True), ("A00-B99", "C00", False),
    ("F00-F99", "F32.900", True), ("F00-F99", "f20", True), ("F00-F99", "G30", False),
    ("F00-F99", "F", False), ("U07*", "U07.1", True), ("U07*", "U08", False),
    ("56888-1", "56888-1", True), ("56888-1", "56888-10", False),
])
def test_code_patterns(pattern: str, code: str, matches: bool) -> None:
    assert CodePattern(pattern).matches(code) is matches


def test_a_range_needs_two_categories() -> None:
    with pytest.raises(ValueError, match="both ends"):
        Rule(name="bad", codes=("A00-B9",))
    with pytest.raises(ValueError, match="unknown event type"):
        Rule(name="bad", event_types=("lab",))


@pytest.mark.parametrize(("event", "outcome"), [
    (diagnosis("F32.900"), ("deidentify", "精神卫生")),
    (diagnosis("LOCAL-7", standard="A15.001"), ("deidentify", "传染病")),  # standard code
    (diagnosis("I10"), ("send", None)),
    ({"event_type": "lab-result", "test_code": "56888-1", "codes": []}, ("withhold", "HIV检测")),
    ({"event_type": "order", "codes": [{"code": "56888-1"}]}, ("send", None)),  # lab only
])
def test_the_first_matching_rule_decides(event: dict[str, Any],
                                          outcome: tuple[str, str | None]) -> None:
    assert decide(event, RULES) == outcome


def test_deidentified_keeps_no_one_and_still_fits_its_schema() -> None:
    event = diagnosis("F32.900")
    out = deidentified(event, pseudonymise, "精神卫生")
    p = out["patient"]
    assert (p["name"], p["id_card_number"], p["health_card_number"], p["phone"],
            p["address"], p["birth_date"], out["empi_id"]) == (None,) * 7
    assert out["source_patient_id"] == p["source_patient_id"] == pseudonymise("MRN-1")
    assert p["identifiers"] == [{"value": pseudonymise("MRN-1"), "type": "PSEUDONYM",
                                 "authority": None}]
    assert out["quality_warnings"] == ["de-identified for the upstream platform (精神卫生)"]
    assert event["patient"]["name"] == "张三"  # the input is not changed
    text = json.dumps(out, default=str, ensure_ascii=False)
    assert "张三" not in text and "MRN-1" not in text and "1949" not in text
    assert wire.check(catalog.schema("diagnosis"), out) is None


def test_a_deidentified_event_keeps_nothing_that_ties_it_to_the_identified_ones() -> None:
    event = {**diagnosis("F32.900"), "message_control_id": "CNA01", "visit_number": "ZY2024001",
             "received_at": datetime(2026, 12, 5, 9, 31, 7, tzinfo=UTC)}
    out = deidentified(event, pseudonymise, "精神卫生")
    assert out["message_control_id"] == pseudonymise("CNA01")
    assert out["visit_number"] == pseudonymise("ZY2024001")
    assert out["received_at"] == datetime(2026, 12, 5, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    assert out["event_id"] == event["event_id"]  # the upstream collapses repeats on it
    report = deidentified({"event_type": "imaging-report", "patient": patient(),
                           "source_patient_id": "MRN-1", "report_text": "张三：肺部阴影",
                           "impression": "x", "accession_number": "A1"}, pseudonymise, "r")
    assert (report["report_text"], report["impression"]) == (None, None)
    lab = deidentified({"event_type": "lab-result", "patient": patient(),
                        "source_patient_id": "MRN-1", "value": "张三 阳性",
                        "value_numeric": None}, pseudonymise, "r")
    assert lab["value"] is None


def test_every_field_of_every_event_schema_is_decided_for_deidentification() -> None:
    assert not (KEPT & DROPPED) and not (KEPT & PSEUDONYMISED) and not (DROPPED & PSEUDONYMISED)
    for kind in catalog.EVENT_TYPES:
        fields = {f["name"] for f in catalog.schema(kind).parsed["fields"]}
        assert fields <= KEPT | DROPPED | PSEUDONYMISED, (kind, fields - KEPT - DROPPED
                                                           - PSEUDONYMISED)


def test_a_rule_may_take_every_event_of_a_facility() -> None:
    rule = Rule(name="精神专科医院", facilities=("JSWSZX",))
    assert decide({"event_type": "encounter", "facility_id": "JSWSZX"}, (rule,))[0] == \
        "deidentify"
    assert decide({"event_type": "encounter", "facility_id": "QSXRMYY"}, (rule,))[0] == "send"
    order = {"event_type": "order", "item_code": "56888-1", "codes": []}
    assert decide(order, (Rule(name="HIV", codes=("56888-1",)),))[0] == "deidentify"


def write_federation(tmp_path: Path, up: str) -> Path:
    path = tmp_path / "federation.yaml"
    path.write_text(f"platform_id: QSX-PLATFORM\nup:\n{up}", encoding="utf-8")
    return path


def test_the_federation_file_names_its_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs api_key or api_key_file"):
        load_federation(write_federation(tmp_path, "  url: https://city/x\n"))
    with pytest.raises(ConfigError, match="mode kafka needs bootstrap"):
        load_federation(write_federation(tmp_path, "  mode: kafka\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_federation(write_federation(tmp_path, "  url: https://city/x\n"
                                                   f"  api_key_file: {tmp_path}/none\n"))
    (tmp_path / "key").write_text("htk_secret\n")
    loaded = load_federation(write_federation(
        tmp_path, f"  url: https://city/x\n  api_key_file: {tmp_path}/key\n"
                  "  event_types: [lab-result]\n"
                  "  rules: [{name: 精神卫生, codes: [F00-F99]}]\n"))
    assert loaded.up is not None and loaded.up.key() == "htk_secret"
    assert loaded.up.topics == ["hutong.std.lab-result"]


def forwarder(answer: Callable[[httpx.Request], httpx.Response],
              **up: Any) -> tuple[HttpForwarder, Metrics]:
    federation = Federation.model_validate({"platform_id": "QSX-PLATFORM", "up": {
        "url": "https://city.example/api/v1/ingest/federation", "api_key": "htk_k",
        "rules": [r.model_dump() for r in RULES], **up}})
    metrics = Metrics(CollectorRegistry())
    client = httpx.Client(transport=httpx.MockTransport(answer))
    return HttpForwarder(federation, metrics, pseudonymise, client=client), metrics


def items(*events: dict[str, Any]) -> list[Decoded]:
    return [Decoded(f"hutong.std.{e['event_type']}", 0, n, e["event_type"], e)
            for n, e in enumerate(events)]


def posted(request: httpx.Request) -> list[dict[str, Any]]:
    events = json.loads(request.content)["events"]
    return [{**e, "event": wire.decode(base64.b64decode(e["value"]))[1]} for e in events]


def test_what_leaves_and_how_it_is_counted() -> None:
    seen: list[list[dict[str, Any]]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer htk_k"
        seen.append(posted(request))
        return httpx.Response(202, json={"accepted": len(seen[-1])})

    forward, metrics = forwarder(upstream)
    assert forward.write(items(diagnosis("I10"), diagnosis("F32.900"))) == []
    [batch] = seen
    assert [e["topic"] for e in batch] == ["hutong.events.diagnosis"] * 2
    plain, hidden = (e["event"] for e in batch)
    assert plain["patient"]["name"] == "张三" and plain["empi_id"] is None
    assert hidden["patient"]["name"] is None
    assert base64.b64decode(batch[1]["key"]).decode() == f"QSXRMYY|{pseudonymise('MRN-1')}"
    value = metrics.registry.get_sample_value
    assert value("hutong_federation_events_total", {"outcome": "sent"}) == 1
    assert value("hutong_federation_events_total", {"outcome": "deidentified"}) == 1


def test_refused_events_are_rejected_and_the_rest_sent_again() -> None:
    calls: list[int] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        events = posted(request)
        calls.append(len(events))
        bad = [i for i, e in enumerate(events) if e["event"]["diagnosis_code"] == "BAD"]
        if bad:
            return httpx.Response(422, json={"refused": [{"index": i, "reason": "no"}
                                                         for i in bad]})
        return httpx.Response(202, json={})

    forward, _ = forwarder(upstream)
    rejected = forward.write(items(diagnosis("I10"), diagnosis("BAD"), diagnosis("J18")))
    assert [(r.item.offset, r.reason) for r in rejected] == [(1, "upstream refused it: no")]
    assert calls == [3, 2]


def test_a_too_large_batch_is_halved_and_an_unreachable_upstream_retried() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(413) if len(posted(request)) > 1 else httpx.Response(202)

    forward, _ = forwarder(upstream)
    assert forward.write(items(*(diagnosis(f"I{n}") for n in range(10, 15)))) == []

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    forward, metrics = forwarder(down)
    with pytest.raises(DeliveryError, match="unreachable"):
        forward.write(items(diagnosis("I10")))
    assert metrics.registry.get_sample_value("hutong_federation_failures_total") == 1


def test_withheld_events_never_leave() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing should be posted")

    forward, metrics = forwarder(upstream)
    lab = {**diagnosis("x"), "event_type": "lab-result", "test_code": "56888-1"}
    assert forward.write(items(lab)) == []
    assert metrics.registry.get_sample_value("hutong_federation_events_total",
                                             {"outcome": "withheld"}) == 1


def test_report_files_are_written_per_period_with_a_manifest(tmp_path: Path) -> None:
    now = [1_764_900_000.0]  # within one hour
    federation = Federation.model_validate({"platform_id": "QSX-PLATFORM", "up": {
        "mode": "report", "report_dir": str(tmp_path), "report_every_s": 3600,
        "rules": [r.model_dump() for r in RULES]}})
    report = ReportForwarder(federation, Metrics(CollectorRegistry()), pseudonymise,
                             clock=lambda: now[0])
    try:
        report.write(items(diagnosis("I10"), diagnosis("F32.900")))
        [part] = tmp_path.glob("*.part")
        assert part.read_bytes().count(b"\n") == 2
        now[0] += 3600
        report.write(items(diagnosis("J18")))  # the next period: the first is finished
    finally:
        report.close()
    [manifest_path] = tmp_path.glob("*.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    lines = (tmp_path / manifest["file"]).read_text(encoding="utf-8").splitlines()
    assert manifest["events"] == 2 and len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["topic"] == "hutong.events.diagnosis" and first["event"]["patient"]["name"]
    assert second["event"]["patient"]["name"] is None
    assert len(list(tmp_path.glob("*.part"))) == 1  # the new period's


def test_a_restart_within_a_period_never_writes_over_a_finished_report(
        tmp_path: Path) -> None:
    now = [1_764_900_000.0]
    federation = Federation.model_validate({"platform_id": "QSX-PLATFORM", "up": {
        "mode": "report", "report_dir": str(tmp_path), "report_every_s": 3600}})

    def started() -> ReportForwarder:
        return ReportForwarder(federation, Metrics(CollectorRegistry()), pseudonymise,
                               clock=lambda: now[0])

    first = started()
    first.write(items(diagnosis("I10"), diagnosis("J18")))
    first.close()  # a crash: the offsets of both were committed
    second = started()  # the same period: the first file is finished, a new one begun
    second.write(items(diagnosis("K35")))
    now[0] += 3600
    second.write(items(diagnosis("E11")))
    second.close()
    counts = sorted(json.loads(p.read_text())["events"] for p in tmp_path.glob("*.manifest.json"))
    assert counts == [1, 2]  # nothing lost
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_part_file_left_by_a_crash_is_finished_at_the_next_start(tmp_path: Path) -> None:
    (tmp_path / "QSX-PLATFORM-20261205T080000Z.ndjson.part").write_bytes(
        b'{"topic":"a","event":{}}\n{"topic":"b","ev')  # a torn last line
    federation = Federation.model_validate({"platform_id": "QSX-PLATFORM", "up": {
        "mode": "report", "report_dir": str(tmp_path)}})
    ReportForwarder(federation, Metrics(CollectorRegistry()), pseudonymise).close()
    manifest = json.loads(
        (tmp_path / "QSX-PLATFORM-20261205T080000Z.manifest.json").read_text())
    assert manifest["events"] == 1 and manifest["period_start"] == "20261205T080000Z"


def entry(code: str, *, origin: str | None = None, version: str = "v1",
          deleted: bool = False) -> MapEntry:
    return MapEntry("QSXRMYY", "lab-test", "K", "LOINC", code, None, version, AT, deleted,
                    origin)


@pytest.mark.parametrize(("upstream", "local", "outcome"), [
    (entry("2823-3"), None, "apply"),  # new here
    (entry("2823-3", deleted=True), None, "same"),  # nothing to withdraw
    (entry("2823-3", version="v2"), entry("2823-3", origin="CITY"), "apply"),  # new version
    (entry("2823-3"), entry("2823-3", origin="CITY"), "same"),
    (entry("2823-3", deleted=True), entry("2823-3", origin="CITY"), "apply"),  # withdrawn
    (entry("2823-3"), entry("2823-3", version="local-3"), "apply"),  # ours agrees: adopted
    (entry("2823-3"), entry("2823-3", origin="OLD-NAME"), "apply"),  # from above, renamed
    (entry("6298-4"), entry("2823-3"), "conflict"),  # ours says otherwise: kept
    (entry("6298-4", deleted=True), entry("2823-3"), "same"),  # never withdraws ours
])
def test_how_an_upstream_map_meets_this_hubs(upstream: MapEntry, local: MapEntry | None,
                                              outcome: str) -> None:
    assert reconcile(upstream, local, "CITY") == outcome


def test_registry_fields_go_down_and_how_a_facility_connects_never(tmp_path: Path) -> None:
    city = Facility(id="QSXRMYY", name="县医院", level="二级甲等", api_keys=["sha256:" + "0" * 64],
                    mllp_sources=["10.0.0.0/8"])
    ours = Facility(id="QSXRMYY", name="县医院", level="二级甲等", mllp_sources=["127.0.0.1"])
    assert registry_part(city) == registry_part(ours)  # keys and addresses are not compared
    assert b"sha256" not in registry_part(city) and b"10.0.0.0" not in registry_part(city)
    marks = Marks(tmp_path / "federation" / "marks.json")
    marks.put("QSXRMYY", "abc")
    assert Marks(tmp_path / "federation" / "marks.json").get("QSXRMYY") == "abc"  # kept
    assert Marks(tmp_path / "none.json").get("QSXRMYY") is None


def test_an_event_written_by_a_hub_on_another_release_is_read_by_schema_resolution() -> None:
    current = catalog.schema("diagnosis")
    older = json.loads(current.schema_str)
    older["fields"] = [f for f in older["fields"]
                       if f["name"] not in ("practitioner_id", "practitioner_status")]
    writer = parse_schema(older, _write_hint=False)
    event = {k: v for k, v in diagnosis("I10").items()
             if k not in ("practitioner_id", "practitioner_status")}
    body = BytesIO()
    schemaless_writer(body, writer, event)
    framed = b"\x00\x00\x00\x00\x08" + body.getvalue()
    with pytest.raises(WireFormatError):
        wire.decode(framed)  # read as if written with this release's schema: wrong
    read = wire.decode_written_with(framed, writer, current)
    assert read["diagnosis_code"] == "I10" and read["practitioner_status"] is None
