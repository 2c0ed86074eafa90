-- patient_links: every change of a facility record's link to its EMPI id, from
-- hutong.empi.links: the first link, merges (ADT^A40, a reviewer, a shared ID
-- card), unmerges and review outcomes, each with its reason and who or what
-- decided. The current link of a record is the row with the highest sequence
-- (the view current_patient_links). Rows collapse on link_id, which is derived
-- from the change itself, so a replayed change lands once.
CREATE TABLE IF NOT EXISTS patient_links
(
    link_id           String COMMENT 'hash of facility, patient id, sequence, EMPI id and action',
    facility_id       LowCardinality(String),
    source_patient_id String,
    empi_id           String,
    action            LowCardinality(String) COMMENT 'link, review, merge or unmerge',
    score             Nullable(Float64) COMMENT 'match probability when a score decided',
    reason            String,
    decided_by        LowCardinality(String) COMMENT 'a rule (id_card, fellegi-sunter, ...), facility:<id> or a reviewer',
    previous_empi_id  Nullable(String) COMMENT 'for a merge or unmerge: the EMPI id before',
    linked_at         DateTime64(3, 'Asia/Shanghai'),
    sequence          UInt64 COMMENT 'the change counter of the resolver: higher is newer',
    ingested_at       DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3),
    INDEX ix_empi_id empi_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(linked_at)
ORDER BY (facility_id, source_patient_id, link_id)
COMMENT 'Links of facility patient ids to EMPI ids, with their history (hutong.empi.links)';

-- The link each facility record has now.
CREATE VIEW IF NOT EXISTS current_patient_links AS
SELECT
    facility_id,
    source_patient_id,
    argMax(empi_id, sequence)    AS empi_id,
    argMax(action, sequence)     AS action,
    argMax(decided_by, sequence) AS decided_by,
    max(linked_at)               AS linked_at
FROM patient_links
GROUP BY facility_id, source_patient_id;

-- empi_reviews: pairs of records that may be one person, from hutong.empi.review:
-- one row when the pair is raised (status open) and one when a reviewer decides
-- it (linked or rejected). The current status of a pair is its latest row.
CREATE TABLE IF NOT EXISTS empi_reviews
(
    review_row_id          String COMMENT 'pair id and status',
    pair_id                String,
    left_facility_id       LowCardinality(String),
    left_source_patient_id String,
    right_facility_id      LowCardinality(String),
    right_source_patient_id String,
    left_empi_id           Nullable(String),
    right_empi_id          Nullable(String),
    score                  Float64 COMMENT 'match probability',
    comparison             Map(String, Float64) COMMENT 'match weight of each field compared',
    status                 LowCardinality(String) COMMENT 'open, linked or rejected',
    created_at             DateTime64(3, 'Asia/Shanghai'),
    decided_by             Nullable(String),
    decided_at             Nullable(DateTime64(3, 'Asia/Shanghai')),
    ingested_at            DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (pair_id, review_row_id)
COMMENT 'Candidate pairs for a person to decide, and the decisions (hutong.empi.review)';
