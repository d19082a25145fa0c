"""``gsomia-sim bench``: run the benchmark suites, write the report, check the speed gate.

Suites (each a plain function returning a dict, in ``benchmarks/``):

* :func:`benchmarks.bench_kalman.bench_kalman` -- batched EKF, UKF and IMM steps
  against filterpy's per-object loop on the same work (ratios measured in this run);
* :func:`benchmarks.bench_truth.bench_truth` -- batched truth against a per-trial
  ``solve_ivp`` loop;
* :func:`benchmarks.bench_sensors.bench_sensors` -- detection generation;
* :func:`benchmarks.bench_scenario.bench_scenario` -- the whole Hwasong-15 scenario
  against trials and radars, peak memory and the profile.

The report holds throughputs, speed-ups over the reference, the growth exponent
``b`` of wall time ``t ~ a n^b`` against trials and against radars (ordinary
least squares on ``log t = log a + b log n``, :func:`scipy.stats.linregress`),
peak resident memory per suite (Linux ``VmHWM``, reset before each suite) and a
description of the machine (CPU, cores, load, numpy and BLAS versions from
``numpy.show_config`` and ``threadpoolctl`` when installed).

Speed gate (CI): the batched EKF step (every batched EKF kernel the Kalman suite
times) must be at least :data:`GATE_MIN_SPEEDUP` times faster than filterpy's
per-object loop on the same N = :data:`GATE_N` tracks. It is a ratio measured
in the same run, so a slow or busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GATE_N = 10_000  # tracks
GATE_MIN_SPEEDUP = 20.0  # x filterpy's per-object loop, issue 9

REPO = Path(__file__).resolve().parents[1]
REPRODUCE = ("python -m pip install -e '.[test]'", "gsomia-sim bench --quick --markdown bench.md --json bench.json")


# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _blas() -> dict:
    """numpy's BLAS/LAPACK build dependencies (``numpy.show_config(mode="dicts")``, numpy >= 1.25)."""
    try:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
    except TypeError:  # older numpy: no mode argument
        return {}
    return {k: {f: v.get(f) for f in ("name", "version") if v.get(f)} for k, v in deps.items() if isinstance(v, dict)}


def _threadpools() -> list | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "threading_layer")}
            for p in threadpool_info()]


def _git() -> dict:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if rev.returncode != 0:
        return {}
    return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def machine() -> dict:
    """Describe the machine and the numerical stack the figures were measured on.

    Returns
    -------
    dict
        cpu, logical_cores (``os.cpu_count``), usable_cores (scheduler
        affinity), memory_gib, load_average (1, 5, 15 min at the start: the
        machine may be shared), os, python, numpy, scipy, filterpy, blas
        (numpy's build dependencies), threadpools (``threadpoolctl`` or None),
        thread-count environment variables that are set.
    """
    import scipy

    try:
        import filterpy
        fp = getattr(filterpy, "__version__", "?")
    except ImportError:
        fp = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return dict(cpu=_cpu_model(), logical_cores=os.cpu_count(), usable_cores=usable, memory_gib=_mem_total_gib(),
                load_average=load, os=f"{platform.system()} {platform.release()}",
                python=platform.python_version(), numpy=np.__version__, scipy=scipy.__version__, filterpy=fp,
                blas=_blas(), threadpools=_threadpools(), thread_env=env, git=_git())


# ---------------------------------------------------------------------------------------------
# Growth exponent and gate
# ---------------------------------------------------------------------------------------------

