"""The ClickHouse warehouse: connection, migrations, event rows and the idempotent writer.

One clickhouse-connect client serves both the embedded chDB (``open_warehouse(None, data_dir)``)
and a ClickHouse server (``open_warehouse("https://user:password@host:8443", data_dir)``).
"""

from sinks.warehouse.client import Warehouse, open_warehouse
from sinks.warehouse.migrate import migrate
from sinks.warehouse.rows import TABLES, TableSpec
from sinks.warehouse.writer import WarehouseWriter

__all__ = ["TABLES", "TableSpec", "Warehouse", "WarehouseWriter", "migrate", "open_warehouse"]
