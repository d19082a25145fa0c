"""Scenario builders shared by the tracker, association and OOSM tests (and sanity tests of them).

Truth: drag-free ballistic arcs integrated with ``scipy.integrate.solve_ivp``
(DOP853) on :func:`sim.gravity.ballistic_acceleration` (independent of the
filter's RK4 propagator). Detections: :func:`sensors.geometry.measure` plus
Gaussian noise, optional Poisson false alarms uniform in a box of AER around
the targets. Nothing here depends on ``sim/truth.py`` or ``sensors/detections.py``.
"""

from __future__ import annotations


import numpy as np
from scipy.integrate import solve_ivp

from sensors.detections import Detections
from sensors.geometry import measure
from sim.earth import enu_rotation, geodetic_to_ecef
from sim.gravity import ballistic_acceleration


# The tracker reads the columnar detection record of the sensors package.
Dets = Detections


# Two notional sites (lat, lon deg, alt m): a radar on the Sea of Japan coast and one in Korea.
SITES_DEG = ((35.7, 135.2, 100.0), (36.0, 128.3, 300.0))


def sites(n=2):
    """``site_ecef (n, 3)``, ``R_enu (n, 3, 3)`` of the first ``n`` notional sites."""
    lat = np.radians([s[0] for s in SITES_DEG[:n]])
    lon = np.radians([s[1] for s in SITES_DEG[:n]])
    alt = np.array([s[2] for s in SITES_DEG[:n]])
    return geodetic_to_ecef(lat, lon, alt), enu_rotation(lat, lon)


def _rhs(_, y):
    return np.concatenate([y[3:], ballistic_acceleration(y[:3], y[3:])])


