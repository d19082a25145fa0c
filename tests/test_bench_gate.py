"""The CI speed gate of ``gsomia-sim bench`` and the report runner.

The gate compares the batched EKF step with filterpy's per-object loop on the
same tracks, in the same run, so these tests check ratios, never absolute
times. The gate's own measurement (``benchmarks.report.measure_gate``) runs at
N = 1,000 here (the CI gate uses 10,000) to stay fast; the real kernels must
pass the CI threshold there too, and the same kernels made deliberately slow
(vectorisation lost: a Python loop over objects inside the step) must trip it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fusion.kalman as kalman
from benchmarks import report
from benchmarks.bench_scenario import RADARS_3, RADARS_6, forecast_s, load, with_radars
from sim.errors import InputError

N_TEST = 1_000  # tracks; the CI gate runs at report.GATE_N
_RUN_SUITES = report.run_suites  # the real runner, for tests that monkeypatch report.run_suites


def _per_object(fn, n_batched_args):
    """``fn`` applied to one object at a time (the first ``n_batched_args`` arguments carry the object axis)."""

    def slow(*args):
        out = [fn(*(a[i:i + 1] for a in args[:n_batched_args]), *args[n_batched_args:])
               for i in range(len(args[0]))]
        return tuple(np.concatenate(parts) for parts in zip(*out))

    return slow


def _slow_step(real_step):
    """``BallisticAerEKF.step`` one track at a time (in place on row views, as the batched step)."""

    def step(self, x, P, z):
        for i in range(len(x)):
            real_step(self, x[i:i + 1], P[i:i + 1], z[i:i + 1])

    return step


def test_gate_passes_with_real_kernel_and_trips_with_slow_kernel(monkeypatch):
    rows = report.measure_gate(N_TEST)
    ok, reason = report.check_gate(rows, N=N_TEST)
    assert ok, reason
    fast = report.gate_speedups(rows, N_TEST)

    real_predict, real_update, real_step = kalman.predict, kalman.update, kalman.BallisticAerEKF.step
    # predict(x, P, F, Q, fx): x, P, F, fx carry the object axis; Q is shared.
    monkeypatch.setattr(kalman, "predict",
                        lambda x, P, F, Q, fx=None: _per_object(lambda x, P, F, fx, Q: real_predict(x, P, F, Q, fx), 4)(
                            x, P, F, fx, Q))
    # update(x, P, z, R, hx, H, residual): R and residual are shared.
    monkeypatch.setattr(kalman, "update",
                        lambda x, P, z, R, hx, H, residual=None: _per_object(
                            lambda x, P, z, hx, H, R, res: real_update(x, P, z, R, hx, H, res), 5)(x, P, z, hx, H, R,
                                                                                                   residual))
    monkeypatch.setattr(kalman.BallisticAerEKF, "step", _slow_step(real_step))

    slow_rows = report.measure_gate(N_TEST)
    ok, reason = report.check_gate(slow_rows, N=N_TEST)
    assert not ok, reason
    assert "FAILED" in reason and f"{report.GATE_MIN_SPEEDUP:g}x" in reason
    slow = report.gate_speedups(slow_rows, N_TEST)
    assert set(slow) == set(fast)
    for kernel in fast:  # each kernel's own slowdown was seen by the measurement
        assert slow[kernel] < report.GATE_MIN_SPEEDUP < fast[kernel], (kernel, slow[kernel], fast[kernel])


def test_slow_kernel_gives_the_same_numbers():
    """The deliberately slow kernel is the same maths (so the gate test measured speed, not a broken step)."""
    from benchmarks.bench_kalman import DT, P0, Q6, R_AER, SITE, _tracks

    x, z = _tracks(7)
    P = np.broadcast_to(P0, (7, 6, 6)).copy()
    ekf = kalman.BallisticAerEKF(DT, Q6, R_AER, SITE.ecef, SITE.R_enu)
    xa, Pa = x.copy(), P.copy()
    ekf.step(xa, Pa, z)
    xb, Pb = x.copy(), P.copy()
    _slow_step(kalman.BallisticAerEKF.step)(kalman.BallisticAerEKF(DT, Q6, R_AER, SITE.ecef, SITE.R_enu), xb, Pb, z)
    np.testing.assert_allclose(xb, xa, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(Pb, Pa, rtol=1e-10, atol=1e-9)


def test_gate_rules():
    rows = [dict(N=10_000, speedup=25.0, fused_speedup=40.0), dict(N=100, speedup=1.0)]
    assert report.check_gate(rows)[0]
    assert not report.check_gate([dict(rows[0], speedup=19.9)])[0]
    assert not report.check_gate([dict(rows[0], fused_speedup=float("nan"))])[0]
    ok, reason = report.check_gate(rows[1:])
    assert not ok and "no EKF measurement" in reason
    assert report.check_gate([dict(N=10_000, speedup=20.0)])[0]  # without a fused kernel: the generic one alone


def test_fit_exponent_recovers_power_law():
    n = np.array([10.0, 100.0, 1000.0])
    fit = report.fit_exponent(n, 0.3 * n**1.4)
    assert fit["exponent"] == pytest.approx(1.4, abs=1e-12)
    assert fit["a"] == pytest.approx(0.3, rel=1e-12)
    assert fit["stderr"] == pytest.approx(0.0, abs=1e-9)
    # noisy points: the slope of the least-squares line in log-log (numpy.polyfit as the reference)
    t = np.array([2.0, 11.0, 170.0])
    assert report.fit_exponent(n, t)["exponent"] == pytest.approx(np.polyfit(np.log(n), np.log(t), 1)[0], rel=1e-12)
    assert report.fit_exponent([3, 6], [1.0, 2.0])["stderr"] is None
    with pytest.raises(InputError):
        report.fit_exponent([5, 5], [1.0, 2.0])
    with pytest.raises(InputError):
        report.fit_exponent([1, 2], [0.0, 2.0])


def test_forecast_extends_the_power_law_of_the_last_two_runs():
    rows = [dict(trials=n, wall_s=2.0 * n**0.7) for n in (1, 10, 100)]
    assert forecast_s(rows, 1000) == pytest.approx(2.0 * 1000**0.7, rel=1e-12)
    assert forecast_s(rows[:1], 1000) is None


def _fake_suites(kalman_speedup):
    ekf = [dict(N=report.GATE_N, ref_objects=200, batched_s=0.05, filterpy_s=0.05 * kalman_speedup,
                batched_track_steps_per_s=2e5, filterpy_track_steps_per_s=2e5 / kalman_speedup,
                speedup=kalman_speedup)]
    run = dict(radars=12, wall_s=1.0, cpu_s=1.0, peak_rss_mib=100.0, policies=["isolated"], tracker_runs=3,
               track_steps=100, updates=10, track_steps_per_s=100)

    def scenario(quick):
        by_trials = [dict(run, trials=n, wall_s=0.5 * n**0.8, cpu_s=0.5 * n**0.8) for n in (1, 2, 4)]
        by_radars = [dict(run, trials=2, radars=k, wall_s=0.1 * k, cpu_s=0.1 * k) for k in (3, 6, 12)]
        return dict(scenario="s", file="s.toml", duration_s=60.0, note="test", chunk_trials=25, setup_s=0.0,
                    by_trials=by_trials, by_radars=by_radars, profile=None)

    def broken(quick):
        raise RuntimeError("boom")

    return {"kalman": lambda q: {"ekf": ekf, "ukf": [], "imm": []}, "scenario": scenario, "sensors": broken}


def test_runner_report_files_and_exit_status(tmp_path, monkeypatch, capsys):
    doc = report.run_suites(True, suites=_fake_suites(50.0))
    assert doc["gate"]["ok"] and doc["gate"]["speedups"] == {"kalman.predict+update": 50.0}
    assert doc["growth"]["trials"]["wall"]["exponent"] == pytest.approx(0.8, abs=1e-12)
    assert doc["growth"]["radars"]["cpu"]["exponent"] == pytest.approx(1.0, abs=1e-12)
    assert doc["suites"]["sensors"]["error"] == "RuntimeError: boom"
    report.write_report(doc, tmp_path / "b.json", tmp_path / "b.md")
    assert json.loads((tmp_path / "b.json").read_text()) == doc
    md = (tmp_path / "b.md").read_text()
    assert "trials^0.80" in md and "**failed:** RuntimeError: boom" in md and "| scenario |" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "b.md"]  # no temporary files left

    class Args:
        quick, json, markdown = True, None, None

    for speedup, suites_ok, want in ((50.0, True, 0), (5.0, True, 1), (50.0, False, 1)):
        fake = _fake_suites(speedup)
        if suites_ok:
            del fake["sensors"]
        monkeypatch.setattr(report, "run_suites", lambda quick, f=fake: _RUN_SUITES(quick, suites=f))
        assert report.main(Args) == want
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert ("FAILED" in err) == (speedup < report.GATE_MIN_SPEEDUP)
        assert ("suite(s) failed" in err) == (not suites_ok)


@pytest.mark.parametrize("flag, where, words", [
    ("--markdown", "missing/b.md", "existing folder"),
    ("--json", ".", "is a folder"),  # new-user trial: a traceback after the whole run
    ("--json", "", "not empty"),
    ("--markdown", "same", "different file"),  # new-user trial: --json b.json --markdown b.json ran, JSON lost
], ids=["folder-missing", "a-folder", "empty", "same-as-json"])
def test_output_file_checked_before_running(tmp_path, monkeypatch, capsys, flag, where, words):
    from sim.cli import main

    monkeypatch.setattr(report, "run_suites", lambda quick: pytest.fail("suites ran"))
    path = str(tmp_path / where) if where else ""

    same = where == "same"
    if same:
        path = str(tmp_path / "b.out")

    class Args:
        quick = True
        json = path if flag == "--json" or same else None
        markdown = path if flag == "--markdown" else None

    with pytest.raises(InputError, match=flag) as err:
        report.main(Args)
    assert words in str(err.value)
    argv = ["bench", "--quick", flag, path] + (["--json", path] if same else [])
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0]


def test_radar_subsets_keep_all_three_nations():
    from sensors.catalog import CATALOG

    scenario = load()
    for k, names in ((3, RADARS_3), (6, RADARS_6)):
        sub = with_radars(scenario, k)
        assert len(sub.sensors) == k and {s.catalog for s in sub.sensors} == set(names)
        assert {CATALOG[s.catalog]["nation"] for s in sub.sensors} == {"US", "JP", "KR"}
    assert with_radars(scenario, len(scenario.sensors)) is scenario
    with pytest.raises(InputError):
        with_radars(scenario, 5)
