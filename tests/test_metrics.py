"""Tests of fusion.metrics on hand-built truth and tracks with independently known answers.

Right values come from closed forms (constructed custody and errors), scipy.integrate.solve_ivp
(ballistic arcs ground to ground), scipy.spatial.distance.mahalanobis (NEES), chi-square
statistics with a fixed seed, a brute-force GOSPA over every partial assignment, and numpy's
percentiles.
"""

from __future__ import annotations

from itertools import combinations, permutations
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.spatial.distance import mahalanobis

from fusion import metrics as M
from fusion.drag import drag_derivative
from sim.config import MetricsConfig
from sim.earth import altitude, enu_rotation, geodetic_to_ecef, geodesic_inverse, ecef_to_geodetic
from sim.errors import InputError
from sim.gravity import ballistic_acceleration


# ----------------------------------------------------------------------------- builders


def _truth(t, state, launch_time, impact_time, launch_ecef=None, impact_ecef=None, trial_index=None):
    N, O = state.shape[:2]
    return SimpleNamespace(
        t=t,
        state=state,
        launch_time=np.asarray(launch_time, float),
        impact_time=np.asarray(impact_time, float),
        launch_ecef=np.zeros((N, O, 3)) if launch_ecef is None else launch_ecef,
        impact_ecef=np.zeros((N, O, 3)) if impact_ecef is None else impact_ecef,
        trial_index=np.arange(N) if trial_index is None else np.asarray(trial_index),
        object_threat=np.zeros(O, int),
        object_kind=("rv",) * O,
    )


def _tracks(t, N, K):
    T = t.size
    P = np.broadcast_to(np.eye(6), (N, K, T, 6, 6)).copy()
    return SimpleNamespace(
        t=t,
        x=np.full((N, K, T, 6), np.nan),
        P=P,
        confirmed=np.zeros((N, K, T), bool),
        object=np.full((N, K, T), -1, np.int32),
        sensors=np.zeros((N, K, T), np.uint64),
    )


def _rhs(_, s):
    return np.concatenate([s[3:], ballistic_acceleration(s[:3], s[3:])])


def _ground_event(_, s):
    return float(altitude(s[:3]))


_ground_event.terminal = True
_ground_event.direction = -1


