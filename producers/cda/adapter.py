"""A received CDA document as an :class:`~producers.hl7v2.adapter.Adapted`, for the intake."""

from __future__ import annotations

from hutong.errors import HL7Error, ValidationError
from producers.cda.document import map_cda
from producers.hl7v2.adapter import Adapted, envelope

__all__ = ["adapt_cda"]


def adapt_cda(adapted: Adapted, *, source_system: str | None = None) -> Adapted:
    """Read ``adapted.arrival.payload`` as one CDA document from ``adapted.facility_id``.

    The document id (root^extension) plays the message control id: a resend of
    the same document gives the same event id. XML that cannot or may not be read
    is AR; a document lacking what the event needs is AE. Never raises for bad input.
    """
    assert adapted.facility_id is not None  # noqa: S101 - the API key named the facility
    adapted.content_type = "cda"
    adapted.event_type = "document"
    arrival = adapted.arrival
    try:
        events = map_cda(arrival.payload, facility_id=adapted.facility_id,
                         received_at=arrival.received_at, source_system=source_system)
    except ValidationError as exc:
        adapted.fail(exc, "AE")
        return adapted
    except HL7Error as exc:
        adapted.fail(exc, "AR")
        return adapted
    adapted.control_id = events[0]["message_control_id"]
    adapted.envelope = envelope(adapted)
    adapted.events = events
    return adapted
