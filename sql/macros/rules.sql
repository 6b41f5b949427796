-- Rules that several models share, defined once. Loaded as TEMP macros on every
-- connection by rom_pipeline.config.apply_parameters, so they never end up in a
-- published file.

-- Does a value meet its target? NULL without a value or a target (seed 000 targets).
CREATE OR REPLACE TEMP MACRO meets_target(value, comparator, target) AS
    CASE
        WHEN value IS NULL OR target IS NULL THEN NULL
        WHEN comparator = '>=' THEN value >= target
        WHEN comparator = '>' THEN value > target
        WHEN comparator = '<=' THEN value <= target
        WHEN comparator = '<' THEN value < target
        ELSE error('indicator target has an unknown comparator: ' || comparator)
    END;

-- Why a figure resting on n episodes is not shown, or NULL when it may be (design s2,
-- small numbers: fewer than min_n episodes). Every published figure's suppressed flag
-- and suppression_reason derive from it; reports and exports read the flag.
CREATE OR REPLACE TEMP MACRO small_number_reason(n) AS
    CASE WHEN n < getvariable('min_n') THEN 'n_below_min_n' END;

-- The period of a date as marts.indicators names it: month '2025-07', quarter '2025-Q3',
-- year '2025'. Every figure's period, the audit trail's and the checks' derive from it.
CREATE OR REPLACE TEMP MACRO period_of(period_type, d) AS
    CASE period_type
        WHEN 'month' THEN strftime(d, '%Y-%m')
        WHEN 'quarter' THEN strftime(d, '%Y') || '-Q' || quarter(d)
        WHEN 'year' THEN strftime(d, '%Y')
        ELSE error('unknown period type: ' || period_type)
    END;

-- The last day of a period of marts.indicators ('2025-07', '2025-Q3', '2025'): period_of's inverse.
CREATE OR REPLACE TEMP MACRO period_end(period_type, period) AS
    CASE period_type
        WHEN 'month' THEN last_day(strptime(period || '-01', '%Y-%m-%d'))::DATE
        WHEN 'quarter' THEN (make_date(CAST(left(period, 4) AS INTEGER), CAST(right(period, 1) AS INTEGER) * 3, 1)
                             + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE
        WHEN 'year' THEN make_date(CAST(period AS INTEGER), 12, 31)
    END;

-- A percentage figure whose numerator, or whose complement (n - numerator), is a count
-- from 1 to min_count_published - 1: value x n would give that count back (design s2:
-- counts below 5 never appear). marts.indicator_aggregates and the not-on-track counts.
CREATE OR REPLACE TEMP MACRO small_count_reason(numerator, n) AS
    CASE WHEN numerator BETWEEN 1 AND getvariable('min_count_published') - 1
           OR n - numerator BETWEEN 1 AND getvariable('min_count_published') - 1
         THEN 'small_count' END;

-- The band of an SCL90 intake (pre-) score (docs/outcome-rules.md s5): with the edges
-- of intake_severity_band_edges (default 150, 200, 250) '<150', '150-199', '200-249',
-- '>=250'; 'no_pre_score' without one. A band starts at its edge.
CREATE OR REPLACE TEMP MACRO severity_band(score) AS
    CASE
        WHEN score IS NULL THEN 'no_pre_score'
        WHEN score < getvariable('intake_severity_band_edges')[1]
            THEN '<' || getvariable('intake_severity_band_edges')[1]::BIGINT
        WHEN score >= getvariable('intake_severity_band_edges')[-1]
            THEN '>=' || getvariable('intake_severity_band_edges')[-1]::BIGINT
        ELSE list_filter(getvariable('intake_severity_band_edges'), lambda e: e <= score)[-1]::BIGINT || '-'
             || (list_filter(getvariable('intake_severity_band_edges'), lambda e: e > score)[1]::BIGINT - 1)
    END;

-- The first session of the expected course's session bin that a session number falls in
-- (expected_course_session_bins, docs/feedback.md); NULL for a missing session number.
CREATE OR REPLACE TEMP MACRO session_bin_from(session) AS
    list_filter(getvariable('expected_course_session_bins'), lambda b: b <= session)[-1]::INTEGER;

-- The last session of the bin that starts at session bin_from; NULL for the last, open-ended bin.
CREATE OR REPLACE TEMP MACRO session_bin_to(bin_from) AS
    (list_filter(getvariable('expected_course_session_bins'), lambda b: b > bin_from)[1] - 1)::INTEGER;

-- A bin as people read it: '0', '1-5', '31+'.
CREATE OR REPLACE TEMP MACRO session_bin_label(bin_from) AS
    CASE
        WHEN session_bin_to(bin_from) IS NULL THEN bin_from || '+'
        WHEN session_bin_to(bin_from) = bin_from THEN bin_from::VARCHAR
        ELSE bin_from || '-' || session_bin_to(bin_from)
    END;

-- The not-on-track rule (docs/feedback.md, docs/outcome-rules.md s6), one definition for the
-- nightly flag of open episodes (marts.not_on_track) and the back-test on closed episodes
-- (outcomes.feedback_backtest_episodes). SCL90, higher is worse. With the reliable-change
-- threshold rc (Jacobson & Truax) as the margin, strictly (exactly at the margin is on track):
--   score - pre > rc                  -> 'reliably_worse' (worse than at intake)
--   score - expected_score > rc       -> 'above_expected_course' (worse than clients of the same
--                                        intake band at the same session bin: expected_score is
--                                        their not_on_track_percentile)
--   otherwise NULL (on track). Without an expected course only the first can fire. NULL also
--   when score, pre or rc is missing: the caller decides that the episode cannot be judged.
CREATE OR REPLACE TEMP MACRO not_on_track_reason(score, pre_score, expected_score, rc_threshold) AS
    CASE
        WHEN score IS NULL OR pre_score IS NULL OR rc_threshold IS NULL THEN NULL
        WHEN score - pre_score > rc_threshold THEN 'reliably_worse'
        WHEN score - expected_score > rc_threshold THEN 'above_expected_course'
    END;

-- The back-test fold of an episode (backtest_folds, docs/feedback.md): a stable hash of
-- concern and episode id, the same in every run.
CREATE OR REPLACE TEMP MACRO backtest_fold(concern_id, episode_id) AS
    (md5_number(concern_id || '/' || episode_id) % getvariable('backtest_folds'))::INTEGER;
