-- lab_results: one row per laboratory result (one OBX), from hutong.std.lab-result.
-- The ADR 0001 event flattened: the common header, the patient reduced to
-- source_patient_id, empi_id, sex and birth date (names, ID numbers, phones and
-- addresses stay in the EMPI), then the lab-result fields.
-- Analysts filter by facility, test code and time: monthly partitions on
-- received_at, rows sorted by facility, skip indexes on test_code, observed_at
-- and empi_id. Rows collapse on (facility_id, event_id); the sink also inserts
-- only event_ids not yet present, so replays never double a row before a merge.
-- Times are DateTime64(3, 'Asia/Shanghai'): read as local time, stored as UTC.
CREATE TABLE IF NOT EXISTS lab_results
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
    set_id                Int32,
    placer_order_number   Nullable(String),
    filler_order_number   Nullable(String),
    panel_code            LowCardinality(Nullable(String)),
    panel_name            LowCardinality(Nullable(String)),
    specimen_type         LowCardinality(Nullable(String)),
    specimen_collected_at Nullable(DateTime64(3, 'Asia/Shanghai')),
    test_code             LowCardinality(String),
    test_name             LowCardinality(Nullable(String)),
    test_system           LowCardinality(Nullable(String)),
    value_type            LowCardinality(String) COMMENT 'OBX-2',
    value                 Nullable(String) COMMENT 'the value as text',
    value_numeric         Nullable(Float64),
    unit                  LowCardinality(Nullable(String)),
    reference_range       LowCardinality(Nullable(String)),
    abnormal_flags        Array(LowCardinality(String)),
    result_status         LowCardinality(Nullable(String)),
    observed_at           Nullable(DateTime64(3, 'Asia/Shanghai')),
    performing_lab        LowCardinality(Nullable(String)),
    ingested_at           DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when the warehouse got the row',
    INDEX ix_test_code test_code TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_observed_at observed_at TYPE minmax GRANULARITY 4,
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (facility_id, event_id)
COMMENT 'Laboratory results, one per OBX (hutong.std.lab-result)';

-- dead_letters: every message that did not become a canonical event, from
-- hutong.dlq: the stage that gave up, the reason, where in the message, where it
-- came from in Kafka, and the raw bytes (payload; read it with toBase64 or hex
-- when it is not UTF-8). Rows collapse on dead_letter_id.
CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id   String,
    stage            LowCardinality(String),
    reason           String,
    error_code       LowCardinality(Nullable(String)),
    location         Nullable(String) COMMENT 'segment, field or offset that failed',
    facility_id      LowCardinality(Nullable(String)),
    source_topic     LowCardinality(Nullable(String)),
    source_partition Nullable(Int32),
    source_offset    Nullable(Int64),
    failed_at        DateTime64(3, 'Asia/Shanghai'),
    payload_size     UInt64,
    payload          String COMMENT 'the raw bytes as received',
    ingested_at      DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY dead_letter_id
COMMENT 'Messages that did not become events, with stage, reason and raw bytes (hutong.dlq)';
