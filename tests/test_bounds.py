"""Tests of fusion.bounds: the PCRLB information recursion and the bound of a nation's data.

Oracles: filterpy's Kalman filter (the bound of a linear-Gaussian problem is its
covariance); the Fisher information of a whole batch of detections computed
directly, by finite differences of the truth's own integrator
(:func:`sim.dynamics.rk4_step`) and of pymap3d's ECEF-to-AER transform; and the
same bound recomputed from scratch over only the detections that have arrived.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pymap3d
import pytest
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter

from fusion.bounds import (
    N_STATE,
    information_predict,
    information_recursion,
    pcrlb_information,
    pcrlb_position_variance,
    position_variance,
    truth_transition,
)
from sensors.detections import Detections
from sim import dynamics as dyn
from sim.config import Dispersion, ThreatConfig
from sim.earth import enu_rotation
from sim.missiles import MISSILES
from sim.truth import PHASE_MIDCOURSE, PHASE_REENTRY, Truth

MISSILE = "icbm-hwasong15"
# Two notional ground radars (lat, lon in degrees, alt m) and their AER noise (m, rad, rad).
SITES = [(40.85, 140.30, 20.0), (35.9, 128.6, 400.0)]
SIGMA = [(5.0, 1.0e-3, 1.0e-3), (20.0, 2.0e-3, 3.0e-3)]


# ------------------------------------------------------------------------------------------------
# (a) linear-Gaussian: the bound is the Kalman filter's covariance


def _kf_run(F, Q, H, R, P0, has_meas):
    kf = KalmanFilter(dim_x=F.shape[0], dim_z=H.shape[0])
    kf.F, kf.Q, kf.H, kf.R, kf.P = F, Q, H, R, P0.copy()
    kf.x = np.zeros((F.shape[0], 1))
    out = [kf.P.copy()]
    for k in range(1, len(has_meas)):
        kf.predict()
        if has_meas[k]:
            kf.update(np.zeros((H.shape[0], 1)))
        out.append(kf.P.copy())
    return np.array(out)


@pytest.mark.parametrize("rank_one_q", [False, True])
def test_linear_gaussian_bound_equals_kalman_covariance(rank_one_q):
    dt, T = 0.7, 40
    F = np.block([[np.eye(2), dt * np.eye(2)], [np.zeros((2, 2)), np.eye(2)]])
    if rank_one_q:
        g = np.array([0.5 * dt**2, 0.2 * dt**2, dt, 0.4 * dt])
        Q = 0.3 * np.outer(g, g)  # singular: the D-form of the recursion would need Q^-1
    else:
        q1 = Q_discrete_white_noise(dim=2, dt=dt, var=0.5)
        Q = np.zeros((4, 4))
        Q[np.ix_([0, 2], [0, 2])] = q1
        Q[np.ix_([1, 3], [1, 3])] = 2.0 * q1
    H = np.array([[1.0, 0.0, 0.0, 0.0], [0.3, 1.0, 0.0, 0.0]])
    R = np.array([[4.0, 0.5], [0.5, 1.0]])
    P0 = np.diag([100.0, 50.0, 10.0, 20.0])
    rng = np.random.default_rng(1)
    has = rng.random(T) < 0.7
    has[0] = False
    I = H.T @ np.linalg.inv(R) @ H
    info = np.where(has[:, None, None], I, 0.0)
    J = information_recursion(np.linalg.inv(P0), np.broadcast_to(F, (T - 1, 4, 4)), info,
                              np.broadcast_to(Q, (T - 1, 4, 4)))
    P_kf = _kf_run(F, Q, H, R, P0, has)
    np.testing.assert_allclose(np.linalg.inv(J), P_kf, rtol=1e-9, atol=1e-12)
    # and the trace of the position block, as position_variance reports it
    np.testing.assert_allclose(position_variance(J, pos=slice(0, 2)), P_kf[:, 0, 0] + P_kf[:, 1, 1], rtol=1e-9)


def test_information_predict_equals_tichavsky_d_form():
    rng = np.random.default_rng(2)
    n = 5
    F = np.eye(n) + 0.3 * rng.standard_normal((n, n))
    A = rng.standard_normal((n, n))
    Q = A @ A.T + 0.1 * np.eye(n)
    B = rng.standard_normal((n, n))
    J = B @ B.T + 0.2 * np.eye(n)
    Qi = np.linalg.inv(Q)
    D11, D12, D22 = F.T @ Qi @ F, -F.T @ Qi, Qi
    expected = D22 - D12.T @ np.linalg.inv(J + D11) @ D12  # Tichavsky et al. 1998, Proposition 1, without H
    np.testing.assert_allclose(information_predict(J, F, Q), expected, rtol=1e-10)
    # Q = 0: J_pred = F^-T J F^-1
    Fi = np.linalg.inv(F)
    np.testing.assert_allclose(information_predict(J, F), Fi.T @ J @ Fi, rtol=1e-12)


def test_position_variance_numerically_rank_deficient_is_inf():
    """J of rank 5 built in float64 (eigenvalues ~1e-17 of either sign): the position is not determined."""
    rng = np.random.default_rng(4)
    scale = np.array([1e-2, 1e-3, 1e-4, 1.0, 10.0, 0.1, 400.0])  # mixed units, as m^-2, (m/s)^-2, theta
    for _ in range(40):
        B = rng.standard_normal((N_STATE, 5)) * np.sqrt(scale)[:, None]
        assert position_variance(B @ B.T) == np.inf
    B = rng.standard_normal((N_STATE, N_STATE)) * np.sqrt(scale)[:, None]
    J = B @ B.T
    assert position_variance(J) == pytest.approx(np.trace(np.linalg.inv(J)[:3, :3]), rel=1e-9)


def test_position_variance_singular_and_free_components():
    J = np.zeros((N_STATE, N_STATE))
    assert position_variance(J) == np.inf
    # Position known at an instant, velocity unconstrained: the bound of the position alone.
    Jr = np.diag([1e-2, 4e-4, 1e-6])
    J[:3, :3] = Jr
    J[6, 6] = 400.0
    assert position_variance(J) == pytest.approx(np.trace(np.linalg.inv(Jr)), rel=1e-12)
    # The same information moved 1 s on (velocity unknown): position undetermined.
    F = np.eye(N_STATE)
    F[:3, 3:6] = np.eye(3)
    assert position_variance(information_predict(J, F)) == np.inf


# ------------------------------------------------------------------------------------------------
# Ballistic arcs: truth built with the truth's own integrator


def _threat(burnout_speed=0.0, beta_frac=0.05):
    return ThreatConfig(name="T", missile=MISSILE, launch_lat=np.radians(39.25), launch_lon=np.radians(125.86),
                        launch_time=0.0, bearing=np.radians(76.0), range=950e3, shape="lofted", apogee=4475e3,
                        dispersion=Dispersion(burnout_speed=burnout_speed, ballistic_coeff_frac=beta_frac))


def _coast_program(n, beta):
    """A coasting (post cut-off) program of the truth integrator; launch geometry is irrelevant after cut-off."""
    m = MISSILES[MISSILE]
    return dyn.make_program(m, 0.7, 2.2, np.zeros(n), 0.0, 1.0, np.full(n, beta))


TAU_COAST = 1.0e7  # s since launch: long after cut-off


def _propagate(x, dt, beta, n_sub):
    """States ``(M, 6)`` moved by ``dt`` s with RK4 of sim.dynamics (the truth's equations of motion)."""
    x = np.array(x, dtype=np.float64)
    prog = _coast_program(x.shape[0], beta)
    h = dt / n_sub
    for _ in range(n_sub):
        x = dyn.rk4_step(TAU_COAST, h, x, prog)
    return x


def _arc(x0, T, beta, n_sub, dt=1.0):
    xs = [np.asarray(x0, dtype=np.float64)[None]]
    for _ in range(T - 1):
        xs.append(_propagate(xs[-1], dt, beta, n_sub))
    return np.concatenate(xs)  # (T, 6)


def _truth(states, phase, launch_time=-5000.0):
    """One trial, one RV object, on the grid t = 0, 1, ..., T-1."""
    T = states.shape[0]
    return Truth(t=np.arange(T, dtype=np.float64), state=states[None, None], phase=np.full((1, 1, T), phase, np.int8),
                 object_threat=np.array([0]), object_kind=("rv",), launch_time=np.array([[launch_time]]),
                 impact_time=np.array([[np.nan]]), launch_ecef=np.zeros((1, 1, 3)), impact_ecef=np.zeros((1, 1, 3)),
                 trial_index=np.array([7]))


def _sites():
    ecef = np.array([pymap3d.geodetic2ecef(la, lo, h) for la, lo, h in SITES])
    Renu = np.stack([enu_rotation(np.radians(la), np.radians(lo)) for la, lo, _ in SITES])
    return ecef, Renu


def _dets(times, sensors, arrival=None):
    times = np.asarray(times, dtype=np.float64)
    sensors = np.asarray(sensors, dtype=np.int16)
    K = times.size
    R = np.zeros((K, 3, 3))
    for k, s in enumerate(sensors):
        R[k] = np.diag(np.square(SIGMA[s]))
    d = Detections(trial=np.full(K, 7, np.int64), time=times, sensor=sensors, object=np.zeros(K, np.int32),
                   z=np.zeros((K, 3)), R=R, snr=np.full(K, 100.0))
    return d, (times.copy() if arrival is None else np.asarray(arrival, dtype=np.float64))


def _aer(x, s):
    la, lo, h = SITES[s]
    az, el, rng = pymap3d.ecef2aer(x[..., 0], x[..., 1], x[..., 2], np.radians(la), np.radians(lo), h, deg=False)
    return np.stack([rng, az, el], axis=-1)


def _batch_information(x_k, t_k, times, sensors, beta, n_sub, with_theta=False, sigma_beta=0.05):
    """Fisher information of all detections about the state at ``t_k``, by finite differences.

    ``G_i = d h_i(phi(x_k, t_i - t_k)) / d x_k`` (and ``d / d ln beta``) by central differences of
    the truth integrator and pymap3d; ``J = sum G_i^T R_i^-1 G_i`` (+ the prior on ln beta).
    """
    n = 7 if with_theta else 6
    steps = np.array([1.0, 1.0, 1.0, 1e-3, 1e-3, 1e-3, 1e-4])[:n]
    J = np.zeros((n, n))
    if with_theta:
        J[6, 6] = 1.0 / sigma_beta**2
    for ti, s in zip(times, sensors):
        G = np.zeros((3, n))
        for c in range(n):
            xp, xm = x_k.copy(), x_k.copy()
            bp = bm = beta
            if c < 6:
                xp[c] += steps[c]
                xm[c] -= steps[c]
            else:
                bp, bm = beta * np.exp(steps[c]), beta * np.exp(-steps[c])
            dt = ti - t_k
            zp = _aer(_propagate(xp[None], dt, bp, n_sub)[0], s) if dt else _aer(xp, s)
            zm = _aer(_propagate(xm[None], dt, bm, n_sub)[0], s) if dt else _aer(xm, s)
            dz = zp - zm
            dz[1] = (dz[1] + np.pi) % (2 * np.pi) - np.pi
            G[:, c] = dz / (2.0 * steps[c])
        J += G.T @ np.diag(1.0 / np.square(SIGMA[s])) @ G
    return J


# A midcourse arc over the Sea of Japan, 1,500 km up, falling slowly; far above the atmosphere.
X_VACUUM = np.array([-3.55e6, 3.95e6, 4.55e6, -3000.0, -2200.0, 1500.0])


def test_vacuum_arc_equals_batch_fisher_information():
    T = 61
    states = _arc(X_VACUUM, T, 1e4, n_sub=4)
    assert dyn.height_fast(states[:, :3]).min() > 600e3
    truth = _truth(states, PHASE_MIDCOURSE)
    times = np.r_[np.arange(3, 60, 4), np.arange(5, 60, 6)]
    sensors = np.r_[np.zeros(np.arange(3, 60, 4).size, int), np.ones(np.arange(5, 60, 6).size, int)]
    dets, arrival = _dets(times, sensors)
    site, Renu = _sites()
    threats = [_threat(burnout_speed=0.0)]
    J = pcrlb_information(truth, dets, arrival, site, Renu, threats)[0, 0]
    var = pcrlb_position_variance(truth, dets, arrival, site, Renu, threats)
    assert var.shape == (1, 1, T) and var.dtype == np.float64
    for k in (9, 23, 40, 60):
        seen = times <= k
        Jb = _batch_information(states[k], float(k), times[seen], sensors[seen], 1e4, n_sub=4)
        # theta is decoupled in vacuum: its row is the prior alone
        np.testing.assert_allclose(J[k, 6, :6], 0.0, atol=1e-30)
        P = np.linalg.inv(J[k, :6, :6])
        Pb = np.linalg.inv(Jb)
        np.testing.assert_allclose(P, Pb, rtol=2e-5, atol=1e-6 * np.sqrt(np.outer(np.diag(Pb), np.diag(Pb))).max())
        assert var[0, 0, k] == pytest.approx(np.trace(Pb[:3, :3]), rel=1e-5)
    # before the first detection there is no information; one scan of one radar does not fix the
    # velocity, so until the second detection the position a step later is undetermined
    assert np.all(np.isinf(var[0, 0, :3]))
    assert np.isfinite(var[0, 0, 3])  # at the first detection itself the position is known
    assert np.all(np.isinf(var[0, 0, 4:5]))
    assert np.all(np.isfinite(var[0, 0, 5:]))


def test_reentry_arc_with_ballistic_coefficient_parameter():
    """Steep re-entry, 45 -> 20 km: the truth's drag Jacobian and the theta column against the batch information."""
    threat = _threat()
    beta = MISSILES[MISSILE].rv_ballistic_coeff
    # 5 km/s, 30 deg below the horizontal (ENU at 41N 136E): drag grows from ~1 to ~25 g
    lat, lon, h0 = 41.0, 136.0, 45e3
    r0 = np.array(pymap3d.geodetic2ecef(lat, lon, h0))
    E = enu_rotation(np.radians(lat), np.radians(lon))
    v_enu = 5000.0 * np.array([np.cos(np.radians(30.0)), 0.0, -np.sin(np.radians(30.0))])
    x0 = np.r_[r0, E.T @ v_enu]
    T = 11
    states = _arc(x0, T, beta, n_sub=10)
    assert 20e3 < dyn.height_fast(states[-1:, :3])[0] < 21e3
    truth = _truth(states, PHASE_REENTRY)
    times = np.arange(0, T)
    sensors = times % 2
    dets, arrival = _dets(times, sensors)
    site, Renu = _sites()
    J = pcrlb_information(truth, dets, arrival, site, Renu, [threat])[0, 0]
    sb = threat.dispersion.ballistic_coeff_frac
    for k, rtol in ((4, 2e-4), (10, 2e-3)):
        seen = times <= k
        Jb = _batch_information(states[k], float(k), times[seen], sensors[seen], beta, n_sub=10, with_theta=True,
                                sigma_beta=sb)
        P, Pb = np.linalg.inv(J[k]), np.linalg.inv(Jb)
        # exponential midpoint on 0.25-s substeps against RK4 on 0.1-s steps: 6e-4 at 25 g
        np.testing.assert_allclose(np.diag(P), np.diag(Pb), rtol=rtol)
        # correlations, theta's included (their sign is the sign of the drag's dependence on beta)
        corr = P / np.sqrt(np.outer(np.diag(P), np.diag(P)))
        corr_b = Pb / np.sqrt(np.outer(np.diag(Pb), np.diag(Pb)))
        np.testing.assert_allclose(corr, corr_b, atol=5 * rtol)
        assert np.abs(corr[6, :6]).max() > 0.1
    # the drag has taught the estimator about theta: sigma 0.026 against its prior 0.05
    assert np.sqrt(np.linalg.inv(J[10])[6, 6]) == pytest.approx(np.sqrt(np.linalg.inv(Jb)[6, 6]), rel=1e-3)
    assert np.linalg.inv(J[10])[6, 6] < 0.3 * sb**2


# ------------------------------------------------------------------------------------------------
# (c) latency


def _vacuum_setup():
    T = 41
    states = _arc(X_VACUUM, T, 1e4, n_sub=2)
    truth = _truth(states, PHASE_MIDCOURSE)
    times = np.r_[np.arange(2, 40, 2), np.arange(3, 40, 5)]
    sensors = np.r_[np.zeros(np.arange(2, 40, 2).size, int), np.ones(np.arange(3, 40, 5).size, int)]
    site, Renu = _sites()
    return truth, times, sensors, site, Renu, [_threat()]


def test_late_detection_changes_bound_only_from_its_arrival():
    truth, times, sensors, site, Renu, threats = _vacuum_setup()
    late = int(np.flatnonzero((times == 13) & (sensors == 1))[0])
    on_time = _dets(times, sensors)
    arrival = times.astype(float)
    arrival[late] = 21.5  # 8.5 s late: arrives after later detections were processed (out of sequence)
    delayed = (on_time[0], arrival)
    without = np.ones(times.size, bool)
    without[late] = False
    d_wo = dataclasses.replace(on_time[0], **{f: getattr(on_time[0], f)[without]
                                              for f in ("trial", "time", "sensor", "object", "z", "R", "snr")})
    v_on = pcrlb_position_variance(truth, *on_time, site, Renu, threats)[0, 0]
    v_late = pcrlb_position_variance(truth, *delayed, site, Renu, threats)[0, 0]
    v_wo = pcrlb_position_variance(truth, d_wo, times[without].astype(float), site, Renu, threats)[0, 0]
    # before it arrives: as if it never existed; from its arrival (grid time 22) on: exactly as on time
    np.testing.assert_allclose(v_late[:22], v_wo[:22], rtol=1e-12)
    np.testing.assert_allclose(v_late[22:], v_on[22:], rtol=1e-12)
    assert np.all(v_on[13:22] < v_wo[13:22] * (1 - 1e-6))  # it did carry information


def test_random_latencies_equal_rerun_over_arrived_subset():
    truth, times, sensors, site, Renu, threats = _vacuum_setup()
    rng = np.random.default_rng(5)
    arrival = times + rng.choice([0.0, 0.5, 1.0, 3.0, 6.5], size=times.size)
    dets, _ = _dets(times, sensors)
    v = pcrlb_position_variance(truth, dets, arrival, site, Renu, threats)[0, 0]
    for j in (5, 11, 18, 26, 40):
        got = arrival <= truth.t[j]
        sub = dataclasses.replace(dets, **{f: getattr(dets, f)[got]
                                           for f in ("trial", "time", "sensor", "object", "z", "R", "snr")})
        ref = pcrlb_position_variance(truth, sub, times[got].astype(float), site, Renu, threats)[0, 0, j]
        assert v[j] == pytest.approx(ref, rel=1e-12) or (np.isinf(v[j]) and np.isinf(ref))


# ------------------------------------------------------------------------------------------------
# (d) shapes, flight mask, trials and objects, process noise of the burnout


def test_shapes_trials_objects_and_not_in_flight():
    truth1, times, sensors, site, Renu, threats = _vacuum_setup()
    T = truth1.t.size
    # two trials (global indices 7 and 3) and two objects; object 1 of trial 3 flies only from t = 10
    st = np.repeat(np.repeat(truth1.state, 2, axis=0), 2, axis=1).copy()
    st[1, 1, :10] = np.nan
    truth = dataclasses.replace(truth1, state=st, phase=np.repeat(np.repeat(truth1.phase, 2, 0), 2, 1),
                                object_threat=np.array([0, 0]), object_kind=("rv", "rv"),
                                launch_time=np.full((2, 2), -5000.0), trial_index=np.array([7, 3]))
    d, arr = _dets(times, sensors)
    # object 0 of trial 7 gets the detections; object 1 of trial 3 gets those from t = 10 on
    d2 = dataclasses.replace(d, trial=np.r_[d.trial, np.full(times.size, 3)], time=np.r_[d.time, d.time],
                             sensor=np.r_[d.sensor, d.sensor], object=np.r_[d.object, np.ones(times.size, np.int32)],
                             z=np.r_[d.z, d.z], R=np.r_[d.R, d.R], snr=np.r_[d.snr, d.snr])
    arr2 = np.r_[arr, np.where(times >= 10, times, np.inf)]
    # and a false alarm that must be ignored
    d3 = dataclasses.replace(d2, trial=np.r_[d2.trial, 7], time=np.r_[d2.time, 4.0], sensor=np.r_[d2.sensor, 0],
                             object=np.r_[d2.object, -1], z=np.r_[d2.z, np.zeros((1, 3))], R=np.r_[d2.R, d2.R[:1]],
                             snr=np.r_[d2.snr, 10.0])
    arr3 = np.r_[arr2, 4.0]
    v = pcrlb_position_variance(truth, d3, arr3, site, Renu, threats)
    assert v.shape == (2, 2, T) and v.dtype == np.float64
    v1 = pcrlb_position_variance(truth1, d, arr, site, Renu, threats)[0, 0]
    np.testing.assert_allclose(v[0, 0], v1, rtol=1e-12)
    assert np.all(np.isinf(v[0, 1])) and np.all(np.isinf(v[1, 0]))  # no detections of those
    assert np.all(np.isnan(v[1, 1, :10]))  # not in flight
    first = times[times >= 10].min()
    assert np.all(np.isinf(v[1, 1, 10:first]))
    assert np.isfinite(v[1, 1, -1]) and v[1, 1, -1] > v1[-1]  # fewer detections than object 0 of trial 7


def test_burnout_impulse_process_noise():
    """The cut-off step carries Q = sigma_v^2 G G^T, G = [(t_k - t_c) v_hat, v_hat, 0]; other steps none."""
    truth, *_ = _vacuum_setup()
    sigma_v = 10.0
    threat = _threat(burnout_speed=sigma_v)
    from sim.shaping import nominal_for_threat

    t_cut = nominal_for_threat(threat).t_cut
    t_c = 7.25
    truth = dataclasses.replace(truth, launch_time=np.array([[t_c - t_cut]]))
    F, Q = truth_transition(truth, [threat], 1, truth.t.size)
    k = 8  # t[7] < 7.25 <= t[8]
    v = truth.state[0, 0, k, 3:]
    G = np.r_[(k - t_c) * v / np.linalg.norm(v), v / np.linalg.norm(v), 0.0]
    np.testing.assert_allclose(Q[0, 0, k - 1], sigma_v**2 * np.outer(G, G), rtol=1e-12)
    Q[0, 0, k - 1] = 0.0
    assert not Q.any()
    # and it enters the recursion: the bound after the cut-off is larger with the impulse than without
    site, Renu = _sites()
    times = np.arange(1, truth.t.size)
    dets, arrival = _dets(times, times % 2)
    v_q = pcrlb_position_variance(truth, dets, arrival, site, Renu, [threat])[0, 0]
    v_0 = pcrlb_position_variance(truth, dets, arrival, site, Renu, [_threat(burnout_speed=0.0)])[0, 0]
    np.testing.assert_allclose(v_q[:k], v_0[:k], rtol=1e-12)
    assert np.all(v_q[k:] > v_0[k:])
    # a cut-off exactly on a grid time belongs to the step that ends there: the truth's sample at t_c
    # is already past the impulse (sim.truth samples each step's [start, end) from its post-impulse start)
    truth = dataclasses.replace(truth, launch_time=np.array([[7.0 - t_cut]]))
    _, Q = truth_transition(truth, [threat], 1, truth.t.size)
    assert np.flatnonzero(Q[0, 0].any(axis=(1, 2))).tolist() == [7 - 1]
    v = truth.state[0, 0, 7, 3:] / np.linalg.norm(truth.state[0, 0, 7, 3:])
    np.testing.assert_allclose(Q[0, 0, 6, 3:6, 3:6], sigma_v**2 * np.outer(v, v), rtol=1e-12)
    np.testing.assert_allclose(Q[0, 0, 6, :3], 0.0, atol=1e-12)


def test_bad_input():
    from sim.errors import InputError

    truth, times, sensors, site, Renu, threats = _vacuum_setup()
    d, arr = _dets(times, sensors)
    with pytest.raises(InputError):
        pcrlb_position_variance(truth, d, arr[:-1], site, Renu, threats)
    with pytest.raises(InputError):
        pcrlb_position_variance(truth, d, arr - 1.0, site, Renu, threats)
    with pytest.raises(InputError):
        pcrlb_position_variance(truth, d, arr, site[:1], Renu[:1], threats)


def test_expm_against_scipy():
    import scipy.linalg

    from fusion.bounds import _expm

    rng = np.random.default_rng(3)
    M = rng.standard_normal((5, 7, 7)) * np.array([0.01, 0.1, 0.5, 1.0, 3.0])[:, None, None]
    np.testing.assert_allclose(_expm(M), np.stack([scipy.linalg.expm(m) for m in M]), rtol=1e-12, atol=1e-14)
    # each matrix's result is its own, whatever else is in the batch (scaling chosen per matrix)
    for i in range(M.shape[0]):
        np.testing.assert_array_equal(_expm(M)[i], _expm(M[i:i + 1])[0])


def test_system_matrix_rows_independent_of_batch_with_glide_lift():
    """A row above the atmosphere gets the same Jacobian alone or batched with rows in the air (glide lift on)."""
    from fusion.bounds import _ObjectModel, _system_matrix
    from sim.shaping import nominal_for_threat

    threat = _threat()
    model = _ObjectModel(threat, "rv")
    model.__dict__["nominal"] = dataclasses.replace(nominal_for_threat(threat), lift_glide=2.0)  # a gliding RV
    lat, lon = 41.0, 136.0
    E = enu_rotation(np.radians(lat), np.radians(lon))
    x = np.stack([np.r_[pymap3d.geodetic2ecef(lat, lon, h), E.T @ np.array([5000.0, 0.0, -1000.0])]
                  for h in (123e3, 40e3)])
    tau = np.full(2, 1.0e4)
    A_batch = _system_matrix(model, x, tau)
    A_alone = _system_matrix(model, x[:1], tau[:1])
    np.testing.assert_array_equal(A_batch[0], A_alone[0])
    assert np.abs(A_batch[1, 3:6, 6]).max() > 1.0  # the row in the air has drag (and lift) on theta


def test_boost_transition_against_truth_integrator():
    """In boost F is the Jacobian of the truth's own thrusting flow (finite differences of its RK4 step)."""
    from sim.shaping import nominal_for_threat

    threat = _threat()
    nom = nominal_for_threat(threat)
    m = MISSILES[MISSILE]
    prog = dyn.make_program(m, nom.launch_lat, nom.launch_lon, nom.azimuth, nom.kick, nom.t_cut, m.rv_ballistic_coeff,
                            nom.lift_glide, nom.lift_pullup, nom.pitch_program)
    tau0 = 60.0  # gravity turn, low in the air: thrust, drag and its density gradient all act
    res = dyn.fly(prog, dyn.launch_state(nom.launch_lat, nom.launch_lon, 1), tau_max=tau0 + 1.0, record=True)
    i0 = int(np.flatnonzero(np.isclose(res.node_tau, tau0))[0])
    states = res.node_state[[i0, i0 + 1], 0]
    assert res.node_tau[i0 + 1] == pytest.approx(tau0 + 1.0)
    assert 10e3 < dyn.height_fast(states[:, :3]).min() < 60e3
    truth = dataclasses.replace(_truth(states, 0, launch_time=-tau0), phase=np.zeros((1, 1, 2), np.int8))
    F, Q = truth_transition(truth, [threat], 1, 2)
    F = F[0, 0, 0]
    # steps large enough that ECEF round-off (1e-9 m in 6e6 m) stays below 1e-8 of the result
    step = np.array([10.0, 10.0, 10.0, 0.1, 0.1, 0.1])
    F_ref = np.zeros((6, 6))
    prog1 = dyn.make_program(m, nom.launch_lat, nom.launch_lon, np.full(2, nom.azimuth), nom.kick, nom.t_cut,
                             m.rv_ballistic_coeff, nom.lift_glide, nom.lift_pullup, nom.pitch_program)
    for c in range(6):
        X = np.repeat(states[:1], 2, axis=0)
        X[0, c] += step[c]
        X[1, c] -= step[c]
        # the truth's own step: 10 RK4 substeps over the 1-s grid step
        for s in range(10):
            X = dyn.rk4_step(tau0 + 0.1 * s, 0.1, X, prog1)
        F_ref[:, c] = (X[0] - X[1]) / (2.0 * step[c])
    # exponential midpoint on 4 substeps: error 1.4e-6 on the entries (1e-7 on 16, 1e-8 on 64: second order)
    np.testing.assert_allclose(F[:6, :6], F_ref, rtol=1e-6, atol=3e-6)
    from fusion.models import ballistic_transition

    # the thrust and drag terms are far above that tolerance: without them F would miss by 1e-2
    assert np.abs(F[:6, :6] - ballistic_transition(states[0], 1.0)[1]).max() > 1e-2
    assert not np.any(F[:6, 6]) and not Q.any()  # in boost beta does not act (the stack's drag does)


def test_shared_truth_dynamics_gives_identical_bounds():
    from fusion.bounds import TruthDynamics
    from sim.errors import InputError

    beta = MISSILES[MISSILE].rv_ballistic_coeff
    lat, lon = 41.0, 136.0
    E = enu_rotation(np.radians(lat), np.radians(lon))
    x0 = np.r_[pymap3d.geodetic2ecef(lat, lon, 60e3), E.T @ np.array([4000.0, 0.0, -2500.0])]
    truth = _truth(_arc(x0, 8, beta, n_sub=4), PHASE_REENTRY)
    site, Renu = _sites()
    threats = [_threat()]
    dets, arrival = _dets(np.arange(8), np.arange(8) % 2)
    shared = TruthDynamics(truth, threats)
    for late in (0.0, 2.0):  # two nations' arrivals, one shared dynamics
        a = arrival + late
        alone = pcrlb_position_variance(truth, dets, a, site, Renu, threats)
        with_shared = pcrlb_position_variance(truth, dets, a, site, Renu, threats, dynamics=shared)
        np.testing.assert_array_equal(with_shared, alone)
    assert shared.full  # it was filled and reused
    other = dataclasses.replace(truth, state=truth.state.copy())
    with pytest.raises(InputError):
        pcrlb_position_variance(other, dets, arrival, site, Renu, threats, dynamics=shared)


def test_trial_bound_does_not_depend_on_its_batch():
    """Trial k's bound is the same to the bit alone or with other trials (metrics byte-identical for any chunking)."""
    beta = MISSILES[MISSILE].rv_ballistic_coeff
    lat, lon = 41.0, 136.0
    E = enu_rotation(np.radians(lat), np.radians(lon))
    arcs = []
    for h0, v in ((60e3, (4000.0, 0.0, -2500.0)), (130e3, (6000.0, 500.0, -3000.0))):  # one lands in the air later
        x0 = np.r_[pymap3d.geodetic2ecef(lat, lon, h0), E.T @ np.array(v)]
        arcs.append(_arc(x0, 8, beta, n_sub=4))
    one = _truth(arcs[0], PHASE_REENTRY)
    both = dataclasses.replace(one, state=np.stack(arcs)[:, None], phase=np.full((2, 1, 8), PHASE_REENTRY, np.int8),
                               launch_time=np.full((2, 1), -5000.0), trial_index=np.array([7, 8]))
    site, Renu = _sites()
    d, arr = _dets(np.arange(8), np.arange(8) % 2)
    d2 = dataclasses.replace(d, trial=np.r_[d.trial, np.full(8, 8)], time=np.r_[d.time, d.time],
                             sensor=np.r_[d.sensor, d.sensor], object=np.r_[d.object, d.object],
                             z=np.r_[d.z, d.z], R=np.r_[d.R, d.R], snr=np.r_[d.snr, d.snr])
    alone = pcrlb_information(one, d, arr, site, Renu, [_threat()])[0]
    batch = pcrlb_information(both, d2, np.r_[arr, arr + 1.0], site, Renu, [_threat()])[0]
    np.testing.assert_array_equal(batch, alone)
