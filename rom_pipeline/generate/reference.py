"""Public reference inputs for the concern benchmark (seed 001): annual reports and quality indicators.

Written to ``<out>/reference/`` in the contract's CSV dialect, with the columns
of ``outcomes-and-benchmarks.md`` section 4. They cover the concerns that
deliver ROM data and extra concerns that do not (the benchmark compares a
concern with all concerns, most of which are only known from public sources).

Magnitudes follow the sector as seed 001 describes it: about half of revenue
goes to wages, solvency 10-50%, liquidity 100-200%, sick leave around 5%.
On request, the seed's own concern (Stichting Samenwerkende Zorgboeren Zuid,
2011-2013, plus the comparative year 2010) is added with the figures printed in
the seed, so that its benchmark report can be read beside the seed
(tests/test_seed001_report.py compares them figure for figure).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from random import Random

from .catalog import PROVINCE_CITIES
from .organisation import Concern
from .sinks import CsvSink

ANNUAL_COLUMNS = [
    "concern_id", "concern_name", "city", "year", "n_locations", "n_org_units", "n_directors",
    "n_supervisors", "clients_jan1", "clients_new", "clients_discharged", "clients_dec31",
    "revenue_total", "revenue_ggz", "other_income_non_ggz", "personnel_costs", "social_premiums",
    "external_staff_costs", "food_costs", "general_costs", "client_costs", "maintenance_costs",
    "depreciation", "allocations", "interest_income", "interest_expense", "net_result", "equity",
    "total_assets", "current_assets", "current_liabilities", "fte", "employees", "sick_leave_pct",
]
QUALITY_COLUMNS = ["concern_id", "year", "indicator_id", "indicator_name", "cluster", "higher_is_better",
                   "value", "n"]
# Columns that are never left empty; every other annual-report field may be NULL.
REQUIRED_ANNUAL = {"concern_id", "concern_name", "year"}
SEED_CONCERN_ID = "C900"
SEED_YEARS = (2011, 2012, 2013)  # the years seed 001 reports
SEED_PREVIOUS_YEAR = 2010  # the comparative year its 2011 figures rest on (revenue growth)


@dataclass(frozen=True)
class Indicator:
    indicator_id: str
    name: str
    cluster: str
    higher_is_better: bool
    mean: float  # the all-concern mean printed in seed 001 (2013)
    sd: float
    low: float
    high: float


INDICATORS = [
    Indicator("CQ01", "Adequate bejegening door de hulpverleners", "CQ", True, 93.53, 3.5, 0, 100),
    Indicator("CQ02", "Adequate informatieverstrekking door de hulpverlener", "CQ", True, 78.46, 6, 0, 100),
    Indicator("CQ03", "Cliëntperspectief/oordeel van de cliënt over verandering van ernst van de problematiek",
              "CQ", True, 74.29, 7, 0, 100),
    Indicator("CQ04", "Vervulling zorgwensen: het ervaren verloop van het behandel-/begeleidingsproces",
              "CQ", True, 84.64, 5, 0, 100),
    Indicator("CQ05", "Keuzevrijheid 2", "CQ", True, 86.59, 5, 0, 100),
    Indicator("CQ06", "Informed consent 2", "CQ", True, 89.91, 4, 0, 100),
    Indicator("CQ07", "Bejegening", "CQ", True, 3.59, 0.15, 1, 4),
    Indicator("KS01", "Drop-out - Stemmingsstoornissen", "kernset", False, 8.86, 3, 0, 100),
    Indicator("KS02", "Drop-out - Angststoornissen", "kernset", False, 10.44, 3.5, 0, 100),
    Indicator("KS03", "Drop-out - Aan een middel gebonden stoornissen", "kernset", False, 12.59, 4, 0, 100),
    Indicator("KS04", "Systematische meting verandering ernst problematiek - Volwassenen kort", "kernset",
              True, 37.57, 12, 0, 100),
    Indicator("KS05", "Systematische meting dagelijks functioneren van cliënten - Volwassenen kort", "kernset",
              True, 25.04, 10, 0, 100),
    Indicator("KS06", "Verandering ernst problematiek (gemiddelde delta-t score) - Volwassenen kort", "kernset",
              True, 3.83, 1.5, -20, 20),
    Indicator("FP01", "Afname delictrisico", "FP", True, 33.69, 10, 0, 100),
    Indicator("FP02", "Drop-out", "FP", False, 14.31, 5, 0, 100),
    Indicator("FP03", "Het op systematische wijze meten van de verandering van de ernst van de problematiek "
              "bij cliënten", "FP", True, 70.43, 15, 0, 100),
]


@dataclass
class Profile:
    """What the reference figures of one concern are drawn around."""
    concern_id: str
    name: str
    city: str | None
    revenue: float  # total revenue in the first generated year, EUR
    n_locations: int
    forensic: bool  # reports the FP (forensic psychiatry) indicators
    quality: float  # latent quality, in standard deviations


def write_reference(directory: Path, *, seed: int, export_year: int, rom_concerns: list[Concern],
                    extra_concerns: list[tuple[str, str]], include_seed_concern: bool) -> dict:
    """Write both reference files; returns ``{file name: {"rows", "sha256"}}``.

    Years are the three before the export year; with the seed concern, 2011-2013
    are added for every concern, so that the seed concern has peers to be
    compared with in its own years.
    """
    directory.mkdir(parents=True, exist_ok=True)
    years = {export_year - 3, export_year - 2, export_year - 1}
    years = sorted(years | set(SEED_YEARS) if include_seed_concern else years)
    rng = Random(f"{seed}:reference")
    profiles = ([_rom_profile(rng, c) for c in rom_concerns]
                + [_extra_profile(rng, concern_id, name) for concern_id, name in extra_concerns])
    annual = CsvSink(directory / "annual_reports.csv", ANNUAL_COLUMNS)
    quality = CsvSink(directory / "quality_indicators.csv", QUALITY_COLUMNS)
    try:
        for profile in profiles:
            annual.add_rows(_annual_rows(rng, profile, years))
            quality.add_rows(_quality_rows(rng, profile, years))
        if include_seed_concern:
            annual.add_rows(seed_concern_rows())
            quality.add_rows(seed_concern_quality_rows())
    finally:
        files = {"annual_reports.csv": annual.close(), "quality_indicators.csv": quality.close()}
    return files


# --- profiles -------------------------------------------------------------------------------

def _rom_profile(rng: Random, concern: Concern) -> Profile:
    # Clients in care a year ~ episodes per year / 0.7 (not every client is in ROM); EUR 3-9k each.
    clients = max(10.0, concern.n_episodes / 3 / 0.7)
    revenue = clients * rng.uniform(3000, 9000) / rng.uniform(0.85, 1.0)
    return Profile(concern.concern_id, concern.name, concern.city, revenue, len(concern.locations),
                   forensic=rng.random() < 0.25, quality=rng.gauss(0, 0.6))


def _extra_profile(rng: Random, concern_id: str, name: str) -> Profile:
    city = rng.choice([c for cities in PROVINCE_CITIES.values() for c in cities])
    revenue = math.exp(rng.uniform(math.log(2e5), math.log(4e8)))  # from a small practice to a large institution
    n_locations = max(1, min(120, round(revenue / rng.uniform(2e6, 8e6))))
    return Profile(concern_id, name, city, revenue, n_locations, forensic=rng.random() < 0.25,
                   quality=rng.gauss(0, 0.6))


# --- annual reports -----------------------------------------------------------------------------

def _annual_rows(rng: Random, profile: Profile, years: list[int]) -> list[list]:
    """One row per year; the series runs through every year in between so growth is continuous."""
    revenue = profile.revenue
    structure = _Structure.draw(rng)
    clients = max(5, round(revenue / rng.uniform(2500, 9000)))  # budget per client EUR 2.5-9k
    rows = []
    for year in range(years[0], years[-1] + 1):
        revenue *= 1 + rng.gauss(0.03, 0.06)
        clients_new = round(clients * rng.uniform(0.5, 0.7))
        clients_out = round(clients_new * rng.uniform(0.9, 1.1))
        counts = {"clients_jan1": clients, "clients_new": clients_new, "clients_discharged": clients_out,
                  "clients_dec31": max(0, clients + clients_new - clients_out)}
        clients = counts["clients_dec31"]
        figures = structure.finances(rng, revenue)
        if year in years:
            rows.append(_annual_row(rng, profile, year, {**counts, **figures}))
    return rows


@dataclass
class _Structure:
    """A concern's financial make-up: stable over the years, with some wobble each year."""
    cost_shares: dict[str, float]
    gross_share: float
    ggz_share: float
    capital_intensity: float
    solvency: float
    current_share: float
    liquidity: float
    wage: float
    part_time: float
    sick_leave: float

    @staticmethod
    def draw(rng: Random) -> _Structure:
        shares = {"personnel_costs": rng.gauss(0.50, 0.06), "social_premiums": rng.gauss(0.12, 0.02),
                  "external_staff_costs": rng.lognormvariate(math.log(0.04), 0.6),
                  "food_costs": rng.uniform(0, 0.03), "general_costs": rng.gauss(0.10, 0.03),
                  "client_costs": rng.uniform(0.01, 0.05), "maintenance_costs": rng.uniform(0.01, 0.03),
                  "depreciation": rng.uniform(0.02, 0.05), "allocations": rng.uniform(0, 0.02)}
        return _Structure(
            cost_shares={k: max(0.0, v) for k, v in shares.items()}, gross_share=rng.gauss(0.02, 0.025),
            ggz_share=rng.uniform(0.6, 0.85) if rng.random() < 0.15 else rng.uniform(0.85, 1.0),
            capital_intensity=rng.uniform(0.35, 1.1), solvency=rng.uniform(0.10, 0.50),
            current_share=rng.uniform(0.25, 0.55), liquidity=rng.uniform(0.9, 2.2),
            wage=rng.uniform(55_000, 68_000), part_time=rng.uniform(0.6, 0.85), sick_leave=rng.uniform(3.0, 8.0))

    def finances(self, rng: Random, revenue: float) -> dict:
        def wobble(value: float, sd: float = 0.05) -> float:
            return value * max(0.5, rng.gauss(1, sd))

        gross_share = self.gross_share + rng.gauss(0, 0.015)
        shares = {k: wobble(v) for k, v in self.cost_shares.items()}
        scale = (1 - gross_share) / sum(shares.values())  # costs + gross result = revenue
        costs = {k: round(revenue * v * scale) for k, v in shares.items()}
        ggz = revenue * min(1.0, wobble(self.ggz_share, 0.02))
        total_assets = revenue * wobble(self.capital_intensity)
        current_assets = total_assets * wobble(self.current_share)
        interest_income = round(revenue * rng.uniform(0, 0.002))
        interest_expense = round(total_assets * (1 - self.solvency) * 0.6 * rng.uniform(0.02, 0.05))
        fte = costs["personnel_costs"] / wobble(self.wage, 0.02)
        return {
            "revenue_total": round(revenue), "revenue_ggz": round(ggz), "other_income_non_ggz": round(revenue - ggz),
            **costs, "interest_income": interest_income, "interest_expense": interest_expense,
            "net_result": round(revenue * gross_share) + interest_income - interest_expense,
            "equity": round(total_assets * min(0.9, wobble(self.solvency, 0.08))), "total_assets": round(total_assets),
            "current_assets": round(current_assets),
            "current_liabilities": round(current_assets / wobble(self.liquidity, 0.08)),
            "fte": round(fte, 1), "employees": max(1, round(fte / wobble(self.part_time, 0.02))),
            "sick_leave_pct": round(wobble(self.sick_leave, 0.12), 1),
        }


