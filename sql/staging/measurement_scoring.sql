-- Every measurement that passed row validation, with its total and, if it cannot
-- be scored, why (contract: item scoring, SCL90 prorating, total/item mismatch).
-- Valid measurements (reason IS NULL) become staging.measurement_scores; the others
-- go to audit.quarantine as rows of measurements.csv.
WITH item_totals AS (
    SELECT
        concern_id,
        delivery_id,
        measurement_id,
        count(response) AS items_answered,
        sum(response) AS item_sum
    FROM {{ concern_rows('staging.item_responses') }}
    GROUP BY concern_id, delivery_id, measurement_id
),

measurements_with_items AS (
    SELECT
        m.concern_id,
        m.delivery_id,
        m.source_row_number,
        m.measurement_id,
        m.episode_id,
        m.instrument,
        m.administered_on,
        m.session_number,
        m.occasion,
        m.total_score AS delivered_total,
        inst.items AS instrument_items,
        inst.scoring,
        it.measurement_id IS NOT NULL AS has_items,
        coalesce(it.items_answered, 0) AS items_answered,
        it.item_sum,
        -- the contract allows at most 10% blank items (9 of the SCL90's 90)
        floor(inst.items * getvariable('max_blank_share')) AS max_blank_items
    FROM {{ concern_rows('staging.measurements') }} AS m
    JOIN config.instruments AS inst ON inst.code = m.instrument
    LEFT JOIN item_totals AS it
        ON it.concern_id = m.concern_id
        AND it.delivery_id = m.delivery_id
        AND it.measurement_id = m.measurement_id
),

item_scores AS (
    SELECT
        *,
        instrument_items - items_answered AS items_blank,
        CASE
            WHEN NOT has_items OR items_answered = 0 THEN NULL
            WHEN scoring = 'mean' THEN item_sum / items_answered
            -- sum scoring, prorated to the full item count; DuckDB rounds half away from zero
            ELSE round(item_sum * instrument_items / items_answered)
        END AS item_total
    FROM measurements_with_items
)

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
    delivered_total,
    CASE WHEN has_items THEN item_total ELSE delivered_total END AS total_score,
    CASE
        WHEN NOT has_items THEN 'delivered'
        WHEN items_blank = 0 THEN 'items'
        ELSE 'items_prorated'
    END AS score_source,
    CASE WHEN has_items THEN items_answered END AS items_answered,
    CASE
        WHEN has_items AND items_blank > max_blank_items THEN 'too_many_missing_items'
        WHEN has_items AND delivered_total IS NOT NULL
            AND abs(delivered_total - item_total) > getvariable('total_mismatch_tolerance')
            THEN 'total_items_mismatch'
        WHEN NOT has_items AND delivered_total IS NULL THEN 'missing_total'
    END AS scoring_rejection,
    CASE
        WHEN has_items AND items_blank > max_blank_items
            THEN items_blank::VARCHAR || ' of ' || instrument_items::VARCHAR || ' items blank (at most '
                || max_blank_items::INTEGER::VARCHAR || ' allowed)'
        WHEN has_items AND delivered_total IS NOT NULL
            AND abs(delivered_total - item_total) > getvariable('total_mismatch_tolerance')
            THEN 'delivered total ' || delivered_total::VARCHAR || ', items give ' || item_total::VARCHAR
        WHEN NOT has_items AND delivered_total IS NULL
            THEN 'no total_score and no item responses'
    END AS scoring_detail
FROM item_scores
ORDER BY concern_id, measurement_id
