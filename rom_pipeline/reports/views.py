"""Template contexts: rows from :mod:`rom_pipeline.reports.data` -> formatted cells and charts.

Every number a template prints is formatted here (:mod:`rom_pipeline.reports.formatting`),
so the templates only lay out strings. Two kinds of cell for ROM figures:

- shared cells (location report): a figure the warehouse flags ``suppressed`` is never printed,
  whatever value the source holds; its ``suppression_reason`` (when the warehouse carries it) is
  the cell's title. A count below ``min_count`` is printed as "<5".
- manager cells (therapist pages): a suppressed figure is printed, flagged as unreliable.

Suppression is decided once, in SQL (the ``suppressed`` flag the marts publish); the views read
the flag and never re-derive it (no ``n < min_n`` here, no therapist count per category).
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from rom_pipeline.reports import charts, labels
from rom_pipeline.reports.formatting import (
    EMPTY, Z_CLASS_NONE, Z_LEGEND, fmt_by_unit, fmt_count, fmt_eur, fmt_n, fmt_number, fmt_pct, fmt_z,
    oriented_z, parse_dutch, z_colour_class,
)

SUPPRESSED_MARK = "–"
# A size-group z not computed because too few concerns of the group have a value (below the
# parameter benchmarks.min_size_group_peers): the concern report says so with this mark.
SMALL_GROUP_MARK = "n.b."
# Titles of a suppressed cell by the warehouse's suppression_reason (decided once, in SQL:
# docs/outcome-rules.md, suppression); an unknown reason is shown as is.
SUPPRESSION_REASONS = {
    "n_below_min_n": "minder dan {min_n} trajecten",
    "small_count": "het cijfer zou een aantal kleiner dan 5 prijsgeven",
    "complementary": "verborgen zodat een ander verborgen cijfer niet terug te rekenen is",
    "therapists_below_min": "een categorie rust op te weinig behandelaars (anders zou het cijfer van één "
                            "behandelaar zichtbaar worden)",
    "single_therapist": "een categorie rust op één behandelaar",
}
# Why an open episode is not on track (marts.not_on_track.not_on_track_reason; docs/feedback.md).
NOT_ON_TRACK_REASONS = {
    "reliably_worse": "betrouwbaar slechter dan bij de intake",
    "above_expected_course": "boven het verwachte verloop (mediaan + betrouwbare verandering)",
}


def safe_name(value: str) -> str:
    """An id as a file-name part: anything but letters, digits, '.', '_' and '-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(value))


@dataclass(frozen=True)
class Rules:
    min_n: int
    min_count: int
    targets: dict[str, dict]
    indicators: labels.IndicatorCatalogue

    def target_text(self, indicator: str) -> str:
        t = self.targets.get(indicator)
        if not t or t.get("target") is None:
            return EMPTY
        return f"{labels.COMPARATORS.get(t['comparator'], t['comparator'])} {self.fmt(indicator, t['target'])}"

    def fmt(self, indicator: str, value) -> str:
        """A value of an indicator: a count, a percentage (unit %) or a number (one decimal)."""
        if indicator in self.indicators.counts:
            return fmt_count(value)
        if indicator in self.indicators.percent:
            return fmt_pct(value)
        return fmt_number(value, 1)

    def fmt_ci(self, indicator: str, low, high) -> str:
        if low is None or high is None:
            return EMPTY
        return f"{self.fmt(indicator, low)} – {self.fmt(indicator, high)}"

    def suppressed_title(self, row: dict | None = None) -> str:
        """Title of a suppressed cell: the warehouse's reason when it gives one."""
        reason = (row or {}).get("suppression_reason")
        if not reason:
            return "onderdrukt"
        return "onderdrukt: " + SUPPRESSION_REASONS.get(reason, reason).format(min_n=self.min_n)


def n_label(n, min_count: int) -> str:
    """"n = 48", or "n < 5" below the smallest count that may be shown; "" without n."""
    text = fmt_n(n, min_count)
    if not text:
        return EMPTY
    return f"n {text[0]} {text[1:]}" if text.startswith("<") else f"n = {text}"


def z_cell(z, higher_is_better: bool | None = None) -> dict:
    """A z-score as printed, coloured by the printed (rounded) value so that equal text has equal colour.

    ``higher_is_better=False`` (drop-out and other lower-is-better indicators): the colour follows the
    direction, as the summary does: the printed z stays the plain one, the colour is that of the
    oriented z (a higher, worse drop-out is pink). ``None``: not oriented (financial ratios).
    """
    text = fmt_z(z)
    return {"text": text, "cls": z_colour_class(oriented_z(parse_dutch(text), higher_is_better) if text else None)}


def period_label(period: str) -> str:
    return period.replace("-Q", " K")  # 2025-Q3 -> 2025 K3 (kwartaal)


def _is_suppressed(row: dict | None) -> bool:
    """The warehouse's flag, read as published (decided in SQL, never re-derived here)."""
    return row is not None and bool(row.get("suppressed"))


def shared_cell(indicator: str, row: dict | None, rules: Rules) -> dict:
    """A published figure: value, n and CI; suppressed figures show only the mark."""
    if row is None:
        return {"text": EMPTY, "n": EMPTY, "ci": EMPTY, "cls": "", "title": ""}
    n_text = n_label(row.get("n"), rules.min_count)
    if indicator in rules.indicators.counts:
        return {"text": fmt_n(row.get("value"), rules.min_count), "n": EMPTY, "ci": EMPTY, "cls": "", "title": ""}
    if _is_suppressed(row) or row.get("value") is None:
        return {"text": SUPPRESSED_MARK, "n": n_text, "ci": EMPTY, "cls": "suppressed",
                "title": rules.suppressed_title(row) if _is_suppressed(row) else "geen waarde"}
    return {"text": rules.fmt(indicator, row["value"]), "n": n_text,
            "ci": rules.fmt_ci(indicator, row.get("ci_low"), row.get("ci_high")), "cls": "", "title": ""}


