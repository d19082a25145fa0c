"""Out-of-sequence measurements: replay from snapshots equals time-ordered processing of the data arrived."""

import numpy as np
import pytest

from fusion.tracker import MultiTargetTracker, run_tracker
from sim.config import TrackerConfig
from test_tracker_scenarios import make_detections, midcourse_pair, sites, take

TRIALS = 4


@pytest.fixture(scope="module")
def scene():
    t = np.arange(0.0, 121.0)
    truth = midcourse_pair(t)
    # two radars: sensor 0 scans every 2 s, sensor 1 every 3 s (offset), both with false alarms
    d = make_detections(truth, t, [np.arange(0, 121, 2), np.arange(1, 121, 3)], trials=TRIALS, seed=5,
                        pd=0.85, fa_rate=0.7)
    se, Re = sites(2)
    return t, d, se, Re, TrackerConfig(max_tracks=10)


def _fields(h, i=None):
    sl = (slice(None), slice(None)) if i is None else (slice(None), slice(None), i)
    return h.x[sl], h.P[sl], h.confirmed[sl], h.object[sl], h.sensors[sl]


def _assert_same(a, b):
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_zero_latency_equals_one_tracker_fed_in_time_order(scene):
    t, d, se, Re, cfg = scene
    h = run_tracker(d, d.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    assert h.stats["replays"] == 0
    # reference: the group step called directly, groups in (time, sensor) order, state read at each grid time
    trk = MultiTargetTracker(cfg, TRIALS, se, Re, [2.0, 3.0])
    x = np.full(h.x.shape, np.nan)
    conf = np.zeros(h.confirmed.shape, dtype=bool)
    keys = sorted(set(zip(d.time.tolist(), d.sensor.tolist())))
    k = 0
    for i, ti in enumerate(t):
        while k < len(keys) and keys[k][0] <= ti:
            m = (d.time == keys[k][0]) & (d.sensor == keys[k][1])
            trk.process_group(keys[k][0], keys[k][1], d.trial[m], d.z[m], d.R[m], d.object[m])
            k += 1
        b, j, xe, _, ce = trk.estimate(ti)
        x[b, j, i], conf[b, j, i] = xe, ce
    np.testing.assert_array_equal(h.x, x)
    np.testing.assert_array_equal(h.confirmed, conf)
    assert conf.any()


@pytest.mark.parametrize("latency", [(0.0, 3.5), (1.2, 7.0)])
def test_late_data_equals_time_ordered_run_on_data_arrived(scene, latency):
    t, d, se, Re, cfg = scene
    rng = np.random.default_rng(2)
    # per-sensor latency plus a per-detection jitter, so groups also arrive in pieces
    arrival = d.time + np.asarray(latency)[d.sensor] + rng.uniform(0.0, 1.5, d.time.size)
    h = run_tracker(d, arrival, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    assert h.stats["replays"] > 10 and h.stats["late_detections"] > 0
    for i in (5, 17, 40, 41, 77, 120):
        arrived = arrival <= t[i]
        sub = take(d, arrived)
        ref = run_tracker(sub, sub.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
        _assert_same(_fields(h, i), _fields(ref, i))
    # and the delay matters: the estimates differ from the zero-latency run somewhere
    h0 = run_tracker(d, d.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    assert not np.array_equal(np.isnan(h.x), np.isnan(h0.x)) or not np.allclose(h.x, h0.x, equal_nan=True)


def test_final_state_independent_of_arrival_order(scene):
    """Once everything has arrived, the counters equal those of the zero-latency run."""
    t, d, se, Re, cfg = scene
    arrival = d.time + np.where(d.sensor == 1, 4.0, 0.0)
    t_long = np.arange(0.0, 131.0)
    h = run_tracker(d, arrival, se, Re, t_long, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    h0 = run_tracker(d, d.time, se, Re, t_long, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    _assert_same(_fields(h, 130), _fields(h0, 130))
    for k in ("initiated", "confirmed", "updates", "deleted_missed", "deleted_unconfirmed"):
        np.testing.assert_array_equal(h.stats[k], h0.stats[k])


def test_data_arriving_after_the_grid_is_ignored(scene):
    t, d, se, Re, cfg = scene
    arrival = d.time.copy()
    arrival[d.time > 60] = np.inf
    h = run_tracker(d, arrival, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    sub = take(d, d.time <= 60)
    ref = run_tracker(sub, sub.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    _assert_same(_fields(h), _fields(ref))
