"""Document assembly: canonical events become shared CDA documents (pure functions, no I/O).

The document-store sink feeds each ``hutong.std.*`` event to :func:`group_keys`,
keeps the parts of each group (of two deliveries of one event, the one
:func:`supersedes` prefers), and calls :func:`assemble` and :func:`withdrawn`
when a group changes; a ``document`` event (a CDA a facility sent) goes to
:func:`received` instead.
A sensitive document (:func:`sensitivity`) leaves the hub only through
:func:`deidentify`.

=====================  ================================================================
module                 holds
=====================  ================================================================
:mod:`.keys`           group keys, set and document ids, :class:`AssemblyError`
:mod:`.document`       :func:`assemble` (parts to a Document), :func:`withdrawn`
:mod:`.header`         the WS/T 500 ``ClinicalDocument`` header
:mod:`.lab`            检验报告 C0007
:mod:`.imaging`        检查报告 C0006
:mod:`.prescription`   西药处方 C0004
:mod:`.visit`          门(急)诊病历 C0002 and 出院小结 C0053
:mod:`.sensitivity`    infectious-disease and mental-health categories
:mod:`.deidentify`     the patient's identity out of a CDA
:mod:`.received`       a received CDA, stored as received
:mod:`.draft`          document types and what a kind hands to the header
:mod:`.events`         reading parts: deduplication, order, which value (delivery) wins
:mod:`.cda`            XML building blocks and HL7 V3 data types
:mod:`.oids`           the OIDs used, with their sources
=====================  ================================================================

Errors: :class:`AssemblyError` (a :class:`~hutong.errors.HutongError`) for a key,
version or received event that cannot be used; :class:`~hutong.errors.HL7Error`
from :func:`deidentify` for XML the safe parser refuses. Messages never carry a
patient's values.
"""

from __future__ import annotations

from sinks.docstore.assembly.deidentify import deidentify
from sinks.docstore.assembly.document import assemble, withdrawn
from sinks.docstore.assembly.events import supersedes
from sinks.docstore.assembly.keys import AssemblyError, document_id_of, group_keys, set_id_of
from sinks.docstore.assembly.received import received
from sinks.docstore.assembly.sensitivity import sensitivity

__all__ = ["AssemblyError", "assemble", "deidentify", "document_id_of", "group_keys",
           "received", "sensitivity", "set_id_of", "supersedes", "withdrawn"]
