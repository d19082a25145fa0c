"""Radar physics: 4/3-Earth horizon, Swerling detection probability, SNR and accuracy formulas.

Right values come from closed forms (Skolnik 2001 eq. 8.5 horizon), numerical
integration of the Marcum Q function over the Swerling RCS densities
(scipy.stats + scipy.integrate.quad), and Monte Carlo simulation of a
square-law detector.
"""

import numpy as np
import pytest
from scipy import integrate, stats

from sensors.catalog import catalog_radar
from sensors.horizon import EFFECTIVE_EARTH_FACTOR, line_of_sight_clear, min_visible_height, radius_of_curvature
from sensors.radar import SPEED_OF_LIGHT, default_rcs, detection_probability, measurement_sigmas
from sim.earth import FLATTENING, SEMI_MAJOR_AXIS


def _enu_at(ground_m, height_m, az_rad, R):
    """ENU offset from a sea-level site of a point at ground distance and height over a sphere of radius R."""
    th = ground_m / R
    horiz = (R + height_m) * np.sin(th)
    up = (R + height_m) * np.cos(th) - R
    return np.array([horiz * np.sin(az_rad), horiz * np.cos(az_rad), up])


def test_horizon_1000_km_needs_about_59_km():
    # Skolnik 2001 eq. 8.5: h = d^2 / (2 k R) = 58.9 km at d = 1000 km, k = 4/3, R = 6371 km.
    R = 6371e3
    h_closed = 1000e3**2 / (2 * EFFECTIVE_EARTH_FACTOR * R)
    assert h_closed == pytest.approx(58.9e3, rel=2e-3)
    assert min_visible_height(1000e3, 0.0, R) == pytest.approx(h_closed, rel=1e-2)
    # Bisection on line_of_sight_clear at the equator looking north (section radius M).
    lat, az = 0.0, 0.0
    Rm = float(radius_of_curvature(lat, az))
    lo, hi = 0.0, 200e3
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if line_of_sight_clear(_enu_at(1000e3, mid, az, Rm), lat, 0.0):
            hi = mid
        else:
            lo = mid
    assert hi == pytest.approx(1000e3**2 / (2 * EFFECTIVE_EARTH_FACTOR * Rm), rel=1e-2)
    assert 58e3 < hi < 60.5e3


def test_horizon_elevated_site_and_near_targets():
    R = 6371e3
    # A 1000 m antenna sees 2*sqrt(2 k R h) farther along the sea surface: ds = 130.3 km.
    ds = np.sqrt(2 * EFFECTIVE_EARTH_FACTOR * R * 1000.0)
    assert min_visible_height(ds * 0.999, 1000.0, R) == pytest.approx(0.0, abs=1.0)
    assert min_visible_height(ds + 1000e3, 1000.0, R) == pytest.approx(
        min_visible_height(1000e3, 0.0, R), rel=1e-4)
    lat = np.radians(38.0)
    Ra = float(radius_of_curvature(lat, np.radians(90.0)))
    below = _enu_at(400e3, 5e3, np.radians(90.0), Ra)  # needs ~9.4 km from sea level at 400 km
    above = _enu_at(400e3, 12e3, np.radians(90.0), Ra)
    near_hi = _enu_at(20e3, 30.0, np.radians(90.0), Ra)  # 20 km out the grazing ray is 23.5 m up
    near_lo = _enu_at(20e3, 18.0, np.radians(90.0), Ra)
    vis = line_of_sight_clear(np.stack([below, above, near_hi, near_lo]), lat, 0.0)
    assert vis.tolist() == [False, True, True, False]
    assert not line_of_sight_clear(np.array([np.nan, 0.0, 0.0]), lat, 0.0)


def test_radius_of_curvature_wgs84():
    e2 = FLATTENING * (2 - FLATTENING)
    assert radius_of_curvature(0.0, 0.0) == pytest.approx(SEMI_MAJOR_AXIS * (1 - e2))  # meridian M at equator
    assert radius_of_curvature(0.0, np.pi / 2) == pytest.approx(SEMI_MAJOR_AXIS)  # prime vertical N
    # At the pole every section has the same radius a / sqrt(1 - e2).
    assert radius_of_curvature(np.pi / 2, 0.3) == pytest.approx(SEMI_MAJOR_AXIS / np.sqrt(1 - e2))


def _pd_by_quadrature(snr, pfa, rcs_pdf):
    """Average the steady-target Pd, Q1(sqrt(2s), sqrt(2T)) = ncx2.sf(2T; 2, 2s), over the SNR density."""
    T = -np.log(pfa)
    f = lambda s: stats.ncx2.sf(2 * T, 2, 2 * s) * rcs_pdf(s)
    return integrate.quad(f, 0, snr, limit=400)[0] + integrate.quad(f, snr, np.inf, limit=400)[0]


