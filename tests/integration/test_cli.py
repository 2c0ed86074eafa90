"""The commands as a user runs them: separate processes, real ports, real signals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .processes import hub_env

pytestmark = pytest.mark.integration

HUTONG = [sys.executable, "-m", "hutong"]
DEMO_FACILITIES = Path(__file__).parents[2] / "hutong" / "demo" / "facilities.yaml"


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def running_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    env = hub_env(tmp_path / "var")
    (tmp_path / "var").mkdir()  # the registry in its default place: <data_dir>/facilities.yaml
    shutil.copy(DEMO_FACILITIES, tmp_path / "var" / "facilities.yaml")
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen([*HUTONG, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['HUTONG_HTTP_PORT']}/healthz"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("hutong up did not become healthy")
    yield proc, env
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    log.close()


def test_up_serves_sql_refuses_a_second_hub_and_stops_on_sigterm(
        running_up: tuple[subprocess.Popen[bytes], dict[str, str]]) -> None:
    proc, env = running_up
    answer = subprocess.run([*HUTONG, "sql", "SELECT count() AS n FROM hutong.lab_results",
                             "--format", "json"], env=env, capture_output=True, timeout=60)
    assert answer.returncode == 0, answer.stderr.decode()
    assert json.loads(answer.stdout) == [{"n": 0}]

    second = subprocess.run([*HUTONG, "up"], env=env, capture_output=True, timeout=60)
    assert second.returncode == 2
    assert b"is in use by another hutong" in second.stdout + second.stderr

    children = children_of(proc.pid)
    assert len(children) >= 2  # the broker and the stream worker
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert time.monotonic() - started < 20
    deadline = time.monotonic() + 10
    while any(alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if alive(c)]


def test_demo_prints_a_summary_with_rows(tmp_path: Path) -> None:
    result = subprocess.run([*HUTONG, "demo"], env=hub_env(tmp_path / "var"),
                            capture_output=True, timeout=240)
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in out.splitlines() if line.count("│") == 3}
    assert rows["messages sent (MLLP)"] == "36"
    assert rows["ACK AA"] == "33" and rows["ACK AE"] == "3"
    assert int(rows["lab results in warehouse"]) == 99
    assert int(rows["dead letters in warehouse"]) == 3
    # 33 accepted messages about 22 residents, 7 of them seen at two or three facilities
    assert (rows["patient records linked (EMPI)"], rows["people they are"],
            rows["people seen at 2+ facilities"]) == ("33", "22", "7")
    # the demo maps cover every lab code but CREA at the township clinic (7 results)
    assert (rows["lab tests translated to LOINC"], rows["left with a local code"]) == (
        "92", "7")
    assert "CREA at HHXWSY (7)" in out


def test_unknown_setting_is_named(tmp_path: Path) -> None:
    env = {**hub_env(tmp_path), "HUTONG_MLLP_PROT": "2575"}
    result = subprocess.run([*HUTONG, "up"], env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert b"HUTONG_MLLP_PROT" in result.stdout + result.stderr


def test_send_prints_each_ack_and_fails_when_one_is_not_aa(
        running_up: tuple[subprocess.Popen[bytes], dict[str, str]]) -> None:
    _, env = running_up
    feed = Path(__file__).parents[2] / "hutong" / "demo" / "feeds" / "hhxwsy-lab.hl7"
    result = subprocess.run([*HUTONG, "send", str(feed), "--to",
                             f"mllp://127.0.0.1:{env['HUTONG_MLLP_PORT']}"],
                            env=env, capture_output=True, timeout=60)
    out = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, out  # the feed holds one broken message on purpose
    assert "AE HHXWSY00011" in out and "OBX[2]-5" in out
    assert "12 messages sent" in out and "11 AA" in out


def test_broker_alone_serves_the_contract_topics(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient

    env = hub_env(tmp_path)
    log = (tmp_path / "broker.log").open("wb")
    proc = subprocess.Popen([*HUTONG, "broker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{env['HUTONG_KAFKA_PORT']}"})
        deadline = time.monotonic() + 30
        topics: set[str] = set()
        while "hutong.dlq" not in topics and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "broker.log").read_text()
            try:
                topics = set(admin.list_topics(timeout=1).topics)
            except Exception:
                time.sleep(0.3)
        assert "hutong.std.lab-result" in topics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
