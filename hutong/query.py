"""``hutong sql``: through the running hub's API, else the warehouse itself."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from hutong.api.sql import engine_refusal, jsonable, refusal
from hutong.config import Settings
from hutong.errors import HutongError
from sinks.warehouse import open_warehouse

__all__ = ["print_result", "run_query"]


def run_query(settings: Settings, query: str) -> tuple[list[str], list[list[Any]]]:
    """Ask the running hub; when none answers, open the warehouse in this process."""
    headers = {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    try:
        response = httpx.post(f"{settings.api_url}/api/v1/sql", json={"query": query},
                              headers=headers, timeout=120, verify=settings.api_verify())
    except httpx.ConnectError:
        return _direct(settings, query)
    if response.status_code != 200:
        detail = response.json().get("detail", response.text) if response.content else ""
        raise HutongError(f"the hub refused the query ({response.status_code}): {detail}")
    body = response.json()
    return body["columns"], body["rows"]


def _direct(settings: Settings, query: str) -> tuple[list[str], list[list[Any]]]:
    reason = refusal(query)
    if reason is not None:
        raise HutongError(f"hutong sql refused the query: {reason}")
    warehouse = open_warehouse(settings.clickhouse_url, settings.data_dir)
    try:
        reason = engine_refusal(warehouse, query)
        if reason is not None:
            raise HutongError(f"hutong sql refused the query: {reason}")
        columns, rows = warehouse.query_rows(query, read_only=True)
    finally:
        warehouse.close()
    return columns, [[jsonable(v) for v in row] for row in rows]


def print_result(columns: list[str], rows: list[list[Any]], fmt: str) -> None:
    if fmt == "json":
        json.dump([dict(zip(columns, row, strict=True)) for row in rows], sys.stdout,
                  ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        Console(stderr=True).print(f"{len(rows)} rows")
