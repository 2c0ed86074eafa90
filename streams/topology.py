"""The stream worker's own topics and tables (not part of the public contract).

The EMPI stage runs in two parts (ADR 0004):

* the **partitioned stage** (:mod:`streams.partitioned`, on librdkafka, group
  ``hutong-streams-standardize``) reads ``hutong.events.*`` and stamps the EMPI
  id of records the index already knows from the worker's copy of
  ``hutong.empi.links`` (:mod:`streams.linkview`);
* the **resolver** owns the whole index on one partition: events with identity
  news reach it on ``hutong.empi.resolve``, and so do reviewers' decisions,
  forwarded there from ``hutong.empi.decisions``; its state is the
  ``empi-index`` table.

The critical-value stage keeps two more tables, ``alert-dedup`` (partitioned
like the standard results, by EMPI id) and ``alerts-open`` (like the alerts,
by alert id); see :mod:`streams.alerting`.

The Faust tables live in RocksDB with a compacted changelog, so a worker that
restarts, here or on another machine, recovers them. The hub creates these
topics with the contract's (``hutong.stack.topics``); Faust never declares
topics itself.
"""

from __future__ import annotations

from schemas.catalog import TopicSpec

__all__ = ["ALERTS_TABLE", "CANDIDATES_TOPIC", "DEDUP_TABLE", "EVENTS_PATTERN", "INDEX_TABLE",
           "INPUT_TOPICS", "INTERNAL_TOPIC_SPECS", "RESOLVE_TOPIC", "STAGE_GROUP",
           "STAGE_TOPICS", "STREAMS_GROUP", "changelog_topic"]

STREAMS_GROUP = "hutong-streams"
#: The partitioned stage's consumer group (librdkafka, not Faust).
STAGE_GROUP = "hutong-streams-standardize"
EVENTS_PATTERN = "^hutong\\.events\\..*"
#: What the partitioned stage reads: its consumer lag.
STAGE_TOPICS = (EVENTS_PATTERN,)
RESOLVE_TOPIC = "hutong.empi.resolve"
CANDIDATES_TOPIC = "hutong.alerts.candidates"
INDEX_TABLE = "empi-index"
DEDUP_TABLE = "alert-dedup"
ALERTS_TABLE = "alerts-open"
#: What the worker's Faust agents read in the group (names, or ``^regex``): its consumer lag.
INPUT_TOPICS = (RESOLVE_TOPIC, "hutong.empi.decisions", CANDIDATES_TOPIC,
                "hutong.alerts.critical", "hutong.alerts.ack")


def changelog_topic(table: str) -> str:
    """The changelog Faust keeps for ``table``: ``hutong-streams-<table>-changelog``."""
    return f"{STREAMS_GROUP}-{table}-changelog"


def _changelog(table: str, what: str, *, single: bool) -> TopicSpec:
    return TopicSpec(changelog_topic(table), "", "table key", what,
                     partitions=1 if single else 3, fixed_partitions=single,
                     cleanup_policy="compact", retention_ms=None)


INTERNAL_TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(RESOLVE_TOPIC, "", "facility|source patient id",
              "events with identity news, on their way to the one EMPI resolver "
              "(the events' own schemas)", partitions=1, fixed_partitions=True),
    TopicSpec(CANDIDATES_TOPIC, "", "EMPI id",
              "standard results that cross a critical-value rule, on their way to the "
              "alert stage (their own schemas)"),
    _changelog(INDEX_TABLE, "the resolver's index: records, reviews, merges", single=True),
    _changelog(DEDUP_TABLE, "critical values already alerted, per patient and rule",
               single=False),
    _changelog(ALERTS_TABLE, "the latest state of each critical-value alert", single=False),
)
