-- Views for the analyses the regional-platform guidelines name (docs/analytics.md has
-- the questions they answer and example queries). Days are calendar days in
-- Asia/Shanghai. Every view reads the tables as they are now, so a replay or a late
-- message changes the figures of the day it belongs to.

-- Visits and admissions by facility and day (门急诊人次、入院人次): encounters by
-- what happened, counted once per visit number.
CREATE VIEW IF NOT EXISTS facility_daily_activity AS
SELECT facility_id,
       toDate(occurred_at, 'Asia/Shanghai')                                    AS day,
       uniqExactIf(visit_number, action = 'register' AND patient_class IN ('O', 'E'))
                                                                               AS outpatient_visits,
       uniqExactIf(visit_number, action = 'register' AND patient_class = 'E')  AS emergency_visits,
       uniqExactIf(visit_number, action = 'admit')                             AS admissions,
       uniqExactIf(visit_number, action = 'discharge')                         AS discharges,
       uniqExactIf(visit_number, action = 'transfer')                          AS transfers,
       uniqExact(empi_id)                                                      AS people
FROM encounters
WHERE visit_number IS NOT NULL AND action != 'cancel'
GROUP BY facility_id, day;

-- Diagnosis ranking (门诊及住院诊断排名): diagnoses per month, setting (outpatient,
-- inpatient: the patient class of the visit) and ICD-10 code (the standard code when
-- translation gave one, else the facility's), counted once per visit, ranked per month
-- and setting.
CREATE VIEW IF NOT EXISTS diagnosis_ranking AS
SELECT month, setting, code, name, visits, people,
       rank() OVER (PARTITION BY month, setting ORDER BY visits DESC) AS rank
FROM (
    SELECT toStartOfMonth(d.diagnosed_on)                          AS month,
           multiIf(v.patient_class = 'I', 'inpatient',
                   v.patient_class IN ('O', 'E'), 'outpatient', 'unknown') AS setting,
           d.code                                                  AS code,
           any(d.diagnosis_name)                                   AS name,
           uniqExact(d.facility_id, d.visit_number)                AS visits,
           uniqExact(d.empi_id)                                    AS people
    FROM (
        SELECT facility_id, visit_number, empi_id, diagnosis_name,
               coalesce(standard_code, diagnosis_code) AS code,
               toDate(coalesce(diagnosed_at, occurred_at), 'Asia/Shanghai') AS diagnosed_on
        FROM diagnoses
        WHERE code != ''
    ) AS d
    LEFT JOIN (
        SELECT facility_id, visit_number, argMax(patient_class, occurred_at) AS patient_class
        FROM encounters
        WHERE visit_number IS NOT NULL
        GROUP BY facility_id, visit_number
    ) AS v ON v.facility_id = d.facility_id AND v.visit_number = d.visit_number
    GROUP BY month, setting, code
);

-- Prescriptions, one row each: lines, antimicrobials among them and the longest
-- supply. A line is an antimicrobial (抗菌药物) when its standard drug code is an ATC
-- J01 (antibacterial) or J02 (antimycotic) code, or its name has the stem of one
-- (头孢, 西林, 霉素, 沙星, 培南, 环素, 硝唑, 磺胺, 康唑, 林可, 克林, 万古, 替考, 利奈唑胺,
-- 呋喃妥因, 磷霉素): a default for facilities that map drugs to other codes.
CREATE VIEW IF NOT EXISTS prescriptions AS
SELECT facility_id,
       coalesce(prescription_number, placer_order_number, message_control_id) AS prescription,
       any(empi_id)                                          AS empi_id,
       any(department)                                       AS department,
       any(prescriber_id)                                    AS prescriber_id,
       min(toDate(coalesce(prescribed_at, occurred_at), 'Asia/Shanghai')) AS day,
       uniqExact(coalesce(standard_drug_code, drug_code, drug_name)) AS drugs,
       countIf(match(coalesce(standard_drug_code, ''), '^J0[12]')
               OR match(coalesce(drug_name, ''),
                        '头孢|西林|霉素|沙星|培南|环素|硝唑|磺胺|康唑|林可|克林|万古|替考|利奈唑胺|呋喃妥因|磷霉素'))
                                                             AS antimicrobial_lines,
       max(duration_days)                                    AS longest_days
FROM medications
WHERE action = 'prescribe'
GROUP BY facility_id, prescription;

-- Antimicrobial share of prescriptions (抗菌药物处方比例) by facility and day.
CREATE VIEW IF NOT EXISTS antibiotic_share AS
SELECT facility_id, day,
       count()                                    AS prescriptions,
       countIf(antimicrobial_lines > 0)           AS with_antimicrobial,
       round(with_antimicrobial / prescriptions, 4) AS share
FROM prescriptions
GROUP BY facility_id, day;

-- Large prescriptions (大处方): more than 5 drugs on one prescription, or a supply over
-- 7 days (处方管理办法: 每张处方不得超过5种药品, 一般不得超过7日用量). One row per
-- prescription that crosses either line, with the reasons.
CREATE VIEW IF NOT EXISTS large_prescriptions AS
SELECT facility_id, prescription, empi_id, department, prescriber_id, day, drugs,
       longest_days,
       arrayFilter(r -> r != '', [if(drugs > 5, 'more than 5 drugs', ''),
                                  if(longest_days > 7, 'more than 7 days', '')]) AS reasons
FROM prescriptions
WHERE drugs > 5 OR longest_days > 7;

-- Critical-value turnaround (危急值处置时效) by facility and day of the alert: alerts,
-- acknowledged, escalated, and the minutes from alert to acknowledgement.
CREATE VIEW IF NOT EXISTS critical_value_turnaround AS
SELECT facility_id,
       toDate(raised_at, 'Asia/Shanghai')                       AS day,
       count()                                                  AS alerts,
       countIf(state = 'acknowledged')                          AS acknowledged,
       countIf(escalation_level > 0)                            AS escalated,
       round(quantileExactIf(0.5)(alert_to_ack_s, state = 'acknowledged') / 60, 1)
                                                                AS median_ack_minutes,
       round(quantileExactIf(0.9)(alert_to_ack_s, state = 'acknowledged') / 60, 1)
                                                                AS p90_ack_minutes,
       round(avgIf(result_to_alert_s, result_to_alert_s IS NOT NULL), 1)
                                                                AS mean_result_to_alert_s
FROM critical_alerts
GROUP BY facility_id, day;

-- Data quality per facility and day (数据质量): events received, the share with a
-- coded field no map covers, the share with quality warnings, dead letters, and a
-- score out of 100 = 100 x (1 - 0.5 x unmapped rate - 0.2 x warning rate
-- - 0.3 x dead-letter rate), where the dead-letter rate is dead letters over
-- events + dead letters.
CREATE VIEW IF NOT EXISTS facility_data_quality AS
SELECT facility_id, day,
       sum(events)                                          AS events,
       sum(with_unmapped)                                   AS events_with_unmapped,
       sum(with_warnings)                                   AS events_with_warnings,
       sum(letters)                                         AS dead_letters,
       round(events_with_unmapped / greatest(events, 1), 4) AS unmapped_rate,
       round(events_with_warnings / greatest(events, 1), 4) AS warning_rate,
       round(dead_letters / greatest(events + dead_letters, 1), 4) AS dead_letter_rate,
       round(100 * (1 - 0.5 * unmapped_rate - 0.2 * warning_rate - 0.3 * dead_letter_rate), 1)
                                                            AS quality_score
FROM (
    SELECT facility_id, toDate(received_at, 'Asia/Shanghai') AS day, count() AS events,
           countIf(notEmpty(unmapped)) AS with_unmapped,
           countIf(notEmpty(quality_warnings)) AS with_warnings, 0 AS letters
    FROM merge(currentDatabase(), '^(patients|encounters|lab_results|imaging_reports|orders|medications|diagnoses|documents)$')
    GROUP BY facility_id, day
    UNION ALL
    SELECT coalesce(facility_id, '(unknown)') AS facility_id,
           toDate(failed_at, 'Asia/Shanghai') AS day, 0, 0, 0, count()
    FROM dead_letters
    GROUP BY facility_id, day
)
GROUP BY facility_id, day;

-- Duplicates the master index resolved (主索引去重): facility records, the people they
-- are, and how many people are known at more than one facility.
CREATE VIEW IF NOT EXISTS empi_duplicates_resolved AS
SELECT count()                                     AS facility_records,
       uniqExact(empi_id)                          AS people,
       facility_records - people                   AS duplicates_resolved,
       countIf(facilities > 1)                     AS records_of_people_at_several_facilities,
       uniqExactIf(empi_id, facilities > 1)        AS people_at_several_facilities
FROM (
    SELECT empi_id, facility_id, source_patient_id,
           uniqExact(facility_id) OVER (PARTITION BY empi_id) AS facilities
    FROM current_patient_links
);
