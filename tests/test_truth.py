"""Ballistic truth: integrator against solve_ivp, shaping tolerances, Truth contract, dispersions, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from ambiance import Atmosphere
from scipy.integrate import solve_ivp

from sim import dynamics as dyn
from sim.atmosphere import density
from sim.config import Dispersion, ThreatConfig
from sim.earth import altitude, geodesic_inverse
from sim.errors import InputError
from sim.gravity import ballistic_acceleration
from sim.missiles import MISSILES, MissileClass
from sim.shaping import flight_summary, solve_nominal
from sim.truth import generate_truth

DATA = Path(__file__).parent / "data" / "published_flights.csv"
PYONGSONG = (np.radians(39.25), np.radians(125.86))


# --- atmosphere and catalog ---------------------------------------------------------------

def test_density_matches_ambiance_and_is_clamped():
    h = np.array([0.0, 5_123.0, 33_333.0, 79_900.0])
    np.testing.assert_allclose(density(h), Atmosphere(h).density, rtol=2e-3)
    above = density([81_000.0, 90_000.0, 110_000.0, 121_000.0])
    assert np.all(np.diff(above[:3]) < 0) and above[3] == 0.0
    # USSA 1976: 100 km 5.6e-7 kg/m^3 -- the extrapolation stays within a factor of 2.
    assert 0.5 < density(100e3) / 5.6e-7 < 2.0


def test_catalog_keys_fields_and_rcs():
    want = {"srbm-kn23", "mrbm-nodong", "irbm-hwasong12", "icbm-hwasong14", "icbm-hwasong15",
            "icbm-hwasong17", "icbm-hwasong18", "icbm-hwasong19", "slbm-pukguksong3"}
    assert set(MISSILES) == want
    for key, m in MISSILES.items():
        assert isinstance(m, MissileClass) and m.key == key and m.sources
        assert m.max_range > 0 and m.rv_mass > 0 and all(s.thrust > 0 for s in m.stages)
        # Lift-off needs thrust above weight.
        assert m.stages[0].thrust > 1.2 * m.launch_mass * 9.81
        rcs = m.rcs("rv", np.array([-1, 0, 1, 2]))
        assert rcs[0] == 0 and rcs[1] == m.rcs_booster and rcs[2] == rcs[3] == m.rcs_rv
        with pytest.raises(ValueError):
            m.rcs("decoy", 1)


# --- integrator against solve_ivp ---------------------------------------------------------

def _reference_impact(prog: dyn.Program, X0):
    """Tight solve_ivp (DOP853) on one object, segment by segment between the program's breakpoints."""
    bps = list(prog.breakpoints())
    y = X0[0].copy()

    def f(tau, x, ts):
        a = dyn.acceleration(tau, ts, x[None, :3], x[None, 3:], prog)
        return np.concatenate([x[3:], a[0]])

    for a, b in zip(bps[:-1], bps[1:]):
        ts = 0.5 * (a + b)
        sol = solve_ivp(f, (a, b), y, args=(ts,), method="DOP853", rtol=1e-11, atol=1e-6)
        y = sol.y[:, -1]

    def hit(tau, x, ts):
        return dyn.height_fast(x[:3])
    hit.terminal, hit.direction = True, -1
    ts = bps[-1] + 1.0
    sol = solve_ivp(f, (bps[-1], 20_000.0), y, args=(ts,), method="DOP853", rtol=1e-11, atol=1e-6,
                    events=hit)
    return sol.t_events[0][0], sol.y_events[0][0]


@pytest.mark.parametrize("key, kick_deg, frac, pitch", [("irbm-hwasong12", 20.0, 0.9, False),
                                                        ("srbm-kn23", 40.0, 1.0, True),
                                                        ("srbm-kn23", 75.0, 1.0, True),
                                                        ("icbm-hwasong15", 5.0, 1.0, False)])
def test_rk4_matches_solve_ivp_at_impact(key, kick_deg, frac, pitch):
    # The KN-23 glides (lift) after its depressed pitch-and-hold boost, as the depressed shape flies it.
    m = MISSILES[key]
    lat, lon = PYONGSONG
    lift = m.glide_lift_to_drag
    prog = dyn.make_program(m, lat, lon, np.radians(80.0), np.radians(kick_deg), frac * m.burn_time,
                            m.rv_ballistic_coeff, lift, 0.0, pitch)
    X0 = dyn.launch_state(lat, lon, 1)
    res = dyn.fly(prog, X0)
    t_ref, x_ref = _reference_impact(prog, X0)
    assert np.linalg.norm(res.impact_state[0, :3] - x_ref[:3]) < 10.0
    assert abs(res.impact_tau[0] - t_ref) < 0.05


