"""Benchmark: detections of 12 radars over a 3,200 s flight at 1 s scans, 1,000 trials.

Synthetic truth (not timed): a Hwasong-15-like lofted arc from Pyongsong
(39.25 N 125.86 E, bearing 76 deg, 950 km range, 4,475 km apogee, about 53 min;
KCNA / Japan MoD, 29 Nov 2017) with its spent stage falling short, an
altitude parabola over the geodesic ground track, each trial stretched by a
random 0-2 % in range so trials differ. Only :func:`generate_detections` is
timed, in chunks of trials as :mod:`sim.engine` runs them.

Run: ``python benchmarks/bench_sensors.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from types import SimpleNamespace

import numpy as np

from sensors.catalog import catalog_radar
from sensors.detections import generate_detections
from sim.earth import geodesic_direct, geodetic_to_ecef

RADARS_12 = (
    "us-tpy2-shariki", "us-tpy2-kyogamisaki", "us-thaad-seongju", "us-aegis-soj",
    "jp-fps5-sado", "jp-fps5-shimokoshiki", "jp-fps5-ominato", "jp-aegis-soj-north",
    "kr-greenpine-b-1", "kr-greenpine-b-2", "kr-greenpine-c", "kr-aegis-eastsea",
)


def synthetic_truth(trial_indices, duration_s=3200.0, dt_s=1.0):
    """Lofted two-object (rv, stage) truth on a 1 s grid; see the module docstring."""
    trial_indices = np.asarray(trial_indices)
    N = len(trial_indices)
    t = np.arange(0.0, duration_s + dt_s / 2, dt_s)
    stretch = 1.0 + 0.02 * np.random.default_rng(0).random(trial_indices.max() + 1)[trial_indices]
    frac = np.array([1.0, 0.85])  # the stage falls short
    s = t / t[-1]
    rng_m = 950e3 * stretch[:, None, None] * frac[None, :, None] * s  # (N, 2, T)
    lat, lon = geodesic_direct(np.full(rng_m.size, 39.25), np.full(rng_m.size, 125.86), np.full(rng_m.size, 76.0),
                               rng_m.ravel())
    alt = 4.0 * 4475e3 * s * (1.0 - s) * np.ones((N, 2, 1))
    pos = geodetic_to_ecef(np.radians(lat), np.radians(lon), alt.ravel()).reshape(N, 2, -1, 3)
    state = np.concatenate([pos, np.gradient(pos, dt_s, axis=2)], axis=-1)
    phase = np.ones((N, 2, len(t)), dtype=np.int8)
    phase[:, :, t < 300.0] = 0
    phase[:, 1, t < 300.0] = -1  # the stage exists from separation on
    state[:, 1, t < 300.0] = np.nan
    late = (alt < 100e3) & (s[None, None, :] > 0.5)
    phase[late] = 2
    return SimpleNamespace(t=t, state=state, phase=phase, object_kind=("rv", "stage"), trial_index=trial_indices)


def bench_sensors(quick: bool = False) -> dict:
    """Time :func:`sensors.detections.generate_detections` for 12 radars x trials x 3,200 s at 1 s scans.

    Parameters
    ----------
    quick : bool
        100 trials instead of 1,000.

    Returns
    -------
    dict
        trials, radars, scan_times, objects, chunk_trials, seconds (wall, detection only),
        cpu_seconds (process CPU time of the same; lower than wall when the machine is shared),
        target_looks_per_s (radar x trial x object x scan evaluated per second),
        detections, detections_per_s, false_alarms, peak_rss_mb.
    """
    trials = 100 if quick else 1000
    chunk = 50
    radars = [catalog_radar(n, scan_interval_s=1.0) for n in RADARS_12]
    seconds, cpu, n_det, n_fa, T = 0.0, 0.0, 0, 0, 0
    for start in range(0, trials, chunk):
        truth = synthetic_truth(np.arange(start, min(start + chunk, trials)))
        T = len(truth.t)
        t0, c0 = time.perf_counter(), time.process_time()
        d = generate_detections(truth, radars, seed=2017)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n_det += len(d)
        n_fa += int(np.sum(d.object == -1))
        del truth, d
    looks = len(radars) * trials * 2 * T
    return dict(
        trials=trials, radars=len(radars), scan_times=T, objects=2, chunk_trials=chunk,
        seconds=round(seconds, 3), cpu_seconds=round(cpu, 3), target_looks_per_s=round(looks / seconds),
        detections=n_det, detections_per_s=round(n_det / seconds), false_alarms=n_fa,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 trials instead of 1,000")
    print(json.dumps(bench_sensors(ap.parse_args().quick), indent=2))
