"""What the live view draws, computed once from a replay (no Qt here).

:func:`build_scene` turns a :class:`sim.engine.Replay` (one trial: truth,
detections, tracks per policy and nation) into display arrays in screen
units (degrees, km, s): ground tracks, altitude profiles, radar coverage
wedges, horizon curves, position errors with their sigma, and detection
intervals. The per-frame work left to the window is slicing these arrays and
the few small computations in :func:`ellipses_lonlat` and
:func:`active_detections`, so a frame stays well under the 33 ms budget of
30 frames per second.

Only the documented fields of Replay, Truth, Detections, TrackHistory and
Radar are read (``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sensors.horizon import EFFECTIVE_EARTH_FACTOR, min_visible_height
from sim.config import NATIONS
from sim.earth import (FLATTENING, MEAN_RADIUS, SEMI_MAJOR_AXIS, ecef_to_geodetic, enu_rotation,
                       geodesic_direct, geodesic_inverse)

_E2 = FLATTENING * (2.0 - FLATTENING)  # first eccentricity squared, WGS-84
ELLIPSE_POINTS = 33  # vertices per ellipse (closed: first repeated)
ELLIPSE_SIGMA = 2.0  # Mahalanobis radius of the drawn ellipses (2-sigma: 86.5 % in 2-D)


@dataclass(frozen=True)
class RadarInfo:
    """A radar as the view draws it.

    Attributes
    ----------
    name, nation : str
    lat_deg, lon_deg : float
        Site, degrees.
    alt_m : float
        Antenna height, m.
    range_max_km : float
        Instrumented range, km.
    faces : tuple of (float, float)
        ``(boresight azimuth, half-width)`` per face, degrees.
    horizon_k : float
        Effective-Earth factor of its horizon.
    """

    name: str
    nation: str
    lat_deg: float
    lon_deg: float
    alt_m: float
    range_max_km: float
    faces: tuple
    horizon_k: float = EFFECTIVE_EARTH_FACTOR


@dataclass
class TrackSeries:
    """One nation's tracks under one policy, in screen units.

    Attributes
    ----------
    lon, lat : ndarray, shape (tracks, T)
        Degrees; NaN where the track does not exist or is not confirmed.
    alt_km, ground_km : ndarray, shape (tracks, T)
        Altitude, and ground range from the launch point of the object the track is on (the
        target's for a track on none), km (NaN likewise).
    pos : ndarray, shape (tracks, T, 3)
        ECEF position estimate, m (NaN likewise).
    P_pos : ndarray, shape (tracks, T, 3, 3)
        Position covariance, m^2.
    err_km, sigma_km : ndarray, shape (objects, T)
        Per truth object, the position error of the best confirmed track on it (the one with
        the smallest :math:`\\operatorname{tr} P_{pos}`) and :math:`\\sqrt{\\operatorname{tr} P_{pos}}`
        of that track, km (NaN where none).
    coasting : ndarray of bool, shape (tracks, T)
        True where the confirmed track is coasting (kept on prediction alone,
        :attr:`fusion.tracker.TrackHistory.coasting`); all False when the tracker
        does not record it.
    """

    lon: np.ndarray
    lat: np.ndarray
    alt_km: np.ndarray
    ground_km: np.ndarray
    pos: np.ndarray
    P_pos: np.ndarray
    err_km: np.ndarray
    sigma_km: np.ndarray
    coasting: np.ndarray | None = None

    @property
    def band_km(self) -> np.ndarray:
        """Upper edge of the drawn band, :math:`2\\sigma` (0 where there is no track), km, shape (objects, T)."""
        if getattr(self, "_band", None) is None:
            self._band = np.nan_to_num(2.0 * self.sigma_km, nan=0.0)
        return self._band


@dataclass
class Scene:
    """Everything the view draws, for one trial.

    Attributes
    ----------
    title : str
    trial : int
    t : ndarray, shape (T,)
        Time grid, s since the scenario epoch.
    radars : list of RadarInfo
    object_names : list of str
        Label per truth object (``"HS-15 rv"``).
    target : int
        The main target: the first ``"rv"`` object (the view selects it first).
    truth_lon, truth_lat, truth_alt_km, truth_ground_km : ndarray, shape (objects, T)
        Degrees, km (ground range from each object's own launch point); NaN out of flight.
    truth_pos : ndarray, shape (objects, T, 3)
        ECEF, m.
    launch_lat, launch_lon : float
        Launch point of the main target, degrees (ground range origin).
    policies : list of str
    nations : list of str
    tracks : dict
        ``{(policy, nation): TrackSeries}``.
    coverage : list of ndarray
        Per radar, a closed (N, 2) lon/lat outline of its face sectors out to range_max.
    horizon_ground_km, horizon_alt_km : ndarray, shape (objects, radars, T)
        Per object and radar, the ground range of the object and the 4/3-Earth minimum visible
        altitude over its ground track (a radar sees the object when it flies above this).
    intervals : ndarray, shape (J, 4)
        Detection intervals ``(sensor, object, t_start, t_end)`` (true objects only).
    """

    title: str
    trial: int
    t: np.ndarray
    radars: list
    object_names: list
    target: int
    truth_lon: np.ndarray
    truth_lat: np.ndarray
    truth_alt_km: np.ndarray
    truth_ground_km: np.ndarray
    truth_pos: np.ndarray
    launch_lat: float
    launch_lon: float
    policies: list
    nations: list
    tracks: dict = field(default_factory=dict)
    coverage: list = field(default_factory=list)
    horizon_ground_km: np.ndarray | None = None
    horizon_alt_km: np.ndarray | None = None
    intervals: np.ndarray | None = None

    def index_at(self, time_s: float) -> int:
        """Index of the last grid time <= ``time_s`` (clamped to the grid)."""
        k = int(np.searchsorted(self.t, time_s, side="right")) - 1
        return int(np.clip(k, 0, len(self.t) - 1))


def radar_info(radar) -> RadarInfo:
    """Screen summary of a :class:`sensors.radar.Radar` (lat, lon in rad; faces; range_max in m)."""
    faces = tuple((float(np.degrees(f.boresight_az)), float(np.degrees(f.half_width))) for f in radar.faces)
    return RadarInfo(str(radar.name), str(radar.nation), float(np.degrees(radar.lat)), float(np.degrees(radar.lon)),
                     float(radar.alt), float(radar.range_max) / 1e3, faces,
                     float(getattr(radar, "horizon_k", EFFECTIVE_EARTH_FACTOR)))


def coverage_outline(info: RadarInfo, step_deg: float = 3.0) -> np.ndarray:
    """Outline of a radar's face sectors out to its instrumented range, on the ground.

    Parameters
    ----------
    info : RadarInfo
    step_deg : float
        Azimuth step of the arcs, degrees.

    Returns
    -------
    ndarray, shape (N, 2)
        Lon/lat degrees: per face a closed wedge (site, arc along the geodesic
        circle of radius range_max, site), faces separated by NaN rows; a face
        of half-width 180 deg is a full circle.

    Notes
    -----
    Arc points by the direct geodesic problem (pyproj.Geod, Karney 2013).
    Range is the slant range limit drawn at ground distance: the coverage on
    the ground of a target at low altitude.
    """
    parts = []
    for az, half in info.faces:
        full = half >= 179.999
        n = max(2, int(np.ceil(2 * half / step_deg)) + 1)
        azs = np.linspace(az - half, az + half, n) if not full else np.linspace(0.0, 360.0, n)
        lat, lon = geodesic_direct(np.full(n, info.lat_deg), np.full(n, info.lon_deg), np.mod(azs, 360.0),
                                   np.full(n, info.range_max_km * 1e3))
        arc = np.column_stack([lon, lat])
        site = np.array([[info.lon_deg, info.lat_deg]])
        ring = np.vstack([arc, arc[:1]]) if full else np.vstack([site, arc, site])
        parts.append(ring)
        parts.append(np.full((1, 2), np.nan))
    return np.vstack(parts[:-1]) if parts else np.zeros((0, 2))


def _lonlat_alt(pos):
    shape = np.shape(pos)[:-1]
    lat, lon, alt = (np.reshape(v, shape) for v in ecef_to_geodetic(pos))  # pymap3d squeezes singletons
    return np.degrees(lon), np.degrees(lat), alt


def _ground_km(lat0, lon0, lat_deg, lon_deg):
    """Geodesic distance, km, from origins ``lat0, lon0`` (degrees, broadcast against the points) to
    ``lat_deg, lon_deg``; NaN where a point is NaN."""
    lat0, lon0, lat_deg, lon_deg = np.broadcast_arrays(lat0, lon0, lat_deg, lon_deg)
    out = np.full(np.shape(lat_deg), np.nan)
    ok = np.isfinite(lat_deg) & np.isfinite(lon_deg)
    if ok.any():
        _, d = geodesic_inverse(lat0[ok], lon0[ok], lat_deg[ok], lon_deg[ok])
        out[ok] = d / 1e3
    return out


def _track_series(hist, truth_pos, target, launch_lat, launch_lon) -> TrackSeries:
    """One tracker's confirmed tracks of trial 0 in screen units; ground range from the launch point of
    the object each track is on at each step (``launch_lat/lon`` per object, degrees), else the target's;
    errors per truth object (``truth_pos`` ``(objects, T, 3)``, m)."""
    x = np.asarray(hist.x)[0]  # (tracks, T, 6)
    P = np.asarray(hist.P)[0]
    confirmed = np.asarray(hist.confirmed)[0] & np.all(np.isfinite(x[..., :3]), axis=-1)
    pos = np.where(confirmed[..., None], x[..., :3], np.nan)
    lon, lat, alt = _lonlat_alt(pos)
    obj = np.asarray(hist.object)[0]
    origin = np.where(obj >= 0, obj, target)
    ground = _ground_km(launch_lat[origin], launch_lon[origin], lat, lon)
    P_pos = P[..., :3, :3]
    tr_all = np.trace(P_pos, axis1=-2, axis2=-1)
    n_obj, T = truth_pos.shape[0], x.shape[1]
    err = np.full((n_obj, T), np.nan)
    sig = np.full((n_obj, T), np.nan)
    cols = np.arange(T)
    for o in range(n_obj if x.shape[0] else 0):
        # Best confirmed track on the object: the one with the smallest position variance.
        tr = np.where(confirmed & (obj == o) & np.isfinite(tr_all), tr_all, np.inf)
        best = np.argmin(tr, axis=0)  # (T,)
        have = np.isfinite(tr[best, cols])
        e = np.linalg.norm(pos[best, cols] - truth_pos[o], axis=-1)
        err[o] = np.where(have, e, np.nan) / 1e3
        sig[o] = np.where(have, np.sqrt(np.where(have, tr[best, cols], 0.0)), np.nan) / 1e3
    coast = getattr(hist, "coasting", None)
    coasting = (np.asarray(coast)[0] & confirmed) if coast is not None else np.zeros_like(confirmed)
    return TrackSeries(lon, lat, alt / 1e3, ground, pos, P_pos, err, sig, coasting)


def detection_intervals(dets, n_sensors: int, dt: float) -> np.ndarray:
    """Merge a trial's detections into intervals of continuous detection per sensor and object.

    Parameters
    ----------
    dets : sensors.detections.Detections
    n_sensors : int
    dt : float
        Truth step, s.

    Returns
    -------
    ndarray, shape (J, 4)
        ``(sensor, object, t_start, t_end)``; false alarms (object -1) left out.
        Consecutive detections belong to one interval when the gap is at most
        2.5 times that pair's median revisit gap (and at least 2 dt), so a
        missed scan or two does not split it.
    """
    obj = np.asarray(dets.object)
    keep = obj >= 0
    sensor, obj, time = np.asarray(dets.sensor)[keep], obj[keep], np.asarray(dets.time, dtype=float)[keep]
    rows = []
    for s in range(n_sensors):
        for o in np.unique(obj[sensor == s]):
            tt = np.unique(time[(sensor == s) & (obj == o)])
            if len(tt) == 1:
                rows.append((s, o, tt[0], tt[0]))
                continue
            gaps = np.diff(tt)
            limit = max(2.5 * float(np.median(gaps)), 2.0 * dt)
            cut = np.flatnonzero(gaps > limit)
            starts = np.concatenate([[0], cut + 1])
            ends = np.concatenate([cut, [len(tt) - 1]])
            rows.extend((s, o, tt[a], tt[b]) for a, b in zip(starts, ends))
    return np.array(rows, dtype=float).reshape(-1, 4)


def build_scene(replay, policies=None) -> Scene:
    """Display arrays of a replay (one trial).

    Parameters
    ----------
    replay : sim.engine.Replay
    policies : sequence of str, optional
        Order of the policies in the selector (default: as in ``replay.tracks``).

    Returns
    -------
    Scene
    """
    truth = replay.truth
    t = np.asarray(truth.t, dtype=float)
    kinds = list(truth.object_kind)
    target = kinds.index("rv") if "rv" in kinds else 0
    threats = replay.scenario.threats
    names = [f"{threats[int(truth.object_threat[i])].name} {k}" for i, k in enumerate(kinds)]
    truth_pos = np.asarray(truth.state)[0, :, :, :3]  # (objects, T, 3)
    lon, lat, alt = _lonlat_alt(truth_pos)
    # Ground range of each object from its own launch point (new-user trial: measured from the first
    # threat's, a second threat's profile folded back on itself).
    l_lat, l_lon, _ = ecef_to_geodetic(np.asarray(truth.launch_ecef)[0])  # (objects,)
    launch_lat, launch_lon = np.degrees(np.asarray(l_lat)), np.degrees(np.asarray(l_lon))
    lat0, lon0 = float(launch_lat[target]), float(launch_lon[target])
    ground = _ground_km(launch_lat[:, None], launch_lon[:, None], lat, lon)

    all_policies = list(dict.fromkeys(p for p, _ in replay.tracks))
    if policies is not None:
        all_policies = [p for p in policies if p in all_policies] + [p for p in all_policies if p not in policies]
    nations = [n for n in NATIONS if any(nn == n for _, nn in replay.tracks)]
    tracks = {key: _track_series(h, truth_pos, target, launch_lat, launch_lon) for key, h in replay.tracks.items()}

    radars = [radar_info(r) for r in replay.radars]
    coverage = [coverage_outline(r) for r in radars]
    # Horizons: lowest visible altitude over each point of each object's ground track.
    hg = np.full((len(names), len(radars), len(t)), np.nan)
    ha = np.full((len(names), len(radars), len(t)), np.nan)
    for o in range(len(names)):
        ok = np.isfinite(lat[o])
        if not ok.any():
            continue
        for i, r in enumerate(radars):
            _, d = geodesic_inverse(np.full(ok.sum(), r.lat_deg), np.full(ok.sum(), r.lon_deg), lat[o][ok], lon[o][ok])
            hg[o, i, ok] = ground[o][ok]
            ha[o, i, ok] = min_visible_height(d, max(r.alt_m, 0.0), MEAN_RADIUS, r.horizon_k) / 1e3
    dt = float(t[1] - t[0]) if len(t) > 1 else 1.0
    intervals = detection_intervals(replay.detections, len(radars), dt)
    info = replay.scenario.info
    return Scene(title=f"{info.name}: {info.description}", trial=int(np.asarray(truth.trial_index)[0]), t=t,
                 radars=radars, object_names=names, target=target, truth_lon=lon, truth_lat=lat,
                 truth_alt_km=alt / 1e3, truth_ground_km=ground, truth_pos=truth_pos, launch_lat=lat0,
                 launch_lon=lon0, policies=all_policies, nations=nations, tracks=tracks, coverage=coverage,
                 horizon_ground_km=hg, horizon_alt_km=ha, intervals=intervals)


def ellipses_lonlat(pos, P_pos, scale: float = 1.0, sigma: float = ELLIPSE_SIGMA, n: int = ELLIPSE_POINTS):
    r"""Horizontal error ellipses of position estimates, as lon/lat outlines.

    Parameters
    ----------
    pos : ndarray, shape (M, 3)
        ECEF position estimates, m.
    P_pos : ndarray, shape (M, 3, 3)
        Their covariances, m^2.
    scale : float
        Drawing magnification (1 = true size).
    sigma : float
        Mahalanobis radius (2 gives the 2-sigma ellipse).
    n : int
        Vertices per ellipse.

    Returns
    -------
    lon, lat : ndarray, shape (M * (n + 1),)
        Degrees; each ellipse closed and followed by a NaN separator.

    Notes
    -----
    The covariance is rotated into the local ENU frame at the estimate,
    :math:`C = R P R^T`, and its east-north block is drawn as
    :math:`\\mu + k L [\\cos\\theta, \\sin\\theta]^T` with :math:`L L^T = C_{EN}`
    (closed-form 2x2 Cholesky). East/north metres become degrees with the
    WGS-84 prime-vertical and meridian radii N and M raised by the height h,
    :math:`\Delta\varphi = n/(M+h)`, :math:`\Delta\lambda = e/((N+h)\cos\varphi)`
    (Torge, *Geodesy*, 2001, sec. 3.2); the ellipse is drawn at the estimate's
    longitude and latitude, i.e. projected on the ground along the normal.
    """
    pos = np.asarray(pos, dtype=float).reshape(-1, 3)
    M_ = len(pos)
    if M_ == 0:
        return np.zeros(0), np.zeros(0)
    lat, lon, h = (np.reshape(v, M_) for v in ecef_to_geodetic(pos))  # pymap3d squeezes a single point
    R = enu_rotation(lat, lon)  # (M, 3, 3)
    C = R @ np.asarray(P_pos, dtype=float).reshape(-1, 3, 3) @ np.swapaxes(R, -1, -2)
    a = np.sqrt(np.maximum(C[:, 0, 0], 0.0))
    b = np.divide(C[:, 1, 0], a, out=np.zeros_like(a), where=a > 0)
    c = np.sqrt(np.maximum(C[:, 1, 1] - b * b, 0.0))
    th = np.linspace(0.0, 2.0 * np.pi, n)
    u, v = np.cos(th), np.sin(th)
    k = sigma * scale
    east = k * (a[:, None] * u)  # (M, n)
    north = k * (b[:, None] * u + c[:, None] * v)
    w = 1.0 - _E2 * np.sin(lat) ** 2
    N = SEMI_MAJOR_AXIS / np.sqrt(w)
    Mr = SEMI_MAJOR_AXIS * (1.0 - _E2) / (w * np.sqrt(w))
    # At height h the radii of the parallel and meridian circles grow by h.
    dlat = np.degrees(north / (Mr + h)[:, None])
    dlon = np.degrees(east / ((N + h) * np.cos(lat))[:, None])
    out_lon = np.degrees(lon)[:, None] + dlon
    out_lat = np.degrees(lat)[:, None] + dlat
    nan = np.full((M_, 1), np.nan)
    return np.hstack([out_lon, nan]).ravel(), np.hstack([out_lat, nan]).ravel()


def active_detections(intervals: np.ndarray, time_s: float, slack_s: float = 0.0) -> np.ndarray:
    """Rows of ``intervals`` (``(sensor, object, t_start, t_end)``) that cover ``time_s`` (within ``slack_s``)."""
    if intervals is None or len(intervals) == 0:
        return np.zeros((0, 4))
    m = (intervals[:, 2] - slack_s <= time_s) & (time_s <= intervals[:, 3] + slack_s)
    return intervals[m]