def test_dynamics_reduces_to_sim_gravity_in_vacuum():
    m = MISSILES["icbm-hwasong15"]
    prog = dyn.make_program(m, *PYONGSONG, 0.0, 0.1, 50.0, 4000.0)
    r = np.array([[3.0e6, 4.0e6, 4.5e6], [-2e6, 6e6, 3.5e6]])  # both above 200 km: no drag
    v = np.array([[1e3, 2e3, -3e3], [4e3, -1e3, 0.0]])
    a = dyn.acceleration(500.0, 500.0, r, v, dyn.make_program(m, *PYONGSONG, np.zeros(2), 0.1, 50.0, 4000.0))
    np.testing.assert_allclose(a, ballistic_acceleration(r, v), rtol=1e-12, atol=1e-12)
    assert prog.n == 1


def test_height_fast_matches_geodetic_height():
    rng = np.random.default_rng(1)
    lat = rng.uniform(-1.5, 1.5, 50)
    lon = rng.uniform(-3, 3, 50)
    h = rng.uniform(0, 150e3, 50)
    from sim.earth import geodetic_to_ecef
    r = geodetic_to_ecef(lat, lon, h)
    assert np.max(np.abs(dyn.height_fast(r) - altitude(r))) < 1.0


# --- shaping ------------------------------------------------------------------------------

def test_lofted_hwasong15_meets_range_and_apogee():
    nom = solve_nominal("icbm-hwasong15", *PYONGSONG, np.radians(76.0), 950e3, "lofted", 3000e3)
    assert abs(nom.range / 950e3 - 1) < 0.01
    assert abs(nom.apogee / 3000e3 - 1) < 0.02
    # Impact on the requested bearing (the re-aim removes the Coriolis deflection).
    az, d = geodesic_inverse(39.25, 125.86, np.degrees(nom.impact_lat), np.degrees(nom.impact_lon))
    assert abs(az - 76.0) < 0.2 and abs(d / 950e3 - 1) < 0.01


def test_minimum_energy_has_lower_burnout_speed_than_other_shapes():
    me = flight_summary("mrbm-nodong", 39.0, 127.0, bearing_deg=90.0, range_km=800.0)
    apo = me["apogee_km"]
    lo = flight_summary("mrbm-nodong", 39.0, 127.0, bearing_deg=90.0, range_km=800.0, shape="lofted",
                        apogee_km=1.4 * apo)
    de = flight_summary("mrbm-nodong", 39.0, 127.0, bearing_deg=90.0, range_km=800.0, shape="depressed",
                        apogee_km=0.7 * apo)
    assert set(me) == {"flight_time_s", "apogee_km", "range_km", "burnout_time_s", "burnout_speed_mps",
                       "max_speed_mps", "impact_lat_deg", "impact_lon_deg"}
    assert all(type(v) is float for v in me.values())
    for s, a in ((lo, 1.4 * apo), (de, 0.7 * apo)):
        assert abs(s["range_km"] / 800 - 1) < 0.01 and abs(s["apogee_km"] / a - 1) < 0.02
        assert s["burnout_speed_mps"] > me["burnout_speed_mps"]
    assert lo["flight_time_s"] > me["flight_time_s"] > de["flight_time_s"]


def test_target_point_request():
    s = flight_summary("mrbm-nodong", 39.0, 127.0, target_lat_deg=37.0, target_lon_deg=135.0)
    az, d = geodesic_inverse(39.0, 127.0, 37.0, 135.0)
    assert abs(s["range_km"] - d / 1e3) < 0.01 * d / 1e3
    _, miss = geodesic_inverse(37.0, 135.0, s["impact_lat_deg"], s["impact_lon_deg"])
    assert miss < 0.015 * d


