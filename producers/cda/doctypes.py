"""Shared-document types: WS/T 500-2016 (电子病历共享文档) and WS/T 483 (健康档案共享文档).

Both standards name the type in ``ClinicalDocument/code`` with codeSystem
2.16.156.10011.2.4 (卫生信息共享文档规范编码体系): ``C0001``..``C0053`` for the
53 parts of WS/T 500, ``HSDxxx.xx`` for WS/T 483. WS/T 500 part *n* also has
templateId 2.16.156.10011.2.1.1.(20 + *n*), so a document whose code uses another
system (a LOINC code, as international CDA does) is still recognised by its
templateId. WS/T 483 templateIds (2.16.156.10011.2.1.1.*n*) are partly inferred
in the reference, so WS/T 483 types are recognised by code only.

Source: shared/reference/cn-standards.md §5.1 and §5.5 (the 53 WS/T 500
templates; WS/T 483 parts 1-16, whose codes are verified).
"""

from __future__ import annotations

__all__ = ["DOCUMENT_TYPES", "DOCUMENT_TYPE_SYSTEM", "WST500_TEMPLATE_PREFIX", "type_of_template"]

#: codeSystem of ClinicalDocument/code in both standards.
DOCUMENT_TYPE_SYSTEM = "2.16.156.10011.2.4"

#: templateId root of WS/T 500 part n is this prefix followed by 20 + n.
WST500_TEMPLATE_PREFIX = "2.16.156.10011.2.1.1."

_WST500 = (
    "病历概要", "门(急)诊病历", "急诊留观病历", "西药处方", "中药处方", "检查记录", "检验记录",
    "治疗记录", "一般手术记录", "麻醉术前访视记录", "麻醉记录", "麻醉术后访视记录", "输血记录",
    "待产记录", "阴道分娩记录", "剖宫产记录", "一般护理记录", "病重（病危）护理记录",
    "手术护理记录", "生命体征测量记录", "出入量记录", "高值耗材使用记录", "入院评估", "护理计划",
    "出院评估与指导", "手术知情同意书", "麻醉知情同意书", "输血治疗同意书",
    "特殊检查及特殊治疗同意书", "病危（重）通知书", "其他知情同意书", "住院病案首页",
    "中医住院病案首页", "入院记录", "24h内入出院记录", "24h内入院死亡记录", "首次病程记录",
    "日常病程记录", "上级医师查房记录", "疑难病例讨论记录", "交接班记录", "转科记录", "阶段小结",
    "抢救记录", "会诊记录", "术前小结", "术前讨论", "术后首次病程记录", "出院记录", "死亡记录",
    "死亡病例讨论记录", "住院医嘱", "出院小结",
)

_WST483 = {
    "HSDA00.01": "个人基本健康信息登记", "HSDB01.01": "出生医学证明",
    "HSDB01.02": "新生儿家庭访视", "HSDB01.03": "儿童健康体检",
    "HSDB02.01": "首次产前随访服务", "HSDB02.02": "产前随访服务", "HSDB02.03": "产后访视",
    "HSDB02.04": "产后42天健康检查", "HSDB03.01": "预防接种报告", "HSDB03.02": "传染病报告",
    "HSDB03.03": "死亡医学证明", "HSDB04.01": "高血压患者随访服务",
    "HSDB04.02": "2型糖尿病患者随访服务", "HSDB04.03": "重性精神疾病患者个人信息登记",
    "HSDB04.04": "重性精神疾病患者随访服务", "HSDC00.01": "成人健康体检",
}

#: Document type code -> its name (名称), WS/T 500 in part order, then WS/T 483.
DOCUMENT_TYPES: dict[str, str] = {
    **{f"C{part:04d}": name for part, name in enumerate(_WST500, start=1)},
    **_WST483,
}

_BY_TEMPLATE = {f"{WST500_TEMPLATE_PREFIX}{20 + part}": f"C{part:04d}"
                for part in range(1, len(_WST500) + 1)}


def type_of_template(root: str) -> str | None:
    """The WS/T 500 type code of a templateId root, or None when it is not one of the 53."""
    return _BY_TEMPLATE.get(root.strip())
