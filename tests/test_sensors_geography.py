"""Geography of the catalog: a KN-23-class depressed flight from near Wonsan.

Public figures (ROK JCS, 25 July 2019; /work/shared/data/published_flights.csv):
launch 39.40 N 127.54 E, apogee about 50 km, range about 600 km, into the East Sea.
Japan's MoD said it could not follow such low flights well, while Korea tracked them.
The trajectory is a drag-free ballistic arc (J2 gravity, Coriolis and centrifugal
terms, sim.gravity.ballistic_acceleration) integrated with scipy.integrate.solve_ivp,
with burnout speed and flight-path angle solved (scipy.optimize.fsolve) for 50 km
apogee and 600 km range on a bearing of 120 deg (east-south-east).
"""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import fsolve

from sensors.catalog import catalog_radar
from sensors.detections import generate_detections
from sensors.geometry import enu_to_rae
from sensors.horizon import refracted_view
from sim.earth import altitude, ecef_to_geodetic, enu_rotation, geodesic_inverse, geodetic_to_ecef
from sim.gravity import ballistic_acceleration

LAUNCH = (39.40, 127.54)  # deg, Hodo peninsula near Wonsan (ROK JCS 2019)
BEARING_DEG = 120.0


def _fly(v, gamma, bearing):
    lat, lon = np.radians(LAUNCH)
    r0 = geodetic_to_ecef(lat, lon, 0.0)
    u = np.array([np.cos(gamma) * np.sin(bearing), np.cos(gamma) * np.cos(bearing), np.sin(gamma)])
    y0 = np.r_[r0, enu_rotation(lat, lon).T @ (v * u)]

    def ground(t, y):
        return altitude(y[:3]) + 1.0

    ground.terminal, ground.direction = True, -1
    return solve_ivp(lambda t, y: np.r_[y[3:], ballistic_acceleration(y[:3], y[3:])], (0.0, 1500.0), y0,
                     events=ground, rtol=1e-10, atol=1e-6, dense_output=True)


def _apogee_and_range(p, bearing):
    sol = _fly(p[0], p[1], bearing)
    lat, lon, _ = ecef_to_geodetic(sol.y[:3, -1])
    _, rng = geodesic_inverse(LAUNCH[0], LAUNCH[1], np.degrees(lat), np.degrees(lon))
    return [altitude(sol.y[:3].T).max() / 50e3 - 1.0, float(rng) / 600e3 - 1.0]


@pytest.fixture(scope="module")
def kn23_truth():
    bearing = np.radians(BEARING_DEG)
    p = fsolve(_apogee_and_range, [3100.0, np.radians(18.0)], args=(bearing,), xtol=1e-10)
    assert np.allclose(_apogee_and_range(p, bearing), 0.0, atol=1e-6)
    sol = _fly(p[0], p[1], bearing)
    t = np.arange(0.0, np.floor(sol.t[-1]) + 1.0)
    x = sol.sol(t).T  # (T, 6)
    trials = 2
    phase = np.full((trials, 1, len(t)), 1, dtype=np.int8)
    phase[:, :, :10] = 0  # notional short boost, larger RCS
    phase[:, :, t > 0.7 * t[-1]] = 2
    return SimpleNamespace(t=t, state=np.repeat(x[None, None], trials, axis=0), phase=phase,
                           object_kind=("rv",), trial_index=np.arange(trials))


def _coverage(radar, truth):
    x = truth.state[0, 0, :, :3]
    enu = (x - radar.site_ecef) @ radar.R_enu.T
    rae = enu_to_rae(enu)
    return enu, rae, radar.visible(enu, rae)


def test_trajectory_matches_published_figures(kn23_truth):
    h = altitude(kn23_truth.state[0, 0, :, :3])
    assert h.max() == pytest.approx(50e3, rel=1e-3)
    assert 200 < kn23_truth.t[-1] < 260  # s, a short low flight


def test_shariki_never_sees_the_depressed_flight(kn23_truth):
    radar = catalog_radar("us-tpy2-shariki")
    enu, rae, vis = _coverage(radar, kn23_truth)
    assert not vis.any()
    # It is not the face or the instrumented range that hides it: the flight is within both,
    # but it never rises above the radar horizon plus the minimum elevation of the beam.
    az_off = np.abs(np.mod(rae[:, 1] - radar.faces[0].boresight_az + np.pi, 2 * np.pi) - np.pi)
    assert np.all(az_off < radar.faces[0].half_width) and np.all(rae[:, 0] < radar.range_max)
    clear, el_app = refracted_view(enu, radar.lat, radar.alt)
    assert np.all(el_app < radar.faces[0].min_elevation)
    assert np.all(rae[:, 2] < 0.0)  # geometrically below the site's horizontal the whole time
    d = generate_detections(kn23_truth, [catalog_radar("us-tpy2-shariki", false_alarms_per_scan=0.0)], seed=1)
    assert len(d) == 0


def test_seongju_and_busan_see_it(kn23_truth):
    seongju = catalog_radar("us-thaad-seongju", false_alarms_per_scan=0.0)
    # ROKN Aegis destroyer alongside at Busan (ROK Fleet headquarters, 35.10 N 129.04 E): the
    # East-Sea catalog ship moved to its home waters by a scenario-style override.
    busan = catalog_radar("kr-aegis-eastsea", lat_deg=35.10, lon_deg=129.04, false_alarms_per_scan=0.0)
    for radar in (seongju, busan):
        _, _, vis = _coverage(radar, kn23_truth)
        assert vis.sum() > 60, radar.name  # over a minute of a ~220 s flight in coverage
    d = generate_detections(kn23_truth, [seongju, busan], seed=3)
    for sid in (0, 1):
        per_trial = np.bincount(d.trial[d.sensor == sid], minlength=2)
        assert np.all(per_trial > 20)
