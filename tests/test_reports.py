"""The reports (issue 4 part 5): figures as in the warehouse, seed 001's figures in the C900 report,
the z colour scale, and privacy: no therapist in anything shared, each manager package its own location only.

One module-scoped build: synthetic deliveries with seed 001's concern (C900), the real nightly job,
then the reports asset (unless the nightly job already built the reports).
"""
from __future__ import annotations

import html as html_lib
import json
import math
import os
import re
import shutil
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from conftest import Pipeline
from html_tables import tables
from rom_pipeline.generate.cli import main as generate
from rom_pipeline.reports import build, build_reports, charts, labels
from rom_pipeline.reports import data as report_data
from rom_pipeline.reports.formatting import (
    dutch, fmt_by_unit, fmt_count, fmt_eur, fmt_n, fmt_number, fmt_pct, fmt_z, parse_dutch, z_colour_class,
)
from rom_pipeline.reports.pdf import render_pdf
from rom_pipeline.reports.views import n_label, z_cell

DATA_URI = re.compile(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+")
SVG = "{http://www.w3.org/2000/svg}"


# --- pure functions --------------------------------------------------------------------------------

@pytest.mark.parametrize("z, cls", [
    (-3.1, "z-pink-4"), (-1, "z-pink-1"), (0, "z-0"), (1, "z-yellow-1"), (3.1, "z-yellow-4"),
    (None, "z-none"), (float("nan"), "z-none"),
    (-3.0, "z-pink-3"), (3.0, "z-yellow-3"), (0.49, "z-0"), (-0.5, "z-pink-1"), (2.0, "z-yellow-2"),
])
def test_z_colour_class(z, cls):
    assert z_colour_class(z) == cls


def test_formats_are_dutch():
    """Issue 10 item 12: a point between thousands, a comma before decimals; expected strings by hand."""
    assert dutch(1234.5, 1) == "1.234,5" and dutch(1234567.891, 2) == "1.234.567,89" and dutch(999.95, 1) == "1.000,0"
    assert dutch(81.25, 1) == "81,3" and dutch(2.675, 2) == "2,68" and dutch(-0.05, 1) == "-0,1" and dutch(0.5) == "1"
    assert fmt_pct(29.6) == "29,6%" and fmt_pct(61.3308) == "61,3%" and fmt_pct(100) == "100,0%"
    assert fmt_eur(38605 / 13) == "€ 2.970"
    assert fmt_eur(1808010) == "€ 1.808.010"
    assert fmt_eur(-21069.4) == "€ -21.069"
    assert fmt_number(0.4100001, 2) == "0,41" and fmt_number(93.534, 2) == "93,53"
    # rounds to zero: no sign (documented in docs/reports.md)
    assert fmt_z(-0.04) == "0,0" and fmt_z(-0.26) == "-0,3" and fmt_number(-0.004, 2) == "0,00" and dutch(-0.4) == "0"
    assert fmt_count(1234) == "1.234" and fmt_count(1234567) == "1.234.567" and fmt_count(12) == "12"
    assert fmt_by_unit(61.33, "percent") == "61,3%" and fmt_by_unit(2969.6, "euro") == "€ 2.970"
    assert fmt_by_unit(1.5, "ratio") == "1,50"
    assert fmt_pct(None) == "" and fmt_eur(float("inf")) == ""
    assert fmt_n(4) == "<5" and fmt_n(5) == "5" and fmt_n(1500) == "1.500"
    assert n_label(3, 5) == "n < 5" and n_label(12, 5) == "n = 12"
    assert parse_dutch("1.234,5") == 1234.5 and parse_dutch("-0,3") == -0.3 and parse_dutch("29,6%") == 29.6
    assert fmt_indicator("pct_complete", 81.25) == "81,3%" and fmt_indicator("mean_satisfaction", 7.25) == "7,3"


def test_z_colour_follows_the_direction():
    """Issue 10 item 12: for a lower-is-better indicator a higher (worse) value is pink, not yellow."""
    assert z_cell(1.26, higher_is_better=False) == {"text": "1,3", "cls": "z-pink-1"}
    assert z_cell(1.26, higher_is_better=True) == {"text": "1,3", "cls": "z-yellow-1"}
    assert z_cell(-2.7, higher_is_better=False) == {"text": "-2,7", "cls": "z-yellow-3"}
    assert z_cell(1.26) == {"text": "1,3", "cls": "z-yellow-1"}   # not oriented: financial ratios
    assert z_cell(-0.04, higher_is_better=False) == {"text": "0,0", "cls": "z-0"}
    assert z_cell(None, higher_is_better=False) == {"text": "", "cls": "z-none"}


def test_funnel_limits_are_spiegelhalters():
    low, high = charts.funnel_limits(80.0, 40.0, 16, charts.Z_95, proportion=True)
    assert math.isclose(low, 80 - 1.959964 * 10) and math.isclose(high, min(100, 80 + 1.959964 * 10))
    assert charts.funnel_limits(99.0, 10.0, 1, charts.Z_998, proportion=True)[1] == 100.0


def _svg(text: str) -> ET.Element:
    root = ET.fromstring(text)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text")]


def test_spending_chart_is_svg_with_one_bar_per_reported_share():
    svg = charts.spending_chart(["a", "b"], [("2024", [10.0, None])], ("gemiddelde", [5.0, -2.0]))
    root = _svg(svg)
    # background + 2 legend boxes + 3 bars (the None share has none)
    assert len(root.findall(f"{SVG}rect")) == 1 + 2 + 3
    texts = _texts(root)
    assert "2024" in texts and "gemiddelde" in texts and "a" in texts and "b" in texts
    assert "10%" in texts and "-5%" in texts  # y axis from -5 to 10 around -2..10, labels with %
    assert charts.data_uri(svg).startswith("data:image/svg+xml;base64,")


def test_trend_chart_breaks_the_line_at_a_missing_value_and_draws_the_target():
    svg = charts.trend_chart(["2025 K1", "2025 K2", "2025 K3", "2025 K4"],
                             [charts.Line("Vestiging A", [50.0, 60.0, None, 70.5], True)],
                             title="Volledige scores", percent=True, target=80.0, target_label="target ≥ 80,0%",
                             y_range=(0, 100))
    root = _svg(svg)
    assert len(root.findall(f"{SVG}polyline")) == 1          # K1-K2; K4 stands alone (a gap at K3)
    assert len(root.findall(f"{SVG}circle")) == 3            # a dot per value
    target = [l for l in root.findall(f"{SVG}line") if l.get("stroke") == charts.TARGET]
    assert len(target) == 2                                  # the line and its legend sample
    texts = _texts(root)
    assert {"0%", "20%", "40%", "60%", "80%", "100%"} <= set(texts)
    assert "target ≥ 80,0%" in texts and "2025 K3" in texts and "Volledige scores" in texts


def test_funnel_chart_marks_the_unit_and_labels_limits_in_dutch():
    svg = charts.funnel_chart([charts.FunnelPoint("L1", 40, 72.5, True), charts.FunnelPoint("L2", 120, 80.0)],
                              centre=77.25, sd=41.9, proportion=True, title="Volledige scores, 2025")
    root = _svg(svg)
    circles = root.findall(f"{SVG}circle")
    assert [c.get("fill") for c in circles] == [charts.OTHERS, charts.HIGHLIGHT]  # the unit drawn last, on top
    assert len(root.findall(f"{SVG}polyline")) == 4  # 95% and 99.8%, lower and upper
    texts = _texts(root)
    assert "alle trajecten samen (77,3%)" in texts and "99,8%-grenzen" in texts and "L1" in texts


def test_difference_chart_draws_each_unit_with_its_interval_around_zero():
    svg = charts.difference_chart([charts.DifferencePoint("Organisatie", -5.0, -12.0, 2.0),
                                   charts.DifferencePoint("L1", 8.0, 1.0, 15.0, True)],
                                  title="Herstel: geobserveerd − verwacht", percent=True)
    root = _svg(svg)
    circles = root.findall(f"{SVG}circle")
    assert [c.get("fill") for c in circles] == [charts.OTHERS, charts.HIGHLIGHT]
    # the dots sit left and right of the zero line, in proportion to the differences
    zero = next(float(l.get("x1")) for l in root.findall(f"{SVG}line")
                if l.get("x1") == l.get("x2") and l.get("stroke") == "#444444")
    left, right = (float(c.get("cx")) for c in circles)
    assert left < zero < right and (right - zero) / (zero - left) == pytest.approx(8 / 5, rel=0.02)
    assert "0%" in _texts(root) and "L1" in _texts(root)


def test_nice_ticks():
    assert charts.nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert charts.nice_ticks(-2, 10) == [-5, 0, 5, 10]
    assert charts.nice_ticks(0, 1.15) == [0, 0.5, 1.0, 1.5]
    assert charts.nice_ticks(20, 55) == [20, 30, 40, 50, 60]


# --- the build -------------------------------------------------------------------------------------

# The default indicator catalogue as a reader of the reports sees it (rom_pipeline/parameters.yaml),
# written out by hand: the reports take it from the warehouse's config.indicator_catalogue.
LABELS = {
    "n_closed": "Aantal afgesloten trajecten",
    "pct_complete": "Complete scores SCL-90 (voor- en nameting)",
    "mean_improvement": "Gemiddeld percentage verbetering SCL-90",
    "pct_recovered": "Hersteld (betrouwbare verandering)",
    "pct_improved": "Verbeterd (betrouwbare verandering)",
    "pct_unchanged": "Onveranderd",
    "pct_deteriorated": "Verslechterd",
    "pct_dropout": "Drop-out",
    "mean_satisfaction": "Gemiddelde cliënttevredenheid (CQI, 0-10)",
    "pct_working_start": "Betaald werk bij aanvang",
    "pct_working_end": "Betaald werk bij afsluiting",
    "pct_rom_adherent": "ROM volgens protocol (SCL-90 om de 5 zittingen)",
    "mean_rom_adherence": "Afgenomen deel van de verwachte SCL-90-metingen",
    "pct_complete_hdrs": "HDRS (Hamilton Depressieschaal): complete voor- en nameting",
    "pct_recovered_sf36": "SF-36 (welbevinden, mentaal): hersteld",
}
ORDER = ["pct_complete", "mean_improvement", "pct_recovered", "pct_improved", "pct_unchanged",
         "pct_deteriorated", "pct_dropout", "mean_satisfaction", "pct_working_start", "pct_working_end",
         "pct_rom_adherent", "mean_rom_adherence", "pct_complete_hdrs", "pct_recovered_sf36"]
CHARTED = ["pct_complete", "mean_improvement", "pct_recovered", "pct_dropout"]
BREAKDOWN = ["pct_complete", "mean_improvement", "pct_dropout"]
LOWER_IS_BETTER = {"pct_unchanged", "pct_deteriorated", "pct_dropout"}


def fmt_indicator(indicator: str, value) -> str:
    """How the reports print a value of a default indicator: a count, one decimal with %, or one decimal."""
    if indicator == "n_closed":
        return fmt_count(value)
    return fmt_number(value, 1) if indicator == "mean_satisfaction" else fmt_pct(value)


class Built:
    def __init__(self, root: Path, data_dir: Path, run, materialisations):
        self.root, self.data_dir, self.run, self.materialisations = root, data_dir, run, materialisations

    def warehouse(self):
        return duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True)

    def work(self):
        return duckdb.connect(str(self.data_dir / "work.duckdb"), read_only=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    base = tmp_path_factory.mktemp("reports")
    exports, data = base / "exports", base / "data"
    assert generate(["--out", str(exports), "--concerns", "2", "--episodes", "700", "--seed", "11", "--no-items",
                     "--extra-reference-concerns", "2", "--include-seed-concern", "--quiet"]) == 0
    saved = {k: os.environ.get(k) for k in ("ROM_REPORTS_PDF", "ROM_REPORTS_WORKERS")}
    os.environ["ROM_REPORTS_PDF"] = "0"
    os.environ["ROM_REPORTS_WORKERS"] = "1"
    try:
        pipeline = Pipeline(exports, data)
        run = pipeline.run()
        assert run.success, "the nightly job failed"
        events = run.result.get_asset_materialization_events()
        if not (data / "reports").exists():  # the reports asset is not (yet) in the nightly job
            from rom_pipeline.defs.reports import ASSETS
            result = dg.materialize(ASSETS, resources={"workspace": pipeline.workspace})
            assert result.success
            events = result.get_asset_materialization_events()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    reports = [e.materialization for e in events if e.asset_key == dg.AssetKey(["reports", "benchmark_reports"])]
    assert len(reports) == 1
    return Built(data / "reports", data, run, reports)


def row(tabs, first_cell: str, table_title: str | None = None) -> list[tuple[str, str]]:
    """The row whose first cell starts with ``first_cell`` (in the table whose header starts with the title)."""
    for t in tabs:
        if table_title and not (t and t[0] and t[0][0][0].startswith(table_title)):
            continue
        for r in t:
            if r and r[0][0].startswith(first_cell):
                return r
    raise AssertionError(f"no row {first_cell!r}")


def test_seed_001_figures_in_the_c900_report(built):
    path = built.root / "shared" / "concerns" / "C900-2013.html"
    tabs = tables(path)
    growth = row(tabs, "Omzetstijging", "Financiële kengetallen")
    budget = row(tabs, "Gemiddeld budget per cliënt", "Financiële kengetallen")
    # columns: label, then (waarde, z-score, z groep) for 2011, 2012, 2013
    assert growth[7][0] == "61,3%"
    assert budget[1][0] == "€ 2.970"
    text = " ".join(path.read_text(encoding="utf-8").split())
    for section in ("Benchmarkrapport:", "Kengegevens", "Algemene informatie over het concern", "Bedrijfsopbrengsten",
                    "Benchmark financiële kengetallen", "Verdeling uitgaven", "Kwaliteit", "Kwaliteitsindicatoren",
                    "Bijlage 1", "Bijlage 2", "Disclaimer", "Stichting Samenwerkende Zorgboeren Zuid"):
        assert section in text, section
    assert "niet gebruikt worden om concerns te rangschikken" in text
    assert "mogen niet worden gebruikt om concerns te rangschikken" in text
    assert "data:image/svg+xml;base64," in text  # the spending chart, embedded


def _concern_files(built):
    return sorted((built.root / "shared" / "concerns").glob("*.html"))


def test_concern_reports_show_the_warehouse_figures(built):
    files = _concern_files(built)
    con = built.warehouse()
    min_group = int(float(dict(con.execute("SELECT name, value FROM config.parameters").fetchall())[
        "min_size_group_peers"]))
    expected = {(c, y) for c, y in con.execute(
        "SELECT concern_id, year FROM staging.annual_reports UNION SELECT concern_id, year FROM marts.concern_summary"
    ).fetchall()}
    assert {(f.stem.rsplit("-", 1)[0], int(f.stem.rsplit("-", 1)[1])) for f in files} == expected
    checked = 0
    for path in files:
        concern_id, year = path.stem.rsplit("-", 1)
        year = int(year)
        tabs = tables(path)
        header = next(t for t in tabs if t and t[0] and t[0][0][0] == "Financiële kengetallen")
        years = [int(c[0]) for c in header[0][1:]]
        assert years[-1] == year
        ratios = {(y, r): (v, z, u, zg, ng) for y, r, v, z, u, zg, ng in con.execute(
            "SELECT year, ratio, value, z, unit, z_size_group, n_size_peers FROM marts.financial_ratios "
            "WHERE concern_id = ?", [concern_id]).fetchall()}
        for code, text in labels.FINANCIAL_RATIOS + labels.SPENDING:
            cells = row(tabs, text, "Financiële kengetallen" if (code, text) in labels.FINANCIAL_RATIOS
                        else "Uitgavenverdeling")
            for i, y in enumerate(years):
                value, z, unit, z_group, n_group = ratios.get((y, code), (None,) * 5)
                # per year: waarde, z-score (all concerns), z groep (size group; "n.b." when too small)
                assert cells[1 + 3 * i][0] == fmt_by_unit(value, unit), (path.name, code, y)
                assert cells[2 + 3 * i][0] == fmt_z(z), (path.name, code, y)
                too_small = value is not None and z_group is None and n_group is not None and n_group < min_group
                assert cells[3 + 3 * i][0] == ("n.b." if too_small else fmt_z(z_group)), (path.name, code, y)
                checked += value is not None
        revenue = dict(con.execute("SELECT year, revenue_total FROM staging.annual_reports WHERE concern_id = ?",
                                   [concern_id]).fetchall())
        cells = row(tabs, "Totaal bedrijfsopbrengsten")
        assert [c[0] for c in cells[1:]] == [fmt_eur(revenue.get(y)) for y in years]
        summary = dict(((y, cl, pg), (z, n)) for y, cl, pg, z, n in con.execute(
            "SELECT year, cluster, peer_group, summary_z, n_indicators FROM marts.concern_summary "
            "WHERE concern_id = ?", [concern_id]).fetchall())
        for cluster, text in labels.CLUSTERS:
            cells = row(tabs, text, "Kwaliteit samenvattende indicator")
            for i, y in enumerate(years):
                n_all = summary.get((y, cluster, "all"), (None, None))[1]
                for offset, peer_group in ((1, "all"), (2, "size_group")):  # z-score, z groep
                    z, n = summary.get((y, cluster, peer_group), (None, None))
                    # scored against all concerns but on no indicator within the group: "n.b."
                    group_too_small = peer_group == "size_group" and n == 0 and bool(n_all)
                    assert cells[offset + 2 * i][0] == ("n.b." if group_too_small else fmt_z(z))
                    if n is not None:
                        assert f"op basis van {n} indicator" in cells[offset + 2 * i][1]
        indicator_rows = [r for t in tabs if t and t[0][0][0].startswith(f"Kwaliteit {year}, concern") for r in t[1:]]
        for name, value, peer_mean, z in con.execute(
                "SELECT indicator_name, value, peer_mean, z FROM marts.concern_benchmark "
                "WHERE concern_id = ? AND year = ? AND peer_group = 'all'", [concern_id, year]).fetchall():
            # names can repeat (seed 001 lists some twice): the figures must be on one of the rows of that name
            shown = [[c[0] for c in r[1:4]] for r in indicator_rows
                     if r[0][0].removesuffix(" (lager is beter)") == name]
            assert [fmt_number(value, 2), fmt_number(peer_mean, 2), fmt_z(z)] in shown, (path.name, name)
    con.close()
    assert checked > 100


def test_z_cells_carry_their_colour(built):
    html = (built.root / "shared" / "concerns" / "C900-2013.html").read_text(encoding="utf-8")
    cells = re.findall(r'<td class="num (z-[a-z0-9-]+)">([^<]*)</td>', html)
    assert cells
    for cls, text in cells:  # financial ratios: not oriented
        assert cls == z_colour_class(parse_dutch(text) if text else None), (cls, text)


def test_lower_is_better_indicators_are_coloured_by_direction(built):
    """Issue 10 item 12: in the indicator tables a lower-is-better row's colour is that of the negated z."""
    checked = {True: 0, False: 0}
    for path in _concern_files(built):
        html = path.read_text(encoding="utf-8")
        for name, lower, cls, text in re.findall(
                r'<tr><td class="label">([^<]*)( <span class="lower">\(lager is beter\)</span>)?</td>\s*'
                r'<td class="num">[^<]*</td><td class="num">[^<]*</td><td class="num (z-[a-z0-9-]+)">([^<]*)</td>', html):
            if not text:
                continue
            z = parse_dutch(text)
            assert cls == z_colour_class(-z if lower else z), (path.name, name, text, cls)
            checked[bool(lower)] += abs(z) >= 0.5
    assert checked[True] > 0 and checked[False] > 0, checked


def _locations(built):
    con = built.warehouse()
    rows = con.execute("SELECT concern_id, location_id, location_name FROM staging.locations").fetchall()
    con.close()
    return rows


def test_location_reports_show_the_warehouse_figures(built):
    con = built.warehouse()
    params = dict(con.execute("SELECT name, value FROM config.parameters").fetchall())
    min_count = int(float(params["min_count_published"]))
    locations = _locations(built)
    assert {p.stem for p in (built.root / "shared" / "locations").glob("*.html")} == \
        {f"{c}-{l}" for c, l, _ in locations}
    shown = 0
    for concern_id, location_id, name in locations:
        path = built.root / "shared" / "locations" / f"{concern_id}-{location_id}.html"
        tabs = tables(path)
        assert name in html_lib.unescape(path.read_text(encoding="utf-8"))
        header = next(t for t in tabs if t and t[0][0][0].startswith("Indicator (afgesloten"))
        years = [c[0].rstrip("*") for c in header[0][1:]]
        figures = {(p, i): (v, n, s) for p, i, v, n, s in con.execute(
            "SELECT period, indicator, value, n, suppressed FROM marts.indicators WHERE concern_id = ? "
            "AND level = 'location' AND unit_id = ? AND period_type = 'year'", [concern_id, location_id]).fetchall()}
        text = " ".join(html_lib.unescape(path.read_text(encoding="utf-8")).split())
        for indicator in ORDER:
            try:
                cells = row(tabs, LABELS[indicator], "Indicator (afgesloten")
            except AssertionError:
                # An indicator without a target or chart of which no figure is shown (location or organisation,
                # any year) is named once under the table instead of a row of dashes.
                assert indicator not in CHARTED and LABELS[indicator] in text.split("Niet in de tabel, omdat", 1)[1]
                assert all(figures.get((y, indicator), (None, None, True))[2] in (True, None) or
                           figures[(y, indicator)][0] is None for y in years), (path.name, indicator)
                continue
            for i, y in enumerate(years):
                value, n, suppressed = figures.get((y, indicator), (None, None, None))
                main, small = cells[1 + 2 * i]
                if suppressed or value is None:
                    assert main in ("–", ""), (path.name, indicator, y, main)
                else:
                    assert main == fmt_indicator(indicator, value), (path.name, indicator, y)
                    assert n_label(n, min_count) in small
                    shown += 1
        # funnel tables: units by name (never by rank), values and limits as in marts.internal_benchmark
        names = dict(con.execute("SELECT location_id, location_name FROM staging.locations WHERE concern_id = ?",
                                 [concern_id]).fetchall())
        funnel_tables = [t for t in tabs if t and t[0][0][0] == "Vestiging (op naam)"]
        for t in funnel_tables:
            listed = [r[0][0] for r in t[1:]]
            assert listed == sorted(listed, key=lambda s: (s.rsplit(" (", 1)[0].casefold(), s))
            assert {s.rsplit(" (", 1)[1].rstrip(")") for s in listed} == set(names)
    con.close()
    assert shown > 20


def test_funnel_tables_match_internal_benchmark(built):
    con = built.warehouse()
    concern_id, location_id, _ = sorted(_locations(built))[0]
    path = built.root / "shared" / "locations" / f"{concern_id}-{location_id}.html"
    html = path.read_text(encoding="utf-8")
    year = re.search(r"Funnelplots (\d{4})", html).group(1)
    tabs = [t for t in tables(path) if t and t[0][0][0] == "Vestiging (op naam)"]
    assert len(tabs) == len(CHARTED)
    for indicator, t in zip(CHARTED, tabs):
        rows = {r[0][0].rsplit(" (", 1)[1].rstrip(")"): r for r in t[1:]}
        for unit, value, low, high, suppressed in con.execute(
                "SELECT unit_id, value, funnel_95_low, funnel_95_high, suppressed FROM marts.internal_benchmark "
                "WHERE concern_id = ? AND level = 'location' AND period_type = 'year' AND period = ? "
                "AND indicator = ?", [concern_id, year, indicator]).fetchall():
            r = rows[unit]
            if suppressed or value is None:
                assert r[2][0] == "–"
            else:
                assert r[2][0] == fmt_indicator(indicator, value)
                assert r[3][0] == f"{fmt_indicator(indicator, low)} – {fmt_indicator(indicator, high)}"
    con.close()


def test_casemix_tables_show_the_warehouse_figures(built):
    """Location report: observed, expected and difference per unit as marts.casemix_adjusted publishes them;
    a suppressed figure shows the mark only."""
    con = built.warehouse()
    concern_id, location_id, _ = sorted(_locations(built))[0]
    path = built.root / "shared" / "locations" / f"{concern_id}-{location_id}.html"
    html = path.read_text(encoding="utf-8")
    year = re.search(r"Gecorrigeerd voor casemix (\d{4})", html).group(1)
    tabs = [t for t in tables(path) if t and t[0][0][0] == "Eenheid (op naam)"]
    published = con.execute("""SELECT level, unit_id, indicator, n, observed, expected, difference, suppressed
                               FROM marts.casemix_adjusted WHERE concern_id = ? AND period_type = 'year'
                               AND period = ? AND indicator IN ('mean_improvement', 'pct_recovered',
                               'pct_deteriorated') ORDER BY indicator""", [concern_id, year]).fetchall()
    assert published and tabs
    by_indicator = dict(zip(["mean_improvement", "pct_recovered", "pct_deteriorated"], tabs))
    checked = 0
    for level, unit, indicator, n, observed, expected, difference, suppressed in published:
        t = by_indicator[indicator]
        first = "(organisatie)" if level == "concern" else f"({unit})"
        [r] = [r for r in t[1:] if r[0][0].endswith(first)]
        if suppressed:
            assert (r[2][0], r[3][0], r[4][0]) == ("–", "–", "–")
        else:
            assert r[2][0] == fmt_indicator(indicator, observed) and r[3][0] == fmt_indicator(indicator, expected)
            sign = "+" if difference > 0 else "−" if difference < 0 else ""
            assert r[4][0] == sign + fmt_indicator(indicator, abs(difference))
            checked += 1
    assert checked > 0
    # never a therapist: the shared report reads the warehouse, which has none
    assert con.execute("SELECT count(*) FROM marts.casemix_adjusted WHERE level = 'therapist'").fetchone()[0] == 0
    con.close()


# --- privacy ---------------------------------------------------------------------------------------

def _therapists(built) -> list[tuple[str, str, str]]:
    con = built.work()
    rows = con.execute("SELECT concern_id, location_id, therapist_id FROM staging.therapists").fetchall()
    con.close()
    assert rows
    return rows


def _visible_text(path: Path) -> str:
    """The file with its embedded charts decoded (SVG: their labels are text a reader sees)."""
    import base64
    return DATA_URI.sub(lambda m: base64.b64decode(m.group(0).split(",", 1)[1]).decode("utf-8"),
                        path.read_text(encoding="utf-8"))


def _mentions(text: str, ids) -> set[str]:
    return {i for i in ids if re.search(rf"(?<![A-Za-z0-9_]){re.escape(i)}(?![A-Za-z0-9_])", text)}


def test_no_therapist_in_any_shared_report(built):
    ids = {t for _, _, t in _therapists(built)}
    shared = [p for p in (built.root / "shared").rglob("*") if p.is_file()]
    assert len(shared) > 10
    for path in shared:
        if path.suffix != ".html":
            continue
        text = _visible_text(path)
        assert not _mentions(text, ids), (path.name, _mentions(text, ids))
        assert "behandelaar-" not in text and "Behandelaar T" not in text


def test_shared_case_mix_shows_the_published_suppression(built):
    """Issue 9 part 3: the report reads the warehouse's ``suppressed`` flag (no re-derivation): a breakdown
    cell is '–' exactly where marts.indicator_breakdowns says suppressed, with the reason as its title;
    a trainee / experienced category on too few therapists is suppressed by the SQL, and shows so."""
    con = built.warehouse()
    rows = con.execute("""
        SELECT concern_id, unit_id, period, dimension, category, indicator, value, suppressed, suppression_reason
        FROM marts.indicator_breakdowns WHERE level = 'location' AND period_type = 'year'""").fetchall()
    con.close()
    published = {r[:6]: r[6:] for r in rows}
    by_label = {labels.label(labels.CATEGORIES, r[4]): r[4] for r in rows}
    dims = dict((text, code) for code, text in labels.BREAKDOWN_DIMENSIONS)
    checked, therapist_reason = 0, 0
    for concern_id, location_id, _ in _locations(built):
        before = therapist_reason
        path = built.root / "shared" / "locations" / f"{concern_id}-{location_id}.html"
        html = path.read_text(encoding="utf-8")
        year = re.search(r"Casemix (\d{4})", html)
        if not year:
            continue
        section = html.split('<h2 id="casemix">', 1)[1].split("<h2", 1)[0]  # the breakdowns' own section
        headings = re.findall(r"<h3>([^<]*)</h3>\s*<table>", section)
        case_mix = [t for t in tables(path) if t and t[0][0][0] == "Categorie"]
        assert len(headings) >= len(case_mix)
        for heading, t in zip(headings[-len(case_mix):], case_mix):
            dimension = dims[html_lib.unescape(heading)]
            for r in t[2:]:
                category = by_label[r[0][0]]
                for i, indicator in enumerate(BREAKDOWN):
                    value, suppressed, reason = published.get(
                        (concern_id, location_id, year.group(1), dimension, category, indicator), (None, None, None))
                    main = r[1 + 2 * i][0]
                    if suppressed:
                        assert main == "–", (path.name, dimension, category, indicator, main)
                        therapist_reason += reason == "therapists_below_min"
                    elif value is not None:
                        assert main == fmt_indicator(indicator, value), (path.name, dimension, category, indicator)
                    checked += 1
        if therapist_reason > before:  # the reason, in Dutch, as the suppressed cell's title
            assert re.search(r'class="num suppressed" title="onderdrukt: een categorie rust op (te weinig|één) '
                             r'behandelaar', html), path.name
    assert checked > 50
    assert therapist_reason > 0, "the sample should have a trainee / experienced category on too few therapists"


def test_the_warehouse_holds_no_therapist_level_figure(built):
    con = built.warehouse()
    for table in ("marts.indicators", "marts.internal_benchmark"):
        assert con.execute(f"SELECT count(*) FROM {table} WHERE level = 'therapist'").fetchone()[0] == 0, table
    assert con.execute("SELECT count(therapist_id) FROM marts.episode_outcomes").fetchone()[0] == 0
    con.close()


# Where a therapist id may stand in the shared warehouse: the list of who works where (no result)
# and the quarantined rows as delivered (kept for audit; no outcome joins to them).
THERAPIST_ID_ALLOWED_IN = {"staging.therapists.therapist_id", "audit.quarantine.raw_row"}


def test_the_warehouse_holds_no_therapist_id_next_to_results(built):
    """No table from which a therapist's results can be computed names the therapist."""
    ids = {t for _, _, t in _therapists(built)}
    con = built.warehouse()
    found = set()
    for schema, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND data_type = 'VARCHAR'").fetchall():
        hits = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" IN '
                           f'(SELECT unnest(?::VARCHAR[]))', [sorted(ids)]).fetchone()[0]
        if hits:
            found.add(f"{schema}.{table}.{column}")
    con.close()
    assert "staging.therapists.therapist_id" in found  # the scan does find ids where they are
    assert found <= THERAPIST_ID_ALLOWED_IN, found - THERAPIST_ID_ALLOWED_IN


