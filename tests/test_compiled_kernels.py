"""Per-track compiled kernels (fusion.motion_kernels, fusion.track_kernels, fusion.assign_kernels).

Oracles: filterpy (EKF predict + Joseph update, UKF predict + update), scipy's
linear_sum_assignment, brute-force enumeration, the moments of a Gaussian
mixture, and the batched numpy kernels of fusion.models / fusion.drag /
fusion.imm / fusion.association (themselves tested against filterpy and
independent integrators).
"""

import itertools

import numpy as np
import pytest
from filterpy.kalman import ExtendedKalmanFilter, MerweScaledSigmaPoints, UnscentedKalmanFilter
from scipy.optimize import linear_sum_assignment

from fusion import assign_kernels as ak
from fusion import motion_kernels as mk
from fusion import track_kernels as tk
from fusion.association import gnn_assign, jpda_probabilities
from fusion.drag import drag_process_noise, drag_propagate, drag_transition, substeps_needed
from fusion.imm import imm_combine, imm_mix
from fusion.models import process_noise, radar_H, radar_hx, radar_residual, thrust_transition
from fusion.tracker import initial_state, iterated_linearization
from fusion.ukf import aer_mean
from sim.earth import enu_rotation, geodetic_to_ecef

RTOL = 1e-9


def _state(lat_deg, lon_deg, alt_m, v_enu):
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    r = geodetic_to_ecef(lat, lon, alt_m)
    return np.concatenate([r, enu_rotation(lat, lon).T @ np.asarray(v_enu, dtype=float)])


# midcourse (vacuum), high re-entry (thin air), dense re-entry (stiff drag), early boost (slow)
STATES = {
    "midcourse": _state(40.0, 133.0, 900e3, [2500.0, 800.0, 1500.0]),
    "reentry_high": _state(40.5, 137.0, 95e3, [3000.0, 500.0, -2500.0]),
    "reentry_dense": _state(40.7, 138.0, 30e3, [3500.0, 300.0, -3000.0]),
    "boost": _state(39.0, 125.7, 20e3, [300.0, 100.0, 900.0]),
}
SITE = geodetic_to_ecef(np.radians(36.0), np.radians(128.3), 300.0)
R_ENU = enu_rotation(np.radians(36.0), np.radians(128.3))


def _spd(rng, n=6, scale=1.0):
    A = rng.standard_normal((n, n))
    return scale * (A @ A.T + n * np.eye(n))


@pytest.mark.parametrize("name", sorted(STATES))
@pytest.mark.parametrize("dt", [1.0, 7.5, 23.0, -4.0])
def test_drag_transition_equals_batched_kernel(name, dt):
    """Same model, substeps and Jacobian scheme as fusion.drag.drag_transition (to rounding)."""
    x = STATES[name]
    x_ref, F_ref = drag_transition(x[None], np.array([dt]))
    x1, F = np.empty(6), np.empty((6, 6))
    mk.drag_transition(x, dt, True, x1, F)
    np.testing.assert_allclose(x1, x_ref[0], rtol=1e-13, atol=1e-7)
    np.testing.assert_allclose(F, F_ref[0], rtol=1e-10, atol=1e-12)
    nb, nd = substeps_needed(x[None], np.array([dt]))
    assert mk.in_atmosphere(x, dt) == (nd[0] > 0)
    if nd[0] > 0:
        assert mk.drag_substeps(x, dt) == nd[0]
    Q_ref = process_noise(dt, 3.0) + drag_process_noise(x, x_ref[0], dt)
    Q = np.zeros((6, 6))
    mk.add_process_noise(dt, 3.0, Q)
    mk.add_drag_process_noise(x, x1, dt, Q)
    np.testing.assert_allclose(Q, Q_ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["boost", "midcourse"])
