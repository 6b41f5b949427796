"""Seed 001's benchmark report, figure for figure, from the bundled sample (issue 13).

The bundled sample (what ``./dev demo`` reads) carries seed 001's concern, C900, with the
figures the seed prints. One pipeline run on it publishes the warehouse; the concern report
of C900 for 2013 (years 2011-2013, as in the seed) is rendered from that warehouse with the
report code itself, and every figure of ``tests/seed001_figures.csv`` (the seed's cells, as
printed) is compared with the cell a reader sees, at the seed's precision.

Figures that cannot match are listed, with the reason and what the report shows instead,
in docs/benchmark-rules.md section 9 (between the ``seed001-unmatched`` markers). The test
fails when a listed figure starts matching, when an unlisted one stops matching, or when
the report shows something other than what that list says.
"""
from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Pipeline
from html_tables import html_tables

from rom_pipeline.paths import SAMPLE_EXPORT_DIR
from rom_pipeline.reports import labels, views
from rom_pipeline.reports.data import SharedSource
from rom_pipeline.reports.render import render

ROOT = Path(__file__).resolve().parents[1]
FIGURES = Path(__file__).with_name("seed001_figures.csv")
RULES = ROOT / "docs" / "benchmark-rules.md"
CONCERN, YEAR = "C900", 2013


# --- reading the report as a reader sees it -----------------------------------------------------

def _tables(html: str, title: str) -> list[list[list[str]]]:
    """The tables whose header starts with ``title``, as rows of cell texts (<small> notes left out)."""
    found = [[[cell[0] for cell in r] for r in t] for t in html_tables(html)]
    return [t for t in found if t and t[0] and t[0][0] == title]


class Report:
    """Cells of the C900 report by figure code, year and kind, found through the report's own labels."""

    def __init__(self, html: str):
        self.html = html
        self.cells: dict[tuple[int, str, str], str] = {}
        self._label_table(_tables(html, "Kengegevens")[0], labels.KEY_FACTS, YEAR)
        general, revenue = _tables(html, "Informatie GGZ")
        self._year_table(general, labels.GENERAL_INFORMATION)
        self._year_table(revenue, labels.REVENUE)
        self._value_z_table(_tables(html, "Financiële kengetallen")[0], labels.FINANCIAL_RATIOS)
        self._value_z_table(_tables(html, "Uitgavenverdeling")[0], labels.SPENDING)
        self._value_z_table(_tables(html, "Kwaliteit samenvattende indicator")[0],
                            [(f"summary_{code}", text) for code, text in labels.CLUSTERS])

    def _label_table(self, table, spec, year):
        by_label = {r[0]: r for r in table[1:]}
        for code, text in spec:
            if text in by_label:
                self.cells[(year, code, "value")] = by_label[text][1]

    def _year_table(self, table, spec):
        years = [int(y) for y in table[0][1:]]
        by_label = {r[0]: r for r in table[1:]}
        for code, text in spec:
            for i, y in enumerate(years):
                self.cells[(y, code, "value")] = by_label[text][1 + i]

    def _value_z_table(self, table, spec):
        """Two header rows: years (spanning columns), then per year 'waarde' / 'z-score' / ..."""
        years = [int(y) for y in table[0][1:]]
        sub = table[1]
        columns = {kind: [1 + k for k, text in enumerate(sub) if text == head]
                   for kind, head in (("value", "waarde"), ("z", "z-score"))}
        by_label = {r[0]: r for r in table[2:]}
        for code, text in spec:
            for kind, positions in columns.items():
                if positions:
                    assert len(positions) == len(years), (code, kind, sub)
                for y, col in zip(years, positions):
                    self.cells[(y, code, kind)] = by_label[text][col]

    def shown(self, year: int, figure: str, kind: str) -> str | None:
        """What the reader sees; None when the report has no such cell at all."""
        return self.cells.get((year, figure, kind))


# --- comparing at the seed's precision ------------------------------------------------------------

def as_number(text: str, decimals: int) -> Decimal | None:
    """A printed number at a known precision, whatever its separators: '€ 2,970', '61.3%',
    '-0.2', and the Dutch '€ 2.970', '61,3%', '−0,2' alike. Blank -> None."""
    t = text.replace("€", "").replace("%", "").replace("\u2212", "-").replace("\xa0", "").replace(" ", "")
    if not t:
        return None
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("-+")
    if decimals:
        assert len(t) > decimals and t[-decimals - 1] in ".,", f"{text!r} has not {decimals} decimals"
        whole, fraction = t[:-decimals - 1], t[-decimals:]
    else:
        whole, fraction = t, ""
    whole = whole.replace(",", "").replace(".", "")
    assert (whole + fraction).isdigit(), f"{text!r} is not a number"
    return sign * Decimal(f"{whole or 0}.{fraction or 0}")


def matches(printed: str, shown: str | None, decimals: str) -> bool:
    if shown is None:
        return False
    if decimals == "":  # text (name, city)
        return printed == shown
    if ("%" in printed) != ("%" in shown) or ("€" in printed) != ("€" in shown):
        return printed == "" and shown == ""
    return as_number(printed, int(decimals)) == as_number(shown, int(decimals))


