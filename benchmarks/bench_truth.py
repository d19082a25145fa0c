"""Speed of the batched truth against a per-trial solve_ivp loop on the same work.

Work: dispersed Hwasong-15 lofted flights (Pyongsong 39.25N 125.86E, bearing 76 deg,
950 km, apogee 4475 km), 1 s output sampling, RV and spent stage per trial.
The reference integrates each trial's RV with ``solve_ivp`` (DOP853, rtol 1e-9)
segment by segment between the steering breakpoints, then to impact, and
evaluates its dense output every 1 s (the batch also writes the spent stage);
it runs on a subset of trials and is scaled to the full count (said in the
output). Both are timed in the same run.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy.integrate import solve_ivp

from sim import dynamics as dyn
from sim.config import Dispersion, ThreatConfig
from sim.missiles import MISSILES
from sim.shaping import nominal_for_threat
from sim.truth import dispersion_draws, generate_truth


def _threat():
    d = Dispersion(launch_time=10.0, burnout_speed=20.0, azimuth=np.radians(0.2), ballistic_coeff_frac=0.05)
    return ThreatConfig("hs15", "icbm-hwasong15", np.radians(39.25), np.radians(125.86), bearing=np.radians(76.0),
                        range=950e3, shape="lofted", apogee=4475e3, dispersion=d)


def _solve_ivp_trial(nom, m, z, th):
    d = th.dispersion
    prog = dyn.make_program(m, nom.launch_lat, nom.launch_lon, nom.azimuth + d.azimuth * z[2], nom.kick,
                            nom.t_cut, m.rv_ballistic_coeff * (1 + d.ballistic_coeff_frac * z[3]), 0.0, 0.0)
    y = dyn.launch_state(nom.launch_lat, nom.launch_lon, 1)[0]

    def f(tau, x, ts):
        return np.concatenate([x[3:], dyn.acceleration(tau, ts, x[None, :3], x[None, 3:], prog)[0]])

    bps = prog.breakpoints()
    for a, b in zip(bps[:-1], bps[1:]):
        y = solve_ivp(f, (a, b), y, args=(0.5 * (a + b),), method="DOP853", rtol=1e-9, atol=1e-3).y[:, -1]
    y[3:] *= 1 + d.burnout_speed * z[1] / np.linalg.norm(y[3:])

    def hit(tau, x, ts):
        return dyn.height_fast(x[:3])
    hit.terminal, hit.direction = True, -1
    t_end = bps[-1] + 6000.0
    sol = solve_ivp(f, (bps[-1], t_end), y, args=(t_end,), method="DOP853", rtol=1e-9, atol=1e-3,
                    events=hit, dense_output=True)
    # The same output as the batch: states every 1 s from cut-off to impact (dense output).
    return sol.sol(np.arange(np.ceil(bps[-1]), sol.t[-1]))


def bench_truth(quick: bool) -> dict:
    """Time ``generate_truth`` on 1,000 (quick: 200) trials against a solve_ivp loop.

    Returns
    -------
    dict
        trials, batched seconds, solve_ivp seconds (measured and per full count),
        subset size, speed-up.
    """
    th = _threat()
    nom = nominal_for_threat(th)  # solved once (cached), not timed
    n = 200 if quick else 1000
    t = time.perf_counter()
    tr = generate_truth([th], range(n), seed=1, dt_s=1.0)
    t_batch = time.perf_counter() - t
    m = MISSILES[th.missile]
    n_ref = 10 if quick else 50
    z = dispersion_draws(1, range(n_ref), 1)[:, 0]
    t = time.perf_counter()
    for k in range(n_ref):
        _solve_ivp_trial(nom, m, z[k], th)
    t_ref = time.perf_counter() - t
    per_trial_ref = t_ref / n_ref
    return {
        "trials": n,
        "grid_samples": int(tr.t.size),
        "batched_s": round(t_batch, 3),
        "solve_ivp_subset_trials": n_ref,
        "solve_ivp_subset_s": round(t_ref, 3),
        "solve_ivp_scaled_s": round(per_trial_ref * n, 3),
        "note": f"solve_ivp timed on {n_ref} trials (RV only) and scaled to {n}",
        "speedup": round(per_trial_ref * n / t_batch, 1),
    }


if __name__ == "__main__":
    print(bench_truth("--quick" in sys.argv))
