"""Numerical edge cases that public trackers and geodesy libraries have shipped (issue 22).

Each test reproduces one reported fault: the unscented covariance update losing
positive semi-definiteness with a huge prior and a very precise measurement, a
skipped update at the exact zenith returning NaN instead of the prior, and integer
or float32 inputs to the geometry squaring in their own dtype.
"""

from __future__ import annotations

import numpy as np
import pymap3d
import pytest
from filterpy.kalman import KalmanFilter

from fusion import imm, kalman, ukf
from fusion.models import radar_H, radar_hx, radar_residual
from sensors import geometry
from sim import dynamics, earth

A_WGS84 = 6378137.0  # m, WGS-84 semi-major axis (TR8350.2 Table 3.1)


# ----------------------------------------------------------------- (1) UKF covariance update
def _huge_prior_cases(count=200, seed=22):
    """``count`` nearby 6-state problems: prior variance ~1e9 m^2 (correlated), position measured with 1e-9 m^2."""
    rng = np.random.default_rng(seed)
    x = 1e6 * np.array([-3.1, 4.1, 3.9, 0.0, 0.0, 0.0]) + rng.standard_normal((count, 6)) * 10.0
    A = rng.standard_normal((count, 6, 6))
    P = 1e9 * (np.eye(6) + 0.05 * (A @ np.swapaxes(A, -1, -2)))
    z = x[:, :3] + rng.standard_normal((count, 3)) * 3e4
    R = 1e-9 * np.eye(3)
    return x, P, z, R


def test_ukf_update_keeps_p_symmetric_psd_with_huge_prior_and_precise_measurement():
    """Prior 1e9 m^2, R 1e-9 m^2 on a linear position measurement: the Joseph-form posterior stays PSD.

    P - K S K^T cancels twelve digits and left negative variances in most cases (issue 22).
    With a linear h the UKF is the Kalman filter, so filterpy's KalmanFilter (Joseph form) on
    the same inputs is the reference.
    """
    x, P, z, R = _huge_prior_cases()
    H = np.eye(3, 6)
    res = ukf.ukf_update(x, P, z, R, lambda s: s[..., :3], residual=None, z_mean=None)
    assert res.ok.all()
    assert np.array_equal(res.P, np.swapaxes(res.P, -1, -2))
    # Positive definite: LAPACK's Cholesky factors every posterior (the old update failed 190 of 200).
    np.linalg.cholesky(res.P)
    eig = np.linalg.eigvalsh(res.P)
    # eigvalsh resolves eigenvalues only to about eps x |P| = 2e-16 x 2e9 = 5e-7 m^2.
    assert eig.min() >= -1e-15 * eig.max(axis=-1).max(), eig.min()
    assert np.all(np.diagonal(res.P, axis1=-2, axis2=-1) > 0.0)
    # Position variances: about R (the measurement dominates), never the cancelled noise of 1e9.
    pos_var = np.diagonal(res.P, axis1=-2, axis2=-1)[:, :3]
    np.testing.assert_allclose(pos_var, 1e-9, rtol=1e-3)
    for i in range(0, len(x), 20):
        kf = KalmanFilter(dim_x=6, dim_z=3)
        kf.x, kf.P, kf.H, kf.R = x[i].copy(), P[i].copy(), H, R
        kf.update(z[i])
        np.testing.assert_allclose(res.x[i], kf.x, rtol=0, atol=1e-6)  # m, on coordinates of 1e6 m
        np.testing.assert_allclose(res.P[i][:3, :3], kf.P[:3, :3], rtol=1e-4, atol=1e-15)  # m^2
        np.testing.assert_allclose(res.P[i][3:, 3:], kf.P[3:, 3:], rtol=1e-6)
    # The next prediction draws its sigma points from this P (it would fall back to an identity root).
    _, ok = ukf.sigma_points(res.x, res.P)
    assert ok.all()


