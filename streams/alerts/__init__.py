"""Critical values (危急值): rules, evaluation, de-duplication and the closed loop.

Pure logic, no I/O beyond reading rule files. The stream worker decodes a
standard lab result or imaging report, and then:

1. :func:`.evaluate.evaluate` finds the rules of the facility's
   :class:`.rules.RuleSet` (:mod:`.loading`: the shipped default, which is NOT a
   national standard, overlaid by the facility's own file) that it crosses;
2. :class:`.dedup.Dedup` decides which hits become alerts (first report only,
   the repeat window), its state kept in a key-value table;
3. :func:`.lifecycle.raise_alert` builds the ``hutong.alerts.critical`` record,
   :func:`.lifecycle.escalate` moves it along the rule set's escalation plan and
   :func:`.lifecycle.acknowledge` closes it with a ``hutong.alerts.ack`` record,
   giving the turnaround.

Age bands are in :mod:`.bands`. Errors::

    HutongError
    └── RuleFileError       a rule file that cannot be used (file, rule id, field)
"""

from __future__ import annotations

from streams.alerts.bands import AgeBands, Band, result_time
from streams.alerts.dedup import Decision, Dedup
from streams.alerts.evaluate import Hit, Skip, evaluate, skipped
from streams.alerts.lifecycle import (
    AckOutcome,
    Alert,
    Turnaround,
    acknowledge,
    alert_id_for,
    due,
    escalate,
    raise_alert,
    turnaround,
)
from streams.alerts.loading import (
    RuleBook,
    load_default,
    load_overlay,
    load_rule_book,
    load_rule_set,
)
from streams.alerts.parsing import RuleFileError
from streams.alerts.rules import EscalationStep, Limit, Rule, RuleSet, parse_duration

__all__ = ["AckOutcome", "AgeBands", "Alert", "Band", "Decision", "Dedup", "EscalationStep", "Hit",
           "Limit", "Rule", "RuleBook", "RuleFileError", "RuleSet", "Skip", "Turnaround",
           "acknowledge", "alert_id_for", "due", "escalate", "evaluate", "load_default",
           "load_overlay", "load_rule_book", "load_rule_set", "parse_duration", "raise_alert",
           "result_time", "skipped", "turnaround"]
