"""The analyst's workflow (issue 23): progress with an ETA, provenance in metrics.json, per-trial results in
pandas, and the tutorial, executed."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sim.api import FRAME_COLUMNS, load_scenario, run_scenario, trials_frame, write_outputs
from sim.progress import TrialProgress, duration_text, rate_text

ROOT = Path(__file__).resolve().parents[1]
HS15 = ROOT / "scenarios" / "hwasong15_2017-11-29.toml"
KEPT = ("us-thaad-seongju", "jp-fps5-sado", "kr-greenpine-b-1")  # one radar per nation keeps the run quick


# ------------------------------------------------------------------------------------------------ progress

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_piped_progress_prints_a_line_at_each_tenth_with_rate_and_eta():
    clock, out = FakeClock(), io.StringIO()
    with TrialProgress("hs15: trilateral", 10, stream=out, terminal=False, clock=clock) as p:
        for t, done in ((5, 0.5), (10, 1.0), (12, 1.2), (35, 3.5), (40, 3.9), (100, 10.0)):
            clock.now = 100.0 + t
            p(done, 10)
    assert out.getvalue().splitlines() == [
        "hs15: trilateral: started, 10 trials; a line each 10% of them",
        "hs15: trilateral:  10 % (1.0 of 10 trials) in 10 s, 10.0 s/trial, ETA 1 min 30 s",
        # 3.5 trials crossed 20 % and 30 % at once: one line
        "hs15: trilateral:  35 % (3.5 of 10 trials) in 35 s, 10.0 s/trial, ETA 1 min 05 s",
        "hs15: trilateral: 100 % (10.0 of 10 trials) in 1 min 40 s, 10.0 s/trial, ETA 0 s",
    ]


def test_eta_counts_down_between_reports_and_the_bar_shows_count_rate_eta():
    from sim.progress import _Line

    clock = FakeClock()
    p = TrialProgress("x", 20, stream=io.StringIO(), terminal=False, clock=clock)
    with p:
        assert p.eta() == math.inf  # nothing done: no rate yet
        clock.now += 40.0
        p(4.0, 20)  # 10 s a trial: 16 left = 160 s
        assert p.eta() == pytest.approx(160.0)
        clock.now += 25.0
        assert p.eta() == pytest.approx(135.0)
        assert _Line(p).figures() == "4.0/20 trials  10.0 s/trial  ETA 2 min 15 s"
    assert (duration_text(59.6), duration_text(3725), duration_text(math.inf)) == ("1 min 00 s", "1 h 02 min", "--")
    assert (rate_text(30, 10), rate_text(1, 4), rate_text(0, 4)) == ("3.00 trials/s", "4.0 s/trial", "--")


@pytest.mark.parametrize("width", [60, 80, 200])
def test_terminal_progress_draws_a_rich_bar_whose_figures_fit(width):
    out = io.StringIO()
    clock = FakeClock()
    p = TrialProgress("hwasong15-2017-11-29: isolated, bilateral, trilateral x US, JP, KR trackers", 4,
                      stream=out, terminal=True, clock=clock, width=width)
    with p:
        assert p.bar is not None
        clock.now += 8.0
        p(1.0, 4)
        p.bar.refresh()
    drawn = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    # the count, the rate and the ETA are drawn whole at any width; the long label gives way first
    lines = [ln for ln in drawn.replace("\r", "\n").splitlines() if "1.0/4" in ln]
    assert lines and all(ln.endswith("  1.0/4 trials  8.0 s/trial  ETA 24 s") for ln in lines), drawn
    assert all(len(ln) <= width - 1 for ln in lines)
    quarter = "\u2501" * 5 if width >= 80 else ""  # 1 of 4 trials: a quarter of the 20-character bar filled
    assert all(quarter in ln for ln in lines)
    assert ("trackers" in lines[0]) == (width >= 130)


# ------------------------------------------------------------------------------------------------ one small run

@pytest.fixture(scope="module")
def small_run():
    """Hwasong-15, first 120 s, 2 trials in 2 chunks, isolated and trilateral, one radar per nation;
    loaded through the API with overrides, progress recorded."""
    sc = load_scenario(HS15, {"scenario.duration_s": 120.0, "sharing.link_latency_s": 10.0,
                              "sensor[4].range_max_km": 2500})
    sc = dataclasses.replace(sc, sensors=tuple(s for s in sc.sensors if s.catalog in KEPT))
    seen = []
    run = run_scenario(sc, trials=2, policies=["isolated", "trilateral"], chunk_trials=1,
                       progress=lambda done, total: seen.append((done, total)))
    return sc, run, seen


def test_run_progress_moves_inside_each_chunk_and_ends_at_the_total(small_run):
    _, run, seen = small_run
    done = [d for d, _ in seen]
    assert all(t == 2 for _, t in seen)
    assert done == sorted(done) and done[-1] == 2.0 and 1.0 in done
    # each chunk: truth and detections (5 % of it), one report per distinct tracker feed, then the end
    per_chunk = run.work["tracker_runs"] // 2
    assert len(done) == 2 * (1 + per_chunk + 1)
    assert done[0] == pytest.approx(0.05) and done[per_chunk + 2] == pytest.approx(1.05)
    assert done[per_chunk] == pytest.approx(0.95)  # the last tracker run ends the trackers' 90 %


def test_trials_frame_holds_every_trial_and_its_medians_are_the_reports(small_run):
    _, run, _ = small_run
    df = trials_frame(run)
    assert tuple(df.columns) == FRAME_COLUMNS
    assert len(df) == 2 * 2 * 3  # trials x policies x nations (one target)
    assert sorted(df["trial"].unique()) == [0, 1]
    assert set(df["policy"]) == {"isolated", "trilateral"} and set(df["nation"]) == {"US", "JP", "KR"}
    checked = 0
    for row in run.rows:
        sub = df[(df.policy == row["policy"]) & (df.nation == row["nation"]) & (df.target == row["target"])]
        for key in FRAME_COLUMNS[4:]:
            if key not in row:
                continue
            values = sub[key].to_numpy()
            if key == "warning_retracted":  # a count of trials, not a median (engine.summary_rows)
                assert row[key] == {"trials": int(np.nansum(values)), "n": values.size}
                checked += 1
                continue
            assert int(np.isnan(values).sum()) == row[key]["n_missing"], (row["policy"], row["nation"], key)
            if row[key]["median"] is None:
                assert np.isnan(values).all()
            else:
                assert np.nanmedian(values) == pytest.approx(row[key]["median"], rel=1e-12)
                checked += 1
    assert checked > 20  # the run tracked something: the comparison above is not vacuous
    # trilateral JP gets the Korean and US radars: its first detection is no later than isolated JP's
    jp = df[df.nation == "JP"].pivot(index="trial", columns="policy", values="detect_time_s")
    assert (jp["trilateral"] <= jp["isolated"].fillna(np.inf)).all()


def _git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def test_metrics_json_records_the_resolved_scenario_hash_and_revision(small_run, tmp_path):
    from sensors.catalog import catalog_rows

    sc, run, _ = small_run
    doc = write_outputs(tmp_path, sc, run)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == doc
    assert doc["scenario_file"] == {"name": HS15.name, "sha256": hashlib.sha256(HS15.read_bytes()).hexdigest()}
    assert doc["overrides"] == ["scenario.duration_s=120.0", "sharing.link_latency_s=10.0",
                                "sensor[4].range_max_km=2500"]
    res = doc["resolved"]
    assert res["scenario"]["duration_s"] == 120.0 and res["scenario"]["trials"] == 2
    # Every sensor field after the catalog merge: the catalog's own values, the override on top.
    rows = {r["name"]: r for r in catalog_rows()}
    assert [s["catalog"] for s in res["sensor"]] == list(KEPT)
    for s in res["sensor"]:
        expected = {k: v for k, v in rows[s["catalog"]].items() if k not in ("name", "fov")}
        if s["catalog"] == "jp-fps5-sado":
            assert s["range_max_km"] == 2500.0 != expected["range_max_km"]
            expected["range_max_km"] = 2500.0
        assert {k: v for k, v in s.items() if k not in ("name", "catalog")} == expected
    # Each policy's links, the built-in's resolved: trilateral relays JP<->KR through the US, 10 s a hop.
    links = res["sharing"]["links"]
    assert links["isolated"] == []
    assert links["trilateral"] == [
        {"from": "US", "to": "JP", "latency_s": 10.0, "share": "measurements", "interval_s": 5.0, "relay": ["KR"],
         "relay_latency_s": 0.0},
        {"from": "JP", "to": "US", "latency_s": 10.0, "share": "measurements", "interval_s": 5.0, "relay": [],
         "relay_latency_s": 0.0},
        {"from": "US", "to": "KR", "latency_s": 10.0, "share": "measurements", "interval_s": 5.0, "relay": ["JP"],
         "relay_latency_s": 0.0},
        {"from": "KR", "to": "US", "latency_s": 10.0, "share": "measurements", "interval_s": 5.0, "relay": [],
         "relay_latency_s": 0.0},
    ]
    # every nation pair's latency after the defaults: JP-KR is the two 10 s hops
    assert res["sharing"]["pair_latency_s"] == {"US-JP": 10.0, "US-KR": 10.0, "JP-KR": 20.0}
    assert res["tracker"]["max_tracks"] == 6 and res["tracker"] == doc["tracker"]
    assert res["metrics"] == {"ipp_threshold_km": 50.0, "ipp_time_to_go_s": 120.0, "gospa_cutoff_km": 10.0,
                              "firm_track_hold_s": 30.0}
    t0 = res["threat"][0]
    assert (t0["launch_lat_deg"], t0["launch_lon_deg"], t0["apogee_km"]) == (39.25, 125.86, 4475.0)
    head = _git("rev-parse", "HEAD")
    if head and Path(_git("rev-parse", "--show-toplevel")).resolve() == ROOT:
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        assert doc["git"] == {"revision": head, "dirty": dirty}
    else:
        assert "git" not in doc
    report = (tmp_path / "report.md").read_text()
    assert f"scenario file {HS15.name} (SHA-256 {doc['scenario_file']['sha256'][:16]}...)" in report
    assert "`--set sharing.link_latency_s=10.0`" in report
    head = report.split("\n\n## ")[0]
    assert head.count(f"gsomia-sim {doc['version']}") == 1, head  # the header states the version once


def test_cli_set_jp_kr_latency_round_trip(tmp_path, capsys):
    """`run --set sharing.pair_latency_s.JP-KR=10`: the one command of issue 23. metrics.json records the override
    and the resolved pairs and links; the radars' data reach JP from Korean radars 10 s after their own reporting
    latency (6 s later than the two 2 s hops), from US radars 2 s after, as before."""
    from fusion.network import builtin_policy
    from sim.cli import main
    from sim.engine import build_radars, feed_plan

    out = tmp_path / "out"
    assert main(["run", str(HS15), "--set", "sharing.pair_latency_s.JP-KR=10", "--set", "scenario.duration_s=30",
                 "--trials", "1", "--policies", "trilateral", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["overrides"] == ["sharing.pair_latency_s.JP-KR=10", "scenario.duration_s=30"]
    sharing = doc["resolved"]["sharing"]
    assert sharing["pair_latency_s"] == {"US-JP": 2.0, "US-KR": 2.0, "JP-KR": 10.0}
    assert [(ln["from"], ln["to"], ln["latency_s"], ln["relay"], ln["relay_latency_s"])
            for ln in sharing["links"]["trilateral"]] == [
        ("US", "JP", 2.0, ["KR"], 6.0), ("JP", "US", 2.0, [], 0.0), ("US", "KR", 2.0, ["JP"], 6.0),
        ("KR", "US", 2.0, [], 0.0)]
    assert "`--set sharing.pair_latency_s.JP-KR=10`" in (out / "report.md").read_text()
    # the scenario the run read, back from the file and the same --set: what each radar's data take to JP
    sc = load_scenario(HS15, doc["overrides"])
    base = load_scenario(HS15)
    radars = build_radars(sc)
    lam = np.array([r.latency for r in radars])
    for nation, pair in (("JP", {"US": 2.0, "JP": 0.0, "KR": 10.0}), ("KR", {"US": 2.0, "JP": 10.0, "KR": 0.0}),
                         ("US", {"US": 0.0, "JP": 2.0, "KR": 2.0})):
        own, _, arrival = feed_plan(radars, builtin_policy("trilateral", sc.sharing), nation)
        np.testing.assert_array_equal(own, lam + np.array([pair[r.nation] for r in radars]))
        _, _, before = feed_plan(radars, builtin_policy("trilateral", base.sharing), nation)
        other = {"JP": "KR", "KR": "JP"}.get(nation)
        np.testing.assert_array_equal(arrival - before, [6.0 if r.nation == other else 0.0 for r in radars])
    assert {r.nation for r in radars} == {"US", "JP", "KR"}


def test_provenance_differs_where_the_runs_differ(small_run):
    """Two runs of one scenario name with other radar settings are told apart by metrics.json alone."""
    from sim.report import json_bytes, metrics_document

    sc, run, _ = small_run
    other = dataclasses.replace(sc, sensors=tuple(dataclasses.replace(s, overrides=()) for s in sc.sensors))
    a = metrics_document(sc, run.trials, run.seed, run.rows)
    b = metrics_document(other, run.trials, run.seed, run.rows)
    assert a["scenario"] == b["scenario"] and a["resolved"]["sensor"] != b["resolved"]["sensor"]
    assert json_bytes(a) == json_bytes(metrics_document(sc, run.trials, run.seed, run.rows))  # nothing time-bound


# ------------------------------------------------------------------------------------------------ tutorial

def test_the_tutorial_runs_as_written(tmp_path, monkeypatch):
    """docs/tutorial.md's Python blocks, executed in order in a fresh folder (the scenarios linked in)."""
    text = (ROOT / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    names: dict = {"__name__": "__tutorial__"}
    for block in blocks:
        exec(compile(block, "docs/tutorial.md", "exec"), names)  # noqa: S102 - our own documentation
    df = names["df"]
    assert tuple(df.columns) == FRAME_COLUMNS and len(df) == names["run"].trials * 2 * 3
    png = tmp_path / "gain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert names["scenario"].sharing.link_latency == 10.0
    assert os.path.exists(tmp_path / "out" / "metrics.json")


def test_chunk_progress_takes_per_trial_reports_inside_a_tracker_run_without_counting_twice():
    """The hook a per-trial tracker loop calls: k of n trials through one feed's tracker credit k/n of that
    feed's share; the run's end credits the rest, never more."""
    from types import SimpleNamespace

    from sim.engine import ChunkProgress

    got = []
    cp = ChunkProgress(got.append)
    # two feeds: 'a' fed sensor 0 (3 distinct (time, radar) groups), 'b' fed both sensors (5 groups)
    dets = SimpleNamespace(time=np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0]), sensor=np.array([0, 1, 0, 0, 0, 1]))
    cp.plan(dets, {"a": np.array([0.0, np.inf]), "b": np.array([1.0, 2.0])})
    # weights by 1 + groups: a: 1 + 3 = 4, b: 1 + 5 = 6 of 10, over the trackers' 90 %
    assert cp.weights == pytest.approx({"a": 0.36, "b": 0.54})
    done = cp.trial_callback("b", 4)
    done(1)
    done(1)  # a repeated report adds nothing
    done(3)
    cp.run_done("b")
    cp.run_done("b")  # twice: still its share only
    cp.run_done("a")
    cp.finish()
    assert got == pytest.approx([0.05, 0.05 + 0.135, 0.05 + 0.405, 0.05 + 0.54, 0.95, 1.0])
