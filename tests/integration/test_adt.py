"""ADT over MLLP on real parts: A01 and A40 -> Tansu -> Faust -> hutong.patients / encounters."""

from __future__ import annotations

import pytest

from .conftest import RunningHub, pid, send, wait_for

pytestmark = pytest.mark.integration

A01 = (
    "MSH|^~\\&|HIS|ADTHOSP|HUTONG|REGION|20261120093000||ADT^A01^ADT_A01|ADT0001|P|2.4||||||"
    "UNICODE UTF-8\r"
    "EVN|A01|20261120093000\r"
    "PID|1||MRNA01^^^ADTHOSP^MR~11010519491231002X^^^GA^SFZH||测试乙||19491231|M"
    "||||||||||||||01^汉族\r"
    "PV1|1|I|0301^312^03|||||||NK^内科|||||||||ZY0001\r"
)
A40 = (
    "MSH|^~\\&|HIS|ADTHOSP|HUTONG|REGION|20261120100000||ADT^A40^ADT_A39|ADT0002|P|2.5.1|||||"
    "|UNICODE UTF-8\r"
    "EVN|A40|20261120100000\r"
    "PID|1||MRNA01^^^ADTHOSP^MR||测试乙||19491231|M\r"
    "MRG|MRNOLD^^^ADTHOSP^MR\r"
)








def test_admit_and_merge_land_in_patients_and_encounters(hub: RunningHub) -> None:
    acks = send(hub, A01.encode(), A40.encode())
    assert [(code, cid) for code, cid, _ in acks] == [("AA", "ADT0001"), ("AA", "ADT0002")]
    patients = wait_for(lambda: (rows := hub.query(
        "SELECT message_control_id, action, trigger_event, source_patient_id, "
        "merged_source_patient_id, ethnic_group FROM hutong.patients "
        "WHERE facility_id = 'ADTHOSP' ORDER BY message_control_id")) and len(rows) == 2
        and rows)
    assert patients == [
        ("ADT0001", "admit", "A01", pid("MRNA01"), None, "01"),
        ("ADT0002", "merge", "A40", pid("MRNA01"), pid("MRNOLD"), None),
    ]
    encounters = wait_for(lambda: hub.query(
        "SELECT action, visit_number, patient_class, ward, department_code "
        "FROM hutong.encounters WHERE facility_id = 'ADTHOSP'"))
    assert encounters == [("admit", "ZY0001", "I", "0301", "NK")]
