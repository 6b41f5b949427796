-- marts.casemix_adjusted: case-mix adjusted outcomes (seed 000, stage 2: "my clients are
-- harder"; issue 12 part 1). Per unit (therapist, location, concern), quarter and year, and
-- outcome indicator: the observed value, the value expected from the unit's case mix (the
-- mean of its episodes' expectations from outcomes.casemix_expected, a model fitted WITHOUT
-- the unit), their difference and its 95% / 99.8% limits (funnel-plot style).
-- Method, formula and decisions: docs/outcome-rules.md s12.
--
-- The observed contributions are the catalogue's own (outcomes.indicator_contributions), so
-- observed and n are exactly the figure of marts.indicators; suppression is that figure's
-- decision (marts.indicator_aggregates), read here and never restated.
WITH
casemix_indicators AS (
    -- Which expectation serves which indicator of the catalogue (an indicator a deployment
    -- removes from the catalogue has no contributions, so no rows here).
    SELECT * FROM (VALUES
        ('mean_improvement', 'improvement'),
        ('pct_recovered', 'recovered'),
        ('pct_improved', 'improved'),
        ('pct_unchanged', 'unchanged'),
        ('pct_deteriorated', 'deteriorated')
    ) AS m(indicator, outcome)
),

judged_episodes AS (
    SELECT
        x.concern_id, x.episode_id, x.model_id, x.left_out_level,
        e.location_id, e.therapist_id,
        period_of('quarter', e.end_date) AS end_quarter,
        period_of('year', e.end_date) AS end_year,
        x.expected_improvement, x.expected_improvement_se, x.improvement_variance,
        x.p_recovered, x.p_improved, x.p_unchanged, x.p_deteriorated
    FROM outcomes.casemix_expected AS x
    JOIN marts.episode_outcomes AS e
      ON e.concern_id = x.concern_id AND e.episode_id = x.episode_id
),

episode_values AS (
    -- Per episode and indicator: observed contribution x, expected value and the variance of
    -- one episode around it (OLS residual variance for the improvement; p(1 - p) x 100^2 for a
    -- category share, in percent points).
    SELECT
        j.concern_id, j.episode_id, j.model_id, j.left_out_level, j.location_id, j.therapist_id,
        j.end_quarter, j.end_year, c.indicator,
        c.x AS observed,
        CASE m.outcome
            WHEN 'improvement' THEN j.expected_improvement
            WHEN 'recovered' THEN 100 * j.p_recovered
            WHEN 'improved' THEN 100 * j.p_improved
            WHEN 'unchanged' THEN 100 * j.p_unchanged
            WHEN 'deteriorated' THEN 100 * j.p_deteriorated
        END AS expected,
        CASE m.outcome
            WHEN 'improvement' THEN j.improvement_variance
            WHEN 'recovered' THEN 10000 * j.p_recovered * (1 - j.p_recovered)
            WHEN 'improved' THEN 10000 * j.p_improved * (1 - j.p_improved)
            WHEN 'unchanged' THEN 10000 * j.p_unchanged * (1 - j.p_unchanged)
            WHEN 'deteriorated' THEN 10000 * j.p_deteriorated * (1 - j.p_deteriorated)
        END AS variance,
        -- The model's own uncertainty about the episode's expectation (OLS: sqrt(x' Cov(b) x));
        -- not computed for the multinomial shares (docs/outcome-rules.md s12).
        CASE m.outcome WHEN 'improvement' THEN j.expected_improvement_se ELSE 0 END AS expected_se
    FROM judged_episodes AS j
    JOIN outcomes.indicator_contributions AS c
      ON c.concern_id = j.concern_id AND c.episode_id = j.episode_id
    JOIN casemix_indicators AS m ON m.indicator = c.indicator
    WHERE c.x IS NOT NULL
),

unit_episodes AS (
    -- Each episode in its therapist, location and (when its model left out the whole concern)
    -- concern, for its quarter and year. A location-level model (a concern with no benchmark
    -- population outside it) judges locations and therapists, never the concern. An episode without
    -- an expectation (no multinomial model could be fitted) is left out, and the figure it belongs
    -- to is then hidden as incomplete_model_coverage.
    SELECT v.*, u.level, u.unit_id, p.period_type, p.period
    FROM (SELECT * FROM episode_values WHERE expected IS NOT NULL) AS v
    CROSS JOIN LATERAL (VALUES
        ('therapist', v.therapist_id),
        ('location', v.location_id),
        ('concern', CASE WHEN v.left_out_level IN ('concern', 'concern_group') THEN v.concern_id END)
    ) AS u(level, unit_id)
    CROSS JOIN LATERAL (VALUES ('quarter', v.end_quarter), ('year', v.end_year)) AS p(period_type, period)
    WHERE u.unit_id IS NOT NULL
),

unit_statistics AS (
    SELECT
        concern_id, level, unit_id, period_type, period, indicator,
        count(*) AS n,
        avg(observed) AS observed,
        avg(expected) AS expected,
        -- se of the difference under "the unit is as its case mix predicts": the episodes' spread
        -- around their expectations, sqrt(sum var_i) / n, and the model's uncertainty about the
        -- unit's mean expectation, bounded above by the mean of the episodes' se (equality when
        -- their errors are perfectly correlated, as they nearly are for one model):
        -- se = sqrt(sum(var_i) / n^2 + mean(se_i)^2).
        sqrt(sum(variance) / (count(*) * count(*)) + avg(expected_se) * avg(expected_se)) AS se,
        string_agg(DISTINCT model_id, ', ' ORDER BY model_id) AS model_ids
    FROM unit_episodes
    GROUP BY concern_id, level, unit_id, period_type, period, indicator
),

with_suppression AS (
    -- The figure's suppression is the indicator's (same unit, period, indicator, n):
    -- marts.indicator_aggregates decides it once. A casemix figure on fewer episodes than the
    -- indicator's (some episodes without a model) is not that figure: hidden.
    SELECT
        s.*,
        CASE
            WHEN a.level IS NULL THEN 'no_indicator_figure'
            WHEN s.n <> a.n THEN 'incomplete_model_coverage'
            ELSE a.suppression_reason
        END AS suppression_reason,
        a.is_complete_period
    FROM unit_statistics AS s
    LEFT JOIN marts.indicator_aggregates AS a
      ON a.dimension = 'total' AND a.aggregation = 'episodes'
     AND a.level = s.level AND a.concern_id = s.concern_id AND a.unit_id = s.unit_id
     AND a.period_type = s.period_type AND a.period = s.period AND a.indicator = s.indicator
)

SELECT
    concern_id,
    level,
    unit_id,
    period_type,
    period,
    indicator,
    n,
    observed,
    expected,
    observed - expected AS difference,
    se,
    -- 95% interval of the difference, and the funnel flags: the difference lies beyond
    -- z x se from 0 (z = 1.959964 at 95%, 3.090232 at 99.8%; Spiegelhalter 2005, as the
    -- internal benchmark's funnels).
    observed - expected - 1.959964 * se AS ci_low,
    observed - expected + 1.959964 * se AS ci_high,
    1.959964 * se AS limit_95,
    3.090232 * se AS limit_998,
    CASE WHEN se > 0 THEN abs(observed - expected) > 1.959964 * se END AS outside_95,
    CASE WHEN se > 0 THEN abs(observed - expected) > 3.090232 * se END AS outside_998,
    suppression_reason IS NOT NULL AS suppressed,
    suppression_reason,
    is_complete_period,
    model_ids
FROM with_suppression
ORDER BY concern_id, level, unit_id, period_type, period, indicator