@pytest.mark.parametrize("dt", [1.0, 12.0])
def test_thrust_transition_equals_batched_kernel(name, dt):
    x = STATES[name]
    x_ref, F_ref = thrust_transition(x[None], dt, 50.0, min_direction_speed=1000.0)
    x1, F = np.empty(6), np.empty((6, 6))
    mk.thrust_transition(x, dt, 50.0, 1000.0, x1, F)
    np.testing.assert_allclose(x1, x_ref[0], rtol=1e-13, atol=1e-7)
    np.testing.assert_allclose(F, F_ref[0], rtol=1e-10, atol=1e-12)


def test_radar_model_equals_sensors_geometry():
    rng = np.random.default_rng(1)
    for name, x in STATES.items():
        hx, H, y = np.empty(3), np.empty((3, 6)), np.empty(3)
        tk.radar_hx(x, SITE, R_ENU, hx)
        tk.radar_H(x, SITE, R_ENU, H)
        np.testing.assert_allclose(hx, radar_hx(x, SITE, R_ENU), rtol=1e-14)
        np.testing.assert_allclose(H, radar_H(x, SITE, R_ENU), rtol=1e-12, atol=1e-20)
        z = hx + rng.normal(size=3) * [30.0, 3.0, 1e-3]  # azimuth residual beyond pi: wrapped
        tk.radar_residual(z, hx, y)
        np.testing.assert_allclose(y, radar_residual(z, hx), rtol=1e-14, atol=1e-15)


class _DragEKF(ExtendedKalmanFilter):
    dt = 0.0

    def predict_x(self, u=0):
        self.x = drag_propagate(self.x, self.dt)


@pytest.mark.parametrize("name", ["midcourse", "reentry_high", "reentry_dense"])
def test_ekf_predict_and_update_equal_filterpy(name):
    """One EKF cycle (drag-ballistic predict, Joseph-form AER update) equals filterpy's ExtendedKalmanFilter."""
    rng = np.random.default_rng(7)
    x = STATES[name].copy()
    P = np.diag([300.0**2] * 3 + [20.0**2] * 3)
    dt, q = 4.0, 4.0
    R = np.diag([25.0**2, 1.5e-3**2, 1.5e-3**2])
    xm, Pm, mu = x[None].copy(), P[None].copy(), np.ones(1)
    tk.predict_track(tk.EKF, xm, Pm, mu, dt, q, 0.0, 0.0, 0.0, 1.0, 1.0)
    ekf = _DragEKF(dim_x=6, dim_z=3)
    ekf.x, ekf.P, ekf.dt = x.copy(), P.copy(), dt
    x1, F = drag_transition(x[None], np.array([dt]))
    ekf.F = F[0]
    ekf.Q = process_noise(dt, q) + drag_process_noise(x, x1[0], dt)
    ekf.predict()
    np.testing.assert_allclose(xm[0], ekf.x, rtol=RTOL)
    np.testing.assert_allclose(Pm[0], ekf.P, rtol=RTOL, atol=RTOL * np.abs(ekf.P).max())
    z = radar_hx(ekf.x, SITE, R_ENU) + rng.normal(size=3) * [25.0, 1.5e-3, 1.5e-3]
    tk.update_track(tk.EKF, xm, Pm, mu, z, R, SITE, R_ENU, False)
    ekf.update(z, HJacobian=lambda s: radar_H(s, SITE, R_ENU), Hx=lambda s: radar_hx(s, SITE, R_ENU), R=R,
               residual=radar_residual)
    np.testing.assert_allclose(xm[0], ekf.x, rtol=RTOL)
    np.testing.assert_allclose(Pm[0], ekf.P, rtol=RTOL, atol=RTOL * np.abs(ekf.P).max())


