"""Which acknowledgements a message gets: original or enhanced mode (pure).

A message with MSH-15 (accept acknowledgement type) and MSH-16 (application
acknowledgement type) both empty is in **original mode**: one ACK, AA, AE or AR,
once the outcome is known and durable.

Otherwise it is in **enhanced mode**, with two levels:

* the *commit* ACK (CA, CE, CR) says whether hutong has taken responsibility for
  the message: CA once its records (events or dead letter) are durable in Kafka,
  CE when they could not be stored (resend), CR when the message is refused
  (unsupported type, version or processing id, unauthorised facility,
  control id reused for other content): nothing will be processed.
* the *application* ACK (AA, AE) says what processing made of it: events (AA)
  or a dead letter with the reason (AE). It follows the commit ACK on the same
  connection, as a message with its own control id.

MSH-15 and MSH-16 (HL7 table 0155) say when each is wanted: AL always, NE never,
ER only on error, SU only on success. An empty field in enhanced mode counts as
AL: a sender that asked for enhanced mode gets an answer.

Many HIS fill MSH-15/16 (often ``AL|NE``) yet only understand AA/AE/AR; a
facility's registry entry can say ``ack_mode: original`` for them.
"""

from __future__ import annotations

from hutong.errors import HL7Error
from producers.hl7v2.message import Message

__all__ = ["ACK_CONDITIONS", "ACK_MODES", "acknowledgements", "is_enhanced"]

#: HL7 table 0155, accept/application acknowledgement conditions.
ACK_CONDITIONS = frozenset({"AL", "NE", "ER", "SU"})


#: Per facility: follow MSH-15/16 (auto), or always answer in original mode (for senders
#: that fill MSH-15/16 but only understand AA/AE/AR).
ACK_MODES = ("auto", "original")


def is_enhanced(msg: Message | None, mode: str = "auto") -> bool:
    return mode != "original" and msg is not None and bool(
        msg.accept_ack_type or msg.application_ack_type)


def _wanted(condition: str, success: bool) -> bool:
    condition = condition.strip().upper() or "AL"
    if condition not in ACK_CONDITIONS:
        raise HL7Error(f"acknowledgement type {condition!r} is not in HL7 table 0155")
    return condition == "AL" or (condition == "SU" and success) or (
        condition == "ER" and not success)


def acknowledgements(msg: Message | None, outcome: str, *, stored: bool,
                     mode: str = "auto") -> list[str]:
    """The ACK codes to send for ``msg``, in order (empty: send nothing).

    ``outcome`` is the application outcome: AA (events), AE (content error: dead
    letter) or AR (refused); ``stored`` says whether Kafka confirmed the records.
    An unreadable acknowledgement type falls back to original mode.
    """
    if outcome not in {"AA", "AE", "AR"}:
        raise ValueError(f"outcome must be AA, AE or AR, not {outcome!r}")
    if outcome != "AR" and not stored:
        original, commit = "AE", "CE"
    else:
        original, commit = outcome, {"AA": "CA", "AE": "CA", "AR": "CR"}[outcome]
    if not is_enhanced(msg, mode):
        return [original]
    assert msg is not None  # noqa: S101 - is_enhanced checked it
    try:
        codes = [commit] if _wanted(msg.accept_ack_type, commit == "CA") else []
        if commit == "CA" and _wanted(msg.application_ack_type, outcome == "AA"):
            codes.append(outcome)
    except HL7Error:
        return [original]
    return codes
