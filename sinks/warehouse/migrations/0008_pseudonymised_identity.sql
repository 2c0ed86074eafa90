-- What the warehouse keeps of who a record is (sinks/warehouse/pseudonyms.py): by
-- default source_patient_id holds a keyed pseudonym (ps_ and 32 hex digits) and
-- patient_birth_date stays NULL; these derived columns take the birth date's place.
-- Rows written before this migration keep what they had; `hutong replay` rewrites them.
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE encounters ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE encounters ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE imaging_reports ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE imaging_reports ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS patient_age_band LowCardinality(Nullable(String)) COMMENT 'age at the event: <1, 1-4, 5-9, ..., 85+' AFTER patient_birth_date;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS patient_region_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2260 county-level division of the ID card' AFTER patient_age_band;
