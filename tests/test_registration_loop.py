"""Registration inside the compiled tracker (fusion.registration_kernels through fusion.loop).

A deterministic scene: two radars (the AN/TPY-2 sites of tests/test_registration.py), one
exo-atmospheric ballistic object seen every 2 s by both, known per-trial biases drawn from the
prior the tracker is given, 200 trials (seeds) in one run. The tracker's own end-of-trial bias
estimate must be within 3 sigma of its own covariance in >= 95 % of the trials, and its track
NEES inside the chi-square band with registration and far above it without.
"""

import dataclasses

import numpy as np
import pytest
from scipy.stats import chi2

from fusion import registration_kernels as rk
from fusion.loop import registration_blocks
from fusion.models import ballistic_propagate
from fusion.tracker import run_tracker
from sensors.detections import Detections
from sensors.geometry import measure
from sim.config import TrackerConfig
from sim.earth import enu_rotation, geodetic_to_ecef
from sim.errors import InputError

SITES_DEG = ((40.89, 140.33, 30.0), (35.77, 135.21, 60.0))
RANGE_BIAS_SIGMA_M = 15.0      # the trial: 15 m and 0.2 mrad per radar
ANGLE_BIAS_SIGMA_RAD = 0.2e-3
SITE_SIGMA_M = 30.0            # navigation error of the second radar (as if it were a ship)
RANGE_NOISE_M = 5.0
ANGLE_NOISE_RAD = 0.1e-3
SCAN_S = 2.0
SCANS = 120
TRIALS = 200


def _sites():
    site = np.stack([geodetic_to_ecef(np.radians(la), np.radians(lo), h) for la, lo, h in SITES_DEG])
    R_enu = np.stack([enu_rotation(np.radians(la), np.radians(lo)) for la, lo, _ in SITES_DEG])
    return site, R_enu


def _truth():
    r = geodetic_to_ecef(np.radians(39.0), np.radians(134.0), 500e3)
    R = enu_rotation(np.radians(39.0), np.radians(134.0))
    x = np.concatenate([r, R.T @ np.array([2800.0, 2800.0, 300.0])])
    out = [x]
    for _ in range(SCANS - 1):
        out.append(ballistic_propagate(out[-1], SCAN_S))
    return np.array(out)  # (SCANS, 6)


def _sigma():
    sig = np.zeros((2, 6))
    sig[:, 0] = RANGE_BIAS_SIGMA_M
    sig[:, 1:3] = ANGLE_BIAS_SIGMA_RAD
    sig[1, 3:5] = SITE_SIGMA_M
    return sig


def _scene(seed=20):
    """Detections of both radars for TRIALS trials; returns (dets, t, truth (T, 6), true biases (B, 2, 6))."""
    site, R_enu = _sites()
    xs = _truth()
    t = np.arange(SCANS) * SCAN_S
    rng = np.random.default_rng(seed)
    sig = _sigma()
    b = rng.standard_normal((TRIALS, 2, 6)) * sig
    b[:, :, 5] = 0.0
    rows = []
    R = np.diag([RANGE_NOISE_M**2, ANGLE_NOISE_RAD**2, ANGLE_NOISE_RAD**2])
    for i in range(SCANS):
        for s in range(2):
            true_site = site[s] + b[:, s, 3:6] @ R_enu[s]  # (B, 3): the radar measures from where it is
            z = np.stack([measure(xs[i], true_site[k], R_enu[s]) for k in range(TRIALS)])
            z += b[:, s, :3] + rng.standard_normal((TRIALS, 3)) * np.sqrt(np.diag(R))
            z[:, 1] = np.mod(z[:, 1], 2 * np.pi)
            rows.append((np.arange(TRIALS), np.full(TRIALS, t[i]), np.full(TRIALS, s), z))
    trial = np.concatenate([r[0] for r in rows])
    dets = Detections(trial=trial.astype(np.int64), time=np.concatenate([r[1] for r in rows]),
                      sensor=np.concatenate([r[2] for r in rows]).astype(np.int16),
                      object=np.zeros(trial.size, dtype=np.int32), z=np.concatenate([r[3] for r in rows]),
                      R=np.broadcast_to(R, (trial.size, 3, 3)).copy(), snr=np.full(trial.size, 100.0))
    return dets, t, xs, b


