-- marts.financial_ratios: the financial ratios of seed 001 (bijlage 1) per concern
-- and year, each with its z-score against all concerns that year and against the
-- concern's size group (only with at least benchmarks.min_size_group_peers peers with a
-- value in the group). Formulas, units and every choice: docs/benchmark-rules.md.
--
-- Units: percent as 61.33 (not 0.6133), euro as euro, plain ratios as numbers
-- (column unit). A ratio whose inputs are missing or whose denominator is zero is
-- NULL, never 0 or infinity (DuckDB returns inf for x / 0, hence NULLIF everywhere).
-- One exception, taken from the seed's own figures: in the spending distribution a
-- cost line left blank counts as zero once any cost line is reported (see below).
WITH annual_report AS (
    SELECT
        concern_id, year,
        CAST(revenue_total AS DOUBLE) AS revenue_total,
        CAST(revenue_ggz AS DOUBLE) AS revenue_ggz,
        CAST(personnel_costs AS DOUBLE) AS personnel_costs,
        CAST(social_premiums AS DOUBLE) AS social_premiums,
        CAST(external_staff_costs AS DOUBLE) AS external_staff_costs,
        CAST(food_costs AS DOUBLE) AS food_costs,
        CAST(general_costs AS DOUBLE) AS general_costs,
        CAST(client_costs AS DOUBLE) AS client_costs,
        CAST(maintenance_costs AS DOUBLE) AS maintenance_costs,
        CAST(depreciation AS DOUBLE) AS depreciation,
        CAST(allocations AS DOUBLE) AS allocations,
        CAST(interest_income AS DOUBLE) AS interest_income,
        CAST(interest_expense AS DOUBLE) AS interest_expense,
        CAST(net_result AS DOUBLE) AS net_result,
        CAST(equity AS DOUBLE) AS equity,
        CAST(total_assets AS DOUBLE) AS total_assets,
        CAST(current_assets AS DOUBLE) AS current_assets,
        CAST(current_liabilities AS DOUBLE) AS current_liabilities,
        CAST(fte AS DOUBLE) AS fte,
        CAST(employees AS DOUBLE) AS employees,
        CAST(sick_leave_pct AS DOUBLE) AS sick_leave_pct,
        -- Clients in care during the year (seed: c = a + b, 10 + 3 = 13 in 2011).
        CAST(clients_jan1 AS DOUBLE) + CAST(clients_new AS DOUBLE) AS clients_in_care,
        -- The cost lines of the spending table, in the seed's order.
        [personnel_costs, social_premiums, external_staff_costs, food_costs, general_costs,
         client_costs, maintenance_costs, depreciation, allocations]::DOUBLE[] AS cost_lines,
        -- Personnel cost base of the external-staff share: wages, premiums, external staff.
        [personnel_costs, social_premiums, external_staff_costs]::DOUBLE[] AS personnel_cost_lines
    FROM staging.annual_reports
),

-- Gross result (brutoresultaat) = revenue minus every cost line. The seed's figures
-- count a blank cost line as zero: in 2012 and 2013 wages are blank, yet premiums,
-- external staff, general costs and gross result add up to 100% of revenue. With no
-- cost line at all the gross result is unknown (NULL), not equal to revenue.
operating_result AS (
    SELECT
        concern_id, year,
        CASE WHEN len(list_filter(cost_lines, lambda c: c IS NOT NULL)) > 0
             THEN revenue_total - coalesce(list_sum(list_filter(cost_lines, lambda c: c IS NOT NULL)), 0)
        END AS gross_result,
        CASE WHEN len(list_filter(personnel_cost_lines, lambda c: c IS NOT NULL)) > 0
             THEN list_sum(list_filter(personnel_cost_lines, lambda c: c IS NOT NULL))
        END AS personnel_cost_base
    FROM annual_report
),

previous_year_revenue AS (
    SELECT concern_id, year + 1 AS year, revenue_total AS revenue_previous_year
    FROM annual_report
),