def test_ukf_predict_and_update_equal_filterpy():
    """UKF cycle with Merwe points (0.5, 2, 0), circular azimuth mean: filterpy's UnscentedKalmanFilter."""
    rng = np.random.default_rng(3)
    x = STATES["midcourse"].copy()
    P = np.diag([500.0**2] * 3 + [30.0**2] * 3)
    dt, q = 5.0, 1.0
    R = np.diag([25.0**2, 1.5e-3**2, 1.5e-3**2])
    pts = MerweScaledSigmaPoints(6, 0.5, 2.0, 0.0)
    f = UnscentedKalmanFilter(6, 3, dt, hx=lambda s: radar_hx(s, SITE, R_ENU),
                              fx=lambda s, dt_: drag_propagate(s, dt_), points=pts,
                              residual_z=radar_residual, z_mean_fn=aer_mean)
    f.x, f.P = x.copy(), P.copy()
    f.Q = process_noise(dt, q) + drag_process_noise(x, drag_propagate(x, dt), dt)
    f.R = R
    f.predict()
    xm, Pm, mu = x[None].copy(), P[None].copy(), np.ones(1)
    tk.predict_track(tk.UKF, xm, Pm, mu, dt, q, 0.0, 0.0, 0.0, 1.0, 1.0)
    np.testing.assert_allclose(xm[0], f.x, rtol=RTOL)
    np.testing.assert_allclose(Pm[0], f.P, rtol=RTOL, atol=RTOL * np.abs(f.P).max())
    z = radar_hx(f.x, SITE, R_ENU) + rng.normal(size=3) * [25.0, 1.5e-3, 1.5e-3]
    f.sigmas_f = pts.sigma_points(f.x, f.P)  # the update redraws its sigma points from the prediction
    f.update(z)
    tk.update_track(tk.UKF, xm, Pm, mu, z, R, SITE, R_ENU, False)
    np.testing.assert_allclose(xm[0], f.x, rtol=RTOL)
    np.testing.assert_allclose(Pm[0], f.P, rtol=RTOL, atol=RTOL * np.abs(f.P).max())


def test_imm_mixing_and_combination_equal_batched_imm():
    rng = np.random.default_rng(5)
    xm = np.stack([STATES["boost"], STATES["boost"] + rng.normal(size=6) * 100.0])
    Pm = np.stack([_spd(rng, scale=1e4), _spd(rng, scale=1e3)])
    mu = np.array([0.3, 0.7])
    M = tk.imm_markov(4.0, 60.0, 1e9)
    x0, P0, cbar = np.empty((2, 6)), np.empty((2, 6, 6)), np.empty(2)
    tk.imm_mix(xm, Pm, mu, M, x0, P0, cbar)
    rx0, rP0, rcbar = imm_mix(xm, Pm, mu, M)
    np.testing.assert_allclose(cbar, rcbar, rtol=1e-14)
    np.testing.assert_allclose(x0, rx0, rtol=1e-14)
    np.testing.assert_allclose(P0, rP0, rtol=1e-12)
    x, P = np.empty(6), np.empty((6, 6))
    tk.combine(xm, Pm, mu, x, P)
    rx, rP = imm_combine(xm, Pm, mu)
    np.testing.assert_allclose(x, rx, rtol=1e-14)
    np.testing.assert_allclose(P, rP, rtol=1e-12)


def test_dormant_thrust_mode_is_the_ballistic_prediction_and_an_active_one_is_not():
    """IMM prediction (fusion.track_kernels.predict_track): below MU_DORMANT the thrust mode takes the
    ballistic mode's prediction; the ballistic mode is the EKF prediction of its mixed state either way."""
    rng = np.random.default_rng(9)
    x = STATES["midcourse"]
    Pm0 = np.stack([_spd(rng, scale=1e3), _spd(rng, scale=1e2)])
    xm0 = np.stack([x + rng.normal(size=6) * 50.0, x])
    dt, q = 3.0, 1e-4
    for mu0, dormant in ((0.5 * tk.MU_DORMANT, True), (1e-2, False)):
        xm, Pm, mu = xm0.copy(), Pm0.copy(), np.array([mu0, 1.0 - mu0])
        tk.predict_track(tk.IMM, xm, Pm, mu, dt, q * q, 625.0, 50.0, 1000.0, 60.0, 1e9)
        M = tk.imm_markov(dt, 60.0, 1e9)
        rx0, rP0, rcbar = imm_mix(xm0, Pm0, np.array([mu0, 1.0 - mu0]), M)
        x1, P1 = np.empty(6), np.empty((6, 6))
        tk.ekf_predict(rx0[1], rP0[1], dt, q * q, x1, P1)
        np.testing.assert_allclose(xm[1], x1, rtol=1e-13)
        np.testing.assert_allclose(Pm[1], P1, rtol=1e-11)
        np.testing.assert_allclose(mu, rcbar, rtol=1e-14)
        assert (rcbar[0] < tk.MU_DORMANT) == dormant
        assert np.array_equal(xm[0], xm[1]) == dormant and np.array_equal(Pm[0], Pm[1]) == dormant


