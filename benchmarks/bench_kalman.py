"""Speed of the batched estimation kernels against filterpy's per-object loop on the same work.

One *track-step* is one predict (RK4 J2 ballistic propagation with its
transition Jacobian, 5 s step) plus one AER radar update of one track.
filterpy does the same work object by object (``ExtendedKalmanFilter`` with the
same motion and measurement functions; ``UnscentedKalmanFilter``;
``IMMEstimator`` over two ``ExtendedKalmanFilter``); for large N it is timed on a
subset of objects and scaled per object (stated in the output as ``ref_objects``).

The EKF is timed twice: the generic kernels (``kalman.predict`` / ``kalman.update``
with ``ballistic_transition`` and ``radar_H``) and the fused
``kalman.BallisticAerEKF``, in one thread and in ``WORKERS`` threads over slices
of the batch (numpy releases the GIL inside its loops; the results are bit for bit
those of one thread). Wall-clock and CPU-time rates are both printed, since
the machine is shared (ratios against filterpy are measured in the same run);
filterpy's loop runs in one thread.

Run ``python benchmarks/bench_kalman.py --quick``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from filterpy.kalman import ExtendedKalmanFilter, IMMEstimator, MerweScaledSigmaPoints, UnscentedKalmanFilter

from fusion import imm, kalman, ukf
from fusion.models import (
    ballistic_propagate,
    ballistic_transition,
    process_noise,
    radar_H,
    radar_hx,
    radar_residual,
    thrust_transition,
)
from sensors.geometry import Site

DT = 5.0  # s, radar revisit
SITE = Site(np.radians(37.5), np.radians(127.0), 50.0)
R_AER = np.diag([50.0**2, np.radians(0.2) ** 2, np.radians(0.2) ** 2])
Q6 = process_noise(DT, 1.0)
P0 = np.diag([1e3**2] * 3 + [50.0**2] * 3)
WORKERS = max(1, min(os.cpu_count() or 1, 4))  # threads of the fused kernel's parallel run (this machine: 2)


def _tracks(N, seed=0):
    """N ballistic states 200-600 km up over the Sea of Japan and their measurements one step on."""
    rng = np.random.default_rng(seed)
    lat = np.radians(rng.uniform(36.0, 41.0, N))
    lon = np.radians(rng.uniform(127.5, 134.0, N))
    up = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros(N)], -1)
    alt = rng.uniform(200e3, 600e3, N)
    x = np.concatenate([(6378137.0 + alt)[:, None] * up, 2500.0 * east + rng.uniform(-1500, 1500, (N, 1)) * up], -1)
    truth = ballistic_propagate(x, DT)
    z = radar_hx(truth, SITE.ecef, SITE.R_enu) + rng.multivariate_normal(np.zeros(3), R_AER, N)
    z[:, 1] = np.mod(z[:, 1], 2 * np.pi)
    return x, z


def ekf_step(x, P, z):
    """One batched EKF predict + AER update (the hot path of the tracker)."""
    xp, F = ballistic_transition(x, DT)
    x, P = kalman.predict(x, P, F, Q6, fx=xp)
    return kalman.update(x, P, z, R_AER, radar_hx(x, SITE.ecef, SITE.R_enu), radar_H(x, SITE.ecef, SITE.R_enu), radar_residual)


def _time(fn, min_time=0.3, max_reps=200, cpu=False):
    """Seconds per call: wall clock, or this process's CPU time if ``cpu`` (less sensitive to other load)."""
    clock = time.process_time if cpu else time.perf_counter
    fn()  # warm
    reps, t0 = 0, clock()
    while True:
        fn()
        reps += 1
        el = clock() - t0
        if el > min_time or reps >= max_reps:
            return el / reps


def _filterpy_ekf(x, z):
    fs = []
    for i in range(len(x)):
        f = ExtendedKalmanFilter(6, 3)
        f.x, f.P, f.Q, f.R = x[i].copy(), P0.copy(), Q6, R_AER
        fs.append(f)

    def run():
        for i, f in enumerate(fs):
            xp, F = ballistic_transition(f.x, DT)
            f.F = F
            f.x = f.x  # predict_x replaced: the propagated mean
            f.predict_x = lambda u=0, f=f, xp=xp: setattr(f, "x", xp)
            f.predict()
            f.update(z[i], radar_H, radar_hx, args=(SITE.ecef, SITE.R_enu), hx_args=(SITE.ecef, SITE.R_enu), residual=radar_residual)
            f.x, f.P = x[i].copy(), P0.copy()  # same work every repetition

    return run