def _arc(lat_deg, lon_deg, speed, elev_deg, az_deg):
    """Drag-free flight from the ground to the ground, integrated by solve_ivp (DOP853)."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    r0 = geodetic_to_ecef(lat, lon, 0.0)
    el, az = np.radians(elev_deg), np.radians(az_deg)
    v_enu = speed * np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])
    v0 = enu_rotation(lat, lon).T @ v_enu
    sol = solve_ivp(
        _rhs, (0.0, 5000.0), np.concatenate([r0, v0]), method="DOP853",
        rtol=1e-12, atol=1e-6, events=_ground_event, dense_output=True,
    )
    t_imp = float(sol.t_events[0][0])
    return sol, t_imp, r0, sol.y_events[0][0][:3]


@pytest.fixture(scope="module")
def arcs():
    """Two trials x two objects of drag-free arcs (RV and a slower 'stage'), 1 s grid."""
    specs = [
        [(40.0, 125.0, 3000.0, 45.0, 90.0), (40.0, 125.0, 2500.0, 45.0, 90.0)],
        [(39.5, 126.0, 3200.0, 40.0, 75.0), (39.5, 126.0, 2700.0, 40.0, 75.0)],
    ]
    t = np.arange(-5.0, 700.0, 1.0)
    N, O = 2, 2
    state = np.full((N, O, t.size, 6), np.nan)
    launch_ecef, impact_ecef = np.zeros((N, O, 3)), np.zeros((N, O, 3))
    impact_time = np.zeros((N, O))
    sols = {}
    for n in range(N):
        for o in range(O):
            sol, t_imp, r0, r1 = _arc(*specs[n][o])
            fly = (t >= 0) & (t <= t_imp)
            state[n, o, fly] = sol.sol(t[fly]).T
            launch_ecef[n, o], impact_ecef[n, o], impact_time[n, o] = r0, r1, t_imp
            sols[n, o] = sol
    truth = _truth(t, state, np.zeros((N, O)), impact_time, launch_ecef, impact_ecef)
    return truth, sols


def _exact_tracks(truth, start_s=0.0, dv=None):
    """One confirmed track per object equal to the truth (plus a velocity bias dv) from start_s."""
    N, O, T = truth.state.shape[:3]
    tr = _tracks(truth.t, N, O)
    on = np.isfinite(truth.state).all(-1) & (truth.t >= start_s)
    tr.x[on] = truth.state[on]
    if dv is not None:
        tr.x[on, 3:] += dv
    tr.confirmed[:] = on
    tr.object[:] = np.where(on, np.arange(O)[None, :, None], -1)
    tr.P *= 100.0
    return tr


def _geodesic_km(r_a, r_b):
    la, oa, _ = ecef_to_geodetic(r_a)
    lb, ob, _ = ecef_to_geodetic(r_b)
    return geodesic_inverse(np.degrees(la), np.degrees(oa), np.degrees(lb), np.degrees(ob))[1] / 1e3


# ----------------------------------------------------------------------------- custody scenario


@pytest.fixture()
def custody():
    """Two trials, two objects, three track slots; every answer counted by hand.

    Object 0 in flight at steps 10..89 (80 steps), object 1 at 50..70 (never tracked). dt = 1 s.

    Trial 0: track 0 exists 15..30, confirmed from 18, labelled 0 up to 25 and 1 at 26..30, then
    deleted (a swap of 5 steps at its end: not firm); pos error 100 m.
    Track 1 exists 35..95, confirmed from 38, labelled 0 except -1 at 50..52 (a 3-step gap:
    allowed); pos error 50 m, vel error 2 m/s. Firm from step 38 -> 28 s after launch.
    Trial 1: track 0 exists 20..99 confirmed, labelled 0 except -1 at 30..33 (4 steps: too long);
    firm from 34 -> 24 s. pos error (30, 40, 0) -> 50 m, vel (0, 0, 2). Track 2 duplicates it on
    60..69 with a 1 km error and a larger covariance (must not be the one scored).
    """
    t = np.arange(100.0)
    N, O, K = 2, 2, 3
    rng = np.random.default_rng(1)
    state = np.full((N, O, t.size, 6), np.nan)
    state[:, 0, 10:90] = rng.normal(0, 1e6, (N, 80, 6))
    state[:, 1, 50:71] = rng.normal(0, 1e6, (N, 21, 6))
    truth = _truth(t, state, [[10.0, 50.0]] * 2, [[89.5, 70.5]] * 2, trial_index=[7, 9])
    tr = _tracks(t, N, K)
    e100 = np.array([100.0, 0, 0, 0, 0, 0])
    e50 = np.array([30.0, 40.0, 0, 0, 0, 2.0])
    # trial 0, track 0
    tr.x[0, 0, 15:31] = state[0, 0, 15:31] + e100
    tr.confirmed[0, 0, 18:31] = True
    tr.object[0, 0, 15:26], tr.object[0, 0, 26:31] = 0, 1
    # trial 0, track 1 (truth NaN after 89: keep the track finite there with any value)
    tr.x[0, 1, 35:96] = np.nan_to_num(state[0, 0, 35:96] + e50, nan=1e6)
    tr.confirmed[0, 1, 38:96] = True
    tr.object[0, 1, 35:96] = 0
    tr.object[0, 1, 50:53] = -1
    # trial 1, track 0
    tr.x[1, 0, 20:100] = np.nan_to_num(state[1, 0, 20:100] + e50, nan=1e6)
    tr.confirmed[1, 0, 20:100] = True
    tr.object[1, 0, 20:100] = 0
    tr.object[1, 0, 30:34] = -1
    # trial 1, track 2: duplicate with a worse covariance
    tr.x[1, 2, 60:70] = state[1, 0, 60:70] + 1000.0
    tr.confirmed[1, 2, 60:70] = True
    tr.object[1, 2, 60:70] = 0
    tr.P[1, 2] *= 9.0
    return truth, tr


def test_firm_track_time_closed_form(custody):
    truth, tr = custody
    got = M.firm_track_time(truth, tr)
    np.testing.assert_array_equal(got[:, 0], [28.0, 24.0])
    assert np.isnan(got[:, 1]).all()
    # a 4-step tolerance accepts trial 1's gap; trial 0's 5-step swap before deletion still fails
    np.testing.assert_array_equal(M.firm_track_time(truth, tr, max_gap_steps=4)[:, 0], [28.0, 10.0])
    np.testing.assert_array_equal(M.firm_track_time(truth, tr, max_gap_steps=5)[:, 0], [8.0, 10.0])
    # a 5 s hold only looks 5 steps ahead: both first confirmations count
    np.testing.assert_array_equal(M.firm_track_time(truth, tr, hold_s=5.0)[:, 0], [8.0, 10.0])
    # trial 1: the 4-step gap becomes too long at step 33; a 12 s hold from step 20 ends at 32 (firm),
    # a 13 s hold ends at 33 (not firm from 20..33, so firm from 34)
    np.testing.assert_array_equal(M.firm_track_time(truth, tr, hold_s=12.0)[:, 0], [28.0, 10.0])
    np.testing.assert_array_equal(M.firm_track_time(truth, tr, hold_s=13.0)[:, 0], [28.0, 24.0])


def test_completeness_closed_form(custody):
    truth, tr = custody
    got = M.completeness(truth, tr)
    np.testing.assert_allclose(got[:, 0], [(8 + 52 - 3) / 80, (70 - 4) / 80])
    np.testing.assert_array_equal(got[:, 1], [0.0, 0.0])


def test_rmse_closed_form_and_best_duplicate(custody):
    truth, tr = custody
    e = M.estimation_errors(truth, tr)
    np.testing.assert_allclose(e["pos_rmse_m"][0, 0], np.sqrt((8 * 100.0**2 + 49 * 50.0**2) / 57))
    np.testing.assert_allclose(e["vel_rmse_mps"][0, 0], np.sqrt(49 * 4.0 / 57))
    np.testing.assert_allclose(e["pos_rmse_m"][1, 0], 50.0)  # the duplicate 1 km track is not scored
    np.testing.assert_allclose(e["vel_rmse_mps"][1, 0], 2.0)
    np.testing.assert_array_equal(e["n_samples"], [[57, 0], [66, 0]])
    # P = I: NEES is the squared error norm
    np.testing.assert_allclose(e["anees"][1, 0], 50.0**2 + 2.0**2)
    assert np.isnan(e["pos_rmse_m"][:, 1]).all() and np.isnan(e["anees"][:, 1]).all()
    t, err, bound = M.position_error_curve(truth, tr)
    np.testing.assert_allclose(err[1, 0, 20:30], 50.0)
    np.testing.assert_allclose(bound[1, 0, 20:30], 2.0 * np.sqrt(3.0))
    assert np.isnan(err[1, 0, 30:34]).all() and np.isnan(err[:, 1]).all()


def test_detection_time_from_arrivals(custody):
    truth, _ = custody
    arrivals = SimpleNamespace(
        trial=np.array([9, 9, 7, 7, 8, 7]),
        object=np.array([0, 0, 0, -1, 0, 1]),
        time=np.array([38.0, 33.0, 10.5, 0.0, 0.0, 59.0]),  # measurement times: not what counts
        arrival=np.array([40.0, 35.0, 12.5, 1.0, 0.0, 61.0]),  # field names of sim.engine._arrivals
    )
    got = M.detection_time(truth, arrivals)
    np.testing.assert_allclose(got[:, 0], [2.5, 25.0])
    np.testing.assert_allclose(got[0, 1], 11.0)
    assert np.isnan(got[1, 1])
    tup = (arrivals.trial, arrivals.object, arrivals.arrival)
    np.testing.assert_array_equal(M.detection_time(truth, tup), got)
    assert np.isnan(M.detection_time(truth, None)).all()


def test_mismatched_inputs_raise(custody):
    truth, tr = custody
    bad = SimpleNamespace(**{**vars(tr), "x": tr.x[:, :, :50]})
    with pytest.raises(InputError, match="tracks.x"):
        M.completeness(truth, bad)
    with pytest.raises(InputError, match="max_gap_steps"):
        M.firm_track_time(truth, tr, max_gap_steps=-1)


# ----------------------------------------------------------------------------- NEES / ANEES


def test_nees_matches_mahalanobis_and_chi_square_bounds():
    rng = np.random.default_rng(20240601)
    T = 600
    A = rng.normal(size=(6, 6))
    P = A @ A.T + 6 * np.eye(6)
    P[:3, :3] *= 1e4  # position in m, velocity in m/s: different scales
    e = rng.multivariate_normal(np.zeros(6), P, size=T)
    t = np.arange(float(T))
    state = rng.normal(0, 1e6, (1, 1, T, 6))
    truth = _truth(t, state, [[0.0]], [[T]])
    tr = _tracks(t, 1, 1)
    tr.x[0, 0] = state[0, 0] + e
    tr.P[0, 0] = P
    tr.confirmed[:] = True
    tr.object[:] = 0
    got = M.nees(truth, tr)[0, 0]
    Pinv = np.linalg.inv(P)
    np.testing.assert_allclose(got[:5], [mahalanobis(ei, np.zeros(6), Pinv) ** 2 for ei in e[:5]], rtol=1e-9)
    lo, hi = M.anees_bounds(T)
    anees = M.estimation_errors(truth, tr)["anees"][0, 0]
    assert lo < anees < hi, (lo, anees, hi)
    tr.P[0, 0] = 0.25 * P  # overconfident filter: NEES four times too large
    anees_bad = M.estimation_errors(truth, tr)["anees"][0, 0]
    np.testing.assert_allclose(anees_bad, 4 * anees)
    assert anees_bad > hi


def test_anees_bounds_textbook_example():
    # Bar-Shalom, Li & Kirubarajan 2001 sec. 5.4.2: n = 2, N = 50 runs -> [1.5, 2.6]
    lo, hi = M.anees_bounds(50, dim=2)
    assert abs(lo - 1.5) < 0.03 and abs(hi - 2.6) < 0.03
    lo, hi = M.anees_bounds(np.array([0, 10]))
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and lo[1] < 6 < hi[1]


# ----------------------------------------------------------------------------- impact point


def test_ground_crossing_of_truth_states_is_the_true_impact_and_launch(arcs):
    truth, sols = arcs
    sol, t_imp = sols[0, 0], truth.impact_time[0, 0]
    ts = np.array([1.0, 60.0, 200.0, t_imp - 120.0, t_imp - 3.0])
    x = sol.sol(ts).T
    r, dt = M.predict_ground_crossing(x, drag=False)  # the arcs are drag-free
    dist = np.linalg.norm(r - truth.impact_ecef[0, 0], axis=-1)
    assert dist.max() < 1.0, dist
    np.testing.assert_allclose(dt, t_imp - ts, atol=1e-3)
    rb, dtb = M.predict_ground_crossing(x, backward=True, drag=False)
    assert np.linalg.norm(rb - truth.launch_ecef[0, 0], axis=-1).max() < 1.0
    np.testing.assert_allclose(dtb, -ts, atol=1e-3)
    # not finite -> NaN; already on the ground -> itself at time 0
    r2, dt2 = M.predict_ground_crossing(np.stack([np.full(6, np.nan), sol.sol(0.0)]))
    assert np.isnan(r2[0]).all() and np.isnan(dt2[0])
    assert dt2[1] == 0.0


def test_ground_crossing_of_a_perturbed_state_matches_solve_ivp(arcs):
    _, sols = arcs
    x0 = sols[1, 0].sol(150.0) + np.array([0, 0, 0, 40.0, -25.0, 15.0])
    ref = solve_ivp(_rhs, (0.0, 5000.0), x0, method="DOP853", rtol=1e-12, atol=1e-6, events=_ground_event)
    r, dt = M.predict_ground_crossing(x0, drag=False)
    assert np.linalg.norm(r - ref.y_events[0][0][:3]) < 1.0
    assert abs(dt - ref.t_events[0][0]) < 1e-3


def test_ipp_curve_warning_and_launch_point_on_exact_tracks(arcs):
    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=100.0)
    tau, err = M.ipp_error_curve(truth, tr, step_s=50.0, extra_time_to_go=(120.0,), drag=False)
    assert 120.0 in tau and np.all(np.diff(tau) > 0)
    # tracked from t = 100 s: a point exists iff the last grid step before impact - tau is >= 100
    k_time = np.floor(truth.impact_time[..., None] - tau)  # grid is whole seconds
    expected = k_time >= 100.0
    np.testing.assert_array_equal(np.isfinite(err), expected)
    assert np.nanmax(err) < 1e-3  # km
    w = M.warning_time(tau, err, 50.0)
    np.testing.assert_array_equal(w, np.max(np.where(expected, tau, -np.inf), axis=-1))
    lp = M.launch_point_error(truth, tr)
    assert np.nanmax(lp) < 1e-3


def test_no_ipp_and_no_warning_from_the_boost_phase(arcs):
    # With phases, steps under thrust give no IPP: a warning cannot rest on a thrusting missile's
    # ballistic extrapolation (e.g. a boost-phase track lost before burnout).
    from sim.truth import PHASE_BOOST, PHASE_MIDCOURSE

    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=100.0)
    t = np.asarray(truth.t)
    burnout = 400.0  # s on the grid: the exact tracks before it count as boost-phase tracks
    phase = np.where(t < burnout, PHASE_BOOST, PHASE_MIDCOURSE).astype(np.int8)
    with_phase = SimpleNamespace(**{**vars(truth), "phase": np.broadcast_to(phase, truth.state.shape[:3]).copy()})
    tau, err = M.ipp_error_curve(with_phase, tr, step_s=50.0, extra_time_to_go=(120.0,), drag=False)
    k_time = np.floor(truth.impact_time[..., None] - tau)
    np.testing.assert_array_equal(np.isfinite(err), (k_time >= 100.0) & (k_time >= burnout))
    w = M.warning_time(tau, err, 50.0)
    assert np.all(truth.impact_time - w >= burnout)  # the warning starts after burnout
    _, err_all = M.ipp_error_curve(truth, tr, step_s=50.0, extra_time_to_go=(120.0,), drag=False)
    assert np.isfinite(err_all).sum() > np.isfinite(err).sum()  # without phases, the boost steps count


def test_ipp_error_of_biased_track_matches_independent_propagation(arcs):
    truth, _ = arcs
    dv = np.array([20.0, -10.0, 5.0])
    tr = _exact_tracks(truth, dv=dv)
    tau, err = M.ipp_error_curve(truth, tr, time_to_go=[120.0, 300.0], drag=False)
    for n, o, g in [(0, 0, 0), (1, 1, 1)]:
        k = int(np.floor(truth.impact_time[n, o] - tau[g])) + 5  # grid t = -5 + index
        x0 = tr.x[n, o, k]
        ref = solve_ivp(_rhs, (0.0, 5000.0), x0, method="DOP853", rtol=1e-12, atol=1e-6, events=_ground_event)
        want = _geodesic_km(ref.y_events[0][0][:3], truth.impact_ecef[n, o])
        assert want > 0.1  # the bias moves the impact point measurably
        np.testing.assert_allclose(err[n, o, g], want, rtol=1e-5, atol=1e-4)


def test_warning_time_closed_form():
    """First trusted prediction (right and believed, both strictly below 50 km) gives the warning;
    later predictions do not withdraw it; a later believed miss counts as a retraction."""
    tau = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    nan = np.nan
    e = np.array(
        [
            [1.0, 2.0, 60.0, 3.0, 4.0],  # right from 40 s to go; the 60 km miss at 20 s retracts it
            [nan, 5.0, nan, 7.0, 70.0],  # first right at 30 s; no later miss
            [nan] * 5,  # never predicted
            [1.0, 1.0, 1.0, 1.0, 1.0],  # 40 s, never retracted
            [60.0, 1.0, 1.0, 1.0, 1.0],  # 40 s, the last prediction misses: retracted
            [50.0, 50.0, 50.0, 50.0, 49.9],  # exactly at the threshold is not within it: 40 s, retracted
            [1.0, 1.0, 1.0, 1.0, 1.0],  # right but its own 2-sigma is too wide until 10 s to go
            [1.0, 80.0, 1.0, 1.0, 1.0],  # 40 s; the miss at 10 s is not believed (sigma 90): not retracted
        ]
    )
    sigma = np.full(e.shape, 5.0)
    sigma[5] = [50.0, 49.0, 49.0, 49.0, 49.0]
    sigma[6] = [1.0, 49.99, 50.0, 60.0, 900.0]
    sigma[7, 1] = 90.0
    got = M.warning_time(tau, e, 50.0, sigma)
    np.testing.assert_array_equal(got, [40.0, 30.0, nan, 40.0, 40.0, 40.0, 10.0, 40.0])
    ret = M.warning_retracted(tau, e, 50.0, sigma)
    np.testing.assert_array_equal(ret, [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    # without sigmas every prediction is believed: row 6 warns at 40 s, row 7's 80 km miss retracts
    np.testing.assert_array_equal(M.warning_time(tau, e, 50.0)[[6, 7]], [40.0, 40.0])
    np.testing.assert_array_equal(M.warning_retracted(tau, e, 50.0)[[6, 7]], [0.0, 1.0])
    with pytest.raises(InputError, match="sigma_km"):
        M.warning_time(tau, e, 50.0, sigma[:, :3])


def test_more_sensors_never_show_less_warning():
    """A nation that gains a radar, and with it a fresh late track with a wrong IPP, keeps its warning:
    the warning is the first trusted prediction, not the time from which every prediction was right.
    (Before issue 24 a fresh re-entry track cancelled an earlier warning: KR isolated 2,910 s -> 70 s.)"""
    tau = np.arange(0.0, 100.0, 10.0)
    base = np.where(tau >= 60.0, 5.0, np.nan)  # a firm midcourse track, right from 60 s to go, then lost
    more = base.copy()
    more[:3] = 120.0  # the added radar's fresh re-entry track: believed but 120 km off at 0-20 s to go
    w_base, w_more = M.warning_time(tau, base, 50.0), M.warning_time(tau, more, 50.0)
    assert w_base == 90.0 and w_more == 90.0
    assert M.warning_retracted(tau, base, 50.0) == 0.0 and M.warning_retracted(tau, more, 50.0) == 1.0


# ----------------------------------------------------------------------------- GOSPA


def _gospa_brute(X, Y, c, p=2.0):
    """Eq. (2) of Rahmathullah et al. 2017 by enumerating every partial assignment."""
    m, n = len(X), len(Y)
    best = (np.inf, None)
    for k in range(min(m, n) + 1):
        for xs in combinations(range(m), k):
            for ys in permutations(range(n), k):
                d = [np.linalg.norm(X[i] - Y[j]) for i, j in zip(xs, ys)]
                cost = sum(di**p for di in d) + c**p / 2 * (m + n - 2 * k)
                if cost < best[0]:
                    best = (cost, (sum(di**p for di in d), n - k, m - k))
    return best[0] ** (1 / p), best[1]


def test_gospa_against_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(150):
        m, n = rng.integers(0, 5, size=2)
        X, Y = rng.uniform(0, 30, (m, 2)), rng.uniform(0, 30, (n, 2))
        c = rng.uniform(2, 20)
        g = M.gospa(X, Y, c)
        d, (loc, n_miss, n_false) = _gospa_brute(X, Y, c)
        np.testing.assert_allclose(g["distance"], d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g["localization"] ** 2, loc, rtol=1e-12, atol=1e-12)
        assert (g["n_missed"], g["n_false"]) == (n_miss, n_false)
        np.testing.assert_allclose(g["localization"] ** 2 + g["missed"] ** 2 + g["false"] ** 2, d**2)


def test_gospa_empty_sets_closed_form():
    c = 10e3
    Y = np.random.default_rng(0).normal(size=(3, 3))
    g = M.gospa(np.zeros((0, 3)), Y, c)
    np.testing.assert_allclose(g["distance"], np.sqrt(3 * c**2 / 2))
    assert g["n_missed"] == 3 and g["n_false"] == 0 and g["localization"] == 0
    g = M.gospa(Y[:2], np.zeros((0, 3)), c)
    np.testing.assert_allclose(g["false"], np.sqrt(2 * c**2 / 2))
    assert M.gospa(np.zeros((0, 3)), np.zeros((0, 3)), c)["distance"] == 0.0


def test_gospa_series_matches_per_step_gospa():
    rng = np.random.default_rng(3)
    N, O, K, T = 3, 3, 4, 40
    t = np.arange(float(T))
    state = rng.uniform(0, 30e3, (N, O, T, 6))
    state[0, 2, :10] = np.nan  # object not yet launched
    truth = _truth(t, state, np.zeros((N, O)), np.full((N, O), T))
    tr = _tracks(t, N, K)
    tr.x[:] = rng.uniform(0, 30e3, (N, K, T, 6))
    tr.x[:, :O] = np.concatenate([state[..., :3] + rng.normal(0, 3e3, (N, O, T, 3)), state[..., 3:]], -1)
    tr.x[1, 3, 5:] = np.nan
    tr.confirmed[:] = rng.random((N, K, T)) < 0.8
    c = 10e3
    g = M.gospa_series(truth, tr, c)
    n_lsa = 0
    for n in range(N):
        for k in range(T):
            xs = tr.x[n, :, k, :3][tr.confirmed[n, :, k] & np.isfinite(tr.x[n, :, k, 0])]
            ys = state[n, :, k, :3][np.isfinite(state[n, :, k, 0])]
            ref, (loc, n_miss, n_false) = _gospa_brute(xs, ys, c)
            np.testing.assert_allclose(g["distance"][n, k], ref, rtol=1e-10)
            np.testing.assert_allclose(g["localization"][n, k] ** 2, loc, rtol=1e-10, atol=1e-6)
            assert (g["n_missed"][n, k], g["n_false"][n, k]) == (n_miss, n_false)
            d = np.linalg.norm(xs[:, None] - ys[None], axis=-1) < c
            n_lsa += (d.sum(0) > 1).any() or (d.sum(1) > 1).any()
    assert n_lsa > 5  # the assignment path was exercised, not only the closed form


def test_gospa_series_compiled_matchings_equal_the_assignment_path_bit_for_bit(monkeypatch):
    """The steps with competing close pairs, solved by enumerating matchings (fusion.metric_kernels), give
    the bits of the per-step scipy assignment (fusion.metrics.gospa) on clustered tracks and objects: the
    same localization (summed in the track order), the same missed and false counts. Planted faults this
    catches: the pairs' squares summed in object order, a matching that may reuse a track, the p-th root
    round trip left out."""
    from fusion import metric_kernels as MK

    rng = np.random.default_rng(11)
    N, O, K, T = 4, 3, 6, 60
    t = np.arange(float(T))
    state = rng.uniform(0, 8e3, (N, O, T, 6))  # objects a few km apart: many competing pairs at c = 10 km
    state[1, 2, :15] = np.nan
    truth = _truth(t, state, np.zeros((N, O)), np.full((N, O), T))
    tr = _tracks(t, N, K)
    tr.x[:] = rng.uniform(0, 12e3, (N, K, T, 6))
    tr.confirmed[:] = rng.random((N, K, T)) < 0.7
    fast = M.gospa_series(truth, tr, 10e3)

    def none_solved(d, pair, si, sk, c, loc_raw, n_close, ok):
        ok[:] = False

    monkeypatch.setattr(MK, "gospa_close_matchings", none_solved)
    slow = M.gospa_series(truth, tr, 10e3)
    for key in slow:
        assert np.asarray(fast[key]).tobytes() == np.asarray(slow[key]).tobytes(), key


# ----------------------------------------------------------------------------- reductions


def test_trial_metrics_keys_shapes_and_values(arcs):
    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=30.0)
    tr.x[..., 0] += np.where(np.isfinite(tr.x[..., 0]), 10.0, 0.0)  # 10 m position error everywhere
    arrivals = (np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([20.0, 25.0, 28.0]))
    cfg = MetricsConfig(ipp_threshold=50e3, ipp_time_to_go=120.0, gospa_cutoff=10e3)
    out = M.trial_metrics(truth, tr, arrivals, cfg)
    assert set(out) == set(M.TRIAL_METRIC_KEYS)
    for k, v in out.items():
        assert v.shape == ((2,) if k == "gospa_m" else (2, 2)), k
    np.testing.assert_allclose(out["detect_time_s"], [[20.0, np.nan], [25.0, 28.0]])
    np.testing.assert_array_equal(out["firm_track_time_s"], 30.0)
    n_flight = np.isfinite(truth.state[..., 0]).sum(-1)
    np.testing.assert_allclose(out["completeness"], (n_flight - 30) / n_flight)
    np.testing.assert_allclose(out["pos_rmse_m"], 10.0)
    np.testing.assert_allclose(out["vel_rmse_mps"], 0.0, atol=1e-12)
    np.testing.assert_allclose(out["anees"], 1.0)  # 10^2 / 100 (P = 100 I)
    # The arcs are drag-free and the IPP predicts with the nominal drag: its error is the drag effect on
    # the 10-m-off state, as solve_ivp of the drag model gives it (0.8-1.5 km on these 3 km/s arcs).
    for n in range(2):
        for o in range(2):
            k = int(np.floor(truth.impact_time[n, o] - 120.0)) + 5  # grid t = -5 + index
            want = _ref_ground_km(tr.x[n, o, k], truth.impact_ecef[n, o], drag=True)
            assert want > 0.5
            np.testing.assert_allclose(out["ipp_error_km_at_120s"][n, o], want, rtol=1e-5, atol=1e-4)
    assert (out["launch_point_error_km"] < 0.05).all()
    assert (out["warning_time_s"] > 120.0).all()
    # GOSPA: each track sits 10 m off its object, objects far apart; steps before
    # t = 30 s have no confirmed track: 2 missed objects each (c^2/2 each).
    assert np.isfinite(out["gospa_m"]).all() and (out["gospa_m"] > 10.0).all()
    s = M.summarize(out["completeness"][:, 0])
    assert s["n"] == 2 and s["n_missing"] == 0


def test_summarize_counts_missing():
    v = np.array([1.0, np.nan, 3.0, 10.0, np.nan, 4.0])
    s = M.summarize(v)
    f = v[np.isfinite(v)]
    assert s == {
        "median": float(np.median(f)),
        "p10": float(np.percentile(f, 10)),
        "p90": float(np.percentile(f, 90)),
        "n": 6,
        "n_missing": 2,
        "bimodal": False,
    }
    assert M.summarize(np.full(4, np.nan)) == {"median": None, "p10": None, "p90": None, "n": 4, "n_missing": 4,
                                               "bimodal": False}


def test_bimodality_flag_closed_form():
    """Sarle's coefficient by hand from the bias-corrected skewness and kurtosis formulas."""
    v = np.array([240.0] * 4 + [2910.0] * 8)  # the US isolated warning of issue 23: two clusters
    n = v.size
    m = v.mean()
    m2, m3, m4 = (((v - m) ** k).mean() for k in (2, 3, 4))
    g1 = m3 / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2)
    g2 = ((n + 1) * (m4 / m2**2 - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))
    want = (g1**2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    np.testing.assert_allclose(M.bimodality_coefficient(v), want, rtol=1e-12)
    assert want > 5 / 9 and M.summarize(v)["bimodal"] is True
    normal = np.random.default_rng(1).normal(size=200)
    assert M.summarize(normal)["bimodal"] is False  # a normal sample: b ~ 1/3
    assert M.summarize(v[:8])["bimodal"] is False  # under 10 values: never flagged


def test_bootstrap_ci_is_seeded_and_brackets_the_median():
    rng = np.random.default_rng(5)
    v = rng.normal(10.0, 1.0, 400)
    lo, hi = M.bootstrap_median_ci(v)
    assert (lo, hi) == M.bootstrap_median_ci(v)  # seeded: the same interval every time
    # the normal-theory interval of the median: +-1.96 * 1.2533 * sigma / sqrt(n)
    half = 1.96 * 1.2533 / np.sqrt(v.size)
    np.testing.assert_allclose([lo, hi], [np.median(v) - half, np.median(v) + half], atol=0.05)
    assert M.bootstrap_median_ci([1.0]) is None
    d = M.paired_difference([1.0, 2.0, np.nan, 5.0], [0.5, np.nan, 3.0, 4.0])
    assert d["median"] == 0.75 and d["pairs"] == 2 and d["only_a"] == 1 and d["only_b"] == 1


def test_ipp_curve_with_hold_uses_only_tracks_held_that_long(arcs):
    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=100.0)
    tau, err = M.ipp_error_curve(truth, tr, step_s=50.0, extra_time_to_go=(120.0,), drag=False)
    tau_h, err_h = M.ipp_error_curve(truth, tr, step_s=50.0, extra_time_to_go=(120.0,), hold_s=30.0, drag=False)
    np.testing.assert_array_equal(tau, tau_h)
    # A prediction counts only once the track has been on the object for 30 s (from t = 130 s on).
    k_time = np.floor(truth.impact_time[..., None] - tau)
    np.testing.assert_array_equal(np.isfinite(err_h), k_time >= 130.0)
    np.testing.assert_array_equal(err_h[np.isfinite(err_h)], err[np.isfinite(err_h)])
    assert np.isfinite(err).sum() > np.isfinite(err_h).sum()  # the hold removed the fresh-track points