def _run(registration, dets, t):
    site, R_enu = _sites()
    cfg = dataclasses.replace(TrackerConfig(), filter="ekf", process_noise=1e-3, max_tracks=4,
                              registration=registration)
    return run_tracker(dets, dets.time, site, R_enu, t, np.arange(TRIALS), cfg, revisit=np.full(2, SCAN_S),
                       latency=np.zeros(2), threads=1, bias_sigma=_sigma())


def _track_nees(hist, xs, i):
    """NEES of each trial's confirmed track on the object at grid index ``i`` (NaN where none)."""
    out = np.full(TRIALS, np.nan)
    for k in range(TRIALS):
        j = np.nonzero(hist.confirmed[k, :, i] & (hist.object[k, :, i] == 0))[0]
        if j.size:
            e = hist.x[k, j[0], i] - xs[i]
            out[k] = e @ np.linalg.solve(hist.P[k, j[0], i], e)
    return out


@pytest.fixture(scope="module")
def runs():
    dets, t, xs, b = _scene()
    return _run("estimate", dets, t), _run("none", dets, t), xs, b


def test_loop_recovers_known_biases_within_its_covariance(runs):
    est, _, _, b = runs
    assert est.bias is not None and est.bias.shape == (TRIALS, 2, 6)
    comp = [0, 1, 2, 6 + 0, 6 + 1, 6 + 2, 6 + 3, 6 + 4]  # the estimated components (radar 0 has no site error)
    err = (est.bias - b).reshape(TRIALS, 12)[:, comp]
    sig = est.bias_sigma.reshape(TRIALS, 12)[:, comp]
    within = np.all(np.abs(err) <= 3.0 * sig, axis=1)
    assert within.mean() >= 0.95, within.mean()
    # the data, not the prior: the angle biases are resolved well below their prior sigma
    prior = _sigma().ravel()[comp]
    assert np.all(np.median(sig[:, [1, 2, 4, 5]], axis=0) < 0.7 * prior[[1, 2, 4, 5]]), np.median(sig, 0) / prior
    # radar 0 has no site error to estimate: its site entries stay exactly 0 with sigma 0
    assert np.all(est.bias[:, 0, 3:] == 0.0) and np.all(est.bias_sigma[:, 0, 3:] == 0.0)


def test_track_nees_inside_band_with_registration_and_above_without(runs):
    est, none, xs, _ = runs
    i = SCANS - 1
    n_est = _track_nees(est, xs, i)
    n_none = _track_nees(none, xs, i)
    assert np.isfinite(n_est).mean() > 0.95 and np.isfinite(n_none).mean() > 0.95
    m = np.isfinite(n_est)
    lo, hi = chi2.ppf([0.005, 0.995], 6 * m.sum()) / m.sum()
    assert lo <= n_est[m].mean() <= hi, (n_est[m].mean(), lo, hi)
    m2 = np.isfinite(n_none)
    hi2 = chi2.ppf(0.995, 6 * m2.sum()) / m2.sum()
    assert n_none[m2].mean() > 5 * hi2, n_none[m2].mean()
    assert none.bias is None


def test_registration_blocks_and_bad_prior():
    sig = np.zeros((3, 6))
    sig[2, 1] = 1e-4
    blk, var = registration_blocks(sig, 3, "estimate")
    np.testing.assert_array_equal(blk, [-1, -1, 0])
    np.testing.assert_array_equal(var, [0.0, 1e-8, 0.0, 0.0, 0.0, 0.0])
    blk, var = registration_blocks(sig, 3, "none")
    assert var.size == 0 and np.all(blk == -1)
    with pytest.raises(InputError):
        registration_blocks(-sig, 3, "estimate")
    with pytest.raises(InputError):
        registration_blocks(sig[:2], 3, "estimate")


def test_bias_columns_match_numerical_derivative():
    """C's site columns are the derivative of h with respect to moving the radar by ENU offsets."""
    site, R_enu = _sites()
    x = _truth()[10]
    C = np.empty((3, 12))
    H = np.empty((3, 6))
    rk.bias_columns(x, site[1], R_enu[1], 1, C, H)
    np.testing.assert_array_equal(C[:, :6], 0.0)
    np.testing.assert_array_equal(C[:, 6:9], np.eye(3))
    h0 = measure(x, site[1], R_enu[1])
    for m in range(3):
        d = np.zeros(3)
        d[m] = 1.0
        h1 = measure(x, site[1] + R_enu[1].T @ d, R_enu[1])
        np.testing.assert_allclose(h1 - h0, C[:, 9 + m], rtol=1e-4, atol=1e-12)