def manager_cell(indicator: str, row: dict | None, rules: Rules) -> dict:
    """A figure in the manager's own view: shown even when suppressed, flagged as unreliable."""
    if row is None or row.get("value") is None:
        return {"text": EMPTY, "n": n_label(row.get("n"), rules.min_count) if row else EMPTY, "ci": EMPTY,
                "cls": "", "title": "", "unreliable": False}
    unreliable = _is_suppressed(row)
    return {"text": rules.fmt(indicator, row["value"]) + ("*" if unreliable else ""),
            "n": n_label(row.get("n"), rules.min_count),
            "ci": rules.fmt_ci(indicator, row.get("ci_low"), row.get("ci_high")),
            "cls": "unreliable" if unreliable else "",
            "title": f"onbetrouwbaar: minder dan {rules.min_n} trajecten" if unreliable else "",
            "unreliable": unreliable}


def target_cell(row: dict | None, rules: Rules, shared: bool) -> dict:
    if row is None or row.get("target_met") is None or (shared and _is_suppressed(row)):
        return {"text": SUPPRESSED_MARK if row is not None and _is_suppressed(row) else EMPTY,
                "cls": "suppressed" if row is not None and _is_suppressed(row) else ""}
    met = bool(row["target_met"])
    text = "ja" if met else "nee"
    if not shared and _is_suppressed(row):
        text += "*"
    return {"text": text, "cls": "met" if met else "not-met"}


# --- the concern report (seed 001) --------------------------------------------------------------------

def concern_context(src, concern_id: str, year: int, known_years: Iterable[int], names: dict[str, str],
                    n_indicators_by_year: dict[int, int], run: dict, rules: Rules | None = None,
                    casemix_rows: list[dict] | None = None, location_names: dict[str, str] | None = None) -> dict:
    years = [y for y in (year - 2, year - 1, year) if y in set(known_years)]
    reports = src.annual_reports(concern_id)
    ratios = src.financial_ratios(concern_id)
    summary = src.concern_summary(concern_id)
    sizes = src.size_groups(concern_id)
    this = reports.get(year, {})

    key_facts = []
    for col, text in labels.KEY_FACTS:
        value = this.get(col) if col != "concern_name" else (this.get(col) or names.get(concern_id, concern_id))
        key_facts.append((text, fmt_count(value) if isinstance(value, (int, float)) else (value or EMPTY)))
    size = sizes.get(year)
    key_facts.append(("Benchmarkgroep (omvang)", _size_text(size)))
    key_facts.append(("Verslagjaar", str(year)))

    def annual(col: str, y: int):
        r = reports.get(y)
        if not r:
            return None
        if col == "clients_total":
            a, b = r.get("clients_jan1"), r.get("clients_new")
            return None if a is None or b is None else a + b
        return r.get(col)

    general_rows = [{"label": text, "cells": [
        fmt_number(annual(col, y), 1) if col == "fte" else fmt_count(annual(col, y)) for y in years]}
        for col, text in labels.GENERAL_INFORMATION]
    revenue_rows = [{"label": text, "cells": [fmt_eur(annual(col, y)) for y in years]}
                    for col, text in labels.REVENUE]

    min_group = int(float(src.parameters()["min_size_group_peers"]))

    def group_z(value, z, n_peers, y, higher_is_better: bool | None = None) -> dict:
        """The size-group z beside the all-concern z (coloured by direction like it); where the group
        is too small, say so."""
        if z is None and value is not None and sizes.get(y, {}).get("size_group") and (n_peers or 0) < min_group:
            return {"text": SMALL_GROUP_MARK, "cls": Z_CLASS_NONE,
                    "title": f"benchmarkgroep te klein: {n_peers or 0} concerns met een waarde (minimum {min_group})"}
        return z_cell(z, higher_is_better)

    def ratio_rows(spec):
        rows = []
        for code, text in spec:
            cells = []
            for y in years:
                r = ratios.get((y, code))
                cells.append({"value": fmt_by_unit(r["value"], r["unit"]) if r else EMPTY,
                              "z": z_cell(r["z"] if r else None),
                              "z_group": group_z(r["value"], r["z_size_group"], r["n_size_peers"], y) if r
                              else z_cell(None)})
            rows.append({"label": text, "code": code, "cells": cells})
        return rows

    notes = []
    if any((reports.get(y) or {}).get("equity") is not None and reports[y]["equity"] < 0 for y in years):
        notes.append("Het eigen vermogen is in ten minste één jaar negatief: het teken van het rendement op "
                     "eigen vermogen is dan niet te interpreteren.")

    peer_means = src.ratio_peer_means(year)
    chart = charts.spending_chart(
        [text for _, text in labels.SPENDING],
        [(str(y), [ratios[(y, code)]["value"] if (y, code) in ratios else None for code, _ in labels.SPENDING])
         for y in years],
        (f"gemiddelde alle concerns {year}", [peer_means.get(code) for code, _ in labels.SPENDING]))

    def summary_rows():
        """Per cluster and year: the summary against all concerns and, beside it, within the size group."""
        rows = []
        for cluster, text in labels.CLUSTERS:
            cells = []
            for y in years:
                r = summary.get((y, "all", cluster))
                g = summary.get((y, "size_group", cluster))
                z_group = z_cell(g["summary_z"] if g else None)
                if g and not g["n_indicators"] and r and r["n_indicators"]:  # scored, but no group z anywhere
                    z_group = {"text": SMALL_GROUP_MARK, "cls": Z_CLASS_NONE,
                               "title": f"geen indicator met ten minste {min_group} concerns in de benchmarkgroep"}
                cells.append({"z": z_cell(r["summary_z"] if r else None),
                              "n": fmt_count(r["n_indicators"]) if r else EMPTY,
                              "z_group": z_group,
                              "n_group": fmt_count(g["n_indicators"]) if g else EMPTY})
            rows.append({"label": text, "cells": cells})
        return rows

    own = src.concern_benchmark(concern_id, year)
    tables = []
    measured = src.benchmark_indicators(year)
    for cluster in ("CQ", "kernset", "FP"):
        rows = []
        for ind in sorted((i for i in measured if i["cluster"] == cluster),
                          key=lambda i: ((i["indicator_name"] or i["indicator_id"]).casefold(), i["indicator_id"])):
            mine = own.get(ind["indicator_id"], {})
            rows.append({"name": ind["indicator_name"] or ind["indicator_id"],
                         "lower_is_better": ind["higher_is_better"] is False,
                         "value": fmt_number(mine.get("value"), 2),
                         "mean": fmt_number(mine.get("peer_mean", ind["peer_mean"]), 2),
                         "z": z_cell(mine.get("z"), ind["higher_is_better"]),
                         "z_group": group_z(mine.get("value"), mine.get("z_size_group"),
                                            mine.get("n_size_peers"), year, ind["higher_is_better"])})
        if rows:
            tables.append({"title": f"Kwaliteit {year}, concern: {labels.CLUSTER_TABLE_TITLES[cluster]}",
                           "rows": rows})

    return {
        "title": f"Benchmarkrapport: {names.get(concern_id, concern_id)}",
        "concern": {"id": concern_id, "name": names.get(concern_id, concern_id), "city": this.get("city")},
        "year": year, "years": years, "has_annual_report": bool(this),
        "key_facts": key_facts, "general_rows": general_rows, "revenue_rows": revenue_rows,
        "ratio_rows": ratio_rows(labels.FINANCIAL_RATIOS), "spending_rows": ratio_rows(labels.SPENDING),
        "spending_chart": charts.data_uri(chart),
        "summary_rows": summary_rows(),
        "size_text": _size_text(size),
        "size_groups": [{"year": y, "text": _size_text(sizes.get(y)),
                         "n": (sizes.get(y) or {}).get("n_group_concerns"),
                         "too_small": (sizes.get(y) or {}).get("n_group_concerns") is not None
                         and sizes[y]["n_group_concerns"] < min_group} for y in years],
        "min_group": min_group, "small_group_mark": SMALL_GROUP_MARK,
        "indicator_tables": tables,
        "adjusted": casemix_tables(casemix_rows or [], location_names or {}, rules, concern_id=concern_id,
                                   concern_label=f"{names.get(concern_id, concern_id)} (concern)",
                                   highlight=concern_id, year=str(year)) if rules and casemix_rows else [],
        "n_indicators_by_year": [(y, n_indicators_by_year[y]) for y in years if y in n_indicators_by_year],
        "bijlage_1": labels.BIJLAGE_1, "legend": Z_LEGEND, "notes": notes, "run": run,
        "not_on_track": _concern_not_on_track(src, concern_id, year, max(known_years, default=year)),
    }