def test_each_manager_package_holds_its_own_therapists_only(built):
    therapists = _therapists(built)
    packages = sorted(p for p in (built.root / "managers").iterdir() if p.is_dir())
    assert {p.name for p in packages} == {f"{c}-{l}" for c, l, _ in _locations(built)}
    for package in packages:
        concern_id, location_id = package.name.split("-", 1)
        own = {t for c, l, t in therapists if (c, l) == (concern_id, location_id)}
        others = {t for c, l, t in therapists if (c, l) != (concern_id, location_id)} - own
        pages = {p.name for p in package.glob("behandelaar-*.html")}
        assert pages == {f"behandelaar-{t}.html" for t in own}
        assert (package / "index.html").is_file() and (package / "vestiging.html").is_file()
        for path in package.glob("*.html"):
            text = _visible_text(path)
            assert not _mentions(text, others), (package.name, path.name, _mentions(text, others))
        assert (package / "vestiging.html").read_bytes() == \
            (built.root / "shared" / "locations" / f"{package.name}.html").read_bytes()
    assert oct((built.root / "managers").stat().st_mode & 0o777) == "0o700"


def test_the_manager_source_reads_therapist_casemix_from_the_work_database(built):
    """The caseload review (issue 12 part 5) reads each therapist's adjusted figures from the work database:
    every therapist row of marts.casemix_adjusted, suppressed ones flagged rather than hidden."""
    from rom_pipeline.reports.data import ManagerSource

    concern_id = sorted(_locations(built))[0][0]
    work = built.work()
    expected = work.execute("SELECT count(*), count(*) FILTER (WHERE suppressed) FROM marts.casemix_adjusted "
                            "WHERE concern_id = ? AND level = 'therapist'", [concern_id]).fetchone()
    work.close()
    source = ManagerSource(built.data_dir / "work.duckdb")
    try:
        rows = source.therapist_casemix(concern_id)
    finally:
        source.close()
    assert len(rows) == expected[0] > 0 and sum(r["suppressed"] for r in rows) == expected[1]
    assert {r["level"] for r in rows} == {"therapist"}
    assert any(r["suppressed"] and r["observed"] is not None for r in rows)  # kept, for the manager's view


