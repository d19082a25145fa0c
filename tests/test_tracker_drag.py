"""Drag-aware ballistic model of the tracker (fusion.drag) and a consistency check on a synthetic re-entry."""


import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.stats import chi2

from fusion.drag import (
    NOMINAL_BALLISTIC_COEFF,
    drag_acceleration,
    drag_process_noise,
    drag_propagate,
    drag_transition,
)
from fusion.models import ballistic_transition, radar_hx
from fusion.tracker import run_tracker
from sensors.detections import Detections
from sim.atmosphere import density
from sim.config import TrackerConfig
from sim.dynamics import height_fast
from sim.earth import enu_rotation, geodetic_to_ecef
from sim.gravity import ballistic_acceleration

LAT, LON = np.radians(40.5), np.radians(138.0)


def _state(alt_m, v_enu, lat=LAT, lon=LON):
    r = np.asarray(geodetic_to_ecef(lat, lon, alt_m), float).reshape(3)
    Re = np.asarray(enu_rotation(lat, lon)).reshape(3, 3)
    return np.r_[r, Re.T @ np.asarray(v_enu, float)]


def _rhs(beta):
    """Independent reference: J2 + frame terms (sim.gravity) + drag with the ICAO density (sim.atmosphere)."""

    def f(t, s):
        r, v = s[:3], s[3:]
        sp = np.linalg.norm(v)
        return np.r_[v, ballistic_acceleration(r, v) - 0.5 * density(height_fast(r)) * sp * v / beta]

    return f


def test_drag_jacobian_matches_finite_differences():
    x = np.stack([_state(40e3, [3000.0, 3000.0, -5500.0]), _state(70e3, [-1000.0, 2000.0, -6500.0])])
    a, Jr, Jv = drag_acceleration(x, jacobian=True)
    assert np.all(np.linalg.norm(a, axis=-1) > 0.1)
    for k in range(2):
        J = np.zeros((3, 6))
        for i in range(6):
            d = np.zeros(6)
            d[i] = 1.0 if i < 3 else 0.01
            J[:, i] = (drag_acceleration(x[k] + d) - drag_acceleration(x[k] - d)) / (2 * d[i])
        np.testing.assert_allclose(Jv[k], J[:, 3:], rtol=1e-7, atol=1e-12)
        # position term: spherical up vector for dh/dr (documented), within 1 % of the largest entry
        assert np.abs(Jr[k] - J[:, :3]).max() < 1e-2 * np.abs(J[:, :3]).max()


def test_drag_transition_matches_finite_differences_and_drag_free_above_atmosphere():
    x = _state(45e3, [2500.0, 2500.0, -6000.0])
    dt = 2.0
    _, F = drag_transition(x, dt)
    eps = np.r_[np.full(3, 1.0), np.full(3, 0.01)]
    Ffd = np.zeros((6, 6))
    for i in range(6):
        d = np.zeros(6)
        d[i] = eps[i]
        Ffd[:, i] = (drag_propagate(x + d, dt) - drag_propagate(x - d, dt)) / (2 * eps[i])
    np.testing.assert_allclose(F, Ffd, atol=2e-4 * np.abs(Ffd).max())
    # the drag Jacobian changes F noticeably from the drag-free one (the test can fail)
    assert np.abs(F - ballistic_transition(x, dt)[1]).max() > 1e-2
    hi = _state(400e3, [0.0, 6000.0, -3000.0])
    xb, Fb = ballistic_transition(hi, 5.0)
    xd, Fd = drag_transition(hi, 5.0)
    np.testing.assert_array_equal(xd, xb)
    np.testing.assert_array_equal(Fd, Fb)


@pytest.mark.parametrize("alt, v_enu, dt", [(80e3, [3000.0, 3000.0, -5500.0], 6.0),
                                            (30e3, [2000.0, 2000.0, -6500.0], 2.0),
                                            (20e3, [1500.0, 500.0, -2500.0], 4.0)])
def test_drag_propagation_matches_solve_ivp(alt, v_enu, dt):
    x = _state(alt, v_enu)
    ref = solve_ivp(_rhs(NOMINAL_BALLISTIC_COEFF), (0.0, dt), x, method="DOP853", rtol=1e-12, atol=1e-9).y[:, -1]
    got = drag_propagate(x, dt)
    assert np.linalg.norm(got[:3] - ref[:3]) < 0.05  # m
    assert np.linalg.norm(got[3:] - ref[3:]) < 0.05  # m/s
    # drag really acted (a drag-free propagation is far off)
    assert np.linalg.norm(ballistic_transition(x, dt)[0][:3] - ref[:3]) > 10.0


def test_drag_process_noise_is_along_velocity_and_zero_in_vacuum():
    x0 = _state(30e3, [2000.0, 2000.0, -6500.0])
    x1 = drag_propagate(x0, 1.0)
    Q = drag_process_noise(x0, x1, 1.0)
    u = x1[3:] / np.linalg.norm(x1[3:])
    a1 = np.linalg.norm(drag_acceleration(x1))
    np.testing.assert_allclose(u @ Q[3:, 3:] @ u, (0.3 * a1) ** 2, rtol=1e-9)
    w = np.cross(u, [0.0, 0.0, 1.0])
    assert abs(w @ Q[3:, 3:] @ w) < 1e-9 * (0.3 * a1) ** 2
    assert np.all(np.linalg.eigvalsh(Q) > -1e-9 * np.abs(Q).max())
    hi = _state(400e3, [0.0, 6000.0, -3000.0])
    assert np.all(drag_process_noise(hi, hi, 1.0) == 0.0)