@pytest.mark.parametrize("kwargs, key", [
    (dict(bearing_deg=90.0, range_km=5000.0), "range_km"),  # beyond the Nodong's maximum
    (dict(bearing_deg=90.0, range_km=800.0, shape="lofted", apogee_km=50.0), "apogee_km"),  # too low
    (dict(bearing_deg=90.0, range_km=800.0, shape="depressed", apogee_km=5000.0), "apogee_km"),
    (dict(bearing_deg=90.0, range_km=800.0, shape="lofted"), "apogee_km"),  # missing apogee
    (dict(bearing_deg=90.0, range_km=800.0, shape="spiral"), "shape"),
    (dict(range_km=800.0), "range_km"),  # no bearing
])
def test_infeasible_requests_raise_input_error_naming_the_interval(kwargs, key):
    with pytest.raises(InputError) as e:
        flight_summary("mrbm-nodong", 39.0, 127.0, **kwargs)
    assert e.value.problems[0].key_path.endswith(key)
    if key == "range_km" and "range_km" in kwargs and "bearing_deg" in kwargs:
        assert "1300" in str(e.value)


def test_unknown_missile_raises():
    with pytest.raises(InputError):
        flight_summary("icbm-nope", 39.0, 127.0, bearing_deg=90.0, range_km=800.0)


# --- published flights ---------------------------------------------------------------------
# Every row of the record flies through trajectory: tests/test_published_flights.py.


