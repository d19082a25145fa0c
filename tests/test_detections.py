"""generate_detections: statistics of noise and false alarms, coverage, determinism, record layout.

Right values: chi-square distribution of normalized errors (scipy.stats.chi2), the
Poisson mean and dispersion of false-alarm counts, the Swerling Pd closed forms
checked independently in test_radar.py, and the geometry of sensors.geometry.measure.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from sensors.catalog import catalog_radar
from sensors.detections import Detections, generate_detections, scan_indices
from sensors.geometry import measure, measurement_residual


def _static_truth(radar, enu_points, T=200, trials=3, dt=1.0, trial_index=None, phase=1):
    """Truth-like input: objects hovering at fixed ENU offsets (m) from a radar (velocity zero)."""
    enu = np.asarray(enu_points, dtype=float)
    ecef = radar.site_ecef + enu @ radar.R_enu  # R_enu rows are E, N, U in ECEF
    O = len(enu)
    state = np.zeros((trials, O, T, 6))
    state[..., :3] = ecef[None, :, None, :]
    return SimpleNamespace(
        t=np.arange(T) * dt, state=state, phase=np.full((trials, O, T), phase, dtype=np.int8),
        object_kind=("rv",) * O,
        trial_index=np.arange(trials) if trial_index is None else np.asarray(trial_index))


def _aer_enu(rng_m, az_deg, el_deg):
    az, el = np.radians(az_deg), np.radians(el_deg)
    return rng_m * np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])


def _quiet(name="us-tpy2-shariki", **over):
    over.setdefault("false_alarms_per_scan", 0.0)
    over.setdefault("bias", "off")  # the noise alone (the catalog's registration biases: test_registration_truth.py)
    return catalog_radar(name, **over)


def test_normalized_errors_pass_chi_square():
    radar = _quiet(range_rate=True, ref_range_km=800.0)  # SNR near 2-40: noise well above the floors
    pts = [_aer_enu(600e3, 267.0, 10.0), _aer_enu(900e3, 300.0, 30.0), _aer_enu(400e3, 230.0, 60.0)]
    truth = _static_truth(radar, pts, T=300, trials=4)
    d = generate_detections(truth, [radar], seed=7)
    assert len(d) > 600 and np.all(d.object >= 0)
    x = truth.state[0, d.object, 0]
    hx = measure(x, radar.site_ecef, radar.R_enu, with_range_rate=True)
    y = measurement_residual(d.z, hx[:, :3])
    R_inv = np.linalg.inv(d.R)
    nees = np.einsum("ki,kij,kj->k", y, R_inv, y)
    K = len(d)
    # Sum of K chi-square(3) variables is chi-square(3K): two-sided 0.1 % test.
    p = stats.chi2.cdf(nees.sum(), 3 * K)
    assert 0.0005 < p < 0.9995
    # Each component alone is standard normal (KS test), including range rate.
    for i in range(3):
        assert stats.kstest(y[:, i] / np.sqrt(d.R[:, i, i]), "norm").pvalue > 0.001
    assert stats.kstest((d.range_rate - hx[:, 3]) / np.sqrt(d.range_rate_var), "norm").pvalue > 0.001
    # Noise grows at low SNR (sigma ~ 1/sqrt(SNR)).
    far, near = d.object == 1, d.object == 2
    assert np.median(d.R[far, 2, 2]) > np.median(d.R[near, 2, 2])


def test_registration_bias_is_constant_per_trial_and_outside_R():
    radar = _quiet(bias_range_sigma_m=200.0, bias_angle_sigma_mrad=2.0, range_sigma_floor_m=1.0, bias="on")
    truth = _static_truth(radar, [_aer_enu(500e3, 267.0, 20.0)], T=400, trials=40)
    d = generate_detections(truth, [radar], seed=3)
    hx = measure(truth.state[0, 0, 0], radar.site_ecef, radar.R_enu)
    y = measurement_residual(d.z, hx)
    mean = np.array([y[d.trial == k].mean(axis=0) for k in range(40)])
    # Per-trial means are the biases: spread across trials ~ the bias sigmas, far above the noise.
    assert np.std(mean[:, 0]) == pytest.approx(200.0, rel=0.35)
    assert np.std(mean[:, 1]) == pytest.approx(2e-3, rel=0.35)
    assert np.std(mean[:, 2]) == pytest.approx(2e-3, rel=0.35)
    assert np.sqrt(d.R[:, 0, 0].max()) < 20.0  # R holds the noise only


def test_nothing_behind_a_face_or_out_of_range_or_below_limits_is_detected():
    radar = _quiet(ref_range_km=1e5)  # huge SNR: everything covered is detected
    pts = [
        _aer_enu(500e3, 267.0, 20.0),       # 0: boresight, seen
        _aer_enu(500e3, 87.0, 20.0),        # 1: behind the face
        _aer_enu(500e3, 267.0 + 61.0, 20.0),  # 2: just outside the 60 deg half-width
        _aer_enu(500e3, 267.0 - 59.0, 20.0),  # 3: just inside
        _aer_enu(3100e3, 267.0, 45.0),      # 4: beyond instrumented range
        _aer_enu(300e3, 267.0, 85.0),       # 5: above max elevation 80
        _aer_enu(300e3, 267.0, 0.0),        # 6: line of sight clears, apparent elevation 0.34 < 0.5 deg
        _aer_enu(300e3, 267.0, 0.3),        # 7: apparent elevation 0.64 deg: seen
    ]
    truth = _static_truth(radar, pts, T=50, trials=2)
    d = generate_detections(truth, [radar], seed=1)
    seen = np.bincount(d.object, minlength=len(pts))
    assert seen.tolist() == [100, 0, 0, 100, 0, 0, 0, 100]


def test_not_in_flight_is_never_detected():
    radar = _quiet(ref_range_km=1e5)
    truth = _static_truth(radar, [_aer_enu(500e3, 267.0, 20.0)], T=50, trials=2)
    truth.phase[:, :, 20:] = -1
    truth.state[:, :, 30:] = np.nan
    d = generate_detections(truth, [radar], seed=1)
    assert len(d) == 40 and d.time.max() == 19.0


def test_false_alarm_counts_match_poisson_mean():
    lam = 1.7
    radar = catalog_radar("kr-aegis-eastsea", false_alarms_per_scan=lam, scan_interval_s=2.0)
    truth = _static_truth(radar, [_aer_enu(100e3, 0.0, 10.0)], T=1000, trials=5, phase=-1)
    d = generate_detections(truth, [radar], seed=11)
    assert np.all(d.object == -1)
    scans = scan_indices(truth.t, 2.0)
    assert len(scans) == 500 and np.all(np.isin(d.time, truth.t[scans]))
    n_scans = len(scans) * 5
    mean = lam * n_scans
    assert abs(len(d) - mean) < 3 * np.sqrt(mean)
    counts = np.zeros((5, len(scans)))
    np.add.at(counts, (d.trial, (d.time / 2.0).astype(int)), 1)
    # Poisson dispersion test: sum (n - nbar)^2 / nbar ~ chi-square(n - 1).
    disp = ((counts - counts.mean()) ** 2).sum() / counts.mean()
    assert 0.001 < stats.chi2.cdf(disp, n_scans - 1) < 0.999
    # Spread over the radar's cells: inside the faces, range and elevation limits; SNR above threshold.
    assert d.z[:, 0].min() >= radar.range_min and d.z[:, 0].max() <= radar.range_max
    assert np.all(radar.in_field_of_view(d.z[:, 1], d.z[:, 2]))
    assert stats.kstest((d.z[:, 0] - radar.range_min) / (radar.range_max - radar.range_min), "uniform").pvalue > 1e-3
    assert stats.kstest(d.z[:, 1] / (2 * np.pi), "uniform").pvalue > 1e-3
    assert np.all(d.snr >= radar.detection_threshold - 1.0)


@pytest.mark.parametrize("swerling", [0, 1, 3])
def test_detection_rate_matches_swerling_pd(swerling):
    radar = _quiet(ref_range_km=1000.0, ref_snr_db=13.0, swerling=swerling)
    r = 1000e3 * (10**1.3 * 0.1 / 6.0) ** 0.25  # range where a 0.1 m^2 RV has SNR 6
    truth = _static_truth(radar, [_aer_enu(r, 267.0, 20.0)], T=2000, trials=3)
    d = generate_detections(truth, [radar], seed=5)
    pd = float(radar.detection_probability(6.0))
    n = 6000
    assert d.snr == pytest.approx(np.full(len(d), 6.0))
    assert abs(len(d) / n - pd) < 4 * np.sqrt(pd * (1 - pd) / n)


def test_trial_k_is_identical_in_any_batch_and_seed_matters():
    radars = [catalog_radar("us-tpy2-shariki", false_alarms_per_scan=0.5, bias_range_sigma_m=50.0),
              catalog_radar("jp-fps5-sado", false_alarms_per_scan=0.3)]
    pts = [_aer_enu(800e3, 267.0, 15.0)]
    big = _static_truth(radars[0], pts, T=120, trials=4, trial_index=[10, 11, 12, 13])
    small = _static_truth(radars[0], pts, T=120, trials=1, trial_index=[12])
    a = generate_detections(big, radars, seed=42)
    b = generate_detections(small, radars, seed=42)
    m = a.trial == 12
    assert m.sum() == len(b) > 0
    for f in ("time", "sensor", "object", "z", "R", "snr"):
        np.testing.assert_array_equal(getattr(a, f)[m], getattr(b, f))
    c = generate_detections(small, radars, seed=43)
    assert len(c) != len(b) or not np.array_equal(c.z, b.z)


def test_record_layout_sorted_and_typed():
    radars = [catalog_radar("kr-aegis-eastsea", false_alarms_per_scan=1.0),
              catalog_radar("us-thaad-seongju", false_alarms_per_scan=1.0, scan_interval_s=3.0)]
    pts = [_aer_enu(300e3, 350.0, 10.0), _aer_enu(200e3, 10.0, 30.0)]
    truth = _static_truth(radars[0], pts, T=60, trials=3)
    d = generate_detections(truth, radars, seed=2)
    assert isinstance(d, Detections)
    assert d.trial.dtype == np.int64 and d.sensor.dtype == np.int16 and d.object.dtype == np.int32
    assert d.z.shape == (len(d), 3) and d.R.shape == (len(d), 3, 3) and d.range_rate is None
    keys = np.stack([d.time, d.sensor, d.trial, d.object], axis=1)
    order = np.lexsort(keys.T[::-1])
    np.testing.assert_array_equal(order, np.arange(len(d)))
    assert np.all((d.z[:, 1] >= 0) & (d.z[:, 1] < 2 * np.pi))
    assert np.all(d.time[d.sensor == 1] % 3.0 == 0.0)  # scan interval 3 s on a 1 s grid
    assert set(np.unique(d.object)) == {-1, 0, 1}


def test_scan_indices_round_to_grid():
    t = np.arange(0, 10.01, 0.5)
    assert t[scan_indices(t, 2.0)].tolist() == [0, 2, 4, 6, 8, 10]
    assert t[scan_indices(t, 1.2)].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # 1.2 s -> 2 steps
    assert t[scan_indices(t, 0.1)].tolist() == t.tolist()  # at least one step


def test_rcs_argument_and_no_radars():
    radar = _quiet(ref_range_km=1000.0)
    truth = _static_truth(radar, [_aer_enu(1500e3, 267.0, 20.0)], T=100, trials=2)
    tiny = generate_detections(truth, [radar], seed=1, rcs_m2=np.full((2, 1, 100), 1e-6))
    big = generate_detections(truth, [radar], seed=1, rcs_m2=np.full((2, 1, 100), 100.0))
    assert len(tiny) == 0 and len(big) > 150
    assert len(generate_detections(truth, [], seed=1)) == 0
