"""The root of every exception hutong raises on purpose.

    HutongError
    ├── ConfigError                 settings that cannot be used (hutong.config)
    ├── StackError                  the embedded stack cannot start (hutong.stack)
    │   └── ResourceBusy            a port or the data directory is taken
    ├── WireFormatError             bytes that are not Confluent wire format (schemas.wire)
    ├── SchemaError                 a record that does not fit its schema (schemas.catalog)
    ├── HL7Error                    HL7 v2 text that cannot be read (producers.hl7v2)
    │   └── ValidationError         a message readable but missing what it needs
    ├── DeliveryError               Kafka did not confirm a write (producers.kafka)
    ├── WarehouseError              the warehouse refused a statement (sinks.warehouse)
    │   └── WarehouseQueryError     the engine failed an analyst's query, with its error code
    ├── DocumentStoreError          the document store failed or refused (sinks.docstore)
    └── RetryError                  a dead letter was not retried (hutong.monitor.retry)
        ├── NotRetryable            its stage, facility or contents rule a retry out
        ├── LetterGone              hutong.dlq no longer holds it (retention)
        └── DlqUnreachable          hutong.dlq could not be read

Messages name the cause and the place (segment, field, topic, table), never a
patient's values. Words a sender chose that a message does quote (a message type,
a facility id) go through :func:`shown` or :func:`quoted`: cut short and on one
line, so no reason grows with the input or forges a log line.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DlqUnreachable",
    "DocumentStoreError",
    "HL7Error",
    "HutongError",
    "LetterGone",
    "NotRetryable",
    "ResourceBusy",
    "RetryError",
    "SchemaError",
    "StackError",
    "ValidationError",
    "WarehouseError",
    "WarehouseQueryError",
    "WireFormatError",
    "quoted",
    "shown",
]

#: Characters of a sender's words an error text quotes at most.
QUOTE_LIMIT = 40


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` quoted (``repr``: control characters escaped) and cut to ``limit``."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def shown(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as it is when short and printable, else :func:`quoted`."""
    return text if len(text) <= limit and text.isprintable() else quoted(text, limit)


class HutongError(Exception):
    """Base of all hutong errors."""


class ConfigError(HutongError):
    """Settings that cannot be used."""


class StackError(HutongError):
    """The embedded stack could not start or stop cleanly."""


class ResourceBusy(StackError):
    """A port or the data directory is already in use."""


class WireFormatError(HutongError):
    """Bytes that are not a Confluent wire-format Avro message."""


class SchemaError(HutongError):
    """A record that does not fit its Avro schema, or an unknown schema."""


class HL7Error(HutongError):
    """HL7 v2 text that cannot be read at all (no MSH, bad delimiters)."""

    def __init__(self, reason: str, *, location: str | None = None, code: str = "102") -> None:
        super().__init__(f"{reason} (at {location})" if location else reason)
        self.reason = reason
        self.location = location
        #: HL7 table 0357 message error condition code, used in ERR-3.
        self.code = code


class ValidationError(HL7Error):
    """A readable HL7 v2 message that lacks or garbles what its type requires."""


class DeliveryError(HutongError):
    """A write was not confirmed: by Kafka, or by a webhook receiver."""


class WarehouseError(HutongError):
    """The warehouse refused a statement or could not be reached."""


class WarehouseQueryError(WarehouseError):
    """The engine refused or failed an analyst's raw query.

    ``code`` is ClickHouse's error code; ``detail`` the engine's own words,
    which may quote the query, so they go back to the analyst who sent it and
    never into a log (``str()`` leaves them out).
    """

    def __init__(self, message: str, *, code: int, detail: str) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class DocumentStoreError(HutongError):
    """The document store (SQLite or PostgreSQL) failed a statement or could not be reached."""


class RetryError(HutongError):
    """A dead letter was not retried; the message says why."""


class NotRetryable(RetryError):
    """The letter cannot be retried: its stage, its facility or what it kept rule it out."""


class LetterGone(RetryError):
    """``hutong.dlq`` no longer holds the letter where the warehouse says it is."""


class DlqUnreachable(RetryError):
    """``hutong.dlq`` could not be read (Kafka unreachable or too slow)."""
