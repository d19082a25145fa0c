"""Batched KF/EKF kernels against filterpy on the same inputs, and robustness of the kernels."""

import numpy as np
import pytest
from filterpy.kalman import ExtendedKalmanFilter, KalmanFilter

from fusion import kalman
from fusion.models import ballistic_propagate, ballistic_transition, process_noise, radar_H, radar_hx, radar_residual
from sensors.geometry import Site
from sim.errors import InputError

RTOL = 1e-9


def _random_spd(rng, n, cond=10.0):
    """Well-conditioned random SPD matrix (eigenvalues in [1, cond])."""
    Qm, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Qm * rng.uniform(1.0, cond, n)) @ Qm.T


def _assert_close_state(a, b):
    scale = np.maximum(np.abs(b), np.max(np.abs(b)) * 1e-6)
    assert np.all(np.abs(a - b) <= RTOL * scale), np.max(np.abs(a - b) / scale)


def _assert_close_cov(a, b):
    assert np.max(np.abs(a - b)) <= RTOL * np.max(np.abs(b)), np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_linear_kf_matches_filterpy_on_random_problems():
    rng = np.random.default_rng(11)
    B, n, m, steps = 4, 4, 3, 120
    F = np.stack([np.eye(n) + 0.1 * rng.standard_normal((n, n)) for _ in range(B)])
    F /= np.max(np.abs(np.linalg.eigvals(F)), axis=-1)[:, None, None] * 1.01  # stable
    H = rng.standard_normal((B, m, n))
    Q = np.stack([0.1 * _random_spd(rng, n) for _ in range(B)])
    R = np.stack([_random_spd(rng, m) for _ in range(B)])
    x = rng.standard_normal((B, n))
    P = np.stack([_random_spd(rng, n) for _ in range(B)])
    refs = []
    for b in range(B):
        kf = KalmanFilter(dim_x=n, dim_z=m)
        kf.x, kf.P, kf.F, kf.Q, kf.H, kf.R = x[b].copy(), P[b].copy(), F[b], Q[b], H[b], R[b]
        refs.append(kf)
    for _ in range(steps):
        z = rng.standard_normal((B, m)) * 3.0
        x, P = kalman.predict(x, P, F, Q)
        res = kalman.update_full(x, P, z, R, (H @ x[..., None])[..., 0], H)
        x, P = res.x, res.P
        for b, kf in enumerate(refs):
            kf.predict()
            kf.update(z[b])
            _assert_close_state(x[b], kf.x)
            _assert_close_cov(P[b], kf.P)
            _assert_close_cov(res.S[b], kf.S)
            assert res.d2[b] == pytest.approx(kf.mahalanobis**2, rel=1e-9)
        assert res.ok.all()
        assert np.array_equal(P, np.swapaxes(P, -1, -2))


def _radar_flight(steps=120, dt=5.0, seed=3):
    """A ballistic flight over the Sea of Japan seen by a radar near Seoul; noisy AER measurements."""
    rng = np.random.default_rng(seed)
    site = Site(np.radians(37.5), np.radians(127.0), 50.0)
    lat, lon = np.radians(39.0), np.radians(128.0)
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    r0 = (6378137.0 + 300e3) * up
    x0 = np.concatenate([r0, 2500.0 * east + 1500.0 * up])
    truth = [x0]
    for _ in range(steps):
        truth.append(ballistic_propagate(truth[-1], dt))
    truth = np.array(truth)
    R = np.diag([50.0**2, np.radians(0.2) ** 2, np.radians(0.2) ** 2])
    z = radar_hx(truth, site.ecef, site.R_enu) + rng.multivariate_normal(np.zeros(3), R, size=len(truth))
    z[:, 1] = np.mod(z[:, 1], 2 * np.pi)
    return truth, z, R, site