def test_ipp_hold_bridges_short_off_object_gaps_as_the_firm_track_rule_does(arcs):
    """The held-track rule of the IPP curve is the firm-track rule: gaps of up to 3 steps off the
    object keep the hold, a longer gap or an emptied slot starts it again (closed form on a 1 s grid)."""
    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=100.0)
    ti = {s: int(np.flatnonzero(truth.t == s)[0]) for s in (150.0, 300.0, 400.0)}
    tr.confirmed[:, 0, ti[150.0]:ti[150.0] + 3] = False  # 3 steps unconfirmed: bridged
    tr.object[:, 0, ti[300.0]:ti[300.0] + 4] = 1  # 4 steps on the other object: the hold restarts at 304 s
    tr.x[:, 1, ti[400.0]] = np.nan  # slot empty for one step: the hold restarts at 401 s
    tr.confirmed[:, 1, ti[400.0]] = False
    tau, err = M.ipp_error_curve(truth, tr, step_s=1.0, hold_s=30.0, drag=False)
    k_time = np.floor(truth.impact_time[..., None] - tau)  # grid time of each prediction
    # held once on for 30 steps: from 129 s (100-129 s), 333 s (304-333 s) and 430 s (401-430 s)
    held0 = (k_time >= 129.0) & ~((k_time >= 150.0) & (k_time <= 152.0)) & ~((k_time >= 300.0) & (k_time <= 332.0))
    held1 = (k_time >= 129.0) & ~((k_time >= 400.0) & (k_time <= 429.0))
    np.testing.assert_array_equal(np.isfinite(err[:, 0]), held0[:, 0])
    np.testing.assert_array_equal(np.isfinite(err[:, 1]), held1[:, 1])
    # zero tolerance, the strictly consecutive rule: the hold restarts at 153 s, so 150-181 s drop out
    _, err_strict = M.ipp_error_curve(truth, tr, step_s=1.0, hold_s=30.0, max_gap_steps=0, drag=False)
    np.testing.assert_array_equal(np.isfinite(err_strict[:, 0]),
                                  held0[:, 0] & ~((k_time >= 150.0) & (k_time <= 181.0))[:, 0])
    with pytest.raises(InputError, match="max_gap_steps"):
        M.ipp_error_curve(truth, tr, hold_s=30.0, max_gap_steps=-1, drag=False)


