"""The main job end to end: determinism, physical sense of the sharing gains, outputs and bad input."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from sim.cli import main
from sim.engine import run_scenario
from sim.report import write_outputs
from sim.scenario import load_scenario


def shortened(path, duration_s=None, trials=None):
    """A shipped scenario with a shorter simulated span and fewer trials (same physics, same seed)."""
    sc = load_scenario(path)
    info = sc.info
    if duration_s is not None:
        info = dataclasses.replace(info, duration=duration_s)
    if trials is not None:
        info = dataclasses.replace(info, trials=trials)
    return dataclasses.replace(sc, info=info)


def row(out, policy, nation, key, target=None):
    """Summary of one metric in a run's rows."""
    for r in out.rows:
        if r["policy"] == policy and r["nation"] == nation and (target is None or r["target"] == target):
            return r[key]
    raise KeyError((policy, nation, key))


@pytest.fixture(scope="module")
def hs15_early(scenarios_dir):
    """Hwasong-15, first 300 s (boost and early midcourse), 3 trials, isolated and trilateral."""
    sc = shortened(scenarios_dir / "hwasong15_2017-11-29.toml", duration_s=300.0, trials=3)
    return sc, run_scenario(sc, policies=["isolated", "trilateral"])


def test_hwasong15_japan_firm_track_earlier_with_trilateral_sharing(hs15_early):
    _, out = hs15_early
    iso = row(out, "isolated", "JP", "firm_track_time_s")
    tri = row(out, "trilateral", "JP", "firm_track_time_s")
    assert tri["median"] is not None
    # Korean radars see the boost from close by; Japan's own see it only above their horizon.
    assert iso["median"] is None or tri["median"] < iso["median"] - 10.0
    # Detection itself comes earlier too: the first Korean detection reaches Japan through the US hub.
    assert row(out, "trilateral", "JP", "detect_time_s")["median"] < row(out, "isolated", "JP", "detect_time_s")["median"]


def test_sharing_never_delays_the_first_detection(hs15_early):
    _, out = hs15_early
    for nation in ("US", "JP", "KR"):
        iso = row(out, "isolated", nation, "detect_time_s")["median"]
        tri = row(out, "trilateral", nation, "detect_time_s")["median"]
        assert tri is not None and (iso is None or tri <= iso + 1e-9)