def test_ekf_matches_filterpy_on_ballistic_radar_track():
    truth, z, R, site = _radar_flight()
    dt, q = 5.0, 1.0
    Q = process_noise(dt, q)
    x = truth[0] + np.array([500.0, -300.0, 200.0, 20.0, -10.0, 5.0])
    P = np.diag([1e3**2] * 3 + [50.0**2] * 3)
    ekf = ExtendedKalmanFilter(dim_x=6, dim_z=3)
    ekf.x, ekf.P, ekf.R, ekf.Q = x.copy(), P.copy(), R, Q
    for k in range(1, len(truth)):
        xp, F = ballistic_transition(x, dt)
        x, P = kalman.predict(x, P, F, Q, fx=xp)
        x, P = kalman.update(x, P, z[k], R, radar_hx(x, site.ecef, site.R_enu), radar_H(x, site.ecef, site.R_enu), radar_residual)

        xr, Fr = ballistic_transition(ekf.x, dt)
        ekf.F = Fr
        ekf.predict_x = lambda u=0, xr=xr: setattr(ekf, "x", xr.copy())
        ekf.predict()
        ekf.update(z[k], radar_H, radar_hx, args=(site.ecef, site.R_enu), hx_args=(site.ecef, site.R_enu), residual=radar_residual)
        _assert_close_state(x, ekf.x)
        _assert_close_cov(P, ekf.P)
    # and it tracks: final position error well inside 3 sigma
    err = x[:3] - truth[-1, :3]
    assert err @ np.linalg.solve(P[:3, :3], err) < 16.3  # chi2(3) 0.999


def test_batched_equals_one_by_one():
    truth, z, R, site = _radar_flight(steps=3)
    rng = np.random.default_rng(5)
    x = truth[1] + rng.normal(0, 100.0, (7, 6)) * np.array([1, 1, 1, 0.1, 0.1, 0.1])
    P = np.broadcast_to(np.diag([1e4] * 3 + [1e2] * 3), (7, 6, 6))
    hx, H = radar_hx(x, site.ecef, site.R_enu), radar_H(x, site.ecef, site.R_enu)
    full = kalman.update_full(x, P, z[1], R, hx, H, radar_residual)
    for i in range(7):
        one = kalman.update_full(x[i], P[i], z[1], R, hx[i], H[i], radar_residual)
        np.testing.assert_allclose(full.x[i], one.x, rtol=1e-14)
        np.testing.assert_allclose(full.P[i], one.P, rtol=1e-12, atol=1e-9)


def test_update_with_gain_reuses_gating_quantities():
    rng = np.random.default_rng(2)
    x, P = rng.standard_normal((5, 6)), np.stack([_random_spd(rng, 6) for _ in range(5)])
    H, R = rng.standard_normal((5, 3, 6)), np.stack([_random_spd(rng, 3) for _ in range(5)])
    z = rng.standard_normal((5, 3))
    S = kalman.innovation_covariance(P, H, R)
    S_inv, ok = kalman.inv_spd(S)
    y = kalman.innovation(z, (H @ x[..., None])[..., 0])
    xg, Pg = kalman.update_with_gain(x, P, y, S_inv, H, R)
    full = kalman.update_full(x, P, z, R, (H @ x[..., None])[..., 0], H)
    np.testing.assert_allclose(xg, full.x, rtol=1e-13)
    np.testing.assert_allclose(Pg, full.P, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(kalman.mahalanobis2(y, S_inv), full.d2, rtol=1e-12)
    assert ok.all()


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
def test_inv_spd_and_log_det(m):
    rng = np.random.default_rng(m)
    S = np.stack([_random_spd(rng, m, cond=1e4) * 10.0 ** rng.uniform(-4, 8) for _ in range(20)])
    S_inv, ok = kalman.inv_spd(S)
    assert ok.all()
    np.testing.assert_allclose(S_inv, np.linalg.inv(S), rtol=1e-8, atol=0)
    np.testing.assert_allclose(kalman.log_det_spd(S), np.linalg.slogdet(S)[1], rtol=1e-10, atol=1e-9)
    L, ok = kalman.cholesky_spd(S)
    np.testing.assert_allclose(L, np.linalg.cholesky(S), rtol=1e-10, atol=1e-12 * np.max(np.abs(L)))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_inv_spd_flags_non_positive_definite(m):
    good = np.eye(m) * 2.0
    indefinite = np.eye(m)
    indefinite[-1, -1] = -1.0
    singular = np.ones((m, m))
    nan = np.full((m, m), np.nan)
    S_inv, ok = kalman.inv_spd(np.stack([good, indefinite, singular, nan]))
    assert ok.tolist() == [True, False, False, False]
    assert np.all(np.isfinite(S_inv))
    np.testing.assert_allclose(S_inv[0], np.eye(m) / 2.0)


def test_nan_measurement_and_bad_S_skip_update_and_flag():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 6))
    P = np.broadcast_to(np.eye(6), (4, 6, 6)).copy()
    H = np.broadcast_to(np.eye(3, 6), (4, 3, 6))
    R = np.broadcast_to(np.eye(3), (4, 3, 3)).copy()
    R[2] = -5.0 * np.eye(3)  # makes S = P_pos + R indefinite
    z = rng.standard_normal((4, 3))
    z[1, 0] = np.nan
    z[3, 2] = np.inf
    res = kalman.update_full(x, P, z, R, x[:, :3], H)
    assert res.ok.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(res.x[1:], x[1:])
    np.testing.assert_array_equal(res.P[1:], P[1:])
    assert np.all(np.isinf(res.d2[1:]))
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.P))
    assert not np.allclose(res.x[0], x[0])


