"""The Helm chart: linted and rendered offline with the Helm v4 Go SDK (helm-python-sdk),
the manifests checked; its alert rules checked and unit-tested with promtool; its
dashboard checked against the metrics hutong exports.

Each worked example in values.yaml (``# example: NAME`` ... ``# end of example``) is
rendered as written there, over `BASE`: the pseudonym key every install must give.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from hutong.components import COMPONENTS
from hutong.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).parents[2]
CHART = ROOT / "helm" / "hutong"
RULES = CHART / "files" / "prometheus-rules.yaml"
RULE_TESTS = ROOT / "helm" / "tests" / "prometheus-rules.test.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

#: The metric names hutong exports that rules and dashboards may use (hutong.metrics).
METRICS = frozenset({
    "hutong_facility_messages_total", "hutong_facility_rejected_total",
    "hutong_facility_bytes_total", "hutong_facility_last_message_timestamp_seconds",
    "hutong_ack_latency_seconds_bucket", "hutong_stage_events_total",
    "hutong_stage_latency_seconds_bucket", "hutong_dead_letters_total", "hutong_consumer_lag",
    "hutong_empi_links_total", "hutong_empi_review_backlog", "hutong_unmapped_codes_total",
    "hutong_critical_alerts_total", "hutong_critical_alerts_open",
    "hutong_critical_alert_oldest_open_seconds",
    "hutong_critical_alert_turnaround_seconds_bucket", "hutong_sink_rows_written_total",
    "hutong_sink_batch_seconds_bucket", "hutong_sink_last_commit_timestamp_seconds",
    "hutong_component_up",
})
#: Settings the chart must never put in a ConfigMap.
SECRET_SETTINGS = frozenset({
    "HUTONG_KAFKA_SASL_PASSWORD", "HUTONG_CLICKHOUSE_URL", "HUTONG_DOCSTORE_URL",
    "HUTONG_PSEUDONYM_KEY", "HUTONG_API_TOKEN", "HUTONG_ALERT_WEBHOOK_SECRET",
})


def _examples() -> dict[str, dict[str, Any]]:
    text = (CHART / "values.yaml").read_text("utf-8")
    found = {}
    for match in re.finditer(r"^# example: (\S+)\n(.*?)^# end of example$", text, re.M | re.S):
        body = "\n".join(line[2:] if line.startswith("# ") else line[1:]
                         for line in match.group(2).splitlines())
        found[match.group(1)] = yaml.safe_load(body)
    return found


EXAMPLES = _examples()


def _merged(*layers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merged(out[key], value)
            else:
                out[key] = value
    return out


ALL_EXAMPLES = _merged(*EXAMPLES.values())
CASES = ["defaults", *EXAMPLES, "all-examples"]
#: What every install gives: the chart never makes the pseudonym key up.
BASE: dict[str, Any] = {"warehouse": {"pseudonymKey": "test-pseudonym-key"}}


def values_of(case: str) -> dict[str, Any]:
    """The values of a case: the defaults, one worked example, or all of them together
    (over `BASE`)."""
    return _merged(BASE, {"defaults": {}, "all-examples": ALL_EXAMPLES, **EXAMPLES}[case])


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders with ``values`` (over `BASE`)."""
    rendered = chart.render(_merged(BASE, values or {}), name="hub", namespace="health")
    return [doc for name, text in sorted(rendered.items()) if not name.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def kinds(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployments by component."""
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d
            for d in kinds(docs, "Deployment").values()}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_names(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


# --- lint and render -----------------------------------------------------------------

def test_the_examples_are_found() -> None:
    assert set(EXAMPLES) == {"kafka-sasl-ssl", "schema-registry", "clickhouse", "postgresql",
                             "mllp-tls-and-monitoring"}


@pytest.mark.parametrize("name", CASES)
def test_lint_finds_nothing_wrong(name: str) -> None:
    values = values_of(name)
    report = helm.lint(CHART, values, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", CASES)
def test_every_pod_is_non_root_read_only_and_probed(chart: helm.Chart, name: str) -> None:
    values = values_of(name)
    docs = render(chart, values)
    by_component = deployments(docs)
    assert set(by_component) == set(COMPONENTS)
    for component, deployment in by_component.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        box = container(deployment)
        security = box["securityContext"]
        assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        data = volumes[mounts["/var/lib/hutong"]]  # the data dir is writable
        assert "emptyDir" in data or "persistentVolumeClaim" in data
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert {p["name"] for p in box["ports"]} >= {"http"}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert box[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
        assert box["resources"]["requests"] and box["resources"]["limits"]["memory"]
        assert box["args"] == ["up"]
        assert env_names(deployment)["HUTONG_COMPONENTS"]["value"] == component


def test_the_default_objects(chart: helm.Chart) -> None:
    docs = render(chart)
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "ConfigMap", "Secret",
                                         "PodDisruptionBudget", "ServiceAccount"}
    assert deployments(docs)["connectors"]["spec"]["replicas"] == 1
    services = kinds(docs, "Service")
    assert set(services) == {"hub-hutong-mllp", "hub-hutong-ingest", "hub-hutong-api"}
    ports = {name: {p["name"]: p["port"] for p in s["spec"]["ports"]}
             for name, s in services.items()}
    assert ports == {"hub-hutong-mllp": {"mllp": 2575}, "hub-hutong-ingest": {"http": 8080},
                     "hub-hutong-api": {"http": 8080}}
    component = {name: s["spec"]["selector"]["app.kubernetes.io/component"]
                 for name, s in services.items()}
    assert component == {"hub-hutong-mllp": "connectors", "hub-hutong-ingest": "connectors",
                         "hub-hutong-api": "api"}
    pdbs = kinds(docs, "PodDisruptionBudget")
    assert {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
            for p in pdbs.values()} == set(COMPONENTS)
    assert "hub-hutong-mllp" in services and not kinds(docs, "HorizontalPodAutoscaler")


def _pod_environment(docs: list[dict[str, Any]], component: str) -> dict[str, str]:
    """The HUTONG_* variables a pod of ``component`` starts with (secrets made up)."""
    made_up = {"HUTONG_CLICKHOUSE_URL": "http://hutong:pw@clickhouse:8123",
               "HUTONG_DOCSTORE_URL": "postgresql+psycopg://hutong:pw@pg/hutong",
               "HUTONG_SCHEMA_REGISTRY_URL": "http://registry:8081"}
    deployment = deployments(docs)[component]
    env: dict[str, str] = {}
    for source in container(deployment)["envFrom"]:
        env |= kinds(docs, "ConfigMap")[source["configMapRef"]["name"]]["data"]
    for entry in container(deployment)["env"]:
        env[entry["name"]] = entry.get("value", made_up.get(entry["name"], "secret"))
    return env


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("component", COMPONENTS)
def test_each_pod_environment_is_settings_the_hub_accepts(
        chart: helm.Chart, monkeypatch: pytest.MonkeyPatch, name: str, component: str) -> None:
    values = values_of(name)
    env = _pod_environment(render(chart, values), component)
    known = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    assert {k for k in env if k.startswith(ENV_PREFIX)} <= known
    for variable in [v for v in os.environ if v.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()  # a partial set without what it needs would be refused here
    assert settings.components == [component]
    assert not settings.plan.embedded_broker and not settings.plan.embedded_warehouse


def test_secrets_stay_out_of_configmaps_and_pod_specs(chart: helm.Chart) -> None:
    secrets = {"kafka": {"sasl": {"password": "kafka-pw-1"}},
               "clickhouse": {"url": "https://hutong:ch-pw-2@clickhouse:8443"},
               "docstore": {"url": "postgresql+psycopg://hutong:pg-pw-3@pg/hutong"},
               "warehouse": {"pseudonymKey": "pseudonym-key-4"},
               "auth": {"apiToken": "api-token-5", "users": "users: []  # users-file-6\n"},
               "alerts": {"webhookSecret": "webhook-7", "webhookUrls": ["https://x.example/h"]}}
    docs = render(chart, secrets)
    words = ["kafka-pw-1", "ch-pw-2", "pg-pw-3", "pseudonym-key-4", "api-token-5",
             "users-file-6", "webhook-7"]
    outside = yaml.safe_dump([d for d in docs if d["kind"] != "Secret"], allow_unicode=True)
    assert [w for w in words if w in outside] == []
    for configmap in kinds(docs, "ConfigMap").values():
        assert not set(configmap.get("data", {})) & SECRET_SETTINGS
    (secret,) = kinds(docs, "Secret").values()
    held = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert held["kafka-sasl-password"] == "kafka-pw-1"
    assert held["pseudonym-key"] == "pseudonym-key-4" and "users-file-6" in held["users.yaml"]
    refs = {name: {e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
                   for e in container(d)["env"] if "valueFrom" in e}
            for name, d in deployments(docs).items()}
    # each part gets the secrets it uses and no other
    assert set(refs["connectors"]) == {"HUTONG_KAFKA_SASL_PASSWORD"}
    assert set(refs["streams"]) == {"HUTONG_KAFKA_SASL_PASSWORD", "HUTONG_PSEUDONYM_KEY"}
    assert set(refs["sinks"]) == {"HUTONG_KAFKA_SASL_PASSWORD", "HUTONG_CLICKHOUSE_URL",
                                  "HUTONG_DOCSTORE_URL", "HUTONG_PSEUDONYM_KEY",
                                  "HUTONG_ALERT_WEBHOOK_SECRET"}
    assert set(refs["api"]) == {"HUTONG_KAFKA_SASL_PASSWORD", "HUTONG_CLICKHOUSE_URL",
                                "HUTONG_DOCSTORE_URL", "HUTONG_PSEUDONYM_KEY",
                                "HUTONG_API_TOKEN"}
    users = [v for v in deployments(docs)["api"]["spec"]["template"]["spec"]["volumes"]
             if v["name"] == "users"]
    assert users and users[0]["secret"]["secretName"] == "hub-hutong"


def test_existing_secrets_are_referenced_not_copied(chart: helm.Chart) -> None:
    docs = render(chart, ALL_EXAMPLES)  # warehouse.existingSecret wins over BASE's key
    (secret,) = kinds(docs, "Secret").values()
    assert set(secret.get("data") or {}) == set()  # everything comes from the named Secrets
    sinks = env_names(deployments(docs)["sinks"])
    assert sinks["HUTONG_CLICKHOUSE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "hutong-clickhouse", "key": "url"}
    assert sinks["HUTONG_DOCSTORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "hutong-docstore", "key": "url"}
    assert sinks["HUTONG_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "hutong", "key": "password"}
    config = kinds(docs, "ConfigMap")["hub-hutong"]["data"]
    assert json.loads(config["HUTONG_KAFKA_CONFIG"]) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "hutong", "ssl.ca.location": "/etc/hutong/kafka-ca/ca.crt"}
    assert config["HUTONG_CLICKHOUSE_CLUSTER"] == "regional"
    assert "HUTONG_SCHEMA_REGISTRY_URL" not in config


def test_the_pseudonym_key_is_never_made_up(chart: helm.Chart) -> None:
    """It seeds the warehouse's pseudonyms and the EMPI ids: a new one each render (helm
    template, a GitOps sync) would silently split every patient in two."""
    with pytest.raises(helm.HelmRenderError, match=r"warehouse.pseudonymKey.*required"):
        chart.render({}, name="hub", namespace="health")
    named = render(chart, {"warehouse": {"pseudonymKey": "", "existingSecret": "pseudonyms",
                                         "existingSecretKey": "key"}})
    (secret,) = kinds(named, "Secret").values()
    assert "pseudonym-key" not in (secret.get("data") or {})
    assert env_names(deployments(named)["streams"])["HUTONG_PSEUDONYM_KEY"]["valueFrom"][
        "secretKeyRef"] == {"name": "pseudonyms", "key": "key"}


def _sums(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
             d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"])
            for d in deployments(docs).values()}


def test_a_render_is_the_same_every_time_and_so_are_the_checksums(chart: helm.Chart) -> None:
    first, again = render(chart), render(chart)
    assert first == again
    assert len(_sums(first)) == 1  # every Deployment carries the same sums
    (secret,) = kinds(first, "Secret").values()
    assert base64.b64decode(secret["data"]["pseudonym-key"]).decode() == "test-pseudonym-key"
    changed = render(chart, {"auth": {"apiToken": "another"}})
    assert len(_sums(changed)) == 1 and _sums(changed) != _sums(first)


@pytest.mark.parametrize("key", [
    "sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "ssl_key",
    "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase",
])
def test_secret_librdkafka_settings_never_go_to_the_configmap(chart: helm.Chart,
                                                              key: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(f"/kafka/config/{key}")):
        chart.validate_schema({"kafka": {"config": {key: "s3cret"}}})


def test_settings_that_are_not_secret_stay_in_the_configmap(chart: helm.Chart) -> None:
    chart.validate_schema({"kafka": {"config": {
        "security.protocol": "SSL", "ssl.ca.location": "/etc/ca.crt",
        "ssl.certificate.pem": "-----BEGIN CERTIFICATE-----", "ssl.keystore.location": "/k.p12",
        "sasl.username": "hub", "sasl.oauthbearer.client.id": "hub",
        "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token"}}})


def test_secret_librdkafka_settings_come_from_the_secret(
        chart: helm.Chart, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(chart, {"kafka": {
        "config": {"security.protocol": "SSL"}, "caSecret": "kafka-ca",
        "secretConfig": {"ssl.key.pem": "-----BEGIN PRIVATE KEY----- key-1",
                         "ssl.key.password": "key-pw-2"}}})
    outside = yaml.safe_dump([d for d in docs if d["kind"] != "Secret"], allow_unicode=True)
    assert "key-1" not in outside and "key-pw-2" not in outside
    assert "HUTONG_KAFKA_CONFIG" not in kinds(docs, "ConfigMap")["hub-hutong"]["data"]
    (secret,) = kinds(docs, "Secret").values()
    config = base64.b64decode(secret["data"]["kafka-config"]).decode()
    assert json.loads(config) == {
        "security.protocol": "SSL", "ssl.ca.location": "/etc/hutong/kafka-ca/ca.crt",
        "ssl.key.pem": "-----BEGIN PRIVATE KEY----- key-1", "ssl.key.password": "key-pw-2"}
    for component, deployment in deployments(docs).items():
        assert env_names(deployment)["HUTONG_KAFKA_CONFIG"]["valueFrom"]["secretKeyRef"] == {
            "name": "hub-hutong", "key": "kafka-config"}, component
    for variable in [v for v in os.environ if v.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(variable)
    for variable, value in _pod_environment(docs, "connectors").items():
        monkeypatch.setenv(variable, config if variable == "HUTONG_KAFKA_CONFIG" else value)
    assert load_settings().kafka_client_config()["ssl.key.password"] == "key-pw-2"
    overlap = re.escape("security.protocol is set in kafka.config")
    with pytest.raises(helm.HelmRenderError, match=overlap):
        chart.render(_merged(BASE, {"kafka": {"config": {"security.protocol": "SSL"},
                                              "secretConfig": {"security.protocol": "SSL"}}}),
                     name="hub")


def test_mllp_over_tls_mounts_the_certificates(chart: helm.Chart) -> None:
    docs = render(chart, EXAMPLES["mllp-tls-and-monitoring"])
    connectors = deployments(docs)["connectors"]
    env = env_names(connectors)
    assert env["HUTONG_MLLPS_PORT"]["value"] == "2576"
    mounts = {m["mountPath"]: m["name"] for m in container(connectors)["volumeMounts"]}
    volumes = {v["name"]: v for v in connectors["spec"]["template"]["spec"]["volumes"]}
    cert_dir = str(Path(env["HUTONG_TLS_CERT_FILE"]["value"]).parent)
    assert volumes[mounts[cert_dir]]["secret"]["secretName"] == "hutong-mllp-tls"
    ca_dir = str(Path(env["HUTONG_TLS_CLIENT_CA_FILE"]["value"]).parent)
    assert volumes[mounts[ca_dir]]["secret"]["secretName"] == "facility-ca"
    mllp = kinds(docs, "Service")["hub-hutong-mllp"]["spec"]
    assert {p["name"]: p["port"] for p in mllp["ports"]} == {"mllp": 2575, "mllps": 2576}
    assert mllp["type"] == "LoadBalancer" and mllp["externalTrafficPolicy"] == "Local"
    assert "HUTONG_MLLPS_PORT" not in env_names(deployments(docs)["api"])
    with pytest.raises(helm.HelmRenderError, match="secretName"):
        chart.render(_merged(BASE, {"mllp": {"tls": {"enabled": True}}}), name="hub")


def test_autoscaling_only_for_connectors_and_the_api(chart: helm.Chart) -> None:
    docs = render(chart, {"connectors": {"autoscaling": {"enabled": True}},
                          "api": {"autoscaling": {"enabled": True, "maxReplicas": 9}}})
    hpas = kinds(docs, "HorizontalPodAutoscaler")
    targets = {h["spec"]["scaleTargetRef"]["name"]: h for h in hpas.values()}
    assert set(targets) == {"hub-hutong-connectors", "hub-hutong-api"}
    assert targets["hub-hutong-api"]["apiVersion"] == "autoscaling/v2"
    assert targets["hub-hutong-api"]["spec"]["maxReplicas"] == 9
    by_component = deployments(docs)
    assert "replicas" not in by_component["api"]["spec"]  # the HPA owns it
    assert by_component["streams"]["spec"]["replicas"] == 2
    for part in ("streams", "sinks"):
        with pytest.raises(helm.HelmValuesError, match=part):
            chart.validate_schema({part: {"autoscaling": {"enabled": True}}})


def test_one_connectors_pod_and_no_autoscaling_by_default(chart: helm.Chart) -> None:
    """Receipts (resends, reused control ids) and the intake audit log are per pod."""
    docs = render(chart)
    assert deployments(docs)["connectors"]["spec"]["replicas"] == 1
    assert not kinds(docs, "HorizontalPodAutoscaler") and not kinds(docs,
                                                                   "PersistentVolumeClaim")
    schema = json.loads((CHART / "values.schema.json").read_text("utf-8"))
    assert "receipts" in schema["properties"]["connectors"]["description"]
    assert "per pod" in (ROOT / "helm" / "README.md").read_text("utf-8")


def test_connectors_persistence_keeps_the_data_dir(chart: helm.Chart) -> None:
    docs = render(chart, {"connectors": {"persistence": {"enabled": True, "size": "20Gi",
                                                         "storageClass": "fast"}}})
    (claim,) = kinds(docs, "PersistentVolumeClaim").values()
    assert claim["metadata"]["name"] == "hub-hutong-connectors-data"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": "20Gi"}}}
    connectors = deployments(docs)["connectors"]
    volumes = {v["name"]: v for v in connectors["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {
        "claimName": "hub-hutong-connectors-data"}}
    assert connectors["spec"]["strategy"] == {"type": "Recreate"}
    assert connectors["spec"]["replicas"] == 1
    for other in ("streams", "sinks", "api"):
        pod = deployments(docs)[other]["spec"]["template"]["spec"]
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["data"]
        assert "strategy" not in deployments(docs)[other]["spec"]
    mine = render(chart, {"connectors": {"persistence": {"enabled": True,
                                                         "existingClaim": "audit-disk"}}})
    assert not kinds(mine, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployments(mine)["connectors"]["spec"]["template"][
        "spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "audit-disk"}


@pytest.mark.parametrize("more", [{"replicas": 2}, {"autoscaling": {"enabled": True}}])
def test_connectors_persistence_is_for_one_pod(chart: helm.Chart, more: dict[str, Any]) -> None:
    values = _merged(BASE, {"connectors": {"persistence": {"enabled": True}, **more}})
    one = re.escape("connectors.persistence keeps one data dir")
    with pytest.raises(helm.HelmRenderError, match=one):
        chart.render(values, name="hub")


def test_stream_workers_are_bounded_by_partitions(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"exceeds kafka.partitions \(6\)"):
        chart.render(_merged(BASE, {"streams": {"replicas": 4, "workersPerPod": 2}}), name="hub")
    docs = render(chart, {"kafka": {"partitions": 8}, "streams": {"replicas": 4,
                                                                   "workersPerPod": 2}})
    assert env_names(deployments(docs)["streams"])["HUTONG_STREAMS_WORKERS"]["value"] == "2"


def test_a_disabled_component_renders_nothing(chart: helm.Chart) -> None:
    docs = render(chart, {"connectors": {"enabled": False}})
    assert set(deployments(docs)) == {"streams", "sinks", "api"}
    assert "hub-hutong-mllp" not in kinds(docs, "Service")
    assert all(p["metadata"]["name"] != "hub-hutong-connectors"
               for p in kinds(docs, "PodDisruptionBudget").values())


@pytest.mark.parametrize("toggle", ["serviceMonitor", "podMonitor", "prometheusRule",
                                    "grafanaDashboard"])
def test_monitoring_objects_only_when_enabled(chart: helm.Chart, toggle: str) -> None:
    kind = {"serviceMonitor": "ServiceMonitor", "podMonitor": "PodMonitor",
            "prometheusRule": "PrometheusRule", "grafanaDashboard": "ConfigMap"}[toggle]
    off = render(chart)
    on = render(chart, {"monitoring": {toggle: {"enabled": True}}})
    added = [d for d in on if d not in off]
    assert {d["kind"] for d in added} - {"Service"} == {kind}
    for doc in added:
        if doc["kind"] in {"ServiceMonitor", "PodMonitor", "PrometheusRule"}:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"


def test_the_service_monitor_scrapes_every_pod(chart: helm.Chart) -> None:
    docs = render(chart, {"monitoring": {"serviceMonitor": {"enabled": True,
                                                             "labels": {"release": "kps"}}}})
    (monitor,) = kinds(docs, "ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics",
                                             "interval": "30s"}]
    service = kinds(docs, "Service")["hub-hutong-metrics"]
    labels = service["metadata"]["labels"]
    assert all(labels[k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    selector = service["spec"]["selector"]
    for deployment in deployments(docs).values():  # the Service's endpoints: every part
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels[k] == v for k, v in selector.items())
    assert monitor["spec"]["podTargetLabels"] == ["app.kubernetes.io/component"]


def test_the_dashboard_configmap(chart: helm.Chart) -> None:
    docs = render(chart, {"monitoring": {"grafanaDashboard": {"enabled": True}}})
    (board,) = [c for c in kinds(docs, "ConfigMap").values()
                if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert json.loads(board["data"]["hutong.json"]) == json.loads(DASHBOARD.read_text("utf-8"))


@pytest.mark.parametrize(("values", "named"), [
    ({"logLevel": "LOUD"}, "logLevel"),
    ({"replicaCount": 3}, "replicaCount"),  # the first chart's value: gone, not ignored
    ({"kafka": {"bootstrap": ""}}, "bootstrap"),
    ({"kafka": {"bootstrap": "kafka"}}, "bootstrap"),  # no port
    ({"kafka": {"partitions": 0}}, "partitions"),
    ({"kafka": {"config": {"sasl.password": "x"}}}, "config"),
    ({"streams": {"replicas": -1}}, "replicas"),
    ({"streams": {"workersPerPod": 0}}, "workersPerPod"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
    ({"settings": {"kafka_bootstrap": "elsewhere:9092"}}, "kafka_bootstrap"),  # chart's own
    ({"settings": {"Mllp-Port": 1}}, "Mllp-Port"),
    ({"warehouse": {"identifiers": "plain"}}, "identifiers"),
    ({"mllp": {"port": 70000}}, "port"),
    ({"clickhouse": {"url": "clickhouse:8123"}}, "url"),
    ({"docstore": {"url": "sqlite:///x.db"}}, "url"),
    ({"monitoring": {"prometheusRule": {"thresholds": {"errorRatio": 5}}}}, "errorRatio"),
    ({"monitoring": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}},
     "monitoring"),
])
def test_the_schema_rejects_bad_values(chart: helm.Chart, values: dict[str, Any],
                                       named: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=named):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name="hub")


def test_the_schema_takes_the_defaults_and_every_example(chart: helm.Chart) -> None:
    chart.validate_schema({})
    for values in [*EXAMPLES.values(), ALL_EXAMPLES]:
        chart.validate_schema(values)


def test_pass_through_settings_keep_their_numbers(chart: helm.Chart) -> None:
    docs = render(chart, {"settings": {"mllp_max_frame_bytes": 8388608,
                                       "empi_link_threshold": 0.99,
                                       "empi_trust": {"QSXRMYY": 2}}})
    data = kinds(docs, "ConfigMap")["hub-hutong"]["data"]
    assert data["HUTONG_MLLP_MAX_FRAME_BYTES"] == "8388608"  # not 8.388608e+06
    assert data["HUTONG_EMPI_LINK_THRESHOLD"] == "0.99"
    assert json.loads(data["HUTONG_EMPI_TRUST"]) == {"QSXRMYY": 2}


# --- alert rules -------------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(not Path(PROMTOOL).is_file(),
                                    reason="promtool is not installed (`make tools` installs it)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text("utf-8"))["groups"]
            for rule in group["rules"]]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_alert_fires_in_the_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text("utf-8"))["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case["exp_alerts"]}
    assert firing == {rule["alert"] for rule in _rules() if "alert" in rule}


@needs_promtool
def test_the_rendered_prometheus_rule_is_the_file(chart: helm.Chart, tmp_path: Path) -> None:
    """The chart's PrometheusRule passes promtool and the same unit tests as the file."""
    docs = render(chart, {"monitoring": {"prometheusRule": {"enabled": True}}})
    (rule,) = kinds(docs, "PrometheusRule").values()
    rendered = tmp_path / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, allow_unicode=True))
    assert promtool("check", "rules", str(rendered)).returncode == 0
    tests = yaml.safe_load(RULE_TESTS.read_text("utf-8"))
    tests["rule_files"] = [str(rendered)]
    (tmp_path / "rules.test.yaml").write_text(yaml.safe_dump(tests, allow_unicode=True))
    result = promtool("test", "rules", str(tmp_path / "rules.test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _alerts(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    (rule,) = kinds(docs, "PrometheusRule").values()
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_thresholds_are_written_into_each_alert_and_runbooks_get_the_base(
        chart: helm.Chart) -> None:
    docs = render(chart, {"monitoring": {"prometheusRule": {
        "enabled": True, "runbookBaseUrl": "https://git.example.org/hutong/-/blob/main/",
        "thresholds": {"facilitySilentMinutes": 90, "errorRatio": 0.2,
                       "consumerLagMessages": 2500000, "criticalUnacknowledgedMinutes": 10}}}})
    rules = _alerts(docs)
    assert "> 5400  # threshold facility_silent_seconds" in rules["HutongFacilitySilent"]["expr"]
    assert "> 0.2  # threshold error_ratio" in rules["HutongFacilityErrorRate"]["expr"]
    assert "> 2500000  # threshold consumer_lag_messages" in \
        rules["HutongConsumerLagGrowing"]["expr"]  # not 2.5e+06
    assert "> 600  # threshold critical_unacknowledged_seconds" in \
        rules["HutongCriticalValueUnacknowledged"]["expr"]
    assert "> 600  # threshold sink_stalled_seconds" in rules["HutongSinkStalled"]["expr"]
    assert rules["HutongSinkStalled"]["annotations"]["runbook_url"] == (
        "https://git.example.org/hutong/-/blob/main/docs/operations.md#hutongsinkstalled")


def test_two_releases_rules_share_no_series(chart: helm.Chart) -> None:
    """Recording rules have no release label: two releases in one Prometheus would write
    the same series, each with its own threshold. The rules record nothing."""
    assert all("record" not in rule for rule in _rules())
    for release, silent in (("north", 30), ("south", 120)):
        rendered = chart.render(_merged(BASE, {"monitoring": {"prometheusRule": {
            "enabled": True, "thresholds": {"facilitySilentMinutes": silent}}}}),
            name=release, namespace="health")
        docs = [d for name, text in rendered.items() if not name.endswith("NOTES.txt")
                for d in yaml.safe_load_all(text) if d]
        (rule,) = kinds(docs, "PrometheusRule").values()
        groups = rule["spec"]["groups"]
        assert all("record" not in r for g in groups for r in g["rules"])
        assert "hutong:" not in yaml.safe_dump(groups)
        assert f"> {silent * 60}  # threshold" in _alerts(docs)["HutongFacilitySilent"]["expr"]


def test_every_threshold_marker_of_the_rule_file_is_a_value() -> None:
    markers = set(re.findall(r"\d\s+# threshold (\w+)", RULES.read_text("utf-8")))
    values = yaml.safe_load((CHART / "values.yaml").read_text("utf-8"))
    assert markers == {"facility_silent_seconds", "error_ratio", "consumer_lag_messages",
                       "dead_letters", "critical_unacknowledged_seconds",
                       "sink_stalled_seconds", "ack_latency_seconds"}
    assert len(values["monitoring"]["prometheusRule"]["thresholds"]) == len(markers)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", markdown, re.M)}


def test_every_alert_says_what_and_where_the_runbook_is() -> None:
    alerts = [r for r in _rules() if "alert" in r]
    assert len(alerts) >= 6
    anchors = _anchors(OPERATIONS.read_text("utf-8"))
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], alert["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, alert["alert"]


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bhutong_[a-z0-9_]+", expr))


def test_rules_use_only_metrics_hutong_exports() -> None:
    used = set().union(*(_metric_names(r["expr"]) for r in _rules()))
    assert used and used <= METRICS, used - METRICS


# --- the dashboard -------------------------------------------------------------------------

def _queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"expr", "definition"} and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict):
                yield str(value.get("query", ""))
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def test_the_dashboard_queries_only_metrics_hutong_exports() -> None:
    board = json.loads(DASHBOARD.read_text("utf-8"))
    assert board["uid"] == "hutong-exchange" and board["title"]
    queries = list(_queries(board))
    used = set().union(*(_metric_names(q) for q in queries))
    assert len(queries) > 20 and used <= METRICS, used - METRICS
    assert {"hutong_facility_last_message_timestamp_seconds", "hutong_consumer_lag",
            "hutong_dead_letters_total", "hutong_critical_alert_oldest_open_seconds"} <= used
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
