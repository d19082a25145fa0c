"""Detections of all radars over all trials and scan times, vectorized.

:func:`generate_detections` turns a :class:`sim.truth.Truth` and a list of
:class:`~sensors.radar.Radar` into one columnar, time-sorted
:class:`Detections` record (docs/ARCHITECTURE.md). The work is done per radar
over the whole (trials, objects, scan times) block with numpy; the only loop
over trials draws each trial's random numbers from its own generator
(:func:`sim.rng.trial_generators`, stream ``"sensors"``), so trial k gets the
same detections in any batch.

Per trial, the generator draws, in this order: the registration biases of every
radar (radars x 3 standard normals), one uniform per candidate (target in
coverage at a scan time; detection when below Pd), four standard normals per
detection (range, azimuth, elevation, range rate noise), the false-alarm count
of each radar over the run (Poisson with mean ``false_alarms_per_scan`` times
scans; splitting a Poisson process gives independent Poisson counts per scan),
six uniforms and one exponential per false alarm. A radar with a site (navigation)
error, ``bias_site_sigma`` > 0, measures from its true site, offset from the nominal
one by two standard normals (east, north) per radar times the sigma, drawn from the
trial's own ``"site"`` stream (:func:`registration_biases`), so the sensor stream
above is the same with or without site errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sensors.geometry import TWO_PI, enu_to_rae
from sensors.radar import Radar, default_rcs, measurement_sigmas
from sim.rng import trial_generators

FALSE_ALARM_MAX_RANGE_RATE = 7500.0  # m/s, span of Doppler filters for ballistic targets (estimate)


@dataclass(frozen=True)
class Detections:
    """Columnar detection record, sorted by (time, sensor, trial, object).

    Attributes
    ----------
    trial : ndarray, shape (K,), int64
        Global trial index.
    time : ndarray, shape (K,), float64
        Measurement time, s (a grid time of ``Truth.t``); the report reaches the
        nation ``Radar.latency`` later.
    sensor : ndarray, shape (K,), int16
        Index into the radar list given to :func:`generate_detections`.
    object : ndarray, shape (K,), int32
        Truth object index, -1 for a false alarm.
    z : ndarray, shape (K, 3)
        ``[range m, azimuth rad in [0, 2pi), elevation rad]``, with noise and registration bias.
    R : ndarray, shape (K, 3, 3)
        Measurement noise covariance (diagonal; the registration bias is not in it).
    snr : ndarray, shape (K,)
        Linear SNR the radar reports (mean SNR of the target; estimated SNR of a false alarm).
    range_rate : ndarray, shape (K,) or None
        m/s, NaN for radars without range rate; None when no radar measures it.
    range_rate_var : ndarray, shape (K,) or None
        (m/s)^2, NaN where not measured.
    """

    trial: np.ndarray
    time: np.ndarray
    sensor: np.ndarray
    object: np.ndarray
    z: np.ndarray
    R: np.ndarray
    snr: np.ndarray
    range_rate: np.ndarray | None = None
    range_rate_var: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.trial.shape[0])


def effective_scan_interval(scan_interval, dt):
    """The revisit interval a radar keeps on a grid of step ``dt``, s.

    Scans fall on grid times (:func:`scan_indices`): the interval is rounded to a
    whole number of steps, at least one.

    Parameters
    ----------
    scan_interval : float or array_like
        Radar revisit interval, s (> 0).
    dt : float
        Grid step, s (> 0).

    Returns
    -------
    float or ndarray
        ``max(1, round(scan_interval / dt)) * dt``, s.
    """
    steps = np.maximum(1, np.rint(np.asarray(scan_interval, dtype=np.float64) / dt))
    return steps * dt


def scan_indices(t, scan_interval):
    """Indices of the truth grid times at which a radar scans.

    Parameters
    ----------
    t : ndarray, shape (T,)
        Uniform truth grid, s.
    scan_interval : float
        Radar revisit interval, s; rounded to a whole number (>= 1) of grid steps.

    Returns
    -------
    ndarray of int64
        Indices i with ``round(t[i] / dt)`` a multiple of the rounded interval
        (scans at t = 0, dt*m, 2*dt*m, ... of the scenario epoch).
    """
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    dt = float(t[1] - t[0]) if t.size > 1 else float(scan_interval)
    step = int(round(float(effective_scan_interval(scan_interval, dt)) / dt))
    n = np.rint(t / dt).astype(np.int64)
    return np.nonzero(n % step == 0)[0]


SITE_STREAM = "site"  # the site (navigation) errors draw from their own stream: the sensor stream is unchanged


def bias_sigmas(radars: Sequence[Radar]) -> np.ndarray:
    """One-sigma registration biases of each radar, ``(S, 6)``: range m, azimuth rad, elevation rad,
    site east m, site north m, site up m (the up error is not modelled: 0)."""
    rows = []
    for r in radars:  # a radar-like record without bias fields is an ideal radar
        sr, sa, ss = (float(getattr(r, k, 0.0)) for k in ("bias_range_sigma", "bias_angle_sigma", "bias_site_sigma"))
        rows.append([sr, sa, sa, ss, ss, 0.0])
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def registration_biases(radars: Sequence[Radar], seed: int, trial_indices) -> np.ndarray:
    """The biases the radars carry in each trial, as :func:`generate_detections` draws them.

    Parameters
    ----------
    radars : sequence of Radar
    seed : int
        Scenario seed.
    trial_indices : array_like of int, shape (N,)
        Global trial numbers.

    Returns
    -------
    ndarray, shape (N, S, 6)
        Per trial and radar ``[range m, azimuth rad, elevation rad, site east m, site north m, site up m]``:
        the first three from the first draw of the trial's ``"sensors"`` stream (S x 3 standard
        normals times the sigmas), the site offset from its ``"site"`` stream (S x 2 standard normals
        times ``bias_site_sigma``); the radar is at ``site_ecef + R_enu^T [east, north, up]``.
    """
    trial_indices = np.atleast_1d(np.asarray(trial_indices, dtype=np.int64))
    sig = bias_sigmas(radars)
    nR = sig.shape[0]
    out = np.zeros((trial_indices.size, nR, 6))
    for k, (g, gs) in enumerate(zip(trial_generators(seed, trial_indices, "sensors"),
                                    trial_generators(seed, trial_indices, SITE_STREAM))):
        out[k, :, :3] = g.standard_normal((nR, 3)) * sig[:, :3]
        out[k, :, 3:5] = gs.standard_normal((nR, 2)) * sig[:, 3:5]
    return out


def _radar_table(radars: Sequence[Radar]) -> dict[str, np.ndarray]:
    """Per-radar parameters as arrays indexed by sensor id (for per-detection lookups)."""
    names = ("bandwidth", "beamwidth", "monopulse_k", "wavelength", "dwell_time", "range_sigma_floor",
             "angle_sigma_floor", "range_rate_sigma_floor", "bias_range_sigma", "bias_angle_sigma")
    tab = {k: np.array([getattr(r, k) for r in radars], dtype=np.float64) for k in names}
    tab["range_rate"] = np.array([r.range_rate for r in radars], dtype=bool)
    return tab


def _sigmas(tab, sid, snr, el):
    return measurement_sigmas(
        snr, el, tab["bandwidth"][sid], tab["beamwidth"][sid], tab["monopulse_k"][sid], tab["wavelength"][sid],
        tab["dwell_time"][sid], tab["range_sigma_floor"][sid], tab["angle_sigma_floor"][sid],
        tab["range_rate_sigma_floor"][sid],
    )


def _candidates(truth, radar: Radar, sid: int, rcs):
    """Targets in a radar's coverage at its scan times: flat arrays (trial pos, object, grid index, rae, rdot, snr, pd)."""
    idx = scan_indices(truth.t, radar.scan_interval)
    state = truth.state
    enu = state[:, :, idx, :3] - radar.site_ecef
    enu = enu @ radar.R_enu.T
    # Cheap range gate first (NaN compares False), then angles and horizon only for what is left.
    r2 = np.einsum("...i,...i->...", enu, enu)
    near = (r2 >= radar.range_min**2) & (r2 <= radar.range_max**2)
    near &= np.asarray(truth.phase)[:, :, idx] >= 0
    n, o, s = np.nonzero(near)
    del near, r2
    enu = enu[n, o, s]
    rae_c = enu_to_rae(enu)
    vis = radar.visible(enu, rae_c)
    n, o, s, enu, rae_c = n[vis], o[vis], s[vis], enu[vis], rae_c[vis]
    g = idx[s]
    lit = rcs[n, o, g] > 0.0  # an object with no echo (e.g. a stage that does not exist) is never a candidate
    if not lit.all():
        n, o, g, enu, rae_c = n[lit], o[lit], g[lit], enu[lit], rae_c[lit]
    rdot = None
    if radar.range_rate:
        v_enu = state[n, o, g, 3:6] @ radar.R_enu.T
        rdot = np.einsum("ki,ki->k", enu, v_enu) / rae_c[:, 0]
    snr = radar.snr(rae_c[:, 0], rcs[n, o, g])
    pd = radar.detection_probability(snr)
    return dict(trial=n.astype(np.int64), obj=o.astype(np.int32), tidx=g.astype(np.int64), rae=rae_c,
                rdot=rdot, snr=snr, pd=pd, sensor=np.full(n.shape, sid, dtype=np.int16)), idx


