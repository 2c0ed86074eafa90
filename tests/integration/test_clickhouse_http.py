"""Analysts on the ClickHouse HTTP interface of a running `hutong up`: clickhouse-connect's
HTTP client and curl-style requests, read-only and authenticated."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, ProgrammingError

from hutong.config import Settings
from hutong.hub import Hub
from hutong.users import add_user
from sinks.warehouse import open_warehouse

from .conftest import RunningHub
from .processes import hub_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
HUTONG = [sys.executable, "-m", "hutong"]
FEEDS = REPO / "hutong" / "demo" / "feeds"


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    port: int
    tokens: dict[str, str]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def client(self, user: str = "li.analyst", password: str | None = None) -> Any:
        return clickhouse_connect.get_client(
            host="127.0.0.1", port=self.port, username=user,
            password=self.tokens[user] if password is None else password)

    def auth(self, user: str = "li.analyst") -> tuple[str, str]:
        return user, self.tokens[user]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`hutong up` with the demo facilities, an analyst, a clinician and an admin."""
    base = tmp_path_factory.mktemp("clickhouse-http")
    data_dir = base / "var"
    data_dir.mkdir()
    shutil.copy(REPO / "hutong" / "demo" / "facilities.yaml", data_dir / "facilities.yaml")
    tokens = {name: add_user(data_dir / "users.yaml", name, roles)
              for name, roles in (("li.analyst", ["analyst"]), ("dr.wang", ["clinician"]),
                                  ("ops", ["admin"]))}
    env = hub_env(data_dir)
    port = int(env["HUTONG_CLICKHOUSE_HTTP_PORT"])
    log_path = base / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*HUTONG, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            running = Up(proc, env, port, tokens, log_path)
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{running.url}ping", timeout=1).text == "Ok.\n":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "hutong up did not open port " + str(port)
                time.sleep(0.3)
            for feed in sorted(FEEDS.glob("*.hl7")):
                subprocess.run([*HUTONG, "send", str(feed), "--to",
                                f"mllp://127.0.0.1:{env['HUTONG_MLLP_PORT']}", "-q"],
                               env=env, capture_output=True, timeout=60, check=False)
            yield running
        finally:
            proc.terminate()
            proc.wait(30)


def rows_arrived(up: Up) -> int:
    client = up.client()
    deadline = time.monotonic() + 60
    while (n := client.command("SELECT count() FROM lab_results")) < 30:
        assert time.monotonic() < deadline, f"only {n} lab results arrived"
        time.sleep(0.5)
    return int(n)


def test_clickhouse_connect_runs_the_analyst_guide(up: Up) -> None:
    rows_arrived(up)
    client = up.client()
    assert client.command("SELECT 1") == 1
    result = client.query("SELECT facility_id, count() AS n FROM hutong.lab_results "
                          "WHERE facility_id = {f:String} GROUP BY facility_id", {"f": "HHXWSY"})
    assert result.column_names == ("facility_id", "n")
    assert result.result_rows[0][0] == "HHXWSY" and result.result_rows[0][1] > 0
    received = client.query("SELECT max(received_at) FROM lab_results").result_rows[0][0]
    assert received.year >= 2024  # DateTime64 decoded from Native
    assert client.query("SELECT * FROM lab_results LIMIT 0").column_names[0] == "event_id"

    guide = (REPO / "docs" / "analytics.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", guide, flags=re.S)
    assert len(blocks) >= 4
    for sql in blocks:
        client.query(sql)  # Native: an empty answer has no header block, as from a server
        assert json.loads(client.raw_query(sql, fmt="JSON"))["meta"], sql

    frame = client.query_df("SELECT facility_id, count() AS n FROM lab_results "
                            "GROUP BY facility_id ORDER BY facility_id")
    assert list(frame.columns) == ["facility_id", "n"] and frame["n"].sum() >= 30
    table = client.query_arrow("SELECT facility_id FROM lab_results LIMIT 3")
    assert table.num_rows == 3
    assert up.client("ops").command("SELECT currentDatabase()") == "hutong"  # admins too