def ballistic_arc(lat_deg, lon_deg, alt_m, v_enu, t):
    """ECEF states ``(T, 6)`` at times ``t`` (from t[0]) of a drag-free arc (solve_ivp, DOP853, rtol 1e-11)."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    r0 = geodetic_to_ecef(lat, lon, alt_m)
    v0 = enu_rotation(lat, lon).T @ np.asarray(v_enu, dtype=float)
    sol = solve_ivp(_rhs, (t[0], t[-1]), np.concatenate([r0, v0]), method="DOP853", t_eval=t,
                    rtol=1e-11, atol=1e-6)
    return sol.y.T.copy()


def midcourse_pair(t, separation_m=4000.0, relative_speed_mps=30.0):
    """Two objects (an RV and a spent stage) in midcourse over the Sea of Japan, ``(2, T, 6)``.

    The stage starts ``separation_m`` behind the RV along its velocity and
    ``relative_speed_mps`` slower.
    """
    v = np.array([2600.0, 600.0, 1500.0])  # m/s ENU at 300 km altitude, eastbound (notional IRBM midcourse)
    rv = ballistic_arc(38.5, 131.0, 300e3, v, t)
    u = rv[0, 3:] / np.linalg.norm(rv[0, 3:])
    x0 = rv[0].copy()
    x0[:3] -= separation_m * u
    x0[3:] -= relative_speed_mps * u
    sol = solve_ivp(_rhs, (t[0], t[-1]), x0, method="DOP853", t_eval=t, rtol=1e-11, atol=1e-6)
    return np.stack([rv, sol.y.T])


def make_detections(truth, t, sensor_times, trials, seed, pd=1.0, fa_rate=0.0, fa_box=(60e3, 0.03, 0.03),
                    sigma_range=25.0, sigma_angle=1.5e-3):
    """Detections of ``truth (objects, T, 6)`` (same truth in every trial) by the sites of :func:`sites`.

    Parameters
    ----------
    truth : ndarray, shape (objects, T, 6)
    t : ndarray, shape (T,)
    sensor_times : sequence of ndarray of grid indices
        Scan times (indices into ``t``) of each sensor.
    trials : int
    seed : int
    pd : float
        Detection probability per object and scan.
    fa_rate : float
        Poisson mean of false alarms per scan, uniform in ``fa_box`` = (range half-width m,
        azimuth half-width rad, elevation half-width rad) around object 0's true AER.

    Returns
    -------
    Dets sorted by (time, sensor, trial, object).
    """
    rng = np.random.default_rng(seed)
    site_ecef, R_enu = sites(len(sensor_times))
    cols = {k: [] for k in ("trial", "time", "sensor", "object", "z")}
    for s, idx in enumerate(sensor_times):
        for i in idx:
            for b in range(trials):
                for o in range(truth.shape[0]):
                    if rng.random() < pd:
                        z = measure(truth[o, i], site_ecef[s], R_enu[s])
                        z = z + rng.normal(size=3) * [sigma_range, sigma_angle, sigma_angle]
                        cols["trial"].append(b), cols["time"].append(t[i]), cols["sensor"].append(s)
                        cols["object"].append(o), cols["z"].append(z)
                nfa = rng.poisson(fa_rate)
                if nfa:
                    c = measure(truth[0, i], site_ecef[s], R_enu[s])
                    for _ in range(nfa):
                        z = c + rng.uniform(-1, 1, 3) * np.asarray(fa_box)
                        cols["trial"].append(b), cols["time"].append(t[i]), cols["sensor"].append(s)
                        cols["object"].append(-1), cols["z"].append(z)
    trial = np.asarray(cols["trial"], dtype=np.int64)
    time = np.asarray(cols["time"], dtype=float)
    sensor = np.asarray(cols["sensor"], dtype=np.int16)
    obj = np.asarray(cols["object"], dtype=np.int32)
    z = np.asarray(cols["z"], dtype=float).reshape(-1, 3)
    z[:, 1] = np.mod(z[:, 1], 2 * np.pi)
    order = np.lexsort((obj, trial, sensor, time))
    R = np.zeros((z.shape[0], 3, 3))
    R[:, 0, 0] = sigma_range**2
    R[:, 1, 1] = R[:, 2, 2] = sigma_angle**2
    return Dets(trial=trial[order], time=time[order], sensor=sensor[order], object=obj[order], z=z[order],
                R=R[order], snr=np.full(z.shape[0], 100.0))


def take(d, mask):
    """Subset of a Dets record."""
    return Dets(**{k: (getattr(d, k)[mask] if isinstance(getattr(d, k), np.ndarray) else getattr(d, k))
                   for k in d.__dataclass_fields__})


def test_arc_is_ballistic_and_visible():
    """The test arcs stay above 100 km and inside a few thousand km of the sites (scenario sanity)."""
    from sim.earth import altitude

    t = np.arange(0.0, 301.0)
    pair = midcourse_pair(t)
    alt = altitude(pair[0, :, :3])
    assert alt.min() > 100e3
    site_ecef, R_enu = sites(1)
    z = measure(pair[:, :, :], site_ecef[0], R_enu[0])
    assert np.all(z[..., 2] > 0.0)  # above the horizon of radar 0
    assert np.all(z[..., 0] < 2000e3)
    sep = np.linalg.norm(pair[0, :, :3] - pair[1, :, :3], axis=1)
    assert 3e3 < sep.min() and sep.max() < 15e3


def stepwise_reference(d, grid, site_ecef, R_enu, cfg, revisit, latency=None):
    """Reference run: the tracker's group step driven from Python in measurement-time order, no replay.

    For each trial, the groups of (measurement time, sensor) with ``time <= grid[i]``
    are processed in (time, sensor, record) order before the estimate is read at
    ``grid[i]`` (:func:`fusion.loop._group_step`, :func:`fusion.loop._estimate`):
    what :func:`fusion.tracker.run_tracker` must give when every detection
    arrives at its measurement time. ``latency`` sets the output clock's lag
    (its maximum). Returns ``(x, P, confirmed, object, sensors)`` shaped as a
    :class:`fusion.tracker.TrackHistory`'s arrays (trials ``0 .. d.trial.max()``).
    """
    from fusion import loop as L

    ip, fp = L._parameters(cfg)
    fp[L._P_LAG] = 0.0 if latency is None else float(np.max(latency))
    r = 2 if cfg.filter == "imm" else 1
    B, N, T = int(d.trial.max()) + 1, int(cfg.max_tracks), grid.size
    ox, oP, oc, oo, os_, oth, ocs = L.output_arrays(B, N, T)
    revisit = np.asarray(revisit, dtype=np.float64)
    det_model = np.zeros((site_ecef.shape[0], 3))  # no radar model: the fixed JPDA detection probability
    det_model[:, 1] = 0.5
    for b in range(B):  # reference: plain loops over trials and groups
        X, PP, MU = np.zeros((N, r, 6)), np.zeros((N, r, 6, 6)), np.zeros((N, r))
        TF, TI = np.zeros((N, L._NTF)), np.zeros((N, L._NTI), dtype=np.int64)
        TI[:, 3] = -1
        SENS, CNT = np.zeros(N, dtype=np.uint64), np.zeros(len(L.COUNTERS), dtype=np.int64)
        PL = np.zeros((N, max(int(cfg.confirm_m), 1), L._PL_W))
        claim = np.full(d.time.size, -1, dtype=np.int64)
        # no registration (registration = "none"): no bias blocks, empty bias state
        blk = np.full(site_ecef.shape[0], -1, dtype=np.int64)
        VB, BB, PB = np.zeros((N, 6, 0)), np.zeros(0), np.zeros((0, 0))
        mine = np.flatnonzero(d.trial == b)
        mine = mine[np.lexsort((mine, d.sensor[mine], d.time[mine]))]
        keys = sorted(set(zip(d.time[mine].tolist(), d.sensor[mine].tolist())))
        k = 0
        for i, ti in enumerate(grid):
            while k < len(keys) and keys[k][0] <= ti:
                m = mine[(d.time[mine] == keys[k][0]) & (d.sensor[mine] == keys[k][1])]
                s = int(keys[k][1])
                L._group_step(ip, fp, float(keys[k][0]), s, np.ascontiguousarray(site_ecef),
                              np.ascontiguousarray(R_enu), float(revisit[s]), np.ascontiguousarray(d.z[m]),
                              np.ascontiguousarray(d.R[m]), d.object[m].astype(np.int64), m.astype(np.int64),
                              np.asarray(d.snr[m], dtype=np.float64), det_model, X, PP, MU, TF, TI, SENS, CNT, PL,
                              claim, blk, VB, BB, PB)
                k += 1
            L._estimate(ip, fp, float(ti), i, X, PP, MU, TF, TI, SENS, ox[b], oP[b], oc[b], oo[b], os_[b], oth[b],
                        ocs[b])
    return ox, oP, oc, oo.astype(np.int32), os_
