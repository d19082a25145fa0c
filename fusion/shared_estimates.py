"""What a track report tells the receiver beyond the state: the sender's launch and impact points.

The trilateral real-time missile-warning mechanism (December 2023) shares processed
track data: the presumed launch point, the flight path and the expected impact point
(ROK Minister of National Defense, press briefing of 19 Dec 2023, as reported by
Yonhap). A receiver thus learns, besides the reported state and covariance
(:mod:`fusion.track_fusion`), where the sender believes the missile came from and where
it will land, and two nations' public warnings can disagree: on 2024-01-14 Japan
reported a flight of more than 500 km and the ROK about 1,000 km for the same launch
(Japan MoD and ROK JCS announcements of that day, as reported by Kyodo and Yonhap).

This module measures both, per trial, on the RV of each threat:

* :func:`reported_points`: the impact point (IPP) of the sender's latest report that has
  reached the receiver at the warning time (``ipp_time_to_go`` before impact), and the
  launch point the sender retrodicted from its first firm report;
* :func:`ipp_at_warning`: a nation's own IPP at the warning time, from its own picture;
* :func:`pairwise_spread_km`: the largest distance between the IPPs of the nations at
  the warning time, the public-warning disagreement when above ``ipp_threshold_km``.

IPPs are the ground crossings of :func:`fusion.metrics.predict_ground_crossing` with the
tracker's own model (drag-free above the atmosphere, drag of the nominal ballistic
coefficient in it), as the metrics compute them; launch points its drag-free backward
crossings (thrust ignored, as :func:`fusion.metrics.launch_point_error`); distances are
WGS-84 geodesics (:func:`sim.earth.geodesic_inverse`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.earth import ecef_to_geodetic, geodesic_inverse

if TYPE_CHECKING:
    from fusion.tracker import TrackHistory

__all__ = ["best_on_object", "ipp_at_warning", "reported_points", "ground_distance_km", "pairwise_spread_km",
           "SHARED_KEYS"]

# per (policy, receiver, sender, target): per-trial values, km
SHARED_KEYS = ("shared_ipp_error_km", "shared_ipp_vs_own_km", "shared_launch_error_km")


def ground_distance_km(r_a, r_b) -> np.ndarray:
    """WGS-84 geodesic distance (km) between the ground points below ECEF positions ``(..., 3)`` (m).

    NaN where either is not finite.
    """
    lat_a, lon_a, _ = ecef_to_geodetic(np.asarray(r_a, float))
    lat_b, lon_b, _ = ecef_to_geodetic(np.asarray(r_b, float))
    out = np.full(np.shape(lat_a), np.nan)
    ok = np.isfinite(lat_a) & np.isfinite(lat_b)
    if ok.any():
        _, d = geodesic_inverse(np.degrees(lat_a[ok]), np.degrees(lon_a[ok]),
                                np.degrees(lat_b[ok]), np.degrees(lon_b[ok]))
        out[ok] = d / 1e3
    return out


def best_on_object(hist: "TrackHistory", o: int, k) -> tuple[np.ndarray, np.ndarray]:
    """Each trial's best confirmed track on object ``o`` at grid index ``k[n]``.

    Parameters
    ----------
    hist : TrackHistory
    o : int
        Truth object.
    k : array_like of int, shape (N,)
        Grid index per trial (out of range: none).

    Returns
    -------
    x : ndarray, shape (N, 6)
        State of the confirmed track labelled ``o`` with the smallest position variance
        (as :mod:`fusion.metrics` picks it), NaN where none.
    ok : ndarray of bool, shape (N,)
    """
    x_all = np.asarray(hist.x)
    n, _, T = x_all.shape[:3]
    k = np.asarray(k)
    valid = (k >= 0) & (k < T)
    kk = np.where(valid, k, 0).astype(np.intp)
    rows = np.arange(n)
    x = x_all[rows, :, kk]  # (N, tracks, 6)
    P = np.asarray(hist.P)[rows, :, kk]
    on = (np.asarray(hist.confirmed)[rows, :, kk] & (np.asarray(hist.object)[rows, :, kk] == o)
          & np.isfinite(x).all(axis=-1) & valid[:, None])
    var = np.where(on, np.trace(P[..., :3, :3], axis1=-2, axis2=-1), np.inf)
    best = np.argmin(var, axis=1)
    ok = on.any(axis=1)
    return np.where(ok[:, None], x[rows, best], np.nan), ok


def _warning_index(truth, o: int, time_to_go: float) -> np.ndarray:
    """Grid index of the last step at or before ``impact - time_to_go`` per trial (-1 where none)."""
    t = np.asarray(truth.t, float)
    dt = float(t[1] - t[0]) if t.size > 1 else 1.0
    with np.errstate(invalid="ignore"):
        k = np.floor((np.asarray(truth.impact_time, float)[:, o] - time_to_go - t[0]) / dt + 1e-9)
    return np.where(np.isfinite(k), k, -1).astype(np.intp)


def ipp_at_warning(truth, hist: "TrackHistory", o: int, time_to_go: float) -> np.ndarray:
    """A nation's IPP at the warning time from its best confirmed track on ``o``.

    The track state is propagated to the ground with the tracker's model (nominal drag
    in the atmosphere, :func:`fusion.metrics.predict_ground_crossing`).

    Returns
    -------
    ndarray, shape (N, 3)
        ECEF ground point, m; NaN where the nation has no confirmed track on the
        object then, or the prediction does not reach the ground.
    """
    from fusion.metrics import predict_ground_crossing

    x, _ = best_on_object(hist, o, _warning_index(truth, o, time_to_go))
    return predict_ground_crossing(x)[0]


def reported_points(truth, sender: "TrackHistory", latency: float, interval: float, o: int,
                    time_to_go: float) -> tuple[np.ndarray, np.ndarray]:
    """The IPP and launch point a receiver has from one sender's reports, per trial.

    Parameters
    ----------
    truth : Truth
    sender : TrackHistory
        The sender's own-sensor tracks (what it reports), on the truth grid.
    latency, interval : float
        Route latency and report interval, s (:class:`fusion.network.TrackRoute`).
    o : int
        Truth object (the RV).
    time_to_go : float
        Warning time before impact, s (``[metrics] ipp_time_to_go_s``).

    Returns
    -------
    ipp : ndarray, shape (N, 3)
        ECEF ground point (with the nominal drag, as :func:`ipp_at_warning`) of the sender's latest report that reached the receiver by
        the warning time: the report of time :math:`s = \\lfloor (t_w - L)/I\\rfloor I`
        (the timing of :func:`fusion.track_fusion.delayed_reports`), m. NaN where none.
    launch : ndarray, shape (N, 3)
        Launch point the sender retrodicts (drag-free, thrust ignored, as
        :func:`fusion.metrics.launch_point_error`) from its first report of a
        confirmed track on the object that reached the receiver by the warning time, m.
    """
    from fusion.metrics import predict_ground_crossing

    t = np.asarray(truth.t, float)
    dt = float(t[1] - t[0]) if t.size > 1 else 1.0
    kw = _warning_index(truth, o, time_to_go)
    s = np.where(kw >= 0, t[np.clip(kw, 0, t.size - 1)], np.nan) - latency
    if interval > 0:
        s = np.floor(s / interval + 1e-9) * interval
    with np.errstate(invalid="ignore"):
        k = np.where(np.isfinite(s), np.floor((s - t[0]) / dt + 1e-9), -1).astype(np.intp)
    x, _ = best_on_object(sender, o, k)
    ipp = predict_ground_crossing(x)[0]
    # first report: the first report time (a multiple of the interval) with a confirmed track on o
    on = np.asarray(sender.confirmed) & (np.asarray(sender.object) == o) & np.isfinite(np.asarray(sender.x)).all(-1)
    on = on.any(axis=1)  # (N, T)
    if interval > 0:  # the grid steps a report is taken from: the latest at or before each multiple of I
        j = np.arange(np.ceil(t[0] / interval - 1e-9), np.floor(t[-1] / interval + 1e-9) + 1)
        rep = np.zeros(t.size, dtype=bool)
        rep[np.floor((j * interval - t[0]) / dt + 1e-9).astype(np.intp)] = True
        on &= rep[None, :]
    on &= np.arange(t.size)[None, :] <= k[:, None]
    first = np.where(on.any(axis=1), np.argmax(on, axis=1), -1)
    x0, _ = best_on_object(sender, o, first)
    launch = predict_ground_crossing(x0, backward=True, drag=False)[0]
    return ipp, launch


def pairwise_spread_km(points: dict) -> np.ndarray:
    """Largest distance between the nations' IPPs, per trial.

    Parameters
    ----------
    points : dict of str to ndarray (N, 3)
        Each nation's IPP (ECEF m, NaN where it has none).

    Returns
    -------
    ndarray, shape (N,)
        km; NaN where fewer than two nations have an IPP.
    """
    names = list(points)
    if not names:
        return np.zeros(0)
    n = np.asarray(points[names[0]]).shape[0]
    out = np.full(n, np.nan)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = ground_distance_km(points[a], points[b])
            out = np.fmax(out, d)
    return out