def test_covariance_stays_spd_over_10000_steps():
    """Joseph form keeps P symmetric positive definite over a long run with tiny noise (ill-conditioning)."""
    rng = np.random.default_rng(9)
    B, dt = 3, 1.0
    F = np.eye(6)
    F[:3, 3:] = dt * np.eye(3)
    Q = process_noise(dt, 1e-10)
    H = np.eye(3, 6)
    R = np.diag([1e-2, 1e4, 1.0])  # very uneven accuracy
    x = np.zeros((B, 6))
    P = np.broadcast_to(np.diag([1e6] * 3 + [1e2] * 3), (B, 6, 6)).copy()
    min_eig = np.inf
    for k in range(10_000):
        x, P = kalman.predict(x, P, F, Q)
        z = x[:, :3] + rng.standard_normal((B, 3)) * np.sqrt(np.diag(R))
        if k % 1000 == 500:
            z[0] = np.nan  # rejected measurements along the way
        x, P = kalman.update(x, P, z, R, x[:, :3], H)
        assert np.array_equal(P, np.swapaxes(P, -1, -2))
        if k % 500 == 0:
            min_eig = min(min_eig, np.linalg.eigvalsh(P).min())
    assert min_eig > 0.0
    assert np.linalg.eigvalsh(P).min() > 0.0
    assert np.all(np.isfinite(x))


def test_azimuth_across_north_uses_wrapped_residual():
    """Predicted azimuth 359 deg, measured 1 deg: the residual is +2 deg, not -358 deg."""
    site = Site(np.radians(37.0), np.radians(127.0), 0.0)
    x_true = np.zeros(6)
    enu = np.array([np.sin(np.radians(1.0)), np.cos(np.radians(1.0)), 0.3]) * 200e3
    x_true[:3] = site.ecef + site.R_enu.T @ enu
    enu_pred = np.array([np.sin(np.radians(-1.0)), np.cos(np.radians(-1.0)), 0.3]) * 200e3
    x = np.zeros(6)
    x[:3] = site.ecef + site.R_enu.T @ enu_pred
    R = np.diag([10.0**2, np.radians(0.1) ** 2, np.radians(0.1) ** 2])
    P = np.diag([5e3**2] * 3 + [1e2**2] * 3)
    z = radar_hx(x_true, site.ecef, site.R_enu)
    hx = radar_hx(x, site.ecef, site.R_enu)
    assert np.degrees(z[1]) == pytest.approx(1.0) and np.degrees(hx[1]) == pytest.approx(359.0)
    res = kalman.update_full(x, P, z, R, hx, radar_H(x, site.ecef, site.R_enu), radar_residual)
    assert np.degrees(res.y[1]) == pytest.approx(2.0)
    assert res.ok
    # the update moves the estimate toward the truth (most of the way: accurate measurement)
    assert np.linalg.norm(res.x[:3] - x_true[:3]) < 0.1 * np.linalg.norm(x[:3] - x_true[:3])


