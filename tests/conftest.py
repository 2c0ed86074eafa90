"""Shared test setup: no HUTONG_* variable of the developer's shell leaks in, and none a
test sets leaks out.

``load_settings(config_file)`` names its file in ``HUTONG_CONFIG`` for the child processes
a hub starts; a test that calls it would otherwise hand its file (say, a connectors-only
hub on ``kafka:9092``) to every hub the same test process starts later (the suite runs
its files in two processes, in no fixed order).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

for _name in list(os.environ):
    if _name.startswith("HUTONG_") and not _name.startswith("HUTONG_TEST_"):
        del os.environ[_name]


@pytest.fixture(autouse=True)
def _hutong_environment_restored() -> Iterator[None]:
    before = {k: v for k, v in os.environ.items() if k.startswith("HUTONG_")}
    yield
    for name in [k for k in os.environ if k.startswith("HUTONG_")]:
        if name not in before:
            del os.environ[name]
    os.environ.update(before)


#: The files that take longest (a minute and more each): run first, so that with the
#: files spread over two processes neither waits for one of these at the end.
_LONGEST_FIRST = ("test_faults.py", "test_federation.py", "test_empi.py", "test_cli.py",
                  "test_console.py", "test_critical_values.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order = {name: rank for rank, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))  # stable otherwise
