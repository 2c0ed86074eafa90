"""The OIDs and code systems the documents hutong writes use, with where each comes from.

Every national OID is from shared/reference/cn-standards.md §5 (WS/T 500 header,
§5.2; identifier OIDs, §5.3; terminology OIDs, §5.4); the HL7 ones are HL7's own.
The one hutong-local OID is :data:`EMPI_OID`, for the resident master index id
(居民健康主索引号): no national OID exists for it, so it sits under the ISO/ITU
``2.25`` arc, where an OID is minted from a UUID without registration. It is
``2.25.`` + the integer of uuid5(:data:`producers.ids.HUTONG_NAMESPACE`,
``"empi.hutong"``), fixed forever; a receiver outside the hub must treat it as
hutong-local, not as a national identifier.
"""

from __future__ import annotations

__all__ = [
    "AUTHOR_OID", "CONFIDENTIALITY_SYSTEM", "DATA_ELEMENT_SYSTEM", "DEPARTMENT_OID",
    "DICOM_MODALITY_SYSTEM", "DOCUMENT_OID", "DOCUMENT_TYPE_SYSTEM", "EMPI_OID",
    "HEALTH_CARD_OID", "HL7_ABNORMAL_FLAGS", "ICD10_SYSTEM", "ID_CARD_OID",
    "IMAGING_REPORT_OID", "LAB_REPORT_OID", "LOCAL_PATIENT_ID_OID", "LOINC_SYSTEM",
    "ORDER_OID", "ORGANIZATION_OID", "PRESCRIPTION_OID", "REQUISITION_OID", "SEX_SYSTEM",
    "STAFF_OID", "TYPE_ID_EXTENSION", "TYPE_ID_ROOT", "VISIT_OID",
]

#: ClinicalDocument/typeId. The reference (§5.2) and all 53 WS/T 500 templates it was
#: read from write ``POCD_MT000040``; international CDA R2 writes ``POCD_HD000040``.
#: hutong follows the reference: change this one line to write the other.
TYPE_ID_ROOT = "2.16.840.1.113883.1.3"
TYPE_ID_EXTENSION = "POCD_MT000040"

# --- identifiers (reference §5.3, §5.6) -----------------------------------------------
DOCUMENT_OID = "2.16.156.10011.1.1"          # 文档流水号: ClinicalDocument/id and setId
ID_CARD_OID = "2.16.156.10011.1.3"           # 患者身份证号 (patient/id)
STAFF_OID = "2.16.156.10011.1.4"             # 医务人员 (ordering provider)
ORGANIZATION_OID = "2.16.156.10011.1.5"      # 医疗机构 (custodian)
AUTHOR_OID = "2.16.156.10011.1.7"            # 文档创作者 (assignedAuthor)
HEALTH_CARD_OID = "2.16.156.10011.1.19"      # 健康卡号
PRESCRIPTION_OID = "2.16.156.10011.1.20"     # 处方编号
REQUISITION_OID = "2.16.156.10011.1.24"      # 电子申请单编号 (placer order number)
DEPARTMENT_OID = "2.16.156.10011.1.26"       # 科室
ORDER_OID = "2.16.156.10011.1.28"            # 医嘱ID (a medication line's placer number)
IMAGING_REPORT_OID = "2.16.156.10011.1.32"   # 检查报告单号 (the accession number)
LAB_REPORT_OID = "2.16.156.10011.1.33"       # 检验报告单号 (the filler order number)
LOCAL_PATIENT_ID_OID = "2.16.156.10011.2.5.1.4"  # 本地系统患者ID (the facility's patient id)
VISIT_OID = "2.16.156.10011.2.5.1.9"         # 就诊流水号 (the facility's visit number)
#: hutong-local: the EMPI id (see the module docstring).
EMPI_OID = "2.25.255190794136826029842468548745251127814"

# --- code systems (reference §5.2, §5.4, §8) ------------------------------------------
DOCUMENT_TYPE_SYSTEM = "2.16.156.10011.2.4"      # 卫生信息共享文档规范编码体系 (C00xx)
DATA_ELEMENT_SYSTEM = "2.16.156.10011.2.2.1"     # 卫生信息数据元目录 (DExx.xx.xxx.xx)
SEX_SYSTEM = "2.16.156.10011.2.3.3.4"            # GB/T 2261.1
ICD10_SYSTEM = "2.16.156.10011.2.3.3.11"         # ICD-10 诊断代码表
LOINC_SYSTEM = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
HL7_ABNORMAL_FLAGS = "2.16.840.1.113883.12.78"   # HL7 table 0078 (OBX-8 flags)
#: DICOM modality codes (DCM context group 29); not in the reference: DICOM's own OID.
DICOM_MODALITY_SYSTEM = "1.2.840.10008.2.16.4"