def test_same_seed_byte_identical_metrics_and_trials_independent_of_chunking(scenarios_dir, tmp_path):
    sc = shortened(scenarios_dir / "hwasong15_2017-11-29.toml", duration_s=120.0, trials=3)
    # One radar per nation keeps this test quick; the sharing still matters (JP and KR gain the others' data).
    sc = dataclasses.replace(sc, sensors=tuple(s for s in sc.sensors
                                               if s.catalog in ("us-thaad-seongju", "jp-fps5-sado", "kr-greenpine-b-1")))
    # isolated too: the matched ratio, the paired comparisons and their bootstrap intervals must not depend
    # on the chunking either (issue 24), nor the ensemble NEES summed over chunks
    pol = ["isolated", "trilateral"]
    a = run_scenario(sc, policies=pol, chunk_trials=3)
    a2 = run_scenario(sc, policies=pol, chunk_trials=3)
    seen_b, seen_b2 = [], []
    b = run_scenario(sc, policies=pol, chunk_trials=1, progress=lambda d, n: seen_b.append((d, n)))
    b2 = run_scenario(sc, policies=pol, chunk_trials=1, workers=2,  # chunks in two processes
                      progress=lambda d, n: seen_b2.append((d, n)))
    # Progress counts trials, never goes back, and ends at the total, from worker processes too (their
    # reports cross a queue); serially each chunk's end is a whole trial.
    for seen in (seen_b, seen_b2):
        done = [d for d, _ in seen]
        assert done == sorted(done) and done[-1] == 3.0 and {n for _, n in seen} == {3}
    assert {1.0, 2.0, 3.0} <= {d for d, _ in seen_b} and len(seen_b) > 6  # inside chunks, not only between
    for name, run in (("a", a), ("a2", a2), ("b", b), ("b2", b2)):
        write_outputs(tmp_path / name, sc, run)
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "a2" / "metrics.json").read_bytes()
    # Worker processes change where chunks run, not what they compute or the order they are gathered in.
    assert (tmp_path / "b" / "metrics.json").read_bytes() == (tmp_path / "b2" / "metrics.json").read_bytes()
    assert b.work == b2.work and b.work["tracker_runs"] == 3 * a.work["tracker_runs"] > 0
    assert a.work["track_steps"] == b.work["track_steps"] > 0
    assert b.curves.step == b2.curves.step and set(b.curves.pos) == set(b2.curves.pos)
    for key in b.curves.pos:
        np.testing.assert_array_equal(b.curves.stacked(b.curves.pos, key), b2.curves.stacked(b2.curves.pos, key))
        np.testing.assert_array_equal(b.curves.stacked(b.curves.ipp, key), b2.curves.stacked(b2.curves.ipp, key))
    # Trial k does not depend on the batch: the truth grid is fixed by the threats, every trial draws from its
    # own streams, and every track is predicted with its own RK4 substeps, so the bytes are the same.
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    doc = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert {"scenario", "version", "seed", "trials", "results"} <= set(doc)
    assert doc["trials"] == 3 and doc["seed"] == sc.info.seed
    keys = {"detect_time_s", "firm_track_time_s", "completeness", "pos_rmse_m", "vel_rmse_mps", "anees",
            "ipp_error_km_at_120s", "warning_time_s", "launch_point_error_km"}
    for r in doc["results"]:
        assert keys <= set(r)
        for k in keys:
            assert {"median", "p10", "p90", "n", "missing"} <= set(r[k]) <= {"median", "p10", "p90", "n", "missing",
                                                                            "bimodal"}
            assert r[k]["n"] == 3
    tri = [r for r in doc["results"] if r["policy"] == "trilateral"]
    assert all({"pos_err_ratio_vs_isolated", "nees_consistency", "paired_vs_isolated", "pcrlb_pos_m",
                "efficiency"} <= set(r) for r in tri)
    assert any(r["pos_err_ratio_vs_isolated"]["ci95"] is not None for r in tri)
    # A different seed gives different numbers (the check above can fail).
    c = run_scenario(sc, seed=sc.info.seed + 1, policies=pol, chunk_trials=3)
    write_outputs(tmp_path / "c", sc, c)
    assert (tmp_path / "c" / "metrics.json").read_bytes() != (tmp_path / "a" / "metrics.json").read_bytes()