def _concern_not_on_track(src, concern_id: str, year: int, latest_year: int) -> dict | None:
    """The concern's flagged open episodes as published, in its most recent report only (open episodes are
    the state at the export date, not a figure of an earlier year)."""
    row = src.not_on_track_counts(concern_id).get(("concern", concern_id))
    if row is None or year != latest_year:
        return None
    params = src.parameters()
    return not_on_track_summary(row, min_n=int(float(params["min_n"])),
                                min_count=int(float(params["min_count_published"])))


def _size_text(size: dict | None) -> str:
    if not size or not size.get("size_group"):
        return "onbekend: geen omzet over dit jaar"
    low, high = size.get("size_group_min_eur"), size.get("size_group_max_eur")
    if low is None and high is None:
        return labels.SIZE_GROUPS.get(size["size_group"], size["size_group"])
    if low is None or low == 0:
        return f"omzet minder dan {fmt_eur(high)}"
    if high is None:
        return f"omzet {fmt_eur(low)} of meer"
    return f"omzet {fmt_eur(low)} tot {fmt_eur(high)}"


# --- the location report (seed 000), shared --------------------------------------------------------------

@dataclass
class ConcernUnits:
    """The published figures of one concern's locations and organisation, indexed for the views."""
    concern_id: str
    rows: list[dict]
    index: dict[tuple, dict] = field(default_factory=dict)
    years: list[str] = field(default_factory=list)
    quarters: list[str] = field(default_factory=list)

    def __post_init__(self):
        # The organisation's figure is its mean of locations (seed 000) where there is one (a count has
        # none: its episodes figure stands): those rows come last, so they win.
        for r in sorted(self.rows, key=lambda r: r["aggregation"] == "mean_of_locations"):
            if r["level"] == "therapist":  # never, from the warehouse queries; a guard all the same
                continue
            self.index[(r["level"], r["unit_id"], r["period_type"], r["period"], r["indicator"])] = r
        self.years = sorted({r["period"] for r in self.rows if r["period_type"] == "year"})
        self.quarters = sorted({r["period"] for r in self.rows if r["period_type"] == "quarter"})

    def get(self, level, unit, period_type, period, indicator):
        return self.index.get((level, unit, period_type, period, indicator))


def year_label(period: str, export_date: dt.date | None) -> str:
    return f"{period}*" if export_date and str(export_date.year) == period else period


def funnel_year(years: list[str], export_date: dt.date | None) -> str | None:
    """The most recent complete year (before the export's year), else the most recent year."""
    if not years:
        return None
    complete = [y for y in years if not export_date or int(y) < export_date.year]
    return (complete or years)[-1]


def _funnel_parameters(rows: list[dict]) -> tuple[float | None, float | None]:
    for r in rows:
        if r.get("funnel_centre") is not None and r.get("funnel_sd") is not None:
            return r["funnel_centre"], r["funnel_sd"]
    return None, None


def funnel_position(row: dict) -> str:
    if row.get("outside_funnel_998"):
        return "buiten 99.8%-grenzen"
    if row.get("outside_funnel_95"):
        return "buiten 95%-grenzen"
    if row.get("outside_funnel_95") is False:
        return "binnen de grenzen"
    return EMPTY


