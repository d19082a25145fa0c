"""The radars' registration biases in the truth (sensors.detections) and the bias error metric (fusion.metrics)."""

import numpy as np
from scipy import stats

from fusion.metrics import bias_errors
from sensors.catalog import CATALOG, catalog_radar
from sensors.detections import bias_sigmas, generate_detections, registration_biases
from sensors.geometry import measure, measurement_residual
from test_detections import _aer_enu, _static_truth


def test_detections_carry_the_drawn_biases_and_site_offset():
    """z = h(x; true site) + b + w with the biases registration_biases reports: the residuals of that
    model are pure noise (chi-square), those of the nominal site and no bias are not."""
    radar = catalog_radar("us-aegis-soj", false_alarms_per_scan=0.0, bias_range_sigma_m=200.0,
                          bias_angle_sigma_mrad=2.0, bias_site_sigma_m=500.0, ref_range_km=3000.0, bias="on")
    pts = [_aer_enu(300e3, 45.0, 10.0), _aer_enu(500e3, 200.0, 30.0)]
    truth = _static_truth(radar, pts, T=60, trials=5, trial_index=[3, 9, 11, 12, 40])
    d = generate_detections(truth, [radar], seed=5)
    b = registration_biases([radar], 5, truth.trial_index)
    assert b.shape == (5, 1, 6) and np.all(b[:, 0, 5] == 0.0) and np.all(b[:, 0, :5] != 0.0)
    row = np.searchsorted(truth.trial_index, d.trial)
    x = truth.state[row, d.object, 0]
    site = radar.site_ecef + b[row, 0, 3:6] @ radar.R_enu  # where the radar is
    hx = np.stack([measure(x[k], site[k], radar.R_enu) for k in range(len(d))]) + b[row, 0, :3]
    y = measurement_residual(d.z, hx)
    nees = np.einsum("ki,kij,kj->", y, np.linalg.inv(d.R), y)
    assert 0.0005 < stats.chi2.cdf(nees, 3 * len(d)) < 0.9995
    y0 = measurement_residual(d.z, measure(x, radar.site_ecef, radar.R_enu))
    nees0 = np.einsum("ki,kij,kj->", y0, np.linalg.inv(d.R), y0)
    assert nees0 > 10 * 3 * len(d)


def test_bias_off_and_catalog_figures():
    on = catalog_radar("us-aegis-soj", bias="on")
    off = catalog_radar("us-aegis-soj")  # the default: ideal
    assert on.platform == "ship" and on.bias_site_sigma > 0 and on.bias_angle_sigma > 0 and on.bias_range_sigma > 0
    assert off.bias_site_sigma == off.bias_angle_sigma == off.bias_range_sigma == 0.0
    np.testing.assert_array_equal(bias_sigmas([off]), 0.0)
    assert np.all(registration_biases([off], 1, [0, 1]) == 0.0)
    for name, entry in CATALOG.items():  # every figure has its source beside it; only ships have a site error
        assert "Registration biases" in entry["source"], name
        assert (entry.get("bias_site_sigma_m", 0.0) > 0) == (entry["platform"] == "ship"), name


def test_bias_errors_per_radar():
    true = np.zeros((2, 3, 6))
    true[:, 0, :3] = [10.0, 2e-4, -1e-4]
    true[:, 1, :5] = [5.0, 1e-4, 1e-4, 3.0, 4.0]
    est = np.full((2, 3, 6), np.nan)
    est[:, 0] = [7.0, 1e-4, -1e-4, 0, 0, 0]
    est[:, 1] = [5.0, 1e-4, 2e-4, 0.0, 0.0, 0.0]
    e = bias_errors(est, true, np.array([True, True, False]))
    np.testing.assert_allclose(e["range_m"][0], [3.0, 0.0, np.nan])
    np.testing.assert_allclose(e["azimuth_mrad"][0], [0.1, 0.0, np.nan], atol=1e-12)
    np.testing.assert_allclose(e["elevation_mrad"][0], [0.0, 0.1, np.nan], atol=1e-12)
    np.testing.assert_allclose(e["site_m"][0], [np.nan, 5.0, np.nan])
    none = bias_errors(None, true, np.array([True, False, False]))  # no registration: the error is the bias
    np.testing.assert_allclose(none["range_m"][1], [10.0, np.nan, np.nan])
