"""The reports (issue 4 part 5): figures as in the warehouse, seed 001's figures in the C900 report,
the z colour scale, and privacy: no therapist in anything shared, each manager package its own location only.

One module-scoped build: synthetic deliveries with seed 001's concern (C900), the real nightly job,
then the reports asset (unless the nightly job already built the reports).
"""
from __future__ import annotations

import html as html_lib
import math
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from conftest import Pipeline
from rom_pipeline.generate.cli import main as generate
from rom_pipeline.reports import build, build_reports, charts, labels
from rom_pipeline.reports.formatting import (
    fmt_by_unit, fmt_count, fmt_eur, fmt_n, fmt_number, fmt_pct, fmt_z, z_colour_class,
)
from rom_pipeline.reports.pdf import find_chromium, html_to_pdf
from rom_pipeline.reports.views import fmt_indicator, n_label

DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


# --- pure functions --------------------------------------------------------------------------------

@pytest.mark.parametrize("z, cls", [
    (-3.1, "z-pink-4"), (-1, "z-pink-1"), (0, "z-0"), (1, "z-yellow-1"), (3.1, "z-yellow-4"),
    (None, "z-none"), (float("nan"), "z-none"),
    (-3.0, "z-pink-3"), (3.0, "z-yellow-3"), (0.49, "z-0"), (-0.5, "z-pink-1"), (2.0, "z-yellow-2"),
])
def test_z_colour_class(z, cls):
    assert z_colour_class(z) == cls


def test_formats_follow_the_seed():
    assert fmt_pct(61.3308) == "61.3%"
    assert fmt_eur(38605 / 13) == "€ 2,970"
    assert fmt_eur(1808010) == "€ 1,808,010"
    assert fmt_eur(-21069.4) == "€ -21,069"
    assert fmt_number(0.4100001, 2) == "0.41"
    assert fmt_z(-0.04) == "0.0" and fmt_z(-0.26) == "-0.3"
    assert fmt_count(1234) == "1,234"
    assert fmt_by_unit(61.33, "percent") == "61.3%" and fmt_by_unit(2969.6, "euro") == "€ 2,970"
    assert fmt_pct(None) == "" and fmt_eur(float("inf")) == ""
    assert fmt_n(4) == "<5" and fmt_n(5) == "5" and n_label(3, 5) == "n < 5" and n_label(12, 5) == "n = 12"


def test_funnel_limits_are_spiegelhalters():
    low, high = charts.funnel_limits(80.0, 40.0, 16, charts.Z_95, proportion=True)
    assert math.isclose(low, 80 - 1.959964 * 10) and math.isclose(high, min(100, 80 + 1.959964 * 10))
    assert charts.funnel_limits(99.0, 10.0, 1, charts.Z_998, proportion=True)[1] == 100.0


def test_charts_are_png():
    png = charts.spending_chart(["a", "b"], [("2024", [10.0, None])], ("gemiddelde", [5.0, -2.0]))
    assert png.startswith(b"\x89PNG")
    assert charts.data_uri(png).startswith("data:image/png;base64,")


# --- the build -------------------------------------------------------------------------------------

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


