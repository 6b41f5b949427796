-- marts.not_on_track_counts (published, public): per location and concern, the open episodes
-- that can be judged and the number flagged not on track (marts.not_on_track), as at the
-- concern's export date: what the shared location and concern reports show (docs/feedback.md).
-- No episode or therapist row. Suppressed like every published percentage (design s2; the
-- macros that marts.indicator_aggregates uses): n_below_min_n (fewer than min_n judged
-- episodes), small_count (flagged, or judged - flagged, a count of 1..4), and complementary
-- over the locations of a concern (a shown concern with exactly one hidden location would give
-- it back by subtraction, so the smallest shown location is hidden too). The split by reason
-- is shown only where the figure is shown and neither reason count is 1..4.
{% from "macros/complementary.jinja" import complementary_pass %}
WITH
judged AS (
    SELECT n.concern_id, n.location_id, n.not_on_track, n.not_on_track_reason
    FROM marts.not_on_track AS n
),

locations AS (
    -- Every location of a current delivery, also one without open episodes (a zero).
    SELECT concern_id, location_id FROM staging.locations
),

unit_counts AS (
    SELECT
        CASE WHEN grouping(l.location_id) = 0 THEN 'location' ELSE 'concern' END AS level,
        l.concern_id,
        CASE WHEN grouping(l.location_id) = 0 THEN l.location_id ELSE l.concern_id END AS unit_id,
        count(j.not_on_track) AS n_judged,
        count(*) FILTER (WHERE j.not_on_track) AS n_flagged,
        count(*) FILTER (WHERE j.not_on_track_reason = 'reliably_worse') AS n_reliably_worse,
        count(*) FILTER (WHERE j.not_on_track_reason = 'above_expected_course') AS n_above_expected_course
    FROM locations AS l
    LEFT JOIN judged AS j ON j.concern_id = l.concern_id AND j.location_id = l.location_id
    GROUP BY GROUPING SETS ((l.concern_id, l.location_id), (l.concern_id))
),

own_reasons AS (
    SELECT *, coalesce(small_number_reason(n_judged), small_count_reason(n_flagged, n_judged)) AS reason
    FROM unit_counts
),

complementary AS (
    -- A shown concern with exactly one hidden location.
    {{ complementary_pass("own_reasons", n="n_judged", is_part="r.level = 'location'", siblings="level, concern_id",
                          parent_on="parent.level = 'concern' AND parent.concern_id = r.concern_id") }}
),

data_dates AS (
    SELECT e.concern_id, max(d.export_date) AS as_of
    FROM (SELECT DISTINCT concern_id, delivery_id FROM marts.episode_outcomes) AS e
    JOIN audit.deliveries AS d ON d.delivery_id = e.delivery_id
    GROUP BY e.concern_id
)

SELECT
    c.level,
    c.concern_id,
    c.unit_id,
    dd.as_of,
    c.n_judged,
    c.n_flagged,
    100.0 * c.n_flagged / nullif(c.n_judged, 0) AS pct_flagged,
    CASE WHEN c.reason IS NULL AND small_count_reason(c.n_reliably_worse, c.n_flagged) IS NULL
         THEN c.n_reliably_worse END AS n_reliably_worse,
    CASE WHEN c.reason IS NULL AND small_count_reason(c.n_reliably_worse, c.n_flagged) IS NULL
         THEN c.n_above_expected_course END AS n_above_expected_course,
    c.reason IS NOT NULL AS suppressed,
    c.reason AS suppression_reason
FROM complementary AS c
LEFT JOIN data_dates AS dd ON dd.concern_id = c.concern_id
ORDER BY c.concern_id, c.level DESC, c.unit_id
