"""The hub's metrics: what the intake counts, and the stream workers' files merged in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values

from connectors.facilities import Facility, FacilityRegistry, Peer
from hutong.metrics import Metrics, StageMetrics
from hutong.metrics.children import merge_families, prepare_dir
from hutong.metrics.labels import MESSAGE_TYPES, STAGES, stream_stage
from producers.intake import Intake
from streams.topology import INPUT_TOPICS

from .test_intake import NOW, ORU, Recorder


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_intake_counts_per_registered_facility_and_unregistered_for_the_rest() -> None:
    metrics = Metrics()
    registry = FacilityRegistry([Facility(id="FAC1", mllp_sources=["127.0.0.0/8"])])
    intake = Intake(Recorder(), metrics, registry=registry,  # type: ignore[arg-type]
                    clock=lambda: NOW)
    good = ORU.format(set_id=1).encode()
    bad = ORU.format(set_id=99999999999).encode()  # AE 102: OBX-1 beyond an Avro int
    stranger = good.replace(b"|FAC1|", b"|EVIL|")

    async def go() -> None:
        for payload in (good, bad, stranger):
            await intake.receive(payload, Peer("mllp", "127.0.0.1"))
        intake.refuse_connection(Peer("http", "10.9.9.9"), "API key unknown")

    asyncio.run(go())
    facility = "hutong_facility_messages_total"
    assert sample(metrics, facility, facility="FAC1", message_type="ORU", outcome="AA") == 1
    assert sample(metrics, facility, facility="FAC1", message_type="ORU", outcome="AE") == 1
    assert sample(metrics, facility, facility="unregistered", message_type="ORU",
                  outcome="AR") == 1
    rejected = "hutong_facility_rejected_total"
    assert sample(metrics, rejected, facility="FAC1", reason="validation") == 1
    assert sample(metrics, rejected, facility="unregistered", reason="unauthorised") == 2
    assert sample(metrics, "hutong_facility_bytes_total", facility="FAC1",
                  transport="mllp") == len(good) + len(bad)
    assert sample(metrics, "hutong_facility_last_message_timestamp_seconds", facility="FAC1") > 0
    assert sample(metrics, "hutong_facility_last_message_timestamp_seconds",
                  facility="unregistered") == 0  # refused messages are not a sign of life
    assert sample(metrics, "hutong_stage_events_total", stage="producer", direction="in") == 3
    assert sample(metrics, "hutong_stage_events_total", stage="producer", direction="out") == 1
    assert sample(metrics, "hutong_stage_latency_seconds_count", stage="producer") == 3
    assert sample(metrics, "hutong_ack_latency_seconds_count", transport="mllp") == 3
    # the existing names go on
    assert sample(metrics, "hutong_messages_received_total", transport="mllp",
                  event_type="oru", outcome="AA") == 1


def test_counts_are_exact_at_every_scrape_and_never_counted_twice() -> None:
    metrics = Metrics()
    send = dict(transport="mllp", facility="F", message_type="ADT", event_type="patient",
                reason=None, size=10, events=1, seconds=0.01)
    metrics.message(outcome="AA", **send)  # type: ignore[arg-type]
    assert sample(metrics, "hutong_facility_messages_total", facility="F", message_type="ADT",
                  outcome="AA") == 1
    assert sample(metrics, "hutong_facility_messages_total", facility="F", message_type="ADT",
                  outcome="AA") == 1
    metrics.message(outcome="AA", **send)  # type: ignore[arg-type]
    assert sample(metrics, "hutong_facility_bytes_total", facility="F", transport="mllp") == 20


def test_process_health_and_components_are_exported() -> None:
    metrics = Metrics()
    metrics.watch_components(lambda: {"kafka": "ok", "sink": "down"})
    text = generate_latest(metrics.registry).decode()
    assert 'hutong_component_up{component="kafka"} 1.0' in text
    assert 'hutong_component_up{component="sink"} 0.0' in text
    assert "process_cpu_seconds_total" in text and "python_info" in text


def test_families_of_one_name_are_merged_into_one() -> None:
    hub, worker = CollectorRegistry(), CollectorRegistry()
    StageMetrics(hub).passed("producer", 3, 2, 0.01)
    StageMetrics(worker).passed("empi", 2, 2, 0.2)
    merged = {f.name: f for f in merge_families(hub.collect(), worker.collect())}
    stages = {(s.labels["stage"], s.labels["direction"]) for s in
              merged["hutong_stage_events"].samples if s.name.endswith("_total")}
    assert stages == {("producer", "in"), ("producer", "out"), ("empi", "in"), ("empi", "out")}


def test_a_workers_files_reach_the_hubs_metrics(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker (here: this process pretending to be pid 4242) writes prometheus_client's
    multiprocess files; the hub's registry shows them beside its own stage counts."""
    folder = prepare_dir(tmp_path / "metrics")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 4242))
    worker = StageMetrics(CollectorRegistry())
    worker.passed("empi", 5, 4, 0.3)
    worker.dead_letters.labels("alerts").inc()
    monkeypatch.undo()

    metrics = Metrics()
    metrics.stages.passed("warehouse-sink", 4, 4, 0.5)
    metrics.dead_letters.labels("producer").inc()
    metrics.children.path = folder
    assert sample(metrics, "hutong_stage_events_total", stage="empi", direction="out") == 4
    assert sample(metrics, "hutong_stage_events_total", stage="warehouse-sink",
                  direction="in") == 4
    assert sample(metrics, "hutong_stage_latency_seconds_count", stage="empi") == 1
    assert sample(metrics, "hutong_dead_letters_total", stage="alerts") == 1
    assert sample(metrics, "hutong_dead_letters_total", stage="producer") == 1
    text = generate_latest(metrics.registry).decode()
    assert text.count("# TYPE hutong_stage_events_total counter") == 1
    assert text.count("# TYPE hutong_dead_letters_total counter") == 1

    prepare_dir(folder)  # a new hub run starts from nothing
    assert sample(metrics, "hutong_stage_events_total", stage="empi", direction="out") == 0