def bench_ekf(Ns, ref_max=200):
    rows = []
    for N in Ns:
        x, z = _tracks(N)
        P = np.broadcast_to(P0, (N, 6, 6)).copy()
        reps = 50 if N >= 10_000 else 200
        t_batch = _time(lambda: ekf_step(x, P, z), max_reps=reps)
        xf, Pf = x.copy(), P.copy()  # the fused step works in place; same work every repetition

        def fused_step(workers):
            kernel = kalman.BallisticAerEKF(DT, Q6, R_AER, SITE.ecef, SITE.R_enu, workers=workers)

            def step():
                np.copyto(xf, x)
                np.copyto(Pf, P)
                kernel.step(xf, Pf, z)

            return step

        one = fused_step(1)
        t_fused = _time(one, max_reps=reps)
        t_fused_cpu = _time(one, max_reps=reps, cpu=True)
        t_fused_mt = _time(fused_step(WORKERS), max_reps=reps)
        n_ref = min(N, ref_max)
        ref = _filterpy_ekf(x[:n_ref], z[:n_ref])
        t_ref = _time(ref, max_reps=20) / n_ref * N
        t_ref_cpu = _time(ref, max_reps=20, cpu=True) / n_ref * N
        rows.append(dict(N=N, ref_objects=n_ref, batched_s=t_batch, filterpy_s=t_ref,
                         batched_track_steps_per_s=N / t_batch, filterpy_track_steps_per_s=N / t_ref,
                         speedup=t_ref / t_batch, fused_s=t_fused, fused_track_steps_per_s=N / t_fused,
                         fused_speedup=t_ref / t_fused, fused_cpu_track_steps_per_s=N / t_fused_cpu,
                         fused_cpu_speedup=t_ref_cpu / t_fused_cpu, workers=WORKERS, fused_mt_s=t_fused_mt,
                         fused_mt_track_steps_per_s=N / t_fused_mt, fused_mt_speedup=t_ref / t_fused_mt))
    return rows


def bench_ukf(Ns, ref_max=50):
    rows = []
    fx = lambda s: ballistic_propagate(s, DT)  # noqa: E731
    hx = lambda s: radar_hx(s, SITE.ecef, SITE.R_enu)  # noqa: E731
    for N in Ns:
        x, z = _tracks(N)
        P = np.broadcast_to(P0, (N, 6, 6)).copy()

        def step():
            xp, Pp = ukf.ukf_predict(x, P, fx, Q6)
            return ukf.ukf_update(xp, Pp, z, R_AER, hx)

        t_batch = _time(step, max_reps=20 if N >= 10_000 else 100)
        n_ref = min(N, ref_max)
        fs = []
        for i in range(n_ref):
            f = UnscentedKalmanFilter(6, 3, DT, hx, lambda s, dt: ballistic_propagate(s, dt),
                                      MerweScaledSigmaPoints(6, ukf.ALPHA, ukf.BETA, ukf.KAPPA),
                                      z_mean_fn=ukf.aer_mean, residual_z=radar_residual)
            f.Q, f.R = Q6, R_AER
            fs.append(f)

        def ref():
            for i, f in enumerate(fs):
                f.x, f.P = x[i].copy(), P0.copy()
                f.predict()
                f.update(z[i])

        t_ref = _time(ref, max_reps=10) / n_ref * N
        rows.append(dict(N=N, ref_objects=n_ref, batched_s=t_batch, filterpy_s=t_ref,
                         batched_track_steps_per_s=N / t_batch, speedup=t_ref / t_batch))
    return rows


def bench_imm(Ns, ref_max=100):
    rows = []
    M = np.array([[0.96, 0.04], [1e-4, 1.0 - 1e-4]])
    Qt = process_noise(DT, 60.0)
    trans = [lambda s: (*thrust_transition(s, DT, 30.0), Qt), lambda s: (*ballistic_transition(s, DT), Q6)]
    for N in Ns:
        x1, z = _tracks(N)
        x = np.stack([x1, x1], 1)
        P = np.broadcast_to(P0, (N, 2, 6, 6)).copy()
        mu = np.broadcast_to([0.1, 0.9], (N, 2)).copy()

        def step():
            xp, Pp, cbar = imm.imm_predict(x, P, mu, M, trans)
            return imm.imm_update(xp, Pp, cbar, z, R_AER, radar_hx(xp, SITE.ecef, SITE.R_enu),
                                  radar_H(xp, SITE.ecef, SITE.R_enu), radar_residual)

        t_batch = _time(step, max_reps=20 if N >= 10_000 else 100)
        n_ref = min(N, ref_max)
        ests = []
        for i in range(n_ref):
            fl = []
            for j in range(2):
                f = ExtendedKalmanFilter(6, 3)
                f.Q, f.R = (Qt, Q6)[j], R_AER
                f.x, f.P = x1[i].copy(), P0.copy()
                fl.append(f)
            ests.append(IMMEstimator(fl, [0.1, 0.9], M))

        def ref():
            for i, e in enumerate(ests):
                for j, f in enumerate(e.filters):
                    f.x, f.P = x1[i].copy(), P0.copy()
                e.mu[:] = [0.1, 0.9]
                e._compute_mixing_probabilities()
                # IMMEstimator.predict/update call the filters' predict()/update(z) with no
                # extra arguments: do the same steps through its public API pieces
                xs, Ps = [], []
                for j, (f, w) in enumerate(zip(e.filters, e.omega.T)):
                    xm = sum(kf.x * wj for kf, wj in zip(e.filters, w))
                    Pm = sum(wj * (np.outer(kf.x - xm, kf.x - xm) + kf.P) for kf, wj in zip(e.filters, w))
                    xs.append(xm)
                    Ps.append(Pm)
                for j, f in enumerate(e.filters):
                    f.x, f.P = xs[j], Ps[j]
                    xp, F = trans[j](f.x)[:2]
                    f.F = F
                    f.predict_x = lambda u=0, f=f, xp=xp: setattr(f, "x", xp)
                    f.predict()
                    f.update(z[i], radar_H, radar_hx, args=(SITE.ecef, SITE.R_enu),
                             hx_args=(SITE.ecef, SITE.R_enu), residual=radar_residual)
                e.mu = e.cbar * np.array([f.likelihood for f in e.filters])
                e.mu /= e.mu.sum()
                e._compute_mixing_probabilities()
                e._compute_state_estimate()

        t_ref = _time(ref, max_reps=10) / n_ref * N
        rows.append(dict(N=N, ref_objects=n_ref, batched_s=t_batch, filterpy_s=t_ref,
                         batched_track_steps_per_s=N / t_batch, speedup=t_ref / t_batch))
    return rows


