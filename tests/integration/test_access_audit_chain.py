"""The document access audit is tamper-evident and kept at least six months.

On SQLite and on PostgreSQL (the machine's ``test``): each row chained to the one
before by hash, a retention purge that cuts only the oldest rows and leaves an
anchor where the kept chain begins, concurrent writers on one chain, a store from
before the chain, `hutong audit-verify` over both audit trails, the user additions
of `hutong users add` in the audit log, and a PostgreSQL ``sslmode`` that the driver
enforces.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text, update
from typer.testing import CliRunner

from hutong.audit import AuditLog
from hutong.cli import app as cli
from hutong.config import Settings
from hutong.errors import DocumentStoreError
from hutong.hub import Hub
from sinks.docstore.schema import MIGRATIONS, access_audit
from sinks.docstore.store import MIN_AUDIT_RETENTION_DAYS, AccessRecord, DocumentStore, open_store
from tests.docstore_support import BACKENDS, POSTGRES_URL, store_on

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentStore]:
    with store_on(request.param, tmp_path) as opened:
        yield opened


def read(store: DocumentStore, days_ago: float = 1, who: str = "dr.wang",
         empi_id: str = "E-42") -> None:
    store.record_access(AccessRecord(who, frozenset({"clinician"}), "read", "treatment",
                                     "allowed", empi_id, "1.2.3^DOC", "10.0.0.1",
                                     at=NOW - dt.timedelta(days=days_ago)))


def test_every_read_extends_one_chain(store: DocumentStore) -> None:
    assert store.verify_audit() == (0, 0)
    for n in range(5):
        read(store, days_ago=5 - n)
    assert store.verify_audit() == (5, 0)
    assert len(store.audit_head()) == 64


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
def test_an_edited_deleted_or_reordered_row_breaks_the_chain(store: DocumentStore,
                                                             tamper: str) -> None:
    for n in range(4):
        read(store, who=f"dr.{n}")
    with store.engine.begin() as conn:
        a = access_audit.c
        if tamper == "edit":  # someone hides who read the record
            conn.execute(update(access_audit).where(a.principal == "dr.1").values(
                principal="dr.nobody"))
        elif tamper == "delete":
            conn.execute(access_audit.delete().where(a.principal == "dr.2"))
        else:  # two rows trade places (their content swapped between ids)
            conn.execute(update(access_audit).where(a.principal == "dr.1").values(
                principal="swap"))
            conn.execute(update(access_audit).where(a.principal == "dr.2").values(
                principal="dr.1"))
            conn.execute(update(access_audit).where(a.principal == "swap").values(
                principal="dr.2"))
    with pytest.raises(DocumentStoreError, match="breaks the chain"):
        store.verify_audit()


def test_a_purge_keeps_six_months_and_the_chain_stays_whole(store: DocumentStore) -> None:
    for days in (400, 300, 184, 182.9, 30):
        read(store, days_ago=days)
    with pytest.raises(ValueError, match="183"):
        store.purge_audit(MIN_AUDIT_RETENTION_DAYS - 1, NOW)
    assert store.purge_audit(MIN_AUDIT_RETENTION_DAYS, NOW) == 3
    kept = [NOW - r.at for r in store.access_records()]
    assert kept == [dt.timedelta(days=182.9), dt.timedelta(days=30)]
    assert store.verify_audit() == (2, 0)  # begins at the anchor the purge left
    read(store, days_ago=0)
    assert store.purge_audit(MIN_AUDIT_RETENTION_DAYS, NOW) == 0
    assert store.verify_audit() == (3, 0)


def test_a_purge_never_takes_a_row_inside_the_retention(store: DocumentStore) -> None:
    """A row written late with an old time (clock skew) waits behind a younger one: the
    purge cuts only the oldest rows by id, so the chain has no hole and nothing young
    goes; the old row goes at a later purge."""
    for days in (300, 10, 250, 200):
        read(store, days_ago=days)
    assert store.purge_audit(190, NOW) == 1  # 300 only: 250 and 200 are behind 10
    assert sorted((NOW - r.at).days for r in store.access_records()) == [10, 200, 250]
    assert store.verify_audit() == (3, 0)
    everything = store.purge_audit(190, NOW + dt.timedelta(days=400))
    assert everything == 3 and store.access_records() == []
    assert store.verify_audit() == (0, 0)
    read(store, days_ago=0)  # the chain goes on from the anchor
    assert store.verify_audit() == (1, 0)


def test_concurrent_readers_extend_one_chain(store: DocumentStore) -> None:
    errors: list[BaseException] = []

    def reader(n: int) -> None:
        try:
            for i in range(10):
                read(store, who=f"dr.{n}", empi_id=f"E-{i}")
        except BaseException as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert store.verify_audit() == (40, 0)


def test_a_store_from_before_the_chain_gets_it(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    try:
        store.migrate(MIGRATIONS[:1])
        with store.engine.begin() as conn:  # as migration 1 made it before the chain
            conn.execute(text("ALTER TABLE access_audit DROP COLUMN hash"))
            conn.execute(text("ALTER TABLE access_audit DROP COLUMN prev_hash"))
            conn.execute(text("INSERT INTO access_audit (at, principal, roles, action, "
                              "purpose, outcome) VALUES ('2026-11-01 00:00:00', 'dr.old', "
                              "'clinician', 'read', 'treatment', 'allowed')"))
        assert store.migrate() == ["access_audit_chain"]
        read(store)
        assert store.verify_audit() == (1, 1)
    finally:
        store.close()


def test_the_hub_witnesses_each_purge_in_the_audit_log(tmp_path: Path) -> None:
    with store_on("sqlite", tmp_path) as store:
        read(store, days_ago=400)
        read(store, days_ago=1)
        hub = Hub(Settings(data_dir=tmp_path))
        hub.documents, hub.audit = store, AuditLog(tmp_path / "audit")
        hub._purge_access_audit()
        [purged] = [r for r in hub.audit.records() if r["action"] == "access_audit.purged"]
        assert purged["rows"] == 1 and purged["head"] == store.audit_head()


def test_audit_verify_checks_both_trails_and_fails_on_a_break(tmp_path: Path) -> None:
    env = {"HUTONG_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "dr.zhao", "--role", "clinician"], env=env)
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[-1]
    [entry] = AuditLog(tmp_path / "audit").records()
    assert (entry["action"], entry["user"], entry["roles"]) == ("user.added", "dr.zhao",
                                                                ["clinician"])
    assert entry["principal"].startswith("os:") and token not in str(entry)
    store = open_store(None, tmp_path)
    store.migrate()
    read(store)
    read(store)
    checked = runner.invoke(cli, ["audit-verify"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "audit log intact: 1 records" in checked.output
    assert "document access audit intact: 2 records" in checked.output
    with store.engine.begin() as conn:
        conn.execute(update(access_audit).values(outcome="refused"))
    store.close()
    broken = runner.invoke(cli, ["audit-verify"], standalone_mode=False, env=env)
    assert isinstance(broken.exception, DocumentStoreError)
    assert "breaks the chain" in str(broken.exception)


def test_postgresql_sslmode_reaches_the_driver(tmp_path: Path) -> None:
    """This machine's PostgreSQL speaks no TLS: a store that requires it is refused
    rather than connected in the clear."""
    joiner = "&" if "?" in POSTGRES_URL else "?"
    store = open_store(f"{POSTGRES_URL}{joiner}sslmode=require", tmp_path)
    try:
        with pytest.raises(DocumentStoreError, match="SSL"):
            store.migrate()
    finally:
        store.close()


def test_an_online_backup_restores_with_both_trails_intact(tmp_path: Path) -> None:
    """The runbook's backup of a live SQLite store (``sqlite3 .backup``) and a copy of
    ``audit/``: the restored store opens, and both chains verify."""
    import shutil
    import sqlite3

    live_dir, restored_dir = tmp_path / "live", tmp_path / "restored"
    store = open_store(None, live_dir)
    store.migrate()
    for n in range(3):
        read(store, who=f"dr.{n}")
    AuditLog(live_dir / "audit").record("empi.merge", principal="ops")
    restored_dir.mkdir()
    source = sqlite3.connect(live_dir / "documents.sqlite")
    target = sqlite3.connect(restored_dir / "documents.sqlite")
    with target:
        source.backup(target)  # while the hub's connection is open
    source.close()
    target.close()
    read(store, who="after-the-backup")
    store.close()
    shutil.copytree(live_dir / "audit", restored_dir / "audit")
    restored = open_store(None, restored_dir)
    try:
        assert restored.migrate() == []
        assert restored.verify_audit() == (3, 0)
        assert [r.principal for r in restored.access_records()] == ["dr.0", "dr.1", "dr.2"]
    finally:
        restored.close()
    checked = CliRunner().invoke(cli, ["audit-verify"], env={"HUTONG_DATA_DIR": str(restored_dir)})
    assert checked.exit_code == 0 and "document access audit intact: 3 records" in checked.output
