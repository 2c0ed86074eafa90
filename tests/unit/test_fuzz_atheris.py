"""The coverage-guided side of the bad-input campaign: atheris over every parser at once.

``tests/fuzz/atheris_targets.py`` holds the targets (the Hypothesis properties' checks
on libFuzzer's bytes); here CI runs them for a few thousand inputs in a subprocess, as
atheris ends its process when it is done. Where atheris has no wheel (it ships one with
libFuzzer inside for Linux x86-64), the test is skipped: the Hypothesis properties still
run. A campaign (``HYPOTHESIS_PROFILE=campaign``) runs it for five minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzzing import CAMPAIGN

pytest.importorskip("atheris")

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(900 if CAMPAIGN else 180)  # a guard against a hang
def test_atheris_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # CI replays one fixed seed (the same inputs every run); the campaign explores new ones
    budget = (["-max_total_time=300"] if CAMPAIGN
              else ["-runs=3000", "-max_total_time=120", "-seed=20261205"])
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_targets", "all", *budget,
         "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=ROOT, capture_output=True, text=True, timeout=880 if CAMPAIGN else 170, check=False)
    report = result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "Done" in result.stderr and not list(tmp_path.glob("crash-*")), report
    assert any(corpus.iterdir())  # seeded, and grown by what reached new code
