-- concept_maps: every version of every code map entry, from hutong.terminology.maps
-- (facility, local system and code -> standard system and code). The map in force
-- is the latest updated_at per key (view current_concept_maps); a withdrawn entry
-- has deleted = true. Rows collapse on map_row_id.
CREATE TABLE IF NOT EXISTS concept_maps
(
    map_row_id     String COMMENT 'hash of the key, version and time',
    facility_id    LowCardinality(String) COMMENT '* for a region-wide map',
    source_system  LowCardinality(String) COMMENT 'lab-test, unit, diagnosis, drug, sex, ...',
    local_code     String,
    target_system  LowCardinality(String),
    target_code    String,
    target_display Nullable(String),
    map_version    LowCardinality(String),
    updated_at     DateTime64(3, 'Asia/Shanghai'),
    deleted        Bool,
    ingested_at    DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (facility_id, source_system, local_code, map_row_id)
COMMENT 'Code maps and their history (hutong.terminology.maps)';

CREATE VIEW IF NOT EXISTS current_concept_maps AS
SELECT facility_id, source_system, local_code, last_system AS target_system,
       last_code AS target_code, last_display AS target_display,
       last_version AS map_version, last_update AS updated_at
FROM (
    SELECT facility_id, source_system, local_code,
           argMax(target_system, updated_at)  AS last_system,
           argMax(target_code, updated_at)    AS last_code,
           argMax(target_display, updated_at) AS last_display,
           argMax(map_version, updated_at)    AS last_version,
           argMax(deleted, updated_at)        AS last_deleted,
           max(updated_at)                    AS last_update
    FROM concept_maps
    GROUP BY facility_id, source_system, local_code
)
WHERE NOT last_deleted;

-- unmapped_codes: local codes no map covered, from hutong.terminology.unmapped: each
-- row counts one code's occurrences in one batch of the stream worker, with the
-- first and last time it was seen there. Sum them per code (view unmapped_code_summary).
CREATE TABLE IF NOT EXISTS unmapped_codes
(
    unmapped_row_id String COMMENT 'hash of the whole record',
    facility_id     LowCardinality(String),
    code_system     LowCardinality(String) COMMENT 'lab-test, unit, diagnosis, drug, sex, ...',
    local_code      String,
    local_display   Nullable(String),
    count           UInt64,
    first_seen      DateTime64(3, 'Asia/Shanghai'),
    last_seen       DateTime64(3, 'Asia/Shanghai'),
    ingested_at     DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(first_seen)
ORDER BY (facility_id, code_system, local_code, unmapped_row_id)
COMMENT 'Local codes no map covered (hutong.terminology.unmapped)';

-- One row per code: how often and when it came unmapped, and whether a map covers it now
-- (a facility map, or a region-wide one with facility *).
CREATE VIEW IF NOT EXISTS unmapped_code_summary AS
SELECT u.facility_id AS facility_id, u.code_system AS code_system, u.local_code AS local_code,
       u.seen_display AS local_display, u.seen AS count, u.first AS first_seen,
       u.last AS last_seen, toBool(m.local_code != '') AS mapped_now
FROM (
    SELECT facility_id, code_system, local_code, any(local_display) AS seen_display,
           sum(count) AS seen, min(first_seen) AS first, max(last_seen) AS last
    FROM unmapped_codes
    GROUP BY facility_id, code_system, local_code
) AS u
LEFT JOIN (
    SELECT DISTINCT facility_id, source_system, local_code FROM current_concept_maps
) AS m
    ON m.source_system = u.code_system AND m.local_code = u.local_code
   AND (m.facility_id = u.facility_id OR m.facility_id = '*');

-- critical_alert_events: every state of every critical-value alert (危急值), from
-- hutong.alerts.critical: raised, each escalation, the acknowledgement. Names stay out
-- (the alert topic carries the patient's name for clinicians; the warehouse keeps the
-- EMPI id). Rows collapse on alert_event_id (alert id, status, escalation level).
CREATE TABLE IF NOT EXISTS critical_alert_events
(
    alert_event_id       String COMMENT 'alert id, status and escalation level',
    alert_id             String,
    event_id             String COMMENT 'the result that raised it',
    empi_id              Nullable(String),
    facility_id          LowCardinality(String),
    source_patient_id    String,
    visit_number         Nullable(String),
    source_event_type    LowCardinality(String) COMMENT 'lab-result or imaging-report',
    test_code            String,
    test_name            Nullable(String),
    standard_code        LowCardinality(Nullable(String)),
    value                Nullable(String),
    unit                 LowCardinality(Nullable(String)),
    standard_value       Nullable(Float64),
    standard_unit        LowCardinality(Nullable(String)),
    reference_range      Nullable(String),
    observed_at          Nullable(DateTime64(3, 'Asia/Shanghai')),
    rule_id              LowCardinality(String),
    rule_description     Nullable(String),
    rule_set             LowCardinality(Nullable(String)),
    severity             LowCardinality(String),
    ordering_provider_id Nullable(String),
    ordering_department  LowCardinality(Nullable(String)),
    raised_at            DateTime64(3, 'Asia/Shanghai'),
    status               LowCardinality(String) COMMENT 'raised, escalated or acknowledged',
    escalation_level     UInt8,
    notify               LowCardinality(Nullable(String)),
    deadline             Nullable(DateTime64(3, 'Asia/Shanghai')),
    status_at            Nullable(DateTime64(3, 'Asia/Shanghai')),
    acknowledged_by      Nullable(String),
    acknowledged_at      Nullable(DateTime64(3, 'Asia/Shanghai')),
    ack_channel          LowCardinality(Nullable(String)),
    ingested_at          DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(raised_at)
ORDER BY (facility_id, alert_id, alert_event_id)
COMMENT 'Critical-value alerts, each state (hutong.alerts.critical)';

-- critical_alerts: one row per alert with its turnaround, times to the minute and in
-- seconds: result to alert, alert to acknowledgement, result to acknowledgement.
CREATE VIEW IF NOT EXISTS critical_alerts AS
SELECT alert_id, event_id, empi_id, facility_id, source_patient_id, visit_number,
       source_event_type, test_code, test_name, standard_code, value, unit, standard_value,
       standard_unit, rule_id, rule_description, rule_set, ordering_provider_id,
       ordering_department, first_observed AS observed_at, first_raised AS raised_at,
       top_level AS escalation_level, state, ack_at AS acknowledged_at,
       ack_by AS acknowledged_by, ack_how AS ack_channel,
       toStartOfMinute(first_raised) AS raised_minute,
       toStartOfMinute(ack_at) AS acknowledged_minute,
       dateDiff('second', first_observed, first_raised) AS result_to_alert_s,
       dateDiff('second', first_raised, ack_at) AS alert_to_ack_s,
       dateDiff('second', first_observed, ack_at) AS result_to_ack_s
FROM (
    SELECT alert_id,
           any(event_id) AS event_id, any(empi_id) AS empi_id,
           any(facility_id) AS facility_id, any(source_patient_id) AS source_patient_id,
           any(visit_number) AS visit_number, any(source_event_type) AS source_event_type,
           any(test_code) AS test_code, any(test_name) AS test_name,
           any(standard_code) AS standard_code, any(value) AS value, any(unit) AS unit,
           any(standard_value) AS standard_value, any(standard_unit) AS standard_unit,
           any(rule_id) AS rule_id, any(rule_description) AS rule_description,
           any(rule_set) AS rule_set, any(ordering_provider_id) AS ordering_provider_id,
           any(ordering_department) AS ordering_department,
           min(observed_at) AS first_observed, min(raised_at) AS first_raised,
           max(escalation_level) AS top_level,
           if(countIf(status = 'acknowledged') > 0, 'acknowledged',
              if(max(escalation_level) > 0, 'escalated', 'raised')) AS state,
           maxIf(acknowledged_at, status = 'acknowledged') AS ack_at,
           anyIf(acknowledged_by, status = 'acknowledged') AS ack_by,
           anyIf(ack_channel, status = 'acknowledged') AS ack_how
    FROM critical_alert_events
    GROUP BY alert_id
);