@pytest.mark.parametrize("snr", [0.5, 3.0, 10.0, 30.0, 200.0])
@pytest.mark.parametrize("pfa", [1e-4, 1e-6])
def test_swerling_pd_matches_integrated_marcum_q(snr, pfa):
    # Swerling I: exponential SNR; III: chi-square 4 dof (Gamma(2, snr/2)); 0: steady.
    sw1 = _pd_by_quadrature(snr, pfa, lambda s: stats.expon.pdf(s, scale=snr))
    sw3 = _pd_by_quadrature(snr, pfa, lambda s: stats.gamma.pdf(s, 2, scale=snr / 2))
    sw0 = stats.ncx2.sf(2 * -np.log(pfa), 2, 2 * snr)
    assert detection_probability(snr, pfa, 1) == pytest.approx(sw1, rel=1e-6, abs=1e-12)
    assert detection_probability(snr, pfa, 2) == pytest.approx(sw1, rel=1e-6, abs=1e-12)
    assert detection_probability(snr, pfa, 3) == pytest.approx(sw3, rel=1e-6, abs=1e-12)
    assert detection_probability(snr, pfa, 4) == pytest.approx(sw3, rel=1e-6, abs=1e-12)
    assert detection_probability(snr, pfa, 0) == pytest.approx(sw0, rel=1e-9, abs=1e-14)
    # The textbook closed form of Swerling I (Skolnik 2001 eq. 2.52 for n = 1).
    assert detection_probability(snr, pfa, 1) == pytest.approx(pfa ** (1 / (1 + snr)), rel=1e-12)


@pytest.mark.parametrize("swerling", [0, 1, 3])
def test_swerling_pd_matches_square_law_monte_carlo(swerling):
    rng = np.random.default_rng(20240601)
    n, snr, pfa = 200_000, 8.0, 1e-3
    T = -np.log(pfa)
    if swerling == 0:
        s = np.full(n, snr)
    elif swerling == 1:
        s = rng.exponential(snr, n)
    else:
        s = rng.gamma(2.0, snr / 2.0, n)
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)  # unit noise power
    y = np.abs(noise + np.sqrt(s)) ** 2
    p_hat = np.mean(y > T)
    p = float(detection_probability(snr, pfa, swerling))
    assert abs(p_hat - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert np.mean(np.abs(noise) ** 2 > T) == pytest.approx(pfa, rel=0.25)


def test_detection_probability_rejects_unknown_case():
    with pytest.raises(ValueError, match="Swerling"):
        detection_probability(1.0, 1e-6, 5)


def test_snr_radar_equation_scaling():
    r = catalog_radar("us-tpy2-shariki", ref_range_km=1000.0, ref_snr_db=13.0)
    assert r.snr(1000e3, 1.0) == pytest.approx(10**1.3)
    assert r.snr(2000e3, 1.0) == pytest.approx(10**1.3 / 16)  # R^-4
    assert r.snr(1000e3, 0.01) == pytest.approx(10**1.3 / 100)  # proportional to RCS


def test_measurement_sigmas_textbook_values():
    # B = 1 MHz, SNR = 50: c / (2 B sqrt(100)) = 14.99 m; 1 deg beam, k = 1.6: 1.0908 mrad; floors zero.
    s_r, s_az, s_el, s_rr = measurement_sigmas(50.0, 0.0, 1e6, np.radians(1.0), 1.6, 0.1, 0.01, 0.0, 0.0, 0.0)
    assert s_r == pytest.approx(SPEED_OF_LIGHT / 2e7)
    assert s_el == pytest.approx(np.radians(1.0) / 16.0)
    assert s_az == pytest.approx(s_el)
    assert s_rr == pytest.approx(0.1 / (2 * 0.01 * 10.0))
    # Floors add in quadrature; azimuth error grows as 1/cos(el).
    s_r2, s_az2, s_el2, _ = measurement_sigmas(1e12, np.radians(60.0), 1e6, 0.01, 1.6, 0.1, 0.01, 5.0, 2e-4, 0.0)
    assert s_r2 == pytest.approx(5.0, rel=1e-4)
    assert s_el2 == pytest.approx(2e-4, rel=1e-4)
    assert s_az2 == pytest.approx(4e-4, rel=1e-4)


def test_default_rcs_by_kind_and_phase():
    phase = np.array([[[0, 1, 2, -1], [-1, 1, 2, 2]]], dtype=np.int8)
    rcs = default_rcs(("rv", "stage"), phase)
    assert rcs.tolist() == [[[1.0, 0.1, 0.1, 0.0], [0.0, 2.0, 2.0, 2.0]]]
    rcs2 = default_rcs(("rv", "stage"), phase, {("rv", 1): 0.5})
    assert rcs2[0, 0, 1] == 0.5 and rcs2[0, 1, 1] == 2.0


def test_apparent_elevation_exceeds_geometric_by_refraction_bending():
    # Small-angle geometry: geometric el ~ h/d - d/(2R), apparent ~ h/d - d/(2kR), so the
    # difference is (1 - 1/k) d / (2R) (Skolnik 2001, sec. 8.2).
    from sensors.geometry import enu_to_rae
    from sensors.horizon import refracted_view

    lat, az = np.radians(37.0), np.radians(45.0)
    Ra = float(radius_of_curvature(lat, az))
    d = np.array([100e3, 300e3, 600e3])
    h = 0.02 * d + d**2 / (2 * Ra)  # geometric elevation about 0.02 rad, where small angles hold
    enu = np.stack([_enu_at(x, hx, az, Ra) for x, hx in zip(d, h)])
    clear, el_app = refracted_view(enu, lat, 0.0)
    el_geo = enu_to_rae(enu)[:, 2]
    assert clear.all()
    np.testing.assert_allclose(el_app - el_geo, (1 - 1 / EFFECTIVE_EARTH_FACTOR) * d / (2 * Ra), rtol=0.03)
