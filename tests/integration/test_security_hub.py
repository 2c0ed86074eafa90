"""A hub set up as the guidelines ask: TLS everywhere, limits per facility, secrets kept.

One hub for the module: HTTPS on the API and the ClickHouse HTTP interface, MLLP over
TLS, certificates from a throwaway CA (trustme); registered facilities with a small
rate limit; distinctive values for every secret (API token, a user's token, a
facility's key, the pseudonym key, the webhook key, the Kafka SASL password, the
document store's database password on the machine's PostgreSQL). The hub logs at
DEBUG, every record captured, and the last test looks for the secrets everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest
import trustme
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from connectors.facilities import hash_api_key
from connectors.mllp.client import MLLPClient
from hutong.audit import AuditLog
from hutong.cli import app as cli
from hutong.config import Settings, load_settings
from hutong.errors import HutongError
from hutong.sender import ack_summary
from sinks.warehouse import open_warehouse
from tests.docstore_support import postgres_schema

from .conftest import RunningHub, free_port, wait_for

pytestmark = pytest.mark.integration

SECRETS = {
    "api_token": "sekrit-api-token-7f3a9c",
    "user_token": "sekrit-user-token-2be81d",
    "facility_key": "htk_sekrit-facility-key-c04e",
    "pseudonym_key": "sekrit-pseudonym-key-91c2aa",
    "alert_webhook_secret": "sekrit-webhook-hmac-55d0f1",
    "kafka_sasl_password": "sekrit-sasl-password-e4b87e",
    "database_password": "sekrit-pg-password-0a6c3d",
}

FACILITIES = f"""
facilities:
  - id: RL1
    mllp_sources: [127.0.0.0/8]
  - id: RL2
    mllp_sources: [127.0.0.0/8]
  - id: RL3
    api_keys: [{hash_api_key(SECRETS["facility_key"])}]
  - id: TLSHOSP
    tls_names: [his.tlshosp.example]
