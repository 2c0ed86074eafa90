"""One connection to the warehouse: chDB in-process, or a ClickHouse server.

Both are the same clickhouse-connect client: a ``chdb://`` DSN selects the
embedded engine, an ``http(s)://`` URL a server. `Warehouse` wraps one client
behind a lock, so the sink worker, the HTTP API and the CLI can share it across
threads, and turns every driver failure into `WarehouseError`.

chDB facts this module is built on (measured with chdb 4.4 / clickhouse-connect 1.12):

- A data directory can be open in one process only. ClickHouse holds an
  exclusive ``flock`` on ``<dir>/status`` (the file names the owner's PID); a
  second process gets only "Error initializing EmbeddedServer" from chDB, the
  real cause goes to stderr. `open_warehouse` checks that lock after a failed
  open and says plainly who owns the directory.
- A process hosts one engine bound to one path at a time: opening another path
  while a client is open fails; after every client is closed, another path opens.
- Tables live in the `database` (``hutong``), which is the session default
  once it exists, so SQL names tables unqualified: ``SELECT count() FROM lab_results``.
- Analysts' raw queries (`Warehouse.query_raw`, the ClickHouse HTTP interface)
  run on a second, read-only connection to the same engine
  (`sinks.warehouse.analyst`), embedded only.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import Error as DriverError

from hutong.errors import WarehouseError
from sinks.warehouse.analyst import AnalystSession, RawResult

__all__ = ["Warehouse", "open_warehouse"]

_DATABASE_EXISTS = "SELECT count() FROM system.databases WHERE name = {db:String}"
_CREATE_DATABASE = "CREATE DATABASE IF NOT EXISTS {db:Identifier}"


class Warehouse:
    """A thread-safe handle on one clickhouse-connect client.

    `location` names the warehouse in messages (never with a password).
    """

    def __init__(self, client: Any, database: str, location: str, *,
                 chdb_path: str | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._insert_contexts: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._closed = False
        self.database = database
        self.location = location
        #: Analysts' read-only session on the embedded engine (None for a server).
        self._analyst = (AnalystSession(chdb_path, database, location)
                         if chdb_path is not None else None)

    @property
    def embedded(self) -> bool:
        """Whether this is the in-process chDB engine (which answers raw queries)."""
        return self._analyst is not None

    def canonical_sql(self, sql: str) -> str:
        """The engine's own rendering of ``sql`` (``formatQuery``: comments gone, keywords
        spelt out), so a check on the text cannot be dodged with ``INTO/**/OUTFILE``."""
        _, rows = self.query_rows("SELECT formatQuery({q:String})", {"q": sql})
        return str(rows[0][0])

    def format_query(self, sql: str) -> str:
        """The engine's one-line rendering of one statement (comments gone); embedded only."""
        return self._analyst_session().format_query(sql)

    def query_raw(self, sql: str, fmt: str, *, parameters: Mapping[str, str] | None = None,
                  database: str | None = None) -> RawResult:
        """Run an analyst's statement read-only; its output in ``fmt`` (or its own FORMAT).

        Embedded only: it runs on the analyst session, not on the client the sink
        writes with. Failures raise `hutong.errors.WarehouseQueryError`.
        """
        return self._analyst_session().query(sql, fmt, parameters=parameters,
                                             database=database)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, ``INSERT ... SELECT``)."""
        with self._lock:
            self._check_open()
            self._insert_contexts.clear()  # DDL may change the columns they describe
            try:
                self._client.command(sql, parameters=_params(parameters))
            except DriverError as exc:
                raise WarehouseError(f"{self.location}: statement failed: {exc}") from exc

    def query_rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a query; return its column names and rows.

        Values in ``{name:Type}`` placeholders travel as server-side parameters;
        ``read_only`` runs it with ClickHouse's ``readonly=1`` (analysts' queries).
        """
        settings = {"readonly": 1} if read_only else None
        with self._lock:
            self._check_open()
            try:
                result = self._client.query(sql, parameters=_params(parameters),
                                            settings=settings)
                names = list(result.column_names)
                rows = [tuple(row) for row in result.result_rows]
                if not names and not rows:
                    names = self._describe_locked(sql, parameters)
            except DriverError as exc:
                raise WarehouseError(f"{self.location}: query failed: {exc}") from exc
            except ValueError as exc:  # a stored value Python cannot represent (year 0, …)
                raise WarehouseError(f"{self.location}: a result value cannot be read: "
                                     f"{type(exc).__name__}") from exc
        return names, rows

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]
    ) -> None:
        """Insert `rows` into `table` of the hutong database in one statement."""
        if not rows:
            return
        key = (table, tuple(column_names))
        with self._lock:
            self._check_open()
            try:
                context = self._insert_contexts.get(key)
                if context is None:
                    context = self._client.create_insert_context(
                        table=table, column_names=list(column_names), database=self.database
                    )
                    self._insert_contexts[key] = context
                context.data = rows
                self._client.insert(context=context)
            except DriverError as exc:
                self._insert_contexts.pop(key, None)
                raise WarehouseError(f"{self.location}: insert into {table} failed: {exc}") from exc
            except (TypeError, ValueError, OverflowError) as exc:
                # Python-side conversion: the message may quote a value, so leave it out
                self._insert_contexts.pop(key, None)
                reason = f"rows do not fit the columns of {table} ({type(exc).__name__})"
                raise WarehouseError(f"{self.location}: {reason}") from exc

    def ensure_database(self, *, create: bool = True) -> bool:
        """Make the hutong database the session default, creating it first if `create`.

        Returns False (and changes nothing) when it does not exist and `create` is off.
        """
        if create:
            self.command(_CREATE_DATABASE, {"db": self.database})
        else:
            _, rows = self.query_rows(_DATABASE_EXISTS, {"db": self.database})
            if not rows[0][0]:
                return False
        with self._lock:
            self._check_open()
            self._client.database = self.database
        return True

    def close(self) -> None:
        """Close the client; for chDB this releases the data directory."""
        if self._analyst is not None:
            self._analyst.close()  # first: any open connection keeps the engine
        with self._lock:
            if not self._closed:
                self._closed = True
                self._insert_contexts.clear()
                self._client.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _analyst_session(self) -> AnalystSession:
        if self._analyst is None:
            raise WarehouseError(f"{self.location}: raw queries are served by the embedded "
                                 "warehouse only; query the ClickHouse server directly")
        return self._analyst

    def _check_open(self) -> None:
        if self._closed:
            raise WarehouseError(f"{self.location}: the warehouse connection is closed")

    def _describe_locked(self, sql: str, parameters: Mapping[str, Any] | None) -> list[str]:
        """Column names of a query that returned nothing (the engine sends no header then)."""
        try:
            described = self._client.query(
                f"DESCRIBE TABLE ({sql.strip().rstrip(';')})", parameters=_params(parameters)
            )
        except DriverError:
            return []  # not a SELECT (SHOW, EXISTS ...): no names to give
        return [str(row[0]) for row in described.result_rows]


