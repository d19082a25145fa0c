"""The engine's glue on a deterministic two-radar scenario whose answers are counted by hand (issue 24).

Truth is one drag-free arc (solve_ivp); two radars of two nations (KR, latency 1 s; JP, latency 3 s)
see every scan (P_D = 1 by construction, no clutter, noise-free measurements): KR at t = 20, 25, ... s,
JP at t = 42, 47, ... s. The built-in links of the scenario take 2 s per hop, and JP <-> KR relays
through the US hub under trilateral sharing (two hops). So, by hand:

==========  =====================================  ====================  ==========================
row         detections that reach it (arrival)     first arrival         third arrival (3-of-5)
==========  =====================================  ====================  ==========================
KR any      KR at t + 1                            21 s                  31 s
JP isol.    JP at t + 3                            45 s                  55 s
JP bilat.   JP at t + 3 (KR's data stop at the US) 45 s                  55 s
JP trilat.  KR at t + 1 + 2 + 2, JP at t + 3       25 s                  35 s
US bil/tri  KR at t + 1 + 2, JP at t + 3 + 2       23 s                  33 s
US isol.    nothing                                never                 never
==========  =====================================  ====================  ==========================

Every detection updates the track it arrives for, so the tracker confirms at the third hit's arrival:
the firm-track time. Planted faults this catches: detection time at measurement time instead of
arrival; the tracker fed at measurement time instead of arrival; a link's latency dropped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim.earth import altitude, enu_rotation, geodetic_to_ecef
from sim.gravity import ballistic_acceleration
from sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
KR_LAT, JP_LAT, LINK = 1.0, 3.0, 2.0
SPAN_S = 150.0  # s of the flight simulated (the arc lasts ~800 s); keeps the test fast


def _arc():
    r0 = geodetic_to_ecef(np.radians(39.0), np.radians(125.7), 0.0)
    el, az, speed = np.radians(50.0), np.radians(95.0), 4500.0
    v0 = enu_rotation(np.radians(39.0), np.radians(125.7)).T @ (
        speed * np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)]))

    def rhs(_, s):
        return np.concatenate([s[3:], ballistic_acceleration(s[:3], s[3:])])

    def ground(_, s):
        return float(altitude(s[:3]))

    ground.terminal, ground.direction = True, -1
    sol = solve_ivp(rhs, (0.0, 3000.0), np.concatenate([r0, v0]), method="DOP853", rtol=1e-11, atol=1e-6,
                    events=ground, dense_output=True)
    return sol, float(sol.t_events[0][0]), r0, sol.y_events[0][0][:3]


@pytest.fixture(scope="module")
def glue():
    from sensors.detections import Detections
    from sensors.geometry import measure
    from sim.engine import TrialResults, run_chunk
    from sim.truth import PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY, Truth

    sc = load_scenario(SCENARIOS / "hwasong15_2017-11-29.toml")
    sc = dataclasses.replace(sc, sharing=dataclasses.replace(sc.sharing, link_latency=LINK, share="measurements"),
                             threats=sc.threats[:1])
    sol, t_imp, r0, r1 = _arc()
    t = np.arange(0.0, SPAN_S + 1.0, 1.0)  # the first SPAN_S s of the flight: custody and latency live there
    fly = t <= t_imp
    state = np.full((1, 1, t.size, 6), np.nan)
    state[0, 0, fly] = sol.sol(t[fly]).T
    phase = np.full((1, 1, t.size), -1, np.int8)
    phase[0, 0, fly] = np.where(t[fly] < 60.0, PHASE_BOOST,
                                np.where(t[fly] > t_imp - 60.0, PHASE_REENTRY, PHASE_MIDCOURSE))
    truth = Truth(t=t, state=state, phase=phase, object_threat=np.array([0]), object_kind=("rv",),
                  launch_time=np.zeros((1, 1)), impact_time=np.array([[t_imp]]), launch_ecef=r0[None, None],
                  impact_ecef=r1[None, None], trial_index=np.array([0]))
    sites = [(37.5, 128.0, KR_LAT, "KR"), (38.0, 138.5, JP_LAT, "JP")]
    radars = []
    for i, (lat, lon, lat_s, nation) in enumerate(sites):
        radars.append(SimpleNamespace(name=f"{nation.lower()}-test", nation=nation, latency=lat_s, scan_interval=5.0,
                                      site_ecef=geodetic_to_ecef(np.radians(lat), np.radians(lon), 0.0),
                                      R_enu=enu_rotation(np.radians(lat), np.radians(lon))))
    times = [np.arange(20.0, SPAN_S, 5.0), np.arange(42.0, SPAN_S, 5.0)]
    rows = []
    for s, ts in enumerate(times):
        x = sol.sol(ts).T
        z = measure(x, radars[s].site_ecef, radars[s].R_enu)
        rows.append((np.full(ts.size, s), ts, z))
    sensor = np.concatenate([r[0] for r in rows]).astype(np.int16)
    time = np.concatenate([r[1] for r in rows])
    z = np.concatenate([r[2] for r in rows])
    order = np.lexsort((sensor, time))
    K = time.size
    R = np.broadcast_to(np.diag([50.0**2, 1e-3**2, 1e-3**2]), (K, 3, 3)).copy()
    dets = Detections(trial=np.zeros(K, np.int64), time=time[order], sensor=sensor[order],
                      object=np.zeros(K, np.int32), z=z[order], R=R, snr=np.full(K, 100.0))

    import sensors.detections
    import sim.truth

    mp = pytest.MonkeyPatch()
    mp.setattr(sim.truth, "generate_truth", lambda *a, **k: truth)
    mp.setattr(sensors.detections, "generate_detections", lambda *a, **k: dets)
    kept = {}

    def keep(policy, nation, truth_, dets_, tracks, mask, arrival, m):
        kept[(policy, nation)] = (tracks, mask, arrival, m)

    results = TrialResults()
    try:
        run_chunk(sc, tuple(radars), np.array([0]), 0, ["isolated", "bilateral", "trilateral"], results, keep)
    finally:
        mp.undo()
    return sc, truth, dets, radars, results, kept


EXPECTED = {  # (policy, nation): (first arrival, third arrival) after launch, s; None: never
    ("isolated", "KR"): (21.0, 31.0), ("bilateral", "KR"): (21.0, 31.0), ("trilateral", "KR"): (21.0, 31.0),
    ("isolated", "JP"): (45.0, 55.0), ("bilateral", "JP"): (45.0, 55.0), ("trilateral", "JP"): (25.0, 35.0),
    ("isolated", "US"): (None, None), ("bilateral", "US"): (23.0, 33.0), ("trilateral", "US"): (23.0, 33.0),
}


def _value(results, policy, nation, key):
    target = next(iter({k[2] for k in results.values}))
    return results.values[(policy, nation, target)][key][0]


@pytest.mark.parametrize("policy, nation", sorted(EXPECTED))
def test_arrival_detection_and_firm_track_times_by_hand(glue, policy, nation):
    sc, truth, dets, radars, results, kept = glue
    first, third = EXPECTED[(policy, nation)]
    _, mask, arrival, _ = kept[(policy, nation)]
    delay = {("isolated", "KR"): (KR_LAT, None), ("bilateral", "KR"): (KR_LAT, None),
             ("trilateral", "KR"): (KR_LAT, JP_LAT + 2 * LINK), ("isolated", "JP"): (None, JP_LAT),
             ("bilateral", "JP"): (None, JP_LAT), ("trilateral", "JP"): (KR_LAT + 2 * LINK, JP_LAT),
             ("isolated", "US"): (None, None), ("bilateral", "US"): (KR_LAT + LINK, JP_LAT + LINK),
             ("trilateral", "US"): (KR_LAT + LINK, JP_LAT + LINK)}[(policy, nation)]
    want = np.array([np.inf if delay[s] is None else delay[s] for s in dets.sensor]) + dets.time
    np.testing.assert_array_equal(arrival, want)
    np.testing.assert_array_equal(mask, np.isfinite(want))
    det = _value(results, policy, nation, "detect_time_s")
    firm = _value(results, policy, nation, "firm_track_time_s")
    if first is None:
        assert np.isnan(det) and np.isnan(firm)
    else:
        assert det == first
        assert firm == third


def test_scored_metrics_by_hand_from_the_kept_tracks(glue):
    """pos_rmse_m, completeness and the matched ratio recomputed here with explicit loops over the kept
    track histories: the scored rule (confirmed on the object, held 30 steps) counted step by step."""
    sc, truth, dets, radars, results, kept = glue
    hold = int(np.ceil(sc.metrics.firm_track_hold / 1.0))
    t = truth.t
    err = {}
    for (policy, nation), (tracks, _, _, m) in kept.items():
        x, conf, obj = tracks.x[0], tracks.confirmed[0], tracks.object[0]
        K, T = conf.shape
        run = np.zeros(K, int)
        e2, n_conf, n_fly = [], 0, 0
        per_step = np.full(T, np.nan)
        for k in range(T):
            flying = np.isfinite(truth.state[0, 0, k, 0])
            best, best_var = None, np.inf
            any_on = False
            for j in range(K):
                live = np.isfinite(x[j, k]).all()
                on = live and conf[j, k] and obj[j, k] == 0
                # the hold: consecutive steps on (this scenario has no gaps, so gaps need no bridging)
                run[j] = run[j] + 1 if on else 0
                any_on |= on
                var = np.trace(tracks.P[0, j, k, :3, :3]) if on else np.inf
                if on and run[j] >= hold and var < best_var:
                    best, best_var = j, var
            n_fly += flying
            n_conf += flying and any_on
            if flying and best is not None:
                d = np.linalg.norm(x[best, k, :3] - truth.state[0, 0, k, :3])
                e2.append(d * d)
                per_step[k] = d
        err[(policy, nation)] = per_step
        rmse = _value(results, policy, nation, "pos_rmse_m")
        if e2:
            assert rmse == pytest.approx(np.sqrt(np.mean(e2)), rel=1e-12), (policy, nation)
            assert _value(results, policy, nation, "scored_steps") == len(e2)
        else:
            assert np.isnan(rmse)
        assert _value(results, policy, nation, "completeness") == pytest.approx(n_conf / n_fly, rel=1e-12)
    for (policy, nation), e in err.items():
        ref = err[("isolated", nation)]
        both = np.isfinite(e) & np.isfinite(ref)
        got = _value(results, policy, nation, "pos_err_ratio_vs_isolated")
        assert _value(results, policy, nation, "common_steps_vs_isolated") == both.sum()
        if both.any():
            assert got == pytest.approx(np.sqrt(np.sum(e[both] ** 2) / np.sum(ref[both] ** 2)), rel=1e-12)
        else:
            assert np.isnan(got)
    assert _value(results, "isolated", "KR", "pos_err_ratio_vs_isolated") == 1.0


def test_feed_plan_track_routes_carry_their_link_latency():
    """Track-level trilateral sharing, by hand: JP gets KR's own-sensor tracks over KR -> US -> JP (two
    links of 2 s) every 5 s, and KR's detections first reach JP inside them, 1 + 4 s after measurement."""
    from fusion.network import builtin_policy
    from sim.engine import feed_plan

    sc = load_scenario(SCENARIOS / "hwasong15_2017-11-29.toml")
    sharing = dataclasses.replace(sc.sharing, link_latency=LINK, share="tracks", track_interval=5.0)
    radars = [SimpleNamespace(nation="KR", latency=KR_LAT), SimpleNamespace(nation="JP", latency=JP_LAT)]
    own, routes, arrival = feed_plan(radars, builtin_policy("trilateral", sharing), "JP")
    np.testing.assert_array_equal(own, [np.inf, JP_LAT])
    by_src = {tuple(r[0].tolist()): (r[1], r[2]) for r in routes}
    assert by_src[(KR_LAT, np.inf)] == (2 * LINK, 5.0)
    np.testing.assert_array_equal(arrival, [KR_LAT + 2 * LINK, JP_LAT])
    own, routes, arrival = feed_plan(radars, builtin_policy("bilateral", sharing), "US")
    np.testing.assert_array_equal(own, [np.inf, np.inf])
    assert sorted((r[1], r[2]) for r in routes) == [(LINK, 5.0), (LINK, 5.0)]
    np.testing.assert_array_equal(arrival, [KR_LAT + LINK, JP_LAT + LINK])