# ----------------------------------------------------------------------------- issue 24: exact values of the glue


def _ramp_tracks(truth, start_s, dv0, fade_s=700.0):
    """Exact tracks from start_s with a velocity bias fading in time, dv(t) = dv0 (1 - (t - start_s) / fade_s)
    (then 0): every step's IPP and retrodiction differ, so reading the wrong step or column changes the
    number, and the first predictions miss the impact point by more than 50 km while later ones do not."""
    tr = _exact_tracks(truth, start_s=start_s)
    on = tr.confirmed
    scale = np.clip(1.0 - np.broadcast_to(truth.t - start_s, on.shape) / fade_s, 0.0, None)
    tr.x[..., 3:] += np.where(on[..., None], scale[..., None] * np.asarray(dv0), 0.0)
    return tr


def _drag_rhs(_, s):
    """The tracker's drag model (nominal ballistic coefficient) as an ODE for solve_ivp."""
    return drag_derivative(s)


def _ref_ground_km(x0, target_ecef, backward=False, drag=False):
    """Ground distance (km) from the ground crossing of x0 (solve_ivp; with the nominal drag if ``drag``)."""
    span = (0.0, -5000.0) if backward else (0.0, 5000.0)
    ev = _ground_event
    if backward:
        def ev(_, s):
            return float(altitude(s[:3]))
        ev.terminal, ev.direction = True, -1
    ref = solve_ivp(_drag_rhs if drag else _rhs, span, x0, method="DOP853", rtol=1e-12, atol=1e-6, events=ev)
    return _geodesic_km(ref.y_events[0][0][:3], target_ecef)