def location_context(concern_id: str, concern_name: str,
                     location: dict, locations: list[dict], units: ConcernUnits, rules: Rules,
                     export_date: dt.date | None, run: dict, benchmark_rows: list[dict],
                     breakdown_rows: list[dict], year: str | None,
                     not_on_track: dict[tuple[str, str], dict] | None = None,
                     casemix_rows: list[dict] | None = None) -> dict:
    loc_id = location["location_id"]
    names = {l["location_id"]: l["location_name"] for l in locations}
    indicator_rows, too_few = [], []
    for indicator in [*rules.indicators.counts, *rules.indicators.order]:
        cells = []
        for y in units.years:
            cells.append({"unit": shared_cell(indicator, units.get("location", loc_id, "year", y, indicator), rules),
                          "org": shared_cell(indicator, units.get("concern", concern_id, "year", y, indicator), rules)})
        if _nothing_shown(indicator, cells, rules):
            too_few.append(rules.indicators.labels[indicator])
            continue
        indicator_rows.append({"label": rules.indicators.labels[indicator],
                               "lower_is_better": indicator in rules.indicators.lower_is_better, "cells": cells})

    target_rows = []
    for indicator in rules.indicators.order:
        if indicator not in rules.targets:
            continue
        cells = []
        for y in units.years:
            row = units.get("location", loc_id, "year", y, indicator)
            cells.append({"value": shared_cell(indicator, row, rules), "met": target_cell(row, rules, shared=True)})
        target_rows.append({"label": rules.indicators.labels[indicator], "target": rules.target_text(indicator),
                            "cells": cells})

    trend_charts = []
    if units.quarters:
        for indicator in rules.indicators.charted:
            def series(level, unit):
                out = []
                for q in units.quarters:
                    r = units.get(level, unit, "quarter", q, indicator)
                    out.append(None if r is None or _is_suppressed(r) else r["value"])
                return out
            target = rules.targets.get(indicator, {}).get("target")
            svg = charts.trend_chart(
                [period_label(q) for q in units.quarters],
                [charts.Line(f"{location['location_name']} ({loc_id})", series("location", loc_id), True),
                 charts.Line("organisatie (gemiddelde van de vestigingen)", series("concern", concern_id))],
                title=rules.indicators.labels[indicator], percent=indicator in rules.indicators.percent,
                target=target,
                target_label=f"target {rules.target_text(indicator)}" if target is not None else None,
                y_range=(0, 100) if indicator.startswith("pct_") else None)
            trend_charts.append({"title": rules.indicators.labels[indicator], "img": charts.data_uri(svg)})

    funnels = []
    by_indicator = defaultdict(list)
    for r in benchmark_rows:
        by_indicator[r["indicator"]].append(r)
    for indicator in rules.indicators.charted:
        rows = by_indicator.get(indicator, [])
        if not rows:
            continue
        centre, sd = _funnel_parameters(rows)
        shown = [r for r in rows if r["value"] is not None and not _is_suppressed(r)]
        points = [charts.FunnelPoint(r["unit_id"], r["n"], r["value"], r["unit_id"] == loc_id) for r in shown]
        target = rules.targets.get(indicator, {}).get("target")
        svg = charts.funnel_chart(points, centre=centre, sd=sd, proportion=indicator.startswith("pct_"),
                                  percent=indicator in rules.indicators.percent,
                                  y_range=rules.indicators.ranges.get(indicator),
                                  title=f"{rules.indicators.labels[indicator]}, {year}", target=target,
                                  target_label=f"target {rules.target_text(indicator)}" if target is not None else None)
        table = []
        for r in sorted(rows, key=lambda r: (names.get(r["unit_id"], r["unit_id"]).casefold(), r["unit_id"])):
            hidden = _is_suppressed(r) or r["value"] is None
            table.append({
                "name": names.get(r["unit_id"], r["unit_id"]), "id": r["unit_id"], "this": r["unit_id"] == loc_id,
                "n": fmt_n(r["n"], rules.min_count),
                "value": SUPPRESSED_MARK if hidden else rules.fmt(indicator, r["value"]),
                "limits": EMPTY if hidden or r.get("funnel_95_low") is None else
                rules.fmt_ci(indicator, r["funnel_95_low"], r["funnel_95_high"]),
                "position": EMPTY if hidden else funnel_position(r),
                "cls": "suppressed" if hidden else ""})
        funnels.append({"title": rules.indicators.labels[indicator], "img": charts.data_uri(svg), "table": table,
                        "centre": rules.fmt(indicator, centre)})

    breakdowns = _breakdown_tables(breakdown_rows, concern_id, loc_id, rules)
    adjusted = casemix_tables(casemix_rows or [], names, rules, concern_id=concern_id,
                              concern_label=f"{concern_name} (organisatie)", highlight=loc_id, year=year)

    return {
        "title": f"Kwaliteitsrapport vestiging: {location['location_name']}",
        "concern": {"id": concern_id, "name": concern_name},
        "location": {"id": loc_id, "name": location["location_name"], "region": location.get("region")},
        "years": [year_label(y, export_date) for y in units.years],
        "partial_note": (f"* lopend jaar: trajecten afgesloten tot en met {export_date:%d-%m-%Y} (datum van de "
                         "export)") if export_date and str(export_date.year) in units.years else "",
        "not_on_track": {
            "unit": not_on_track_summary((not_on_track or {}).get(("location", loc_id)), rules),
            "rows": [{"label": f"{location['location_name']} ({loc_id})",
                      "cell": not_on_track_summary((not_on_track or {}).get(("location", loc_id)), rules)},
                     {"label": f"{concern_name} (organisatie)",
                      "cell": not_on_track_summary((not_on_track or {}).get(("concern", concern_id)), rules)}]},
        "funnel_year": year, "indicator_rows": indicator_rows, "too_few": too_few, "target_rows": target_rows,
        "trend_charts": trend_charts, "funnels": funnels, "breakdowns": breakdowns, "adjusted": adjusted,
        "locations": [{"id": l["location_id"], "name": l["location_name"]} for l in locations],
        "rules": {"min_n": rules.min_n, "min_count": rules.min_count},
        "run": run,
    }


def _nothing_shown(indicator: str, cells: list[dict], rules: Rules) -> bool:
    """A secondary indicator (no target, no chart: e.g. an instrument that few episodes have) without a single
    shown figure in any year, for the location or the organisation: the report names it once instead of a row
    of dashes (every figure of it rests on too few episodes)."""
    if indicator in rules.indicators.counts or indicator in rules.targets or indicator in rules.indicators.charted:
        return False
    return all(c[side]["text"] in (SUPPRESSED_MARK, EMPTY) for c in cells for side in ("unit", "org"))


CASEMIX_INDICATORS = ("mean_improvement", "pct_recovered", "pct_deteriorated")


def casemix_position(row: dict) -> str:
    """Where observed - expected lies against its funnel limits (as the SQL flagged it)."""
    if row.get("outside_998"):
        return ("beter" if row["difference"] > 0 else "slechter") + " dan verwacht (buiten 99.8%-grenzen)"
    if row.get("outside_95"):
        return ("beter" if row["difference"] > 0 else "slechter") + " dan verwacht (buiten 95%-grenzen)"
    if row.get("outside_95") is False:
        return "zoals verwacht (binnen de grenzen)"
    return EMPTY