#: The names the chart's rules and dashboard are written against (docs/operations.md).
PROMISED = {
    "hutong_facility_messages_total": "counter", "hutong_facility_rejected_total": "counter",
    "hutong_facility_bytes_total": "counter",
    "hutong_facility_last_message_timestamp_seconds": "gauge",
    "hutong_ack_latency_seconds": "histogram", "hutong_stage_events_total": "counter",
    "hutong_stage_latency_seconds": "histogram", "hutong_dead_letters_total": "counter",
    "hutong_consumer_lag": "gauge", "hutong_empi_links_total": "counter",
    "hutong_empi_review_backlog": "gauge", "hutong_unmapped_codes_total": "counter",
    "hutong_critical_alerts_total": "counter", "hutong_critical_alerts_open": "gauge",
    "hutong_critical_alert_oldest_open_seconds": "gauge",
    "hutong_critical_alert_turnaround_seconds": "histogram",
    "hutong_sink_rows_written_total": "counter", "hutong_sink_batch_seconds": "histogram",
    "hutong_sink_last_commit_timestamp_seconds": "gauge", "hutong_component_up": "gauge",
}


def test_every_promised_metric_is_declared_and_documented() -> None:
    text = generate_latest(Metrics().registry).decode()
    operations = (Path(__file__).parents[2] / "docs" / "operations.md").read_text("utf-8")
    for name, kind in PROMISED.items():
        assert f"# TYPE {name} {kind}" in text, name
        assert f"`{name}`" in operations, name


def test_declared_stages_count_dead_letters_from_zero() -> None:
    """A counter series born at its first letter shows Prometheus no increase(); each
    process exports its own stages at 0 from the start (the hub beside its workers)."""
    metrics = Metrics()
    assert sample(metrics, "hutong_dead_letters_total", stage="producer") == 0.0
    assert metrics.registry.get_sample_value("hutong_dead_letters_total",
                                             {"stage": "producer"}) is None
    metrics.stages.declare("producer", "warehouse-sink")
    text = generate_latest(metrics.registry).decode()
    assert 'hutong_dead_letters_total{stage="producer"} 0.0' in text
    assert 'hutong_dead_letters_total{stage="warehouse-sink"} 0.0' in text
    assert 'stage="empi"' not in text  # a stream worker's stage: declared there, not twice


def test_the_stream_workers_declare_the_stages_their_letters_count_under() -> None:
    source = (Path(__file__).parents[2] / "streams" / "app.py").read_text("utf-8")
    assert "metered.declare(*sorted({stream_stage(topic) for topic in INPUT_TOPICS}))" in source
    assert {stream_stage(topic) for topic in INPUT_TOPICS} == {"empi", "alerts"} <= set(STAGES)


def test_registered_facilities_export_refusals_from_zero() -> None:
    metrics = Metrics()
    metrics.declare_facilities(["FAC1", "FAC2"])
    name = "hutong_facility_messages_total"
    for facility in ("FAC1", "FAC2"):
        for kind in MESSAGE_TYPES:
            assert metrics.registry.get_sample_value(
                name, {"facility": facility, "message_type": kind, "outcome": "AE"}) == 0.0
            assert metrics.registry.get_sample_value(
                name, {"facility": facility, "message_type": kind, "outcome": "AR"}) == 0.0
    assert metrics.registry.get_sample_value(
        name, {"facility": "FAC1", "message_type": "ORU", "outcome": "AA"}) is None
    assert metrics.registry.get_sample_value(
        name, {"facility": "unregistered", "message_type": "ORU", "outcome": "AE"}) is None
