"""Analysts' read-only session on the embedded warehouse: raw bytes in any ClickHouse format.

The hub's ClickHouse HTTP interface (`hutong.api.clickhouse_http`) answers
analysts on the process that owns chDB. Their queries run here, on a second
chDB connection to the engine the warehouse client already has open (chDB lets
a process hold any number of connections to its one engine), never on the
client the sink writes with:

- The session is made read-only by the engine before any analyst query runs:
  `LIMITS` first, then ``readonly = 1``. From then on no statement, ``SETTINGS``
  clause or ``SET`` can write, lift ``readonly`` or change a limit, and table
  functions that reach files or the network (``file``, ``url``, ``remote``...)
  are refused by the engine itself (``INTO OUTFILE`` is not: `hutong.api.sql`
  refuses it).
- It has its own lock, so a long analyst query never holds up the sink's inserts.
- chDB 4.4 hands the half-written output of a query that failed mid-way to the
  next query on the same connection (measured: ``throwIf`` after the first
  blocks). After any failure the connection is closed and the next query opens
  a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import chdb

from hutong.errors import WarehouseError, WarehouseQueryError

__all__ = ["LIMITS", "SPECIAL_FORMATS", "AnalystSession", "RawResult"]

log = logging.getLogger(__name__)

#: Set on the session before it turns read-only; documented in docs/operations.md.
LIMITS: Mapping[str, str] = {
    "max_execution_time": "300",                    # seconds per query
    "max_result_bytes": str(128 * 1024 * 1024),     # the result in memory, before formatting
    "result_overflow_mode": "throw",
}
#: Format names chDB's Python API turns into Python objects instead of bytes.
SPECIAL_FORMATS = frozenset({"dataframe", "datastore", "arrowtable"})

_FORMAT_QUERY = "SELECT formatQuerySingleLine({q:String}) AS q"
_WRAPPER_SCOPE = re.compile(r":? In scope SELECT formatQuerySingleLine\(.*?\) AS q\.?", re.DOTALL)
_ENGINE_ERROR_CODE = 1001  # STD_EXCEPTION: a failure that named no ClickHouse code


@dataclass(frozen=True, slots=True)
class RawResult:
    """A query's output in the format it asked for, with the engine's counters."""

    data: bytes
    read_rows: int
    read_bytes: int
    elapsed_ns: int


class AnalystSession:
    """One read-only chDB connection to the engine at `path`, opened on first use."""

    def __init__(self, path: str, database: str, location: str) -> None:
        self._path = path
        self._database = database
        self._location = location
        self._lock = threading.Lock()
        self._conn: Any = None
        self._current_database: str | None = None
        self._closed = False

    def format_query(self, sql: str) -> str:
        """The engine's own one-line rendering of ``sql``: comments gone, keywords spelt out.

        A statement the engine cannot parse (or more than one) raises
        `WarehouseQueryError` with the engine's code (62, SYNTAX_ERROR).
        """
        with self._lock:
            try:
                result = self._run_locked(_FORMAT_QUERY, "JSONEachRow", {"q": _escaped(sql)})
            except WarehouseQueryError as exc:  # leave out the wrapper the engine quotes
                exc.detail = _WRAPPER_SCOPE.sub("", exc.detail)
                raise
        return str(json.loads(result.data)["q"])

    def query(self, sql: str, fmt: str, *, parameters: Mapping[str, str] | None = None,
              database: str | None = None) -> RawResult:
        """Run ``sql``; its output in ``fmt`` unless it names a ``FORMAT`` itself.

        ``parameters`` fill ``{name:Type}`` placeholders, as text the engine parses.
        """
        if fmt.lower() in SPECIAL_FORMATS:
            raise WarehouseQueryError(f"{self._location}: unknown format", code=73,
                                      detail=f"Unknown format {fmt}. (UNKNOWN_FORMAT)")
        with self._lock:
            self._use_locked(database or self._database)
            return self._run_locked(sql, fmt, dict(parameters or {}))

    def close(self, timeout: float = 10.0) -> None:
        """Close the connection; a query still running after ``timeout`` keeps it open."""
        self._closed = True
        if not self._lock.acquire(timeout=timeout):
            log.warning("an analyst query is still running; its chDB connection stays open")
            return
        try:
            self._drop_locked()
        finally:
            self._lock.release()

    def _connection_locked(self) -> Any:
        if self._closed:
            raise WarehouseError(f"{self._location}: the warehouse connection is closed")
        if self._conn is None:
            conn = chdb.connect(self._path)  # type: ignore[no-untyped-call]
            try:
                for name, value in LIMITS.items():
                    conn.query(f"SET {name} = '{value}'", "TabSeparated")
                conn.query("SET readonly = 1", "TabSeparated")
            except Exception as exc:
                conn.close()
                raise WarehouseError(f"{self._location}: cannot open the analyst session: "
                                     f"{type(exc).__name__}") from exc
            self._conn = conn
            self._current_database = None
        return self._conn

    def _use_locked(self, database: str) -> None:
        if database != self._current_database:
            self._run_locked(f"USE {_identifier(database)}", "TabSeparated", {})
            self._current_database = database

    def _run_locked(self, sql: str, fmt: str, params: dict[str, str]) -> RawResult:
        conn = self._connection_locked()
        started = time.monotonic_ns()
        try:
            result = conn.query(sql, fmt, params=params)
            return RawResult(bytes(result.bytes() or b""), int(result.rows_read()),
                             int(result.bytes_read()), time.monotonic_ns() - started)
        except Exception as exc:
            self._drop_locked()  # its next query would start with this one's leftovers
            detail = str(exc)
            code = _code_of(detail)
            raise WarehouseQueryError(f"{self._location}: analyst query failed (code {code})",
                                      code=code, detail=detail) from None

    def _drop_locked(self) -> None:
        conn, self._conn, self._current_database = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a connection that already failed
                conn.close()


def _code_of(message: str) -> int:
    """The first ``Code: N`` the engine put in its message."""
    marker = message.find("Code: ")
    if marker < 0:
        return _ENGINE_ERROR_CODE
    digits = message[marker + 6:].split(".", 1)[0].strip()
    return int(digits) if digits.isdigit() else _ENGINE_ERROR_CODE


def _escaped(text: str) -> str:
    """``text`` as the engine reads a String query parameter (TSV escaping)."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
            .replace("\r", "\\r").replace("\0", "\\0"))


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