def seed_figures() -> list[dict]:
    lines = [line for line in FIGURES.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def listed_unmatched() -> dict[tuple[int, str, str], str]:
    """docs/benchmark-rules.md s9: (year, figure, kind) -> what the report shows instead."""
    text = RULES.read_text(encoding="utf-8")
    block = text.split("<!-- seed001-unmatched -->")[1].split("<!-- /seed001-unmatched -->")[0]
    listed = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[0].isdigit():
            continue  # header, rule, prose
        year, figure, kind, _printed, shown = int(cells[0]), cells[1].strip("`"), cells[2], cells[3], cells[4]
        listed[(year, figure, kind)] = "" if shown == "(blank)" else (None if shown == "(no row)" else shown)
    return listed


# --- the run ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    data = tmp_path_factory.mktemp("seed001") / "data"
    run = Pipeline(SAMPLE_EXPORT_DIR, data).run()
    assert run.success, "the nightly job failed on the bundled sample"
    src = SharedSource(data / "warehouse.duckdb")
    try:
        known = {}
        for concern_id, year in src.concern_years():
            known.setdefault(concern_id, []).append(year)
        context = views.concern_context(src, CONCERN, YEAR, known[CONCERN], src.concern_names(),
                                        src.n_indicators_by_year(), views.as_run(src.run_info()))
        html = render("concern.html", **context)
    finally:
        src.close()
    (data / f"{CONCERN}-{YEAR}.html").write_text(html, encoding="utf-8")
    return Report(html)


def test_the_number_reader_knows_both_formats():
    assert as_number("€ 2,970", 0) == as_number("€ 2.970", 0) == Decimal(2970)
    assert as_number("61.3%", 1) == as_number("61,3%", 1) == Decimal("61.3")
    assert as_number("-0.2", 1) == as_number("−0,2", 1) == Decimal("-0.2")
    assert as_number("1,808,010", 0) == Decimal(1808010)
    assert as_number("", 1) is None
    assert not matches("2.5%", "2.4%", "1") and matches("0.0", "0.0", "1") and not matches("", "0.0%", "1")
    assert not matches("28.5%", None, "1")  # no such cell in the report


def test_every_seed_figure_matches_or_is_listed_with_its_reason(report):
    figures = seed_figures()
    assert len(figures) > 140
    listed = listed_unmatched()
    keys = {(int(f["year"]), f["figure"], f["kind"]) for f in figures}
    assert set(listed) <= keys, f"listed but not in {FIGURES.name}: {sorted(set(listed) - keys)}"
    problems = []
    for f in figures:
        key = (int(f["year"]), f["figure"], f["kind"])
        shown = report.shown(*key)
        ok = matches(f["printed"], shown, f["decimals"])
        if key in listed:
            if ok:
                problems.append(f"{key}: listed as not matching, but the report shows {shown!r} = {f['printed']!r}")
            elif shown != listed[key]:
                problems.append(f"{key}: the list says the report shows {listed[key]!r}, it shows {shown!r}")
        elif not ok:
            problems.append(f"{key}: the seed prints {f['printed']!r}, the report shows {shown!r}")
    assert not problems, "\n".join(problems)


def test_the_issue_13_figures(report):
    """The four differences of issue 13, now as the seed prints them."""
    assert report.shown(2011, "return_on_assets", "value") == "2,5%"
    assert report.shown(2013, "return_on_assets", "value") == ""
    assert report.shown(2012, "spending_personnel_costs", "value") == ""
    assert report.shown(2013, "spending_personnel_costs", "value") == ""
    assert report.shown(2012, "spending_personnel_costs", "z") == ""  # no 0.0% and no z -3.4
    assert report.shown(2011, "revenue_growth", "value") == "28,5%"
    assert report.shown(2013, "revenue_growth", "value") == "61,3%"
    assert report.shown(2011, "budget_per_client", "value") == "€ 2.970"
    assert report.shown(2013, "external_staff_share", "value") == "39,2%"


def test_size_group_z_beside_every_z_and_the_small_group_said(report):
    """Every value/z table has a size-group column beside the all-concern z. C900 is in the
    smallest class in 2011 (enough concerns: z computed) and in EUR 1-10 M in 2012-2013, where
    the sample has fewer concerns than the minimum: the cell says n.b. and the note says why."""
    for title in ("Financiële kengetallen", "Uitgavenverdeling"):
        table = _tables(report.html, title)[0]
        assert table[1] == ["waarde", "z-score", "z groep"] * 3
    fin = {r[0]: r for r in _tables(report.html, "Financiële kengetallen")[0][2:]}
    solvency = fin["Solvabiliteit"]
    assert solvency[1] == "35,2%" and re.fullmatch(r"-?\d,\d", solvency[3])  # 2011: size-group z
    assert solvency[6] == views.SMALL_GROUP_MARK and solvency[9] == views.SMALL_GROUP_MARK  # 2012, 2013
    summary = _tables(report.html, "Kwaliteit samenvattende indicator")[0]
    assert summary[1] == ["z-score", "z groep"] * 3
    indicators = [t for t in _all_tables(report.html) if t[0][0].startswith(f"Kwaliteit {YEAR}, concern")]
    assert indicators and all(t[0][-1] == "z groep" for t in indicators)
    text = " ".join(re.sub(r"<[^>]+>", " ", report.html).split())
    assert "2012: omzet € 1.000.000 tot € 10.000.000" in text
    assert re.search(r"2013: omzet € 1\.000\.000 tot € 10\.000\.000, \d concerns? \(te klein: minder dan 5", text)
    assert re.search(r"2011: omzet minder dan € 1\.000\.000, \d+ concerns;", text)


def _all_tables(html: str) -> list[list[list[str]]]:
    found = [[[cell[0] for cell in r] for r in t] for t in html_tables(html)]
    return [t for t in found if t and t[0]]
