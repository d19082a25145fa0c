"""What a track report shares besides the state: the sender's IPP and launch point, and IPP disagreement."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from pyproj import Geod

from fusion.shared_estimates import ground_distance_km, pairwise_spread_km, reported_points
from fusion.tracker import TrackHistory
from sim.earth import geodetic_to_ecef

T = 100
LAT = np.radians(40.0)


def _ground(lon_deg):
    """ECEF of ground points 1 m below the WGS-84 ellipsoid (a state there is its own ground crossing)."""
    return geodetic_to_ecef(np.full(np.shape(lon_deg), LAT), np.radians(lon_deg), -1.0)


def _sender():
    """One track whose state at step k sits on the ground at longitude 130 + 0.01 k deg: the IPP names k."""
    t = np.arange(float(T))
    x = np.full((1, 1, T, 6), np.nan)
    x[0, 0, :, :3] = _ground(130.0 + 0.01 * np.arange(T))
    x[0, 0, :, 3:] = 0.0
    conf = np.zeros((1, 1, T), bool)
    conf[0, 0, 12:] = True  # confirmed from step 12
    hist = TrackHistory(t=t, x=x, P=np.broadcast_to(np.eye(6), (1, 1, T, 6, 6)).copy(), confirmed=conf,
                        object=np.zeros((1, 1, T), np.int32), sensors=np.ones((1, 1, T), np.uint64))
    truth = SimpleNamespace(t=t, impact_time=np.array([[90.0]]), object_kind=("rv",))
    return truth, hist


def test_ground_distance_matches_pyproj():
    a = _ground(np.array([130.0, 131.5]))
    b = _ground(np.array([132.0, 131.5]))
    _, _, d = Geod(ellps="WGS84").inv([130.0, 131.5], [40.0, 40.0], [132.0, 131.5], [40.0, 40.0])
    np.testing.assert_allclose(ground_distance_km(a, b), np.asarray(d) / 1e3, rtol=1e-9, atol=1e-9)
    assert np.isnan(ground_distance_km(a[:1], np.full((1, 3), np.nan)))[0]


def test_reported_points_take_the_report_that_reached_the_receiver():
    truth, hist = _sender()
    # warning 20 s before impact at 90 s: t_w = 70 s; reports every 5 s arriving 3 s late: the one of 65 s
    ipp, launch = reported_points(truth, hist, latency=3.0, interval=5.0, o=0, time_to_go=20.0)
    np.testing.assert_allclose(ipp[0], _ground(130.0 + 0.01 * 65), atol=1e-3)
    # launch point from the first report of a confirmed track: the report of 15 s (confirmed from 12 s)
    np.testing.assert_allclose(launch[0], _ground(130.0 + 0.01 * 15), atol=1e-3)
    # every step reported (interval 0), 4 s late: the estimate of 66 s, and the launch point from 12 s
    ipp, launch = reported_points(truth, hist, latency=4.0, interval=0.0, o=0, time_to_go=20.0)
    np.testing.assert_allclose(ipp[0], _ground(130.0 + 0.01 * 66), atol=1e-3)
    np.testing.assert_allclose(launch[0], _ground(130.0 + 0.01 * 12), atol=1e-3)
    # a report that has not yet arrived by the warning time gives nothing
    ipp, launch = reported_points(truth, hist, latency=60.0, interval=5.0, o=0, time_to_go=20.0)
    assert np.isnan(ipp).all() and np.isnan(launch).all()


def test_pairwise_spread_is_the_largest_distance_and_flags_disagreement():
    jp = _ground(np.array([131.0, 131.0, 131.0]))
    kr = _ground(np.array([131.0, 131.2, np.nan]))
    us = _ground(np.array([np.nan, 135.0, np.nan]))
    spread = pairwise_spread_km({"US": us, "JP": jp, "KR": kr})
    _, _, d = Geod(ellps="WGS84").inv([131.0, 131.0], [40.0, 40.0], [131.0, 135.0], [40.0, 40.0])
    np.testing.assert_allclose(spread[:2], np.asarray(d) / 1e3 * [1, 1], atol=1e-6)  # 0 km; US-JP 341 km
    assert np.isnan(spread[2])  # only Japan had an IPP: nothing to compare


def test_report_section_flags_disagreement_and_compares_sharing():
    from sim.report import shared_estimates_section

    def s(median):
        return {"median": median, "p10": median, "p90": median, "n": 4, "missing": 0}

    doc = {"results": [
        {"policy": "trilateral", "nation": "JP", "target": "T", "pos_rmse_m": s(600.0), "anees": s(3.1)},
        {"policy": "trilateral-tracks", "nation": "JP", "target": "T", "pos_rmse_m": s(800.0), "anees": s(2.4)},
    ]}
    shared = [{"policy": "trilateral-tracks", "nation": "JP", "sender": "KR", "target": "T",
               "shared_ipp_error_km": s(12.5), "shared_ipp_vs_own_km": s(3.25), "shared_launch_error_km": s(1.0)}]
    spread = [{"policy": "isolated", "target": "T", "spread_km": s(480.0), "disagree": 3, "compared": 4},
              {"policy": "trilateral-tracks", "target": "T", "spread_km": s(4.0), "disagree": 0, "compared": 4}]
    text = shared_estimates_section(doc, shared, spread, 50.0, 120.0)
    assert "| trilateral-tracks | T | JP | KR | 12.5 [12.5-12.5] | 3.2 [3.2-3.2] | 1.0 [1.0-1.0] |" in text
    assert "- isolated, T: **disagreement** in 3 of 4 trials with two or more IPPs (median largest spread 480.0 km)." in text
    assert ("- trilateral-tracks, T: no disagreement: the IPPs were within 50 km of each other in all 4 trials "
            "with two or more (median largest spread 4.0 km).") in text
    assert "position RMSE 600 m against 800 m (25 % smaller with measurements)" in text
    # firm track and warning in one sign convention: what measurement sharing gains (new-user trial)
    doc["results"][0].update(firm_track_time_s=s(41.0), warning_time_s=s(2930.0))
    doc["results"][1].update(firm_track_time_s=s(39.0), warning_time_s=s(2915.0))
    text = shared_estimates_section(doc, shared, spread, 50.0, 120.0)
    assert ("firm track 41 s against 39 s after launch (measurements 2 s later); warning 2930 s against 2915 s "
            "to go (measurements 15 s more)") in text
    # the in-memory summaries count missing trials as n_missing: the table shows them
    shared[0]["shared_ipp_error_km"] = {"median": 20.9, "p10": 20.9, "p90": 20.9, "n": 2, "n_missing": 1}
    assert "| 20.9 [20.9-20.9] [1 none] |" in shared_estimates_section(doc, shared, spread, 50.0, 120.0)
    assert shared_estimates_section({"results": []}, [], [], 50.0, 120.0) == ""


def test_disagreement_section_with_nothing_to_compare_says_so():
    """No trial with two IPPs: one plain line, not 'no disagreement in 0 of 0 trials' (new-user trial)."""
    from sim.report import shared_estimates_section

    doc = {"results": []}
    spread = [{"policy": "isolated", "target": "T", "spread_km": {"median": None, "p10": None, "p90": None,
                                                                  "n": 2, "missing": 2},
               "disagree": 0, "compared": 0}]
    text = shared_estimates_section(doc, [], spread, 50.0, 120.0)
    assert ("- isolated, T: nothing to compare (in no trial did two nations have an IPP 120 s before impact)."
            in text)
    assert "0 of 0" not in text