def _Dets(trial, time, sensor, obj, z, R):
    """A detection record (SNR unused by the tracker)."""
    return Detections(trial, time, sensor, obj, z, R, snr=np.full(len(trial), np.nan))


def test_reentry_track_is_consistent():
    """EKF with drag on 40 seeded steep re-entries (beta 5 % dispersed): NEES in the chi-square band.

    Truth by solve_ivp from 120 km down to about 15 km (drag up to ~60 g), one radar 250 km
    away at 1 Hz; NEES averaged over the 40 independent trials and the last 8 s (dense
    atmosphere), compared with the two-sided 95 % chi-square band for 40 samples (the steps of
    one trial are correlated, so the trial count is the conservative sample size).
    """
    rng = np.random.default_rng(20240611)
    n, T = 40, 18
    t = np.arange(T, dtype=float)
    site = np.asarray(geodetic_to_ecef(LAT, np.radians(135.0), 0.0), float).reshape(1, 3)
    Renu = np.asarray(enu_rotation(LAT, np.radians(135.0))).reshape(1, 3, 3)
    sig = np.array([15.0, 2e-4, 2e-4])  # m, rad, rad
    R = np.diag(sig**2)
    truth = np.empty((n, T, 6))
    rows, times, zs = [], [], []
    for k in range(n):  # setup of the synthetic truth, not a tracker loop
        beta = NOMINAL_BALLISTIC_COEFF * (1.0 + 0.05 * rng.standard_normal())
        x0 = _state(120e3 + 500.0 * rng.standard_normal(), [3500.0, 500.0, -6000.0])
        sol = solve_ivp(_rhs(beta), (0.0, t[-1]), x0, method="DOP853", rtol=1e-10, atol=1e-6, t_eval=t)
        truth[k] = sol.y.T
        z = radar_hx(truth[k], site[0], Renu[0]) + rng.standard_normal((T, 3)) * sig
        rows.append(np.full(T, k))
        times.append(t)
        zs.append(z)
    K = n * T
    dets = _Dets(np.concatenate(rows), np.concatenate(times), np.zeros(K, np.int64), np.zeros(K, np.int32),
                 np.concatenate(zs), np.broadcast_to(R, (K, 3, 3)).copy())
    assert height_fast(truth[:, -1, :3]).max() < 25e3
    cfg = TrackerConfig(filter="ekf", process_noise=0.1, confirm_m=3, confirm_n=5, max_tracks=2)
    th = run_tracker(dets, dets.time, site, Renu, t, np.arange(n), cfg, revisit=np.array([1.0]))
    ok = th.confirmed[:, :, -8:].all(axis=-1) & np.isfinite(th.x[:, :, -8:, 0]).all(axis=-1)  # (n, slots)
    assert ok.any(axis=1).all()  # every trial holds a confirmed track through the dense atmosphere
    j = np.argmax(ok, axis=1)
    x, P = th.x[np.arange(n), j], th.P[np.arange(n), j]
    e = x[:, -8:] - truth[:, -8:]
    nees = np.einsum("...i,...i->...", e, np.linalg.solve(P[:, -8:], e[..., None])[..., 0])
    per_trial = nees.mean(axis=1)
    lo, hi = chi2.ppf([0.025, 0.975], 6 * n) / n
    assert lo * 0.5 < per_trial.mean() < hi, (per_trial.mean(), lo, hi)


@pytest.mark.parametrize("name", ["ekf", "imm"])
def test_output_equals_per_time_estimate_in_the_atmosphere(name):
    """run_tracker's output equals the group step and the estimate driven one grid time at a time.

    Re-entries with missed detections (so tracks coast for different times) on a half-second grid
    (so most grid times need a prediction with drag, whose RK4 substep counts vary per track and time,
    fusion.drag.substeps_needed).
    """
    from test_tracker_scenarios import stepwise_reference

    rng = np.random.default_rng(7)
    n, T = 6, 14
    t_det = np.arange(T, dtype=float)
    site = np.asarray(geodetic_to_ecef(LAT, np.radians(135.0), 0.0), float).reshape(1, 3)
    Renu = np.asarray(enu_rotation(LAT, np.radians(135.0))).reshape(1, 3, 3)
    sig = np.array([15.0, 2e-4, 2e-4])
    rows, times, zs = [], [], []
    for k in range(n):  # synthetic truth setup, not a tracker loop
        x0 = _state(100e3 + 2e3 * k, [3500.0, 500.0, -6000.0])
        sol = solve_ivp(_rhs(NOMINAL_BALLISTIC_COEFF), (0.0, t_det[-1]), x0, method="DOP853", rtol=1e-10,
                        atol=1e-6, t_eval=t_det)
        keep = rng.random(T) < 0.7
        keep[:3] = True
        z = radar_hx(sol.y.T, site[0], Renu[0]) + rng.standard_normal((T, 3)) * sig
        rows.append(np.full(keep.sum(), k))
        times.append(t_det[keep])
        zs.append(z[keep])
    K = sum(r.size for r in rows)
    d = _Dets(np.concatenate(rows), np.concatenate(times), np.zeros(K, np.int64), np.zeros(K, np.int32),
              np.concatenate(zs), np.broadcast_to(np.diag(sig**2), (K, 3, 3)).copy())
    grid = np.arange(0.0, T, 0.5)
    cfg = TrackerConfig(filter=name, process_noise=0.1, max_tracks=2)
    h = run_tracker(d, d.time, site, Renu, grid, np.arange(n), cfg, revisit=np.array([1.0]))
    x, P = stepwise_reference(d, grid, site, Renu, cfg, [1.0])[:2]
    np.testing.assert_array_equal(h.x, x)
    np.testing.assert_array_equal(h.P, P)
    assert np.isfinite(x).sum() > 6 * n * 10
