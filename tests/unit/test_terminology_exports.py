"""The public surface of streams.terminology: every module names it in ``__all__``."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["streams.terminology", "streams.terminology.maps", "streams.terminology.files",
           "streams.terminology.tables", "streams.terminology.shapes",
           "streams.terminology.units", "streams.terminology.translate"]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_what_the_module_has(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    assert [n for n in exported if not hasattr(module, n)] == []


def test_the_package_exports() -> None:
    package = importlib.import_module("streams.terminology")
    assert {"MapEntry", "MapStore", "load_folder", "diff_loads", "translate", "Translated",
            "UnmappedHit", "normalise_unit", "TABLES_VERSION"} <= set(package.__all__)