def test_therapist_pages_show_unreliable_figures_flagged(built):
    con = built.work()
    row_ = con.execute("""
        SELECT b.concern_id, t.location_id, b.unit_id, b.period, b.indicator, b.value
        FROM marts.internal_benchmark b JOIN staging.therapists t
          ON t.concern_id = b.concern_id AND t.therapist_id = b.unit_id
        WHERE b.level = 'therapist' AND b.period_type = 'year' AND b.suppressed AND b.value IS NOT NULL
          AND b.indicator = 'pct_complete'
        ORDER BY ALL LIMIT 1""").fetchone()
    con.close()
    assert row_ is not None
    concern_id, location_id, therapist_id, period, indicator, value = row_
    page = built.root / "managers" / f"{concern_id}-{location_id}" / f"behandelaar-{therapist_id}.html"
    cells = row(tables(page), LABELS[indicator])
    assert any(main == fmt_indicator(indicator, value) + "*" for main, _ in cells)
    # an unreliable z keeps its colour and is marked besides (issue 10 item 12): no plain "unreliable" tint
    html = page.read_text(encoding="utf-8")
    by_label = {html_lib.escape(text, quote=False): code for code, text in LABELS.items()}
    marked = 0
    for tr in re.findall(r"<tr>.*?</tr>", html, re.S):
        label = re.search(r'<td class="label">([^<]*)', tr)
        if not label or label.group(1).strip() not in by_label:
            continue
        code = by_label[label.group(1).strip()]
        for cls, text in re.findall(r'<td class="num (z-[a-z0-9-]+) unreliable-mark" title="onbetrouwbaar: minder '
                                    r'dan \d+ trajecten">([^<]*)\*</td>', tr):
            z = parse_dutch(text)
            assert cls == z_colour_class(-z if code in LOWER_IS_BETTER else z), (code, text, cls)
            marked += 1
    assert marked, "an unreliable z-score, marked"


