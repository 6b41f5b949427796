"""The synthetic delivery generator: determinism, contract conformance, defects, realism, reference inputs.

The contract's rules are restated here from export-contract.md (not imported
from the project's schemas), so these tests check the generator against the
document itself.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from rom_pipeline.generate import generate_deliveries
from rom_pipeline.generate.cli import register
from rom_pipeline.generate.dates import exported_at
from rom_pipeline.generate.episodes import prorated_total
from rom_pipeline.generate.items import ItemSampler
from rom_pipeline.generate.reference import ANNUAL_COLUMNS, QUALITY_COLUMNS
from rom_pipeline.generate.sinks import CsvSink

EXPORT = "2026-11-21"
EXPORT_DAY = date.fromisoformat(EXPORT)

CONTRACT_COLUMNS = {
    "locations.csv": ["location_id", "location_name", "region"],
    "therapists.csv": ["therapist_id", "location_id", "profession", "is_trainee"],
    "episodes.csv": ["episode_id", "client_id", "location_id", "therapist_id", "care_type", "diagnosis_group",
                     "referrer", "start_date", "end_date", "end_reason", "sessions_attended", "age_at_start", "sex"],
    "measurements.csv": ["measurement_id", "episode_id", "instrument", "administered_on", "session_number",
                         "occasion", "total_score"],
    "item_responses.csv": ["measurement_id", "item", "response"],
}
# code: (items, item range, total range) from the contract's instrument registry
REGISTRY = {
    "SCL90": (90, (1, 5), (90, 450)), "HDRS": (17, (0, 4), (0, 52)), "UBOS": (5, (0, 6), (0, 6)),
    "WAV": (12, (1, 5), (12, 60)), "CQI": (1, (0, 10), (0, 10)), "SF36": (None, None, (0, 100)),
    "WORK": (None, None, (0, 80)),
}
PROFESSIONS = {"psychologist", "psychotherapist", "psychiatrist", "nurse_specialist", "other"}
DIAGNOSES = {"depression", "dysthymia", "anxiety", "somatoform", "substance_use", "impulse_control",
             "stress_burnout", "other"}
REFERRERS = {"gp", "occupational_physician", "medical_specialist", "self", "other"}
END_REASONS = {"completed", "dropout", "referred", "other"}
SEXES = {"female", "male", "other", "unknown"}
OCCASIONS = {"intake", "progress", "discharge", "followup"}


# --- helpers -----------------------------------------------------------------------------------

def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter=";", quotechar='"'))
    return rows[0], rows[1:]


def read_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return next(csv.reader(f, delimiter=";", quotechar='"'))


def read_dicts(path: Path) -> list[dict[str, str]]:
    header, rows = read_csv(path)
    return [dict(zip(header, row)) for row in rows]


def count_rows(path: Path) -> int:
    """Data rows as a CSV reader sees them (a quoted field may hold a line break)."""
    with open(path, encoding="utf-8", newline="") as f:
        return sum(1 for _ in csv.reader(f, delimiter=";", quotechar='"')) - 1


def item_rows(path: Path):
    """(measurement_id, item, response) per item row, lazily: item files are the big ones."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter=";", quotechar='"')
        next(rows)
        yield from rows


def deliveries(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("C*/*/manifest.json"))


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def is_date(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text) is not None
    except ValueError:
        return False


def scl90_scores(delivery: Path) -> dict[str, float]:
    """Each SCL90 measurement's total: delivered, or computed from items (prorated) as the contract says."""
    items: dict[str, list] = {}
    for measurement_id, _, response in item_rows(delivery / "item_responses.csv"):
        items.setdefault(measurement_id, []).append(int(response) if response else None)
    scores = {}
    for m in read_dicts(delivery / "measurements.csv"):
        if m["instrument"] != "SCL90":
            continue
        if m["total_score"]:
            scores[m["measurement_id"]] = float(m["total_score"])
        else:
            answered = [v for v in items[m["measurement_id"]] if v is not None]
            scores[m["measurement_id"]] = sum(answered) * 90 / len(answered)
    return scores


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("clean")
    summary = generate_deliveries(root, concerns=3, episodes=1200, seed=7, export_date=EXPORT,
                                  extra_reference_concerns=6, include_seed_concern=True)
    return root, summary


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("defective")
    summary = generate_deliveries(root, concerns=2, episodes=1000, seed=7, export_date=EXPORT, defect_rate=0.03)
    return root, summary


