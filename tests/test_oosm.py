"""Out-of-sequence measurements: replay from snapshots equals time-ordered processing of the data arrived."""

import dataclasses
import numpy as np
import pytest

from fusion.tracker import run_tracker
from sim.config import TrackerConfig
from test_tracker_scenarios import make_detections, midcourse_pair, sites, stepwise_reference, take

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


def _assert_same_up_to_ids(a, b):
    """The same tracks at one grid time, whatever slot (id) each is in: a replay keeps a track's id from
    before the late data (fusion.loop._keep_identity), a run fed in time order numbers tracks afresh."""
    for trial in range(a[0].shape[0]):
        live = [np.flatnonzero(np.isfinite(f[0][trial, :, 0])) for f in (a, b)]
        assert live[0].size == live[1].size, trial
        order = [idx[np.lexsort(f[0][trial, idx].T[::-1])] for idx, f in zip(live, (a, b))]
        for u, v in zip(a, b):
            if u.dtype.kind == "f":  # slot order sets the order of sums in JPDA clusters: rounding apart
                np.testing.assert_allclose(u[trial][order[0]], v[trial][order[1]], rtol=1e-9, atol=0)
            else:
                np.testing.assert_array_equal(u[trial][order[0]], v[trial][order[1]])


def test_zero_latency_equals_one_tracker_fed_in_time_order(scene):
    t, d, se, Re, cfg = scene
    h = run_tracker(d, d.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    assert h.stats["replays"] == 0
    # reference: the group step called directly, groups in (time, sensor) order, state read at each grid time
    ref = stepwise_reference(d, t, se, Re, cfg, [2.0, 3.0])
    _assert_same(_fields(h), ref)
    assert ref[2].any()


@pytest.mark.parametrize("latency", [(0.0, 3.5), (1.2, 7.0)])
def test_late_data_equals_time_ordered_run_on_data_arrived(scene, latency):
    t, d, se, Re, cfg = scene
    rng = np.random.default_rng(2)
    # per-sensor latency plus a per-detection jitter, so groups also arrive in pieces
    arrival = d.time + np.asarray(latency)[d.sensor] + rng.uniform(0.0, 1.5, d.time.size)
    h = run_tracker(d, arrival, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    assert h.stats["replays"] > 10 and h.stats["late_detections"] > 0
    # the output's deletion rule runs each sensor's clock its latency behind: the reference shares those clocks
    lag = [np.min((arrival - d.time)[d.sensor == s]) for s in (0, 1)]
    for i in (5, 17, 40, 41, 77, 120):
        arrived = arrival <= t[i]
        sub = take(d, arrived)
        ref = run_tracker(sub, sub.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0], latency=lag)
        _assert_same_up_to_ids(_fields(h, i), _fields(ref, i))
    # and the delay matters: the estimates differ from the zero-latency run somewhere
    h0 = run_tracker(d, d.time, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    assert not np.array_equal(np.isnan(h.x), np.isnan(h0.x)) or not np.allclose(h.x, h0.x, equal_nan=True)


def test_final_state_independent_of_arrival_order(scene):
    """Once everything has arrived, the counters equal those of the zero-latency run."""
    t, d, se, Re, cfg = scene
    arrival = d.time + np.where(d.sensor == 1, 4.0, 0.0)
    t_long = np.arange(0.0, 131.0)
    h = run_tracker(d, arrival, se, Re, t_long, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    # same output clocks (each sensor's latency behind the grid time); the processing had no delay
    h0 = run_tracker(d, d.time, se, Re, t_long, np.arange(TRIALS), cfg, revisit=[2.0, 3.0], latency=[0.0, 4.0])
    _assert_same_up_to_ids(_fields(h, 130), _fields(h0, 130))
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


def test_output_hides_a_lost_track_only_once_every_sensor_has_reported_the_missed_scans(scene):
    """Closed form of the output rule: shown while ``t - L - t_last <= D r_last``, L the longest latency.

    One track, fed by sensor 0 (revisit 2 s) up to 20 s and then never again. The
    nation receives sensor 1 (revisit 3 s) 4 s late, so until ``t_last + D r + 4`` a
    report of sensor 1 measured in time could still reach it.
    """
    t, d, se, Re, cfg = scene
    m = (d.trial == 0) & (d.object == 0) & (d.sensor == 0) & (d.time <= 20.0)
    t_last = float(d.time[m].max())
    deadline = t_last + cfg.delete_after_missed * 2.0  # D r_last
    sub = take(d, m)
    for deletion in ("missed", "quality"):
        cfg_d = dataclasses.replace(cfg, deletion=deletion)
        for latency, lag in ((None, 0.0), ([0.0, 4.0], 4.0), ([1.0, 0.5], 1.0)):
            checks = ((-1.0, True), (-1e-6, True), (1e-3, False), (5.0, False))
            grid = np.unique(np.r_[sub.time, [deadline + lag + dt for dt, _ in checks]])
            h = run_tracker(sub, sub.time, se, Re, grid, np.array([0]), cfg_d, revisit=[2.0, 3.0],
                            latency=[0.0, 0.0] if latency is None else latency)
            last = np.searchsorted(grid, t_last)
            assert h.confirmed[0, :, last].sum() == 1 and h.stats["updates"][0] == sub.time.size - 1
            for dt, updated in checks:
                i = np.searchsorted(grid, deadline + lag + dt)
                shown = h.confirmed[0, :, i] & np.isfinite(h.x[0, :, i, 0])
                if deletion == "missed":  # past the deadline the track is gone
                    assert bool(shown.sum() == 1) == updated, (latency, dt)
                else:  # it stays, and is coasting from the same instant on
                    assert shown.sum() == 1 and bool(h.coasting[0, shown, i][0]) == (not updated), (latency, dt)


@pytest.mark.parametrize("latency", [(0.0, 4.0), (3.0, 6.0), (5.0, 8.0)])
def test_late_sensor_does_not_make_a_held_track_blink_in_the_output(scene, latency):
    """A confirmed track shown, hidden for 1-3 grid steps, then shown again (no re-initiation can
    confirm that fast) is a blink. Judged on the grid time instead of the latency clock, the rule
    blinks tracks out after missed scans whose late reports are still on their way."""
    t, d, se, Re, cfg = scene
    d = make_detections(midcourse_pair(t), t, [np.arange(0, 121, 2), np.arange(1, 121, 3)], trials=TRIALS,
                        seed=5, pd=0.3, fa_rate=0.7)
    arrival = d.time + np.asarray(latency)[d.sensor]

    def blinks(h):
        shown, c = np.isfinite(h.x[..., 0]), h.confirmed
        return sum(int(np.sum(c[..., i - 1] & ~shown[..., i:i + k].any(-1) & c[..., i + k]))
                   for k in (1, 2, 3) for i in range(1, t.size - k))

    cfg = dataclasses.replace(cfg, deletion="missed")  # the missed-scan rule is the one that can blink
    h = run_tracker(d, arrival, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0])
    h_grid_clock = run_tracker(d, arrival, se, Re, t, np.arange(TRIALS), cfg, revisit=[2.0, 3.0], latency=[0.0, 0.0])
    assert blinks(h_grid_clock) >= 4  # the defect this guards against (measured: 5-14)
    assert blinks(h) == 0