def test_events_ipp_warning_and_launch_point_exact_on_biased_tracks(arcs):
    """trial_metrics' event values against independent solve_ivp propagations of the right track state.

    Planted faults this catches: the 120 s IPP read one time-to-go column off; the launch point
    taken from the last tracked step; the warning threshold read in metres as km; positions at the
    events read at the wrong step."""
    truth, _ = arcs
    start, hold = 30.0, 30.0
    tr = _ramp_tracks(truth, start, [200.0, -100.0, 150.0])
    cfg = MetricsConfig(ipp_threshold=50e3, ipp_time_to_go=120.0, gospa_cutoff=10e3)
    out = M.trial_metrics(truth, tr, None, cfg, hold_s=hold)
    t = truth.t
    first_scored = start + hold - 1  # held for 30 steps: the 30th on-object step is the first scored one
    for n in range(2):
        for o in range(2):
            k = int(np.floor(truth.impact_time[n, o] - 120.0)) + 5  # grid t = -5 + index
            want = _ref_ground_km(tr.x[n, o, k], truth.impact_ecef[n, o], drag=True)  # the IPP has drag
            np.testing.assert_allclose(out["ipp_error_km_at_120s"][n, o], want, rtol=1e-5, atol=1e-4)
            k0 = int(np.flatnonzero(t == first_scored)[0])
            want_lp = _ref_ground_km(tr.x[n, o, k0], truth.launch_ecef[n, o], backward=True)
            np.testing.assert_allclose(out["launch_point_error_km"][n, o], want_lp, rtol=1e-5, atol=1e-4)
            # position error at the events: only a velocity bias, so 0 m; the step is checked below
            assert out["pos_error_m_at_120s"][n, o] == 0.0
    # the IPP error grows with the bias, so the warning is the largest time to go of the 10 s grid (and the
    # extra 120 s point) where the prediction is within 50 km, from the first scored step on, computed here
    # from the same curve: a threshold read as 50,000 km would put it at the first scored step instead.
    tau, err, sig = M.ipp_error_curve(truth, tr, step_s=10.0, extra_time_to_go=(120.0,), hold_s=hold,
                                      with_sigma=True)
    assert np.nanmax(sig) < 50.0  # P = 100 I: 2-sigma at most ~14 km, so every prediction is believed
    ok = err < 50.0
    want_w = np.where(ok.any(-1), np.max(np.where(ok, tau, -np.inf), -1), np.nan)
    np.testing.assert_array_equal(out["warning_time_s"], want_w)
    first_pred = np.max(np.where(np.isfinite(err), tau, -np.inf), -1)
    assert (out["warning_time_s"] < first_pred).all()  # the first predictions miss: a threshold read as
    #                                                     50,000 km would put the warning there
    later_miss = (np.isfinite(err) & (err >= 50.0) & (tau < want_w[..., None])).any(-1)
    np.testing.assert_array_equal(out["warning_retracted"], later_miss.astype(float))