# --- determinism -------------------------------------------------------------------------------

def test_same_arguments_give_identical_bytes_and_another_seed_does_not(tmp_path):
    args = dict(concerns=2, episodes=200, export_date=EXPORT, defect_rate=0.02, extra_reference_concerns=3)
    generate_deliveries(tmp_path / "a", seed=1, **args)
    generate_deliveries(tmp_path / "b", seed=1, **args)
    generate_deliveries(tmp_path / "c", seed=2, **args)
    first, again, other = (file_hashes(tmp_path / name) for name in "abc")
    assert first == again
    assert first.keys() == other.keys()
    assert first["C001/2026-11-21/episodes.csv"] != other["C001/2026-11-21/episodes.csv"]
    assert first["reference/annual_reports.csv"] != other["reference/annual_reports.csv"]


def test_ground_truth_file_changes_no_delivery_byte(tmp_path):
    """--truth writes each episode's SCL90 course by construction (docs/feedback.md) and draws no random
    number: the deliveries are the same bytes with or without it. It must lie outside the export root."""
    args = dict(concerns=2, episodes=200, export_date=EXPORT, seed=3, defect_rate=0.02, extra_reference_concerns=1)
    generate_deliveries(tmp_path / "plain", **args)
    generate_deliveries(tmp_path / "with", truth=tmp_path / "truth.csv", **args)
    assert file_hashes(tmp_path / "plain") == file_hashes(tmp_path / "with")
    lines = (tmp_path / "truth.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "concern_id;episode_id;course;pre;target"
    truth = [line.split(";") for line in lines[1:]]
    assert len(truth) == 200 and {c for _, _, c, _, _ in truth} == {"improving", "unchanged", "deteriorating"}
    # A deteriorating course ends 15..70 points above its intake by construction (before the 92..440 clip).
    worse = [float(t) - float(p) for _, _, c, p, t in truth if c == "deteriorating"]
    assert worse and all(0 < d <= 70 for d in worse)
    with pytest.raises(ValueError, match="outside the export root"):
        generate_deliveries(tmp_path / "plain", truth=tmp_path / "plain" / "truth.csv", **args)


# --- manifest and dialect ----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["clean", "defective"])
def test_manifest_counts_and_hashes_the_files_as_written(which, request):
    root, summary = request.getfixturevalue(which)
    found = deliveries(root)
    assert [Path(d["directory"]) for d in summary["concerns"]] == found
    for delivery in found:
        manifest = json.loads((delivery / "manifest.json").read_text(encoding="utf-8"))
        concern_id = delivery.parent.name
        assert manifest["contract_version"] == "1.0"
        assert manifest["concern_id"] == concern_id
        assert manifest["export_id"] == f"{concern_id}-{EXPORT}"
        assert manifest["exported_at"].startswith(f"{EXPORT}T23:") and manifest["exported_at"].endswith("+01:00")
        assert manifest["concern_name"] and manifest["source_system"]
        assert set(manifest["files"]) == set(CONTRACT_COLUMNS)
        for name, entry in manifest["files"].items():
            data = (delivery / name).read_bytes()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name
            assert entry["rows"] == count_rows(delivery / name), name


def test_headers_are_exactly_the_contract_columns(clean):
    root, _ = clean
    for delivery in deliveries(root):
        for name, columns in CONTRACT_COLUMNS.items():
            assert read_header(delivery / name) == columns
    assert read_header(root / "reference" / "annual_reports.csv") == ANNUAL_COLUMNS
    assert read_header(root / "reference" / "quality_indicators.csv") == QUALITY_COLUMNS


def test_dialect_utf8_semicolons_lf_and_quotes_only_where_needed(clean, tmp_path):
    root, _ = clean
    raw = (deliveries(root)[0] / "episodes.csv").read_bytes()
    raw.decode("utf-8")
    assert b"\r" not in raw and raw.endswith(b"\n") and b'"' not in raw
    sink = CsvSink(tmp_path / "x.csv", ["a", "b", "c"])
    sink.add_row(["semi;colon", 'say "hi"', "two\nlines"])
    sink.add_row(["plain", "", "Fryslân"])
    entry = sink.close()
    text = (tmp_path / "x.csv").read_text(encoding="utf-8")
    assert text == 'a;b;c\n"semi;colon";"say ""hi""";"two\nlines"\nplain;;Fryslân\n'
    assert entry == {"rows": 2, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert read_csv(tmp_path / "x.csv")[1][0] == ["semi;colon", 'say "hi"', "two\nlines"]


def test_export_timestamp_follows_amsterdam_summer_time():
    assert exported_at(date(2026, 11, 21)) == "2026-11-21T23:05:00+01:00"
    assert exported_at(date(2026, 7, 1)) == "2026-07-01T23:05:00+02:00"
    assert exported_at(date(2026, 3, 29)) == "2026-03-29T23:05:00+02:00"  # last Sunday of March


# --- contract rules on a clean generation --------------------------------------------------------

def test_clean_delivery_keeps_every_row_rule(clean):
    root, summary = clean
    assert summary["defects_total"] == 0
    for delivery in deliveries(root):
        locations = read_dicts(delivery / "locations.csv")
        therapists = read_dicts(delivery / "therapists.csv")
        episodes = read_dicts(delivery / "episodes.csv")
        measurements = read_dicts(delivery / "measurements.csv")
        check_dimensions(locations, therapists)
        check_episodes(episodes, {r["location_id"] for r in locations}, {r["therapist_id"] for r in therapists})
        with_items = check_items(item_rows(delivery / "item_responses.csv"), measurements)
        check_measurements(measurements, {r["episode_id"] for r in episodes}, with_items)


def check_dimensions(locations, therapists):
    assert len({r["location_id"] for r in locations}) == len(locations)
    assert all(r["location_id"] and r["location_name"] for r in locations)
    location_ids = {r["location_id"] for r in locations}
    assert len({r["therapist_id"] for r in therapists}) == len(therapists)
    for r in therapists:
        assert r["location_id"] in location_ids and r["profession"] in PROFESSIONS and r["is_trainee"] in {"0", "1"}
    assert {r["is_trainee"] for r in therapists} == {"0", "1"}  # trainees and experienced therapists


def check_episodes(episodes, location_ids, therapist_ids):
    assert len({r["episode_id"] for r in episodes}) == len(episodes)
    for r in episodes:
        assert r["client_id"] and r["location_id"] in location_ids and r["therapist_id"] in therapist_ids
        assert r["care_type"] in {"basic", "specialised"} and r["diagnosis_group"] in DIAGNOSES
        assert r["referrer"] in REFERRERS and r["sex"] in SEXES
        assert is_date(r["start_date"]) and date.fromisoformat(r["start_date"]) <= EXPORT_DAY
        assert (r["end_date"] == "") == (r["end_reason"] == "")
        if r["end_date"]:
            assert is_date(r["end_date"]) and r["start_date"] <= r["end_date"] <= EXPORT
            assert r["end_reason"] in END_REASONS
        assert r["sessions_attended"] == "" or 0 <= int(r["sessions_attended"]) <= 500
        assert 4 <= int(r["age_at_start"]) <= 120


def check_items(items, measurements) -> set[str]:
    """Item rules; SCL90 items add up to the delivered total. Returns the ids of measurements with items."""
    instrument = {m["measurement_id"]: m["instrument"] for m in measurements}
    total = {m["measurement_id"]: m["total_score"] for m in measurements}
    responses: dict[str, list] = {}
    seen = set()
    for mid, item_text, response in items:
        item = int(item_text)
        n_items, (low, high), _ = REGISTRY[instrument[mid]]
        assert 1 <= item <= n_items and (mid, item) not in seen
        seen.add((mid, item))
        value = int(response) if response else None
        assert value is None or low <= value <= high
        responses.setdefault(mid, []).append(value)
    for mid, values in responses.items():
        n_items = REGISTRY[instrument[mid]][0]
        assert len(values) == n_items
        blanks = values.count(None)
        if instrument[mid] == "SCL90":
            assert blanks <= 9  # always scorable when clean
            if total[mid] and blanks == 0:
                assert int(total[mid]) == sum(values)
            elif total[mid]:
                assert int(total[mid]) == prorated_total(values)
        else:
            assert blanks == 0
            if total[mid]:
                mean_scored = instrument[mid] == "UBOS"
                assert float(total[mid]) == pytest.approx(sum(values) / (n_items if mean_scored else 1))
    return set(responses)


def check_measurements(measurements, episode_ids, with_items):
    assert len({m["measurement_id"] for m in measurements}) == len(measurements)
    for m in measurements:
        assert m["episode_id"] in episode_ids and m["instrument"] in REGISTRY
        assert is_date(m["administered_on"]) and m["administered_on"] <= EXPORT
        assert m["session_number"] == "" or int(m["session_number"]) >= 0
        assert m["occasion"] == "" or m["occasion"] in OCCASIONS
        low, high = REGISTRY[m["instrument"]][2]
        if m["measurement_id"] not in with_items:
            assert m["total_score"], "a total is required when no items are delivered"
        if m["total_score"]:
            assert low <= float(m["total_score"]) <= high


def test_share_of_scl90_totals_without_items_is_configurable(tmp_path):
    def total_only_share(share: float) -> float:
        root = tmp_path / str(share)
        generate_deliveries(root, concerns=1, episodes=300, seed=3, total_only_share=share)
        delivery = deliveries(root)[0]
        with_items = {mid for mid, _, _ in item_rows(delivery / "item_responses.csv")}
        scl90 = [m for m in read_dicts(delivery / "measurements.csv") if m["instrument"] == "SCL90"]
        return sum(m["measurement_id"] not in with_items for m in scl90) / len(scl90)

    assert total_only_share(0.0) == 0.0
    assert 0.4 < total_only_share(0.5) < 0.6
    assert total_only_share(1.0) == 1.0


def test_no_items_delivers_totals_only(tmp_path):
    summary = generate_deliveries(tmp_path, concerns=1, episodes=200, seed=3, items=False)
    delivery = deliveries(tmp_path)[0]
    manifest = json.loads((delivery / "manifest.json").read_text())
    assert "item_responses.csv" not in manifest["files"] and not (delivery / "item_responses.csv").exists()
    assert all(m["total_score"] for m in read_dicts(delivery / "measurements.csv"))
    assert "item_responses.csv" not in summary["rows"]


# --- ids within and across concerns --------------------------------------------------------------

def test_ids_are_unique_within_a_concern_and_reused_across_concerns(clean):
    root, _ = clean
    first, second = deliveries(root)[:2]
    for name, key in [("locations.csv", "location_id"), ("therapists.csv", "therapist_id"),
                      ("episodes.csv", "episode_id"), ("measurements.csv", "measurement_id")]:
        shared = {r[key] for r in read_dicts(first / name)} & {r[key] for r in read_dicts(second / name)}
        assert shared, f"two concerns should share some {key}s"
    assert "E000001" in {r["episode_id"] for r in read_dicts(first / "episodes.csv")}


# --- realism -------------------------------------------------------------------------------------

def test_episode_mix_is_plausible(clean):
    root, _ = clean
    episodes = [r for d in deliveries(root) for r in read_dicts(d / "episodes.csv")]
    closed = [r for r in episodes if r["end_date"]]
    reasons = Counter(r["end_reason"] for r in closed)
    assert 0.6 < reasons["completed"] / len(closed) < 0.8
    assert 0.12 < reasons["dropout"] / len(closed) < 0.25
    assert 0.05 < 1 - len(closed) / len(episodes) < 0.35  # some still in treatment
    sessions = [int(r["sessions_attended"]) for r in closed if r["sessions_attended"]]
    assert 14 <= statistics.mean(sessions) <= 21 and min(sessions) >= 4 and max(sessions) <= 40
    starts = sorted(r["start_date"] for r in episodes)
    assert starts[0] >= "2023-11-01" and starts[-1] <= EXPORT


def test_scl90_trajectories_mostly_improve_and_some_get_worse(clean):
    root, _ = clean
    pre_scores, post_scores, changes, complete, n_closed = [], [], [], 0, 0
    for delivery in deliveries(root):
        score = scl90_scores(delivery)
        by_episode: dict[str, dict[str, float]] = {}
        for m in read_dicts(delivery / "measurements.csv"):
            if m["measurement_id"] in score and m["occasion"] in ("intake", "discharge"):
                by_episode.setdefault(m["episode_id"], {})[m["occasion"]] = score[m["measurement_id"]]
        for e in read_dicts(delivery / "episodes.csv"):
            taken = by_episode.get(e["episode_id"], {})
            if "intake" in taken:
                pre_scores.append(taken["intake"])
            if e["end_date"]:
                n_closed += 1
                if {"intake", "discharge"} <= taken.keys():
                    complete += 1
                    post_scores.append(taken["discharge"])
                    changes.append(taken["discharge"] - taken["intake"])
    assert 185 <= statistics.mean(pre_scores) <= 215
    assert 0.7 < sum(150 <= s <= 300 for s in pre_scores) / len(pre_scores)
    assert any(s < 118 for s in pre_scores)
    assert 0.7 <= complete / n_closed <= 0.9
    assert statistics.median(post_scores) < statistics.median(pre_scores) - 30
    assert 125 <= statistics.median(post_scores) <= 160
    worse = sum(c > 29 for c in changes) / len(changes)  # beyond the reliable-change margin
    assert 0.02 < worse < 0.15


def test_other_instruments_are_present(clean):
    root, _ = clean
    measured = Counter((m["instrument"], m["occasion"]) for d in deliveries(root)
                       for m in read_dicts(d / "measurements.csv"))
    for key in [("HDRS", "intake"), ("UBOS", "intake"), ("WAV", "progress"), ("CQI", "discharge"),
                ("SF36", "discharge"), ("WORK", "intake"), ("WORK", "discharge"), ("SCL90", "progress")]:
        assert measured[key] > 0, key


# --- defects -------------------------------------------------------------------------------------

def test_defects_are_in_the_files_and_counted(defective):
    root, summary = defective
    assert summary["defects_total"] > 100
    kinds = {key.split(":")[1] for key in summary["defects"]}
    assert {"bad_date", "dangling_therapist", "duplicate_row", "score_out_of_range", "orphan_item"} <= kinds
    found = Counter()
    for delivery in deliveries(root):
        therapist_ids = {r["therapist_id"] for r in read_dicts(delivery / "therapists.csv")}
        header, rows = read_csv(delivery / "episodes.csv")
        found["malformed"] += sum(len(r) != len(header) for r in rows)
        episodes = [dict(zip(header, r)) for r in rows if len(r) == len(header)]
        found["bad_start"] += sum(bool(r["start_date"]) and not is_date(r["start_date"]) for r in episodes)
        found["dangling"] += sum(r["therapist_id"] not in therapist_ids for r in episodes)
        found["ended_before_start"] += sum(is_date(r["end_date"]) and is_date(r["start_date"])
                                           and r["end_date"] < r["start_date"] for r in episodes)
        ids = Counter(r["episode_id"] for r in episodes)
        found["duplicate_ids"] += sum(n - 1 for n in ids.values())
        found["scl90_999"] += sum(m["total_score"] == "999" for m in read_dicts(delivery / "measurements.csv"))
    defects = summary["defects"]
    assert found["malformed"] == defects.get("episodes.csv:malformed_row", 0) > 0
    assert found["bad_start"] == defects.get("episodes.csv:bad_date", 0)
    assert found["dangling"] == defects.get("episodes.csv:dangling_therapist", 0)
    assert found["ended_before_start"] == defects.get("episodes.csv:end_before_start", 0)
    assert found["duplicate_ids"] == (defects.get("episodes.csv:duplicate_row", 0)
                                      + defects.get("episodes.csv:duplicate_id", 0))
    assert found["scl90_999"] > 0


def test_defects_overlay_the_clean_data(tmp_path):
    """The defect stream is separate: the unaffected rows are those of the clean run."""
    generate_deliveries(tmp_path / "clean", concerns=1, episodes=300, seed=5)
    generate_deliveries(tmp_path / "bad", concerns=1, episodes=300, seed=5, defect_rate=0.05)
    clean_rows = set(map(tuple, read_csv(deliveries(tmp_path / "clean")[0] / "episodes.csv")[1]))
    bad_rows = set(map(tuple, read_csv(deliveries(tmp_path / "bad")[0] / "episodes.csv")[1]))
    assert 0.85 < len(clean_rows & bad_rows) / len(clean_rows) < 1.0


# --- reference inputs ----------------------------------------------------------------------------

def test_reference_inputs_cover_rom_and_extra_concerns(clean):
    root, _ = clean
    annual = read_dicts(root / "reference" / "annual_reports.csv")
    concern_ids = {r["concern_id"] for r in annual}
    assert {"C001", "C002", "C003"} <= concern_ids and len(concern_ids - {"C001", "C002", "C003", "C900"}) == 6
    assert len({(r["concern_id"], r["year"]) for r in annual}) == len(annual)
    recent = [r for r in annual if r["year"] in {"2023", "2024", "2025"}]
    assert len(recent) == 9 * 3
    revenues = [int(r["revenue_total"]) for r in recent if r["revenue_total"]]
    assert min(revenues) >= 100_000 and max(revenues) <= 600_000_000
    solvency = [int(r["equity"]) / int(r["total_assets"]) for r in recent if r["equity"] and r["total_assets"]]
    assert all(0.05 <= s <= 0.6 for s in solvency)
    quality = read_dicts(root / "reference" / "quality_indicators.csv")
    assert {r["cluster"] for r in quality} == {"CQ", "kernset", "FP"}
    assert len({(r["concern_id"], r["year"], r["indicator_id"]) for r in quality}) == len(quality)
    for r in quality:
        assert (r["higher_is_better"] == "0") == r["indicator_name"].startswith("Drop-out")
        if r["concern_id"] == "C900":  # the seed lists its indicators without a value (empty "waarde")
            assert r["year"] == "2013" and r["value"] == "" and r["n"] == ""
        else:
            float(r["value"]), int(r["n"])


def test_seed_concern_reproduces_the_seed_figures(clean):
    root, _ = clean
    annual = read_dicts(root / "reference" / "annual_reports.csv")
    rows = {int(r["year"]): r for r in annual if r["concern_id"] == "C900"}
    assert sorted(rows) == [2010, 2011, 2012, 2013]
    # 2010, the comparative year, carries only the revenue behind the 2011 growth the seed prints:
    # 171,342 / 133,340 - 1 = 28.50%.
    assert {k for k, v in rows[2010].items() if v} == {"concern_id", "concern_name", "city", "year",
                                                       "revenue_total"}
    assert round((171342 / float(rows[2010]["revenue_total"]) - 1) * 100, 1) == 28.5
    # A cost the seed leaves blank is blank, not 0: wages are 0.0% in 2011 and blank in 2012-2013.
    assert [rows[y]["personnel_costs"] for y in (2011, 2012, 2013)] == ["0", "", ""]
    first = rows[2011]
    assert first["concern_name"] == "Stichting Samenwerkende Zorgboeren Zuid" and first["city"] == "Nieuwkuijk"
    assert [rows[y]["revenue_total"] for y in (2011, 2012, 2013)] == ["171342", "1808010", "2916805"]
    assert [rows[y]["revenue_ggz"] for y in (2011, 2012, 2013)] == ["38605", "1738313", "2855208"]
    assert [rows[y]["other_income_non_ggz"] for y in (2011, 2012, 2013)] == ["132737", "69697", "61597"]
    clients = ("clients_jan1", "clients_new", "clients_discharged", "clients_dec31")
    assert [first[c] for c in clients] == ["10", "3", "4", "9"]

    # Seed 001's own test vectors (outcomes-and-benchmarks.md section 4) ...
    revenue = {y: float(rows[y]["revenue_total"]) for y in rows}
    assert round((revenue[2013] / revenue[2012] - 1) * 100, 1) == 61.3
    assert round(float(first["revenue_ggz"]) / (int(first["clients_jan1"]) + int(first["clients_new"]))) == 2970
    # ... and the percentages the seed prints, recomputed from the rows.
    for year, printed in SEED_PRINTED.items():
        assert seed_ratios(rows[year]) == printed, year


COSTS = ["personnel_costs", "social_premiums", "external_staff_costs", "food_costs", "general_costs",
         "client_costs", "maintenance_costs", "depreciation", "allocations"]
SEED_PRINTED = {
    2011: {"general_costs": 79.4, "client_costs": 19.6, "gross": 1.0, "net": 1.0, "solvency": 35.2,
           "resistance": 14.4, "capital_intensity": 0.41, "liquidity": 154.4, "roe": 7.2},
    2012: {"social_premiums": 5.9, "external_staff_costs": 2.5, "general_costs": 83.5, "gross": 8.2, "net": 8.2,
           "solvency": 44.0, "resistance": 9.5, "capital_intensity": 0.22, "liquidity": 178.7, "roe": 85.7,
           "external_share": 29.4},
    2013: {"social_premiums": 6.8, "external_staff_costs": 4.4, "general_costs": 85.2, "gross": 3.5,
           "solvency": 33.9, "resistance": 9.1, "capital_intensity": 0.27, "liquidity": 151.4,
           "external_share": 39.2},
}


def seed_ratios(row: dict[str, str]) -> dict[str, float]:
    """The seed's ratios that can be recomputed from one annual-report row (percent, 1 decimal)."""
    value = {k: float(v) for k, v in row.items() if k in ANNUAL_COLUMNS[4:] and v != ""}
    revenue, costs = value["revenue_total"], {c: value[c] for c in COSTS if c in value}
    ratios = {c: round(amount / revenue * 100, 1) for c, amount in costs.items() if amount}
    ratios["gross"] = round((revenue - sum(costs.values())) / revenue * 100, 1)
    if "net_result" in value:
        ratios["net"] = round(value["net_result"] / revenue * 100, 1)
        ratios["roe"] = round(value["net_result"] / value["equity"] * 100, 1)
    ratios["solvency"] = round(value["equity"] / value["total_assets"] * 100, 1)
    ratios["resistance"] = round(value["equity"] / revenue * 100, 1)
    ratios["capital_intensity"] = round(value["total_assets"] / revenue, 2)
    ratios["liquidity"] = round(value["current_assets"] / value["current_liabilities"] * 100, 1)
    staff = sum(costs.get(c, 0) for c in COSTS[:3])
    if staff:
        ratios["external_share"] = round(costs["external_staff_costs"] / staff * 100, 1)
    return ratios


def test_seed_concern_only_on_request(tmp_path):
    generate_deliveries(tmp_path, concerns=1, episodes=50, seed=1, extra_reference_concerns=2)
    annual = read_dicts(tmp_path / "reference" / "annual_reports.csv")
    assert "C900" not in {r["concern_id"] for r in annual}
    assert {r["year"] for r in annual} == {"2023", "2024", "2025"}


# --- building blocks -----------------------------------------------------------------------------

def test_item_sampler_hits_every_total_exactly():
    from random import Random

    sampler, rng = ItemSampler(90, 1, 5, 1.1, "test"), Random(1)
    for total in range(90, 451):
        values = sampler.responses(rng, total)
        assert sum(values) == total and min(values) >= 1 and max(values) <= 5
    with pytest.raises(ValueError):
        sampler.responses(rng, 451)


def test_prorated_total_follows_the_contract_and_avoids_ties():
    assert prorated_total([2] * 90) == 180
    assert prorated_total([2] * 88 + [None, None]) == 180  # round(176 * 90 / 88)
    assert prorated_total([3] + [2] * 88 + [None]) == round(179 * 90 / 89)
    # 80 answered items summing to 84: 84 * 90 / 80 = 94.5, where rounding conventions differ.
    assert prorated_total([1] * 76 + [2] * 4 + [None] * 10) is None


# --- command line and scale ------------------------------------------------------------------------

def test_register_adds_generate_to_a_parser(tmp_path):
    parser = argparse.ArgumentParser(prog="rom-pipeline")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", "--out", str(tmp_path), "--episodes", "60", "--concerns", "2",
                              "--extra-reference-concerns", "1", "--quiet"])
    assert args.func(args) == 0
    assert len(deliveries(tmp_path)) == 2