def fit_exponent(n, t) -> dict:
    """Fit ``t = a n^b`` by least squares on ``log t = log a + b log n``.

    Parameters
    ----------
    n : array_like, shape (k,)
        Work sizes (trials or radars), > 0, at least two distinct.
    t : array_like, shape (k,)
        Times, s, > 0.

    Returns
    -------
    dict
        ``exponent`` b, its standard error ``stderr`` (None with two points),
        ``a`` (s at n = 1) and ``points`` k.

    Raises
    ------
    sim.errors.InputError
        Fewer than two distinct sizes, or non-positive values.
    """
    from scipy.stats import linregress

    from sim.errors import InputError

    n = np.asarray(n, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if n.shape != t.shape or np.unique(n).size < 2 or np.any(n <= 0) or np.any(t <= 0):
        raise InputError.single("bench.fit", (n.tolist(), t.tolist()), "at least two distinct positive sizes "
                                "with positive times")
    fit = linregress(np.log(n), np.log(t))
    stderr = float(fit.stderr) if n.size > 2 and math.isfinite(fit.stderr) else None
    return dict(exponent=float(fit.slope), stderr=stderr, a=float(np.exp(fit.intercept)), points=int(n.size))


def gate_speedups(ekf_rows, N: int = GATE_N) -> dict:
    """Speed-up over filterpy of every batched EKF kernel timed at ``N`` tracks.

    Parameters
    ----------
    ekf_rows : list of dict
        ``bench_kalman(...)["ekf"]`` rows (``N``, ``speedup`` of the generic
        ``kalman.predict``/``kalman.update`` step and, when timed,
        ``fused_speedup`` of ``kalman.BallisticAerEKF``).
    N : int

    Returns
    -------
    dict
        ``{kernel name: speed-up}``; empty when no row has ``N``.
    """
    row = next((r for r in ekf_rows if r["N"] == N), None)
    if row is None:
        return {}
    out = {"kalman.predict+update": float(row["speedup"])}
    if "fused_speedup" in row:
        out["kalman.BallisticAerEKF"] = float(row["fused_speedup"])
    return out


def check_gate(ekf_rows, N: int = GATE_N, threshold: float = GATE_MIN_SPEEDUP) -> tuple[bool, str]:
    """The CI speed gate: every batched EKF kernel at least ``threshold`` x filterpy at ``N`` tracks.

    Returns
    -------
    ok : bool
    reason : str
        One line naming the kernels, their speed-ups and the threshold.
    """
    sp = gate_speedups(ekf_rows, N)
    if not sp:
        return False, f"speed gate: no EKF measurement at N = {N:,}"
    slow = {k: v for k, v in sp.items() if not v >= threshold}
    figures = ", ".join(f"{k} {v:.1f}x" for k, v in sp.items())
    if slow:
        return False, (f"speed gate FAILED: batched EKF step below {threshold:g}x filterpy at N = {N:,} "
                       f"({', '.join(slow)}): {figures}")
    return True, f"speed gate passed: batched EKF step at N = {N:,} is {figures} filterpy (>= {threshold:g}x)"


def measure_gate(N: int = GATE_N) -> list:
    """Time only the gate's measurement: the batched EKF step vs filterpy at ``N`` tracks (``bench_ekf``)."""
    from benchmarks.bench_kalman import bench_ekf

    return bench_ekf([N])


# ---------------------------------------------------------------------------------------------
# Running the suites
# ---------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _jsonable(v):
    """Plain JSON types (numpy scalars and arrays converted, non-finite floats to None)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


def run_suites(quick: bool, suites=None) -> dict:
    """Run the suites and assemble the report document.

    Parameters
    ----------
    quick : bool
        Every suite's quick mode (whole run under a minute on a 2-core machine).
    suites : dict, optional
        ``{name: callable(quick) -> dict}`` replacing the default suites (tests).

    Returns
    -------
    dict
        ``mode``, ``started_utc``, ``machine``, ``suites`` (each suite's own dict,
        plus ``wall_s`` and ``peak_rss_mib``, or ``error``), ``growth``
        (exponents vs trials and radars), ``gate`` (ok, reason, speed-ups) and
        ``total_wall_s``.
    """
    from benchmarks.bench_scenario import peak_rss_mib, reset_peak_rss

    if suites is None:
        from benchmarks.bench_kalman import bench_kalman
        from benchmarks.bench_scenario import bench_scenario
        from benchmarks.bench_sensors import bench_sensors
        from benchmarks.bench_truth import bench_truth

        suites = {"kalman": bench_kalman, "truth": bench_truth, "sensors": bench_sensors,
                  "scenario": lambda q: bench_scenario(q, progress=_log)}
    doc = {"mode": "quick" if quick else "full",
           "started_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
           "machine": machine(), "suites": {}}
    t_all = time.perf_counter()
    for name, fn in suites.items():
        _log(f"{name} ...")
        scoped = reset_peak_rss()
        t0 = time.perf_counter()
        try:
            out = dict(fn(quick))
        except Exception as e:  # a broken suite is reported, and fails the run, without hiding the others
            out = {"error": f"{type(e).__name__}: {e}"}
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        out["peak_rss_mib"] = round(peak_rss_mib(), 1)
        out["peak_rss_scope"] = "suite" if scoped else "process"
        doc["suites"][name] = out
        _log(f"{name} done in {out['wall_s']:.1f} s" + (f" -- {out['error']}" if "error" in out else ""))
    doc["total_wall_s"] = round(time.perf_counter() - t_all, 3)
    doc["growth"] = _growth(doc["suites"].get("scenario", {}))
    kal = doc["suites"].get("kalman", {})
    if "ekf" in kal:
        ok, reason = check_gate(kal["ekf"])
    else:
        ok, reason = False, "speed gate: the Kalman suite did not run" + (f" ({kal['error']})" if "error" in kal else "")
    doc["gate"] = dict(ok=ok, reason=reason, N=GATE_N, threshold=GATE_MIN_SPEEDUP,
                       speedups=gate_speedups(kal.get("ekf", [])))
    return _jsonable(doc)


def _growth(sc: dict) -> dict:
    out = {}
    for key, size in (("by_trials", "trials"), ("by_radars", "radars")):
        rows = sc.get(key) or []
        if len({r[size] for r in rows}) >= 2:
            n = [r[size] for r in rows]
            out[size] = dict(wall=fit_exponent(n, [r["wall_s"] for r in rows]),
                             cpu=fit_exponent(n, [r["cpu_s"] for r in rows]))
    return out


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

def _e(v) -> str:
    return "-" if v is None else f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"


def _si(v) -> str:
    """Rates with a thousands separator or in engineering form."""
    if v is None:
        return "-"
    return f"{v:,.0f}" if v < 1e7 else f"{v:.3e}"


def _n(k: int, word: str) -> str:
    return f"{k:,} {word}" + ("" if k == 1 else "s")


def _fit_text(g: dict | None) -> str:
    if not g:
        return "-"
    w, c = g["wall"], g["cpu"]
    pm = f" ± {w['stderr']:.2f}" if w["stderr"] is not None else ""
    return f"{w['exponent']:.2f}{pm} (CPU time: {c['exponent']:.2f})"


def headline(doc: dict) -> list[str]:
    """Short headline lines of a report (for the README and the top of the Markdown)."""
    lines = []
    s = doc["suites"]
    ek = next((r for r in s.get("kalman", {}).get("ekf", []) if r["N"] == GATE_N), None)
    if ek:
        fused = (f"; fused `BallisticAerEKF` {_si(ek['fused_track_steps_per_s'])} track-steps/s, "
                 f"{ek['fused_speedup']:.0f}x") if "fused_speedup" in ek else ""
        if "fused_mt_speedup" in ek:
            fused += (f"; {ek['workers']} threads {_si(ek['fused_mt_track_steps_per_s'])} track-steps/s, "
                      f"{ek['fused_mt_speedup']:.0f}x")
        lines.append(f"Batched EKF step at N = {GATE_N:,} tracks: {_si(ek['batched_track_steps_per_s'])} "
                     f"track-steps/s, {ek['speedup']:.0f}x filterpy's per-object loop{fused}.")
    for name in ("ukf", "imm"):
        r = next((r for r in s.get("kalman", {}).get(name, []) if r["N"] == GATE_N), None)
        if r:
            lines.append(f"Batched {name.upper()} step at N = {GATE_N:,}: {_si(r['batched_track_steps_per_s'])} "
                         f"track-steps/s, {r['speedup']:.0f}x filterpy.")
    tr = s.get("truth", {})
    if "speedup" in tr:
        lines.append(f"Truth for {tr['trials']:,} dispersed Hwasong-15 trials: {tr['batched_s']:.2f} s, "
                     f"{tr['speedup']:.0f}x a per-trial solve_ivp loop.")
    se = s.get("sensors", {})
    if "target_looks_per_s" in se:
        lines.append(f"Detections, {se['radars']} radars x {se['trials']:,} trials x {se['scan_times']:,} scans: "
                     f"{_si(se['target_looks_per_s'])} target looks/s.")
    sc = s.get("scenario", {})
    if sc.get("by_trials"):
        big = max(sc["by_trials"], key=lambda r: r["trials"])
        g = doc.get("growth", {})
        lines.append(f"Hwasong-15 scenario, {sc['note']}: {big['trials']:,} trials x {3 * len(big['policies'])} "
                     f"nation-policy runs in "
                     f"{big['wall_s']:.1f} s, {_si(big['track_steps_per_s'])} track-steps/s, peak "
                     f"{big.get('worker_peak_rss_mib') or big['peak_rss_mib']:.0f} MiB"
                     f"{'' if big.get('workers', 1) == 1 else ' per worker (%d workers)' % big['workers']}; time grows as trials^{g.get('trials', {}).get('wall', {}).get('exponent', float('nan')):.2f} "
                     f"and radars^{g.get('radars', {}).get('wall', {}).get('exponent', float('nan')):.2f}.")
    gate = doc.get("gate")
    if gate:
        lines.append("CI s" + gate["reason"][1:] + ".")
    return lines


def markdown(doc: dict) -> str:
    """The report as Markdown (headline, machine, one section per suite, how to reproduce)."""
    m, s = doc["machine"], doc["suites"]
    out = [f"# gsomia-sim benchmark report ({doc['mode']} mode)", ""]
    git = m.get("git") or {}
    out.append(f"Measured {doc['started_utc']}" + (f" at commit `{git['commit']}`" + (" (with local changes)"
               if git.get("dirty") else "") if git else "") + f"; all suites took {doc['total_wall_s']:.1f} s.")
    out += ["", "## Headline", ""] + [f"- {line}" for line in headline(doc)]

    blas = "; ".join(f"{k} {v.get('name', '?')} {v.get('version', '')}".strip() for k, v in m["blas"].items()) or "-"
    tp = m.get("threadpools")
    tp_text = ("; ".join(f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)" for p in tp)
               if tp else "threadpoolctl not installed")
    out += ["", "## Machine", "",
            f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), "
            f"{m['memory_gib']} GiB memory",
            f"- load average at start (1/5/15 min): {m['load_average']} -- the machine may be shared; "
            "speed-ups are ratios measured in the same run",
            f"- {m['os']}, Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, filterpy {m['filterpy']}",
            f"- BLAS/LAPACK (numpy.show_config): {blas}; thread pools: {tp_text}"
            + (f"; {m['thread_env']}" if m["thread_env"] else "")]

    k = s.get("kalman", {})
    out += ["", "## Estimation kernels vs filterpy", "",
            "One track-step = one predict (RK4 J2 ballistic propagation with its Jacobian, 5 s step) and one AER "
            "radar update of one track. filterpy runs the same work object by object; for large N it is timed on "
            "`timed on` objects and scaled per object. Seconds are per step of all N tracks.", ""]
    if "error" in k:
        out.append(f"**failed:** {k['error']}")
    else:
        out += ["| filter | kernel | N | batched s/step | track-steps/s | filterpy s/step | timed on | speed-up |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        for name in ("ekf", "ukf", "imm"):
            for r in k.get(name, []):
                out.append(f"| {name.upper()} | generic | {r['N']:,} | {_e(r['batched_s'])} | "
                           f"{_si(r['batched_track_steps_per_s'])} | {_e(r['filterpy_s'])} | {r['ref_objects']:,} | "
                           f"{r['speedup']:.1f}x |")
                if "fused_speedup" in r:
                    out.append(f"| {name.upper()} | fused `BallisticAerEKF` | {r['N']:,} | {_e(r['fused_s'])} | "
                               f"{_si(r['fused_track_steps_per_s'])} | {_e(r['filterpy_s'])} | {r['ref_objects']:,} | "
                               f"{r['fused_speedup']:.1f}x |")
                if "fused_mt_speedup" in r:
                    out.append(f"| {name.upper()} | fused, {r['workers']} threads | {r['N']:,} | {_e(r['fused_mt_s'])} | "
                               f"{_si(r['fused_mt_track_steps_per_s'])} | {_e(r['filterpy_s'])} | {r['ref_objects']:,} | "
                               f"{r['fused_mt_speedup']:.1f}x |")
    g = doc.get("gate", {})
    out += ["", f"**Speed gate (CI):** {g.get('reason', '-').removeprefix('speed gate ')}. The gate is a ratio measured in this run, so a slow "
            "or busy machine slows both sides alike."]

    t = s.get("truth", {})
    out += ["", "## Truth generation vs a per-trial solve_ivp loop", ""]
    if "error" in t:
        out.append(f"**failed:** {t['error']}")
    elif t:
        out += ["| trials | output samples | batched s | solve_ivp s (scaled) | speed-up |", "|---:|---:|---:|---:|---:|",
                f"| {t['trials']:,} | {t['grid_samples']:,} | {t['batched_s']:.3f} | {t['solve_ivp_scaled_s']:.1f} | "
                f"{t['speedup']:.1f}x |", "", f"{t['note']}. Peak memory {t['peak_rss_mib']:.0f} MiB."]

    d = s.get("sensors", {})
    out += ["", "## Detection generation", ""]
    if "error" in d:
        out.append(f"**failed:** {d['error']}")
    elif d:
        out += ["| radars | trials | scans | wall s | CPU s | target looks/s | detections/s | false alarms |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|",
                f"| {d['radars']} | {d['trials']:,} | {d['scan_times']:,} | {d['seconds']:.2f} | {d['cpu_seconds']:.2f} | "
                f"{_si(d['target_looks_per_s'])} | {_si(d['detections_per_s'])} | {d['false_alarms']:,} |", "",
                f"Synthetic two-object lofted truth (not timed), chunks of {d['chunk_trials']} trials. "
                f"Peak memory {d['peak_rss_mib']:.0f} MiB."]

    c = s.get("scenario", {})
    out += ["", "## Whole Hwasong-15 scenario", ""]
    if "error" in c:
        out.append(f"**failed:** {c['error']}")
    elif c:
        out += [f"`{c['file']}`: {c['note']}; every policy ({', '.join(c['by_trials'][0]['policies'])}) for every "
                "nation. The nominal-flight solve ({:.1f} s, cached per process) is outside the timings. "
                "Track-steps: live track slots x output times x trials over the tracker runs made. With "
                "worker processes, CPU s is the main process's alone and the peak is that of the largest "
                "worker.".format(c['setup_s']), "",
                "| trials | radars | chunk | workers | wall s | CPU s | track-steps | track-steps/s | updates | peak MiB |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        seen = set()
        for r in c["by_trials"] + c["by_radars"]:
            key = (r["trials"], r["radars"])
            if key in seen:
                continue
            seen.add(key)
            peak = r.get("worker_peak_rss_mib") or r["peak_rss_mib"]
            out.append(f"| {r['trials']:,} | {r['radars']} | {r.get('chunk_trials', c.get('chunk_trials'))} | "
                       f"{r.get('workers', 1)} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                       f"{r['track_steps']:,} | {_si(r['track_steps_per_s'])} | {r['updates']:,} | {peak:.0f} |")
        gr = doc.get("growth", {})
        out += ["", "Growth exponent b of time ~ n^b (least squares on log-log; 1 = linear):", "",
                f"- against trials ({', '.join(str(r['trials']) for r in c['by_trials'])}; "
                f"{c['by_trials'][0]['radars']} radars): {_fit_text(gr.get('trials'))}",
                f"- against radars ({', '.join(str(r['radars']) for r in c['by_radars'])}; "
                f"{_n(c['by_radars'][0]['trials'], 'trial')}): {_fit_text(gr.get('radars'))}"]
        p = c.get("profile")
        if p:
            out += ["", f"Where the time goes (cProfile of one run at {_n(p['trials'], 'trial')}, {p['radars']} radars, "
                    f"{p['profiled_wall_s']:.1f} s with the profiler; project functions, engine drivers left out):", "",
                    "| by cumulative time | calls | cumulative s | share | | by own time | calls | own s | share |",
                    "|---|---:|---:|---:|---|---|---:|---:|---:|"]
            for a, b in zip(p["by_cumulative"], p["by_own_time"]):
                out.append(f"| `{a['function']}` {a['file']} | {a['calls']:,} | {a['cumulative_s']:.2f} | "
                           f"{a['share']:.0%} | | `{b['function']}` {b['file']} | {b['calls']:,} | {b['own_s']:.2f} | "
                           f"{b['share']:.0%} |")

    out += ["", "## Peak memory by suite", "", "| suite | wall s | peak resident MiB |", "|---|---:|---:|"]
    for name, v in s.items():
        out.append(f"| {name} | {v['wall_s']:.1f} | {_e(v.get('peak_rss_mib'))} |")
    out += ["", "Peak resident set size of the process during each suite (Linux VmHWM, reset before each suite"
            + ("" if all(v.get("peak_rss_scope") == "suite" for v in s.values()) else "; not resettable here, so "
               "process peaks") + ").", "", "## Reproduce", "", "```sh"] + list(REPRODUCE) + [
            "gsomia-sim bench            # full mode: N up to 100,000, scenario over the whole flight at 10/100/1,000 trials",
            "```", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def check_output_file(flag: str, path) -> None:
    """Check that a report file can be written at ``path`` before the suites run.

    The path must be non-empty, not a folder, in an existing folder, and that folder
    must take a new file (probed with a temporary file, removed at once: the only
    test that holds for root too).

    Raises
    ------
    sim.errors.InputError
        Naming ``flag``, the path and what is allowed.
    """
    import tempfile

    from sim.errors import InputError

    p = Path(path)
    if not str(path).strip():
        raise InputError.single(flag, str(path), "a file path (not empty)")
    if p.is_dir():
        raise InputError.single(flag, str(path), "is a folder; give a file path")
    if not p.absolute().parent.is_dir():
        raise InputError.single(flag, str(path), "a file in an existing folder")
    try:
        with tempfile.TemporaryFile(dir=p.absolute().parent, prefix=".gsomia-probe-"):
            pass
    except OSError as e:
        raise InputError.single(flag, str(path), f"no file can be created there ({e.strerror or e})") from None


def write_report(doc: dict, json_path=None, markdown_path=None) -> None:
    """Write the report atomically (temporary file + rename, :func:`sim.report.write_atomic`)."""
    from sim.report import write_atomic

    if json_path:
        write_atomic(json_path, (json.dumps(doc, indent=2) + "\n").encode())
    if markdown_path:
        write_atomic(markdown_path, markdown(doc).encode())


def main(args) -> int:
    """Run the suites, print the Markdown report, write the files, check the gate.

    Parameters
    ----------
    args : argparse.Namespace or similar
        ``quick`` (bool), ``json`` (path or None), ``markdown`` (path or None).

    Returns
    -------
    int
        0 when every suite ran and the speed gate passed; 1 otherwise (the
        reason on one line of standard error).

    Raises
    ------
    sim.errors.InputError
        An output path that is a folder, in a folder that does not exist, or where
        no file can be created, or the same file for both (checked before any suite runs).
    """
    from sim.errors import InputError

    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path is not None:
            check_output_file(flag, path)
    if args.json is not None and args.markdown is not None and Path(args.json).absolute() == Path(
            args.markdown).absolute():
        raise InputError.single("--markdown", args.markdown, "a different file from --json (one would overwrite "
                                "the other)")
    doc = run_suites(bool(args.quick))
    write_report(doc, args.json, args.markdown)
    print(markdown(doc), flush=True)
    failed = [n for n, v in doc["suites"].items() if "error" in v]
    if failed:
        print("gsomia-sim bench: suite(s) failed: " + "; ".join(f"{n}: {doc['suites'][n]['error']}" for n in failed),
              file=sys.stderr)
        return 1
    if not doc["gate"]["ok"]:
        print(f"gsomia-sim bench: {doc['gate']['reason']}", file=sys.stderr)
        return 1
    print(f"gsomia-sim bench: {doc['gate']['reason']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Run the gsomia-sim benchmark suites and write a report.")
    ap.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    ap.add_argument("--json", metavar="FILE", help="write the report as JSON")
    ap.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    sys.exit(main(ap.parse_args()))
