"""The public surface of streams.alerts, pinned: a change to it is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

import streams.alerts

MODULES = ["bands", "dedup", "evaluate", "lifecycle", "loading", "parsing", "rules"]


def test_the_package_exports() -> None:
    assert sorted(streams.alerts.__all__) == [
        "AckOutcome", "AgeBands", "Alert", "Band", "Decision", "Dedup", "EscalationStep", "Hit",
        "Limit", "Rule", "RuleBook", "RuleFileError", "RuleSet", "Skip", "Turnaround",
        "acknowledge", "alert_id_for", "due", "escalate", "evaluate", "load_default",
        "load_overlay", "load_rule_book", "load_rule_set", "parse_duration", "raise_alert",
        "result_time", "skipped", "turnaround"]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_names_what_it_exports(name: str) -> None:
    module = importlib.import_module(f"streams.alerts.{name}")
    assert len(set(module.__all__)) == len(module.__all__)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.{member}"
    public = {n for n, v in vars(module).items()
              if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__}
    assert public <= set(module.__all__), f"{name}: {public - set(module.__all__)}"


def test_rule_file_error_is_a_hutong_error() -> None:
    from hutong.errors import HutongError
    assert issubclass(streams.alerts.RuleFileError, HutongError)
