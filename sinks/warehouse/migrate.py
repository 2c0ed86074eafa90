"""Versioned warehouse migrations.

The migrations are the ``NNNN_name.sql`` files of `sinks.warehouse.migrations`,
read through importlib.resources so they are found in an installed wheel too.
A file holds one or more statements, each ending with ``;`` at the end of a
line; ``--`` comment lines are dropped. Table names are unqualified: they land
in the warehouse's database (``hutong``), which `migrate` creates if missing.

Each applied file is recorded in ``schema_migrations``; `migrate` applies only
the versions not recorded, so running it again applies nothing. Write DDL with
``IF NOT EXISTS`` so two processes migrating at once (several sink workers
against one ClickHouse server) do no harm: the second one's statements are
no-ops and its duplicate record collapses on the version key.

On a ClickHouse cluster (``clickhouse_cluster``) every statement runs ``ON
CLUSTER`` and the tables become replicated (`for_cluster`): one migration on
one node creates them on every node, and ReplicatedReplacingMergeTree keeps the
replicas alike. Its argument-less form takes the server's
``default_replica_path`` and ``default_replica_name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from hutong.errors import WarehouseError
from sinks.warehouse.client import Warehouse

__all__ = ["Migration", "for_cluster", "load_migrations", "migrate", "split_statements"]

_PACKAGE = "sinks.warehouse.migrations"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
COMMENT 'Warehouse migrations applied (sinks/warehouse/migrations)'
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, its name (the file name without .sql) and statements."""

    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a migration into statements: each ends with ``;`` at the end of a line."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().removesuffix(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return tuple(statement for statement in statements if statement)


_DDL_TARGET = re.compile(
    r"^(?P<head>\s*(?:CREATE\s+(?:TABLE|VIEW|DATABASE)\s+IF\s+NOT\s+EXISTS|ALTER\s+TABLE|"
    r"DROP\s+(?:TABLE|VIEW)\s+IF\s+EXISTS)\s+)(?P<name>[A-Za-z_][A-Za-z0-9_.]*)",
    re.IGNORECASE)
_MERGE_TREE = re.compile(r"ENGINE\s*=\s*(?P<engine>(?:Replacing|Summing|Aggregating)?MergeTree)"
                         r"(?:\s*\(\s*\))?", re.IGNORECASE)


def for_cluster(statement: str, cluster: str) -> str:
    """``statement`` run on every node of ``cluster``, its MergeTree tables replicated."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", cluster):
        raise WarehouseError(f"cluster name {cluster!r} is not a plain identifier")
    found = _DDL_TARGET.match(statement)
    if found is None:
        return statement
    clustered = (f"{found['head']}{found['name']} ON CLUSTER {cluster}"
                 f"{statement[found.end():]}")
    return _MERGE_TREE.sub(lambda m: f"ENGINE = Replicated{m['engine']}", clustered)


def load_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    migrations: list[Migration] = []
    for entry in resources.files(_PACKAGE).iterdir():
        found = _FILE_NAME.match(entry.name)
        if found is None:
            continue
        statements = split_statements(entry.read_text(encoding="utf-8"))
        migrations.append(Migration(int(found["version"]), entry.name[:-4], statements))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise WarehouseError(f"two warehouse migrations share a version: {versions}")
    return migrations


def migrate(wh: Warehouse, cluster: str | None = None) -> list[str]:
    """Create the database and apply pending migrations; return the names applied.

    With ``cluster``, statements run ON CLUSTER with replicated tables (`for_cluster`).
    """
    def run(statement: str) -> None:
        wh.command(for_cluster(statement, cluster) if cluster else statement)

    if cluster:
        run(f"CREATE DATABASE IF NOT EXISTS {wh.database}")
    wh.ensure_database(create=cluster is None)
    run(_CREATE_LEDGER)
    _, rows = wh.query_rows("SELECT DISTINCT version FROM schema_migrations")
    applied = {int(row[0]) for row in rows}
    done: list[str] = []
    for migration in load_migrations():
        if migration.version in applied:
            continue
        for number, statement in enumerate(migration.statements, start=1):
            try:
                run(statement)
            except WarehouseError as exc:
                raise WarehouseError(
                    f"migration {migration.name}, statement {number}: {exc}"
                ) from exc
        wh.insert("schema_migrations", [(migration.version, migration.name)], ("version", "name"))
        done.append(migration.name)
    return done