def test_position_error_at_events_and_per_phase_rmse_exact(arcs):
    """A position bias growing 1 m per second of track age: the error at 120 s to go and at burnout + 60 s
    is the age at that step, and each phase's RMSE the RMS of the ages of its scored steps."""
    from sim.truth import PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY

    truth, _ = arcs
    t = truth.t
    start, hold = 30.0, 30.0
    tr = _exact_tracks(truth, start_s=start)
    age = np.broadcast_to(t - start, tr.confirmed.shape)
    tr.x[..., 0] += np.where(tr.confirmed, age, 0.0)  # |error| = age in m, along x
    phase = np.full(truth.state.shape[:3], -1, np.int8)
    fly = np.isfinite(truth.state[..., 0])
    phase[fly] = PHASE_MIDCOURSE
    phase[fly & (t < 100.0)] = PHASE_BOOST  # burnout at t = 100 s: first non-boost step 100 s
    phase[fly & (t > truth.impact_time[..., None] - 60.0)] = PHASE_REENTRY
    truth_p = SimpleNamespace(**{**vars(truth), "phase": phase})
    out = M.trial_metrics(truth_p, tr, None, MetricsConfig(), hold_s=hold)
    for n in range(2):
        for o in range(2):
            k120 = np.floor(truth.impact_time[n, o] - 120.0)
            assert out["pos_error_m_at_120s"][n, o] == pytest.approx(k120 - start, abs=1e-6)
            assert out["pos_error_m_at_burnout_60s"][n, o] == pytest.approx(160.0 - start, abs=1e-6)
            scored_t = t[fly[n, o] & (t >= start + hold - 1)]
            for ph, key, sel in ((PHASE_BOOST, "pos_rmse_boost_m", scored_t < 100.0),
                                 (PHASE_REENTRY, "pos_rmse_reentry_m", scored_t > truth.impact_time[n, o] - 60.0)):
                want = np.sqrt(np.mean((scored_t[sel] - start) ** 2))
                assert out[key][n, o] == pytest.approx(want, rel=1e-12), key
            mid = (scored_t >= 100.0) & (scored_t <= truth.impact_time[n, o] - 60.0)
            assert out["pos_rmse_midcourse_m"][n, o] == pytest.approx(np.sqrt(np.mean((scored_t[mid] - start) ** 2)))
            assert out["pos_rmse_m"][n, o] == pytest.approx(np.sqrt(np.mean((scored_t - start) ** 2)))
            assert out["scored_steps"][n, o] == scored_t.size


def test_gospa_is_averaged_over_the_steps_with_an_object_in_flight(arcs):
    """By hand: confirmed exact tracks from 30 s, 10 m off; before 30 s both objects in flight are missed
    (c^2/2 each); the 5 grid steps before launch have no object and do not count."""
    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=30.0)
    tr.x[..., 0] += np.where(tr.confirmed, 10.0, 0.0)
    c = 10e3
    out = M.trial_metrics(truth, tr, None, MetricsConfig(gospa_cutoff=c))
    t = truth.t
    for n in range(2):
        fly = np.isfinite(truth.state[n, :, :, 0])  # (O, T)
        active = fly.any(0)
        trk = fly & (t >= 30.0)
        d2 = (trk * 10.0**2).sum(0) + c**2 / 2 * (fly & ~trk).sum(0)
        want = np.sqrt(d2)[active].mean()
        assert out["gospa_m"][n] == pytest.approx(want, rel=1e-12)
        assert (~active).sum() >= 5  # the test has inactive steps to get wrong


def test_matched_ratio_and_bound_metrics_closed_form():
    nan = np.nan
    a = np.array([[[10.0, 20.0, nan, 30.0, nan]]])
    b = np.array([[[20.0, nan, 5.0, 40.0, nan]]])
    ratio, common = M.matched_ratio(a, b)
    assert common[0, 0] == 2
    assert ratio[0, 0] == pytest.approx(np.sqrt((100 + 900) / (400 + 1600)))
    r_same, _ = M.matched_ratio(b, b)
    assert r_same[0, 0] == 1.0
    r_none, c_none = M.matched_ratio(a, np.full_like(a, nan))
    assert np.isnan(r_none[0, 0]) and c_none[0, 0] == 0
    bound = np.array([[[4.0, 9.0, 1.0, 16.0, 25.0]]])  # m^2
    bm = M.bound_metrics(bound, a)  # scored where a is finite: steps 0, 1, 3
    assert bm["pcrlb_pos_m"][0, 0] == pytest.approx(np.sqrt((4 + 9 + 16) / 3))
    assert bm["efficiency"][0, 0] == pytest.approx(np.sqrt((100 + 400 + 900) / 3) / np.sqrt(29 / 3))
    assert np.isnan(M.bound_metrics(bound, np.full_like(a, nan))["pcrlb_pos_m"][0, 0])
    # a scored step where the bound is numerically undetermined (inf) is left out of both, not the whole row
    bound_inf = bound.copy()
    bound_inf[0, 0, 3] = np.inf
    bi = M.bound_metrics(bound_inf, a)  # steps 0 and 1
    assert bi["pcrlb_pos_m"][0, 0] == pytest.approx(np.sqrt((4 + 9) / 2))
    assert bi["efficiency"][0, 0] == pytest.approx(np.sqrt((100 + 400) / 2) / np.sqrt(13 / 2))


def test_ensemble_nees_consistency_counts_and_chi_square_bounds():
    """Steps whose average NEES over M trials is inside [chi2(6M, .025)/M, chi2(6M, .975)/M] (scipy)."""
    from scipy.stats import chi2 as chi2_dist

    nan = np.nan
    nees = np.array([[6.0, 100.0, 0.01, nan],
                     [6.0, 100.0, 0.01, nan],
                     [nan, nan, 0.01, nan]])  # step 0: 2 trials at 6; step 1: 2 at 100; step 2: 3 at 0.01
    from sim.truth import PHASE_BOOST, PHASE_MIDCOURSE

    phase = np.array([[PHASE_BOOST, PHASE_MIDCOURSE, PHASE_MIDCOURSE, -1]] * 3)
    total, count = M.nees_sums(nees, phase)
    np.testing.assert_array_equal(count[0], [2, 2, 3, 0])
    np.testing.assert_array_equal(count[1], [2, 0, 0, 0])
    mean, lo, hi = M.ensemble_nees(total[0], count[0])
    np.testing.assert_allclose(mean[:3], [6.0, 100.0, 0.01], rtol=0, atol=M.NEES_QUANTUM)  # quantized sums
    np.testing.assert_allclose(lo[2], chi2_dist.ppf(0.025, 18) / 3, rtol=1e-12)
    np.testing.assert_allclose(hi[0], chi2_dist.ppf(0.975, 12) / 2, rtol=1e-12)
    c = M.nees_consistency(total[0], count[0])
    assert c == {"inside": pytest.approx(1 / 3), "below": pytest.approx(1 / 3), "above": pytest.approx(1 / 3),
                 "steps": 3}
    assert M.nees_consistency(total[3], count[3]) == {"inside": None, "below": None, "above": None, "steps": 0}
    # integer sums: the order of the trials does not change a bit
    t2, c2 = M.nees_sums(nees[::-1], phase)
    np.testing.assert_array_equal(total, t2)


