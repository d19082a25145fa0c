"""fuse_track_histories: delayed, sampled remote tracks associated and fused into a nation's picture."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.models import ballistic_transition, process_noise
from fusion.track_fusion import delayed_reports, fuse_track_histories
from fusion.tracker import TrackHistory


# LOCAL LINEAR PREDICTION, TESTS ONLY: a constant-velocity model, so that delayed reports of
# straight-line truth have closed-form expected values. The pipeline's default is the
# ECEF ballistic model of fusion.models (exercised in test_default_ballistic_prediction).
def cv_transition(x, dt):
    dt = np.asarray(dt, dtype=float)
    F = np.broadcast_to(np.eye(6), dt.shape + (6, 6)).copy()
    for i in range(3):
        F[..., i, i + 3] = dt
    return (F @ x[..., None])[..., 0], F


Q_PSD = 2.0  # m^2/s^3
T_GRID = np.arange(0.0, 21.0)
P_LOCAL = np.diag([400.0**2] * 3 + [30.0**2] * 3)
P_REMOTE = np.diag([250.0**2] * 3 + [20.0**2] * 3)


def _truth(obj, t):
    """Straight-line notional target: object o starts 100 km apart from the others."""
    p0 = np.array([6.5e6 + 1e5 * obj, 1e5 * obj, 3.0e6])
    v = np.array([-1000.0, 2000.0 + 100 * obj, 500.0])
    return np.concatenate([p0[None] + t[:, None] * v[None], np.broadcast_to(v, (t.size, 3))], axis=1)


def _history(objects, P, n_trials=1, sensor_bits=None, alive=None, confirmed_from=0):
    """Perfect-estimate tracks of the given truth objects (one track slot each)."""
    T = T_GRID.size
    k = len(objects)
    x = np.full((n_trials, k, T, 6), np.nan)
    Pm = np.full((n_trials, k, T, 6, 6), np.nan)
    conf = np.zeros((n_trials, k, T), bool)
    obj = np.full((n_trials, k, T), -1, np.int32)
    sens = np.zeros((n_trials, k, T), np.uint64)
    for j, o in enumerate(objects):
        live = np.ones(T, bool) if alive is None else alive[j]
        x[:, j, live] = _truth(o, T_GRID)[live]
        Pm[:, j, live] = P
        conf[:, j, live] = T_GRID[live] >= confirmed_from
        obj[:, j, live] = o
        sens[:, j, live] = np.uint64(sensor_bits[j] if sensor_bits else 1 << j)
    return TrackHistory(t=T_GRID, x=x, P=Pm, confirmed=conf, object=obj, sensors=sens)


def _fuse(local, remote, rule="covariance-intersection"):
    return fuse_track_histories(local, remote, rule, 0.9997, q=Q_PSD, transition=cv_transition,
                                noise=process_noise)


def test_delayed_report_timing_and_prediction():
    L, I = 2.0, 5.0
    remote = _history([1], P_REMOTE)
    x, P, obj, sens = delayed_reports(remote, T_GRID, L, I, Q_PSD, cv_transition, process_noise)
    for i, t in enumerate(T_GRID):
        s = np.floor((t - L) / I) * I  # time of the latest report that has arrived by t
        if s < 0:
            assert np.all(np.isnan(x[0, 0, i])) and obj[0, 0, i] == -1
            continue
        dt = t - s
        F = cv_transition(np.zeros(6), dt)[1]
        np.testing.assert_allclose(x[0, 0, i], _truth(1, np.array([t]))[0], rtol=1e-12)
        np.testing.assert_allclose(P[0, 0, i], F @ P_REMOTE @ F.T + process_noise(dt, Q_PSD), rtol=1e-12)
        assert obj[0, 0, i] == 1 and sens[0, 0, i] == 1
    # first arrival: report of t=0 at t=L; nothing earlier
    assert np.isnan(x[0, 0, 1]).all() and np.isfinite(x[0, 0, 2]).all()


def test_zero_interval_is_pure_delay_and_tentative_tracks_not_reported():
    remote = _history([0], P_REMOTE, confirmed_from=6.0)
    x, P, _, _ = delayed_reports(remote, T_GRID, 3.0, 0.0, Q_PSD, cv_transition, process_noise)
    live = np.isfinite(x[0, 0, :, 0])
    # the report of time t-3 is shown at t, and only once the sender has confirmed it (t-3 >= 6)
    np.testing.assert_array_equal(live, T_GRID >= 9.0)
    F = cv_transition(np.zeros(6), 3.0)[1]
    np.testing.assert_allclose(P[0, 0, 12], F @ P_REMOTE @ F.T + process_noise(3.0, Q_PSD))


def test_unseen_threat_becomes_own_track_and_seen_one_is_fused():
    local = _history([0], P_LOCAL, sensor_bits=[0b001])
    remote = _history([0, 1], P_REMOTE, sensor_bits=[0b010, 0b100])
    out = _fuse(local, [(remote, 2.0, 5.0)])
    assert out.x.shape == (1, 3, T_GRID.size, 6)
    arrived = T_GRID >= 2.0
    # slot 0: the local track, fused with the remote report of the same object once it arrives
    np.testing.assert_allclose(out.x[0, 0], _truth(0, T_GRID), rtol=1e-9)
    tr = np.trace(out.P[0, 0], axis1=-2, axis2=-1)
    assert np.all(tr[arrived] < np.trace(P_LOCAL)) and np.all(tr[~arrived] == np.trace(P_LOCAL))
    np.testing.assert_array_equal(out.sensors[0, 0], np.where(arrived, 0b011, 0b001))
    assert np.all(out.object[0, 0] == 0) and out.confirmed[0, 0].all()
    # slot 1: the remote report of object 0 was absorbed into slot 0, never stands alone
    assert np.isnan(out.x[0, 1]).all() and not out.confirmed[0, 1].any()
    # slot 2: object 1, which the nation cannot see, known from the shared report
    np.testing.assert_array_equal(np.isfinite(out.x[0, 2, :, 0]), arrived)
    np.testing.assert_allclose(out.x[0, 2, arrived], _truth(1, T_GRID[arrived]), rtol=1e-12)
    np.testing.assert_array_equal(out.confirmed[0, 2], arrived)
    np.testing.assert_array_equal(out.object[0, 2], np.where(arrived, 1, -1))
    np.testing.assert_array_equal(out.sensors[0, 2], np.where(arrived, 0b100, 0))
    # the local input is left untouched
    assert np.isnan(local.x).sum() == 0


@pytest.mark.parametrize("rule", ["covariance-intersection", "naive", "best-track"])
def test_fusion_rule_applied_per_pair(rule):
    local = _history([0], P_LOCAL, sensor_bits=[0b001])
    remote = _history([0], P_REMOTE, sensor_bits=[0b010])  # independent data: no sensor in common
    out = _fuse(local, [(remote, 0.0, 0.0)], rule)
    Pl, Pr = P_LOCAL, P_REMOTE
    if rule == "naive":
        expect = np.linalg.inv(np.linalg.inv(Pl) + np.linalg.inv(Pr))
    elif rule == "best-track":
        expect = Pr
    else:  # P_REMOTE < P_LOCAL (nested ellipsoids): CI can do no better than the smaller one
        expect = Pr
    np.testing.assert_allclose(out.P[0, 0, 5], expect, rtol=1e-9)
    assert np.trace(out.P[0, 0, 5]) <= np.trace(Pr) * (1 + 1e-12)


def test_two_senders_of_an_unseen_threat_make_one_track():
    local = _history([0], P_LOCAL, sensor_bits=[0b001])
    us = _history([2], P_REMOTE, sensor_bits=[0b010])
    kr = _history([2], P_REMOTE * 1.5, sensor_bits=[0b100])
    out = _fuse(local, [(us, 2.0, 5.0), (kr, 4.0, 5.0)])
    assert out.x.shape[1] == 3
    both = T_GRID >= 4.0
    # object 2 lives in the US report's slot, fused with the KR report once that arrives
    np.testing.assert_array_equal(out.sensors[0, 1], np.where(both, 0b110, np.where(T_GRID >= 2, 0b010, 0)))
    assert np.isnan(out.x[0, 2]).all()
    np.testing.assert_allclose(out.x[0, 1, both], _truth(2, T_GRID[both]), rtol=1e-9)


def test_gnn_resolves_close_targets():
    # two local tracks and two reports of two targets 300 m apart (inside each other's gate);
    # noise-free reports must pair by identity, not cross over
    local = _history([0, 1], P_LOCAL, sensor_bits=[0b0001, 0b0010])
    off = np.zeros(6)
    off[0] = 300.0
    local.x[0, 1] = local.x[0, 0] + off
    remote = _history([0, 1], P_LOCAL, sensor_bits=[0b0100, 0b1000])
    remote.x[0, 1] = remote.x[0, 0] + off
    remote.x[0, 0, :, 1] += 150.0  # bias that would make a greedy choice of (local 1, remote 0) close
    out = _fuse(local, [(remote, 0.0, 0.0)], "naive")
    np.testing.assert_array_equal(out.sensors[0, :2, 3], [0b0101, 0b1010])
    assert np.isnan(out.x[0, 2:]).all()  # both reports absorbed
    # naive fusion of local 0 with remote 0 moves the estimate by half the bias only in y
    np.testing.assert_allclose(out.x[0, 0, 3, 1] - local.x[0, 0, 3, 1], 75.0, rtol=1e-9)
    np.testing.assert_allclose(out.x[0, 1, 3], local.x[0, 1, 3], rtol=1e-12)


def test_far_report_not_associated():
    local = _history([0], P_LOCAL)
    remote = _history([0], P_REMOTE)
    remote.x[..., 0] += 20e3  # 20 km off: 40 sigma, far outside the 0.9997 gate
    out = _fuse(local, [(remote, 0.0, 0.0)])
    np.testing.assert_array_equal(out.P[0, 0], local.P[0, 0])
    assert np.isfinite(out.x[0, 1]).all()


def test_batch_of_trials_equals_trials_one_by_one():
    rng = np.random.default_rng(4)
    n = 4
    local = _history([0, 1], P_LOCAL, n_trials=n)
    remote = _history([1, 2, 0], P_REMOTE, n_trials=n)
    # per-trial noise and gaps so trials differ
    local.x[...] += rng.normal(0, 200.0, local.x.shape) * np.r_[1, 1, 1, 0.05, 0.05, 0.05]
    remote.x[...] += rng.normal(0, 150.0, remote.x.shape) * np.r_[1, 1, 1, 0.05, 0.05, 0.05]
    gaps = rng.random(remote.confirmed.shape) < 0.2
    remote.confirmed[gaps] = False
    out = _fuse(local, [(remote, 1.0, 3.0)], "naive")
    for k in range(n):
        def one(h):
            return TrackHistory(t=h.t, x=h.x[k:k + 1], P=h.P[k:k + 1], confirmed=h.confirmed[k:k + 1],
                                object=h.object[k:k + 1], sensors=h.sensors[k:k + 1])
        ok = _fuse(one(local), [(one(remote), 1.0, 3.0)], "naive")
        np.testing.assert_array_equal(ok.x[0], out.x[k])
        np.testing.assert_array_equal(ok.P[0], out.P[k])
        np.testing.assert_array_equal(ok.sensors[0], out.sensors[k])


def test_default_ballistic_prediction():
    # a midcourse state 800 km up over the Sea of Japan (notional), reported 4 s late
    r = np.array([-3.3e6, 3.6e6, 4.6e6])
    r *= (6.371e6 + 8.0e5) / np.linalg.norm(r)
    v = np.array([1500.0, -2500.0, 1200.0])
    T = T_GRID.size
    x = np.broadcast_to(np.r_[r, v], (1, 1, T, 6)).copy()
    hist = TrackHistory(t=T_GRID, x=x, P=np.broadcast_to(P_REMOTE, (1, 1, T, 6, 6)).copy(),
                        confirmed=np.ones((1, 1, T), bool), object=np.zeros((1, 1, T), np.int32),
                        sensors=np.ones((1, 1, T), np.uint64))
    xr, Pr, _, _ = delayed_reports(hist, T_GRID, 4.0, 0.0, Q_PSD)
    x_ref, F = ballistic_transition(np.r_[r, v], 4.0)
    np.testing.assert_allclose(xr[0, 0, 10], x_ref, rtol=1e-12)
    np.testing.assert_allclose(Pr[0, 0, 10], F @ P_REMOTE @ F.T + process_noise(4.0, Q_PSD), rtol=1e-10)
    # gravity pulls the predicted position ~ g dt^2 / 2 away from straight-line motion
    sag = np.linalg.norm(xr[0, 0, 10, :3] - (r + 4.0 * v))
    assert 40.0 < sag < 120.0


def test_bad_input():
    from sim.errors import InputError

    local = _history([0], P_LOCAL)
    with pytest.raises(InputError, match="sharing.track_fusion"):
        _fuse(local, [], "average")
    with pytest.raises(InputError, match="gate_probability"):
        fuse_track_histories(local, [], "naive", 1.5)
    other = TrackHistory(t=T_GRID[:-1], x=local.x[:, :, :-1], P=local.P[:, :, :-1],
                         confirmed=local.confirmed[:, :, :-1], object=local.object[:, :, :-1],
                         sensors=local.sensors[:, :, :-1])
    with pytest.raises(ValueError, match="time grid"):
        _fuse(local, [(other, 0.0, 0.0)])
    # no remote: the local picture unchanged
    out = _fuse(local, [])
    np.testing.assert_array_equal(out.x, local.x)


def test_report_with_the_receivers_own_data_is_not_fused_as_independent():
    """Data incest: a hub's track built partly from the receiver's radar (bit 0) is fused by CI, not naively."""
    from fusion.track_fusion import covariance_intersection

    P_L = np.diag([300.0**2, 500.0**2, 400.0**2, 20.0**2, 40.0**2, 30.0**2])
    P_R = np.diag([500.0**2, 250.0**2, 450.0**2, 35.0**2, 25.0**2, 30.0**2])  # not nested: CI != either input
    local = _history([0], P_L, sensor_bits=[0b001])
    own_data = _history([0], P_R, sensor_bits=[0b011])  # the hub tracked with the receiver's radar too
    independent = _history([0], P_R, sensor_bits=[0b010])
    incest = _fuse(local, [(own_data, 0.0, 0.0)], "naive")
    indep = _fuse(local, [(independent, 0.0, 0.0)], "naive")
    _, P_ci, _ = covariance_intersection(_truth(0, T_GRID)[5], P_L, _truth(0, T_GRID)[5], P_R)
    np.testing.assert_allclose(incest.P[0, 0, 5], P_ci, rtol=1e-9)
    np.testing.assert_allclose(indep.P[0, 0, 5], np.linalg.inv(np.linalg.inv(P_L) + np.linalg.inv(P_R)), rtol=1e-9)
    assert np.trace(incest.P[0, 0, 5]) > 1.2 * np.trace(indep.P[0, 0, 5])  # the CI bound is the wider one
    np.testing.assert_array_equal(incest.sensors[0, 0, 5], 0b011)