def casemix_tables(rows: list[dict], names: dict[str, str], rules: Rules, *, concern_id: str,
                   concern_label: str, highlight: str | None = None, year: str | None = None) -> list[dict]:
    """Observed against expected per indicator: the organisation first, then its locations by name; a chart
    of the differences with their intervals. Suppressed figures show the mark only (flag from SQL)."""
    by_key = {(r["level"], r["unit_id"], r["indicator"]): r for r in rows}
    location_ids = sorted({r["unit_id"] for r in rows if r["level"] == "location"},
                          key=lambda u: (names.get(u, u).casefold(), u))
    units = [("concern", concern_id, concern_label)] + [("location", u, f"{names.get(u, u)} ({u})")
                                                       for u in location_ids]
    tables = []
    for indicator in CASEMIX_INDICATORS:
        if indicator not in rules.indicators.labels or not any(k[2] == indicator for k in by_key):
            continue
        label = rules.indicators.labels[indicator]
        table, points = [], []
        for level, unit, name in units:
            r = by_key.get((level, unit, indicator))
            if r is None:
                continue
            hidden = _is_suppressed(r) or r.get("difference") is None
            table.append({
                "name": name, "this": unit == highlight, "org": level == "concern",
                "n": fmt_n(r["n"], rules.min_count),
                "observed": SUPPRESSED_MARK if hidden else rules.fmt(indicator, r["observed"]),
                "expected": SUPPRESSED_MARK if hidden else rules.fmt(indicator, r["expected"]),
                "difference": SUPPRESSED_MARK if hidden else fmt_signed(r["difference"], indicator, rules),
                "interval": EMPTY if hidden else f"{fmt_signed(r['ci_low'], indicator, rules)} – "
                                                 f"{fmt_signed(r['ci_high'], indicator, rules)}",
                "position": EMPTY if hidden else casemix_position(r),
                "cls": "suppressed" if hidden else "",
                "title": rules.suppressed_title(r) if _is_suppressed(r) else ""})
            if not hidden:
                points.append(charts.DifferencePoint(name, r["difference"], r["ci_low"], r["ci_high"],
                                                     unit == highlight))
        svg = charts.difference_chart(points, title=f"{label}: geobserveerd − verwacht{', ' + year if year else ''}",
                                      percent=indicator in rules.indicators.percent) if points else None
        tables.append({"title": label, "rows": table, "img": charts.data_uri(svg) if svg else None})
    return tables


def fmt_signed(value, indicator: str, rules: Rules) -> str:
    """A difference with its sign (+3,2 / −1,5), in the indicator's unit."""
    if value is None:
        return EMPTY
    text = rules.fmt(indicator, abs(value))
    return ("+" if value > 0 else "−" if value < 0 else "") + text


def _breakdown_tables(rows: list[dict], concern_id: str, loc_id: str, rules: Rules) -> list[dict]:
    """Case-mix tables: each cell as the warehouse publishes it (suppressed cells, including a trainee /
    experienced category on too few therapists, carry the flag and the reason from SQL)."""
    index = {(r["level"], r["unit_id"], r["dimension"], r["category"], r["indicator"]): r for r in rows}
    tables = []
    for dimension, dim_label in labels.BREAKDOWN_DIMENSIONS:
        categories = sorted({r["category"] for r in rows if r["dimension"] == dimension and
                             r["level"] == "location" and r["unit_id"] == loc_id},
                            key=lambda c: labels.category_sort_key(dimension, c))
        if not categories:
            continue
        table_rows = []
        for category in categories:
            cells = []
            for indicator in rules.indicators.breakdown:
                unit_row = index.get(("location", loc_id, dimension, category, indicator))
                org_row = index.get(("concern", concern_id, dimension, category, indicator))
                cells.append({"unit": shared_cell(indicator, unit_row, rules),
                              "org": shared_cell(indicator, org_row, rules)})
            table_rows.append({"category": labels.label(labels.CATEGORIES, category), "cells": cells})
        tables.append({"dimension": dim_label, "rows": table_rows})
    return tables


# --- manager package: therapist pages (work database) ---------------------------------------------------

def therapist_label(t: dict) -> str:
    extra = labels.label(labels.PROFESSIONS, t.get("profession"))
    if t.get("is_trainee"):
        extra += ", in opleiding"
    return f"Behandelaar {t['therapist_id']}" + (f" ({extra})" if extra else "")


def therapist_trend_indicators(rules: Rules) -> list[str]:
    """The indicators a therapist page charts per quarter (the only quarter figures it shows)."""
    return list(rules.indicators.charted[:2])