@pytest.mark.parametrize("el_deg", [89.9, 89.99, 89.9999])
def test_elevation_near_90_degrees_stays_finite_and_consistent(el_deg):
    """Targets near the zenith: the azimuth row of H blows up as 1/cos(el), yet S stays PD and the update sane.

    The azimuth noise is the physical one, sigma / cos(el) (a radar measures angles
    off boresight; azimuth spreads near the zenith), which the sensors module must
    supply; with it the update still pulls the estimate toward the truth.
    """
    site = Site(np.radians(37.0), np.radians(127.0), 0.0)
    el = np.radians(el_deg)
    enu = np.array([np.cos(el) * np.sin(0.3), np.cos(el) * np.cos(0.3), np.sin(el)]) * 400e3
    x_true = np.concatenate([site.ecef + site.R_enu.T @ enu, np.zeros(3)])
    rng = np.random.default_rng(1)
    horizontal_offset = 400e3 * np.cos(el)
    P = np.diag([min(100.0, horizontal_offset / 3.0) ** 2] * 3 + [10.0**2] * 3)
    sigma = np.radians(0.01)
    R = np.diag([5.0**2, (sigma / np.cos(el)) ** 2, sigma**2])
    errs_prior, errs_post = [], []
    for _ in range(20):
        x = x_true + rng.multivariate_normal(np.zeros(6), P)
        z = radar_hx(x_true, site.ecef, site.R_enu) + rng.multivariate_normal(np.zeros(3), R)
        hx, H = radar_hx(x, site.ecef, site.R_enu), radar_H(x, site.ecef, site.R_enu)
        res = kalman.update_full(x, P, z, R, hx, H, radar_residual)
        assert res.ok
        assert np.all(np.isfinite(res.x)) and np.linalg.eigvalsh(res.P).min() > 0
        errs_prior.append(np.linalg.norm(x[:3] - x_true[:3]))
        errs_post.append(np.linalg.norm(res.x[:3] - x_true[:3]))
    assert np.mean(errs_post) < np.mean(errs_prior)


def test_bad_shapes_raise_input_error():
    with pytest.raises(InputError):
        kalman.predict(np.zeros(6), np.zeros((6, 5)), np.eye(6), np.eye(6))
    with pytest.raises(InputError):
        kalman.inv_spd(np.zeros(3))


def test_fused_ballistic_aer_ekf_matches_filterpy_and_skips_bad_measurements():
    """BallisticAerEKF (SoA, reused buffers) equals filterpy's EKF step by step to 1e-9, per track."""
    truth, z, R, site = _radar_flight(steps=60)
    dt, Q = 5.0, process_noise(5.0, 1.0)
    offsets = np.array([[500.0, -300.0, 200.0, 20.0, -10.0, 5.0], [-800.0, 100.0, 600.0, -15.0, 30.0, 0.0],
                        [0.0, 900.0, -400.0, 5.0, 5.0, -25.0]])
    x = truth[0] + offsets
    P = np.broadcast_to(np.diag([1e3**2] * 3 + [50.0**2] * 3), (3, 6, 6)).copy()
    refs = []
    for i in range(3):
        ekf = ExtendedKalmanFilter(dim_x=6, dim_z=3)
        ekf.x, ekf.P, ekf.R, ekf.Q = x[i].copy(), P[i].copy(), R, Q
        refs.append(ekf)
    fused = kalman.BallisticAerEKF(dt, Q, R, site.ecef, site.R_enu)
    for k in range(1, len(truth)):
        zk = np.broadcast_to(z[k], (3, 3)).copy()
        if k == 30:
            zk[1, 2] = np.nan  # track 1 skips this update
        res = fused.step(x, P, zk)
        assert res.ok.tolist() == [True, k != 30, True]
        assert np.array_equal(P, np.swapaxes(P, -1, -2))
        for i, ekf in enumerate(refs):
            xr, Fr = ballistic_transition(ekf.x, dt)
            ekf.F = Fr
            ekf.predict_x = lambda u=0, xr=xr: setattr(ekf, "x", xr.copy())
            ekf.predict()
            if res.ok[i]:
                ekf.update(zk[i], radar_H, radar_hx, args=(site.ecef, site.R_enu), hx_args=(site.ecef, site.R_enu),
                           residual=radar_residual)
                assert res.d2[i] == pytest.approx(ekf.mahalanobis**2, rel=1e-9)
                _assert_close_cov(res.S[i], ekf.S)
            else:
                assert np.isinf(res.d2[i])
            _assert_close_state(x[i], ekf.x)
            _assert_close_cov(P[i], ekf.P)
    with pytest.raises(InputError):
        fused.step(x[:, :3].copy(), P, z[:3])


