"""Figures of merit: what each nation's tracks are worth against the truth.

Inputs are the data contracts of ``docs/ARCHITECTURE.md``: a ``Truth``
(``t (T,)``, ``state (trials, objects, T, 6)`` NaN outside flight, ``launch_time``,
``impact_time``, ``launch_ecef``, ``impact_ecef``, ``trial_index``) and a
``TrackHistory`` on the same grid (``x (trials, tracks, T, 6)`` NaN where no track,
``P (trials, tracks, T, 6, 6)``, ``confirmed``, ``object``), plus the detection
arrival record of one nation. Any object with those attributes works (duck typing),
so this module imports neither ``sim.truth`` nor ``fusion.tracker``.

Definitions used by every metric
--------------------------------
in flight
    Grid step ``t_k`` of object ``o`` in trial ``n`` where the truth state is finite
    (``Truth.state`` is NaN outside ``[launch_time, impact_time]``).
on the object
    Track ``j`` is *on* object ``o`` at ``t_k`` when it exists (finite ``x``), is
    confirmed and ``TrackHistory.object == o`` (the truth object of its last
    associated detection).
tracked
    Step ``t_k`` is *tracked* for ``(n, o)`` when ``o`` is in flight and at least one
    track is on it. When several tracks are on the same object at once (a duplicate
    track), the estimate used for errors, NEES and IPP is the one with the smallest
    position variance :math:`\\operatorname{tr} P_{rr}` (the nation's best estimate;
    ties go to the lowest track index).
held, scored
    A track *holds* object ``o`` at ``t_k`` when it is on it now and has been on it
    (gaps of up to ``max_gap_steps`` steps off it bridged, the slot never empty) for
    the hold ``firm_track_hold_s`` (:func:`scored_min_run` steps, the current one
    included): the causal form of the firm-track rule of :func:`firm_track_time`.
    The *scored* steps of ``(n, o)`` are the in-flight steps where some track holds
    ``o``. :func:`trial_metrics` computes every accuracy and consistency figure (RMSE,
    per-phase RMSE, errors at events, ANEES, ensemble NEES, IPP, warning, launch point,
    matched ratio) over the scored steps only; detection, firm-track time and
    completeness are about custody and count every confirmed step.

Every metric is per (trial, object), NaN where it did not happen (never detected,
never tracked, no ground crossing, ...). :func:`summarize` reduces over trials and
counts the NaNs instead of dropping them.

References
----------
Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, Wiley 2001, sec. 5.4 (NEES, ANEES and their chi-square bounds).
Rahmathullah, Garcia-Fernandez & Svensson, "Generalized optimal sub-pattern
assignment metric", FUSION 2017, eq. (1)-(2) (GOSPA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from fusion.drag import in_atmosphere
from fusion.impact_kernels import (FREE_AIR, FREE_UNSURE, drag_ground_crossings, free_flight_to_air,
                                  free_transitions)
from fusion.impact_kernels import rows_on_threads as _rows_on_threads
from fusion.models import MAX_STEP_S, ballistic_propagate, ballistic_transition
from sim.config import MetricsConfig
from sim.earth import ecef_to_geodetic, geodesic_inverse, altitude
from sim.errors import InputError
from sim.truth import PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY

STATE_DIM = 6  # [x, y, z, vx, vy, vz]
DEFAULT_MAX_GAP_STEPS = 3  # steps a firm track may be off its object (missed scans, a swap glitch)
DEFAULT_IPP_GRID_STEP_S = 10.0  # s, time-to-go spacing of the IPP curve (cost: one propagation per point)
IPP_RK4_STEP_S = 5.0  # s; RK4 local error ~ (omega h)^5 r ~ 1e-5 m per step at omega ~ 1e-3 rad/s
IPP_MAX_TIME_S = 7200.0  # s; longer than any ballistic flight (HS-15 lofted: ~3200 s, Japan MoD 2017)
_BISECTION_ITERATIONS = 24  # 5 s / 2^24 = 0.3 us, i.e. < 3 mm along track at 7 km/s

TRIAL_METRIC_KEYS = (
    "detect_time_s",
    "firm_track_time_s",
    "completeness",
    "scored_steps",
    "pos_rmse_m",
    "vel_rmse_mps",
    "anees",
    "pos_rmse_boost_m",
    "pos_rmse_midcourse_m",
    "pos_rmse_reentry_m",
    "pos_error_m_at_120s",
    "pos_error_m_at_burnout_60s",
    "ipp_error_km_at_120s",
    "warning_time_s",
    "warning_retracted",
    "launch_point_error_km",
    "gospa_m",
)


# --------------------------------------------------------------------------- input checks


def _check_pair(truth, tracks) -> None:
    """Raise InputError unless truth and tracks share trials and time grid."""
    state = np.asarray(truth.state)
    if state.ndim != 4 or state.shape[-1] != STATE_DIM:
        raise InputError.single("truth.state", state.shape, "shape (trials, objects, T, 6)")
    x = np.asarray(tracks.x)
    if x.ndim != 4 or x.shape[-1] != STATE_DIM:
        raise InputError.single("tracks.x", x.shape, "shape (trials, tracks, T, 6)")
    if x.shape[0] != state.shape[0] or x.shape[2] != state.shape[2]:
        raise InputError.single(
            "tracks.x", x.shape, f"same trials and T as truth.state {state.shape}"
        )
    if np.asarray(tracks.P).shape != x.shape + (STATE_DIM,):
        raise InputError.single("tracks.P", np.asarray(tracks.P).shape, f"shape {x.shape + (6,)}")
    for name in ("confirmed", "object"):
        if np.asarray(getattr(tracks, name)).shape != x.shape[:3]:
            raise InputError.single(
                f"tracks.{name}", np.asarray(getattr(tracks, name)).shape, f"shape {x.shape[:3]}"
            )
    t_truth, t_track = np.asarray(truth.t, float), np.asarray(tracks.t, float)
    if t_track.shape != t_truth.shape or not np.allclose(t_track, t_truth, rtol=0, atol=1e-6):
        raise InputError.single("tracks.t", t_track.shape, "the truth time grid (Truth.t)")


def _check_positive(key: str, value) -> float:
    if value is None or not np.isfinite(value) or value <= 0:
        raise InputError.single(key, value, "a finite number > 0")
    return float(value)


def _grid_step(t) -> float:
    t = np.asarray(t, float)
    return float(t[1] - t[0]) if t.size > 1 else 1.0


# --------------------------------------------------------------------------- per-object view


@dataclass(frozen=True)
class _ObjectView:
    """Arrays for one truth object: tracks on it and the best estimate per step."""

    in_flight: np.ndarray  # (N, T) bool
    on: np.ndarray  # (N, K, T) bool, track on the object (confirmed, labelled o, exists)
    tracked: np.ndarray  # (N, T) bool, in flight and some track on it
    x: np.ndarray  # (N, T, 6) best estimate (garbage where not tracked)
    error: np.ndarray  # (N, T, 6) estimate minus truth, NaN where not tracked
    nees: np.ndarray  # (N, T) NaN where not tracked
    pos_var: np.ndarray  # (N, T) tr P_rr, m^2, NaN where not tracked
    P: np.ndarray  # (N, T, 6, 6) covariance of the best estimate (garbage where not tracked)
    thrust: np.ndarray  # (N, T) the best track's thrust-mode probability, NaN where none or unknown


def _exists(tracks) -> np.ndarray:
    return np.isfinite(np.asarray(tracks.x)).all(axis=-1)


def _held_on(on, exists, min_run: int, max_gap_steps: int) -> np.ndarray:
    """Steps at which a track is on its object and has held it for ``min_run`` steps, ``(N, K, T)``.

    Held, as in :func:`firm_track_time`: on the object now, and since the first
    step of the current holding (``min_run`` steps ago or earlier) never off it for
    more than ``max_gap_steps`` consecutive steps nor ended (slot empty). Off
    means present but unconfirmed or labelled with another object. Causal: only
    steps up to now are looked at.
    """
    T = on.shape[-1]
    idx = np.arange(T)
    last_on = np.maximum.accumulate(np.where(on, idx, -1), axis=-1)  # last on step <= t
    broken = ~exists | (idx - last_on > max_gap_steps)  # slot empty, or a gap grown too long
    last_break = np.maximum.accumulate(np.where(broken, idx, -1), axis=-1)
    prev_on = np.concatenate([np.full(on.shape[:-1] + (1,), -1), last_on[..., :-1]], axis=-1)
    start = on & (prev_on <= last_break)  # first on step after a break
    last_start = np.maximum.accumulate(np.where(start, idx, -1), axis=-1)
    return on & (idx - last_start + 1 >= min_run)


def _object_view(truth, tracks, o: int, exists=None, min_run: int = 1,
                 max_gap_steps: int = DEFAULT_MAX_GAP_STEPS) -> _ObjectView:
    state = np.asarray(truth.state)[:, o]  # (N, T, 6)
    in_flight = np.isfinite(state).all(axis=-1)
    if exists is None:
        exists = _exists(tracks)
    on = exists & np.asarray(tracks.confirmed, bool) & (np.asarray(tracks.object) == o)
    if min_run > 1:
        on = _held_on(on, exists, min_run, max_gap_steps)
    P = np.asarray(tracks.P)
    pos_var_all = np.trace(P[..., :3, :3], axis1=-2, axis2=-1)  # (N, K, T)
    score = np.where(on, pos_var_all, np.inf)
    best = np.argmin(score, axis=1)  # (N, T): first minimum -> lowest index on ties
    tracked = in_flight & on.any(axis=1)
    n_idx = np.arange(state.shape[0])[:, None]
    t_idx = np.arange(state.shape[1])[None, :]
    x_sel = np.asarray(tracks.x)[n_idx, best, t_idx]  # (N, T, 6)
    error = np.where(tracked[..., None], x_sel - state, np.nan)
    nees = np.full(tracked.shape, np.nan)
    if tracked.any():
        P_sel = P[n_idx, best, t_idx][tracked]  # (M, 6, 6)
        nees[tracked] = normalized_estimation_error_squared(error[tracked], P_sel)
    pos_var = np.where(tracked, pos_var_all[n_idx, best, t_idx], np.nan)
    thrust_all = getattr(tracks, "thrust_prob", None)
    if thrust_all is None:
        thrust = np.full(tracked.shape, np.nan)
    else:
        thrust = np.where(tracked, np.asarray(thrust_all, float)[n_idx, best, t_idx], np.nan)
    return _ObjectView(in_flight, on, tracked, x_sel, error, nees, pos_var, P[n_idx, best, t_idx], thrust)


def scored_min_run(hold_s: float | None, dt: float) -> int:
    """Steps a track must have held its object before its steps are scored: ``ceil(hold_s / dt)``, 1 if None.

    The hold counts the current step: a track on the object from grid step ``k0`` is held
    (scored) from step ``k0 + min_run - 1`` on, as :func:`ipp_error_curve` has always counted it.
    """
    if hold_s is None:
        return 1
    return max(1, int(np.ceil(_check_positive("hold_s", hold_s) / dt - 1e-9)))


def _views(truth, tracks, min_run: int = 1, max_gap_steps: int = DEFAULT_MAX_GAP_STEPS):
    exists = _exists(tracks)
    for o in range(np.asarray(truth.state).shape[1]):
        yield o, _object_view(truth, tracks, o, exists, min_run, max_gap_steps)


# --------------------------------------------------------------------------- detection


def detection_time(truth, arrivals) -> np.ndarray:
    """Time from launch to the first detection of each object that reaches the nation.

    .. math::

        t_{\\text{det}}(n, o) = \\min_{i:\\ \\text{trial}_i = n,\\ \\text{object}_i = o}
            a_i - t_{\\text{launch}}(n, o)

    with :math:`a_i` the arrival time at the nation (measurement time plus sharing
    latency) of detection *i*. False alarms (object -1) and trials not in
    ``truth.trial_index`` are ignored.

    Parameters
    ----------
    truth : Truth
        Uses ``trial_index (N,)`` and ``launch_time (N, O)``, s.
    arrivals : object or tuple
        The nation's detection arrival record, columnar: attributes ``trial`` (K,)
        global trial index, ``object`` (K,) truth object (-1 false alarm) and
        ``arrival`` (K,) arrival time at the nation, s (``arrival_time`` also
        accepted), as :func:`sim.engine` builds it; or a tuple
        ``(trial, object, arrival_time)``.
        None means nothing arrived.

    Returns
    -------
    ndarray, shape (N, O)
        Seconds after launch; NaN where no detection of the object arrived.
    """
    launch = np.asarray(truth.launch_time, float)
    out = np.full(launch.shape, np.inf)
    if arrivals is not None:
        if isinstance(arrivals, tuple):
            trial, obj, arr = (np.asarray(a) for a in arrivals)
        else:
            arr = getattr(arrivals, "arrival_time", None)
            arr = arrivals.arrival if arr is None else arr
            trial, obj, arr = np.asarray(arrivals.trial), np.asarray(arrivals.object), np.asarray(arr)
        if not (trial.shape == obj.shape == arr.shape) or trial.ndim != 1:
            raise InputError.single(
                "arrivals", (trial.shape, obj.shape, arr.shape), "three 1-D arrays of equal length"
            )
        trial_index = np.asarray(truth.trial_index)
        order = np.argsort(trial_index, kind="stable")
        pos = np.searchsorted(trial_index[order], trial)
        pos = np.clip(pos, 0, max(trial_index.size - 1, 0))
        keep = (
            (obj >= 0)
            & (obj < launch.shape[1])
            & (trial_index.size > 0)
            & (trial_index[order][pos] == trial)
            & np.isfinite(arr)
        )
        np.minimum.at(out, (order[pos[keep]], obj[keep].astype(np.intp)), arr[keep].astype(float))
    out[~np.isfinite(out)] = np.nan
    return out - launch


# --------------------------------------------------------------------------- custody


def _firm_start_index(on, in_flight, exists, max_gap_steps: int, hold_steps: int | None) -> np.ndarray:
    """First grid index at which a firm track starts, per trial, or -1.  See firm_track_time."""
    N, K, T = on.shape
    inside = exists & in_flight[:, None, :]
    A = on & in_flight[:, None, :]
    bad = inside & ~A
    idx = np.arange(T)
    # Length of the run of bad steps ending at t (0 when t is not bad).
    last_ok = np.maximum.accumulate(np.where(bad, -1, idx), axis=-1)
    run = idx - last_ok
    violation = run == max_gap_steps + 1  # the step at which a gap becomes too long
    next_violation = np.minimum.accumulate(np.where(violation, idx, T)[..., ::-1], axis=-1)[..., ::-1]
    next_boundary = np.minimum.accumulate(np.where(inside, T, idx)[..., ::-1], axis=-1)[..., ::-1]
    window_end = next_boundary - 1
    if hold_steps is not None:
        window_end = np.minimum(window_end, idx + hold_steps)
    firm = A & (next_violation > window_end)  # (N, K, T)
    first = np.where(firm.any(axis=-1), np.argmax(firm, axis=-1), T)  # (N, K)
    first = first.min(axis=1) if K else np.full(N, T)
    return np.where(first < T, first, -1)


def firm_track_time(
    truth, tracks, max_gap_steps: int = DEFAULT_MAX_GAP_STEPS, hold_s: float | None = None
) -> np.ndarray:
    """Time from launch until a firm track holds each object.

    A track *j* is firm on object *o* from grid step :math:`t_s` when it is on the
    object at :math:`t_s` (exists, confirmed, ``object == o``) and, over the window
    :math:`[t_s, t_e]`, it is never off the object for more than ``max_gap_steps``
    consecutive steps. *Off* means the track exists and the object is in flight but
    the track is unconfirmed or labelled with another object. The window ends at
    :math:`t_e`, the last step before the track ends (``x`` becomes NaN: deletion) or
    the object leaves flight (impact), whichever comes first; with ``hold_s`` it also
    ends ``hold_s`` after :math:`t_s`. A gap still open at the end of the window counts
    too, so a track that swaps to another object for good is not firm.

    .. math::

        t_{\\text{firm}}(n, o) = \\min_j \\min\\{t_s : j \\text{ firm on } o \\text{ from } t_s\\}
            - t_{\\text{launch}}(n, o)

    Parameters
    ----------
    truth : Truth
    tracks : TrackHistory
        Same trials and grid as ``truth``.
    max_gap_steps : int, default 3
        Longest tolerated run of off-object steps (>= 0).
    hold_s : float or None
        Hold time, s; None means until the track ends or the object impacts.

    Returns
    -------
    ndarray, shape (N, O)
        Seconds after launch (grid resolution); NaN if no track became firm.

    Raises
    ------
    InputError
        Shapes or grids differ, ``max_gap_steps < 0`` or ``hold_s <= 0``.
    """
    _check_pair(truth, tracks)
    if int(max_gap_steps) != max_gap_steps or max_gap_steps < 0:
        raise InputError.single("max_gap_steps", max_gap_steps, "an integer >= 0")
    dt = _grid_step(truth.t)
    hold_steps = None
    if hold_s is not None:
        hold_steps = int(math.floor(_check_positive("hold_s", hold_s) / dt + 1e-9))
    exists = _exists(tracks)
    t = np.asarray(truth.t, float)
    out = np.full(np.asarray(truth.launch_time).shape, np.nan)
    for o in range(out.shape[1]):
        in_flight = np.isfinite(np.asarray(truth.state)[:, o]).all(axis=-1)
        on = exists & np.asarray(tracks.confirmed, bool) & (np.asarray(tracks.object) == o)
        first = _firm_start_index(on, in_flight, exists, int(max_gap_steps), hold_steps)
        out[:, o] = np.where(first >= 0, t[np.maximum(first, 0)], np.nan)
    return out - np.asarray(truth.launch_time, float)


def completeness(truth, tracks) -> np.ndarray:
    """Fraction of the flight with a confirmed track on the object.

    .. math::

        C(n, o) = \\frac{\\#\\{k : o \\text{ in flight and tracked at } t_k\\}}
                        {\\#\\{k : o \\text{ in flight at } t_k\\}}

    counted on the uniform grid, so it is the fraction of the time from launch to
    impact (to one grid step).

    Returns
    -------
    ndarray, shape (N, O)
        In [0, 1]; NaN where the object is never in flight on the grid.
    """
    _check_pair(truth, tracks)
    exists = _exists(tracks)
    conf = np.asarray(tracks.confirmed, bool)
    label = np.asarray(tracks.object)
    state = np.asarray(truth.state)
    out = np.full(state.shape[:2], np.nan)
    for o in range(state.shape[1]):
        in_flight = np.isfinite(state[:, o]).all(axis=-1)
        tracked = in_flight & (exists & conf & (label == o)).any(axis=1)
        n_flight = in_flight.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, o] = np.where(n_flight > 0, tracked.sum(axis=-1) / n_flight, np.nan)
    return out


# --------------------------------------------------------------------------- accuracy, consistency


def normalized_estimation_error_squared(error, P) -> np.ndarray:
    """NEES :math:`\\epsilon = \\tilde x^T P^{-1} \\tilde x` of errors against their covariance.

    Parameters
    ----------
    error : array_like, shape (..., n)
        Estimation error :math:`\\tilde x = \\hat x - x` (any consistent units).
    P : array_like, shape (..., n, n)
        Filter covariance of the estimate.

    Returns
    -------
    ndarray, shape (...)
        Chi-square distributed with n degrees of freedom when the filter is
        consistent (Bar-Shalom, Li & Kirubarajan 2001, eq. 5.4.2-1).

    Notes
    -----
    Solves :math:`P y = \\tilde x` batch-wise; a singular P falls back to the
    pseudo-inverse.
    """
    e = np.asarray(error, float)
    P = np.asarray(P, float)
    if e.size == 0:
        return np.zeros(e.shape[:-1])
    try:
        y = np.linalg.solve(P, e[..., None])[..., 0]
    except np.linalg.LinAlgError:
        y = (np.linalg.pinv(P) @ e[..., None])[..., 0]
    return np.einsum("...i,...i->...", e, y)


def anees_bounds(n_samples, dim: int = STATE_DIM, probability: float = 0.95):
    """Two-sided chi-square acceptance interval of the average NEES over N samples.

    .. math::

        \\bar\\epsilon = \\frac1N\\sum_{i=1}^N \\epsilon_i \\in
        \\Big[\\tfrac1N \\chi^2_{nN}\\big(\\tfrac{1-q}{2}\\big),\\
              \\tfrac1N \\chi^2_{nN}\\big(\\tfrac{1+q}{2}\\big)\\Big]

    with probability q for a consistent filter (Bar-Shalom, Li & Kirubarajan 2001,
    sec. 5.4.2, eq. 5.4.2-5 to -8).

    Parameters
    ----------
    n_samples : array_like of int
        N, number of NEES samples averaged (NaN bounds where N = 0).
    dim : int
        State dimension n (6 for position and velocity).
    probability : float
        q in (0, 1).

    Returns
    -------
    lower, upper : ndarray, shape of n_samples
    """
    if not 0.0 < probability < 1.0:
        raise InputError.single("probability", probability, "a number in (0, 1)")
    n = np.asarray(n_samples, float)
    dof = dim * n
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(n > 0, chi2.ppf(0.5 * (1 - probability), np.maximum(dof, 1)) / n, np.nan)
        hi = np.where(n > 0, chi2.ppf(0.5 * (1 + probability), np.maximum(dof, 1)) / n, np.nan)
    return lo, hi


def nees(truth, tracks) -> np.ndarray:
    """NEES of the best confirmed track on each object at every tracked step.

    Returns
    -------
    ndarray, shape (N, O, T)
        :math:`\\tilde x^T P^{-1} \\tilde x` over the 6-dim ECEF state (m, m/s);
        NaN where the object is not tracked. See
        :func:`normalized_estimation_error_squared`.
    """
    _check_pair(truth, tracks)
    state = np.asarray(truth.state)
    out = np.full(state.shape[:3], np.nan)
    for o, v in _views(truth, tracks):
        out[:, o] = v.nees
    return out


def estimation_errors(truth, tracks, hold_s: float | None = None,
                      max_gap_steps: int = DEFAULT_MAX_GAP_STEPS) -> dict[str, np.ndarray]:
    """Position and velocity RMSE and ANEES over the tracked steps of each object.

    Over the tracked steps :math:`k \\in \\mathcal K(n, o)` (object in flight, a
    confirmed track on it, best such track per step; with ``hold_s`` the scored steps,
    where that track has held the object for ``hold_s``), with error
    :math:`\\tilde x_k = \\hat x_k - x_k` in ECEF:

    .. math::

        \\text{RMSE}_r = \\sqrt{\\tfrac1{|\\mathcal K|}\\sum_k \\|\\tilde r_k\\|^2},\\quad
        \\text{RMSE}_v = \\sqrt{\\tfrac1{|\\mathcal K|}\\sum_k \\|\\tilde v_k\\|^2},\\quad
        \\text{ANEES} = \\tfrac1{|\\mathcal K|}\\sum_k \\tilde x_k^T P_k^{-1}\\tilde x_k

    The ANEES here is a time average within one trial; its bounds
    (:func:`anees_bounds` with N = ``n_samples``) assume independent samples, which
    successive filter errors are not, so they are nominal (Bar-Shalom et al. 2001,
    sec. 5.4.2 use the average over independent Monte Carlo runs).

    Returns
    -------
    dict of ndarray, shape (N, O)
        ``pos_rmse_m`` (m), ``vel_rmse_mps`` (m/s), ``anees`` (dimensionless,
        expected 6 when consistent), ``n_samples`` (int, :math:`|\\mathcal K|`).
        NaN where never tracked.
    """
    _check_pair(truth, tracks)
    shape = np.asarray(truth.state).shape[:2]
    out = {k: np.full(shape, np.nan) for k in ("pos_rmse_m", "vel_rmse_mps", "anees")}
    out["n_samples"] = np.zeros(shape, np.int64)
    for o, v in _views(truth, tracks, scored_min_run(hold_s, _grid_step(truth.t)), max_gap_steps):
        _fill_errors(out, o, v)
    return out


def _fill_errors(out, o, v: _ObjectView) -> None:
    n = v.tracked.sum(axis=-1)
    with warnings.catch_warnings():  # an untracked object gives an all-NaN row: NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        out["pos_rmse_m"][:, o] = np.sqrt(np.nanmean(np.sum(v.error[..., :3] ** 2, -1), -1))
        out["vel_rmse_mps"][:, o] = np.sqrt(np.nanmean(np.sum(v.error[..., 3:] ** 2, -1), -1))
        out["anees"][:, o] = np.nanmean(v.nees, axis=-1)
    if "n_samples" in out:
        out["n_samples"][:, o] = n


def position_error_curve(truth, tracks):
    """Position error of the best confirmed track on each object, with its 2-sigma bound.

    Returns
    -------
    t : ndarray, shape (T,)
        Grid times, s.
    error_m : ndarray, shape (N, O, T)
        :math:`\\|\\hat r_k - r_k\\|`, m; NaN where not tracked.
    bound_m : ndarray, shape (N, O, T)
        :math:`2\\sqrt{\\operatorname{tr} P_{rr,k}}`, m: twice the RMS radius the filter
        claims (for a consistent filter :math:`E\\|\\tilde r\\|^2 = \\operatorname{tr}P_{rr}`).
    """
    _check_pair(truth, tracks)
    state = np.asarray(truth.state)
    err = np.full(state.shape[:3], np.nan)
    bound = np.full(state.shape[:3], np.nan)
    for o, v in _views(truth, tracks):
        err[:, o] = np.linalg.norm(v.error[..., :3], axis=-1)
        bound[:, o] = 2.0 * np.sqrt(v.pos_var)
    return np.asarray(truth.t, float).copy(), err, bound


# --------------------------------------------------------------------------- impact point


def _ballistic_propagate(x, dt):
    """Drag-free ballistic propagation (J2 + Coriolis + centrifugal), ``x (M, 6)``, ``dt`` s scalar or (M,).

    The metrics' drag-free propagation: :func:`fusion.models.ballistic_propagate`,
    the tracker's own RK4 motion model above the atmosphere (sub-steps of at most 10 s).
    """
    return ballistic_propagate(x, dt)


def predict_ground_crossing(
    x, backward: bool = False, step_s: float = IPP_RK4_STEP_S, max_time_s: float = IPP_MAX_TIME_S,
    drag: bool = True, with_transition: bool = False,
):
    """Where and when a ballistic state reaches the ground (altitude 0, WGS-84), with the tracker's model.

    Each state is propagated with fixed RK4 steps of ``step_s`` until its height
    above the ellipsoid changes sign; the crossing inside the last (sub)step is then
    found by bisection on its length (24 halvings: < 1 us). All states are
    propagated together, each stopping at its own crossing.

    The model is the one the tracker predicts with (:mod:`fusion.drag`): drag-free
    (point-mass + J2 gravity, Coriolis and centrifugal terms,
    :func:`fusion.models.ballistic_propagate`) while the air cannot act within the
    next step (:func:`fusion.drag.in_atmosphere` false), and from the step where it
    can, with drag of the tracker's nominal ballistic coefficient
    :data:`fusion.drag.NOMINAL_BALLISTIC_COEFF` (the compiled tracker's
    :func:`fusion.motion_kernels.drag_transition`, each state with its own substeps,
    :func:`fusion.impact_kernels.drag_ground_crossings`). Above the atmosphere the
    steps are the drag-free ones, bit for bit; the drag acts only on the last leg.
    With ``drag=False`` the whole flight is drag-free (the predictor before drag was
    modelled, kept for comparisons and for the launch-point retrodiction).

    With drag, the drag-free leg runs compiled, state by state
    (:func:`fusion.impact_kernels.free_flight_to_air`, the numpy step loop's bits);
    the step loop here takes the states whose hand-over or ground test the kernel
    cannot decide bit-exactly, and the ``drag=False`` predictions. The compiled legs
    share the states of a call out to ``numba.get_num_threads()`` threads
    (:func:`fusion.impact_kernels.rows_on_threads`), the same bits on any number.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state, m and m/s (velocity relative to the rotating Earth).
    backward : bool
        Propagate back in time (launch-point retrodiction) instead of forward (IPP).
    step_s : float
        RK4 step, s (in the atmosphere split into the tracker's drag substeps).
    max_time_s : float
        Give up after this propagation time, s (result NaN).
    drag : bool, default True
        Drag of the nominal ballistic coefficient in the atmosphere (else drag-free).
    with_transition : bool
        Also return the state at the crossing and the transition matrix to it.

    Returns
    -------
    r_ground : ndarray, shape (..., 3)
        ECEF position of the crossing, m (altitude 0 to < 1 cm). A state already at
        or below the ground returns its own position.
    time_s : ndarray, shape (...)
        Signed propagation time to the crossing, s (negative when ``backward``).
        NaN where the input is not finite or no crossing within ``max_time_s``.
    x_ground : ndarray, shape (..., 6)
        Only with ``with_transition``: the state at the crossing (NaN where none).
    Phi : ndarray, shape (..., 6, 6)
        Only with ``with_transition``: :math:`\\partial x_{ground}/\\partial x` at the
        fixed time to the crossing; the drag-free leg by
        :func:`fusion.models.ballistic_transition`, the drag leg by the variational
        equation of the drag model (Montenbruck & Gill, *Satellite Orbits*, 2000, sec. 7.1).

    Notes
    -----
    The truth's re-entry includes drag of the object's own ballistic coefficient (and
    the KN-23's lift): from a perfect state, the prediction error is the effect of the
    difference between that and the nominal coefficient (zero for a Hwasong-15 RV,
    whose catalog coefficient is the nominal), plus any lift. The drag-free predictor
    misses by the whole drag effect on the last tens of kilometres (tests/test_metrics.py).
    """
    _check_positive("step_s", step_s)
    _check_positive("max_time_s", max_time_s)
    x = np.asarray(x, float)
    lead = x.shape[:-1]
    flat = x.reshape(-1, STATE_DIM)
    M = flat.shape[0]
    r_out = np.full((M, 3), np.nan)
    t_out = np.full(M, np.nan)
    valid = np.isfinite(flat).all(axis=-1)
    ids = np.flatnonzero(valid)
    if ids.size:
        alt0 = altitude(flat[ids, :3])
        ground = alt0 <= 0.0
        r_out[ids[ground]] = flat[ids[ground], :3]
        t_out[ids[ground]] = 0.0
        ids = ids[~ground]
    h = -step_s if backward else step_s
    n_steps = int(math.ceil(max_time_s / step_s))
    s = flat[ids].copy()
    elapsed = 0.0
    air_ids, air_x, air_steps, air_elapsed = [], [], [], []
    if drag and ids.size:
        # The drag-free leg, compiled: the same bits as the loop below, which still takes the states
        # whose hand-over or ground test the kernel cannot decide bit-exactly (FREE_UNSURE, rare).
        n_sub = max(1, int(math.ceil(abs(h) / MAX_STEP_S)))  # fusion.models._substeps of a scalar step
        status = np.empty(ids.size, np.int64)
        steps_left = np.zeros(ids.size, np.int64)
        x_air = np.empty((ids.size, STATE_DIM))
        el_air = np.zeros(ids.size)
        _rows_on_threads(free_flight_to_air, ids.size, np.ascontiguousarray(s), float(h), n_sub, n_steps,
                         status, x_air, steps_left, el_air)
        handed = status == FREE_AIR
        air_ids.append(ids[handed])
        air_x.append(x_air[handed])
        air_steps.append(steps_left[handed])
        air_elapsed.append(el_air[handed])
        unsure = status == FREE_UNSURE
        ids, s = ids[unsure], s[unsure]
    for i_step in range(n_steps):
        if ids.size == 0:
            break
        if drag:
            # Hand the states the air can reach within this step to the drag model.
            air = in_atmosphere(s, h)
            if air.any():
                air_ids.append(ids[air])
                air_x.append(s[air])
                air_steps.append(np.full(air.sum(), n_steps - i_step, dtype=np.int64))
                air_elapsed.append(np.full(air.sum(), elapsed))
                ids, s = ids[~air], s[~air]
                if ids.size == 0:
                    break
        s_new = _ballistic_propagate(s, h)
        crossed = altitude(s_new[:, :3]) <= 0.0
        if crossed.any():
            s0 = s[crossed]
            lo = np.zeros(s0.shape[0])  # step lengths known above ground
            hi = np.full(s0.shape[0], h)  # step lengths known at or below ground
            for _ in range(_BISECTION_ITERATIONS):
                mid = 0.5 * (lo + hi)
                below = altitude(_ballistic_propagate(s0, mid)[:, :3]) <= 0.0
                hi = np.where(below, mid, hi)
                lo = np.where(below, lo, mid)
            tau = 0.5 * (lo + hi)
            r_out[ids[crossed]] = _ballistic_propagate(s0, tau)[:, :3]
            t_out[ids[crossed]] = elapsed + tau
        elapsed += h
        keep = ~crossed
        ids, s = ids[keep], s_new[keep]
    x_g = Phi = None
    if with_transition:
        x_g = np.full((M, STATE_DIM), np.nan)
        Phi = np.full((M, STATE_DIM, STATE_DIM), np.nan)
        free = np.isfinite(t_out)  # drag-free to the ground, or already there
        if free.any():
            x_g[free], Phi[free] = ballistic_transition(flat[free], t_out[free])
    if air_ids:
        a_ids = np.concatenate(air_ids)
        a_steps = np.concatenate(air_steps)
        # in the order of the hand-over step, then of the state, as the step loop hands them over
        order = np.lexsort((a_ids, -a_steps))
        a_ids, a_steps = a_ids[order], a_steps[order]
        a_x = np.concatenate(air_x)[order]
        a_el = np.concatenate(air_elapsed)[order]
        xa = np.empty_like(a_x)
        ta = np.empty(a_ids.size)
        Fa = np.empty((a_ids.size, STATE_DIM, STATE_DIM))
        _rows_on_threads(drag_ground_crossings, a_ids.size, np.ascontiguousarray(a_x), float(h), a_steps,
                         _BISECTION_ITERATIONS, bool(with_transition), xa, ta, Fa)
        r_out[a_ids] = xa[:, :3]
        t_out[a_ids] = a_el + ta
        if with_transition:
            ok = np.isfinite(ta)
            x_g[a_ids[ok]] = xa[ok]
            # the drag-free leg up to the hand-over (identity where handed over at once), as
            # fusion.models.ballistic_transition of these states (equal to rounding: products in loops)
            F0 = np.empty((int(ok.sum()), STATE_DIM, STATE_DIM))
            if F0.shape[0]:
                dt0 = np.ascontiguousarray(a_el[ok])
                # one substep count for the whole call, as fusion.models._substeps
                n_sub0 = max(1, int(np.ceil(np.max(np.abs(dt0)) / MAX_STEP_S)))
                _rows_on_threads(free_transitions, F0.shape[0], np.ascontiguousarray(flat[a_ids[ok]]), dt0,
                                 n_sub0, F0)
            Phi[a_ids[ok]] = Fa[ok] @ F0
    r_out, t_out = r_out.reshape(lead + (3,)), t_out.reshape(lead)
    if with_transition:
        return r_out, t_out, x_g.reshape(lead + (STATE_DIM,)), Phi.reshape(lead + (STATE_DIM, STATE_DIM))
    return r_out, t_out


def _ground_distance_km(r_a, r_b) -> np.ndarray:
    """Geodesic distance (km) between the ground points below two ECEF positions (..., 3)."""
    lat_a, lon_a, _ = ecef_to_geodetic(r_a)
    lat_b, lon_b, _ = ecef_to_geodetic(r_b)
    out = np.full(np.shape(lat_a), np.nan)
    ok = np.isfinite(lat_a) & np.isfinite(lat_b)
    if ok.any():
        _, d = geodesic_inverse(
            np.degrees(lat_a[ok]), np.degrees(lon_a[ok]), np.degrees(lat_b[ok]), np.degrees(lon_b[ok])
        )
        out[ok] = d / 1e3
    return out


def impact_uncertainty_km(x_ground, Phi, P) -> np.ndarray:
    """2-sigma semi-major axis of the predicted impact point's own uncertainty, km.

    The track covariance is propagated to the predicted ground crossing to first order
    with the transition matrix :math:`\\Phi` of the predictor's own model over the
    crossing time :math:`\\tau` (:func:`predict_ground_crossing` with
    ``with_transition=True``: drag-free above the atmosphere, nominal drag in it), and
    its position block is projected onto the ground along the velocity at impact: a
    position error :math:`\\delta r` at the crossing time moves the ground point by
    :math:`A\\,\\delta r` with :math:`A = I - v n^T / (n^T v)`, *n* the local
    geodetic vertical (the first-order ground-intersection map; Bar-Shalom, Li &
    Kirubarajan 2001, sec. 10.2 for the linearized covariance propagation).

    .. math::

        P_g = A\\,\\Phi_{r\\cdot} P\\,\\Phi_{r\\cdot}^T A^T,\\qquad
        a_{2\\sigma} = 2\\sqrt{\\lambda_{\\max}(P_g)}

    Parameters
    ----------
    x_ground : array_like, shape (M, 6)
        ECEF states at the crossing, m and m/s (NaN: no crossing, result NaN).
    Phi : array_like, shape (M, 6, 6)
        Transition matrices from the track states to the crossing.
    P : array_like, shape (M, 6, 6)
        The track states' covariances.

    Returns
    -------
    ndarray, shape (M,)
        km; NaN where the crossing, its transition or the covariance is not finite.
    """
    from sim.earth import enu_rotation

    x_imp = np.asarray(x_ground, float).reshape(-1, STATE_DIM)
    Phi = np.asarray(Phi, float).reshape(-1, STATE_DIM, STATE_DIM)
    P = np.asarray(P, float).reshape(-1, STATE_DIM, STATE_DIM)
    out = np.full(x_imp.shape[0], np.nan)
    ok = np.isfinite(x_imp).all(-1) & np.isfinite(Phi).all((-2, -1)) & np.isfinite(P).all((-2, -1))
    if not ok.any():
        return out
    x_imp, Phi = x_imp[ok], Phi[ok]
    Pr = Phi[:, :3, :] @ P[ok] @ np.swapaxes(Phi[:, :3, :], -1, -2)
    lat, lon, _ = ecef_to_geodetic(x_imp[:, :3])
    n = enu_rotation(lat, lon)[..., 2, :]  # (M, 3): the up axis in ECEF
    v = x_imp[:, 3:]
    A = np.eye(3) - v[:, :, None] * n[:, None, :] / np.einsum("mi,mi->m", n, v)[:, None, None]
    Pg = A @ Pr @ np.swapaxes(A, -1, -2)
    lam = np.linalg.eigvalsh(0.5 * (Pg + np.swapaxes(Pg, -1, -2)))[:, -1]
    out[ok] = 2.0 * np.sqrt(np.maximum(lam, 0.0)) / 1e3
    return out


def ipp_error_curve(
    truth,
    tracks,
    step_s: float = DEFAULT_IPP_GRID_STEP_S,
    time_to_go=None,
    extra_time_to_go=(),
    hold_s: float | None = None,
    max_gap_steps: int = DEFAULT_MAX_GAP_STEPS,
    with_sigma: bool = False,
    drag: bool = True,
):
    """Predicted-impact-point (IPP) error against time to go, per trial and object.

    For a time to go :math:`\\tau`, the estimate used is that of the best confirmed
    track on the object at the last grid step :math:`t_k \\le t_{\\text{impact}} - \\tau`
    (so only data that had arrived by then); the time to go is therefore exact to one
    grid step, on the early side. Its IPP is the ground crossing of the propagation of
    that estimate with the tracker's own motion model (:func:`predict_ground_crossing`:
    drag-free above the atmosphere, drag of the nominal ballistic coefficient in it), and

    .. math::

        e_{\\text{IPP}}(n, o, \\tau) = s\\big(\\text{IPP}(\\hat x_k),\\ r_{\\text{impact}}(n, o)\\big)

    with *s* the WGS-84 geodesic distance (:func:`sim.earth.geodesic_inverse`) between
    the ground points. Only the grid of times to go is propagated (cost: one
    propagation per point), not every step.

    There is no IPP while the nation believes the object is under thrust: the
    ballistic propagation of a thrusting missile's state is not a prediction of where
    it will land (impact point prediction is a free-flight computation), and its ground
    point sweeps downrange past the true impact point. The belief is the tracker's
    own: the track's thrust-mode probability (``tracks.thrust_prob``, the IMM's
    :math:`\mu_{\text{thrust}}`) must be below :data:`THRUST_BELIEF_MAX` (the
    ballistic mode the more probable). A track without that belief (a filter with no
    thrust mode, a remote track report: NaN, or no ``thrust_prob`` at all) falls back
    to the truth's phase label (``truth.phase`` boost, when the truth carries phases),
    which such a nation could not know: a documented stand-in, not a measurement.

    Parameters
    ----------
    truth : Truth
    tracks : TrackHistory
    step_s : float
        Spacing of the time-to-go grid, s (default 10 s); ignored when ``time_to_go``
        is given.
    time_to_go : array_like or None
        Explicit times to go, s (>= 0). Default ``0, step_s, ...`` up to the longest
        flight.
    extra_time_to_go : sequence of float
        Times added to the grid (e.g. the tabulated 120 s).
    hold_s : float or None
        If given, only tracks that have been on the object for ``hold_s`` (the firm
        track hold) count: a warning system acts on firm tracks, so a freshly
        initiated track's first, poor predictions neither give nor break a warning.
    max_gap_steps : int, default 3
        With ``hold_s``: longest run of steps a held track may be off the object
        (unconfirmed or labelled with another object) without starting its hold
        again, as in :func:`firm_track_time`. Without it, a track that follows the
        RV but takes the spent stage's detection for one scan now and then never
        counts (measured: Hwasong-15, KR bilateral, a trial with no IPP between
        burnout and re-entry and a 140 s warning).

    with_sigma : bool
        Also return the prediction's own 2-sigma semi-major axis
        (:func:`impact_uncertainty_km`).
    drag : bool, default True
        Predict with drag in the atmosphere; False: the drag-free predictor
        (to measure what the drag model changes).

    Returns
    -------
    time_to_go : ndarray, shape (G,)
        Ascending, s.
    error_km : ndarray, shape (N, O, G)
        km; NaN where the object was not in flight or not tracked at that time, or
        the prediction does not reach the ground.
    sigma_km : ndarray, shape (N, O, G)
        Only with ``with_sigma``: :func:`impact_uncertainty_km` of each prediction, km.
    """
    _check_pair(truth, tracks)
    launch = np.asarray(truth.launch_time, float)
    impact = np.asarray(truth.impact_time, float)
    if time_to_go is None:
        step_s = _check_positive("step_s", step_s)
        span = np.nanmax(impact - launch) if np.isfinite(impact - launch).any() else 0.0
        tau = np.arange(0.0, span + step_s, step_s)
    else:
        tau = np.atleast_1d(np.asarray(time_to_go, float))
    tau = np.unique(np.concatenate([tau, np.asarray(extra_time_to_go, float).ravel()]))
    if (tau < 0).any() or not np.isfinite(tau).all():
        raise InputError.single("time_to_go", tau[~(tau >= 0)][:3].tolist(), "finite times >= 0 s")
    t = np.asarray(truth.t, float)
    dt = _grid_step(t)
    N, O = launch.shape
    phase = getattr(truth, "phase", None)
    phase = None if phase is None else np.asarray(phase)
    err = np.full((N, O, tau.size), np.nan)
    sig = np.full((N, O, tau.size), np.nan)
    states, covs, where = [], [], []
    min_run = scored_min_run(hold_s, dt)
    if int(max_gap_steps) != max_gap_steps or max_gap_steps < 0:
        raise InputError.single("max_gap_steps", max_gap_steps, "an integer >= 0")
    for o, v in _views(truth, tracks, min_run, int(max_gap_steps)):
        k = time_to_go_index(t, impact[:, o], tau)  # (N, G), -1 outside the grid
        ok = k >= 0
        k = np.where(ok, k, 0)
        n_idx = np.broadcast_to(np.arange(N)[:, None], k.shape)
        ok &= v.tracked[n_idx, k]
        ok &= ~_believed_thrusting(v.thrust[n_idx, k], None if phase is None else phase[n_idx, o, k])
        states.append(v.x[n_idx[ok], k[ok]])
        covs.append(v.P[n_idx[ok], k[ok]])
        where.append((n_idx[ok], np.full(ok.sum(), o), np.nonzero(ok)[1]))
    if states:
        x = np.concatenate(states)
        n_i, o_i, g_i = (np.concatenate(w) for w in zip(*where))
        if x.shape[0]:
            if with_sigma:
                r_pred, _, x_g, Phi = predict_ground_crossing(x, drag=drag, with_transition=True)
                sig[n_i, o_i, g_i] = impact_uncertainty_km(x_g, Phi, np.concatenate(covs))
            else:
                r_pred, _ = predict_ground_crossing(x, drag=drag)
            err[n_i, o_i, g_i] = _ground_distance_km(r_pred, np.asarray(truth.impact_ecef, float)[n_i, o_i])
    return (tau, err, sig) if with_sigma else (tau, err)


def truth_ipp_error_km(truth, time_to_go: float, drag: bool = True) -> np.ndarray:
    """IPP error of the true state itself at a time to go: the floor of any tracker with this predictor.

    The true state at the grid step of :func:`time_to_go_index` (the step the tracks'
    ``ipp_error_km_at_120s`` is read at) is propagated to the ground with
    :func:`predict_ground_crossing` and compared with the true impact point, as
    :func:`ipp_error_curve` does for a track. A perfect track has this error: what is
    left is the predictor's model against the flight (an object whose ballistic
    coefficient differs from the nominal, lift and manoeuvres that a ballistic model
    does not have), not tracking.

    Parameters
    ----------
    truth : Truth
    time_to_go : float
        s (>= 0).
    drag : bool, default True
        As :func:`predict_ground_crossing` (False: the drag-free predictor).

    Returns
    -------
    ndarray, shape (N, O)
        km; NaN where the object is not in flight then, or is in boost (``truth.phase``,
        when given: no IPP is made of a thrusting missile).
    """
    tgo = float(time_to_go)
    if not (np.isfinite(tgo) and tgo >= 0):
        raise InputError.single("time_to_go", time_to_go, "a finite time >= 0 s")
    t = np.asarray(truth.t, float)
    state = np.asarray(truth.state, float)
    impact = np.asarray(truth.impact_time, float)
    phase = getattr(truth, "phase", None)
    N, O = impact.shape
    out = np.full((N, O), np.nan)
    for o in range(O):
        k = time_to_go_index(t, impact[:, o], [tgo])[:, 0]
        n = np.flatnonzero(k >= 0)
        x = state[n, o, k[n]]
        ok = np.isfinite(x).all(-1)
        if phase is not None:
            ok &= np.asarray(phase)[n, o, k[n]] != PHASE_BOOST
        n, x = n[ok], x[ok]
        if n.size:
            r, _ = predict_ground_crossing(x, drag=drag)
            out[n, o] = _ground_distance_km(r, np.asarray(truth.impact_ecef, float)[n, o])
    return out


THRUST_BELIEF_MAX = 0.5  # an IPP is made only while the thrust mode is the less probable of the IMM's two


def _believed_thrusting(thrust_prob, phase) -> np.ndarray:
    """Where the nation would not make an IPP: its own thrust belief >= THRUST_BELIEF_MAX; where the
    track carries no belief (NaN), the truth's boost label if the truth has phases (see ipp_error_curve)."""
    thrust_prob = np.asarray(thrust_prob, float)
    known = np.isfinite(thrust_prob)
    out = known & (thrust_prob >= THRUST_BELIEF_MAX)
    if phase is not None:
        out |= ~known & (np.asarray(phase) == PHASE_BOOST)
    return out


def time_to_go_index(t, impact_time, time_to_go) -> np.ndarray:
    """Grid index of the last step at or before ``impact_time - time_to_go``, -1 where off the grid.

    Parameters
    ----------
    t : array_like, shape (T,)
        Uniform grid, s.
    impact_time : array_like, shape (N,)
        s (NaN: no impact, index -1).
    time_to_go : array_like, shape (G,)
        s.

    Returns
    -------
    ndarray of intp, shape (N, G)
    """
    t = np.asarray(t, float)
    dt = _grid_step(t)
    with np.errstate(invalid="ignore"):
        k = np.floor((np.asarray(impact_time, float)[:, None] - np.asarray(time_to_go, float)[None, :] - t[0]) / dt
                     + 1e-9)
    ok = np.isfinite(k) & (k >= 0) & (k < t.size)
    return np.where(ok, k, -1).astype(np.intp)


def warning_time(time_to_go, error_km, threshold_km: float, sigma_km=None) -> np.ndarray:
    """Time to go of the first prediction a nation could trust: a warning it could issue.

    .. math::

        t_{\text{warn}} = \max\{\tau_g : e_g < e_{\max}\ \text{and}\ a_g < e_{\max}\}

    with :math:`e_g` the IPP error against the true impact point and :math:`a_g` the
    prediction's own 2-sigma semi-major axis (:func:`impact_uncertainty_km`; omitted
    when ``sigma_km`` is None). Both strictly below the threshold. The largest time to
    go is the earliest moment: once issued, a warning stands; a later prediction does
    not withdraw it (a later wrong one is counted by :func:`warning_retracted`), so a
    fresh re-entry track never takes back a warning already issued (a tracker fed other
    data has other tracks, and its first trusted prediction can still come later). Resolution is that of the time-to-go grid.

    Parameters
    ----------
    time_to_go : array_like, shape (G,)
        Ascending times to go, s (as from :func:`ipp_error_curve`).
    error_km : array_like, shape (..., G)
        IPP error, km, NaN where no prediction.
    threshold_km : float
        :math:`e_{\max}`, km (> 0).
    sigma_km : array_like, shape (..., G), optional
        :math:`a_g`, km (NaN: not believed).

    Returns
    -------
    ndarray, shape (...)
        s; NaN if no prediction was both right and believed.

    Raises
    ------
    InputError
        ``threshold_km`` not > 0, or ``time_to_go`` not ascending and matching ``error_km``.
    """
    ok = _trusted(time_to_go, error_km, threshold_km, sigma_km)[0]
    tau = np.asarray(time_to_go, float)
    return np.where(ok.any(axis=-1), np.max(np.where(ok, tau, -np.inf), axis=-1), np.nan)


def _trusted(time_to_go, error_km, threshold_km, sigma_km):
    """(right and believed, believed) masks of shape error_km.shape, after the input checks."""
    thr = _check_positive("threshold_km", threshold_km)
    tau = np.asarray(time_to_go, float)
    e = np.asarray(error_km, float)
    if tau.ndim != 1 or e.shape[-1:] != tau.shape or (np.diff(tau) <= 0).any():
        raise InputError.single("time_to_go", tau.shape, f"ascending (G,) matching error_km {e.shape}")
    believed = np.isfinite(e)
    if sigma_km is not None:
        sg = np.asarray(sigma_km, float)
        if sg.shape != e.shape:
            raise InputError.single("sigma_km", sg.shape, f"the shape of error_km {e.shape}")
        with np.errstate(invalid="ignore"):
            believed &= sg < thr
    with np.errstate(invalid="ignore"):
        return believed & (e < thr), believed


def warning_retracted(time_to_go, error_km, threshold_km: float, sigma_km=None) -> np.ndarray:
    """Whether a warning, once issued, was followed by a believed prediction that missed.

    After the warning of :func:`warning_time` (time to go :math:`t_{\text{warn}}`), a
    later prediction (:math:`\tau_g < t_{\text{warn}}`) that the nation believes
    (:math:`a_g < e_{\max}`) but that puts the impact point :math:`e_g \ge e_{\max}`
    from the truth would make it withdraw or move the warning, as Japan's J-Alert of
    2023-04-13 was issued and then retracted (Japan Cabinet Secretariat, 13 April 2023).

    Parameters
    ----------
    time_to_go, error_km, threshold_km, sigma_km
        As :func:`warning_time`.

    Returns
    -------
    ndarray of float, shape (...)
        1.0 where retracted, 0.0 otherwise (also where no warning was issued).
    """
    ok, believed = _trusted(time_to_go, error_km, threshold_km, sigma_km)
    tau = np.asarray(time_to_go, float)
    warn = np.where(ok.any(axis=-1), np.max(np.where(ok, tau, -np.inf), axis=-1), -np.inf)
    wrong = believed & ~ok & (tau < warn[..., None])
    return wrong.any(axis=-1).astype(float)


def launch_point_error(truth, tracks, hold_s: float | None = None,
                       max_gap_steps: int = DEFAULT_MAX_GAP_STEPS) -> np.ndarray:
    """Launch-point estimate error of the first confirmed (with ``hold_s``: scored) track on each object.

    The best such track on the object at the first tracked (scored) step is retrodicted
    ballistically (drag-free, thrust ignored) back to the ground
    (:func:`predict_ground_crossing` with ``backward=True``); the error is the
    geodesic distance between that ground point and the true launch point.

    Returns
    -------
    ndarray, shape (N, O)
        km; NaN where never tracked or the retrodiction does not reach the ground.
    """
    _check_pair(truth, tracks)
    state = np.asarray(truth.state)
    out = np.full(state.shape[:2], np.nan)
    for o, v in _views(truth, tracks, scored_min_run(hold_s, _grid_step(truth.t)), max_gap_steps):
        _fill_launch_error(out, truth, o, v)
    return out


def _fill_launch_error(out, truth, o, v: _ObjectView) -> None:
    any_tracked = v.tracked.any(axis=-1)
    if not any_tracked.any():
        return
    first = np.argmax(v.tracked, axis=-1)
    n = np.flatnonzero(any_tracked)
    r, _ = predict_ground_crossing(v.x[n, first[n]], backward=True, drag=False)
    out[n, o] = _ground_distance_km(r, np.asarray(truth.launch_ecef, float)[n, o])


# --------------------------------------------------------------------------- GOSPA


def gospa(X, Y, c: float, p: float = 2.0, alpha: float = 2.0) -> dict[str, float]:
    """GOSPA distance between two finite sets of points, with its decomposition.

    For :math:`|X| \\le |Y|` (else swap), eq. (1) of Rahmathullah et al. (2017):

    .. math::

        d_p^{(c,\\alpha)}(X, Y) = \\Big(\\min_{\\pi\\in\\Pi_{|Y|}} \\sum_{i=1}^{|X|}
            d^{(c)}(x_i, y_{\\pi(i)})^p + \\frac{c^p}{\\alpha}(|Y| - |X|)\\Big)^{1/p},
        \\quad d^{(c)} = \\min(d, c)

    For :math:`\\alpha = 2` it equals eq. (2): the minimum over partial assignments
    :math:`\\gamma` of :math:`\\sum_{(i,j)\\in\\gamma} d(x_i, y_j)^p +
    \\frac{c^p}{2}(|X| + |Y| - 2|\\gamma|)`, which splits into localization (assigned
    pairs closer than c), missed (truths not assigned) and false (estimates not
    assigned) terms. The minimum is found with
    :func:`scipy.optimize.linear_sum_assignment` on the cost :math:`d^{(c)}{}^p`; a
    pair assigned at distance :math:`\\ge c` counts as one missed plus one false.

    Parameters
    ----------
    X : array_like, shape (m, d)
        Estimated points (e.g. confirmed track positions, m).
    Y : array_like, shape (n, d)
        True points, same units.
    c : float
        Cut-off, > 0 (same units).
    p : float
        Order, >= 1.
    alpha : float
        In (0, 2]; the decomposition is only defined for 2 (NaN otherwise).

    Returns
    -------
    dict
        ``distance`` :math:`d`; ``localization``, ``missed``, ``false``: the p-th
        roots of the three terms (their p-th powers sum to :math:`d^p`);
        ``n_missed``, ``n_false`` (int).
    """
    c = _check_positive("c", c)
    if not p >= 1:
        raise InputError.single("p", p, "a number >= 1")
    if not 0 < alpha <= 2:
        raise InputError.single("alpha", alpha, "a number in (0, 2]")
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    dim = X.shape[-1] if X.ndim == 2 else (Y.shape[-1] if Y.ndim == 2 else 1)
    X, Y = X.reshape(-1, dim), Y.reshape(-1, dim)
    m, n = X.shape[0], Y.shape[0]
    cp = c**p
    loc, n_assigned, cost_assigned = 0.0, 0, 0.0
    if m and n:
        d = np.linalg.norm(X[:, None, :] - Y[None, :, :], axis=-1)
        cost = np.minimum(d, c) ** p
        rows, cols = linear_sum_assignment(cost)
        cost_assigned = float(cost[rows, cols].sum())
        close = d[rows, cols] < c
        loc = float((d[rows, cols][close] ** p).sum())
        n_assigned = int(close.sum())
    total = cost_assigned + cp / alpha * abs(m - n)
    out = {"distance": total ** (1.0 / p)}
    if alpha == 2:
        n_missed, n_false = n - n_assigned, m - n_assigned
        out.update(
            localization=loc ** (1.0 / p),
            missed=(cp / 2 * n_missed) ** (1.0 / p),
            false=(cp / 2 * n_false) ** (1.0 / p),
            n_missed=n_missed,
            n_false=n_false,
        )
    else:
        out.update(localization=np.nan, missed=np.nan, false=np.nan, n_missed=-1, n_false=-1)
    return out


def gospa_series(truth, tracks, c: float, p: float = 2.0) -> dict[str, np.ndarray]:
    """GOSPA (alpha = 2) per trial and grid step between confirmed tracks and objects in flight.

    X is the set of positions of all confirmed tracks of the trial at :math:`t_k`
    (whatever their object label), Y the set of true positions of the objects in
    flight; see :func:`gospa` for the metric.

    Vectorized over trials and steps: where every track is within c of at most one
    object and vice versa, the optimal assignment is those pairs (any other pair
    costs :math:`c^p`, the same as leaving both unassigned), so the sum is closed
    form. The remaining steps with competing pairs (closely spaced objects, e.g. an RV
    near its spent stage) are solved by enumerating the matchings of their close pairs
    (:func:`fusion.metric_kernels.gospa_close_matchings`, compiled; p = 2), or, for
    another p or a step with too many candidate matchings, one by one through
    :func:`gospa` (:func:`scipy.optimize.linear_sum_assignment`).

    Returns
    -------
    dict of ndarray, shape (N, T)
        ``distance``, ``localization``, ``missed``, ``false`` (m, p-th roots as in
        :func:`gospa`), ``n_missed``, ``n_false`` (int), ``n_truth`` (objects in flight).
    """
    _check_pair(truth, tracks)
    c = _check_positive("c", c)
    if not p >= 1:
        raise InputError.single("p", p, "a number >= 1")
    Xr = np.asarray(tracks.x)[..., :3].transpose(0, 2, 1, 3)  # (N, T, K, 3)
    Yr = np.asarray(truth.state)[..., :3].transpose(0, 2, 1, 3)  # (N, T, O, 3)
    x_ok = (np.isfinite(Xr).all(-1)) & np.asarray(tracks.confirmed, bool).transpose(0, 2, 1)
    y_ok = np.isfinite(Yr).all(-1)
    m, n = x_ok.sum(-1), y_ok.sum(-1)
    with np.errstate(invalid="ignore"):  # one object at a time keeps the (N, T, K, 3) temporaries small
        d = np.stack([np.linalg.norm(Xr - Yr[..., o, None, :], axis=-1) for o in range(Yr.shape[2])], -1)
    pair = x_ok[..., :, None] & y_ok[..., None, :] & (d < c)
    simple = (pair.sum(-1) <= 1).all(-1) & (pair.sum(-2) <= 1).all(-1)  # (N, T)
    loc = np.where(pair, np.where(pair, d, 0.0) ** p, 0.0).sum((-2, -1))
    n_assigned = pair.sum((-2, -1))
    hard_i, hard_k = np.nonzero(~simple)
    solved = np.zeros(hard_i.size, bool)
    if p == 2.0 and hard_i.size:
        # compiled matching of the close pairs (fusion.metric_kernels), the same bits as gospa()'s
        from fusion.metric_kernels import gospa_close_matchings

        loc_raw = np.empty(hard_i.size)
        n_close = np.empty(hard_i.size, np.int64)
        gospa_close_matchings(np.ascontiguousarray(d), np.ascontiguousarray(pair), hard_i.astype(np.int64),
                              hard_k.astype(np.int64), float(c), loc_raw, n_close, solved)
        for j in np.flatnonzero(solved):
            # gospa() returns the p-th root of the sum, which is raised to p again here (same float steps)
            loc[hard_i[j], hard_k[j]] = (float(loc_raw[j]) ** (1.0 / p)) ** p
        n_assigned[hard_i[solved], hard_k[solved]] = n_close[solved]
    for i, k in zip(hard_i[~solved], hard_k[~solved]):
        g = gospa(Xr[i, k][x_ok[i, k]], Yr[i, k][y_ok[i, k]], c, p)
        loc[i, k] = g["localization"] ** p
        n_assigned[i, k] = n[i, k] - g["n_missed"]
    n_missed, n_false = n - n_assigned, m - n_assigned
    cp2 = c**p / 2
    return {
        "distance": (loc + cp2 * (n_missed + n_false)) ** (1.0 / p),
        "localization": loc ** (1.0 / p),
        "missed": (cp2 * n_missed) ** (1.0 / p),
        "false": (cp2 * n_false) ** (1.0 / p),
        "n_missed": n_missed,
        "n_false": n_false,
        "n_truth": n,
    }


# --------------------------------------------------------------------------- reductions


PHASE_RMSE_KEYS = {PHASE_BOOST: "pos_rmse_boost_m", PHASE_MIDCOURSE: "pos_rmse_midcourse_m",
                   PHASE_REENTRY: "pos_rmse_reentry_m"}


def trial_metrics(
    truth,
    tracks,
    arrivals,
    config: MetricsConfig | None = None,
    *,
    ipp_grid_step_s: float = DEFAULT_IPP_GRID_STEP_S,
    max_gap_steps: int = DEFAULT_MAX_GAP_STEPS,
    hold_s: float | None = None,
    curves: dict | None = None,
    steps: dict | None = None,
) -> dict[str, np.ndarray]:
    """All per-trial figures of merit of one nation's tracks.

    Accuracy and consistency are scored only where the nation holds a *firm* track:
    at a grid step where a confirmed track is on the object and has held it for
    ``hold_s`` (``[metrics] firm_track_hold_s``; the rule of :func:`firm_track_time`,
    counted causally: gaps of up to ``max_gap_steps`` steps bridged), the *scored*
    steps. A fresh track's first seconds (km-level errors while the M-of-N logic has
    just confirmed it) are not scored: they are what any tracker has before it has
    a track, and scoring them would punish a policy for starting more tracks.

    Parameters
    ----------
    truth : Truth
    tracks : TrackHistory
        The nation's tracks on the truth grid.
    arrivals : object, tuple or None
        The nation's detection arrival record, see :func:`detection_time`.
    config : sim.config.MetricsConfig
        ``ipp_time_to_go`` (s), ``ipp_threshold`` (m), ``gospa_cutoff`` (m).
    ipp_grid_step_s : float
        Time-to-go spacing of the IPP curve behind ``warning_time_s``, s.
    max_gap_steps, hold_s
        Firm-track rule, see :func:`firm_track_time`; ``hold_s`` None scores every
        confirmed step.
    curves : dict, optional
        If given, receives ``"ipp"``: the ``(time_to_go, error_km)`` pair of
        :func:`ipp_error_curve` computed on the way, for figures (no second pass).
    steps : dict, optional
        If given, receives the per-step arrays of the scored steps, shape (N, O, T),
        NaN where not scored: ``"pos_err_m"`` (position error norm, m), ``"nees"``
        (6-state NEES) and ``"pos_var_m2"`` (:math:`\operatorname{tr}P_{rr}`, m^2),
        for the ensemble and matched statistics that need more than one trial or policy.

    Returns
    -------
    dict of ndarray
        Shape (N, O) unless noted, NaN where the event did not happen:

        - ``detect_time_s``: :func:`detection_time`, s after launch (arrival time).
        - ``firm_track_time_s``: :func:`firm_track_time`, s after launch.
        - ``completeness``: :func:`completeness`, fraction of the flight with a
          confirmed track on the object (not only scored steps).
        - ``scored_steps``: number of scored steps.
        - ``pos_rmse_m``, ``vel_rmse_mps``, ``anees``: :func:`estimation_errors` over
          the scored steps.
        - ``pos_rmse_boost_m``, ``pos_rmse_midcourse_m``, ``pos_rmse_reentry_m``:
          position RMSE over the scored steps of each phase as the truth labels them
          (``truth.phase``), m.
        - ``pos_error_m_at_120s``: position error of the scored estimate at time to go
          ``config.ipp_time_to_go`` (the grid step of ``ipp_error_km_at_120s``), m.
        - ``pos_error_m_at_burnout_60s``: position error 60 s after the object's
          burnout (its first grid step out of boost), m.
        - ``ipp_error_km_at_120s``: :func:`ipp_error_curve` at time to go
          ``config.ipp_time_to_go``, km (the key keeps its name for other values).
        - ``warning_time_s``: :func:`warning_time` with ``config.ipp_threshold`` and the
          predictions' own 2-sigma uncertainty, s.
        - ``warning_retracted``: :func:`warning_retracted`, 1.0 or 0.0.
        - ``launch_point_error_km``: :func:`launch_point_error` of the first scored
          estimate, km.
        - ``gospa_m``: shape (N,), mean over the steps with at least one object in
          flight of the GOSPA distance (:func:`gospa_series`, p = alpha = 2,
          c = ``config.gospa_cutoff``), m. Defined for any number of objects (with one
          it still charges false tracks); most telling with several.
    """
    _check_pair(truth, tracks)
    config = MetricsConfig() if config is None else config
    if int(max_gap_steps) != max_gap_steps or max_gap_steps < 0:
        raise InputError.single("max_gap_steps", max_gap_steps, "an integer >= 0")
    shape = np.asarray(truth.state).shape[:2]
    t = np.asarray(truth.t, float)
    dt = _grid_step(t)
    out = {
        "detect_time_s": detection_time(truth, arrivals),
        "firm_track_time_s": firm_track_time(truth, tracks, max_gap_steps, hold_s),
        "completeness": completeness(truth, tracks),
    }
    keys = ("scored_steps", "pos_rmse_m", "vel_rmse_mps", "anees", *PHASE_RMSE_KEYS.values(),
            "pos_error_m_at_120s", "pos_error_m_at_burnout_60s")
    err = {k: np.full(shape, np.nan) for k in keys}
    launch_err = np.full(shape, np.nan)
    phase = getattr(truth, "phase", None)
    phase = None if phase is None else np.asarray(phase)
    full = shape + (t.size,)
    if steps is not None:
        for k in ("pos_err_m", "nees", "pos_var_m2"):
            steps[k] = np.full(full, np.nan)
    impact = np.asarray(truth.impact_time, float)
    N = shape[0]
    for o, v in _views(truth, tracks, scored_min_run(hold_s, dt), int(max_gap_steps)):
        _fill_errors(err, o, v)
        err["scored_steps"][:, o] = v.tracked.sum(axis=-1)
        _fill_launch_error(launch_err, truth, o, v)
        e2 = np.sum(v.error[..., :3] ** 2, -1)  # (N, T), NaN where not scored
        if phase is not None:
            for ph, key in PHASE_RMSE_KEYS.items():
                sel = phase[:, o] == ph
                n_ph = (sel & v.tracked).sum(-1)
                with np.errstate(invalid="ignore"):
                    err[key][:, o] = np.where(n_ph > 0, np.sqrt(np.where(sel & v.tracked, e2, 0.0).sum(-1)
                                                                / np.maximum(n_ph, 1)), np.nan)
        pos_err = np.sqrt(e2)
        k120 = time_to_go_index(t, impact[:, o], [config.ipp_time_to_go])[:, 0]
        err["pos_error_m_at_120s"][:, o] = np.where(k120 >= 0, pos_err[np.arange(N), np.maximum(k120, 0)], np.nan)
        k_bo = burnout_index(phase[:, o] if phase is not None else None, v.in_flight)
        k60 = k_bo + int(round(60.0 / dt))
        ok = (k_bo >= 0) & (k60 < t.size)
        err["pos_error_m_at_burnout_60s"][:, o] = np.where(ok, pos_err[np.arange(N), np.where(ok, k60, 0)], np.nan)
        if steps is not None:
            steps["pos_err_m"][:, o] = pos_err
            steps["nees"][:, o] = v.nees
            steps["pos_var_m2"][:, o] = v.pos_var
    out.update(err)
    tau, curve, sigma = ipp_error_curve(
        truth, tracks, step_s=ipp_grid_step_s, extra_time_to_go=(config.ipp_time_to_go,), hold_s=hold_s,
        max_gap_steps=max_gap_steps, with_sigma=True,
    )
    if curves is not None:
        curves["ipp"] = (tau, curve)
    out["ipp_error_km_at_120s"] = curve[..., np.searchsorted(tau, config.ipp_time_to_go)]
    out["warning_time_s"] = warning_time(tau, curve, config.ipp_threshold / 1e3, sigma)
    out["warning_retracted"] = warning_retracted(tau, curve, config.ipp_threshold / 1e3, sigma)
    out["launch_point_error_km"] = launch_err
    g = gospa_series(truth, tracks, config.gospa_cutoff)
    active = g["n_truth"] > 0
    with np.errstate(invalid="ignore"):
        out["gospa_m"] = np.where(
            active.any(-1), np.where(active, g["distance"], 0.0).sum(-1) / active.sum(-1), np.nan
        )
    return out


def bound_metrics(bound_var_m2, pos_err_m) -> dict[str, np.ndarray]:
    """The posterior Cramer-Rao bound over a row's scored steps, and the tracker's efficiency against it.

    .. math::

        \text{PCRLB}_r(n, o) = \sqrt{\tfrac1{|\mathcal K|}\sum_{k\in\mathcal K}
            \operatorname{tr}[J_k^{-1}]_{rr}},\qquad
        \eta(n, o) = \text{RMSE}_r(n, o) / \text{PCRLB}_r(n, o)

    over the same scored steps :math:`\mathcal K` as ``pos_rmse_m`` (the RMS of the
    bound's position standard deviation, so :math:`\eta = 1` is an estimator that
    reaches the bound, the best any tracker could do with the nation's data under the
    policy, given perfect association; Tichavsky, Muravchik & Nehorai 1998).

    Parameters
    ----------
    bound_var_m2 : ndarray, shape (N, O, T)
        :func:`fusion.bounds.pcrlb_position_variance`, m^2 (inf: not yet determined).
    pos_err_m : ndarray, shape (N, O, T)
        Position error on the scored steps, NaN elsewhere (``steps["pos_err_m"]`` of
        :func:`trial_metrics`), m.

    Returns
    -------
    dict of ndarray, shape (N, O)
        ``pcrlb_pos_m`` (m) and ``efficiency``; NaN where nothing is scored. Both run
        over the scored steps where the bound is finite: the bound is ``inf`` where
        the information matrix is numerically singular
        (:func:`fusion.bounds.position_variance`), which on the Hwasong-15 RV happens
        only in the last 6-8 s before impact (the ballistic coefficient's information
        grows a thousandfold a second and the scaled matrix's eigenvalue ratio falls
        below 1e-10); a firm track never exists where the bound is undetermined for
        want of data (two scans fix it, the hold needs 30 s). One such step used to
        make the whole row's bound infinite.
    """
    b = np.asarray(bound_var_m2, float)
    e = np.asarray(pos_err_m, float)
    scored = np.isfinite(e) & np.isfinite(b)
    n = scored.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_rms = np.where(n > 0, np.sqrt(np.where(scored, b, 0.0).sum(-1) / np.maximum(n, 1)), np.nan)
        e_rms = np.where(n > 0, np.sqrt(np.where(scored, e * e, 0.0).sum(-1) / np.maximum(n, 1)), np.nan)
        eff = np.where(np.isfinite(b_rms) & (b_rms > 0), e_rms / b_rms, np.nan)
    return {"pcrlb_pos_m": np.where(np.isfinite(b_rms), b_rms, np.nan), "efficiency": eff}


BIAS_ERROR_KEYS = ("range_m", "azimuth_mrad", "elevation_mrad", "site_m")


def bias_errors(estimate, true_bias, fused) -> dict[str, np.ndarray]:
    """Registration error of a nation at the end of each trial, per radar it fuses.

    Parameters
    ----------
    estimate : ndarray, shape (N, S, 6), or None
        The tracker's end-of-trial bias estimate (:attr:`fusion.tracker.TrackHistory.bias`):
        range m, azimuth rad, elevation rad, site east, north, up m; NaN for a radar it
        does not estimate. None: no registration (every estimate taken as zero).
    true_bias : ndarray, shape (N, S, 6)
        The biases the radars carried (:func:`sensors.detections.registration_biases`).
    fused : ndarray of bool, shape (S,)
        The radars whose plots the nation's own tracker takes.

    Returns
    -------
    dict
        :data:`BIAS_ERROR_KEYS` -> ``(N, S)``: absolute range error (m), azimuth and
        elevation errors (mrad), horizontal site error (m); NaN for a radar not fused or
        whose component has no bias (zero true bias and no estimate).
    """
    true_bias = np.asarray(true_bias, dtype=float)
    est = np.zeros_like(true_bias) if estimate is None else np.where(np.isnan(estimate), 0.0, estimate)
    e = est - true_bias
    fused = np.asarray(fused, dtype=bool)
    out = {"range_m": np.abs(e[..., 0]), "azimuth_mrad": np.abs(e[..., 1]) * 1e3,
           "elevation_mrad": np.abs(e[..., 2]) * 1e3, "site_m": np.hypot(e[..., 3], e[..., 4])}
    has = {"range_m": true_bias[..., 0] != 0, "azimuth_mrad": true_bias[..., 1] != 0,
           "elevation_mrad": true_bias[..., 2] != 0,
           "site_m": (true_bias[..., 3] != 0) | (true_bias[..., 4] != 0)}
    for k in out:
        out[k] = np.where(has[k] & fused[None, :], out[k], np.nan)
    return out


def burnout_index(phase, in_flight) -> np.ndarray:
    """Grid index of each trial's burnout: the first in-flight step after the boost, -1 if none.

    Parameters
    ----------
    phase : ndarray of int, shape (N, T), or None
        ``truth.phase`` of one object (None: no phases, every result -1).
    in_flight : ndarray of bool, shape (N, T)

    Returns
    -------
    ndarray of intp, shape (N,)
        The step is within one grid step after the true cut-off (the phase label
        changes on the grid).
    """
    if phase is None:
        return np.full(np.shape(in_flight)[0], -1, np.intp)
    phase = np.asarray(phase)
    boost = phase == PHASE_BOOST
    T = phase.shape[-1]
    idx = np.arange(T)
    last_boost = np.where(boost.any(-1), np.max(np.where(boost, idx, -1), axis=-1), -1)
    after = in_flight & ~boost & (idx[None, :] > last_boost[:, None]) & (last_boost[:, None] >= 0)
    return np.where(after.any(-1), np.argmax(after, axis=-1), -1).astype(np.intp)


def matched_ratio(err_row, err_ref) -> tuple[np.ndarray, np.ndarray]:
    """RMS position error of a row over the steps it shares with a reference row, over the reference's.

    .. math::

        \rho(n, o) = \sqrt{\frac{\sum_{k\in\mathcal C} \|\tilde r^{a}_k\|^2}
                               {\sum_{k\in\mathcal C} \|\tilde r^{b}_k\|^2}},\qquad
        \mathcal C = \mathcal K^a(n, o)\cap\mathcal K^b(n, o)

    with :math:`\mathcal K` the scored steps of each row (same trial, same object,
    same data but the sharing policy): the two rows are compared on exactly the same
    moments of the flight, so a policy that also holds a harder part of the flight
    (the re-entry) is not charged for it. Exactly 1 when the rows are the same.

    Parameters
    ----------
    err_row, err_ref : ndarray, shape (N, O, T)
        Position error norms on the scored steps, NaN elsewhere (``steps["pos_err_m"]``
        of :func:`trial_metrics`), m.

    Returns
    -------
    ratio : ndarray, shape (N, O)
        NaN where the rows share no step (or the reference error is 0 there).
    common : ndarray of int, shape (N, O)
        :math:`|\mathcal C|`.
    """
    a, b = np.asarray(err_row, float), np.asarray(err_ref, float)
    both = np.isfinite(a) & np.isfinite(b)
    n = both.sum(-1)
    num = np.where(both, a * a, 0.0).sum(-1)
    den = np.where(both, b * b, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where((n > 0) & (den > 0), np.sqrt(num / np.where(den > 0, den, 1.0)), np.nan)
    return ratio, n


# Ensemble NEES accumulation: sums kept as integers of NEES_QUANTUM, so the sum over trials is the same
# number whatever order the chunks arrive in (float sums are not associative; metrics.json must not depend
# on the chunking). 2^-20 ~ 1e-6 is far below any difference that moves a bound; NEES above NEES_CLIP
# counts as NEES_CLIP (far above any bound; keeps int64 sums of 10^6 trials from overflowing).
NEES_QUANTUM = 2.0 ** -20
NEES_CLIP = 1.0e6
N_PHASE_SLOTS = 4  # 0 every phase, 1 boost, 2 midcourse, 3 re-entry


def nees_sums(nees, phase=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-step sums of NEES over trials, overall and per phase, for the ensemble test.

    Parameters
    ----------
    nees : ndarray, shape (N, T)
        NEES of one object on the scored steps, NaN elsewhere.
    phase : ndarray of int, shape (N, T), optional
        ``truth.phase`` of the object.

    Returns
    -------
    total : ndarray of int64, shape (4, T)
        Sum of :math:`\epsilon` in units of :data:`NEES_QUANTUM` over the trials scored
        at the step: row 0 all, rows 1-3 those in boost, midcourse, re-entry.
    count : ndarray of int64, shape (4, T)
        Number of those trials.
    """
    e = np.asarray(nees, float)
    ok = np.isfinite(e)
    q = np.where(ok, np.rint(np.minimum(e, NEES_CLIP) / NEES_QUANTUM), 0).astype(np.int64)
    T = e.shape[-1]
    total = np.zeros((N_PHASE_SLOTS, T), np.int64)
    count = np.zeros((N_PHASE_SLOTS, T), np.int64)
    total[0], count[0] = q.sum(0), ok.sum(0)
    if phase is not None:
        phase = np.asarray(phase)
        for i, ph in enumerate((PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY), start=1):
            sel = ok & (phase == ph)
            total[i], count[i] = np.where(sel, q, 0).sum(0), sel.sum(0)
    return total, count


def ensemble_nees(total, count, dim: int = STATE_DIM, probability: float = 0.95):
    """Ensemble NEES per step and its chi-square bounds, from :func:`nees_sums`.

    .. math::

        \bar\epsilon_k = \frac1{M_k}\sum_{i=1}^{M_k}\epsilon^i_k \in
        \Big[\tfrac{1}{M_k}\chi^2_{nM_k}\big(\tfrac{1-q}2\big),\
              \tfrac{1}{M_k}\chi^2_{nM_k}\big(\tfrac{1+q}2\big)\Big]

    over the :math:`M_k` Monte Carlo runs that hold a scored track at step *k*
    (Bar-Shalom, Li & Kirubarajan 2001, sec. 5.4.2, eq. 5.4.2-5 to -8; the runs are
    independent, so unlike a time average the bound is exact for a consistent filter).

    Returns
    -------
    mean, lower, upper : ndarray, shape of ``total``
        NaN where :math:`M_k = 0`.
    """
    total = np.asarray(total)
    count = np.asarray(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total * NEES_QUANTUM / np.maximum(count, 1), np.nan)
    lo, hi = anees_bounds(count, dim, probability)
    return mean, lo, hi


def nees_consistency(total, count, dim: int = STATE_DIM, probability: float = 0.95) -> dict:
    """Fractions of steps whose ensemble NEES falls inside, below and above its 95 % bounds.

    Parameters
    ----------
    total, count : ndarray, shape (T,)
        One row of :func:`nees_sums` summed over all trials.

    Returns
    -------
    dict
        ``inside``, ``below`` (conservative: covariance larger than the errors),
        ``above`` (overconfident) as fractions of the ``steps`` with at least one
        scored trial (None when there is none), and ``steps``.
    """
    mean, lo, hi = ensemble_nees(total, count, dim, probability)
    ok = np.asarray(count) > 0
    n = int(ok.sum())
    if n == 0:
        return {"inside": None, "below": None, "above": None, "steps": 0}
    below = int((mean[ok] < lo[ok]).sum())
    above = int((mean[ok] > hi[ok]).sum())
    return {"inside": (n - below - above) / n, "below": below / n, "above": above / n, "steps": n}


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240413  # fixed: the same trials give the same interval (the date of the J-Alert retraction)
INDICATIVE_TRIALS = 20  # fewer trials than this: a comparison is only indicative


def bootstrap_median_ci(values, probability: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED):
    """Percentile bootstrap confidence interval of the median (Efron & Tibshirani 1993, ch. 13).

    Parameters
    ----------
    values : array_like, shape (n,)
        Finite values (NaN dropped first).

    Returns
    -------
    (lo, hi) or None
        None with fewer than 2 values. Seeded, so the same values give the same interval.
    """
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    med = np.median(v[rng.integers(0, v.size, (resamples, v.size))], axis=1)
    a = 0.5 * (1 - probability)
    lo, hi = np.quantile(med, [a, 1 - a])
    return float(lo), float(hi)


def paired_difference(a, b) -> dict:
    """Median and bootstrap 95 % interval of ``a - b`` over the trials where both happened.

    Parameters
    ----------
    a, b : array_like, shape (trials,)
        One metric of two rows (same nation and target, two policies), trial by trial, NaN
        where it did not happen.

    Returns
    -------
    dict
        ``median`` (None without a pair), ``ci95`` ([lo, hi] or None), ``pairs``,
        ``only_a``, ``only_b`` (trials where only one row had the metric).
    """
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    fa, fb = np.isfinite(a), np.isfinite(b)
    both = fa & fb
    d = a[both] - b[both]
    ci = bootstrap_median_ci(d)
    return {"median": float(np.median(d)) if d.size else None, "ci95": None if ci is None else list(ci),
            "pairs": int(both.sum()), "only_a": int((fa & ~fb).sum()), "only_b": int((fb & ~fa).sum())}


def bimodality_coefficient(values) -> float:
    """Sarle's bimodality coefficient :math:`b = (g^2 + 1) / (\\kappa + 3(n-1)^2/((n-2)(n-3)))`.

    *g* is the sample skewness and :math:`\kappa` the sample excess kurtosis, both
    bias-corrected (SAS Institute, *SAS/STAT User's Guide*, PROC CLUSTER; Pfister et al.,
    *Front. Psychol.* 4:700, 2013). Above :data:`BIMODAL_COEFFICIENT` (5/9, the value of a
    uniform distribution) the distribution is flagged as bimodal (or heavily skewed).

    Returns
    -------
    float
        NaN with fewer than 4 finite values or no spread.
    """
    from scipy.stats import kurtosis, skew

    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    n = v.size
    if n < 4 or np.ptp(v) == 0:
        return float("nan")
    g = skew(v, bias=False)
    k = kurtosis(v, fisher=True, bias=False)
    return float((g * g + 1.0) / (k + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


BIMODAL_COEFFICIENT = 5.0 / 9.0
BIMODAL_MIN_TRIALS = 10  # fewer finite values: not flagged (the coefficient is too noisy)


def summarize(values, ci: bool = False) -> dict:
    """Median and 10th/90th percentiles over trials, counting missing values.

    Parameters
    ----------
    values : array_like, shape (trials,)
        One metric for one (policy, nation, object); NaN = did not happen.
    ci : bool
        Also give ``ci95``: the seeded bootstrap 95 % interval of the median
        (:func:`bootstrap_median_ci`), None with fewer than 2 values.

    Returns
    -------
    dict
        ``median``, ``p10``, ``p90``: floats over the finite values (numpy's linear
        percentile interpolation), None when every value is missing; ``n``: number of
        trials (missing included); ``n_missing``: number of NaN values; ``bimodal``:
        Sarle's coefficient of the finite values above 5/9 with at least 10 of them
        (:func:`bimodality_coefficient`): a median and a range would hide two clusters.
    """
    v = np.asarray(values, float).ravel()
    finite = v[np.isfinite(v)]
    out = {"median": None, "p10": None, "p90": None, "n": int(v.size), "n_missing": int(v.size - finite.size)}
    if finite.size:
        p10, med, p90 = np.percentile(finite, [10, 50, 90])
        out.update(median=float(med), p10=float(p10), p90=float(p90))
    if ci:
        out["ci95"] = bootstrap_median_ci(finite)
    bc = bimodality_coefficient(finite)
    out["bimodal"] = bool(finite.size >= BIMODAL_MIN_TRIALS and bc > BIMODAL_COEFFICIENT)
    return out