def _annual_row(rng: Random, profile: Profile, year: int, values: dict) -> list:
    small = profile.revenue < 2e6
    values |= {
        "concern_id": profile.concern_id, "concern_name": profile.name, "city": profile.city, "year": year,
        "n_locations": profile.n_locations, "n_org_units": max(1, profile.n_locations // 3),
        "n_directors": rng.randint(1, 2) if small else rng.randint(2, 5), "n_supervisors": rng.randint(3, 9),
    }
    if small and rng.random() < 0.5:  # small practices often do not report staff figures
        values |= {"fte": None, "employees": None, "sick_leave_pct": None}
    row = []
    for column in ANNUAL_COLUMNS:
        value = values[column]
        if column not in REQUIRED_ANNUAL and rng.random() < 0.02:  # a few gaps in public data
            value = None
        row.append(value)
    return row


# --- quality indicators ---------------------------------------------------------------------------

def _quality_rows(rng: Random, profile: Profile, years: list[int]) -> list[list]:
    respondents = max(20.0, profile.revenue / 20_000)  # larger concerns survey more clients
    rows = []
    for year in years:
        for ind in INDICATORS:
            if (ind.cluster == "FP" and not profile.forensic) or rng.random() < 0.12:
                continue  # not every concern reports every indicator every year
            direction = 1 if ind.higher_is_better else -1
            value = ind.mean + ind.sd * (direction * profile.quality + rng.gauss(0, 0.8))
            value = min(ind.high, max(ind.low, value))
            n = max(5, round(respondents * rng.uniform(0.05, 0.3)))
            rows.append([profile.concern_id, year, ind.indicator_id, ind.name, ind.cluster,
                         1 if ind.higher_is_better else 0, f"{value:.2f}", n])
    return rows


# --- the seed concern -------------------------------------------------------------------------------

def seed_concern_rows() -> list[list]:
    """Stichting Samenwerkende Zorgboeren Zuid (seed 001), C900, 2010-2013.

    Revenue, income and client counts are the seed's own figures. The cost
    amounts, equity and balance sheet are solved from the percentages the seed
    prints (spending shares, solvency, resistance capacity, capital intensity,
    liquidity, return on assets and on equity), so that ratios computed from
    these rows round to the seed's values. Where the seed shows an empty cell
    the field is NULL, never 0: wages (Loonkosten) are 0 in 2011, where the seed
    prints 0.0%, and blank in 2012-2013, where it prints nothing.

    2010 is the comparative year: annual accounts carry the previous year's
    figures, and the seed's 2011 revenue growth (28.5%) rests on a 2010 revenue
    it does not print. That row carries only the revenue the growth implies:
    171,342 / 1.285 = 133,340 (171,342 / 133,340 - 1 = 28.50%).
    """
    revenue = {2010: 133340, 2011: 171342, 2012: 1808010, 2013: 2916805}
    ggz = {2011: 38605, 2012: 1738313, 2013: 2855208}
    other = {2011: 132737, 2012: 69697, 2013: 61597}
    # Spending as shares of total revenue (premiums, external, general, client costs); the rest is gross result.
    shares = {2011: (0.0, 0.0, 0.794, 0.196), 2012: (0.05888, 0.02452, 0.8347, None),
              2013: (0.0682, 0.0440, 0.8524, None)}
    balance = {  # equity, total assets, current assets, current liabilities, net result
        2011: (24653, 70000, 45000, 29145, 1775),
        2012: (172637, 392000, 200000, 111920, 148019),
        2013: (265429, 782976, 300000, 198151, None),
    }
    clients = {2011: (10, 3, 4, 9)}
    name = {"concern_id": SEED_CONCERN_ID, "concern_name": "Stichting Samenwerkende Zorgboeren Zuid",
            "city": "Nieuwkuijk"}
    rows = [[{**name, "year": SEED_PREVIOUS_YEAR, "revenue_total": revenue[SEED_PREVIOUS_YEAR]}.get(c)
             for c in ANNUAL_COLUMNS]]
    for year in SEED_YEARS:
        r = revenue[year]
        premiums, external, general, client = (None if s is None else round(r * s) for s in shares[year])
        zero_in_2011 = 0 if year == 2011 else None  # cost lines the seed prints as 0.0% only in 2011
        equity, assets, current_assets, current_liabilities, net = balance[year]
        values = {
            **name, "year": year, "n_locations": 0, "n_org_units": 1, "n_directors": 3, "n_supervisors": 4,
            **dict(zip(["clients_jan1", "clients_new", "clients_discharged", "clients_dec31"],
                       clients.get(year, (None,) * 4))),
            "revenue_total": r, "revenue_ggz": ggz[year], "other_income_non_ggz": other[year],
            "personnel_costs": zero_in_2011, "social_premiums": premiums, "external_staff_costs": external,
            "food_costs": zero_in_2011, "general_costs": general, "client_costs": client,
            "maintenance_costs": zero_in_2011, "depreciation": zero_in_2011, "allocations": zero_in_2011,
            "interest_income": 62 if year == 2011 else None, "interest_expense": None,
            "net_result": net, "equity": equity, "total_assets": assets, "current_assets": current_assets,
            "current_liabilities": current_liabilities, "fte": None, "employees": None, "sick_leave_pct": None,
        }
        rows.append([values[c] for c in ANNUAL_COLUMNS])
    return rows


def seed_concern_quality_rows() -> list[list]:
    """The seed's quality table for its concern: in 2013 every indicator is listed with the
    all-concern mean and an empty "waarde" (the concern has no value, hence no z and no
    summary score); 2011 and 2012 show only empty summary scores, so they have no rows."""
    return [[SEED_CONCERN_ID, 2013, ind.indicator_id, ind.name, ind.cluster, 1 if ind.higher_is_better else 0,
             None, None] for ind in INDICATORS]
