"""Sensor registration (fusion.registration): the augmented-state EKF against filterpy and against known biases."""

import numpy as np
import pytest
from filterpy.kalman import ExtendedKalmanFilter
from scipy.stats import chi2

from fusion.models import ballistic_propagate, ballistic_transition, process_noise
from fusion.registration import (augmented_dim, augmented_predict, augmented_update, bias_prior_covariance,
                                 bias_slice)
from sensors.geometry import measure, measurement_jacobian
from sim.earth import enu_rotation, geodetic_to_ecef
from sim.errors import InputError

# Two AN/TPY-2 sites in Japan (public locations, as in sensors/catalog.py) watching one midcourse object.
SITES_DEG = ((40.89, 140.33, 30.0), (35.77, 135.21, 60.0))
RANGE_BIAS_SIGMA_M = 15.0      # the trial: 15 m and 0.2 mrad per radar
ANGLE_BIAS_SIGMA_RAD = 0.2e-3
RANGE_NOISE_M = 5.0
ANGLE_NOISE_RAD = 0.1e-3
SCAN_S = 2.0
SCANS = 150


def _sites():
    site = np.stack([geodetic_to_ecef(np.radians(la), np.radians(lo), h) for la, lo, h in SITES_DEG])
    R_enu = np.stack([enu_rotation(np.radians(la), np.radians(lo)) for la, lo, _ in SITES_DEG])
    return site, R_enu


def _initial_truth():
    """A midcourse state 500 km above 39 N 134 E, 4 km/s north-east and climbing slowly."""
    r = geodetic_to_ecef(np.radians(39.0), np.radians(134.0), 500e3)
    R = enu_rotation(np.radians(39.0), np.radians(134.0))
    v = R.T @ np.array([2800.0, 2800.0, 300.0])
    return np.concatenate([r, v])


def test_prior_covariance_layout():
    P = bias_prior_covariance([10.0, 20.0], [1e-3, 2e-3])
    np.testing.assert_array_equal(np.diag(P), [100.0, 1e-6, 1e-6, 400.0, 4e-6, 4e-6])
    assert np.count_nonzero(P - np.diag(np.diag(P))) == 0
    assert augmented_dim(2) == 12 and bias_slice(1) == slice(9, 12)
    with pytest.raises(InputError):
        bias_prior_covariance([1.0], [-1.0])
    with pytest.raises(InputError):
        augmented_dim(0)


def test_update_equals_filterpy_ekf_on_the_augmented_model():
    """One update: the same numbers as filterpy's EKF given h_X = h(x) + b_s and H_X = [H 0 I 0]."""
    site, R_enu = _sites()
    rng = np.random.default_rng(3)
    x_true = _initial_truth()
    n = augmented_dim(2)
    A = rng.standard_normal((n, n))
    P = A @ A.T * 1e-3 + np.diag([1e6, 1e6, 1e6, 1e2, 1e2, 1e2] + [RANGE_BIAS_SIGMA_M**2, ANGLE_BIAS_SIGMA_RAD**2,
                                                                  ANGLE_BIAS_SIGMA_RAD**2] * 2)
    X = np.concatenate([x_true + rng.normal(0, [500, 500, 500, 5, 5, 5]), [3.0, 1e-4, -2e-4, -8.0, 5e-5, 1e-4]])
    R = np.diag([RANGE_NOISE_M**2, ANGLE_NOISE_RAD**2, ANGLE_NOISE_RAD**2])
    s = 1
    z = measure(x_true, site[s], R_enu[s]) + np.array([-8.0, 5e-5, 1e-4])

    ours = augmented_update(X, P, z, R, s, site[s], R_enu[s])

    def hx(Xa):
        return measure(Xa[:6], site[s], R_enu[s]) + Xa[9:12]

    def HJ(Xa):
        H = np.zeros((3, n))
        H[:, :6] = measurement_jacobian(Xa[:6], site[s], R_enu[s])
        H[:, 9:12] = np.eye(3)
        return H

    ekf = ExtendedKalmanFilter(dim_x=n, dim_z=3)
    ekf.x, ekf.P, ekf.R = X.copy(), P.copy(), R.copy()
    ekf.update(z, HJacobian=HJ, Hx=hx)
    assert ours.ok
    np.testing.assert_allclose(ours.x, ekf.x, rtol=1e-9, atol=1e-9 * np.abs(ekf.x).max())
    np.testing.assert_allclose(ours.P, ekf.P, rtol=1e-9, atol=1e-9 * np.abs(ekf.P).max())