def test_initiation_and_iterated_linearization_equal_reference():
    rng = np.random.default_rng(2)
    z = np.array([812e3, np.radians(47.0), np.radians(18.0)])
    R = np.diag([25.0**2, 1.5e-3**2, 1.5e-3**2])
    x0, P0 = np.empty(6), np.empty((6, 6))
    tk.initial_state(z, R, SITE, R_ENU, 7500.0, x0, P0)
    rx, rP = initial_state(z, R, SITE, R_ENU, 7500.0)
    np.testing.assert_allclose(x0, rx, rtol=1e-14)
    np.testing.assert_allclose(P0, rP, rtol=1e-12, atol=1e-300)
    z2 = radar_hx(STATES["midcourse"], SITE, R_ENU) + rng.normal(size=3) * [25.0, 1.5e-3, 1.5e-3]
    x = STATES["midcourse"] + np.r_[rng.normal(size=3) * 5e3, rng.normal(size=3) * 3e3]
    P = np.diag([1e4**2] * 3 + [4e3**2] * 3)
    hx, H = np.empty(3), np.empty((3, 6))
    tk.iterated_linearization(x, P, z2, R, SITE, R_ENU, hx, H)
    rhx, rH = iterated_linearization(x, P, z2, R, SITE, R_ENU)
    np.testing.assert_allclose(hx, rhx, rtol=1e-10)
    np.testing.assert_allclose(H, rH, rtol=1e-9, atol=1e-18)


def test_linear_assignment_equals_scipy():
    rng = np.random.default_rng(4)
    for nr, nc in [(1, 1), (2, 3), (4, 4), (3, 7), (6, 6)]:
        for _ in range(20):
            C = rng.uniform(0.0, 30.0, size=(nr, nc))
            c4r = ak.linear_assignment(C)
            rows, cols = linear_sum_assignment(C)
            np.testing.assert_array_equal(c4r[rows], cols)


def test_gnn_assign_equals_batched_gnn():
    """Most gated pairs first, then least cost: the same pairs as fusion.association.gnn_assign."""
    rng = np.random.default_rng(8)
    for _ in range(200):
        k, n = rng.integers(1, 6), rng.integers(1, 6)
        cand = rng.random((k, n)) < 0.5
        cost = rng.uniform(-5.0, 25.0, size=(k, n))
        det_of = ak.gnn_assign(cand, cost)
        a, j = np.nonzero(cand)
        ref = gnn_assign(a, j, cost[a, j], np.zeros(a.size, dtype=np.int64))
        want = np.full(n, -1)
        want[j[ref]] = a[ref]
        np.testing.assert_array_equal(det_of, want)