def generate_detections(truth, radars: Sequence[Radar], seed: int, *, trial_indices=None, rcs_m2=None,
                        rcs_table=None) -> Detections:
    """All radars' detections of all truth objects over all trials.

    Parameters
    ----------
    truth : sim.truth.Truth
        Uses ``t (T,)``, ``state (trials, objects, T, 6)`` ECEF (NaN when not in flight),
        ``phase (trials, objects, T)``, ``object_kind (objects,)`` and ``trial_index (trials,)``.
    radars : sequence of Radar
        Sensor ``i`` of the output is ``radars[i]``.
    seed : int
        Scenario seed; trial k draws from ``trial_generators(seed, [k], "sensors")``.
    trial_indices : sequence of int, optional
        Global trial numbers (default ``truth.trial_index``).
    rcs_m2 : ndarray, shape (trials, objects, T), optional
        Radar cross-section per object and time, m^2 (e.g. from the missile catalog).
        Default: :func:`sensors.radar.default_rcs` from object kind and phase.
    rcs_table : mapping (kind, phase) -> m^2, optional
        Overrides of :data:`sensors.radar.RCS_DEFAULT_M2` when ``rcs_m2`` is not given.

    Returns
    -------
    Detections
        Sorted by (time, sensor, trial, object).

    Notes
    -----
    A target is a candidate at a scan time when it is in flight, in a face,
    within range limits and above the refracted horizon; it is detected with
    probability :math:`P_d(\\mathrm{SNR})` (:func:`sensors.radar.detection_probability`).
    The measurement is the true range, azimuth and elevation (:mod:`sensors.geometry`)
    plus the trial's registration bias of the radar plus zero-mean Gaussian noise with
    covariance ``R = diag(sigma_r^2, sigma_az^2, sigma_el^2)`` from
    :func:`sensors.radar.measurement_sigmas` at the mean SNR. False alarms are uniform
    over the radar's resolution cells: uniform in range, in azimuth within a face and
    in elevation within its limits (faces weighted by their angular extent), with the
    SNR a noise-only cell shows above the threshold, :math:`T - 1 + \\mathrm{Exp}(1)`.
    """
    radars = list(radars)
    t = np.asarray(truth.t, dtype=np.float64)
    trial_index = np.asarray(truth.trial_index if trial_indices is None else trial_indices, dtype=np.int64)
    phase = np.asarray(truth.phase)
    N = phase.shape[0]
    if trial_index.shape != (N,):
        raise ValueError(f"trial_indices must have shape ({N},), got {trial_index.shape}")
    if rcs_m2 is None:
        rcs = default_rcs(truth.object_kind, phase, rcs_table)
    else:
        rcs = np.broadcast_to(np.asarray(rcs_m2, dtype=np.float64), phase.shape)
    nR = len(radars)
    if nR == 0:
        return _empty()
    tab = _radar_table(radars)

    # 1. Candidates of every radar (vectorized over trials x objects x scans).
    parts, scans = [], []
    for sid, radar in enumerate(radars):
        c, idx = _candidates(truth, radar, sid, rcs)
        parts.append(c)
        scans.append(idx)
    cat = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0)
           for k in ("trial", "obj", "tidx", "snr", "pd", "sensor")}
    rae = np.concatenate([p["rae"] for p in parts]) if parts else np.zeros((0, 3))
    any_rr = bool(tab["range_rate"].any()) if nR else False
    if any_rr:
        rdot = np.concatenate([p["rdot"] if p["rdot"] is not None else np.full(p["snr"].shape, np.nan)
                               for p in parts])
    del parts
    order = np.argsort(cat["trial"], kind="stable")  # per trial: radar, object, time (batch-independent)
    starts = np.concatenate([[0], np.cumsum(np.bincount(cat["trial"], minlength=N))])
    pd_sorted = cat["pd"][order]
    lam_run = np.array([r.false_alarms_per_scan * len(s) for r, s in zip(radars, scans)], dtype=np.float64)

    # 2. Random draws: one pass over the trials, each from its own generator.
    gens = trial_generators(seed, trial_index, "sensors")
    bias = np.empty((N, nR, 3))
    det_sorted = np.empty(order.shape, dtype=bool)
    noise, fa_n, fa_u, fa_e = [], np.zeros((N, nR), dtype=np.int64), [], []
    for k, g in enumerate(gens):
        bias[k] = g.standard_normal((nR, 3))
        a, b = starts[k], starts[k + 1]
        det_k = g.random(b - a) < pd_sorted[a:b]
        det_sorted[a:b] = det_k
        noise.append(g.standard_normal((int(det_k.sum()), 4)))
        fa_n[k] = g.poisson(lam_run)
        m = int(fa_n[k].sum())
        fa_u.append(g.random((m, 6)))
        fa_e.append(g.standard_exponential(m))

    # 3. Target detections.
    sel = order[det_sorted]
    w = np.concatenate(noise) if noise else np.zeros((0, 4))
    sid, tp = cat["sensor"][sel].astype(np.int64), cat["trial"][sel]
    snr = cat["snr"][sel]
    z = rae[sel]
    s_r, s_az, s_el, s_rr = _sigmas(tab, sid, snr, z[:, 2])
    b = bias[tp, sid]
    site_sig = bias_sigmas(radars)[:, 3]
    if np.any(site_sig > 0):  # the radar measures from its true site, offset by the navigation error
        offs = np.zeros((N, nR, 3))
        for k, g in enumerate(trial_generators(seed, trial_index, SITE_STREAM)):
            offs[k, :, :2] = g.standard_normal((nR, 2)) * site_sig[:, None]
        d = offs[tp, sid]
        moved = np.any(d != 0.0, axis=1)
        if moved.any():
            rho, az, el = z[moved, 0], z[moved, 1], z[moved, 2]
            enu = np.stack([rho * np.cos(el) * np.sin(az), rho * np.cos(el) * np.cos(az), rho * np.sin(el)], axis=1)
            z[moved] = enu_to_rae(enu - d[moved])
    z[:, 0] += b[:, 0] * tab["bias_range_sigma"][sid] + s_r * w[:, 0]
    z[:, 1] += b[:, 1] * tab["bias_angle_sigma"][sid] + s_az * w[:, 1]
    z[:, 2] += b[:, 2] * tab["bias_angle_sigma"][sid] + s_el * w[:, 2]
    out = dict(trial=tp, tidx=cat["tidx"][sel], sensor=sid, object=cat["obj"][sel], z=z,
               var=np.stack([s_r**2, s_az**2, s_el**2], axis=1), snr=snr)
    if any_rr:
        has = tab["range_rate"][sid]
        out["rr"] = np.where(has, rdot[sel] + s_rr * w[:, 3], np.nan)
        out["rr_var"] = np.where(has, s_rr**2, np.nan)

    # 4. False alarms.
    fa = _false_alarms(radars, scans, tab, fa_n, fa_u, fa_e, any_rr)
    cols = ("trial", "tidx", "sensor", "object", "z", "var", "snr") + (("rr", "rr_var") if any_rr else ())
    allc = {c: np.concatenate([out[c], fa[c]]) for c in cols}
    # One int64 sort key for (time, sensor, global trial, object): faster than a 4-key lexsort.
    rank = np.empty(N, dtype=np.int64)
    rank[np.argsort(trial_index, kind="stable")] = np.arange(N)
    n_obj = phase.shape[1] + 1
    key = ((allc["tidx"] * nR + allc["sensor"]) * N + rank[allc["trial"]]) * n_obj + (allc["object"] + 1)
    srt = np.argsort(key, kind="stable")
    allc["trial"] = trial_index[allc["trial"]]
    allc["time"] = t[allc["tidx"]]
    var = allc["var"][srt]
    R = np.zeros((len(srt), 3, 3))
    R[:, 0, 0], R[:, 1, 1], R[:, 2, 2] = var[:, 0], var[:, 1], var[:, 2]
    z = allc["z"][srt]
    z[:, 1] = np.mod(z[:, 1], TWO_PI)
    return Detections(
        trial=allc["trial"][srt].astype(np.int64), time=allc["time"][srt].astype(np.float64),
        sensor=allc["sensor"][srt].astype(np.int16), object=allc["object"][srt].astype(np.int32),
        z=z, R=R, snr=allc["snr"][srt],
        range_rate=allc["rr"][srt] if any_rr else None, range_rate_var=allc["rr_var"][srt] if any_rr else None,
    )