def therapist_context(therapist: dict, colleagues: list[dict], bench: dict[tuple, dict], counts: dict[tuple, int],
                      units: ConcernUnits, years: list[str], quarters: list[str], year: str | None,
                      rules: Rules, location: dict, concern: dict, export_date, run: dict) -> dict:
    """One therapist's page. ``colleagues``: the therapists of the same location (this one included);
    ``bench``: (therapist, period_type, period, indicator) -> internal_benchmark row of the concern."""
    tid = therapist["therapist_id"]
    year_rows, no_figures = [], []
    for indicator in rules.indicators.order:
        cells = []
        for y in years:
            r = bench.get((tid, "year", y, indicator))
            org = units.get("concern", concern["id"], "year", y, indicator)
            cells.append({"value": manager_cell(indicator, r, rules),
                          "org": rules.fmt(indicator, org["value"]) if org and not _is_suppressed(org)
                          else EMPTY,
                          "z": _manager_z(r, indicator, rules),
                          "met": target_cell(r, rules, shared=False) if indicator in rules.targets else None})
        if (indicator not in rules.targets and indicator not in rules.indicators.charted
                and all(c["value"]["text"] == EMPTY and c["org"] == EMPTY for c in cells)):
            no_figures.append(rules.indicators.labels[indicator])  # no episode of it, here or in the organisation
            continue
        year_rows.append({"label": rules.indicators.labels[indicator], "indicator": indicator,
                          "lower_is_better": indicator in rules.indicators.lower_is_better,
                          "has_target": indicator in rules.targets, "cells": cells})
    n_row = [fmt_n(counts.get((tid, "year", y)), rules.min_count) for y in years]

    trend_charts = []
    for indicator in therapist_trend_indicators(rules):
        own = [bench.get((tid, "quarter", q, indicator)) for q in quarters]
        org = [units.get("concern", concern["id"], "quarter", q, indicator) for q in quarters]
        target = rules.targets.get(indicator, {}).get("target")
        svg = charts.trend_chart(
            [period_label(q) for q in quarters],
            [charts.Line(f"{tid} (alle kwartalen; n < {rules.min_n} onbetrouwbaar)",
                         [r["value"] if r else None for r in own], True),
             charts.Line("organisatie (gemiddelde van de vestigingen)",
                         [r["value"] if r and not _is_suppressed(r) else None for r in org])],
            title=rules.indicators.labels[indicator], percent=indicator in rules.indicators.percent,
            target=target,
            target_label=f"target {rules.target_text(indicator)}" if target is not None else None,
            y_range=(0, 100) if indicator.startswith("pct_") else None)
        trend_charts.append({"title": rules.indicators.labels[indicator], "img": charts.data_uri(svg)})

    funnels = []
    if year:
        for indicator in rules.indicators.charted[:2]:
            rows = [bench[(c["therapist_id"], "year", year, indicator)] for c in colleagues
                    if (c["therapist_id"], "year", year, indicator) in bench]
            mine = bench.get((tid, "year", year, indicator))
            if not rows or mine is None:
                continue
            centre, sd = _funnel_parameters(rows)
            points = [charts.FunnelPoint(r["unit_id"] + ("*" if _is_suppressed(r) else ""), r["n"], r["value"],
                                         r["unit_id"] == tid)
                      for r in rows if r["value"] is not None and r["n"]]
            target = rules.targets.get(indicator, {}).get("target")
            svg = charts.funnel_chart(points, centre=centre, sd=sd, proportion=indicator.startswith("pct_"),
                                      percent=indicator in rules.indicators.percent,
                                      y_range=rules.indicators.ranges.get(indicator),
                                      title=f"{rules.indicators.labels[indicator]}, {year}", target=target,
                                      target_label=f"target {rules.target_text(indicator)}"
                                      if target is not None else None)
            funnels.append({"title": rules.indicators.labels[indicator], "img": charts.data_uri(svg),
                            "value": manager_cell(indicator, mine, rules),
                            "limits": rules.fmt_ci(indicator, mine.get("funnel_95_low"), mine.get("funnel_95_high")),
                            "position": funnel_position(mine), "centre": rules.fmt(indicator, centre)})

    return {
        "title": therapist_label(therapist), "therapist": {"id": tid, "label": therapist_label(therapist)},
        "location": location, "concern": concern, "years": [year_label(y, export_date) for y in years],
        "year_rows": year_rows, "no_figures": no_figures, "n_row": n_row, "trend_charts": trend_charts, "funnels": funnels,
        "funnel_year": year, "rules": {"min_n": rules.min_n, "min_count": rules.min_count}, "run": run,
        "legend": Z_LEGEND,
    }


def _manager_z(row: dict | None, indicator: str, rules: Rules) -> dict:
    """z among the concern's therapists, coloured by direction; an unreliable figure keeps its colour and
    is marked besides (hatched outline, "*", a title)."""
    cell = z_cell(row["z"] if row else None, indicator not in rules.indicators.lower_is_better)
    if row is not None and cell["text"] and _is_suppressed(row):
        return {"text": cell["text"] + "*", "cls": f"{cell['cls']} unreliable-mark",
                "title": f"onbetrouwbaar: minder dan {rules.min_n} trajecten"}
    return cell


def manager_overview(therapists: list[dict], bench: dict[tuple, dict], counts: dict[tuple, int],
                     year: str | None, rules: Rules, flagged: list[dict] | None = None,
                     flags: dict[str, list[str]] | None = None) -> list[dict]:
    """The package's overview: one row per therapist; ``flagged``: the location's open episodes not on
    track (the manager's own view: every count is shown, also a small one)."""
    not_on_track = defaultdict(int)
    for e in flagged or []:
        not_on_track[e["therapist_id"]] += 1
    rows = []
    for t in sorted(therapists, key=lambda t: t["therapist_id"]):
        tid = t["therapist_id"]
        rows.append({
            "id": tid, "label": therapist_label(t), "file": f"behandelaar-{safe_name(tid)}.html",
            "n": fmt_n(counts.get((tid, "year", year)), rules.min_count) if year else EMPTY,
            "cells": [manager_cell(i, bench.get((tid, "year", year, i)), rules) for i in rules.indicators.with_target],
            "met": [target_cell(bench.get((tid, "year", year, i)), rules, shared=False) for i in rules.indicators.with_target],
            "not_on_track": fmt_count(not_on_track[tid]),
            "flags": (flags or {}).get(tid, []),
        })
    return rows


# --- manager package: the caseload review (issue 12 part 5, seed 000; docs/reports.md) ---------------

CASELOAD_DIMENSIONS = ("diagnosis_group", "baseline_severity", "referrer", "care_type")
# Seed 000: when a therapist stays under target, manager and therapist go through the whole caseload.
UNDER_TARGET_CHECKLIST = [
    "de diagnoses van de patiënten in de caseload (zie de verdeling hieronder, naast die van de vestiging)",
    "behandelen volgens protocol",
    "patiënten die van andere behandelaars zijn overgedragen (de ROM-export kent geen veld voor een "
    "overdracht: dit blijkt niet uit deze cijfers en moet in het gesprek worden nagegaan)",
    "de effectiviteit van de supervisie (met de supervisor erbij)",
]
UNDER_TARGET_TEXT = "bespreken: hele caseload doornemen"
ALL_100_TEXT = "gesprek: caseload mogelijk te licht"


def under_target(tid: str, bench: dict[tuple, dict], year: str | None, rules: Rules) -> list[dict]:
    """The targeted indicators whose figure of the therapist in ``year`` (the latest complete year) misses its
    target (target_met from SQL, targets from the catalogue), on at least min_n episodes: a figure on fewer is
    unreliable and flags nothing (docs/outcome-rules.md s13)."""
    missed = []
    for indicator in rules.indicators.with_target:
        r = bench.get((tid, "year", year, indicator)) if year else None
        if r is None or r.get("target_met") is not False or r.get("n") is None or r["n"] < rules.min_n:
            continue
        missed.append({"indicator": indicator, "label": rules.indicators.labels[indicator],
                       "value": rules.fmt(indicator, r["value"]), "target": rules.target_text(indicator),
                       "n": n_label(r["n"], rules.min_count)})
    return missed