def test_predict_holds_biases_and_carries_cross_covariance():
    x0 = _initial_truth()
    n = augmented_dim(1)
    rng = np.random.default_rng(5)
    A = rng.standard_normal((n, n))
    P = A @ A.T
    X = np.concatenate([x0, [4.0, 1e-4, -1e-4]])
    Xp, Pp = augmented_predict(X, P, 2.0, q=0.01)
    xp, F = ballistic_transition(x0, 2.0)
    np.testing.assert_array_equal(Xp[6:], X[6:])
    np.testing.assert_allclose(Xp[:6], xp, rtol=0, atol=1e-9)
    np.testing.assert_allclose(Pp[6:, 6:], P[6:, 6:], rtol=1e-15)
    np.testing.assert_allclose(Pp[:6, 6:], F @ P[:6, 6:], rtol=1e-12)
    np.testing.assert_allclose(Pp[:6, :6], F @ P[:6, :6] @ F.T + process_noise(2.0, 0.01), rtol=1e-12)
    Xq, Pq = augmented_predict(X, P, 2.0, q=0.01, q_bias=1e-8)
    np.testing.assert_allclose(np.diag(Pq)[6:] - np.diag(P)[6:], 2e-8, rtol=0, atol=1e-13)


def _simulate(seeds: int, seed: int = 21, bias_prior: bool = True):
    """Two biased radars, one ballistic object, ``seeds`` independent trials; returns truth and estimates.

    ``bias_prior=False`` tells the filter there is no bias (its bias block of P starts at zero).
    """
    site, R_enu = _sites()
    rng = np.random.default_rng(seed)
    n = augmented_dim(2)
    Pb = bias_prior_covariance([RANGE_BIAS_SIGMA_M] * 2, [ANGLE_BIAS_SIGMA_RAD] * 2)
    b_true = rng.standard_normal((seeds, 6)) * np.sqrt(np.diag(Pb))
    P0x = np.diag([2e3**2] * 3 + [50.0**2] * 3)
    x_true = np.broadcast_to(_initial_truth(), (seeds, 6)).copy()
    X = np.zeros((seeds, n))
    X[:, :6] = x_true + rng.standard_normal((seeds, 6)) * np.sqrt(np.diag(P0x))
    P = np.zeros((seeds, n, n))
    P[:, :6, :6] = P0x
    P[:, 6:, 6:] = Pb if bias_prior else 0.0
    R = np.diag([RANGE_NOISE_M**2, ANGLE_NOISE_RAD**2, ANGLE_NOISE_RAD**2])
    for k in range(SCANS):
        if k:
            x_true = ballistic_propagate(x_true, SCAN_S)
            X, P = augmented_predict(X, P, SCAN_S, q=0.0)
        for s in range(2):
            w = rng.standard_normal((seeds, 3)) * np.sqrt(np.diag(R))
            z = measure(x_true, site[s], R_enu[s]) + b_true[:, 3 * s:3 * s + 3] + w
            res = augmented_update(X, P, z, R, s, site[s], R_enu[s])
            assert res.ok.all()
            X, P = res.x, res.P
    return b_true, X, P, x_true, Pb


def test_two_radars_recover_known_biases_within_their_covariance():
    """200 seeds: every bias component within 3 sigma of the filter's own covariance in >= 95 % of seeds,
    the bias NEES inside its chi-square 95 % band, and the data shrink the prior (the check can fail)."""
    seeds = 200
    b_true, X, P, x_true, Pb = _simulate(seeds)
    err = X[:, 6:] - b_true
    sig = np.sqrt(np.diagonal(P[:, 6:, 6:], axis1=-2, axis2=-1))
    within = np.all(np.abs(err) <= 3.0 * sig, axis=1)
    assert within.mean() >= 0.95, within.mean()
    # Consistency over the ensemble (Bar-Shalom et al. 2001, sec. 5.4.2): ANEES of the 6 bias components.
    nees = np.einsum("ki,kij,kj->k", err, np.linalg.inv(P[:, 6:, 6:]), err)
    lo, hi = chi2.ppf([0.025, 0.975], 6 * seeds) / seeds
    assert lo <= nees.mean() <= hi, (nees.mean(), lo, hi)
    # The estimate is the data's, not the prior's: the posterior sigma is well below the prior's
    # on every component (two radars seeing one object make range and angle biases observable).
    prior_sig = np.sqrt(np.diag(Pb))
    assert np.all(np.median(sig, axis=0) < 0.7 * prior_sig), np.median(sig, axis=0) / prior_sig
    # And the bias error is smaller than the prior spread (RMS over seeds).
    assert np.all(np.sqrt(np.mean(err**2, axis=0)) < 0.7 * prior_sig)
    # The target state stays consistent too (6-dof NEES over seeds).
    ex = X[:, :6] - x_true
    nees_x = np.einsum("ki,kij,kj->k", ex, np.linalg.inv(P[:, :6, :6]), ex)
    lo6, hi6 = chi2.ppf([0.025, 0.975], 6 * seeds) / seeds
    assert lo6 <= nees_x.mean() <= hi6, nees_x.mean()


def test_ignoring_biases_is_inconsistent():
    """The reason for registration: the same data filtered with the biases pinned at zero (prior 0) is
    overconfident far beyond its chi-square band."""
    seeds = 100
    _, X, P, x_true, _ = _simulate(seeds, seed=7, bias_prior=False)
    ex = X[:, :6] - x_true
    nees_x = np.einsum("ki,kij,kj->k", ex, np.linalg.inv(P[:, :6, :6]), ex)
    hi6 = chi2.ppf(0.975, 6 * seeds) / seeds
    assert nees_x.mean() > 10 * hi6, nees_x.mean()