class _Tables(HTMLParser):
    """Tables of an HTML page as rows of cells; a cell is (main text, text of its <small> parts)."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._small = [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [[], []]
        elif tag == "small" and self._cell is not None:
            self._small += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            main, small = ("".join(p).strip() for p in self._cell)
            self.tables[-1][-1].append((re.sub(r"\s+", " ", main), re.sub(r"\s+", " ", small)))
            self._cell = None
        elif tag == "small":
            self._small = max(0, self._small - 1)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1 if self._small else 0].append(data + (" " if self._small else ""))


def tables(path: Path) -> list[list[list[tuple[str, str]]]]:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tables


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
    assert growth[7][0] == "61.3%"
    assert budget[1][0] == "€ 2,970"
    text = " ".join(path.read_text(encoding="utf-8").split())
    for section in ("Benchmarkrapport:", "Kengegevens", "Algemene informatie over het concern", "Bedrijfsopbrengsten",
                    "Benchmark financiële kengetallen", "Verdeling uitgaven", "Kwaliteit", "Kwaliteitsindicatoren",
                    "Bijlage 1", "Bijlage 2", "Disclaimer", "Stichting Samenwerkende Zorgboeren Zuid"):
        assert section in text, section
    assert "niet gebruikt worden om concerns te rangschikken" in text
    assert "mogen niet worden gebruikt om concerns te rangschikken" in text
    assert "data:image/png;base64," in text  # the spending chart, embedded


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
    for cls, text in cells:
        assert cls == z_colour_class(float(text.replace(",", "")) if text else None), (cls, text)


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
        for indicator in labels.INDICATOR_ORDER:
            cells = row(tabs, labels.INDICATORS[indicator], "Indicator (afgesloten")
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
    assert len(tabs) == len(labels.CHARTED_INDICATORS)
    for indicator, t in zip(labels.CHARTED_INDICATORS, tabs):
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


# --- privacy ---------------------------------------------------------------------------------------

def _therapists(built) -> list[tuple[str, str, str]]:
    con = built.work()
    rows = con.execute("SELECT concern_id, location_id, therapist_id FROM staging.therapists").fetchall()
    con.close()
    assert rows
    return rows


def _visible_text(path: Path) -> str:
    """The file without its embedded images (base64 can contain any short id by chance)."""
    return DATA_URI.sub("data:image/png;base64,", path.read_text(encoding="utf-8"))


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


def test_shared_case_mix_hides_a_therapist_attribute_of_one_therapist(built):
    """A trainee category resting on one therapist is that therapist's result: never in a shared report."""
    con = built.work()
    counts = con.execute("""
        SELECT concern_id, location_id, strftime(end_date, '%Y') AS year, therapist_experience,
               count(DISTINCT therapist_id) AS therapists
        FROM marts.episode_outcomes WHERE is_closed GROUP BY ALL""").fetchall()
    con.close()
    single = {(c, l, y) for c, l, y, _, n in counts if n < 2}
    hidden = 0
    for concern_id, location_id, _ in _locations(built):
        path = built.root / "shared" / "locations" / f"{concern_id}-{location_id}.html"
        year = re.search(r"Casemix (\d{4})", path.read_text(encoding="utf-8"))
        if not year or (concern_id, location_id, year.group(1)) not in single:
            continue
        t = next(t for t in tables(path) if t and t[0][0][0] == "Categorie"
                 and any(r[0][0] in ("Ervaren", "In opleiding") for r in t[2:]))
        for r in t[2:]:
            assert all(main in ("–", "") for main, _ in r[1::2]), (path.name, r)  # the location's columns
        hidden += 1
    assert hidden > 0, "the sample should have a location with a single trainee"


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
    cells = row(tables(page), labels.INDICATORS[indicator])
    assert any(main == fmt_indicator(indicator, value) + "*" for main, _ in cells)


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
    assert metadata["files"].value == sum(1 for p in built.root.rglob("*") if p.is_file())
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


def test_without_chromium_the_pdfs_are_skipped_with_a_note(tmp_path, monkeypatch):
    (tmp_path / "shared" / "concerns").mkdir(parents=True)
    (tmp_path / "shared" / "concerns" / "C1-2024.html").write_text("<html><body>x</body></html>")
    monkeypatch.setenv("ROM_CHROMIUM", str(tmp_path / "no-such-chromium"))
    notes = []
    result = build.BuildResult(root=tmp_path, version_dir=tmp_path)
    build._print_pdfs(tmp_path, result, True, notes.append)
    assert result.pdf_files == 0 and "PDFs skipped" in result.pdf_note and notes == [result.pdf_note]
    assert not list(tmp_path.rglob("*.pdf"))


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium binary: PDFs are skipped by design")
def test_a_concern_report_prints_to_pdf(built, tmp_path):
    html = tmp_path / "C900-2013.html"
    shutil.copy(built.root / "shared" / "concerns" / "C900-2013.html", html)
    pdf = html_to_pdf(find_chromium(), html, tmp_path / "C900-2013.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