def test_ipp_is_withheld_while_the_tracker_believes_in_thrust(arcs):
    """The tracker's own thrust belief gates the IPP, not the truth's phase: with thrust_prob >= 0.5 until
    t = 300 s and the truth saying midcourse throughout, no prediction before 300 s; without a belief (NaN)
    the truth's boost label is the stand-in."""
    from sim.truth import PHASE_BOOST, PHASE_MIDCOURSE

    truth, _ = arcs
    tr = _exact_tracks(truth, start_s=100.0)
    t = truth.t
    thr = np.where(t < 300.0, 0.5, 0.49)  # 0.5 is not below THRUST_BELIEF_MAX: still thrusting
    tr.thrust_prob = np.where(tr.confirmed, np.broadcast_to(thr, tr.confirmed.shape), np.nan)
    phase = np.where(t < 150.0, PHASE_BOOST, PHASE_MIDCOURSE).astype(np.int8)
    truth_p = SimpleNamespace(**{**vars(truth), "phase": np.broadcast_to(phase, truth.state.shape[:3]).copy()})
    tau, err = M.ipp_error_curve(truth_p, tr, step_s=50.0, drag=False)
    k_time = np.floor(truth.impact_time[..., None] - tau)
    np.testing.assert_array_equal(np.isfinite(err), k_time >= 300.0)
    tr.thrust_prob = np.full(tr.confirmed.shape, np.nan)  # no belief: the truth's boost ends at 150 s
    _, err2 = M.ipp_error_curve(truth_p, tr, step_s=50.0, drag=False)
    np.testing.assert_array_equal(np.isfinite(err2), k_time >= 150.0)


@pytest.mark.parametrize("drag", [False, True])
def test_impact_uncertainty_matches_finite_difference_propagation(arcs, drag):
    """The 2-sigma semi-major axis of the IPP from a first-order propagation, against a central-difference
    Jacobian of predict_ground_crossing itself (an independent linearization of the same map), for the
    drag-free predictor and for the predictor with the nominal drag in the air (the last ~40 s here)."""
    from sim.earth import enu_rotation

    truth, sols = arcs
    x0 = sols[0, 0].sol(200.0)
    P = np.diag([30.0**2, 20.0**2, 40.0**2, 2.0**2, 1.0**2, 3.0**2])
    r0, tau, x_g, Phi = M.predict_ground_crossing(x0, drag=drag, with_transition=True)
    np.testing.assert_allclose(x_g[:3], r0, atol=1e-2)  # m: drag-free, x_g is propagated in 10-s substeps
    got = M.impact_uncertainty_km(x_g[None], Phi[None], P[None])[0]
    lat, lon, _ = ecef_to_geodetic(r0)
    E = enu_rotation(lat, lon)[:2]  # east, north
    J = np.zeros((2, 6))
    for i in range(6):
        h = 1.0 if i < 3 else 0.01
        d = np.zeros(6)
        d[i] = h
        rp, _ = M.predict_ground_crossing(x0 + d, drag=drag)
        rm, _ = M.predict_ground_crossing(x0 - d, drag=drag)
        J[:, i] = E @ (rp - rm) / (2 * h)
    want = 2.0 * np.sqrt(np.linalg.eigvalsh(J @ P @ J.T)[-1]) / 1e3
    np.testing.assert_allclose(got, want, rtol=2e-3)
    assert 1.0 < want < 100.0  # km: a velocity sigma of a few m/s over ~500 s of flight



# ----------------------------------------------------------------------------- IPP with the tracker's drag model


@pytest.fixture(scope="module")
def reentry_arc():
    """A ballistic flight with drag from the truth simulator (no lift, no manoeuvre, no dispersion):
    Pukguksong-3, minimum energy, 1,500 km east; its RV's ballistic coefficient is the trackers' nominal."""
    from sim.config import ThreatConfig
    from sim.truth import generate_truth

    th = ThreatConfig("pks3", "slbm-pukguksong3", np.radians(39.0), np.radians(125.7), bearing=np.radians(90.0),
                      range=1500e3, stage_object=False)
    return generate_truth([th], [0], 1, dt_s=1.0)


def test_drag_ipp_of_a_true_reentry_state_is_the_true_impact(reentry_arc):
    """From the true state at 300, 120 and 60 s to go (368, 218 and 112 km up), the drag predictor lands within
    1 m of the truth's impact point and within 1 ms of its impact time: both integrate the same equations (J2,
    frame terms, drag of the same coefficient in the same density spline) by RK4, the truth on its own step
    schedule sampled by cubic Hermite interpolation, the predictor in <= 2 s / 1,750 m substeps (measured
    0.03-0.11 m; 1 m is a tenfold margin and 1/700 of the drag effect). The drag-free predictor misses by the
    drag effect, 692 m, where solve_ivp's drag-free crossing of the same state is (an independent oracle).
    Planted faults this catches: no drag (692 m), a 5 % other ballistic coefficient, drag applied twice."""
    from fusion.drag import NOMINAL_BALLISTIC_COEFF
    from sim.missiles import MISSILES

    tr = reentry_arc
    assert MISSILES["slbm-pukguksong3"].rv_ballistic_coeff == NOMINAL_BALLISTIC_COEFF
    impact = tr.impact_ecef[0, 0]
    k = M.time_to_go_index(tr.t, tr.impact_time[:, 0], [300.0, 120.0, 60.0])[0]
    x = tr.state[0, 0, k]
    assert (altitude(x[:, :3]) > 100e3).all()
    r, tau = M.predict_ground_crossing(x)
    assert np.linalg.norm(r - impact, axis=-1).max() < 1.0
    np.testing.assert_allclose(tau, tr.impact_time[0, 0] - tr.t[k], atol=1e-3)
    rf, tf = M.predict_ground_crossing(x, drag=False)
    miss_free_m = _geodesic_km(rf, np.broadcast_to(impact, rf.shape)) * 1e3
    for i in range(3):
        np.testing.assert_allclose(miss_free_m[i], _ref_ground_km(x[i], impact) * 1e3, atol=0.1)
    np.testing.assert_allclose(miss_free_m, 691.7, atol=1.0)  # measured 691.6-691.8 m
    np.testing.assert_allclose(tf - tau, -9.72, atol=0.01)  # drag-free, it lands 9.7 s early
    # the floor of metrics.truth_ipp_error_km is the same computation at the grid step of 120 s to go
    np.testing.assert_allclose(M.truth_ipp_error_km(tr, 120.0)[0, 0] * 1e3, 0.0, atol=1.0)
    np.testing.assert_allclose(M.truth_ipp_error_km(tr, 120.0, drag=False)[0, 0] * 1e3, miss_free_m[1], rtol=1e-12)