def bench_kalman(quick: bool = False) -> dict:
    """Run the benchmarks; returns ``{"ekf": rows, "ukf": rows, "imm": rows, "goal": {...}}``.

    Each row: N, ref_objects (filterpy objects actually timed), batched_s and
    filterpy_s (seconds per step for all N tracks), track-steps/s, speedup.
    ``quick`` skips N = 100,000 and shortens the UKF/IMM runs.
    """
    Ns = [1, 100, 10_000] if quick else [1, 100, 10_000, 100_000]
    out = {"ekf": bench_ekf(Ns)}
    out["ukf"] = bench_ukf([100, 10_000] if quick else [1, 100, 10_000])
    out["imm"] = bench_imm([100, 10_000] if quick else [1, 100, 10_000])
    r10k = next(r for r in out["ekf"] if r["N"] == 10_000)
    out["goal"] = {
        "N": 10_000,
        "kernel": "fusion.kalman.BallisticAerEKF",
        "workers": WORKERS,
        "track_steps_per_s": r10k["fused_mt_track_steps_per_s"],
        "speedup_vs_filterpy": r10k["fused_mt_speedup"],
        "single_thread_track_steps_per_s": r10k["fused_track_steps_per_s"],
        "single_thread_speedup_vs_filterpy": r10k["fused_speedup"],
        "cpu_track_steps_per_s": r10k["fused_cpu_track_steps_per_s"],
        "met": bool(r10k["fused_mt_track_steps_per_s"] >= 1e6 and r10k["fused_mt_speedup"] >= 50),
    }
    return out


def _print(out):
    for name in ("ekf", "ukf", "imm"):
        print(f"{name.upper()} predict+update (5 s step, AER radar)")
        print(f"  {'N':>7} {'batched s/step':>15} {'track-steps/s':>14} {'filterpy s/step':>16} {'(timed on)':>10} {'speedup':>8}")
        for r in out[name]:
            print(f"  {r['N']:>7} {r['batched_s']:>15.3e} {r['batched_track_steps_per_s']:>14.3e} "
                  f"{r['filterpy_s']:>16.3e} {r['ref_objects']:>10} {r['speedup']:>8.1f}x")
    print("EKF fused (fusion.kalman.BallisticAerEKF: SoA model, F^T layout, reused buffers), same work")
    print(f"  {'N':>7} {'wall s/step':>12} {'track-steps/s':>14} {'speedup':>8} {'CPU track-steps/s':>18} {'CPU speedup':>11}")
    for r in out["ekf"]:
        print(f"  {r['N']:>7} {r['fused_s']:>12.3e} {r['fused_track_steps_per_s']:>14.3e} {r['fused_speedup']:>7.1f}x "
              f"{r['fused_cpu_track_steps_per_s']:>18.3e} {r['fused_cpu_speedup']:>10.1f}x")
    print(f"EKF fused, {WORKERS} worker threads over slices of the batch (bit-identical results), same work")
    print(f"  {'N':>7} {'wall s/step':>12} {'track-steps/s':>14} {'speedup':>8}")
    for r in out["ekf"]:
        print(f"  {r['N']:>7} {r['fused_mt_s']:>12.3e} {r['fused_mt_track_steps_per_s']:>14.3e} {r['fused_mt_speedup']:>7.1f}x")
    g = out["goal"]
    print(f"goal at N=10,000 ({g['kernel']}, workers={g['workers']}): {g['track_steps_per_s']:.3e} track-steps/s wall "
          f"(one thread {g['single_thread_track_steps_per_s']:.3e}) (>= 1e6), "
          f"{g['speedup_vs_filterpy']:.0f}x filterpy's one-thread loop (>= 50x): {'met' if g['met'] else 'NOT met'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip N = 100,000; shorter UKF/IMM runs")
    _print(bench_kalman(ap.parse_args().quick))