def test_per_trial_results_do_not_depend_on_chunk_batch_or_threads(scenarios_dir, tmp_path, monkeypatch):
    """Issue 18: the trackers and metrics take a chunk in batches of trials, reduced one batch at a time.

    Track-level sharing too (the fused histories are built per batch). Planted faults this catches: a batch's
    bound rows not taken from the chunk's bound (``bound_of(...)`` without ``[rows]``: shape error or another
    trial's bound), a batch's detections not cut to its trials, the matched ratio mixing batches.
    """
    import numba

    import fusion.bounds
    import fusion.tracker

    sc = shortened(scenarios_dir / "hwasong15_2017-11-29.toml", duration_s=120.0, trials=3)
    sc = dataclasses.replace(sc, sensors=tuple(s for s in sc.sensors
                                               if s.catalog in ("us-thaad-seongju", "jp-fps5-sado", "kr-greenpine-b-1")))
    pol = ["isolated", "trilateral-tracks"]
    tracker_trials, bound_calls = [], []
    run_tracker, pcrlb = fusion.tracker.run_tracker, fusion.bounds.pcrlb_position_variance

    def counting_tracker(dets, arrival, site_ecef, R_enu, t, trial_index, *args, **kwargs):
        tracker_trials.append(len(trial_index))
        return run_tracker(dets, arrival, site_ecef, R_enu, t, trial_index, *args, **kwargs)

    def counting_bound(truth, *args, dynamics=None):
        bound_calls.append((truth.state.shape[0], dynamics))
        return pcrlb(truth, *args, dynamics=dynamics)

    monkeypatch.setattr(fusion.tracker, "run_tracker", counting_tracker)
    monkeypatch.setattr(fusion.bounds, "pcrlb_position_variance", counting_bound)
    whole = run_scenario(sc, policies=pol, chunk_trials=3, batch_trials=3)
    assert set(tracker_trials) == {3}
    tracker_trials.clear()
    bound_calls.clear()
    one_by_one = run_scenario(sc, policies=pol, chunk_trials=3, batch_trials=1)
    assert set(tracker_trials) == {1}  # no tracker history held for more than one trial
    # the bound is computed once per chunk and arrival plan, all sharing one TruthDynamics
    assert {n for n, _ in bound_calls} == {3} and len({id(d) for _, d in bound_calls}) == 1
    assert bound_calls[0][1] is not None
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        alone = run_scenario(sc, policies=pol, chunk_trials=1)
    finally:
        numba.set_num_threads(threads)
    runs = {"whole": whole, "one_by_one": one_by_one, "alone": alone}
    for name, run in runs.items():
        write_outputs(tmp_path / name, sc, run)
    ref = (tmp_path / "whole" / "metrics.json").read_bytes()
    for name in runs:
        assert (tmp_path / name / "metrics.json").read_bytes() == ref, name
    for name, run in runs.items():
        assert run.per_trial.values.keys() == whole.per_trial.values.keys()
        for key, vals in whole.per_trial.values.items():
            for k, v in vals.items():
                np.testing.assert_array_equal(run.per_trial.values[key][k], v, err_msg=f"{name} {key} {k}")
        for key in whole.curves.pos:
            np.testing.assert_array_equal(run.curves.stacked(run.curves.pcrlb, key),
                                          whole.curves.stacked(whole.curves.pcrlb, key))
    assert one_by_one.work["tracker_runs"] == 3 * whole.work["tracker_runs"]
    assert one_by_one.work["track_steps"] == whole.work["track_steps"] > 0
    assert any(np.isfinite(v).any() for vals in whole.per_trial.shared.values() for v in vals.values())
    # The kept curves own their data: a view would hold a batch's whole (trials, objects, T) arrays for the run.
    for store in (one_by_one.curves.pos, one_by_one.curves.bound, one_by_one.curves.pcrlb, one_by_one.curves.ipp):
        assert store and all(part.base is None for parts in store.values() for part in parts)


def test_trial_tracks_do_not_depend_on_the_batch_over_a_whole_flight(scenarios_dir):
    """Trial 1 alone and inside a batch of three: the same truth grid, detections and tracks, bit for bit.

    The KN-23 flight stays inside the atmosphere, so the drag RK4 substep counts differ from track to
    track; the whole flight (no duration cut) makes the grid end depend on the batch unless it is fixed.
    """
    from sim.engine import TrialResults, build_radars, run_chunk

    sc = load_scenario(scenarios_dir / "kn23_2019-07-25.toml")
    radars = build_radars(sc)
    kept = {}

    def keeper(tag):
        def keep(policy, nation, truth, dets, tracks, mask, arrival, m):
            kept[(tag, nation)] = (truth, tracks)
        return keep

    run_chunk(sc, radars, np.arange(3), sc.info.seed, ["trilateral"], TrialResults(), keeper("batch"))
    run_chunk(sc, radars, np.array([1]), sc.info.seed, ["trilateral"], TrialResults(), keeper("alone"))
    for nation in ("US", "JP", "KR"):
        (ta, ha), (tb, hb) = kept[("batch", nation)], kept[("alone", nation)]
        np.testing.assert_array_equal(ta.t, tb.t)
        np.testing.assert_array_equal(ta.state[1], tb.state[0])
        assert np.isfinite(hb.x).any(), nation  # the check below compares real tracks
        for name in ("x", "P", "confirmed", "object"):
            np.testing.assert_array_equal(getattr(ha, name)[1], getattr(hb, name)[0], err_msg=f"{nation} {name}")


