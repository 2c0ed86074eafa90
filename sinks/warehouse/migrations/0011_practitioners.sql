-- The practitioner registry (medical staff). Each clinical event names its
-- clinician by the facility's staff id (attending_doctor_id, ordering_provider_id,
-- radiologist_id, prescriber_id, clinician_id, author_id); the stream worker looks
-- them up in the registry and sets practitioner_id (the registry id, facility id
-- and staff id joined with |; NULL when the registry does not know them) and
-- practitioner_status (known, retired or unknown; NULL when the event names nobody).
-- Rows written before this migration have NULL in both.
ALTER TABLE encounters ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of attending_doctor_id (facility|staff id); NULL when unknown' AFTER attending_doctor_id;
ALTER TABLE encounters ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of ordering_provider_id (facility|staff id); NULL when unknown' AFTER ordering_provider_id;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;
ALTER TABLE imaging_reports ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of radiologist_id (facility|staff id); NULL when unknown' AFTER radiologist_id;
ALTER TABLE imaging_reports ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of ordering_provider_id (facility|staff id); NULL when unknown' AFTER ordering_provider_id;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of prescriber_id (facility|staff id); NULL when unknown' AFTER prescriber_id;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of clinician_id (facility|staff id); NULL when unknown' AFTER clinician_id;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS practitioner_id Nullable(String) COMMENT 'registry id of author_id (facility|staff id); NULL when unknown' AFTER author_id;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS practitioner_status LowCardinality(Nullable(String)) COMMENT 'known, retired or unknown; NULL when the event names nobody' AFTER practitioner_id;

-- practitioners: every version of every registry record, from
-- hutong.registry.practitioners. The ID number (身份证号) stays in the hub: the
-- warehouse keeps its keyed pseudonym (id_pseudonym), the same for one person at
-- every facility. The record in force is the highest version per practitioner_id
-- (view current_practitioners); a retired one stays, with status retired.
-- Rows collapse on practitioner_row_id.
CREATE TABLE IF NOT EXISTS practitioners
(
    practitioner_row_id String COMMENT 'hash of the practitioner id, version and change time',
    practitioner_id     String COMMENT 'facility id and staff id joined with |',
    facility_id         LowCardinality(String),
    local_id            String COMMENT 'the facility staff id (ORC-12.1, OBR-16.1, PV1-7.1, DG1-16.1, CDA author id)',
    name                String,
    id_pseudonym        Nullable(String) COMMENT 'keyed pseudonym of the ID number (ps_ and 32 hex digits); the number stays in the hub',
    certificate_number  Nullable(String) COMMENT 'practising-certificate number (执业证书编码)',
    department          LowCardinality(Nullable(String)) COMMENT '科室, as the facility names it',
    role                LowCardinality(String) COMMENT '医师, 护士, 药师, 技师 or 其他',
    title               LowCardinality(Nullable(String)) COMMENT '职称, e.g. 主任医师',
    status              LowCardinality(String) COMMENT 'active or retired',
    warnings            Array(String) COMMENT 'findings that did not stop the change',
    version             UInt64 COMMENT '1 for the first record, one more for each change',
    changed_at          DateTime64(3, 'Asia/Shanghai'),
    changed_by          String COMMENT 'a user id, or registry-file',
    reason              Nullable(String),
    file_digest         Nullable(String) COMMENT 'SHA-256 of the registry-file entry last applied',
    ingested_at         DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (facility_id, practitioner_id, practitioner_row_id)
COMMENT 'The practitioner registry and its history, without ID numbers (hutong.registry.practitioners)';

CREATE VIEW IF NOT EXISTS current_practitioners AS
SELECT practitioner_id, facility_id, local_id, last_name AS name,
       last_pseudonym AS id_pseudonym, last_certificate AS certificate_number,
       last_department AS department, last_role AS role, last_title AS title,
       last_status AS status, last_warnings AS warnings, last_version AS version,
       last_change AS changed_at, last_by AS changed_by, last_reason AS reason
FROM (
    SELECT practitioner_id, facility_id, local_id,
           argMax(name, (version, changed_at))               AS last_name,
           argMax(id_pseudonym, (version, changed_at))       AS last_pseudonym,
           argMax(certificate_number, (version, changed_at)) AS last_certificate,
           argMax(department, (version, changed_at))         AS last_department,
           argMax(role, (version, changed_at))               AS last_role,
           argMax(title, (version, changed_at))              AS last_title,
           argMax(status, (version, changed_at))             AS last_status,
           argMax(warnings, (version, changed_at))           AS last_warnings,
           max(version)                                      AS last_version,
           argMax(changed_at, (version, changed_at))         AS last_change,
           argMax(changed_by, (version, changed_at))         AS last_by,
           argMax(reason, (version, changed_at))             AS last_reason
    FROM practitioners
    GROUP BY practitioner_id, facility_id, local_id
);

-- unknown_practitioners: clinicians named on events whom the registry did not know,
-- from hutong.registry.unknown-practitioners: each row counts one clinician's events
-- of one type in one batch of the stream worker, with the first and last time they
-- were seen there. Sum them per clinician (view unknown_practitioner_summary).
CREATE TABLE IF NOT EXISTS unknown_practitioners
(
    unknown_row_id String COMMENT 'hash of the whole record',
    facility_id    LowCardinality(String),
    local_id       String COMMENT 'the staff id or certificate number the events gave',
    name           Nullable(String) COMMENT 'the name the events gave, if any',
    role           LowCardinality(String) COMMENT 'ordering, attending, prescriber, diagnosing, radiologist or author',
    event_type     LowCardinality(String),
    count          UInt64,
    first_seen     DateTime64(3, 'Asia/Shanghai'),
    last_seen      DateTime64(3, 'Asia/Shanghai'),
    ingested_at    DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(first_seen)
ORDER BY (facility_id, local_id, unknown_row_id)
COMMENT 'Clinicians named on events whom the registry did not know (hutong.registry.unknown-practitioners)';

-- One row per clinician, role and event type: how often and when they came unknown,
-- and whether the registry knows them now (registered), as the stream worker would match
-- them (streams/practitioners.py): a current practitioner, active or retired, with that
-- staff id at that facility, or with that practising-certificate number (national, so
-- at any facility; the registry keeps it trimmed and in capitals). IN rather than a
-- join: a person registered at two facilities with one certificate gives one row.
CREATE VIEW IF NOT EXISTS unknown_practitioner_summary AS
SELECT u.facility_id AS facility_id, u.local_id AS local_id, u.seen_name AS name,
       u.role AS role, u.event_type AS event_type, u.seen AS count, u.first AS first_seen,
       u.last AS last_seen,
       toBool((u.facility_id, u.local_id) IN (
                  SELECT facility_id, local_id FROM current_practitioners
                  WHERE status IN ('active', 'retired'))
              OR upper(trimBoth(u.local_id)) IN (
                  SELECT assumeNotNull(certificate_number) FROM current_practitioners
                  WHERE status IN ('active', 'retired') AND certificate_number IS NOT NULL))
           AS registered
FROM (
    SELECT facility_id, local_id, role, event_type, any(name) AS seen_name,
           sum(count) AS seen, min(first_seen) AS first, max(last_seen) AS last
    FROM unknown_practitioners
    GROUP BY facility_id, local_id, role, event_type
) AS u;
