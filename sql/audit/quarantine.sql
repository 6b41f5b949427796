-- Every delivered row that did not load, once per reason, with the raw row (client ids
-- already pseudonymised; a malformed episodes row is withheld). The union runs over every
-- delivered file of schemas/ (delivered_files, rom_pipeline.lib.sqlfiles.default_context).
WITH validation_rejects AS (
{%- for file in delivered_files %}
    {% if not loop.first %}UNION ALL
    {% endif -%}
    SELECT delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, detail, raw_row
    FROM staging.{{ file }}_rejects
{%- endfor %}
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