def _empty() -> Detections:
    return Detections(trial=np.zeros(0, np.int64), time=np.zeros(0), sensor=np.zeros(0, np.int16),
                      object=np.zeros(0, np.int32), z=np.zeros((0, 3)), R=np.zeros((0, 3, 3)), snr=np.zeros(0))


def _false_alarms(radars, scans, tab, fa_n, fa_u, fa_e, any_rr):
    """False alarms from the per-trial counts ``fa_n (trials, radars)`` and their uniforms/exponentials."""
    N, nR = fa_n.shape
    U = np.concatenate(fa_u) if fa_u else np.zeros((0, 6))
    E = np.concatenate(fa_e) if fa_e else np.zeros(0)
    flat = fa_n.ravel()  # trial-major, then radar: the order the draws were made in
    trial = np.repeat(np.repeat(np.arange(N), nR), flat)
    sid = np.repeat(np.tile(np.arange(nR), N), flat)
    M = len(trial)
    tidx = np.empty(M, dtype=np.int64)
    z = np.empty((M, 3))
    snr = np.empty(M)
    for r, radar in enumerate(radars):  # few radars; vectorized within
        m = sid == r
        if not m.any():
            continue
        u = U[m]
        idx = scans[r]
        tidx[m] = idx[np.minimum((u[:, 0] * len(idx)).astype(np.int64), len(idx) - 1)]
        w = np.cumsum([f.solid_extent for f in radar.faces])
        f_i = np.minimum(np.searchsorted(w, u[:, 1] * w[-1], side="right"), len(radar.faces) - 1)
        bore = np.array([f.boresight_az for f in radar.faces])[f_i]
        hw = np.array([f.half_width for f in radar.faces])[f_i]
        lo = np.array([f.min_elevation for f in radar.faces])[f_i]
        hi = np.array([f.max_elevation for f in radar.faces])[f_i]
        z[m, 0] = radar.range_min + u[:, 2] * (radar.range_max - radar.range_min)
        z[m, 1] = np.mod(bore + (2.0 * u[:, 3] - 1.0) * hw, TWO_PI)
        z[m, 2] = lo + u[:, 4] * (hi - lo)
        # Noise-only square-law output above threshold T is T + Exp(1) (memoryless); SNR estimate = that - 1.
        snr[m] = radar.detection_threshold - 1.0 + E[m]
    s_r, s_az, s_el, s_rr = _sigmas(tab, sid, snr, z[:, 2])
    out = dict(trial=trial, tidx=tidx, sensor=sid, object=np.full(M, -1, dtype=np.int32), z=z,
               var=np.stack([s_r**2, s_az**2, s_el**2], axis=1), snr=snr)
    if any_rr:
        has = tab["range_rate"][sid]
        out["rr"] = np.where(has, (2.0 * U[:, 5] - 1.0) * FALSE_ALARM_MAX_RANGE_RATE, np.nan)
        out["rr_var"] = np.where(has, s_rr**2, np.nan)
    return out