def test_drag_free_predictor_is_the_one_before_drag_was_modelled():
    """The drag-free predictor (drag=False, still the launch-point retrodiction) gives what the predictor gave
    before the drag model (values printed by fusion.metrics at commit 58b9e3a, to 1e-12 relative)."""
    lat, lon = np.radians(39.0), np.radians(130.0)
    x = np.concatenate([geodetic_to_ecef(lat, lon, 300e3),
                        enu_rotation(lat, lon).T @ np.array([2000.0, 1000.0, -1500.0])])
    r, t = M.predict_ground_crossing(x, drag=False)
    np.testing.assert_allclose(r, [-3350851.840636171, 3543262.105379941, 4096900.956122288], rtol=1e-12)
    np.testing.assert_allclose(t, 143.77775236964226, rtol=1e-12)
    rb, tb = M.predict_ground_crossing(x, backward=True, drag=False)
    np.testing.assert_allclose(rb, [-2597682.8915444906, 4629564.329544018, 3523653.052105688], rtol=1e-12)
    np.testing.assert_allclose(tb, -530.8117733895779, rtol=1e-12)


def test_above_the_air_the_drag_predictor_takes_the_drag_free_steps(reentry_arc, monkeypatch):
    """No regression where there is no air: an exo-atmospheric state is propagated by exactly the drag-free
    steps (bit for bit) until the step from which the air can act (fusion.drag.in_atmosphere), and only
    then handed to the drag model. Planted faults this catches: drag from the first step (hand-over at 0 s),
    another propagator above the air (other bits), a hand-over one step late."""
    from fusion.drag import in_atmosphere
    from fusion.models import ballistic_propagate

    tr = reentry_arc
    k = M.time_to_go_index(tr.t, tr.impact_time[:, 0], [300.0])[0, 0]
    x0 = tr.state[0, 0, k]
    seen = {}
    real = M.drag_ground_crossings

    def spy(X, rows, h, max_steps, *args):
        seen["X"], seen["h"], seen["max_steps"] = X.copy(), h, max_steps.copy()
        return real(X, rows, h, max_steps, *args)

    monkeypatch.setattr(M, "drag_ground_crossings", spy)
    r, tau = M.predict_ground_crossing(x0[None])
    n_total = int(np.ceil(M.IPP_MAX_TIME_S / M.IPP_RK4_STEP_S))
    n_free = n_total - int(seen["max_steps"][0])
    assert seen["h"] == M.IPP_RK4_STEP_S and n_free > 10  # ~ 37 drag-free steps from 368 km
    s = x0[None].copy()
    for i in range(n_free):
        assert not in_atmosphere(s, M.IPP_RK4_STEP_S)[0], i
        s = ballistic_propagate(s, M.IPP_RK4_STEP_S)
    np.testing.assert_array_equal(seen["X"], s)
    assert in_atmosphere(s, M.IPP_RK4_STEP_S)[0]
    assert np.linalg.norm(r[0] - tr.impact_ecef[0, 0]) < 1.0


def _numpy_free_leg(monkeypatch):
    """Make predict_ground_crossing take its numpy step loop for every state (the compiled drag-free
    leg answers FREE_UNSURE for all), the reference the compiled leg must equal bit for bit."""
    from fusion import impact_kernels as K

    def unsure(X, rows, h, n_sub, n_steps, status, *outs):
        status[rows] = K.FREE_UNSURE

    monkeypatch.setattr(M, "free_flight_to_air", unsure)


def test_compiled_ipp_legs_equal_the_numpy_step_loop_bit_for_bit(reentry_arc, monkeypatch):
    """The compiled drag-free leg (fusion.impact_kernels.free_flight_to_air) reproduces the numpy step loop
    (fusion.models.ballistic_propagate, fusion.drag.in_atmosphere) bit for bit: the same hand-over step and
    state, so the same impact point and time to the last bit, on dispersed states of a re-entry arc from
    1,000 s to 0 s to go (exo-atmospheric, in the air, backward); the transition to the crossing agrees to
    rounding (loops instead of einsum/BLAS), and the result is the same on 1 or 2 threads and for any
    subset of the states. Planted faults this catches: one operation reordered in the compiled
    acceleration (other bits), a hand-over one step late, a transition with per-state substeps."""
    from fusion import impact_kernels as K

    tr = reentry_arc
    ks = M.time_to_go_index(tr.t, tr.impact_time[:, 0], np.arange(0.0, 1000.0, 7.0))[0]
    x = tr.state[0, 0, ks[ks >= 0]]
    rng = np.random.default_rng(7)
    x = np.concatenate([x, x + rng.normal(size=x.shape) * [300, 300, 300, 20, 20, 20]])
    fast = M.predict_ground_crossing(x, with_transition=True)
    fast_back = M.predict_ground_crossing(x[:20], backward=True)
    one = {}
    with monkeypatch.context() as m:
        m.setattr(M, "_rows_on_threads", lambda *a, **k: K.rows_on_threads(*a, threads=1, **k))
        one["f"] = M.predict_ground_crossing(x, with_transition=True)
        one["sub"] = M.predict_ground_crossing(x[::3], with_transition=True)
    _numpy_free_leg(monkeypatch)
    slow = M.predict_ground_crossing(x, with_transition=True)
    slow_back = M.predict_ground_crossing(x[:20], backward=True)
    assert np.isfinite(fast[1]).all() and (fast[1] > 0).all()
    for a, b in zip(fast[:3], slow[:3]):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(fast_back, slow_back):
        assert a.tobytes() == b.tobytes()
    np.testing.assert_allclose(fast[3], slow[3], rtol=0, atol=1e-12 * np.abs(slow[3]).max())
    for a, b in zip(fast, one["f"]):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(one["sub"], fast):
        assert a.tobytes() == b[::3].tobytes()


def test_drag_leg_kernel_equals_the_tracker_kernels_substep_by_substep(reentry_arc):
    """fusion.impact_kernels.drag_ground_crossings against the tracker's own motion kernels called from
    Python one substep at a time (fusion.motion_kernels.in_atmosphere, drag_substeps, variational_rk4,
    height; the transition multiplied with numpy's @): the same crossing state and time to the last bit,
    the same transition to rounding. Planted fault this catches: a drag stage with its terms reordered."""
    from fusion import impact_kernels as K
    from fusion import motion_kernels as mk

    tr = reentry_arc
    ks = M.time_to_go_index(tr.t, tr.impact_time[:, 0], [10.0, 25.0, 40.0, 60.0, 90.0])[0]
    X = np.ascontiguousarray(tr.state[0, 0, ks])
    h, n_max, bis = 5.0, 100, 24
    M_ = X.shape[0]
    xo, to, Fo = np.empty_like(X), np.empty(M_), np.empty((M_, 6, 6))
    K.drag_ground_crossings(X, np.arange(M_), h, np.full(M_, n_max), bis, True, xo, to, Fo)
    for i in range(M_):
        s, F = X[i].copy(), np.eye(6)
        out, Fs = np.empty(6), np.empty((6, 6))
        found = False
        for n in range(n_max):
            air = mk.in_atmosphere(s, h)
            n_sub = mk.drag_substeps(s, h) if air else 1
            hs = h / n_sub
            for j in range(n_sub):
                step = (lambda y, d, wf, o, G: mk.variational_rk4(y, d, 1, 2, 0.0, 0.0, wf, o, G)) if air else \
                    (lambda y, d, wf, o, G: mk.ballistic_transition(y, d, wf, o, G))
                step(s, hs, True, out, Fs)
                if mk.height(out) <= 0.0:
                    lo, hi = 0.0, hs
                    tmp = np.empty(6)
                    for _ in range(bis):
                        mid = 0.5 * (lo + hi)
                        step(s, mid, False, tmp, np.empty((6, 6)))
                        lo, hi = (lo, mid) if mk.height(tmp) <= 0.0 else (mid, hi)
                    last = 0.5 * (lo + hi)
                    step(s, last, True, tmp, Fs)
                    assert xo[i].tobytes() == tmp.tobytes()
                    assert to[i] == n * h + j * hs + last
                    np.testing.assert_allclose(Fo[i], Fs @ F, rtol=0, atol=1e-12 * np.abs(Fs @ F).max())
                    found = True
                    break
                F = Fs @ F
                s = out.copy()
            if found:
                break
        assert found, i
