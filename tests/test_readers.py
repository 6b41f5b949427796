"""Readers (issue 6): an analyst holding warehouse.duckdb open read-only during a full run neither
blocks the run nor sees half a warehouse, and sees the new one after reconnecting; the pipeline never
opens warehouse.duckdb for writing (it builds .warehouse.duckdb.building and renames it).

The analyst is a real second process. It keeps one connection open for the whole run ("held") and
also opens a fresh connection for every read ("fresh"); each read takes the row counts of
audit.deliveries, marts.indicators and audit.runs in one query (one snapshot) and appends them to a
file. The data dir is watched with inotify for the whole run. Figures: docs/reliability.md.
"""
from __future__ import annotations

import pytest
from cli_runs import reader_night


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    night = reader_night(tmp_path_factory)
    fresh = [r for r in night.reads if r["mode"] == "fresh"]
    print(f"\nreaders: run {night.seconds:.1f} s, exit {night.result.returncode}; {len(night.reads)} reads "
          f"({len(fresh)} fresh), old {night.old} new {night.new}; "
          f"events on warehouse.duckdb: {sorted(set(night.watch.of('warehouse.duckdb')))}")
    return {"result": night.result, "seconds": night.seconds, "old": night.old, "new": night.new,
            "reads": night.reads, "watch": night.watch, "reader_exit": night.reader_exit}


def test_the_run_is_not_blocked_by_a_reader(night):
    assert night["result"].returncode == 0, night["result"].stderr
    assert night["reader_exit"] == 0
    assert night["old"] != night["new"]  # the night really changed what a reader sees


def test_every_read_sees_the_old_or_the_new_warehouse_whole(night):
    reads = night["reads"]
    errors = [r["error"] for r in reads if "error" in r]
    assert not errors, errors[:3]
    states = {tuple(r["counts"]) for r in reads}
    assert states <= {night["old"], night["new"]}, states


def test_a_held_connection_keeps_the_old_warehouse_and_a_new_connection_sees_the_new_one(night):
    held = [tuple(r["counts"]) for r in night["reads"] if r["mode"] == "held"]
    fresh = [tuple(r["counts"]) for r in night["reads"] if r["mode"] == "fresh"]
    reconnected = [tuple(r["counts"]) for r in night["reads"] if r["mode"] == "reconnected"]
    assert held and set(held) == {night["old"]}
    assert fresh[0] == night["old"] and fresh[-1] == night["new"]
    switched = fresh.index(night["new"])
    assert set(fresh[switched:]) == {night["new"]}  # once swapped, never the old one again
    assert reconnected == [night["new"]]


def test_the_pipeline_never_opens_the_published_file_for_writing(night):
    watch = night["watch"]
    assert not watch.overflow
    published = watch.of("warehouse.duckdb")
    assert "OPEN" in published  # the reader and the run's summary read it ...
    assert not {"MODIFY", "CLOSE_WRITE", "CREATE", "ATTRIB"} & set(published), published  # ... nobody writes it
    assert published.count("MOVED_TO") == 1  # it is replaced once, by a rename
    building = watch.of(".warehouse.duckdb.building")
    assert {"CREATE", "MODIFY", "CLOSE_WRITE", "MOVED_FROM"} <= set(building)
    moved_from = {c for n, label, c in watch.events if n == ".warehouse.duckdb.building" and label == "MOVED_FROM"}
    moved_to = {c for n, label, c in watch.events if n == "warehouse.duckdb" and label == "MOVED_TO"}
    assert moved_from == moved_to  # the same rename
    assert not watch.of("warehouse.duckdb.wal")  # no write-ahead log: nobody opened it as a database to write