class CaseloadRows:
    """A concern's marts.caseload_review rows indexed once for all its therapists' pages (a tier M concern
    has about 200 therapists and 20,000 review rows: scanning them per page cost about a third of the build).

    ``by_year[year][(level, unit_id, dimension, category)]``: the row (the last one of a key, as the
    dictionary the views built before); ``categories[(year, level, unit_id, dimension)]``: the categories
    present; ``first_total[(unit_id, year)]``: a therapist's first 'total' row in the given order."""

    def __init__(self, rows: list[dict]):
        self.by_year: dict = defaultdict(dict)
        self.categories: dict = defaultdict(set)
        self.first_total: dict = {}
        for r in rows:
            self.by_year[r["period"]][(r["level"], r["unit_id"], r["dimension"], r["category"])] = r
            self.categories[(r["period"], r["level"], r["unit_id"], r["dimension"])].add(r["category"])
            if r["level"] == "therapist" and r["dimension"] == "total":
                self.first_total.setdefault((r["unit_id"], r["period"]), r)


def _caseload_rows(review_rows: "list[dict] | CaseloadRows") -> CaseloadRows:
    return review_rows if isinstance(review_rows, CaseloadRows) else CaseloadRows(review_rows)


def all_at_100(tid: str, review_rows: "list[dict] | CaseloadRows", year: str | None) -> dict | None:
    """The therapist's 'total' row of marts.caseload_review in ``year`` when its all_complete_at_100 flag
    (decided in SQL, once) is set."""
    r = _caseload_rows(review_rows).first_total.get((tid, year))
    return r if r is not None and r.get("all_complete_at_100") else None


def _share_cell(row: dict | None, rules: Rules, manager: bool) -> dict:
    if row is None:
        return {"text": EMPTY, "n": EMPTY, "cls": "", "title": ""}
    if row["suppressed"] and not manager:
        return {"text": SUPPRESSED_MARK, "n": EMPTY, "cls": "suppressed", "title": rules.suppressed_title(row)}
    mark = "*" if row["suppressed"] else ""
    return {"text": fmt_pct(row["share"]) + mark, "n": f"n = {row['n']}" if manager else n_label(row["n"], rules.min_count),
            "cls": "unreliable" if row["suppressed"] else "",
            "title": rules.suppressed_title(row) + " (in gedeelde cijfers)" if row["suppressed"] else ""}


def caseload_review(therapist: dict, review_rows: "list[dict] | CaseloadRows", casemix_rows: "list[dict] | dict",
                    bench: dict[tuple, dict], year: str | None, rules: Rules, n_not_on_track: int) -> dict:
    """The review section of a therapist's page: case mix beside the location's, the case-mix adjusted result,
    open episodes not on track, and the two flags. The therapist's own shares are shown even when small
    (flagged *, the manager's own view); the location's as published (suppressed cells show the mark).
    ``review_rows`` and ``casemix_rows`` may come indexed once for the concern (:class:`CaseloadRows`,
    :func:`casemix_by_unit`)."""
    tid, loc = therapist["therapist_id"], therapist["location_id"]
    review = _caseload_rows(review_rows)
    index = review.by_year.get(year, {})
    own_total = index.get(("therapist", tid, "total", "all"))
    mix = []
    for dimension, dim_label in labels.BREAKDOWN_DIMENSIONS:
        if dimension not in CASELOAD_DIMENSIONS:
            continue
        categories = sorted(review.categories.get((year, "therapist", tid, dimension), set())
                            | review.categories.get((year, "location", loc, dimension), set()),
                            key=lambda c: labels.category_sort_key(dimension, c))
        if categories:
            mix.append({"dimension": dim_label, "rows": [
                {"category": labels.label(labels.CATEGORIES, c),
                 "own": _share_cell(index.get(("therapist", tid, dimension, c)), rules, manager=True)
                 if ("therapist", tid, dimension, c) in index or own_total is None else {
                     "text": fmt_pct(0), "n": "n = 0", "cls": "", "title": ""},  # none of the therapist's episodes
                 "location": _share_cell(index.get(("location", loc, dimension, c)), rules, manager=False)}
                for c in categories]})
    adjusted = []
    own_casemix = casemix_rows.get(tid, []) if isinstance(casemix_rows, dict) else casemix_rows
    for r in sorted((r for r in own_casemix if r["unit_id"] == tid and r["period_type"] == "year"
                     and r["period"] == year), key=lambda r: CASEMIX_INDICATORS.index(r["indicator"])
                    if r["indicator"] in CASEMIX_INDICATORS else 99):
        if r["indicator"] not in rules.indicators.labels or r.get("difference") is None:
            continue
        ind = r["indicator"]
        adjusted.append({"label": rules.indicators.labels[ind], "n": fmt_count(r["n"]),
                         "observed": rules.fmt(ind, r["observed"]) + ("*" if r["suppressed"] else ""),
                         "expected": rules.fmt(ind, r["expected"]),
                         "difference": fmt_signed(r["difference"], ind, rules),
                         "interval": f"{fmt_signed(r['ci_low'], ind, rules)} – {fmt_signed(r['ci_high'], ind, rules)}",
                         "position": casemix_position(r),
                         "cls": "unreliable" if r["suppressed"] else ""})
    missed = under_target(tid, bench, year, rules)
    hundred = all_at_100(tid, review, year)
    return {"year": year, "mix": mix, "adjusted": adjusted, "n_not_on_track": n_not_on_track,
            "under_target": missed, "under_target_text": UNDER_TARGET_TEXT if missed else None,
            "checklist": UNDER_TARGET_CHECKLIST if missed else [],
            "all_100": ({"text": ALL_100_TEXT, "n_complete": hundred["n_complete"]} if hundred else None)}


def casemix_by_unit(casemix_rows: list[dict]) -> dict[str, list[dict]]:
    """Case-mix rows per unit_id, in their order: each therapist's review reads its own."""
    by_unit: dict[str, list[dict]] = defaultdict(list)
    for r in casemix_rows:
        by_unit[r["unit_id"]].append(r)
    return dict(by_unit)


