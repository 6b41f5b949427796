-- Every delivered row that did not load, once per reason, with the raw row (client ids
-- already pseudonymised; a malformed episodes row is withheld).
WITH validation_rejects AS (
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.locations_rejects
    UNION ALL
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.therapists_rejects
    UNION ALL
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.episodes_rejects
    UNION ALL
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.measurements_rejects
    UNION ALL
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.item_responses_rejects
    UNION ALL
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.annual_reports_rejects
    UNION ALL
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.quality_indicators_rejects
),

scoring_rejects AS (
    SELECT
        s.delivery_id,
        s.concern_id,
        r.file_name,
        s.source_row_number,
        'scoring' AS stage,
        s.scoring_rejection AS reason,
        'total_score' AS column_name,
        s.scoring_detail AS detail,
        to_json(struct_pack(
            measurement_id := r.measurement_id, episode_id := r.episode_id, instrument := r.instrument,
            administered_on := r.administered_on, session_number := r.session_number,
            occasion := r.occasion, total_score := r.total_score
        ))::VARCHAR AS raw_row
    FROM staging.measurement_scoring AS s
    JOIN raw.measurements AS r
        ON r.delivery_id = s.delivery_id AND r.source_row_number = s.source_row_number
    WHERE s.scoring_rejection IS NOT NULL
)

SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
FROM validation_rejects
UNION ALL
SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
FROM scoring_rejects
ORDER BY concern_id, delivery_id, file_name, source_row_number, reason