@pytest.mark.slow
# Measured 2026-11-30 with the old tracker (1 m/s^2, one-plot start, 5-missed-scan deletion): 19-22 % of steps
# inside, 74-79 % below (conservative). Measured 2026-12-08 after issue 25's changes (1e-4 m/s^2 ballistic noise,
# batch start, coasting, dormant thrust mode), Hwasong-15, 20 trials: median per-trial ANEES 4.1-5.3 of 6, but
# the ensemble NEES is above the band on 87-93 % of midcourse steps, because 6 of 20 trials (US isolated:
# trials 5, 9, 10, 13, 16, 19) carry a track that leaves burnout and the 3 m/s RV/stage separation with a
# velocity error of about 7 m/s against a sigma of 0.3 m/s and coasts on it (ANEES 1,700-17,000); the
# detections are unbiased there (z-scores within 0.4). Boost stays conservative (74-85 % below). Needs the
# closely-spaced-objects and separation treatment of issue 25 item 4.
@pytest.mark.xfail(strict=True, reason="ensemble NEES outside the chi-square band after RV/stage separation (issue 25)")
def test_hwasong15_trilateral_measurement_level_anees_within_chi2_bounds(scenarios_dir):
    """Monte Carlo ANEES at each step, over M trials, inside its two-sided 95 % chi-square bounds.

    Bar-Shalom, Li & Kirubarajan 2001, sec. 5.4.2: with M independent runs, M times the
    average NEES at a step is chi-square with 6M degrees of freedom for a consistent filter.
    """
    from scipy.stats import chi2

    from fusion.metrics import nees
    from sim.engine import TrialResults, build_radars, run_chunk

    sc = shortened(scenarios_dir / "hwasong15_2017-11-29.toml", trials=4)
    kept = {}

    def keep(policy, nation, truth, dets, tracks, mask, arrival, m):
        kept[nation] = nees(truth, tracks)[:, 0, :]  # (M, T), the RV

    run_chunk(sc, build_radars(sc), np.arange(4), sc.info.seed, ["trilateral"], TrialResults(), keep)
    M = 4
    lo, hi = chi2.ppf([0.025, 0.975], 6 * M) / M
    for nation, e in kept.items():
        both = np.isfinite(e).all(axis=0)  # steps where every run has a confirmed track on the RV
        assert both.sum() >= 100, nation
        anees_k = e[:, both].mean(axis=0)
        inside = np.mean((anees_k >= lo) & (anees_k <= hi))
        # 95 % bounds: about 95 % of the steps inside for a consistent filter; successive steps are
        # correlated, so allow some slack, but an over- or under-confident filter falls far below.
        assert inside >= 0.85, (nation, inside, float(np.median(anees_k)))


