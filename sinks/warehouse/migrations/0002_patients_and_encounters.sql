-- patients: one row per patient event (ADT A01-A40), from hutong.std.patient.
-- The ADR 0001 header with the patient reduced to source_patient_id, empi_id,
-- sex and birth date, then what happened to the record and the demographics
-- analysis needs. Names, ID card and health card numbers, phones and addresses
-- stay in the EMPI. A merge (A40) names the retired id in merged_source_patient_id.
-- Rows collapse on (facility_id, event_id), like lab_results.
-- Times are DateTime64(3, 'Asia/Shanghai'): read as local time, stored as UTC.
CREATE TABLE IF NOT EXISTS patients
(
    event_id                 String,
    facility_id              LowCardinality(String),
    source_system            LowCardinality(Nullable(String)),
    message_control_id       Nullable(String),
    source_patient_id        String,
    empi_id                  Nullable(String),
    patient_sex              LowCardinality(Nullable(String)) COMMENT 'as the facility sent it',
    patient_birth_date       Nullable(Date32),
    occurred_at              Nullable(DateTime64(3, 'Asia/Shanghai')),
    received_at              DateTime64(3, 'Asia/Shanghai'),
    quality_warnings         Array(String),
    map_version              LowCardinality(Nullable(String)),
    action                   LowCardinality(String) COMMENT 'register, admit, update, merge or delete',
    trigger_event            LowCardinality(Nullable(String)) COMMENT 'MSH-9.2, e.g. A04, A08, A40',
    merged_source_patient_id Nullable(String) COMMENT 'for a merge: the retired facility patient id (MRG-1)',
    ethnic_group             LowCardinality(Nullable(String)) COMMENT '民族 code as sent (PID-22)',
    marital_status           LowCardinality(Nullable(String)) COMMENT 'PID-16 as sent',
    nationality              LowCardinality(Nullable(String)) COMMENT 'PID-28 as sent',
    occupation               LowCardinality(Nullable(String)),
    deceased                 Nullable(Bool) COMMENT 'PID-30',
    deceased_at              Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'PID-29',
    ingested_at              DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_source_patient_id source_patient_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Patient registrations, updates and merges (hutong.std.patient)';

-- encounters: one row per visit event (ADT A01-A13 with a PV1), from
-- hutong.std.encounter: admissions, transfers, discharges, registrations,
-- updates and cancellations, each with the visit as the message described it.
-- The attending doctor is kept by id only. Rows collapse on (facility_id, event_id).
CREATE TABLE IF NOT EXISTS encounters
(
    event_id              String,
    facility_id           LowCardinality(String),
    source_system         LowCardinality(Nullable(String)),
    message_control_id    Nullable(String),
    source_patient_id     String,
    empi_id               Nullable(String),
    patient_sex           LowCardinality(Nullable(String)) COMMENT 'as the facility sent it',
    patient_birth_date    Nullable(Date32),
    occurred_at           Nullable(DateTime64(3, 'Asia/Shanghai')),
    received_at           DateTime64(3, 'Asia/Shanghai'),
    quality_warnings      Array(String),
    map_version           LowCardinality(Nullable(String)),
    action                LowCardinality(String) COMMENT 'register, admit, transfer, discharge, update or cancel',
    trigger_event         LowCardinality(Nullable(String)) COMMENT 'MSH-9.2, e.g. A01, A02, A03',
    visit_number          Nullable(String) COMMENT 'PV1-19',
    patient_class         LowCardinality(Nullable(String)) COMMENT 'PV1-2: O outpatient, I inpatient, E emergency, ...',
    department_code       LowCardinality(Nullable(String)),
    department_name       LowCardinality(Nullable(String)),
    ward                  LowCardinality(Nullable(String)) COMMENT 'PV1-3.1 for inpatients',
    room                  Nullable(String) COMMENT 'PV1-3.2',
    bed                   Nullable(String) COMMENT 'PV1-3.3',
    prior_location        Nullable(String) COMMENT 'PV1-6 on one line, for transfers',
    attending_doctor_id   LowCardinality(Nullable(String)) COMMENT 'PV1-7.1',
    admit_source          LowCardinality(Nullable(String)) COMMENT 'PV1-14',
    admit_reason          Nullable(String) COMMENT 'PV2-3 as text',
    admitted_at           Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'PV1-44',
    discharged_at         Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'PV1-45',
    discharge_disposition LowCardinality(Nullable(String)) COMMENT 'PV1-36',
    ingested_at           DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_visit_number visit_number TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_admitted_at admitted_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Visits: admissions, transfers, discharges, registrations (hutong.std.encounter)';