ratios_wide AS (
    SELECT
        a.concern_id,
        a.year,
        -- Figures over prose: the seed's text divides by year t, but its 2013 figure
        -- (61.3% from 1,808,010 to 2,916,805) is (t - (t-1)) / (t-1).
        (a.revenue_total - p.revenue_previous_year)
            / NULLIF(p.revenue_previous_year, 0) * 100 AS revenue_growth,
        a.net_result / NULLIF(a.revenue_total, 0) * 100 AS net_result,
        a.equity / NULLIF(a.total_assets, 0) * 100 AS solvency,
        a.equity / NULLIF(a.revenue_total, 0) * 100 AS resistance_capacity,
        a.total_assets / NULLIF(a.revenue_total, 0) AS capital_intensity,
        a.current_assets / NULLIF(a.current_liabilities, 0) * 100 AS liquidity,
        -- Figures over prose: bijlage 1 says "brutomarge / totale activa", but the seed's
        -- figures are the net result over total assets: 2011 2.5% (the gross result would
        -- give 2.4%), and blank in 2013, where the gross result is printed (3.5%) and only
        -- the net result is blank. See docs/benchmark-rules.md.
        a.net_result / NULLIF(a.total_assets, 0) * 100 AS return_on_assets,
        a.net_result / NULLIF(a.equity, 0) * 100 AS return_on_equity,
        -- EBITDA = gross result (before interest and tax) + depreciation, as a share of
        -- revenue like the seed's 1.0% / 8.2% / 3.5%. Allocations (dotaties) are
        -- additions to provisions, an operating cost, so they are not added back.
        (o.gross_result + coalesce(a.depreciation, 0)) / NULLIF(a.revenue_total, 0) * 100 AS ebitda,
        -- DSCR1 "(bedrijfsinkomsten + rente-inkomsten) / rente-uitgaven": read as the
        -- operating result (gross result), not total revenue, so that the narrow DSCR1
        -- stays below the broad DSCR2 and the seed's threshold of 1 means something.
        (o.gross_result + a.interest_income) / NULLIF(a.interest_expense, 0) AS dscr1,
        (o.gross_result + coalesce(a.depreciation, 0)) / NULLIF(a.interest_expense, 0) AS dscr2,
        a.revenue_ggz / NULLIF(a.clients_in_care, 0) AS budget_per_client,
        a.fte / NULLIF(a.clients_in_care, 0) AS fte_per_client,
        a.sick_leave_pct AS sick_leave,
        -- Figures over prose: the text says fte / wage sum; a wage is wage sum / fte.
        -- "Gecorrigeerd": fte counts GGZ staff, the wage sum is the whole concern's, so
        -- the wage sum is scaled by the GGZ share of revenue.
        a.personnel_costs * (a.revenue_ggz / NULLIF(a.revenue_total, 0))
            / NULLIF(a.fte, 0) AS average_wage,
        -- Share of external staff (PNIL) in personnel costs; seed 2013: 4.4 / (6.8 + 4.4).
        coalesce(a.external_staff_costs, 0) / NULLIF(o.personnel_cost_base, 0) * 100
            AS external_staff_share,
        a.fte / NULLIF(a.employees, 0) AS part_time_ratio,
        a.personnel_costs / NULLIF(a.revenue_total, 0) * 100 AS spending_personnel_costs,
        a.social_premiums / NULLIF(a.revenue_total, 0) * 100 AS spending_social_premiums,
        a.external_staff_costs / NULLIF(a.revenue_total, 0) * 100 AS spending_external_staff_costs,
        a.food_costs / NULLIF(a.revenue_total, 0) * 100 AS spending_food_costs,
        a.general_costs / NULLIF(a.revenue_total, 0) * 100 AS spending_general_costs,
        a.client_costs / NULLIF(a.revenue_total, 0) * 100 AS spending_client_costs,
        a.maintenance_costs / NULLIF(a.revenue_total, 0) * 100 AS spending_maintenance_costs,
        a.depreciation / NULLIF(a.revenue_total, 0) * 100 AS spending_depreciation,
        a.allocations / NULLIF(a.revenue_total, 0) * 100 AS spending_allocations,
        o.gross_result / NULLIF(a.revenue_total, 0) * 100 AS spending_gross_result
    FROM annual_report AS a
    JOIN operating_result AS o USING (concern_id, year)
    LEFT JOIN previous_year_revenue AS p USING (concern_id, year)
),

