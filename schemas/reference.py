"""Reference inputs of the concern benchmark (seed 001) as pandera schemas.

Beside the deliveries, the export root may hold ``reference/annual_reports.csv``
and ``reference/quality_indicators.csv`` (export contract, last section): public
data on concerns, in the contract's CSV dialect, without a manifest. Each file
is validated and quarantined like a delivery file by the same generic
validator, which reads these schemas exactly as it reads ``schemas.contract``:

- pandera's vocabulary carries the column rules (dtype, nullable, isin, ranges);
- ``unique=[...]`` is the row key: one row per concern and year (and indicator).
  A later row with the same key is a duplicate and is quarantined, the first
  one is kept;
- schema ``metadata["required"]`` is False: the reference folder is optional;
  without it the financial ratios and concern benchmark are simply empty.

The staging tables ``staging.annual_reports`` / ``staging.quality_indicators``
have these columns, typed, plus ``delivery_id, source_row_number``. The column
lists are design ``outcomes-and-benchmarks.md`` section 4, in that order.
"""
from __future__ import annotations

from pandera.ibis import Check, Column, DataFrameSchema

from schemas.contract import BOOL, DECIMAL, INT, TEXT

CLUSTERS = ["CQ", "kernset", "FP"]
# Years a benchmark can plausibly be about; anything else is a typing slip (e.g. 20013).
YEAR_RANGE = (1990, 2100)


def _text(*, required: bool = False, allowed: list[str] | None = None) -> Column:
    checks = [Check.isin(allowed)] if allowed else []
    return Column(TEXT, checks=checks, nullable=not required)


def _count() -> Column:
    """A head count (clients, locations, staff): whole, never negative, may be unknown."""
    return Column(INT, Check.ge(0), nullable=True)


def _amount(*, non_negative: bool = True) -> Column:
    """A euro amount from the annual accounts, may be unknown.

    Costs, revenue and balance-sheet totals cannot be negative; results, equity
    and allocations (dotaties: a release of provisions is negative) can.
    """
    return Column(DECIMAL, [Check.ge(0)] if non_negative else [], nullable=True)


def _year() -> Column:
    return Column(INT, Check.in_range(*YEAR_RANGE), nullable=False)


ANNUAL_REPORTS = DataFrameSchema(
    name="annual_reports",
    columns={
        "concern_id": _text(required=True),
        "concern_name": _text(),
        "city": _text(),
        "year": _year(),
        "n_locations": _count(),
        "n_org_units": _count(),
        "n_directors": _count(),
        "n_supervisors": _count(),
        "clients_jan1": _count(),
        "clients_new": _count(),
        "clients_discharged": _count(),
        "clients_dec31": _count(),
        "revenue_total": _amount(),
        "revenue_ggz": _amount(),
        "other_income_non_ggz": _amount(non_negative=False),
        "personnel_costs": _amount(),
        "social_premiums": _amount(),
        "external_staff_costs": _amount(),
        "food_costs": _amount(),
        "general_costs": _amount(),
        "client_costs": _amount(),
        "maintenance_costs": _amount(),
        "depreciation": _amount(),
        "allocations": _amount(non_negative=False),
        "interest_income": _amount(),
        "interest_expense": _amount(),
        "net_result": _amount(non_negative=False),
        "equity": _amount(non_negative=False),
        "total_assets": _amount(),
        "current_assets": _amount(),
        "current_liabilities": _amount(),
        # fte is a decimal (0.8 fte); employees is a head count.
        "fte": Column(DECIMAL, Check.ge(0), nullable=True),
        "employees": _count(),
        "sick_leave_pct": Column(DECIMAL, Check.in_range(0, 100), nullable=True),
    },
    unique=["concern_id", "year"],
    metadata={"required": False, "folder": "reference"},
)

QUALITY_INDICATORS = DataFrameSchema(
    name="quality_indicators",
    columns={
        "concern_id": _text(required=True),
        "year": _year(),
        "indicator_id": _text(required=True),
        "indicator_name": _text(),
        "cluster": _text(required=True, allowed=CLUSTERS),
        # Required: without a direction the indicator cannot enter the summary
        # score, which flips lower-is-better indicators.
        "higher_is_better": Column(BOOL, nullable=False),
        "value": Column(DECIMAL, nullable=True),
        "n": _count(),
    },
    unique=["concern_id", "year", "indicator_id"],
    metadata={"required": False, "folder": "reference"},
)

REFERENCE_FILES: dict[str, DataFrameSchema] = {
    s.name: s for s in (ANNUAL_REPORTS, QUALITY_INDICATORS)
}

# The cost columns of the annual report, in the order of the seed's spending
# table ("Verdeling uitgaven"); each has a ratio spending_<column>.
COST_COLUMNS = [
    "personnel_costs", "social_premiums", "external_staff_costs", "food_costs", "general_costs",
    "client_costs", "maintenance_costs", "depreciation", "allocations",
]