"""


def adt(facility: str, control_id: str) -> bytes:
    return (f"MSH|^~\\&|HIS|{facility}|HUTONG|REGION|20261120093000||ADT^A01^ADT_A01|"
            f"{control_id}|P|2.4\rEVN|A01|20261120093000\r"
            f"PID|1||P{control_id}^^^{facility}^MR||测试乙||19700101|F\rPV1|1|O\r").encode()


class Captured(logging.Handler):
    """Every log record of the hub, formatted, traceback included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, hub_settings: Callable[..., Settings],
           ca: trustme.CA, logs: Captured) -> Iterator[RunningHub]:
    root = tmp_path_factory.mktemp("secure")
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(root / "server.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    (root / "facilities.yaml").write_text(FACILITIES, encoding="utf-8")
    (root / "users.yaml").write_text(
        f"users:\n  - name: li.analyst\n    roles: [analyst]\n"
        f"    tokens: [{hash_api_key(SECRETS['user_token'])}]\n", encoding="utf-8")
    with postgres_schema() as url:
        docstore = make_url(url).set(password=SECRETS["database_password"])
        settings = hub_settings(
            root, intake_open=False, facilities_file=root / "facilities.yaml",
            users_file=root / "users.yaml", log_level="DEBUG",
            http_tls=True, tls_cert_file=root / "server.pem", tls_key_file=root / "server.pem",
            tls_client_ca_file=root / "ca.pem", mllps_port=free_port(),
            facility_rate_limit=2.0, facility_rate_burst=3,
            api_token=SECRETS["api_token"], pseudonym_key=SECRETS["pseudonym_key"],
            alert_webhook_urls=[f"http://127.0.0.1:{free_port()}/hook"],
            alert_webhook_secret=SECRETS["alert_webhook_secret"],
            kafka_sasl_password=SECRETS["kafka_sasl_password"],
            docstore_url=docstore.render_as_string(hide_password=False))
        running = RunningHub(settings).start()
        try:
            yield running
        finally:
            running.stop()


def https(hub: RunningHub) -> httpx.Client:
    return httpx.Client(base_url=hub.settings.api_url, timeout=30,
                        verify=ssl.create_default_context(cafile=hub.settings.data_dir / "ca.pem"))


def legacy_client(ca: trustme.CA, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that speaks only ``version`` (TLS 1.0 or 1.1), with every cipher."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    with warnings.catch_warnings():  # the ssl module deprecates naming them at all
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def handshake(port: int, context: ssl.SSLContext) -> str:
    """The TLS version agreed with 127.0.0.1:``port``, or the error's reason."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            return str(tls.version())
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused: {getattr(exc, 'reason', None) or exc}"


# --- encryption in transit -------------------------------------------------------------------


def test_the_api_answers_https_with_the_hubs_certificate(secure: RunningHub) -> None:
    assert secure.settings.api_url.startswith("https://")
    with https(secure) as client:
        assert client.get("/healthz").status_code == 200
        answer = client.post("/api/v1/sql", json={"query": "SELECT 1 AS one"},
                             headers={"Authorization": f"Bearer {SECRETS['api_token']}"})
        assert answer.json()["rows"] == [[1]]
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on that port
        httpx.get(secure.settings.api_url.replace("https", "http") + "/healthz", timeout=5)


@pytest.mark.parametrize("listener", ["api", "clickhouse", "mllps"])
def test_tls_1_0_and_1_1_are_refused_and_1_2_is_taken(secure: RunningHub, ca: trustme.CA,
                                                       listener: str) -> None:
    s = secure.settings
    port = {"api": s.http_port, "clickhouse": s.clickhouse_http_port,
            "mllps": s.mllps_port}[listener]
    assert port is not None
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        assert handshake(port, legacy_client(ca, version)).startswith("refused"), version
    modern = ssl.create_default_context(cafile=s.data_dir / "ca.pem")
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    if listener == "mllps":  # MLLP over TLS wants the facility's certificate too
        ca.issue_cert("his.tlshosp.example").configure_cert(modern)
    assert handshake(port, modern) == "TLSv1.2"


def test_clickhouse_connect_reaches_the_warehouse_over_tls(secure: RunningHub) -> None:
    """The ClickHouse TLS options in a clickhouse_url (``https://``, ``ca_cert``) reach
    clickhouse-connect: the hub's own ClickHouse HTTP interface, served over TLS."""
    s = secure.settings
    url = (f"https://li.analyst:{SECRETS['user_token']}@localhost:{s.clickhouse_http_port}"
           f"/?ca_cert={s.data_dir / 'ca.pem'}")
    with open_warehouse(url, s.data_dir) as warehouse:
        assert warehouse.query_rows("SELECT 41 + 1 AS answer")[1] == [(42,)]
    untrusted = url.split("/?")[0]  # the system store does not know the test CA
    with pytest.raises(HutongError):
        open_warehouse(untrusted, s.data_dir)


def test_mllp_over_tls_takes_a_message_from_its_facility(secure: RunningHub,
                                                         ca: trustme.CA) -> None:
    context = ssl.create_default_context(cafile=secure.settings.data_dir / "ca.pem")
    ca.issue_cert("his.tlshosp.example").configure_cert(context)

    async def go() -> tuple[str, str, str]:
        assert secure.settings.mllps_port is not None
        async with MLLPClient("127.0.0.1", secure.settings.mllps_port, tls=context,
                              timeout=20) as client:
            return ack_summary(await client.send(adt("TLSHOSP", "TLS-1")))

    assert asyncio.run(go())[0] == "AA"


# --- rate limits per facility -----------------------------------------------------------------


def send(hub: RunningHub, *messages: bytes) -> list[tuple[str, str, str]]:
    async def go() -> list[tuple[str, str, str]]:
        async with MLLPClient("127.0.0.1", hub.settings.mllp_port, timeout=20) as client:
            return [ack_summary(await client.send(m)) for m in messages]

    return asyncio.run(go())


def metric(hub: RunningHub, name: str, **labels: str) -> float:
    return hub.hub.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_facility_over_its_rate_gets_ar_and_the_others_keep_flowing(
        secure: RunningHub) -> None:
    acks = send(secure, *(adt("RL1", f"RL1-{n}") for n in range(10)))
    codes = [code for code, _, _ in acks]
    assert codes[:3] == ["AA", "AA", "AA"]  # the burst
    refused = [text for code, _, text in acks if code == "AR"]
    assert refused and all("rate limit" in text and "RL1" in text for text in refused)
    assert [code for code, _, _ in send(secure, adt("RL2", "RL2-1"))] == ["AA"]
    assert metric(secure, "hutong_facility_rejected_total", facility="RL1",
                  reason="rate_limited") == len(refused)
    throttled = [r for r in AuditLog(secure.settings.data_dir / "audit").records()
                 if r["action"] == "intake.throttled"]
    assert throttled and throttled[0]["facility"] == "RL1"
    wait_for(lambda: send(secure, adt("RL1", "RL1-later"))[0][0] == "AA", timeout=10)


def test_http_ingest_over_its_rate_gets_429_with_retry_after(secure: RunningHub) -> None:
    key = {"Authorization": f"Bearer {SECRETS['facility_key']}"}
    with https(secure) as client:
        answers = [client.post("/api/v1/ingest/hl7v2", content=adt("RL3", f"RL3-{n}"),
                               headers=key) for n in range(8)]
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [202, 202, 202] and 429 in statuses, statuses
    limited = answers[statuses.index(429)]
    assert limited.headers["retry-after"] == "1" and "rate limit" in limited.json()["detail"]
    assert metric(secure, "hutong_facility_rejected_total", facility="RL3",
                  reason="rate_limited") == statuses.count(429)


# --- secrets ----------------------------------------------------------------------------------


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_no_secret_is_in_logs_answers_metrics_help_or_errors(
        secure: RunningHub, logs: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    s = secure.settings
    # the hub's answers to a good caller and to bad ones
    with https(secure) as client:
        seen = [client.get("/healthz").text, client.get("/metrics").text,
                client.post("/api/v1/sql", json={"query": "SELECT 1"},
                            headers={"Authorization": f"Bearer {SECRETS['api_token']}x"}).text,
                client.post("/api/v1/ingest/hl7v2", content=b"MSH|",
                            headers={"X-API-Key": SECRETS["facility_key"] + "x"}).text,
                client.get("/openapi.json").text]
    # the settings as shown, and errors about them
    seen += [repr(s), str(s), s.model_dump_json()]
    with pytest.raises(HutongError) as bad:
        load_settings(api_token=SECRETS["api_token"], kafka_sasl_password=SECRETS[
            "kafka_sasl_password"], docstore_url=s.docstore_url, mllp_port="not-a-port")
    seen.append(str(bad.value))
    with pytest.raises(HutongError) as unreachable:  # a password in a URL to nowhere
        open_warehouse(f"http://hutong:{SECRETS['database_password']}@127.0.0.1:{free_port()}",
                       s.data_dir)
    seen.append(str(unreachable.value))
    # the command line's help, with every secret in the environment
    for name in ("api_token", "pseudonym_key", "alert_webhook_secret", "kafka_sasl_password"):
        monkeypatch.setenv(f"HUTONG_{name.upper()}", SECRETS[name])
    for args in (["--help"], ["up", "--help"], ["users", "--help"], ["audit-verify", "--help"]):
        seen.append(CliRunner().invoke(cli, args).output)
    # everything the hub and its children logged, and the audit log
    seen += logs.lines
    seen += [path.read_text("utf-8", errors="replace")
             for folder in ("logs", "audit") for path in (s.data_dir / folder).glob("*")
             if path.is_file()]
    assert any("hutong is up" in line for line in logs.lines)  # the capture works
    assert (s.data_dir / "logs").is_dir()
    assert {name: [i for i, text in enumerate(seen) if SECRETS[name] in text]
            for name in _leaks("\n".join(seen))} == {}


def test_settings_repr_masks_secrets_and_passwords_in_urls(secure: RunningHub) -> None:
    shown = repr(secure.settings)
    assert "**********" in shown and SECRETS["database_password"] not in shown
    assert secure.settings.docstore_url and SECRETS["database_password"] in \
        secure.settings.docstore_url  # the value itself is intact for the driver
