"""Shared test setup: no HUTONG_* variable of the developer's shell leaks in."""

from __future__ import annotations

import os

for _name in list(os.environ):
    if _name.startswith("HUTONG_") and not _name.startswith("HUTONG_TEST_"):
        del os.environ[_name]