ratios_long AS (
    SELECT concern_id, year, ratio, value
    FROM ratios_wide
    UNPIVOT INCLUDE NULLS (value FOR ratio IN (
        revenue_growth, net_result, solvency, resistance_capacity, capital_intensity, liquidity,
        return_on_assets, return_on_equity, ebitda, dscr1, dscr2, budget_per_client,
        fte_per_client, sick_leave, average_wage, external_staff_share, part_time_ratio,
        spending_personnel_costs, spending_social_premiums, spending_external_staff_costs,
        spending_food_costs, spending_general_costs, spending_client_costs,
        spending_maintenance_costs, spending_depreciation, spending_allocations,
        spending_gross_result
    ))
),

ratio_units (ratio, unit) AS (
    VALUES
        ('revenue_growth', 'percent'), ('net_result', 'percent'), ('solvency', 'percent'),
        ('resistance_capacity', 'percent'), ('capital_intensity', 'ratio'),
        ('liquidity', 'percent'), ('return_on_assets', 'percent'),
        ('return_on_equity', 'percent'), ('ebitda', 'percent'), ('dscr1', 'ratio'),
        ('dscr2', 'ratio'), ('budget_per_client', 'euro'), ('fte_per_client', 'ratio'),
        ('sick_leave', 'percent'), ('average_wage', 'euro'),
        ('external_staff_share', 'percent'), ('part_time_ratio', 'ratio'),
        ('spending_personnel_costs', 'percent'), ('spending_social_premiums', 'percent'),
        ('spending_external_staff_costs', 'percent'), ('spending_food_costs', 'percent'),
        ('spending_general_costs', 'percent'), ('spending_client_costs', 'percent'),
        ('spending_maintenance_costs', 'percent'), ('spending_depreciation', 'percent'),
        ('spending_allocations', 'percent'), ('spending_gross_result', 'percent')
),

ratio_values AS (
    SELECT
        l.concern_id,
        l.year,
        l.ratio,
        -- Belt and braces: no inf or NaN ever reaches a published figure.
        CASE WHEN isfinite(l.value) THEN l.value END AS value,
        u.unit,
        g.size_group
    FROM ratios_long AS l
    JOIN ratio_units AS u USING (ratio)
    LEFT JOIN marts.concern_size_groups AS g USING (concern_id, year)
),

-- Peers: every concern with a value for the ratio that year (the concern itself
-- included), and the same within its size group. Sample sd (n - 1): see the docs.
peer_statistics AS (
    SELECT
        concern_id, year, ratio, value, unit, size_group,
        avg(value) OVER all_concerns AS peer_mean,
        stddev_samp(value) OVER all_concerns AS peer_sd,
        count(value) OVER all_concerns AS n_peers,
        CASE WHEN size_group IS NOT NULL THEN avg(value) OVER size_peers END AS size_peer_mean,
        CASE WHEN size_group IS NOT NULL THEN stddev_samp(value) OVER size_peers END AS size_peer_sd,
        CASE WHEN size_group IS NOT NULL THEN count(value) OVER size_peers END AS n_size_peers
    FROM ratio_values
    WINDOW all_concerns AS (PARTITION BY year, ratio),
           size_peers AS (PARTITION BY year, ratio, size_group)
)

SELECT
    concern_id,
    year,
    ratio,
    value,
    -- z needs at least two peers and a spread; a spread below 1e-9 of the mean is
    -- rounding noise of identical values and would blow z up to nonsense.
    CASE WHEN n_peers >= 2 AND peer_sd > 1e-9 * greatest(1, abs(peer_mean))
         THEN (value - peer_mean) / peer_sd
    END AS z,
    unit,
    peer_mean,
    peer_sd,
    n_peers,
    size_group,
    size_peer_mean,
    size_peer_sd,
    n_size_peers,
    -- Size-group z only in a group large enough to mean something (parameter
    -- benchmarks.min_size_group_peers: two peers always give +-0.71).
    CASE WHEN n_size_peers >= greatest(2, getvariable('min_size_group_peers'))
          AND size_peer_sd > 1e-9 * greatest(1, abs(size_peer_mean))
         THEN (value - size_peer_mean) / size_peer_sd
    END AS z_size_group
FROM peer_statistics
ORDER BY concern_id, year, ratio