def test_jpda_star_equals_brute_force_and_batched():
    """Marginals over the events kept by JPDA* (best of each permutation group), by brute force."""
    rng = np.random.default_rng(9)
    for nd, nt in [(1, 2), (2, 2), (3, 2), (2, 3), (3, 3), (4, 3)]:
        gated = rng.random((nd, nt)) < 0.8
        gated[0, :] = True
        lw = np.where(gated, rng.normal(size=(nd, nt)) * 3.0, -np.inf)
        beta, beta0, map_det = ak.jpda_star(lw, gated)
        # brute force: events as tuples, JPDA* keeps the best of each (det set, track set) group
        events = [e for e in itertools.product(range(nd + 1), repeat=nt)
                  if len([k for k in e if k < nd]) == len({k for k in e if k < nd})]
        w = np.array([sum(lw[k, j] if k < nd else 0.0 for j, k in enumerate(e)) for e in events])
        key = [(frozenset(k for k in e if k < nd), frozenset(j for j, k in enumerate(e) if k < nd)) for e in events]
        best = {}
        for kk, ww in zip(key, w):
            best[kk] = max(best.get(kk, -np.inf), ww)
        w = np.where([ww >= best[kk] for kk, ww in zip(key, w)], w, -np.inf)
        p = np.exp(w - w.max())
        p /= p.sum()
        want = np.zeros((nd, nt))
        for e, pe in zip(events, p):
            for j, k in enumerate(e):
                if k < nd:
                    want[k, j] += pe
        np.testing.assert_allclose(beta, want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(beta0, np.clip(1.0 - want.sum(axis=0), 0.0, 1.0), atol=1e-12)
        e_map = events[int(np.argmax(p))]
        np.testing.assert_array_equal(map_det, [k if k < nd else -1 for k in e_map])
        # and the batched implementation
        a, j = np.nonzero(gated)
        rb, rmap = jpda_probabilities(np.zeros(a.size, dtype=np.int64), a, j, lw[a, j])
        np.testing.assert_allclose(beta[a, j], rb, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(map_det[j[rmap]], a[rmap])


def _mixture_moments(weights, means, covs):
    w = np.asarray(weights) / np.sum(weights)
    m = np.einsum("k,ki->i", w, means)
    d = means - m
    return m, np.einsum("k,kij->ij", w, covs + d[:, :, None] * d[:, None, :])


@pytest.mark.parametrize("kind", [tk.EKF, tk.IMM])
def test_pda_merge_is_the_mixture_of_all_hypotheses(kind):
    """Per mode, the moment-matched mixture of (no detection, detection k) weighted by beta mu (Blom & Bloem 2000)."""
    rng = np.random.default_rng(6)
    r = 2 if kind == tk.IMM else 1
    n = 3
    x0 = rng.normal(size=(r, 6)) * 100.0
    P0 = np.stack([_spd(rng) for _ in range(r)])
    mu0 = np.array([0.4, 0.6]) if r == 2 else np.ones(1)
    xk = rng.normal(size=(n, r, 6)) * 100.0
    Pk = np.stack([np.stack([_spd(rng) for _ in range(r)]) for _ in range(n)])
    muk = rng.dirichlet(np.ones(r), size=n) if r == 2 else np.ones((n, 1))
    beta = np.array([0.5, 0.2, 0.1])
    beta0 = 0.2
    xm, Pm, mu = np.empty((r, 6)), np.empty((r, 6, 6)), np.empty(r)
    tk.pda_merge(kind, x0, P0, mu0, beta0, xk, Pk, muk, beta, n, xm, Pm, mu)
    wmode = np.array([beta0 * mu0[i] + beta @ muk[:, i] for i in range(r)])
    np.testing.assert_allclose(mu, wmode / wmode.sum() if r == 2 else [1.0], rtol=1e-13)
    for i in range(r):
        w = np.r_[beta0 * mu0[i], beta * muk[:, i]]
        m, C = _mixture_moments(w, np.vstack([x0[i][None], xk[:, i]]), np.vstack([P0[i][None], Pk[:, i]]))
        np.testing.assert_allclose(xm[i], m, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(Pm[i], C, rtol=1e-11, atol=1e-9)
    # combined over the modes: the mixture of every (hypothesis, mode) term
    terms = [(beta0 * mu0[i], x0[i], P0[i]) for i in range(r)]
    terms += [(beta[k] * muk[k, i], xk[k, i], Pk[k, i]) for k in range(n) for i in range(r)]
    w, means, covs = zip(*terms)
    m, C = _mixture_moments(np.array(w), np.array(means), np.array(covs))
    xc, Pc = np.empty(6), np.empty((6, 6))
    tk.combine(xm, Pm, mu, xc, Pc)
    np.testing.assert_allclose(xc, m, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(Pc, C, rtol=1e-10, atol=1e-8)


def test_exact_zenith_makes_the_pair_invalid_and_keeps_the_prior():
    """Target exactly overhead (ENU east = north = 0): no exception, no update (as fusion.kalman skips it)."""
    from sensors.geometry import Site, ecef_to_enu

    site = Site(0.0, 0.0, 30.0)
    x = np.array([site.ecef[0] + 300e3, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert np.all(ecef_to_enu(x[:3], site.ecef, site.R_enu)[:2] == 0.0)
    P = np.diag([1e6] * 3 + [1e4] * 3)
    R = np.diag([25.0**2, 1.5e-3**2, 1.5e-3**2])
    z = np.array([300e3 - 30.0, 0.1, np.pi / 2 - 1e-4])
    H = np.empty((3, 6))
    tk.radar_H(x, site.ecef, site.R_enu, H)
    assert np.all(np.isnan(H))
    for kind in (tk.EKF, tk.IMM):
        r = 2 if kind == tk.IMM else 1
        xm, Pm, mu = np.repeat(x[None], r, 0), np.repeat(P[None], r, 0), np.full(r, 1.0 / r)
        ok, d2, cost, ld = tk.pair_stats(kind, xm, Pm, mu, z, R, site.ecef, site.R_enu)
        assert not ok and not d2 <= 1e300
        x0, P0, mu0 = xm.copy(), Pm.copy(), mu.copy()
        tk.update_track(kind, xm, Pm, mu, z, R, site.ecef, site.R_enu, False)
        np.testing.assert_array_equal(xm, x0)
        np.testing.assert_array_equal(Pm, P0)
        np.testing.assert_array_equal(mu, mu0)


@pytest.mark.parametrize("swerling", [1, 2, 3, 4])
def test_track_detection_probability_is_the_radars_own(swerling):
    """fusion.loop._track_pd: the radar's P_D (sensors.radar.detection_probability) at the track's range for
    the RCS its plots imply (fusion.loop._observe_rcs, radar equation), as the JPDA* weight ln(P_D/(1-P_D P_G))."""
    import math

    from fusion import loop as L
    from sensors.radar import detection_probability

    cfg_ip, fp = L._parameters(__import__("sim.config", fromlist=["TrackerConfig"]).TrackerConfig(jpda_pd="radar"))
    ip = cfg_ip.copy()
    ip[L._I_PDMODEL] = 1
    snr_ref, pfa = 4.0e21, 1e-6  # S_ref rho_ref^4 of a 1 m^2 target; a long-range radar (notional)
    det_model = np.array([[snr_ref, pfa, float(swerling)]])
    TF = np.zeros((1, L._NTF))
    rho_plot, rcs = 1.2e6, 0.05
    L._observe_rcs(TF, 0, snr_ref * rcs / rho_plot**4, rho_plot, snr_ref, True)
    np.testing.assert_allclose(math.exp(TF[0, L._RCS]), rcs, rtol=1e-12)
    x = STATES["midcourse"]
    rho = float(np.linalg.norm(x[:3] - SITE))
    pd = float(detection_probability(snr_ref * rcs / rho**4, pfa, swerling))
    pd = min(max(pd, L.PD_CLIP[0]), L.PD_CLIP[1])
    got = L._track_pd(ip, fp, x, SITE, det_model, 0, TF, 0)
    np.testing.assert_allclose(got, math.log(pd / (1.0 - pd * fp[L._P_PG])), rtol=1e-12)
    ip[L._I_PDMODEL] = 0  # the fixed weight otherwise
    assert L._track_pd(ip, fp, x, SITE, det_model, 0, TF, 0) == fp[L._P_LOGPD]
