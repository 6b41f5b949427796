-- The bench's baseline (issue 11): the pipeline's computation as one plain DuckDB script.
--
-- Read each concern's current delivery typed (read_csv), score the items, pick pre and post
-- per episode and instrument, and compute the organisation (concern) and location indicators
-- per month, quarter and year. No checksums, no validation, no quarantine, no pseudonymisation,
-- no audit trail, no atomic publish: what DuckDB alone needs for the same figures.
-- tests/test_bench.py proves it is the same computation: its figures equal the published
-- marts.indicators of a pipeline run on the same files.
--
-- Run by rom_pipeline/bench/baseline.py, which sets before this script:
--   * the rule parameters as variables and config.instruments (rom_pipeline.config.apply_parameters,
--     the pipeline's own), so no rule parameter is written here;
--   * deliveries(concern_id, directory): each concern's newest delivery (by exported_at);
--   * the variables files_locations, files_therapists, files_episodes, files_measurements,
--     files_item_responses: the CSV files of those deliveries (lists of paths).
-- It leaves the tables episode_outcomes and indicators in the connection's database.
-- Contract dialect: ';' delimited, '"' quoted, one header row (columns matched by name),
-- empty field = NULL, booleans 0/1. CSV only (the bench generates CSV).

CREATE TEMP TABLE locations AS
SELECT d.concern_id, f.location_id, f.location_name
FROM read_csv(getvariable('files_locations'), delim = ';', quote = '"', escape = '"', header = true,
              filename = true, union_by_name = true,
              types = {'location_id': 'VARCHAR', 'location_name': 'VARCHAR', 'region': 'VARCHAR'}) AS f
JOIN deliveries AS d ON d.directory = parse_dirpath(f.filename);

CREATE TEMP TABLE therapists AS
SELECT d.concern_id, f.therapist_id, f.is_trainee
FROM read_csv(getvariable('files_therapists'), delim = ';', quote = '"', escape = '"', header = true,
              filename = true, union_by_name = true,
              types = {'therapist_id': 'VARCHAR', 'location_id': 'VARCHAR', 'profession': 'VARCHAR',
                       'is_trainee': 'BOOLEAN'}) AS f
JOIN deliveries AS d ON d.directory = parse_dirpath(f.filename);

CREATE TEMP TABLE episodes AS
SELECT d.concern_id, f.episode_id, f.location_id, f.therapist_id, f.start_date, f.end_date, f.end_reason
FROM read_csv(getvariable('files_episodes'), delim = ';', quote = '"', escape = '"', header = true,
              filename = true, union_by_name = true,
              types = {'episode_id': 'VARCHAR', 'client_id': 'VARCHAR', 'location_id': 'VARCHAR',
                       'therapist_id': 'VARCHAR', 'care_type': 'VARCHAR', 'diagnosis_group': 'VARCHAR',
                       'referrer': 'VARCHAR', 'start_date': 'DATE', 'end_date': 'DATE', 'end_reason': 'VARCHAR',
                       'sessions_attended': 'INTEGER', 'age_at_start': 'INTEGER', 'sex': 'VARCHAR'}) AS f
JOIN deliveries AS d ON d.directory = parse_dirpath(f.filename);

-- Item scores per measurement, straight from the CSV (the item rows are never stored).
CREATE TEMP TABLE item_totals AS
SELECT d.concern_id, f.measurement_id, count(f.response) AS items_answered, sum(f.response) AS item_sum
FROM read_csv(getvariable('files_item_responses'), delim = ';', quote = '"', escape = '"', header = true,
              filename = true, union_by_name = true,
              types = {'measurement_id': 'VARCHAR', 'item': 'INTEGER', 'response': 'INTEGER'}) AS f
JOIN deliveries AS d ON d.directory = parse_dirpath(f.filename)
GROUP BY d.concern_id, f.measurement_id;

-- Every measurement's total: from its items (prorated; the mean for mean-scored instruments) or as
-- delivered. Measurements the contract cannot score (too many blank items, a delivered total the
-- items contradict, no total at all) are left out, as the pipeline quarantines them.
CREATE TEMP TABLE scores AS
WITH measured AS (
    SELECT d.concern_id, f.measurement_id, f.episode_id, f.instrument, f.administered_on, f.total_score
    FROM read_csv(getvariable('files_measurements'), delim = ';', quote = '"', escape = '"', header = true,
                  filename = true, union_by_name = true,
                  types = {'measurement_id': 'VARCHAR', 'episode_id': 'VARCHAR', 'instrument': 'VARCHAR',
                           'administered_on': 'DATE', 'session_number': 'INTEGER', 'occasion': 'VARCHAR',
                           'total_score': 'DOUBLE'}) AS f
    JOIN deliveries AS d ON d.directory = parse_dirpath(f.filename)
),
scored AS (
    SELECT
        m.*,
        it.measurement_id IS NOT NULL AS has_items,
        inst.items - coalesce(it.items_answered, 0) AS items_blank,
        floor(inst.items * getvariable('max_blank_share')) AS max_blank_items,
        CASE
            WHEN it.items_answered IS NULL OR it.items_answered = 0 THEN NULL
            WHEN inst.scoring = 'mean' THEN it.item_sum / it.items_answered
            ELSE round(it.item_sum * inst.items / it.items_answered)
        END AS item_total
    FROM measured AS m
    JOIN config.instruments AS inst ON inst.code = m.instrument
    LEFT JOIN item_totals AS it ON it.concern_id = m.concern_id AND it.measurement_id = m.measurement_id
)
SELECT concern_id, measurement_id, episode_id, instrument, administered_on,
       CASE WHEN has_items THEN item_total ELSE total_score END AS total_score
FROM scored
WHERE NOT (has_items AND items_blank > max_blank_items)
  AND NOT (has_items AND total_score IS NOT NULL
           AND abs(total_score - item_total) > getvariable('total_mismatch_tolerance'))
  AND (CASE WHEN has_items THEN item_total ELSE total_score END) IS NOT NULL;

-- Pre: the earliest score in [start - before, start + after]; post (closed episodes): the latest
-- in [end - before, end + after] on a later date than the pre. Ties: the smaller id is the pre,
-- the larger the post (docs/outcome-rules.md s1).
CREATE TEMP TABLE pre_post AS
WITH windows AS (
    SELECT concern_id, episode_id, end_date,
           start_date - getvariable('pre_window_days_before_start')::INTEGER AS pre_from,
           start_date + getvariable('pre_window_days_after_start')::INTEGER AS pre_to,
           end_date - getvariable('post_window_days_before_end')::INTEGER AS post_from,
           end_date + getvariable('post_window_days_after_end')::INTEGER AS post_to
    FROM episodes
),
pre AS (
    SELECT s.concern_id, s.episode_id, s.instrument,
           arg_min({'on': s.administered_on, 'score': s.total_score}, (s.administered_on, s.measurement_id)) AS m
    FROM scores AS s
    JOIN windows AS w ON w.concern_id = s.concern_id AND w.episode_id = s.episode_id
    WHERE s.administered_on BETWEEN w.pre_from AND w.pre_to
    GROUP BY ALL
),
post AS (
    SELECT s.concern_id, s.episode_id, s.instrument,
           arg_max({'on': s.administered_on, 'score': s.total_score}, (s.administered_on, s.measurement_id)) AS m
    FROM scores AS s
    JOIN windows AS w ON w.concern_id = s.concern_id AND w.episode_id = s.episode_id
    LEFT JOIN pre AS p ON p.concern_id = s.concern_id AND p.episode_id = s.episode_id AND p.instrument = s.instrument
    WHERE w.end_date IS NOT NULL
      AND s.administered_on BETWEEN w.post_from AND w.post_to
      AND (p.m IS NULL OR s.administered_on > p.m.on)
    GROUP BY ALL
)
SELECT coalesce(p.concern_id, q.concern_id) AS concern_id, coalesce(p.episode_id, q.episode_id) AS episode_id,
       coalesce(p.instrument, q.instrument) AS instrument, p.m.score AS pre_score, q.m.score AS post_score
FROM pre AS p
FULL JOIN post AS q ON q.concern_id = p.concern_id AND q.episode_id = p.episode_id AND q.instrument = p.instrument;

-- One row per episode: SCL90 (primary instrument) percentage improvement and reliable change,
-- CQI satisfaction, paid work at start and end.
CREATE TABLE episode_outcomes AS
WITH primary_scores AS (
    SELECT pp.concern_id, pp.episode_id, pp.pre_score, pp.post_score,
           pp.pre_score IS NOT NULL AND pp.post_score IS NOT NULL AS complete,
           CASE i.higher_is WHEN 'worse' THEN pp.pre_score - pp.post_score ELSE pp.post_score - pp.pre_score END
               AS improvement,
           CASE i.higher_is WHEN 'worse' THEN pp.post_score < i.rc_cutoff ELSE pp.post_score > i.rc_cutoff END
               AS past_cutoff,
           getvariable('reliable_change_z') * sqrt(2) * i.rc_s_pre * sqrt(1 - i.rc_r_xx) AS rc_threshold
    FROM pre_post AS pp
    JOIN config.instruments AS i ON i.code = pp.instrument
    WHERE pp.instrument = getvariable('primary_instrument')
),
other AS (
    SELECT concern_id, episode_id,
           any_value(post_score) FILTER (WHERE instrument = 'CQI') AS satisfaction_post,
           any_value(pre_score > 0) FILTER (WHERE instrument = 'WORK') AS working_at_start,
           any_value(post_score > 0) FILTER (WHERE instrument = 'WORK') AS working_at_end
    FROM pre_post
    WHERE instrument IN ('CQI', 'WORK')
    GROUP BY ALL
)
SELECT
    e.concern_id, e.episode_id, e.location_id, e.end_date, e.end_reason,
    e.end_date IS NOT NULL AS is_closed,
    e.end_date IS NOT NULL AND coalesce(p.complete, FALSE) AS has_complete_scores,
    CASE
        WHEN e.end_date IS NULL OR NOT coalesce(p.complete, FALSE) THEN NULL
        WHEN p.post_score <= getvariable('norm_score') THEN 100.0
        WHEN p.pre_score <= getvariable('norm_score') THEN -getvariable('improvement_cap')
        ELSE greatest((p.pre_score - p.post_score) / (p.pre_score - getvariable('norm_score')) * 100,
                      -getvariable('improvement_cap'))
    END::DOUBLE AS pct_improvement,
    CASE
        WHEN e.end_date IS NULL OR NOT coalesce(p.complete, FALSE) OR p.rc_threshold IS NULL THEN NULL
        WHEN p.improvement > p.rc_threshold AND p.past_cutoff THEN 'recovered'
        WHEN p.improvement > p.rc_threshold THEN 'improved'
        WHEN -p.improvement > p.rc_threshold THEN 'deteriorated'
        ELSE 'unchanged'
    END AS reliable_change,
    CASE WHEN e.end_date IS NOT NULL THEN o.satisfaction_post END AS satisfaction_post,
    CASE WHEN e.end_date IS NOT NULL THEN o.working_at_start END AS working_at_start,
    CASE WHEN e.end_date IS NOT NULL THEN o.working_at_end END AS working_at_end
FROM episodes AS e
LEFT JOIN primary_scores AS p ON p.concern_id = e.concern_id AND p.episode_id = e.episode_id
LEFT JOIN other AS o ON o.concern_id = e.concern_id AND o.episode_id = e.episode_id;

-- Ten indicators of the catalogue (as issue 11 found it; issue 12's later entries are not here) at
-- location and concern level, per month, quarter and year of end_date (every episode weighs the same): n and value as in marts.indicators (a percentage is the mean
-- of 0/100 contributions; n counts the episodes in the indicator's population).
CREATE TABLE indicators AS
WITH contributions AS (
    SELECT concern_id, location_id,
           strftime(end_date, '%Y-%m') AS month,
           strftime(end_date, '%Y') || '-Q' || quarter(end_date) AS quarter,
           strftime(end_date, '%Y') AS year,
           1 AS n_closed,
           CASE WHEN has_complete_scores THEN 100.0 ELSE 0.0 END AS pct_complete,
           pct_improvement AS mean_improvement,
           CASE WHEN reliable_change IS NOT NULL THEN 100.0 * (reliable_change = 'recovered')::INTEGER END
               AS pct_recovered,
           CASE WHEN reliable_change IS NOT NULL THEN 100.0 * (reliable_change = 'improved')::INTEGER END
               AS pct_improved,
           CASE WHEN reliable_change IS NOT NULL THEN 100.0 * (reliable_change = 'unchanged')::INTEGER END
               AS pct_unchanged,
           CASE WHEN reliable_change IS NOT NULL THEN 100.0 * (reliable_change = 'deteriorated')::INTEGER END
               AS pct_deteriorated,
           CASE WHEN end_reason = 'dropout' THEN 100.0 ELSE 0.0 END AS pct_dropout,
           satisfaction_post AS mean_satisfaction,
           CASE WHEN working_at_start IS NOT NULL AND working_at_end IS NOT NULL
                THEN 100.0 * working_at_end::INTEGER END AS pct_working_end
    FROM episode_outcomes
    WHERE is_closed
),
long AS (
    -- INCLUDE NULLS: a unit and period where no episode qualifies still has its row (n = 0)
    FROM contributions UNPIVOT INCLUDE NULLS (x FOR indicator IN (
        n_closed, pct_complete, mean_improvement, pct_recovered, pct_improved, pct_unchanged, pct_deteriorated,
        pct_dropout, mean_satisfaction, pct_working_end))
),
cells AS (
    SELECT concern_id, location_id, month, quarter, year, indicator, count(x) AS n, sum(x) AS sum_x
    FROM long
    GROUP BY ALL
),
rolled AS (
    SELECT
        CASE WHEN GROUPING(location_id) = 0 THEN 'location' ELSE 'concern' END AS level,
        concern_id,
        coalesce(location_id, concern_id) AS unit_id,
        CASE WHEN GROUPING(month) = 0 THEN 'month' WHEN GROUPING(quarter) = 0 THEN 'quarter' ELSE 'year' END
            AS period_type,
        coalesce(month, quarter, year) AS period,
        indicator,
        sum(n) AS n,
        sum(sum_x) AS sum_x
    FROM cells
    GROUP BY GROUPING SETS (
        (concern_id, location_id, month, indicator), (concern_id, location_id, quarter, indicator),
        (concern_id, location_id, year, indicator), (concern_id, month, indicator),
        (concern_id, quarter, indicator), (concern_id, year, indicator))
)
SELECT level, concern_id, unit_id, period_type, period, indicator, n,
       CASE WHEN indicator = 'n_closed' THEN n WHEN n > 0 THEN sum_x / n END AS value
FROM rolled;