def test_cli_run_writes_outputs_and_prints_table(scenarios_dir, tmp_path, capsys):
    text = (scenarios_dir / "hwasong15_2017-11-29.toml").read_text()
    text = text.replace("trials = 10", "trials = 2\nduration_s = 120.0")
    path = tmp_path / "short.toml"
    path.write_text(text)
    out_dir = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out_dir), "--policies", "isolated", "trilateral",
                 "--set", "sharing.link_latency_s=10"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "firm track" in printed and "trilateral" in printed and "peak memory" in printed
    # standard error is no terminal here: a start line, then a line per tenth of the trials, ending at 100 %
    progress = captured.err.strip().splitlines()
    label = "hwasong15-2017-11-29: isolated, trilateral x US, JP, KR trackers"
    assert progress[0] == f"{label}: started, 2 trials; a line each 10% of them"
    assert progress[-1].startswith(f"{label}: 100 % (2.0 of 2 trials) in ") and progress[-1].endswith(", ETA 0 s")
    percents = [int(re.search(r": +(\d+) % \(", ln).group(1)) for ln in progress[1:]]
    # inside the one chunk: several tracker runs each move it on, one line per tenth crossed
    assert percents == sorted(percents) and len(percents) >= 3 and all(ln.startswith(label) for ln in progress)
    assert len({p // 10 for p in percents}) == len(percents)
    # units in brackets are rich markup unless escaped; they must reach the reader
    assert "firm track [s]" in printed and "pos RMSE [m]" in printed
    assert "matched ratio" in printed and "warning [s to go]" in printed  # which seconds each one counts
    report = (out_dir / "report.md").read_text()  # the detail table has the rest, with units
    assert "vel RMSE [m/s]" in report and "IPP err @120s [km]" in report and "NEES inside" in report
    names = sorted(p.name for p in out_dir.iterdir())
    assert "metrics.json" in names and "report.md" in names and "coverage.png" in names
    from sim.report import output_names  # the names checked before the run are the names written

    assert sorted(output_names(load_scenario(path))) == names
    assert not [n for n in names if n.endswith(".tmp")]
    doc = json.loads((out_dir / "metrics.json").read_text())
    assert doc["tracker"] == {"filter": "imm", "association": "jpda", "process_noise_mps2": 1e-4,
                              "gate_probability": 0.9997, "confirm_m": 3, "confirm_n": 5, "delete_after_missed": 5,
                              "deletion": "quality", "initiation": "batch", "jpda_pd": "fixed", "max_position_sigma_km": 50.0,
                              "init_max_speed_mps": 7500.0, "max_tracks": 6, "when_full": "drop",
                              "miss_deletion_probability": 1e-3, "registration": "estimate"}
    assert doc["overrides"] == ["sharing.link_latency_s=10"]
    assert doc["resolved"]["sharing"]["links"]["trilateral"][0]["latency_s"] == 10.0
    report = (out_dir / "report.md").read_text()
    assert "overrides: `--set sharing.link_latency_s=10`" in report
    assert "trilateral sharing: over the steps both hold a firm track" in report
    # a cut run says so, in the report and on the terminal (second new-user trial of this session)
    span = "This run covers only duration_s = 120 s from the first launch; the flights last until about 3,1"
    assert span in report and span in printed
    from sim.report import span_sentence

    assert span_sentence(load_scenario(scenarios_dir / "hwasong15_2017-11-29.toml")) is None  # the whole flight
    assert "Filter consistency: median ANEES from" in report
    for name in names:
        if name.endswith(".png"):
            assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv_tail, words",
    [
        (["--trials", "0"], "--trials"),
        (["--trials", "1000001"], "--trials"),
        (["--seed", "-3"], "--seed"),
        (["--seed", str(2**63)], "--seed"),
        (["--policies", "gsomia"], "--policies"),
        (["--workers", "0"], "--workers"),
        (["--chunk-trials", "0"], "--chunk-trials"),
    ],
    ids=["zero-trials", "too-many-trials", "negative-seed", "seed-over-64-bit", "unknown-policy", "zero-workers",
         "zero-chunk"],
)
def test_cli_run_bad_input_one_line_exit_2_nothing_written(scenarios_dir, tmp_path, capsys, argv_tail, words):
    out_dir = tmp_path / "out"
    code = main(["run", str(scenarios_dir / "hwasong15_2017-11-29.toml"), "--out", str(out_dir)] + argv_tail)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_out_dir_is_probed_by_writing_not_by_permission_bits(tmp_path, monkeypatch):
    # Root passes os.access everywhere; a folder where no file can be made must still fail before the run.
    import tempfile

    from sim.errors import InputError
    from sim.report import check_out_dir

    assert check_out_dir(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []  # the probe leaves nothing

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(InputError, match="Read-only file system"):
        check_out_dir(tmp_path / "out")


@pytest.mark.parametrize("out", ["file", "file/sub", "", "taken"],
                         ids=["a-file", "under-a-file", "empty", "report-md-is-a-folder"])
def test_cli_run_bad_out_fails_before_the_run(scenarios_dir, tmp_path, capsys, monkeypatch, out):
    import sim.engine

    def no_run(*args, **kwargs):
        raise AssertionError("the run started before --out was checked")

    monkeypatch.setattr(sim.engine, "run_scenario", no_run)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    (tmp_path / "taken" / "report.md").mkdir(parents=True)  # third new-user trial: failed only after the run
    target = str(tmp_path / out) if out else ""
    assert main(["run", str(scenarios_dir / "hwasong15_2017-11-29.toml"), "--out", target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]
    assert blocker.read_text() == "not a folder"


def test_outputs_are_written_all_or_none(hs15_early, tmp_path, monkeypatch):
    """A folder where a file goes, or a write failing midway, leaves the folder as it was (new-user trial:
    a traceback after metrics.json and the figures had been written, report.md not)."""
    import sim.report
    from sim.errors import InputError

    sc, run = hs15_early
    out = tmp_path / "o"
    (out / "report.md").mkdir(parents=True)
    with pytest.raises(InputError, match="report.md"):
        write_outputs(out, sc, run)
    assert [p.name for p in out.iterdir()] == ["report.md"]

    out2 = tmp_path / "o2"
    real, calls = sim.report._stage, []

    def full_disk(path, data):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(sim.report, "_stage", full_disk)
    with pytest.raises(InputError, match="No space left on device"):
        write_outputs(out2, sc, run)
    assert len(calls) == 3 and list(out2.iterdir()) == []  # no output, no temporary file
    monkeypatch.setattr(sim.report, "_stage", real)
    write_outputs(out2, sc, run)
    assert {"metrics.json", "report.md"} <= {p.name for p in out2.iterdir()}


def test_metric_that_never_happened_is_null_and_counted(hs15_early):
    sc, out = hs15_early
    # 300 s of a 53 min flight: no trial reaches impact, so IPP error at 120 s to go never happens.
    s = row(out, "trilateral", "JP", "ipp_error_km_at_120s")
    assert s["median"] is None and s["n_missing"] == s["n"] == sc.info.trials
    assert np.isfinite(row(out, "trilateral", "JP", "pos_rmse_m")["median"])


@pytest.fixture(scope="module")
def kn23(scenarios_dir):
    """The first KN-23 of 2019-07-25 (depressed, ~50 km apogee, pull-up), 2 trials, isolated and trilateral.

    Ideal radars (``bias = "off"``): these tests are about the glide lift and the horizon. With the
    catalog's registration biases and their in-loop estimate, Japan's and Korea's trilateral ANEES here
    is 19.5 and 22.1 against 9.1 and 9.4 without biases (measured 2026-12-08): the registration's own
    residual overconfidence (issue 20, open), which this fixture would otherwise blame on the lift noise.
    """
    sc = shortened(scenarios_dir / "kn23_2019-07-25.toml", trials=2)
    ideal = tuple(dataclasses.replace(s, overrides=tuple(s.overrides) + (("bias", "off"),)) for s in sc.sensors)
    sc = dataclasses.replace(sc, threats=sc.threats[:1], sensors=ideal)
    return sc, run_scenario(sc, policies=["isolated", "trilateral"])


def test_kn23_japan_gains_custody_with_trilateral_sharing(kn23):
    _, out = kn23
    iso_c = row(out, "isolated", "JP", "completeness")["median"]
    tri_c = row(out, "trilateral", "JP", "completeness")["median"]
    assert tri_c is not None
    assert iso_c is None or iso_c < tri_c
    iso_f = row(out, "isolated", "JP", "firm_track_time_s")["median"]
    tri_f = row(out, "trilateral", "JP", "firm_track_time_s")["median"]
    # Japan's own radars see a 50 km apogee flight late, if at all: later or missing firm track alone.
    assert iso_f is None or iso_f > tri_f


def test_kn23_trackers_cover_the_glide_lift(kn23):
    """The KN-23 scenario's manoeuvre noise keeps its trackers near consistency.

    The glide and pull-up lift (3-30 m/s^2) is not in the trackers' models; with the
    default 1 m/s^2 white-noise acceleration every row's ANEES was 170-730 (2 trials,
    measured). A consistent 6-state filter gives about 6; the bounds here allow a
    factor of two either way, as successive steps within a trial are correlated.
    """
    sc, out = kn23
    assert sc.tracker.process_noise == 12.0
    for nation in ("JP", "KR", "US"):
        anees = row(out, "trilateral", nation, "anees")["median"]
        assert 3.0 <= anees <= 12.0, (nation, anees)


@pytest.mark.parametrize("medians, words", [((4.0, 50.0), "overconfident"), ((2.0, 5.0), "conservative"),
                                            ((5.0, 7.5), "close to consistent"),
                                            ((5.18, 11.95), "above 8 lean overconfident"),
                                            ((3.4, 7.85), "below 4.5 lean conservative")])
def test_report_reads_the_anees_column_against_six(medians, words):
    from sim.report import consistency_sentence

    doc = {"results": [{"target": "rv", "nation": n, "policy": "isolated", "anees": {"median": m}}
                       for n, m in zip(("JP", "US"), medians)]
           + [{"target": "rv", "anees": {"median": None}}, {"target": "other", "anees": {"median": 900.0}}]}
    text = consistency_sentence(doc, "rv")
    assert words in text and f"from {medians[0]:.2f} to {medians[1]:.2f}" in text
    assert ("close to consistent" in text) == (words == "close to consistent")  # new-user trial: 11.95 was "close"
    # a cut-off named in the reading is explained once (a new-user trial asked where 4.5 came from)
    named = 3.0 <= medians[0] < 4.5 or 8.0 < medians[1] <= 12.0 or words == "close to consistent"
    assert text.count("is 6 within a factor of 4/3, a reading band") == (1 if named else 0)
    if medians[1] > 12.0:  # the overconfident rows are named (a second new-user trial)
        assert f"values well above 6 (US isolated {medians[1]:.0f})" in text
    assert consistency_sentence(doc, "nothing") is None


def test_report_says_which_rows_never_detected_the_target():
    """New-user trial: a scenario whose only radar could not see the flight printed rows of 'none' and
    'completeness 0% vs 0%' with no word that nothing was ever detected."""
    from sim.report import undetected_sentence

    def row(policy, nation, detect):
        return {"policy": policy, "nation": nation, "target": "rv", "detect_time_s": {"median": detect}}

    doc = {"results": [row("isolated", "JP", None), row("trilateral", "JP", 40.0), row("isolated", "KR", None),
                       row("isolated", "US", 35.0)]}
    text = undetected_sentence(doc, "rv")
    assert "Never detected rv in any trial: JP isolated, KR isolated" in text
    for r in doc["results"]:
        r["detect_time_s"]["median"] = None
    assert undetected_sentence(doc, "rv").startswith("No radar detected rv in any trial")
    # and the gain sentence compares nothing where neither policy saw it (not "completeness 0% vs 0%")
    from sim.report import gain_sentence

    for r in doc["results"]:
        r["completeness"] = {"median": 0.0}
    assert gain_sentence(doc, "JP", "rv") == ("For Japan, trilateral sharing: nothing to compare (neither it nor "
                                              "isolated tracking detects rv in any trial).")
    for r in doc["results"]:
        r["detect_time_s"]["median"] = 30.0
    assert undetected_sentence(doc, "rv") is None


# The gain sentences' branches are in tests/test_report_sentences.py (issue 24: paired, matched comparisons).


def test_terminal_table_drops_the_ranges_rather_than_split_numbers():
    """A 120-column terminal gets the medians whole and a pointer to the ranges; a log gets everything."""
    import io

    from rich.console import Console

    from sim.report import TABLE_KEYS, print_tables

    def summary(m):
        return {"median": m, "p10": 0.9 * m, "p90": 1.1 * m, "n": 4, "missing": 0}

    doc = {"scenario": "s", "trials": 4, "results": [
        {"policy": p, "nation": n, "target": "RV", **{k: summary(1234.5 if "time" in k else 0.75)
                                                     for k in TABLE_KEYS}}
        for n in ("JP", "KR", "US") for p in ("isolated", "bilateral", "trilateral")]}

    def printed(width):
        buf = io.StringIO()
        print_tables(doc, Console(width=width, file=buf))
        return buf.getvalue()

    narrow, wide = printed(120), printed(240)  # 240: a pipe or a log
    assert "p10-p90 ranges: report.md" in narrow and "(1111-1358)" not in narrow
    assert narrow.count("1234") == 9 * 2 and narrow.count("trilateral") == 3  # whole numbers and names, no folds
    assert "(1111-1358)" in wide and "p10-p90 ranges: report.md" not in wide
    # 80 columns: the metric columns in two tables, each with nation and policy, no number split
    # (second new-user trial: "134.0" printed as "134." over "0").
    # (The headline has six metric columns since issue 24: 100 columns hold them in one table.)
    assert printed(100).count("(1 of ") == 0 and printed(100).count("1234") == 9 * 2
    for width in (60, 50):
        narrower = printed(width)
        assert narrower.count("1234") == 9 * 2 and narrower.count("(1 of ") == 1, width
        tables = narrower.count("┏")
        assert tables >= 2 and narrower.count("trilateral") == 3 * tables, width
    # No width crops the table (third new-user trial: at 106-145 and 192-200 columns the right edge, and the
    # digits of a wide last column, were cut off): every row of every rendering ends with its border.
    for r in doc["results"]:
        r["gospa_m"] = {"median": 82430.0, "p10": 82202.0, "p90": 82659.0, "n": 4, "missing": 1}
    for width in range(60, 241):
        rows = [ln for ln in printed(width).splitlines() if ln[:1] in "┏┃┡│└"]
        assert rows and all(ln.rstrip()[-1] in "┓┃┩│┘" for ln in rows), width


def test_scan_interval_shorter_than_the_grid_step_counts_missed_scans_per_step(scenarios_dir, tmp_path):
    """Scans fall on the grid, so a 0.1 ms scan interval scans once per 1 s step, exactly as 1 s does;
    the tracker must count missed scans in that kept revisit (new-user trial: with the nominal
    0.1 ms, every track died 0.5 ms after its last update and Japan never got a firm track)."""
    text = (scenarios_dir / "hwasong15_2017-11-29.toml").read_text()
    text = text.replace("trials = 10", "trials = 1\nduration_s = 150.0")
    runs = {}
    for interval in ("1.0", "0.0001"):
        path = tmp_path / f"scan_{interval}.toml"
        path.write_text(text.replace('catalog = "jp-fps5-sado"', f'catalog = "jp-fps5-sado"\nscan_interval_s = {interval}'))
        sc = load_scenario(path)
        runs[interval] = run_scenario(sc, policies=["isolated"])
    for key in ("detect_time_s", "firm_track_time_s", "completeness"):
        fast, nominal = row(runs["0.0001"], "isolated", "JP", key), row(runs["1.0"], "isolated", "JP", key)
        assert fast == nominal, key
    assert row(runs["1.0"], "isolated", "JP", "firm_track_time_s")["median"] is not None


def test_figures_say_so_when_nothing_was_seen(scenarios_dir, monkeypatch):
    """Before any radar can see the RV (its first 5 s), every figure states that it is empty instead of
    showing blank axes (new-user trial: empty PNGs)."""
    import sim.report

    sc = shortened(scenarios_dir / "hwasong15_2017-11-29.toml", duration_s=5.0, trials=1)
    run = run_scenario(sc, policies=["isolated"])
    said = {}

    def capture(fig):
        said[fig] = [t.get_text() for ax in fig.axes for t in ax.texts]
        return b""

    monkeypatch.setattr(sim.report, "figure_png", capture)
    names = [name for _, name, _ in sim.report._figures(run, sc)]
    assert "coverage.png" in names and len(said) == len(names) == 4  # position error, NEES, IPP, coverage
    texts = [t for ts in said.values() for t in ts]
    assert "no radar detected any threat in trial 0" in texts
    for nation in ("US", "JP", "KR"):
        assert any(t.startswith(f"{nation}: no firm track on") for t in texts), texts
    assert any(t.startswith("no predicted impact point for") for t in texts), texts


def test_report_names_radars_that_saw_nothing(scenarios_dir, tmp_path):
    """The Aegis Ashore what-if: the Araya site never sees the depressed KN-23 (new-user trial: the report
    did not say so). Which radars saw nothing follows from trial 0's detections."""
    from sim.report import silent_radars_sentence

    sc = shortened(scenarios_dir / "whatif_aegis_ashore.toml", trials=1)
    run = run_scenario(sc, policies=["isolated"])
    sensor = run.curves.coverage[0]
    names = [r.name for r in run.radars]
    silent = [n for k, n in enumerate(names) if not np.any(sensor == k)]
    assert "jp-aegis-ashore-araya" in silent and "jp-aegis-ashore-mutsumi" not in silent
    text = silent_radars_sentence(names, run.curves.coverage)
    assert text.startswith(f"No detection of any threat object in trial 0 by {', '.join(silent)} (")
    write_outputs(tmp_path, sc, run)
    assert text in (tmp_path / "report.md").read_text()
    assert silent_radars_sentence(names[:1], (np.zeros(3, int), np.zeros(3, int), np.zeros(3), 1)) is None


def test_a_threat_name_the_font_lacks_does_not_warn_per_glyph(scenarios_dir, tmp_path):
    """New-user trial: an emoji in a threat name put matplotlib's 'Glyph ... missing' warnings on stderr."""
    import warnings

    sc = shortened(scenarios_dir / "hwasong15_2017-11-29.toml", duration_s=5.0, trials=1)
    sc = dataclasses.replace(sc, threats=(dataclasses.replace(sc.threats[0], name="HS-15 \U0001F680"),))
    run = run_scenario(sc, policies=["isolated"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_outputs(tmp_path, sc, run)
    assert not [w for w in caught if "missing from" in str(w.message)]
    assert (tmp_path / "position_error_hs-15.png").exists()
