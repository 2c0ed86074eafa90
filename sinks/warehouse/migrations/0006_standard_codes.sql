-- Code translation (issue 5): every event table gets the standard codes the
-- stream assigned (codes: field, system, code, display) and the coded fields it
-- could not map (unmapped); lab results get the standard code, the value in the
-- standard unit, and who ordered the test where; patients, medications and
-- diagnoses get their main standard codes as columns of their own. Re-runnable:
-- each column is added only when missing.
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE encounters ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE encounters ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE imaging_reports ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE imaging_reports ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS codes Array(Tuple(field String, system String, code String, display Nullable(String))) COMMENT 'standard codes assigned by translation' AFTER map_version;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS unmapped Array(String) COMMENT 'coded fields no map covers (local code kept)' AFTER codes;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS standard_code LowCardinality(Nullable(String)) COMMENT 'the standard code of test_code (LOINC, or WS/T 446)' AFTER performing_lab;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS standard_system LowCardinality(Nullable(String)) COMMENT 'LOINC or WS/T 446' AFTER standard_code;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS standard_value Nullable(Float64) COMMENT 'value_numeric in standard_unit' AFTER standard_system;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS standard_unit LowCardinality(Nullable(String)) COMMENT 'UCUM-style unit of standard_value' AFTER standard_value;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS ordering_provider_id Nullable(String) COMMENT 'ORC-12 or OBR-16, id only' AFTER standard_unit;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS ordering_department LowCardinality(Nullable(String)) COMMENT 'PV1-3, else ORC-17' AFTER ordering_provider_id;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS visit_number Nullable(String) COMMENT 'PV1-19' AFTER ordering_department;
ALTER TABLE lab_results ADD COLUMN IF NOT EXISTS patient_class LowCardinality(Nullable(String)) COMMENT 'PV1-2: I, O, E, ...' AFTER visit_number;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS sex_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2261.1' AFTER occupation;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS marital_status_code LowCardinality(Nullable(String)) COMMENT 'GB/T 2261.2' AFTER sex_code;
ALTER TABLE patients ADD COLUMN IF NOT EXISTS ethnic_group_code LowCardinality(Nullable(String)) COMMENT 'GB 3304' AFTER marital_status_code;
ALTER TABLE medications ADD COLUMN IF NOT EXISTS standard_drug_code LowCardinality(Nullable(String)) COMMENT 'the drug code the facility map gives' AFTER drug_code;
ALTER TABLE diagnoses ADD COLUMN IF NOT EXISTS standard_code LowCardinality(Nullable(String)) COMMENT 'ICD-10 国家临床版 2.0' AFTER diagnosis_system;