def open_warehouse(url: str | None, data_dir: Path, database: str = "hutong") -> Warehouse:
    """Connect to the warehouse.

    `url` None opens the embedded chDB at ``data_dir / "warehouse"``; an
    ``http(s)://user:password@host:port`` URL connects to a ClickHouse server (over
    TLS for ``https``, verified against ``?ca_cert=/path/ca.pem`` or the system store;
    ``client_cert`` and ``client_cert_key`` for mutual TLS). The database becomes the
    session default when it exists; `migrate` creates it.
    """
    if url is None:
        path = (data_dir / "warehouse").resolve()
        path.mkdir(parents=True, exist_ok=True)
        warehouse = Warehouse(_open_chdb(path), database, f"chDB at {path}",
                              chdb_path=os.path.realpath(path))
    elif (scheme := urlsplit(url).scheme) in ("http", "https"):
        location = f"ClickHouse at {_without_credentials(url)}"
        try:
            # clickhouse-connect takes TLS options from the URL (?ca_cert=, client_cert=,
            # verify=) but not the scheme itself: https must be said, or it speaks http.
            client = clickhouse_connect.get_client(dsn=url, interface=scheme)
        except DriverError as exc:
            raise WarehouseError(f"cannot reach {location}: {exc}") from exc
        warehouse = Warehouse(client, database, location)
    else:
        raise WarehouseError(
            f"warehouse URL must start with http:// or https:// (got {urlsplit(url).scheme!r}); "
            "leave it unset for the embedded chDB warehouse"
        )
    try:
        warehouse.ensure_database(create=False)
    except BaseException:
        warehouse.close()
        raise
    return warehouse


def _params(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(parameters) if parameters else None


def _open_chdb(path: Path) -> Any:
    try:
        return clickhouse_connect.get_client(dsn=f"chdb://{path}")
    except DriverError as exc:
        owner = _status_lock_owner(path)
        if owner is not None:
            raise WarehouseError(
                f"another process (pid {owner}, probably a running `hutong up`) owns the "
                f"embedded warehouse at {path}; chDB lets only one process open it. "
                'Query through the hub instead: hutong sql "SELECT ..."'
            ) from exc
        raise WarehouseError(f"cannot open the embedded warehouse at {path}: {exc}") from exc


def _status_lock_owner(path: Path) -> str | None:
    """The PID holding ClickHouse's lock on ``path/status``, or None if nobody holds it."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            found = re.search(rb"PID:\s*(\d+)", os.read(fd, 512))
            return found.group(1).decode() if found else "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