def test_fused_ekf_worker_threads_give_the_single_thread_bits():
    """workers=2 splits the batch over two threads; every output equals the one-thread step bit for bit."""
    truth, z, R, site = _radar_flight(steps=3)
    rng = np.random.default_rng(5)
    n = 2 * kalman.BallisticAerEKF.MIN_TRACKS_PER_WORKER + 7  # uneven halves
    x = truth[0] + rng.normal(size=(n, 6)) * [500.0, 500.0, 500.0, 20.0, 20.0, 20.0]
    P = np.broadcast_to(np.diag([1e3**2] * 3 + [50.0**2] * 3), (n, 6, 6)).copy()
    zk = np.broadcast_to(z[1], (n, 3)).copy()
    zk[17] = np.nan  # a skipped update in the first slice
    dt, Q = 5.0, process_noise(5.0, 1.0)
    x1, P1, x2, P2 = x.copy(), P.copy(), x.copy(), P.copy()
    r1 = kalman.BallisticAerEKF(dt, Q, R, site.ecef, site.R_enu).step(x1, P1, zk)
    r2 = kalman.BallisticAerEKF(dt, Q, R, site.ecef, site.R_enu, workers=2).step(x2, P2, zk)
    for a, b in zip(r1, r2):
        np.testing.assert_array_equal(a, b)
    assert r2.x is x2 and r2.P is P2 and not r2.ok[17] and r2.ok.sum() == n - 1
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="workers"):
            kalman.BallisticAerEKF(dt, Q, R, site.ecef, site.R_enu, workers=bad)


def test_joseph_update_holds_for_a_non_optimal_gain():
    """With a gain that is not the Kalman gain, only the Joseph form gives the true posterior covariance
    (Bar-Shalom, Li & Kirubarajan 2001, eq. 5.2.3-18, valid for any gain); (I - KH) P is right only at the
    optimal gain, so filterpy comparisons at the optimal gain cannot tell the two apart (issue 24, item 9).
    The true covariance is also checked by the error's sample covariance over many draws."""
    from fusion.kalman import update_with_gain

    rng = np.random.default_rng(11)
    n, m = 4, 2
    A = rng.normal(size=(n, n))
    P = A @ A.T + n * np.eye(n)
    H = rng.normal(size=(m, n))
    R = np.diag([2.0, 0.5])
    S = H @ P @ H.T + R
    S_inv_bad = 0.5 * np.linalg.inv(S)  # K = P H^T (2 S)^-1: half the optimal gain
    x = np.zeros(n)
    y = np.zeros(m)
    _, P_post = update_with_gain(x, P, y, S_inv_bad, H, R)
    K = P @ H.T @ S_inv_bad
    I_KH = np.eye(n) - K @ H
    joseph = I_KH @ P @ I_KH.T + K @ R @ K.T
    np.testing.assert_allclose(P_post, joseph, rtol=1e-12, atol=1e-12)
    assert np.abs(P_post - I_KH @ P).max() > 0.1  # the short form is measurably wrong here
    # Monte Carlo: x_true ~ N(0, P), z = H x_true + v, estimate K z (prior mean 0): error covariance
    N = 200_000
    xt = rng.multivariate_normal(np.zeros(n), P, N)
    z = xt @ H.T + rng.multivariate_normal(np.zeros(m), R, N)
    err = z @ K.T - xt
    np.testing.assert_allclose(np.cov(err.T), P_post, rtol=0.02, atol=0.02 * np.abs(P_post).max())