def _rows():
    with open(DATA, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("maneuver", ["none", "pull-up"])
def test_kn23_depressed_50km_600km(maneuver):
    """The 2019-07-25 KN-23 flight: 600 km with a 50 km apogee, as a depressed glide (and with the pull-up)."""
    row = next(r for r in _rows() if r["date_local"] == "2019-07-25")
    lat, lon = float(row["launch_lat_deg"]), float(row["launch_lon_deg"])
    R, A = float(row["range_km"]), float(row["apogee_km"])
    nom = solve_nominal("srbm-kn23", np.radians(lat), np.radians(lon), np.radians(100.0), R * 1e3,
                        "depressed", A * 1e3, maneuver)
    assert abs(nom.range / (R * 1e3) - 1) < 0.01 and abs(nom.apogee / (A * 1e3) - 1) < 0.02
    assert nom.pitch_program and nom.maneuver == maneuver
    # The body stays in the atmosphere (quasi-ballistic glide), well under the ballistic minimum-energy apogee.
    me = flight_summary("srbm-kn23", lat, lon, bearing_deg=100.0, range_km=R)
    assert me["apogee_km"] > 3 * A


# --- Truth ----------------------------------------------------------------------------------

def _threats():
    d = Dispersion(launch_time=5.0, burnout_speed=15.0, azimuth=np.radians(0.2), ballistic_coeff_frac=0.05)
    return [
        ThreatConfig("nodong", "mrbm-nodong", np.radians(39.0), np.radians(127.0), launch_time=0.0,
                     bearing=np.radians(100.0), range=900e3, dispersion=d),
        ThreatConfig("kn23", "srbm-kn23", np.radians(39.4), np.radians(127.54), launch_time=30.0,
                     bearing=np.radians(80.0), range=400e3, stage_object=True, dispersion=d),
    ]


@pytest.fixture(scope="module")
def truth():
    return generate_truth(_threats(), [0, 1, 2, 3, 4, 5], seed=11, dt_s=1.0)


def test_truth_contract(truth):
    n, o, T = 6, 4, truth.t.size
    assert truth.state.shape == (n, o, T, 6) and truth.state.dtype == np.float64
    assert truth.phase.shape == (n, o, T) and truth.phase.dtype == np.int8
    assert truth.object_kind == ("rv", "stage", "rv", "stage")
    np.testing.assert_array_equal(truth.object_threat, [0, 0, 1, 1])
    np.testing.assert_allclose(np.diff(truth.t), 1.0)
    assert truth.launch_time.shape == truth.impact_time.shape == (n, o)
    assert truth.launch_ecef.shape == truth.impact_ecef.shape == (n, o, 3)
    np.testing.assert_array_equal(truth.trial_index, np.arange(6))
    # NaN exactly where not in flight.
    flying = truth.phase >= 0
    assert np.all(np.isfinite(truth.state[flying])) and np.all(np.isnan(truth.state[~flying]))
    # The KN-23 body does not separate: its stage object never flies.
    assert not flying[:, 3].any() and np.all(np.isnan(truth.impact_time[:, 3]))
    # Every other object lands on the ellipsoid inside the grid.
    imp = truth.impact_ecef[:, :3]
    assert np.all(np.abs(altitude(imp)) < 1.0)
    assert np.nanmax(truth.impact_time) <= truth.t[-1]


def test_truth_phases_and_separation(truth):
    ph = truth.phase[0, 0]
    seq = ph[ph >= 0]
    # boost, then midcourse, then re-entry, in order and without gaps.
    assert seq[0] == 0 and seq[-1] == 2 and np.all(np.diff(seq) >= 0)
    # The stage appears at burnout where the RV leaves boost, within one step of separation drift of it,
    # and parts from it at the separation speed (retrograde, along the velocity).
    from sim.truth import STAGE_SEPARATION_SPEED

    k = np.flatnonzero(truth.phase[0, 1] >= 0)[0]
    assert truth.phase[0, 0, k] == 1 and truth.phase[0, 0, k - 1] == 0
    dt = truth.t[1] - truth.t[0]
    assert np.linalg.norm(truth.state[0, 0, k, :3] - truth.state[0, 1, k, :3]) < STAGE_SEPARATION_SPEED * dt + 0.1
    v_rv, v_st = truth.state[0, 0, k, 3:], truth.state[0, 1, k, 3:]
    along = np.dot(v_rv - v_st, v_rv) / np.linalg.norm(v_rv)
    # Within a step of burnout; differential drag (stage and RV betas differ) adds a little where air remains.
    assert along == pytest.approx(STAGE_SEPARATION_SPEED, abs=0.5)
    # Re-entry means descending below 100 km.
    r = truth.state[0, 0, ph == 2, :3]
    v = truth.state[0, 0, ph == 2, 3:]
    assert np.all(np.einsum("ij,ij->i", r, v) < 0) and np.all(altitude(r) < 100e3 + 1)
    # Interpolated velocity agrees with the derivative of the interpolated position.
    x = truth.state[0, 0, ph == 1]
    fd = (x[2:, :3] - x[:-2, :3]) / 2.0
    assert np.max(np.abs(fd - x[1:-1, 3:])) < 1.0


def test_truth_trial_identical_in_any_batch(truth):
    other = generate_truth(_threats(), [4, 1], seed=11, dt_s=1.0)
    T = min(other.t.size, truth.t.size)
    assert other.t[0] == truth.t[0]
    np.testing.assert_array_equal(other.state[0, :, :T], truth.state[4, :, :T])
    np.testing.assert_array_equal(other.impact_time[1], truth.impact_time[1])


def test_truth_dispersions_follow_sigmas():
    d = Dispersion(launch_time=20.0, burnout_speed=0.0, azimuth=0.0, ballistic_coeff_frac=0.0)
    th = [ThreatConfig("a", "mrbm-nodong", np.radians(39.0), np.radians(127.0), bearing=np.radians(90.0),
                       range=700e3, stage_object=False, dispersion=d)]
    tr = generate_truth(th, range(200), seed=3, dt_s=2.0)
    L = tr.launch_time[:, 0]
    # Launch-time sigma: chi-square 99 % interval of the sample variance (n-1 = 199 dof).
    from scipy.stats import chi2
    s2 = np.var(L, ddof=1) / 20.0**2
    assert chi2.ppf(0.005, 199) / 199 < s2 < chi2.ppf(0.995, 199) / 199
    # Launch time only shifts the flight: impact time minus launch time is the same for every trial.
    tof = tr.impact_time[:, 0] - L
    assert np.ptp(tof) < 1e-6
    assert tr.t[0] <= L.min()


def test_burnout_speed_dispersion_moves_impact():
    d = Dispersion(burnout_speed=30.0)
    th = [ThreatConfig("a", "mrbm-nodong", np.radians(39.0), np.radians(127.0), bearing=np.radians(90.0),
                       range=700e3, stage_object=False, dispersion=d)]
    tr = generate_truth(th, range(40), seed=5)
    x0 = tr.launch_ecef[0, 0]
    from sim.earth import ecef_to_geodetic
    lat, lon, _ = ecef_to_geodetic(tr.impact_ecef[:, 0])
    _, rng = geodesic_inverse(np.full(40, np.degrees(lat[0]) * 0 + 39.0), np.full(40, 127.0),
                              np.degrees(lat), np.degrees(lon))
    assert np.std(rng) > 1e3 and abs(np.mean(rng) / 700e3 - 1) < 0.02
    assert np.all(np.isfinite(x0))


def test_generate_truth_rejects_bad_inputs():
    with pytest.raises(InputError):
        generate_truth(_threats(), [0], seed=1, dt_s=0.0)
    bad = [ThreatConfig("x", "mrbm-nodong", 0.7, 2.2, bearing=1.5, range=9000e3)]
    with pytest.raises(InputError) as e:
        generate_truth(bad, [0], seed=1)
    assert e.value.problems[0].key_path.startswith("threat[0].")
