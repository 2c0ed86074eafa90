"""CDA R2 documents (WS/T 500 电子病历共享文档, WS/T 483 健康档案共享文档) to ``document`` events.

- :mod:`producers.cda.xml`: the bounded, DTD-free parser every untrusted XML goes through;
- :mod:`producers.cda.document`: ``map_cda``, a document to its ``document`` event;
- :mod:`producers.cda.patient`: ``recordTarget/patientRole`` to ``hutong.PatientIdentity``;
- :mod:`producers.cda.doctypes`: the document type codes and names;
- :mod:`producers.cda.paths`: values out of a V3 tree by plain paths.
"""

from producers.cda.document import map_cda
from producers.cda.xml import parse_xml

__all__ = ["map_cda", "parse_xml"]