def test_ukf_update_joseph_form_still_matches_filterpy_ukf_on_radar():
    """Ordinary AER case: the Joseph form equals P - K S K^T to rounding (filterpy's UKF is the oracle)."""
    from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter

    site = geometry.Site(np.radians(37.5), np.radians(127.0), 50.0)
    enu = np.array([2.0e5, 3.0e5, 1.5e5])
    x = np.concatenate([site.ecef + site.R_enu.T @ enu, [1000.0, 2000.0, -500.0]])
    P = np.diag([2e3**2] * 3 + [50.0**2] * 3)
    R = np.diag([30.0**2, np.radians(0.1) ** 2, np.radians(0.1) ** 2])
    z = radar_hx(x, site.ecef, site.R_enu) + np.array([500.0, 0.004, -0.003])
    res = ukf.ukf_update(x, P, z, R, lambda s: radar_hx(s, site.ecef, site.R_enu))
    pts = MerweScaledSigmaPoints(6, ukf.ALPHA, ukf.BETA, ukf.KAPPA)
    f = UnscentedKalmanFilter(6, 3, 1.0, lambda s: radar_hx(s, site.ecef, site.R_enu), lambda s, dt: s, pts,
                              z_mean_fn=ukf.aer_mean, residual_z=radar_residual)
    f.x, f.P, f.R = x.copy(), P.copy(), R
    f.sigmas_f = pts.sigma_points(x, P)  # filterpy's update reuses the predict step's sigma points
    f.update(z)
    np.testing.assert_allclose(res.x, f.x, rtol=1e-12)
    assert np.max(np.abs(res.P - f.P)) <= 1e-9 * np.max(np.abs(f.P))


# ----------------------------------------------------------------- (2) exact zenith: skipped update keeps the prior
def _zenith():
    """A radar on the equator at longitude 0 and a target exactly overhead: ENU east and north are exactly 0."""
    site = geometry.Site(0.0, 0.0, 30.0)
    x = np.array([site.ecef[0] + 300e3, 0.0, 0.0, 0.0, 0.0, 0.0])
    enu = geometry.ecef_to_enu(x[:3], site.ecef, site.R_enu)
    assert enu[0] == 0.0 and enu[1] == 0.0  # exactly overhead
    return site, x


def _prior(n=6, seed=3):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return 1e4 * (A @ A.T + n * np.eye(n))


def test_ekf_skipped_update_at_exact_zenith_returns_prior_bit_for_bit():
    site, x = _zenith()
    P = _prior()
    H = radar_H(x, site.ecef, site.R_enu)
    assert np.isnan(H).any()  # the azimuth row is 0/0 overhead
    R = np.diag([10.0**2, 1e-6, 1e-6])
    z = radar_hx(x, site.ecef, site.R_enu) + np.array([5.0, 0.0, 0.0])
    res = kalman.update_full(x, P, z, R, radar_hx(x, site.ecef, site.R_enu), H, radar_residual)
    assert not res.ok
    assert np.array_equal(res.x, x) and np.array_equal(res.P, P)
    assert np.isinf(res.d2)
    # Batched: the other elements update normally.
    x2 = np.stack([x, x + np.array([1e3, 2e3, 0, 0, 0, 0])])
    H2 = radar_H(x2, site.ecef, site.R_enu)
    res2 = kalman.update_full(x2, np.stack([P, P]), np.stack([z, z]), R, radar_hx(x2, site.ecef, site.R_enu), H2,
                              radar_residual)
    assert res2.ok.tolist() == [False, True]
    assert np.array_equal(res2.x[0], x) and np.array_equal(res2.P[0], P)
    assert np.all(np.isfinite(res2.x[1])) and np.all(np.isfinite(res2.P[1]))
    # update_with_gain with a NaN gain input and ok False: the prior too.
    xg, Pg = kalman.update_with_gain(x, P, np.full(3, np.nan), np.eye(3), H, R, ok=np.array(False))
    assert np.array_equal(xg, x) and np.array_equal(Pg, P)


