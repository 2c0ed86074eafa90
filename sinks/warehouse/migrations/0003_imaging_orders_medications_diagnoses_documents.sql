-- 0003: a table for each of the remaining event types, from hutong.std.<type>:
-- imaging_reports, orders, medications, diagnoses and documents. Each starts with
-- the ADR 0001 header of lab_results (the patient reduced to source_patient_id,
-- empi_id, sex and birth date), then the event's own fields, and collapses on
-- (facility_id, event_id) like the others.
-- Left out on purpose, as in encounters: the names of clinicians (radiologist,
-- ordering provider, prescriber, diagnosing clinician, author), since their ids
-- are enough to count by; and clinical free text that may name people (an imaging
-- report's findings and impression, an order's clinical information), of which
-- only the length in characters is kept (NULL: none was sent). The events on
-- hutong.std.* keep all of it for the applications entitled to read it.
-- Times are DateTime64(3, 'Asia/Shanghai'): read as local time, stored as UTC.

-- imaging_reports: one row per imaging report (ORU or MDM from a PACS/RIS), from
-- hutong.std.imaging-report: the study (accession number, study UID, modality,
-- examination, body part), the report's status and times, and the critical
-- finding flag (危急值). report_text_chars and impression_chars are the lengths of
-- the findings (检查所见) and impression (诊断意见); the text stays in the event.
CREATE TABLE IF NOT EXISTS imaging_reports
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
    accession_number      Nullable(String) COMMENT 'OBR-18 or IPC-1',
    placer_order_number   Nullable(String) COMMENT 'ORC-2 (or OBR-2)',
    filler_order_number   Nullable(String) COMMENT 'ORC-3 (or OBR-3)',
    study_instance_uid    Nullable(String) COMMENT 'DICOM Study Instance UID',
    modality              LowCardinality(Nullable(String)) COMMENT 'DICOM modality: CT, MR, DX, US, ...',
    procedure_code        LowCardinality(Nullable(String)) COMMENT 'the examination (OBR-4.1)',
    procedure_name        LowCardinality(Nullable(String)) COMMENT 'OBR-4.2',
    body_part             LowCardinality(Nullable(String)) COMMENT 'as sent',
    study_at              Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'when the study was performed (OBR-7)',
    reported_at           Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'when the report was signed or last changed (OBR-22 or TXA-4)',
    report_status         LowCardinality(Nullable(String)) COMMENT 'OBR-25 or TXA-17: P preliminary, F final, C corrected, ...',
    report_text_chars     Nullable(UInt32) COMMENT 'length of the findings (检查所见) in characters; the text stays in the event',
    impression_chars      Nullable(UInt32) COMMENT 'length of the impression (诊断意见) in characters; the text stays in the event',
    critical_finding      Bool COMMENT 'the radiologist marked a critical finding (危急值)',
    radiologist_id        LowCardinality(Nullable(String)) COMMENT 'OBR-32.1 or TXA-9; the name stays in the event',
    performing_department LowCardinality(Nullable(String)),
    ingested_at           DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_accession_number accession_number TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_study_instance_uid study_instance_uid TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_study_at study_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Imaging reports without their text: study, status, critical finding (hutong.std.imaging-report)';