def test_the_index_lists_every_shared_report(built):
    html = (built.root / "shared" / "index.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="([^"]+)"', html))
    files = {p.relative_to(built.root / "shared").as_posix()
             for p in (built.root / "shared").rglob("*.html") if p.name != "index.html"}
    assert files and files <= links
    assert not any(link.startswith("../managers") or "managers/" in link for link in links)


def test_materialisation_metadata_counts_files_and_names_no_therapist(built):
    ids = {t for _, _, t in _therapists(built)}
    metadata = built.materialisations[0].metadata
    assert metadata["files"].value == sum(1 for p in built.root.rglob("*") if p.is_file()
                                          and p.name not in (build.PAGES_MANIFEST, build.BUILT_FROM))
    assert metadata["concern_reports"].value == len(list((built.root / "shared" / "concerns").glob("*.html")))
    assert not _mentions(str(metadata), ids)


# --- swap, failure, PDF ----------------------------------------------------------------------------

def test_reports_are_swapped_in_whole(built, tmp_path):
    link = built.root
    assert link.is_symlink() and link.resolve().parent.name == ".reports"

    # A failed build leaves the published reports as they were and no half-built folder.
    before = link.resolve()
    with pytest.raises(FileNotFoundError):
        build_reports(built.data_dir / "missing.duckdb", built.data_dir / "work.duckdb", built.data_dir, pdf=False,
                      log=lambda m: None)
    assert link.resolve() == before
    assert not list((built.data_dir / ".reports").glob("*.building"))

    # A work database that moved on after the publish (a later run failed) is not mixed with the warehouse.
    data = tmp_path / "moved_on"
    data.mkdir()
    for name in ("warehouse.duckdb", "work.duckdb"):
        shutil.copy(built.data_dir / name, data / name)
    con = duckdb.connect(str(data / "work.duckdb"))
    con.execute("INSERT INTO audit.runs SELECT * REPLACE ('later-failed-run' AS run_id, run_seq + 1 AS run_seq, "
                "'failed' AS status) FROM audit.runs ORDER BY run_seq DESC LIMIT 1")
    con.close()
    with pytest.raises(RuntimeError, match="refusing to mix"):
        build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=False, log=lambda m: None)
    assert not (data / "reports").exists() and not list((data / ".reports").iterdir())

    # The swap: one rename of a symlink; a real folder in the way is moved aside; the previous
    # version stays (a reader may be in it), older ones go.
    versions = tmp_path / ".reports"
    (tmp_path / "reports").mkdir()
    for name in ("20260101T000000-1", "20260102T000000-1", "20260103T000000-1"):
        (versions / name).mkdir(parents=True)
        (versions / name / "marker").write_text(name)
        build._swap_link(tmp_path / "reports", versions / name)
        build._prune(versions, keep=versions / name, current_target=tmp_path / "reports")
        assert (tmp_path / "reports" / "marker").read_text() == name
    left = sorted(p.name for p in versions.iterdir())
    assert left == ["20260102T000000-1", "20260103T000000-1"]


def _square(x: float) -> float:
    return x * x


def test_rendering_tasks_can_run_in_worker_processes():
    assert build._run_tasks([(_square, 2.0), (_square, 3.0)], workers=2) == [4.0, 9.0]
    assert build._run_tasks([(_square, 2.0), (_square, 3.0)], workers=1) == [4.0, 9.0]


def _pdf_streams(pdf: bytes) -> list[bytes]:
    """A PDF's streams, decompressed where they are (zlib)."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            out.append(stream)
    return out


def _pdf_text(pdf: bytes) -> str:
    """The text operands of a PDF's content streams, joined."""
    return " ".join(m.decode("cp1252") for data in _pdf_streams(pdf)
                    for m in re.findall(rb"\((.*?)(?<!\\)\) ?Tj", data))


def test_a_concern_report_becomes_an_a4_pdf_without_a_browser(built, tmp_path, monkeypatch):
    """Issue 11 part 3: PDFs everywhere (fpdf2, from the project's own dependencies; this runs in CI)."""
    monkeypatch.setenv("PATH", "/nonexistent")  # no chromium, no poppler: the PDF needs neither
    html = (built.root / "shared" / "concerns" / "C900-2013.html").read_text(encoding="utf-8")
    pdf = render_pdf(html, tmp_path / "C900-2013.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type /Page\b", pdf)) >= 3
    assert b"/MediaBox [0 0 595.28 841.89]" in pdf  # A4 in points
    text = _pdf_text(pdf)
    for expected in ("Stichting Samenwerkende Zorgboeren Zuid", "Financiële kengetallen", "Omzetstijging", "61,3%",
                     "€ 2.970", "Disclaimer", "Bijlage 2"):
        assert expected in text, expected
    assert "data:image" not in text
    drawn = b"\n".join(_pdf_streams(pdf))
    assert len(re.findall(rb" re\b", drawn)) > 100  # table cells (and bars) as rectangles
    assert "Loonkosten" in text and "% van de bedrijfsopbrengsten" in text  # the spending chart's own labels


def test_reports_are_rendered_again_only_where_their_data_changed(built, tmp_path):
    """Issue 11 part 3: a second build with nothing new links every page from the previous version; a change
    in one concern's figures renders that concern's pages (and the benchmark reports it appears in) again."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("warehouse.duckdb", "work.duckdb"):
        shutil.copy(built.data_dir / name, data / name)
    first = build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=True, log=lambda m: None)
    assert first.reused_tasks == 0 and first.pdf_files == first.concern_reports > 0
    second = build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=True, log=lambda m: None)
    assert second.rendered_tasks == 0 and second.reused_tasks == first.rendered_tasks
    assert second.version_dir != first.version_dir and (data / "reports").resolve() == second.version_dir
    page = "shared/locations/" + sorted(p.name for p in (first.version_dir / "shared" / "locations").iterdir())[0]
    assert os.path.samefile(first.version_dir / page, second.version_dir / page)  # linked, not rendered
    assert sorted(p.relative_to(second.version_dir).as_posix() for p in second.version_dir.rglob("*") if p.is_file()) \
        == sorted(p.relative_to(first.version_dir).as_posix() for p in first.version_dir.rglob("*") if p.is_file())

    # One location's figure changes: that concern's location task runs again, the other concern's does not.
    con = duckdb.connect(str(data / "warehouse.duckdb"))
    concern_id, unit_id, period = con.execute("""
        SELECT concern_id, unit_id, period FROM marts.indicators WHERE level = 'location' AND period_type = 'year'
          AND indicator = 'pct_complete' AND NOT suppressed ORDER BY ALL LIMIT 1""").fetchone()
    con.execute("UPDATE marts.indicators SET value = 12.34 WHERE concern_id = ? AND level = 'location' "
                "AND unit_id = ? AND period = ? AND indicator = 'pct_complete'", [concern_id, unit_id, period])
    con.close()
    third = build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=True, log=lambda m: None)
    assert third.rendered_tasks == 1, third
    changed = third.version_dir / "shared" / "locations" / f"{concern_id}-{unit_id}.html"
    assert "12,3%" in changed.read_text(encoding="utf-8")
    others = [p for p in (third.version_dir / "shared" / "locations").iterdir() if not p.name.startswith(concern_id)]
    assert others and all(os.path.samefile(p, second.version_dir / "shared" / "locations" / p.name) for p in others)

    # A wobble in the last bits of the therapists' figures (another summation order) is not a change ...
    con = duckdb.connect(str(data / "work.duckdb"))
    con.execute("UPDATE marts.internal_benchmark SET value = value * (1 + 1e-13) WHERE level = 'therapist'")
    con.close()
    fourth = build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=True, log=lambda m: None)
    assert fourth.rendered_tasks == 0, fourth
    # ... a therapist's figure that moves is, in the work database too: its concern's packages are rendered again.
    con = duckdb.connect(str(data / "work.duckdb"))
    concern_id, unit_id = con.execute("""
        SELECT concern_id, unit_id FROM marts.internal_benchmark WHERE level = 'therapist' AND period_type = 'year'
          AND value IS NOT NULL ORDER BY ALL LIMIT 1""").fetchone()
    con.execute("UPDATE marts.internal_benchmark SET value = value + 1 WHERE concern_id = ? AND level = 'therapist' "
                "AND unit_id = ? AND period_type = 'year'", [concern_id, unit_id])
    con.close()
    fifth = build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=True, log=lambda m: None)
    assert fifth.rendered_tasks == 1, fifth
    manifest = json.loads((fifth.version_dir / build.PAGES_MANIFEST).read_text(encoding="utf-8"))
    assert manifest[f"locations:{concern_id}"]["digest"] != json.loads(
        (fourth.version_dir / build.PAGES_MANIFEST).read_text(encoding="utf-8"))[f"locations:{concern_id}"]["digest"]


def test_a_query_results_fingerprint_ignores_row_order_and_float_wobble():
    """The fingerprint a task's digest is made of (computed by DuckDB): rows in another order or a float's last
    bits give the same one; a changed value, an added row or another query do not."""
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS src")
    con.execute("CREATE TABLE src.t AS SELECT * FROM (VALUES ('a', 1, 0.1 + 0.2, DATE '2025-01-01'), "
                "('b', 2, NULL, NULL), ('c', NULL, 1e300, DATE '2025-02-01')) AS v(k, i, x, d)")

    def fingerprint(sql, params=None):
        with report_data.recording_reads() as found:
            report_data._rows(con, sql, params)
        return found

    base = fingerprint("SELECT k, i, x, d FROM t ORDER BY k")
    assert len(base) == 1
    assert fingerprint("SELECT k, i, x, d FROM t ORDER BY k") == base
    reordered = fingerprint("SELECT k, i, x, d FROM t ORDER BY k DESC")
    assert reordered[0].split(":")[1:] == base[0].split(":")[1:]  # same rows: only the query text differs
    con.execute("UPDATE src.t SET x = 0.3 WHERE k = 'a'")  # 0.1 + 0.2 = 0.30000000000000004
    assert fingerprint("SELECT k, i, x, d FROM t ORDER BY k") == base
    con.execute("UPDATE src.t SET x = 0.3001 WHERE k = 'a'")
    assert fingerprint("SELECT k, i, x, d FROM t ORDER BY k") != base
    con.execute("UPDATE src.t SET x = 0.3 WHERE k = 'a'")
    con.execute("INSERT INTO src.t VALUES ('d', 4, 0.5, NULL)")
    assert fingerprint("SELECT k, i, x, d FROM t ORDER BY k") != base
    assert fingerprint("SELECT k FROM t WHERE i = ?", [4]) != fingerprint("SELECT k FROM t WHERE i = ?", [2])
    assert fingerprint("SELECT k FROM t WHERE false")[0].split(":")[1:] == ["0", "0" * 16]




# --- not on track (docs/feedback.md): episodes in the manager package, counts in the shared reports ------

def test_flagged_open_episodes_are_in_their_managers_package_only(built):
    """Every flagged open episode appears, with its reason, latest and intake score, on the niet-op-koers page
    of its therapist's location, under its therapist, with a trajectory chart; no shared report names it."""
    con = built.work()
    flagged = con.execute("""
        SELECT n.concern_id, t.location_id, n.therapist_id, n.episode_id, n.not_on_track_reason,
               n.latest_score, n.pre_score
        FROM marts.not_on_track AS n
        JOIN staging.therapists AS t ON t.concern_id = n.concern_id AND t.therapist_id = n.therapist_id
        WHERE n.not_on_track""").fetchall()
    judged = con.execute("SELECT count(*) FROM marts.not_on_track").fetchone()[0]
    con.close()
    assert flagged and judged > len(flagged)
    reasons = {"reliably_worse": "betrouwbaar slechter dan bij de intake",
               "above_expected_course": "boven het verwachte verloop (mediaan + betrouwbare verandering)"}
    for concern_id, location_id, therapist_id, episode_id, reason, latest, pre in flagged:
        page = built.root / "managers" / f"{concern_id}-{location_id}" / "niet-op-koers.html"
        found = [r for t in tables(page) for r in t if r and r[0][0] == episode_id]
        assert len(found) == 1, (page, episode_id)
        cells = found[0]
        assert cells[4][0] == fmt_number(pre, 0) and cells[5][0] == fmt_number(latest, 0)
        assert cells[7][0] == reasons[reason]
        text = _visible_text(page)
        assert f"Traject {episode_id}: SCL-90 per zitting" in text  # the chart's title
        assert f"Behandelaar {therapist_id}" in text
    shared_text = "\n".join(_visible_text(p) for p in (built.root / "shared").rglob("*.html"))
    assert not _mentions(shared_text, {e for *_, e, _, _, _ in flagged})
    index = built.root / "managers" / f"{flagged[0][0]}-{flagged[0][1]}" / "index.html"
    assert "niet-op-koers.html" in index.read_text(encoding="utf-8")


def test_shared_location_report_shows_the_published_count_only(built):
    con = built.warehouse()
    published = {(c, u): (n_judged, n_flagged, suppressed) for c, u, n_judged, n_flagged, suppressed in con.execute(
        "SELECT concern_id, unit_id, n_judged, n_flagged, suppressed FROM marts.not_on_track_counts "
        "WHERE level = 'location'").fetchall()}
    names = {(c, l): n for c, l, n in _locations(built)}
    con.close()
    assert any(s for *_, s in published.values()) and any(not s for *_, s in published.values())
    for (concern_id, location_id), (n_judged, n_flagged, suppressed) in published.items():
        page = built.root / "shared" / "locations" / f"{concern_id}-{location_id}.html"
        section = [t for t in tables(page) if t and t[0] and len(t[0]) > 1 and t[0][1][0] == "open trajecten beoordeeld"]
        assert len(section) == 1, page
        cells = row(section, names[(concern_id, location_id)])
        assert cells[2][0] == ("–" if suppressed else fmt_count(n_flagged)), (page, cells)
        assert cells[1][0] == (f"<5" if n_judged is None else fmt_count(n_judged))


def test_the_caseload_review_is_in_the_manager_packages_only(built):
    """Issue 12 part 5: each package index has a caseload-review column whose flags are exactly those of its
    therapists by ground truth read from the episodes and figures (not from marts.caseload_review): under a
    catalogue target in the package's year on at least min_n episodes, and all of at least min_n complete
    episodes at 100% improvement. Neither flag, nor any therapist row, reaches the shared reports, the
    published warehouse or the CSV export."""
    con = built.work()
    min_n = int(float(dict(con.execute("SELECT name, value FROM config.parameters").fetchall())["min_n"]))
    under = {(c, t, y) for c, t, y in con.execute("""
        SELECT i.concern_id, i.unit_id, i.period FROM marts.indicators AS i
        JOIN config.indicator_catalogue AS k ON k.indicator = i.indicator AND k.target IS NOT NULL
        WHERE i.level = 'therapist' AND i.period_type = 'year' AND i.aggregation = 'episodes'
          AND NOT i.target_met AND i.n >= ?""", [min_n]).fetchall()}
    all_100 = {(c, t, y) for c, t, y in con.execute("""
        SELECT concern_id, therapist_id, strftime(end_date, '%Y') FROM marts.episode_outcomes
        WHERE is_closed AND has_complete_scores
        GROUP BY ALL HAVING count(*) >= ? AND bool_and(pct_improvement = 100)""", [min_n]).fetchall()}
    con.close()
    seen_under = 0
    for concern_id, location_id, _ in _locations(built):
        index = built.root / "managers" / f"{concern_id}-{location_id}" / "index.html"
        html = index.read_text(encoding="utf-8")
        year = re.search(r"Behandelaars van deze vestiging, (\d{4})", html)
        tabs = tables(index)
        therapist_table = [t for t in tabs if t and t[0][0][0] == "Behandelaar"][0]
        assert therapist_table[0][-1][0] == "caseloadbespreking"
        for r in therapist_table[1:]:
            tid = r[0][0].split(" ")[1]
            flags = r[-1][0]
            key = (concern_id, tid, year.group(1) if year else None)
            assert ("bespreken: hele caseload doornemen" in flags) == (key in under), key
            assert ("gesprek: caseload mogelijk te licht" in flags) == (key in all_100), key
            seen_under += key in under
            page = index.with_name(f"behandelaar-{tid}.html").read_text(encoding="utf-8")
            assert "Caseloadbespreking" in page and 'href="niet-op-koers.html"' in page
            if key in under:
                assert "geen veld voor een overdracht" in page and "supervisie" in page
    assert seen_under, "a generated therapist under target"
    for path in (built.root / "shared").rglob("*.html"):
        text = path.read_text(encoding="utf-8").casefold()
        for phrase in ("caseloadbespreking", "hele caseload doornemen", "caseload mogelijk te licht"):
            assert phrase not in text, (path, phrase)
    wh = built.warehouse()
    assert wh.execute("SELECT count(*) FROM marts.caseload_review").fetchone()[0] > 0
    assert wh.execute("SELECT count(*) FROM marts.caseload_review WHERE level = 'therapist' "
                      "OR all_complete_at_100 IS NOT NULL OR n_complete IS NOT NULL").fetchone()[0] == 0
    wh.close()
    assert not list(built.data_dir.rglob("marts.caseload_review.csv"))  # analysts only: no CSV