def test_module_entry_point_reports_defects(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rom_pipeline.generate", "--out", str(tmp_path), "--episodes",
                           "300", "--defect-rate", "0.05", "--no-items"], capture_output=True, text=True, check=True)
    assert "defects injected" in done.stdout and "episodes.csv:" in done.stdout
    assert "generate: 300/300 episodes" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "rom_pipeline.generate", "--out", str(tmp_path),
                          "--defect-rate", "2"], capture_output=True, text=True)
    assert bad.returncode == 2 and "defect rate" in bad.stderr


def test_generation_streams_many_episodes_quickly(tmp_path):
    """CPU time of this process, not wall time: other work on a shared (CI) machine does not count, so
    the check runs everywhere instead of skipping when the machine is busy (about 3 s when idle)."""
    started = time.process_time()
    summary = generate_deliveries(tmp_path, concerns=3, episodes=20_000, seed=11, items=False)
    seconds = time.process_time() - started
    assert seconds < 30, f"generating 20,000 episodes took {seconds:.1f} CPU seconds"
    assert summary["rows"]["episodes.csv"] == 20_000
    assert summary["rows"]["measurements.csv"] > 100_000


def test_bundled_sample_is_what_its_readme_command_writes(tmp_path):
    """rom_pipeline/sample_data/README.md names the command; after a generator change, rerun it."""
    sample = Path(__file__).resolve().parents[1] / "rom_pipeline" / "sample_data" / "exports"
    generate_deliveries(tmp_path, concerns=3, episodes=1500, seed=42, defect_rate=0.01, extra_reference_concerns=12,
                        include_seed_concern=True)
    assert file_hashes(tmp_path) == file_hashes(sample)
