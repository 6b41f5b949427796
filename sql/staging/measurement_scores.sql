-- Valid measurements (design s1): passed validation and have a total, delivered or from items.
SELECT
    concern_id,
    delivery_id,
    source_row_number,
    measurement_id,
    episode_id,
    instrument,
    administered_on,
    session_number,
    occasion,
    total_score,
    score_source,
    items_answered
FROM {{ concern_rows('staging.measurement_scoring') }}
WHERE scoring_rejection IS NULL
ORDER BY concern_id, measurement_id