def test_fused_ekf_skipped_update_at_exact_zenith_keeps_the_prediction():
    """BallisticAerEKF overhead: the posterior is the prediction, the same bits as a NaN measurement gives."""
    from fusion.models import process_noise

    site, x = _zenith()
    P = _prior()
    kf = kalman.BallisticAerEKF(0.0, process_noise(1.0, 1.0), np.diag([10.0**2, 1e-6, 1e-6]), site.ecef,
                                site.R_enu)
    z = radar_hx(x, site.ecef, site.R_enu)[None]
    xa, Pa = x[None].copy(), P[None].copy()
    res = kf.step(xa, Pa, z)
    xb, Pb = x[None].copy(), P[None].copy()
    ref = kf.step(xb, Pb, np.full((1, 3), np.nan))
    assert not res.ok[0] and not ref.ok[0]
    assert np.all(np.isfinite(xa)) and np.all(np.isfinite(Pa))
    assert np.array_equal(xa, xb) and np.array_equal(Pa, Pb)


def test_ukf_skipped_update_returns_prior_bit_for_bit_whatever_hx_gives():
    """A measurement model returning NaN on some sigma points (and a NaN z): ok False, x and P the prior."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6)) * 1e3
    P = np.stack([_prior(seed=s) for s in range(3)])

    def hx_nan(s):
        out = s[..., :3].copy()
        out[..., 2, 0] = np.nan  # one sigma point outside the model's domain
        return out

    res = ukf.ukf_update(x, P, x[:, :3], np.eye(3), hx_nan, residual=None, z_mean=None)
    assert not res.ok.any()
    assert np.array_equal(res.x, x) and np.array_equal(res.P, P)
    z = x[:, :3].copy()
    z[1, 0] = np.nan
    res = ukf.ukf_update(x, P, z, np.eye(3), lambda s: s[..., :3], residual=None, z_mean=None)
    assert res.ok.tolist() == [True, False, True]
    assert np.array_equal(res.x[1], x[1]) and np.array_equal(res.P[1], P[1])


def test_imm_at_exact_zenith_keeps_modes_and_probabilities():
    site, x = _zenith()
    xm = np.stack([x, x])
    Pm = np.stack([_prior(seed=1), _prior(seed=2)])
    cbar = np.array([0.3, 0.7])
    R = np.diag([10.0**2, 1e-6, 1e-6])
    z = radar_hx(x, site.ecef, site.R_enu)
    out = imm.imm_update(xm, Pm, cbar, z, R, radar_hx(xm, site.ecef, site.R_enu), radar_H(xm, site.ecef, site.R_enu),
                         radar_residual)
    assert not out.ok.any()
    assert np.array_equal(out.x, xm) and np.array_equal(out.P, Pm)
    assert np.array_equal(out.mu, cbar)
    xc, Pc = imm.imm_combine(xm, Pm, cbar)
    assert np.array_equal(out.x_comb, xc) and np.array_equal(out.P_comb, Pc)


# ----------------------------------------------------------------- (3) integer and float32 inputs
def test_height_fast_integer_and_float32_inputs_give_the_float64_answer():
    r_int = np.array([[6378137, 0, 0], [0, 6378137, 0], [4510731, 4510731, 0]], dtype=np.int32)
    ref = dynamics.height_fast(r_int.astype(np.float64))
    out = dynamics.height_fast(r_int)
    assert out.dtype == np.float64
    assert np.array_equal(out, ref)
    assert out[0] == 0.0 and out[1] == 0.0  # on the equator surface (NaN when int32 squares overflowed)
    r32 = np.array([[6378137.0, 1234.5, -2.5e5]], dtype=np.float32)
    assert np.array_equal(dynamics.height_fast(r32), dynamics.height_fast(r32.astype(np.float64)))


def test_enu_to_rae_integer_inputs_give_the_float64_range():
    """5,000,000 m east and 99,999 m up: range 5,000,999.9 m (int32 u**2 wraps and gave 5,000,141 m)."""
    enu = np.array([5_000_000, 0, 99_999], dtype=np.int32)
    rae = geometry.enu_to_rae(enu)
    assert rae.dtype == np.float64
    assert rae[0] == pytest.approx(np.hypot(5_000_000.0, 99_999.0), rel=1e-15)
    assert rae[0] == pytest.approx(5_000_999.9, abs=0.05)
    np.testing.assert_array_equal(rae, geometry.enu_to_rae(enu.astype(np.float64)))
    # The same against pymap3d, the transform the module reproduces.
    az, el, rng = pymap3d.enu2aer(5_000_000.0, 0.0, 99_999.0, deg=False)
    np.testing.assert_allclose(rae, [rng, az, el], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
def test_geometry_entry_points_cast_to_float64(dtype):
    """Every public geometry function gives the float64 answer for integer or float32 inputs."""
    site_f = geometry.Site(np.radians(37.0), np.radians(127.0), 30.0)
    x64 = np.array([[-3.05e6, 4.05e6, 3.85e6, 1200.0, -300.0, 2500.0],
                    [-3.20e6, 3.95e6, 3.90e6, -800.0, 150.0, -1900.0]])
    x = x64.astype(dtype)
    xf = x.astype(np.float64)  # the same numbers, exactly representable, in float64
    site = np.round(site_f.ecef).astype(dtype)
    sitef = site.astype(np.float64)
    Renu = site_f.R_enu
    cases = [
        (geometry.ecef_to_enu(x[:, :3], site, Renu), geometry.ecef_to_enu(xf[:, :3], sitef, Renu)),
        (geometry.enu_to_rae(x[:, :3] - site), geometry.enu_to_rae((x[:, :3] - site).astype(np.float64))),
        (geometry.measure(x, site, Renu, True), geometry.measure(xf, sitef, Renu, True)),
        (geometry.measurement_jacobian(x, site, Renu, True), geometry.measurement_jacobian(xf, sitef, Renu, True)),
        (geometry.wrap_angle(np.array([7, -4], dtype=dtype)), geometry.wrap_angle(np.array([7.0, -4.0]))),
        (geometry.measurement_residual(x[:, :3], x[::-1, :3]), geometry.measurement_residual(xf[:, :3], xf[::-1, :3])),
        (earth.ecef_to_geodetic(x[:, :3]), earth.ecef_to_geodetic(xf[:, :3])),
        (earth.altitude(x[:, :3]), earth.altitude(xf[:, :3])),
        (dynamics.height_fast(x[:, :3]), dynamics.height_fast(xf[:, :3])),
        (earth.geodetic_to_ecef(np.array([0, 1], dtype=dtype), np.array([2, 3], dtype=dtype),
                                np.array([100, 5000], dtype=dtype)),
         earth.geodetic_to_ecef(np.array([0.0, 1.0]), np.array([2.0, 3.0]), np.array([100.0, 5000.0]))),
        (earth.enu_rotation(np.array([0, 1], dtype=dtype), np.array([2, 3], dtype=dtype)),
         earth.enu_rotation(np.array([0.0, 1.0]), np.array([2.0, 3.0]))),
        (earth.geodesic_inverse(np.array([37], dtype=dtype), np.array([127], dtype=dtype),
                                np.array([40], dtype=dtype), np.array([140], dtype=dtype)),
         earth.geodesic_inverse(np.array([37.0]), np.array([127.0]), np.array([40.0]), np.array([140.0]))),
        (earth.geodesic_direct(np.array([37], dtype=dtype), np.array([127], dtype=dtype),
                               np.array([80], dtype=dtype), np.array([1_000_000], dtype=dtype)),
         earth.geodesic_direct(np.array([37.0]), np.array([127.0]), np.array([80.0]), np.array([1e6]))),
    ]
    for i, (got, ref) in enumerate(cases):
        for g, r in zip(got if isinstance(got, tuple) else (got,), ref if isinstance(ref, tuple) else (ref,)):
            g = np.asarray(g)
            assert g.dtype == np.float64, (i, g.dtype)
            np.testing.assert_array_equal(g, r, err_msg=f"case {i}")
