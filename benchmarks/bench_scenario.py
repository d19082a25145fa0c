"""Cost of the whole Hwasong-15 scenario as the work grows: trials, radars, peak memory, profile.

Work: ``scenarios/hwasong15_2017-11-29.toml`` through :func:`sim.engine.run_scenario`
(truth, detections, sharing network, the tracker of every nation under every
policy, metrics). Time is measured against the number of Monte Carlo trials
(12 radars) and against the number of radars (fixed trials); the growth
exponent ``b`` of ``time ~ a * work**b`` is fitted in :mod:`benchmarks.report`.

Radar subsets keep all three nations (one, two or four radars each), chosen
among the radars that see this flight:

* 3 radars: Shariki TPY-2 (US), Sado FPS-5 (JP), Green Pine B-1 (KR);
* 6 radars: the above plus Seongju THAAD (US), Aegis Sea of Japan north (JP),
  ROKN Aegis East Sea (KR);
* 12 radars: the scenario as written.

The nominal flight of the threat (a steering solve, cached per process) is
solved once before any timing and reported separately as ``setup_s``.

A *track-step* is one track slot holding a live track (finite state) at one
output time of one trial, summed over the tracker runs actually made (the
engine runs one tracker per distinct data feed, so two (policy, nation) pairs
that receive the same data share it).

Quick mode shortens the flight to its first ``QUICK_DURATION_S`` seconds and
uses few trials, so the whole ``gsomia-sim bench --quick`` stays under a minute;
the output says so.

Run ``python benchmarks/bench_scenario.py --quick``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import pstats
import re
import resource
import time
from pathlib import Path

import numpy as np

from sim.scenario import DEFAULT_CHUNK_TRIALS

REPO = Path(__file__).resolve().parents[1]
_NAME = Path("scenarios") / "hwasong15_2017-11-29.toml"
# The source checkout's file; from an installed package, the one under the working directory.
SCENARIO_FILE = REPO / _NAME if (REPO / _NAME).is_file() else Path.cwd() / _NAME

# Radar subsets (catalog names), all three nations in each; see the module docstring.
RADARS_3 = ("us-tpy2-shariki", "jp-fps5-sado", "kr-greenpine-b-1")
RADARS_6 = RADARS_3 + ("us-thaad-seongju", "jp-aegis-soj-north", "kr-aegis-eastsea")

QUICK_DURATION_S = 60.0  # s of flight simulated in quick mode (boost: first detections and tracks)
QUICK_TRIALS = (1, 4)  # the tracker's cost per run is mostly per time step, so few trials show the trend
QUICK_RADAR_TRIALS = 1
FULL_TRIALS = (10, 100, 1000)
FULL_RADAR_TRIALS = 10
CHUNK_TRIALS = DEFAULT_CHUNK_TRIALS  # the engine's default, for the quick runs and the radar rows
# Full-mode trial rows: the compiled tracker costs the same per trial in any chunk, and the trackers and
# metrics take a chunk in batches of sim.engine.BATCH_TRIALS whatever its size, so a chunk larger than the
# default only holds more truth and detections (a 25-trial chunk of the whole flight peaked at 742 MiB,
# 2026-12-07); two worker processes use both cores of the reference machine.
FULL_CHUNK_TRIALS = DEFAULT_CHUNK_TRIALS
FULL_WORKERS = 2

# Folders of project code, for picking the project's own functions out of a profile.
PROJECT_DIRS = tuple(str(REPO / d) + "/" for d in ("sim", "sensors", "fusion"))
# Pure drivers that contain everything and would fill the top of a cumulative list.
DRIVERS = {"run_scenario", "run_chunk", "nation_tracks", "tracker_for"}


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------

def reset_peak_rss() -> bool:
    """Reset the process's peak resident set size (Linux ``/proc/self/clear_refs``, value 5).

    Returns
    -------
    bool
        True if reset; False where the kernel does not allow it (then
        :func:`peak_rss_mib` is the peak of the whole process so far).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size since the last :func:`reset_peak_rss`, MiB (``VmHWM``; else ``ru_maxrss``)."""
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)\s+kB", text).group(1)) / 1024.0
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ---------------------------------------------------------------------------------------------
# Scenario variants
# ---------------------------------------------------------------------------------------------

def load(path=SCENARIO_FILE, duration_s: float | None = None):
    """The Hwasong-15 scenario, optionally cut to the first ``duration_s`` seconds of flight."""
    from sim.scenario import load_scenario

    scenario = load_scenario(path)
    if duration_s is not None:
        scenario = dataclasses.replace(scenario, info=dataclasses.replace(scenario.info, duration=float(duration_s)))
    return scenario


def with_radars(scenario, n: int):
    """The scenario with ``n`` of its radars (3, 6 or all), all three nations kept.

    Raises
    ------
    sim.errors.InputError
        ``n`` not 3, 6 or the scenario's count, or a subset radar missing from the scenario.
    """
    from sim.errors import InputError

    if n == len(scenario.sensors):
        return scenario
    names = {3: RADARS_3, 6: RADARS_6}.get(n)
    if names is None:
        raise InputError.single("bench.radars", n, f"3, 6 or {len(scenario.sensors)}")
    by_catalog = {s.catalog: s for s in scenario.sensors}
    missing = [c for c in names if c not in by_catalog]
    if missing:
        raise InputError.single("bench.radars", missing, "radars of the scenario: " + ", ".join(by_catalog))
    keep = [s for s in scenario.sensors if s.catalog in names]  # scenario order
    return dataclasses.replace(scenario, sensors=tuple(keep))


def time_run(scenario, trials: int, seed: int = 1, chunk_trials: int = CHUNK_TRIALS, workers: int = 1) -> dict:
    """Run the scenario once (every policy, every nation) and measure it.

    Returns
    -------
    dict
        trials, radars, chunk_trials, workers, wall_s, cpu_s (this process's CPU
        time; below wall when the machine is shared or the work runs in workers),
        peak_rss_mib (peak of this process during the run where the kernel allows
        resetting it, see ``peak_rss_scope``), worker_peak_rss_mib (largest peak
        of a worker process so far, None with one process), tracker_runs,
        track_steps, updates (:attr:`sim.engine.TrialResults.work`),
        track_steps_per_s, trial_runs_per_s (trials x policies x nations per second).
    """
    from sim.engine import run_scenario

    scoped = reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    run = run_scenario(scenario, trials=trials, seed=seed, chunk_trials=chunk_trials, workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    runs = trials * len(run.policies) * 3
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0 if workers > 1 else None
    return dict(trials=trials, radars=len(scenario.sensors), chunk_trials=chunk_trials, workers=workers,
                wall_s=round(wall, 3), cpu_s=round(cpu, 3), peak_rss_mib=round(peak_rss_mib(), 1),
                peak_rss_scope="this run" if scoped else "process",
                worker_peak_rss_mib=None if children is None else round(children, 1),
                policies=list(run.policies), **run.work,
                track_steps_per_s=round(run.work["track_steps"] / wall), trial_runs_per_s=round(runs / wall, 3))


def profile_top(scenario, trials: int, seed: int = 1, top: int = 5, chunk_trials: int = CHUNK_TRIALS) -> dict:
    """Where the time goes: one profiled run in this process, top project functions (``cProfile``).

    To profile a run made of many chunks, profile one chunk of the same size: the
    chunks of a run are alike (same flight, same radars, trials batched alike).

    Project functions are those in ``sim/``, ``sensors/`` and ``fusion/``; the
    engine's pure drivers (``run_scenario``, ``run_chunk``, ``nation_tracks``,
    ``tracker_for``), which contain everything, are left out of the lists.

    Returns
    -------
    dict
        trials, radars, profiled_wall_s (with profiler overhead),
        by_cumulative and by_own_time: lists of ``{function, file, calls,
        cumulative_s, own_s, share}`` where ``share`` is cumulative_s (resp.
        own_s) over the profiled total.
    """
    from sim.engine import run_scenario

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run_scenario(scenario, trials=trials, seed=seed, chunk_trials=chunk_trials)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    total = max(st.total_tt, 1e-12)
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():
        if not file.startswith(PROJECT_DIRS) or func in DRIVERS:
            continue
        rows.append(dict(function=func, file=f"{Path(file).relative_to(REPO)}:{line}", calls=int(nc),
                         cumulative_s=round(ct, 3), own_s=round(tt, 3)))

    def best(key):
        out = sorted(rows, key=lambda r: -r[key])[:top]
        return [dict(r, share=round(r[key] / total, 3)) for r in out]

    return dict(trials=trials, radars=len(scenario.sensors), chunk_trials=chunk_trials, profiled_wall_s=round(wall, 3),
                by_cumulative=best("cumulative_s"), by_own_time=best("own_s"))


def forecast_s(rows, n: int) -> float | None:
    """Wall time of a run at ``n`` trials extrapolated from timed rows (power law through the last two)."""
    if len(rows) < 2:
        return None
    (n0, t0), (n1, t1) = [(r["trials"], r["wall_s"]) for r in rows[-2:]]
    b = np.log(t1 / t0) / np.log(n1 / n0)
    return float(t1 * (n / n1) ** b)


def bench_scenario(quick: bool = False, path=SCENARIO_FILE, progress=None, trials=None,
                   chunk_trials: int | None = None, workers: int | None = None) -> dict:
    """Time the Hwasong-15 scenario against trials and radars, its peak memory, and its profile.

    Parameters
    ----------
    quick : bool
        The first ``QUICK_DURATION_S`` s of the flight, trials 1/4 (12 radars) and
        3/6 radars at 1 trial; profile at 1 trial. Otherwise the whole flight,
        trials 10/100/1,000 (12 radars, chunks of ``FULL_CHUNK_TRIALS`` in
        ``FULL_WORKERS`` processes), 3/6 radars at 10 trials, and a profile of one
        chunk of the largest run's size.
    path : path-like
        Scenario file.
    progress : callable, optional
        ``progress(text)`` after each run (with a forecast of the next in full mode).
    trials : sequence of int, optional
        Trial counts of the 12-radar rows instead of the mode's (e.g. ``(1000,)``
        for the issue's figure alone); the radar rows are then left out.
    chunk_trials, workers : int, optional
        Override the mode's chunk size and worker processes for the trial rows.

    Returns
    -------
    dict
        ``duration_s`` (None: whole flight), ``note``, ``setup_s`` (nominal flight solve,
        not in any timing), ``filterpy_ekf_steps_per_s`` (filterpy's EKF predict + AER
        update object by object, timed in this run on 100 objects), ``by_trials`` and
        ``by_radars`` (rows of :func:`time_run`, each with ``x_filterpy_ekf_step``, its
        whole-scenario track-step rate over that reference; the 12-radar row of
        ``by_trials`` reused), ``profile`` (:func:`profile_top`).

    Raises
    ------
    sim.errors.InputError
        The scenario file is missing or invalid, or a bad trial count, chunk size or worker count.
    """
    from sim.errors import InputError
    from sim.report import trials_text
    from sim.shaping import nominal_for_threat

    say = progress or (lambda text: None)
    if not Path(path).is_file():
        raise InputError.single("bench.scenario", str(path), "the Hwasong-15 scenario file (run from a source checkout)")
    duration = QUICK_DURATION_S if quick else None
    scenario = load(path, duration)
    t0 = time.perf_counter()
    for threat in scenario.threats:
        nominal_for_threat(threat)
    setup = time.perf_counter() - t0
    chosen = trials is not None
    trial_rows = tuple(trials) if chosen else (QUICK_TRIALS if quick else FULL_TRIALS)
    # None means the mode's value; anything else (0 included) goes to run_scenario, which checks it.
    chunk = chunk_trials if chunk_trials is not None else (CHUNK_TRIALS if quick else FULL_CHUNK_TRIALS)
    nproc = workers if workers is not None else (1 if quick else FULL_WORKERS)
    radar_trials = QUICK_RADAR_TRIALS if quick else FULL_RADAR_TRIALS
    n_all = len(scenario.sensors)
    by_trials = []
    for n in trial_rows:
        guess = forecast_s(by_trials, n)
        if guess is not None and guess > 60.0:
            say(f"scenario: {trials_text(n)}, {n_all} radars; about {guess / 60:.0f} min from the runs so far")
        by_trials.append(time_run(scenario, n, chunk_trials=chunk, workers=nproc))
        say(f"scenario: {trials_text(n)}, {n_all} radars: {by_trials[-1]['wall_s']:.1f} s")
    by_radars = []
    for k in () if chosen else (3, 6, n_all):
        same = [r for r in by_trials if r["trials"] == radar_trials]
        if k == n_all and same:
            by_radars.append(same[0])
            continue
        by_radars.append(time_run(with_radars(scenario, k), radar_trials))
        say(f"scenario: {trials_text(radar_trials)}, {k} radars: {by_radars[-1]['wall_s']:.1f} s")
    # The reference rate in this run: filterpy's EKF predict + AER update, object by object (bench_kalman)
    from benchmarks.bench_kalman import _filterpy_ekf, _time, _tracks

    n_ref = 100
    x_ref, z_ref = _tracks(n_ref)
    filterpy_rate = n_ref / _time(_filterpy_ekf(x_ref, z_ref))
    for r in by_trials + by_radars:
        r["x_filterpy_ekf_step"] = round(r["track_steps_per_s"] / filterpy_rate, 2)
    say(f"scenario: filterpy per-object EKF step {filterpy_rate:,.0f} steps/s")
    # Quick: the smallest run. Full: one chunk of the runs' size, which is what each worker repeats.
    prof_trials = min(trial_rows) if quick else min(chunk, max(trial_rows))
    prof = profile_top(scenario, prof_trials, chunk_trials=max(prof_trials, 1))
    say(f"scenario: profiled {trials_text(prof_trials)} in {prof['profiled_wall_s']:.1f} s")
    what = f"first {duration:.0f} s of the flight, quick mode" if quick else "whole flight"
    note = f"{what}, {'/'.join(map(str, trial_rows))} trials"
    return dict(scenario=scenario.info.name, file=str(Path(path).name), duration_s=duration, note=note,
                chunk_trials=chunk, workers=nproc, setup_s=round(setup, 3),
                filterpy_ekf_steps_per_s=round(filterpy_rate), by_trials=by_trials,
                by_radars=by_radars, profile=prof)


def summary_lines(result: dict) -> list[str]:
    """Plain-text figures of a :func:`bench_scenario` result: per trial row, then the profile's top five."""
    from sim.report import trials_text

    out = []
    seen = set()
    for r in result["by_trials"] + result["by_radars"]:
        if (r["trials"], r["radars"]) in seen:  # the 12-radar row is in both lists
            continue
        seen.add((r["trials"], r["radars"]))
        mem = f"peak {r['peak_rss_mib']:.0f} MiB in this process"
        if r.get("worker_peak_rss_mib") is not None:
            mem += f", {r['worker_peak_rss_mib']:.0f} MiB in the largest of {r['workers']} workers"
        out.append(f"{trials_text(r['trials'])}, {r['radars']} radars, chunks of {r['chunk_trials']}: "
                   f"{r['wall_s']:.1f} s wall, {r['track_steps']:,} track-steps, "
                   f"{r['track_steps_per_s']:,} track-steps/s"
                   + (f" ({r['x_filterpy_ekf_step']:g}x filterpy's per-object EKF step in this run)"
                      if "x_filterpy_ekf_step" in r else "") + f", {mem}")
    p = result.get("profile")
    if p:
        out.append(f"top five by cumulative time (cProfile, {trials_text(p['trials'])} in one chunk, "
                   f"{p['profiled_wall_s']:.1f} s with the profiler):")
        for row in p["by_cumulative"]:
            out.append(f"  {row['function']} {row['file']}: {row['cumulative_s']:.1f} s ({row['share']:.0%}), "
                       f"{row['calls']:,} calls")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"first {QUICK_DURATION_S:.0f} s, few trials")
    ap.add_argument("--trials", type=int, nargs="+", help="trial counts to time (12 radars), e.g. 1000")
    ap.add_argument("--chunk-trials", type=int, help="trials per chunk of the trial rows")
    ap.add_argument("--workers", type=int, help="worker processes of the trial rows")
    ap.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    a = ap.parse_args()
    res = bench_scenario(a.quick, trials=a.trials, chunk_trials=a.chunk_trials, workers=a.workers,
                         progress=lambda text: print(text, flush=True))
    print("\n".join(summary_lines(res)))
    if a.json:
        from sim.report import write_atomic

        write_atomic(a.json, (json.dumps(res, indent=2) + "\n").encode())