-- orders: one row per order event (ORM, OML: ORC with its OBR), from
-- hutong.std.order: placed (NW), changed (XO), cancelled (CA), discontinued (DC)
-- or a status change (SC) of a test, examination or procedure. Several events of
-- one order share placer_order_number. clinical_info_chars is the length of OBR-13
-- (relevant clinical information, free text); the text stays in the event.
CREATE TABLE IF NOT EXISTS orders
(
    event_id             String,
    facility_id          LowCardinality(String),
    source_system        LowCardinality(Nullable(String)),
    message_control_id   Nullable(String),
    source_patient_id    String,
    empi_id              Nullable(String),
    patient_sex          LowCardinality(Nullable(String)) COMMENT 'as the facility sent it',
    patient_birth_date   Nullable(Date32),
    occurred_at          Nullable(DateTime64(3, 'Asia/Shanghai')),
    received_at          DateTime64(3, 'Asia/Shanghai'),
    quality_warnings     Array(String),
    map_version          LowCardinality(Nullable(String)),
    order_control        LowCardinality(String) COMMENT 'ORC-1: NW new, CA cancel, DC discontinue, XO change, SC status, ...',
    placer_order_number  Nullable(String) COMMENT 'ORC-2 (or OBR-2)',
    filler_order_number  Nullable(String) COMMENT 'ORC-3 (or OBR-3)',
    placer_group_number  Nullable(String) COMMENT 'ORC-4: orders placed together',
    order_status         LowCardinality(Nullable(String)) COMMENT 'ORC-5: IP in process, CM completed, CA cancelled, ...',
    item_code            LowCardinality(String) COMMENT 'what was ordered (OBR-4.1)',
    item_name            LowCardinality(Nullable(String)) COMMENT 'OBR-4.2',
    item_system          LowCardinality(Nullable(String)) COMMENT 'coding system of item_code (OBR-4.3)',
    diagnostic_service   LowCardinality(Nullable(String)) COMMENT 'OBR-24: LAB, RAD, ...',
    priority             LowCardinality(Nullable(String)) COMMENT 'S stat, R routine, ...',
    specimen_type        LowCardinality(Nullable(String)) COMMENT 'OBR-15 or SPM-4',
    clinical_info_chars  Nullable(UInt32) COMMENT 'length of OBR-13 in characters; the text stays in the event',
    ordered_at           Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'ORC-9',
    ordering_provider_id LowCardinality(Nullable(String)) COMMENT 'ORC-12.1; the name stays in the event',
    ordering_department  LowCardinality(Nullable(String)) COMMENT 'ORC-17 or PV1-3',
    visit_number         Nullable(String) COMMENT 'PV1-19',
    ingested_at          DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_item_code item_code TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_placer_order_number placer_order_number TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_visit_number visit_number TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_ordered_at ordered_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Orders placed, changed or cancelled (hutong.std.order)';

-- medications: one row per prescribed, dispensed or cancelled medication line
-- (RDE, RDS: ORC, RXE, RXR, RXD, TQ1), from hutong.std.medication: the drug, dose,
-- form, route, frequency, duration and quantity as sent (duration_days when the
-- duration reads as days). The prescriber is kept by id only.
CREATE TABLE IF NOT EXISTS medications
(
    event_id            String,
    facility_id         LowCardinality(String),
    source_system       LowCardinality(Nullable(String)),
    message_control_id  Nullable(String),
    source_patient_id   String,
    empi_id             Nullable(String),
    patient_sex         LowCardinality(Nullable(String)) COMMENT 'as the facility sent it',
    patient_birth_date  Nullable(Date32),
    occurred_at         Nullable(DateTime64(3, 'Asia/Shanghai')),
    received_at         DateTime64(3, 'Asia/Shanghai'),
    quality_warnings    Array(String),
    map_version         LowCardinality(Nullable(String)),
    action              LowCardinality(String) COMMENT 'prescribe (RDE), dispense (RDS) or cancel',
    order_control       LowCardinality(Nullable(String)) COMMENT 'ORC-1: NW, CA, DC, ...',
    placer_order_number Nullable(String) COMMENT 'ORC-2 (or OBR-2)',
    filler_order_number Nullable(String) COMMENT 'ORC-3 (or OBR-3)',
    prescription_number Nullable(String) COMMENT 'RXE-15',
    drug_code           LowCardinality(String) COMMENT 'RXE-2.1, or RXD-2.1 for a dispense',
    drug_name           LowCardinality(Nullable(String)) COMMENT 'RXE-2.2',
    drug_system         LowCardinality(Nullable(String)) COMMENT 'coding system of drug_code (RXE-2.3)',
    dose                Nullable(Float64) COMMENT 'per administration (RXE-3)',
    dose_unit           LowCardinality(Nullable(String)) COMMENT 'RXE-5',
    dosage_form         LowCardinality(Nullable(String)) COMMENT 'RXE-6: tablet, injection, ...',
    route               LowCardinality(Nullable(String)) COMMENT 'RXR-1',
    frequency           LowCardinality(Nullable(String)) COMMENT 'as sent: QD, BID, TID, ...',
    duration            LowCardinality(Nullable(String)) COMMENT 'as sent (TQ1-6 or RXE-1.3)',
    duration_days       Nullable(Int32) COMMENT 'when duration reads as a number of days',
    quantity            Nullable(Float64) COMMENT 'prescribed or dispensed (RXE-10 or RXD-4)',
    quantity_unit       LowCardinality(Nullable(String)) COMMENT 'RXE-11 or RXD-5',
    prescribed_at       Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'ORC-9',
    dispensed_at        Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'RXD-3',
    prescriber_id       LowCardinality(Nullable(String)) COMMENT 'ORC-12.1; the name stays in the event',
    department          LowCardinality(Nullable(String)) COMMENT 'prescribing department (ORC-17 or PV1-3)',
    visit_number        Nullable(String) COMMENT 'PV1-19',
    ingested_at         DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_drug_code drug_code TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_visit_number visit_number TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_prescribed_at prescribed_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Medication lines prescribed, dispensed or cancelled (hutong.std.medication)';

-- diagnoses: one row per diagnosis of a visit (a DG1 segment), from
-- hutong.std.diagnosis: the code (usually ICD-10, GB/T 14396) and its system, the
-- name, the type (DG1-6: A admitting, W working, F final, or a local 门诊/入院/出院
-- code) and priority (1: the principal diagnosis). visit_number joins encounters.
-- The clinician is kept by id only.
CREATE TABLE IF NOT EXISTS diagnoses
(
    event_id           String,
    facility_id        LowCardinality(String),
    source_system      LowCardinality(Nullable(String)),
    message_control_id Nullable(String),
    source_patient_id  String,
    empi_id            Nullable(String),
    patient_sex        LowCardinality(Nullable(String)) COMMENT 'as the facility sent it',
    patient_birth_date Nullable(Date32),
    occurred_at        Nullable(DateTime64(3, 'Asia/Shanghai')),
    received_at        DateTime64(3, 'Asia/Shanghai'),
    quality_warnings   Array(String),
    map_version        LowCardinality(Nullable(String)),
    set_id             Nullable(Int32) COMMENT 'DG1-1: position within the message',
    diagnosis_code     LowCardinality(String) COMMENT 'DG1-3.1, usually ICD-10',
    diagnosis_system   LowCardinality(Nullable(String)) COMMENT 'DG1-3.3',
    diagnosis_name     LowCardinality(Nullable(String)) COMMENT 'DG1-3.2 or DG1-4',
    diagnosis_type     LowCardinality(Nullable(String)) COMMENT 'DG1-6: A admitting, W working, F final, or a local code',
    priority           Nullable(Int32) COMMENT 'DG1-15: 1 is the principal diagnosis',
    diagnosed_at       Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'DG1-5',
    clinician_id       LowCardinality(Nullable(String)) COMMENT 'DG1-16.1; the name stays in the event',
    visit_number       Nullable(String) COMMENT 'PV1-19',
    ingested_at        DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_diagnosis_code diagnosis_code TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_visit_number visit_number TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_diagnosed_at diagnosed_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Diagnoses of visits, one per DG1 (hutong.std.diagnosis)';

-- documents: one row per shared clinical document (共享文档, CDA R2 per WS/T 500),
-- from hutong.std.document, with the registry metadata only: document id, type
-- (C0001 to C0053), title, effective time, confidentiality, the set id and
-- version that chain the versions of one document, author (by id), custodian and
-- visit, and of the content its media type, SHA-256 and size in bytes. The
-- content itself names the patient and is never stored here: the document store
-- keeps it, found by content_sha256.
CREATE TABLE IF NOT EXISTS documents
(
    event_id             String,
    facility_id          LowCardinality(String),
    source_system        LowCardinality(Nullable(String)),
    message_control_id   Nullable(String),
    source_patient_id    String,
    empi_id              Nullable(String),
    patient_sex          LowCardinality(Nullable(String)) COMMENT 'as the facility sent it',
    patient_birth_date   Nullable(Date32),
    occurred_at          Nullable(DateTime64(3, 'Asia/Shanghai')),
    received_at          DateTime64(3, 'Asia/Shanghai'),
    quality_warnings     Array(String),
    map_version          LowCardinality(Nullable(String)),
    document_id          String COMMENT 'ClinicalDocument/id as root^extension',
    document_type_code   LowCardinality(String) COMMENT 'WS/T 500 document type: C0001 to C0053',
    document_type_name   LowCardinality(Nullable(String)) COMMENT 'e.g. 门(急)诊病历',
    document_code        LowCardinality(Nullable(String)) COMMENT 'ClinicalDocument/code@code (LOINC)',
    title                LowCardinality(Nullable(String)) COMMENT 'ClinicalDocument/title',
    effective_time       Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'ClinicalDocument/effectiveTime',
    confidentiality_code LowCardinality(Nullable(String)) COMMENT 'N normal, R restricted, V very restricted',
    set_id               Nullable(String) COMMENT 'ClinicalDocument/setId: versions of one document share it',
    version_number       Nullable(Int32) COMMENT 'ClinicalDocument/versionNumber',
    author_id            LowCardinality(Nullable(String)) COMMENT 'author/assignedAuthor/id; the name stays in the event',
    custodian_id         LowCardinality(Nullable(String)) COMMENT 'the custodian organisation, often a GB 32100 unified social credit code',
    custodian_name       LowCardinality(Nullable(String)) COMMENT 'the custodian organisation',
    visit_number         Nullable(String) COMMENT 'the visit, when the header names one',
    content_type         LowCardinality(String) COMMENT 'media type of the content, e.g. text/xml',
    content_sha256       String COMMENT 'lower-case hex SHA-256 of the content',
    content_size         UInt64 COMMENT 'bytes; the content stays in the event and the document store',
    ingested_at          DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_document_id document_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_set_id set_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_effective_time effective_time TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Shared documents: registry metadata and size, never the content (hutong.std.document)';