def test_the_connection_examples_in_the_analyst_guide_work(up: Up) -> None:
    rows_arrived(up)
    guide = (REPO / "docs" / "analytics.md").read_text(encoding="utf-8")
    section = guide.split("## Connecting with ClickHouse tools", 1)[1].split("\n## ", 1)[0]
    [shell] = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    [python] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    token = up.tokens["li.analyst"]
    namespace: dict[str, Any] = {}
    exec(python.replace("8123", str(up.port)).replace("TOKEN", token), namespace)  # noqa: S102
    assert namespace["client"].command("SELECT 1") == 1
    if shutil.which("curl") is None:
        pytest.skip("no curl here")
    script = shell.replace("8123", str(up.port)).replace("TOKEN", token)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                         timeout=60, check=True).stdout.decode()
    count, rest = out.split("\n", 1)
    assert int(count) >= 30 and '"meta"' in rest and rest.endswith("Ok.\n")


def test_curl_style_requests(up: Up) -> None:
    assert httpx.get(f"{up.url}ping").text == "Ok.\n"
    assert httpx.get(up.url).text == "Ok.\n"
    one = httpx.get(up.url, params={"query": "SELECT 1"}, auth=up.auth())
    assert (one.status_code, one.text) == (200, "1\n")
    assert one.headers["x-clickhouse-format"] == "TabSeparated"
    assert one.headers["content-type"].startswith("text/tab-separated-values")
    assert json.loads(one.headers["x-clickhouse-summary"])["read_rows"] == "1"
    assert one.headers["x-clickhouse-query-id"]

    as_json = httpx.post(up.url, content="SELECT 1 AS x, 'a' AS s FORMAT JSON",
                         headers={"X-ClickHouse-User": "li.analyst",
                                  "X-ClickHouse-Key": up.tokens["li.analyst"]})
    assert as_json.json()["data"] == [{"x": 1, "s": "a"}]
    assert as_json.headers["x-clickhouse-format"] == "JSON"

    csv = httpx.post(up.url, params={"default_format": "CSVWithNames", "query_id": "my-id"},
                     content="SELECT number AS n FROM numbers(2) -- a comment",
                     auth=up.auth())
    assert csv.text == '"n"\n0\n1\n' and csv.headers["x-clickhouse-query-id"] == "my-id"

    zipped = httpx.post(up.url, content=gzip.compress(b"SELECT 'zipped'"), auth=up.auth(),
                        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
    assert zipped.text == "zipped\n" and zipped.headers["content-encoding"] == "gzip"

    tables = httpx.get(up.url, params={"query": "SHOW TABLES", "database": "hutong"},
                       auth=up.auth()).text.split()
    assert "lab_results" in tables
    bound = httpx.get(up.url, params={"query": "SELECT {n:UInt8} + 1", "param_n": "41"},
                      auth=up.auth())
    assert bound.text == "42\n"


def error_of(response: httpx.Response) -> tuple[int, str]:
    return int(response.headers["x-clickhouse-exception-code"]), response.text


def test_wrong_credentials_and_other_roles_are_refused(up: Up) -> None:
    with pytest.raises(DatabaseError) as wrong:
        up.client(password="not-the-token")
    assert wrong.value.code == 516
    assert error_of(httpx.get(up.url, params={"query": "SELECT 1"}))[0] == 194
    denied = httpx.get(up.url, params={"query": "SELECT 1"}, auth=("li.analyst", "nope"))
    assert denied.status_code == 403
    assert error_of(denied)[1].startswith("Code: 516. DB::Exception: li.analyst: Authentication")
    with pytest.raises(DatabaseError) as clinician:
        up.client("dr.wang")
    assert clinician.value.code == 497
    bearer = httpx.get(up.url, params={"query": "SELECT 1"},
                       headers={"Authorization": f"Bearer {up.tokens['li.analyst']}"})
    assert bearer.text == "1\n"


REFUSED = [
    "INSERT INTO lab_results (event_id) VALUES ('x')",
    "DROP TABLE lab_results",
    "TRUNCATE TABLE lab_results",
    "ALTER TABLE lab_results DELETE WHERE 1",
    "CREATE TABLE t (a Int8) ENGINE = Memory",
    "SET readonly = 0",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1; DROP TABLE lab_results",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM FILE/* hidden */('/etc/hostname', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')",
    "SELECT 1 INTO/**/OUTFILE '{outfile}'",
    "SELECT $$--$$ INTO/**/OUTFILE '{outfile}'",
    "SYSTEM DROP DNS CACHE",
]


def test_writes_and_escapes_are_refused_and_change_nothing(up: Up, tmp_path: Path) -> None:
    rows_arrived(up)
    client = up.client()
    before = client.command("SELECT count() FROM lab_results")
    tables = client.command("SELECT count() FROM system.tables WHERE database = 'hutong'")
    outfile = tmp_path / "outfile.txt"
    for sql in REFUSED:
        answer = httpx.post(up.url, content=sql.format(outfile=outfile), auth=up.auth())
        code, body = error_of(answer)
        assert code in (164, 62), (sql, body)
        assert answer.status_code in (400, 403), sql
        assert body.startswith(f"Code: {code}. DB::Exception: "), body
    lifted = httpx.get(up.url, params={"query": "SELECT 1", "readonly": "0"}, auth=up.auth())
    assert error_of(lifted)[0] == 164
    restated = httpx.get(up.url, params={"query": "SELECT 1", "readonly": "1"}, auth=up.auth())
    assert restated.text == "1\n"
    with pytest.raises(ProgrammingError, match="readonly"):  # the client reads system.settings
        client.query("SELECT 1", settings={"max_threads": 1})
    with pytest.raises(DatabaseError) as insert:
        client.command("INSERT INTO lab_results (event_id) VALUES ('x')")
    assert insert.value.code == 164
    assert not outfile.exists()
    assert client.command("SELECT count() FROM lab_results") == before
    assert client.command("SELECT count() FROM system.tables WHERE database = 'hutong'") \
        == tables


def test_failures_answer_cleanly_and_leave_the_next_query_clean(up: Up) -> None:
    midway = httpx.post(up.url, content="SELECT throwIf(number = 100000) FROM numbers(200000)",
                        auth=up.auth())
    assert error_of(midway)[0] == 395
    assert httpx.post(up.url, content="SELECT 42", auth=up.auth()).text == "42\n"
    too_big = httpx.post(up.url, content="SELECT number FROM numbers(100000000)",
                         auth=up.auth())
    assert error_of(too_big)[0] == 396
    unknown = httpx.post(up.url, content="SELECT * FROM no_such_table", auth=up.auth())
    assert (unknown.status_code, error_of(unknown)[0]) == (404, 60)
    syntax = httpx.post(up.url, content="SELEC 1", auth=up.auth())
    assert (syntax.status_code, error_of(syntax)[0]) == (400, 62)
    assert "formatQuery" not in syntax.text
    huge = httpx.post(up.url, content=b"SELECT 1 -- " + b"x" * (2 * 1024 * 1024),
                      auth=up.auth())
    assert (huge.status_code, error_of(huge)[0]) == (413, 229)
    assert httpx.post(up.url, content="SELECT 43", auth=up.auth()).text == "43\n"


def test_up_names_the_port_and_logs_no_query_text(up: Up) -> None:
    httpx.get(up.url, params={"query": "SELECT 'P-SECRET-4711'"}, auth=up.auth())
    httpx.post(up.url, content="SELECT nonsense('P-SECRET-4712')", auth=up.auth())
    log = up.log.read_text(errors="replace")
    assert f"http://127.0.0.1:{up.port}" in log
    assert "P-SECRET" not in log


def test_a_development_hub_answers_this_machine_and_releases_the_engine(
        hub_settings: Callable[..., Settings], tmp_path: Path) -> None:
    running = RunningHub(hub_settings(tmp_path / "a")).start()
    try:  # no users configured: loopback callers are `default` without a password
        client = clickhouse_connect.get_client(host="127.0.0.1",
                                               port=running.settings.clickhouse_http_port)
        assert client.command("SELECT count() FROM system.tables WHERE database = 'hutong'") > 5
        assert "clickhouse" in running.hub.describe()
    finally:
        running.stop()
    open_warehouse(None, tmp_path / "b").close()  # the analyst session let go of the engine


def test_a_hub_on_a_clickhouse_server_serves_no_interface(tmp_path: Path) -> None:
    hub = Hub(Settings(data_dir=tmp_path, clickhouse_url="http://clickhouse:8123"))
    assert "clickhouse" not in hub.describe()
    assert "clickhouse" not in Hub(Settings(data_dir=tmp_path,
                                            clickhouse_http_port=None)).describe()