def caseload_flags(review: dict) -> list[str]:
    """The flags of a review as the package index lists them."""
    return ([review["under_target_text"]] if review["under_target_text"] else []) + \
        ([review["all_100"]["text"]] if review["all_100"] else [])


def as_run(info) -> dict[str, Any]:
    return {"run_id": info.run_id, "run_seq": info.run_seq,
            "published": f"{info.finished_at:%d-%m-%Y %H:%M} UTC" if info.finished_at else EMPTY,
            "generated": f"{dt.datetime.now(dt.timezone.utc):%d-%m-%Y %H:%M} UTC"}


# --- not on track: open episodes (docs/feedback.md) ----------------------------------------------------

def not_on_track_summary(row: dict | None, rules: Rules | None = None, *, min_n: int | None = None,
                         min_count: int | None = None) -> dict:
    """A published count of flagged open episodes (marts.not_on_track_counts) as the shared reports show it:
    never printed when the warehouse flags it suppressed."""
    min_n = rules.min_n if rules else min_n
    min_count = rules.min_count if rules else min_count
    if row is None:
        return {"text": EMPTY, "judged": EMPTY, "pct": EMPTY, "split": EMPTY, "cls": "", "title": "", "as_of": EMPTY}
    as_of = f"{row['as_of']:%d-%m-%Y}" if row.get("as_of") else EMPTY
    # Published NULL below min_count (0 included): "<5".
    judged = f"<{min_count}" if row.get("n_judged") is None else fmt_n(row["n_judged"], min_count)
    if _is_suppressed(row) or row.get("n_flagged") is None:
        reason = row.get("suppression_reason")
        title = "onderdrukt" + (": " + SUPPRESSION_REASONS.get(reason, reason).format(min_n=min_n) if reason else "")
        return {"text": SUPPRESSED_MARK, "judged": judged, "pct": EMPTY, "split": EMPTY, "cls": "suppressed",
                "title": title, "as_of": as_of}
    split = EMPTY
    if row.get("n_reliably_worse") is not None and row.get("n_above_expected_course") is not None:
        split = (f"{fmt_count(row['n_reliably_worse'])} slechter dan bij intake, "
                 f"{fmt_count(row['n_above_expected_course'])} boven het verwachte verloop")
    return {"text": fmt_count(row["n_flagged"]), "judged": judged, "pct": fmt_pct(row.get("pct_flagged")),
            "split": split, "cls": "", "title": "", "as_of": as_of}


def _course_bands(course_rows: list[dict]) -> dict[str, list[dict]]:
    """The expected course per intake band, as the trajectory chart draws it: per session bin its middle
    session and the lowest, 25th, median, 75th and highest of its percentiles (None where absent)."""
    by_cell: dict[tuple, dict] = defaultdict(dict)
    for r in course_rows:
        by_cell[(r["intake_band"], r["session_bin_from"], r["session_bin_to"])][r["percentile"]] = r["score"]
    bands: dict[str, list[dict]] = defaultdict(list)
    for (band, low, high), scores in sorted(by_cell.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if not scores or any(v is None for v in scores.values()):
            continue
        ps = sorted(scores)
        x = low if high is None and low == 0 else (low + high) / 2 if high is not None else low + 4
        bands[band].append({"x": x, "low": scores[ps[0]], "high": scores[ps[-1]], "median": scores.get(50),
                            "q1": scores.get(25), "q3": scores.get(75)})
    return bands


def not_on_track_context(flagged: list[dict], courses: list[dict], course_rows: list[dict],
                         therapists: list[dict], location: dict, concern: dict, rules: Rules, run: dict) -> dict:
    """The manager's page of one location's open episodes that are not on track, per therapist, each with
    its trajectory chart against the expected band. Episode ids only (never a client id)."""
    bands = _course_bands(course_rows)
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for c in courses:
        points[c["episode_id"]].append((float(c["session"]), float(c["score"])))
    labels_by_id = {t["therapist_id"]: therapist_label(t) for t in therapists}
    groups = []
    by_therapist: dict[str, list[dict]] = defaultdict(list)
    for e in flagged:
        by_therapist[e["therapist_id"]].append(e)
    for tid in sorted(by_therapist):
        episodes = []
        for e in sorted(by_therapist[tid], key=lambda e: e["episode_id"]):
            own = list(points.get(e["episode_id"], []))
            if e.get("latest_session") is not None and (float(e["latest_session"]), float(e["latest_score"])) not in own:
                own.append((float(e["latest_session"]), float(e["latest_score"])))  # session from sessions attended
            svg = charts.trajectory_chart(own, bands.get(e["intake_band"], []), e.get("rc_threshold"),
                                          title=f"Traject {e['episode_id']}: SCL-90 per zitting")
            band = EMPTY if e.get("expected_score") is None else (
                f"{fmt_number(e['expected_low'], 0)} – {fmt_number(e['expected_high'], 0)} "
                f"(mediaan {fmt_number(e['expected_score'], 0)})")
            episodes.append({
                "id": e["episode_id"], "start": f"{e['start_date']:%d-%m-%Y}" if e.get("start_date") else EMPTY,
                "diagnosis": labels.label(labels.CATEGORIES, e.get("diagnosis_group")) or EMPTY,
                "sessions": EMPTY if e.get("sessions_attended") is None else str(e["sessions_attended"]),
                "intake": fmt_number(e["pre_score"], 0), "band_label": e["intake_band"],
                "latest": fmt_number(e["latest_score"], 0),
                "latest_when": (f"zitting {e['latest_session']}" if e.get("latest_session") is not None else "zitting ?")
                + (f", {e['latest_administered_on']:%d-%m-%Y}" if e.get("latest_administered_on") else ""),
                "expected": band, "session_bin": e.get("session_bin") or EMPTY,
                "reason": NOT_ON_TRACK_REASONS.get(e["not_on_track_reason"], e["not_on_track_reason"]),
                "reason_code": e["not_on_track_reason"], "img": charts.data_uri(svg)})
        groups.append({"id": tid, "label": labels_by_id.get(tid, f"Behandelaar {tid}"), "episodes": episodes})
    return {"title": f"Niet op koers: {location['name']}", "location": location, "concern": concern,
            "groups": groups, "n_flagged": len(flagged), "rules": {"min_n": rules.min_n, "min_count": rules.min_count},
            "run": run}
