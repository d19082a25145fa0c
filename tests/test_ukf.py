"""Batched UKF against filterpy's UnscentedKalmanFilter on the same inputs."""

import numpy as np
import pytest
from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter

from fusion import ukf
from fusion.models import ballistic_propagate, process_noise, radar_hx, radar_residual
from sensors.geometry import Site

RTOL = 1e-9


def _close_state(a, b):
    scale = np.maximum(np.abs(b), np.max(np.abs(b)) * 1e-6)
    assert np.all(np.abs(a - b) <= RTOL * scale), np.max(np.abs(a - b) / scale)


def _close_cov(a, b):
    assert np.max(np.abs(a - b)) <= RTOL * np.max(np.abs(b)), np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("alpha,beta,kappa", [(0.5, 2.0, 0.0), (1e-1, 2.0, -3.0), (1.0, 0.0, 1.0)])
def test_sigma_points_and_weights_match_filterpy(alpha, beta, kappa):
    rng = np.random.default_rng(0)
    n = 6
    A = rng.standard_normal((n, n))
    P = A @ A.T + n * np.eye(n)
    x = rng.standard_normal(n)
    ref = MerweScaledSigmaPoints(n, alpha, beta, kappa)
    Wm, Wc, _ = ukf.merwe_weights(n, alpha, beta, kappa)
    np.testing.assert_allclose(Wm, ref.Wm, rtol=1e-14)
    np.testing.assert_allclose(Wc, ref.Wc, rtol=1e-14)
    s, ok = ukf.sigma_points(x, P, alpha, beta, kappa)
    np.testing.assert_allclose(s, ref.sigma_points(x, P), rtol=1e-13, atol=1e-13)
    assert ok


def test_aer_mean_is_circular_across_north():
    sz = np.array([[1000.0, np.radians(359.0), 0.5], [1000.0, np.radians(1.0), 0.5], [1000.0, np.radians(0.0), 0.5]])
    z = ukf.aer_mean(sz, np.array([0.25, 0.25, 0.5]))
    assert min(np.degrees(z[1]), 360.0 - np.degrees(z[1])) < 1e-9
    assert z[0] == pytest.approx(1000.0) and z[2] == pytest.approx(0.5)


def _flight(steps, dt, seed):
    rng = np.random.default_rng(seed)
    site = Site(np.radians(37.5), np.radians(127.0), 50.0)
    lat, lon = np.radians(39.0), np.radians(128.0)
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    truth = [np.concatenate([(6378137.0 + 300e3) * up, 2500.0 * east + 1500.0 * up])]
    for _ in range(steps):
        truth.append(ballistic_propagate(truth[-1], dt))
    truth = np.array(truth)
    R = np.diag([50.0**2, np.radians(0.2) ** 2, np.radians(0.2) ** 2])
    z = radar_hx(truth, site.ecef, site.R_enu) + rng.multivariate_normal(np.zeros(3), R, size=len(truth))
    z[:, 1] = np.mod(z[:, 1], 2 * np.pi)
    return truth, z, R, site


def test_ukf_matches_filterpy_on_ballistic_radar_track():
    steps, dt = 110, 5.0
    truth, z, R, site = _flight(steps, dt, seed=8)
    Q = process_noise(dt, 1.0)
    B = 3  # three tracks with different initial errors, batched; one filterpy object each
    rng = np.random.default_rng(1)
    P0 = np.diag([1e3**2] * 3 + [50.0**2] * 3)
    x = truth[0] + rng.multivariate_normal(np.zeros(6), P0, size=B)
    P = np.broadcast_to(P0, (B, 6, 6)).copy()
    refs = []
    for b in range(B):
        pts = MerweScaledSigmaPoints(6, ukf.ALPHA, ukf.BETA, ukf.KAPPA)
        f = UnscentedKalmanFilter(
            dim_x=6, dim_z=3, dt=dt, points=pts,
            fx=lambda s, dt: ballistic_propagate(s, dt),
            hx=lambda s: radar_hx(s, site.ecef, site.R_enu),
            z_mean_fn=ukf.aer_mean, residual_z=radar_residual,
        )
        f.x, f.P, f.Q, f.R = x[b].copy(), P0.copy(), Q, R
        refs.append(f)
    for k in range(1, steps + 1):
        x, P = ukf.ukf_predict(x, P, lambda s: ballistic_propagate(s, dt), Q)
        res = ukf.ukf_update(x, P, z[k], R, lambda s: radar_hx(s, site.ecef, site.R_enu))
        assert res.ok.all()
        x, P = res.x, res.P
        for b, f in enumerate(refs):
            f.predict()
            f.update(z[k])
            _close_state(x[b], f.x)
            _close_cov(P[b], f.P)
            _close_cov(res.S[b], f.S)
    err = x[:, :3] - truth[-1, :3]
    d2 = np.einsum("bi,bij,bj->b", err, np.linalg.inv(P[:, :3, :3]), err)
    assert np.all(d2 < 16.3)  # chi2(3) 0.999


def test_ukf_linear_equals_kalman_filter():
    """On a linear model the UKF is exact: it equals the KF (up to rounding)."""
    from fusion import kalman

    rng = np.random.default_rng(4)
    F = np.eye(6)
    F[:3, 3:] = 2.0 * np.eye(3)
    Q = process_noise(2.0, 0.5)
    H = np.eye(3, 6)
    R = np.diag([4.0, 9.0, 1.0])
    xk = xu = rng.standard_normal(6)
    Pk = Pu = np.eye(6) * 10.0
    for _ in range(50):
        z = rng.standard_normal(3) * 10
        xk, Pk = kalman.predict(xk, Pk, F, Q)
        xk, Pk = kalman.update(xk, Pk, z, R, H @ xk, H)
        xu, Pu = ukf.ukf_predict(xu, Pu, lambda s: s @ F.T, Q)
        res = ukf.ukf_update(xu, Pu, z, R, lambda s: s[..., :3], residual=None, z_mean=None)
        xu, Pu = res.x, res.P
    np.testing.assert_allclose(xu, xk, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(Pu, Pk, rtol=1e-8, atol=1e-9)


def test_ukf_rejects_nan_and_flags():
    truth, z, R, site = _flight(2, 5.0, seed=1)
    x = np.stack([truth[1], truth[1]])
    P = np.broadcast_to(np.diag([1e4] * 3 + [1e2] * 3), (2, 6, 6)).copy()
    zz = np.stack([z[1], z[1]])
    zz[1, 2] = np.nan
    res = ukf.ukf_update(x, P, zz, R, lambda s: radar_hx(s, site.ecef, site.R_enu))
    assert res.ok.tolist() == [True, False]
    np.testing.assert_array_equal(res.x[1], x[1])
    np.testing.assert_allclose(res.P[1], P[1])
