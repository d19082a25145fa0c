"""Ground truth: dispersed ballistic flights of every threat, sampled on a uniform time grid.

For each threat the nominal steering is solved once (:func:`sim.shaping.nominal_for_threat`);
each Monte Carlo trial then perturbs it with its own draws from
``sim.rng.trial_generators(seed, trial_indices, "truth")``:

* launch time: :math:`L = L_0 + \\sigma_L z_1`;
* burnout speed: an impulse :math:`\\sigma_v z_2` along the velocity at cut-off;
* aim azimuth: :math:`\\psi = \\psi_0 + \\sigma_\\psi z_3`;
* ballistic coefficients: :math:`\\beta = \\beta_0 (1 + \\sigma_\\beta z)` with
  independent :math:`z_4` for the RV and :math:`z_5` for the spent stage,

with :math:`z_i` standard normal truncated at +-5 (so that the output grid,
which starts 5 sigma before the earliest nominal launch, holds every launch).
Each trial draws a fixed ``(threats, 5)`` block, so trial k is identical in any
batch. All trials of a threat (RV and stage objects together) are integrated
in one batched RK4 run over the time since launch (the equations of motion in
ECEF do not depend on the launch time), with a step schedule fixed by the
nominal flight; the output samples are cubic Hermite interpolants of the RK4
nodes at ``t_j - L``.

Objects: for each threat in order, ``"rv"`` (the missile body, its booster in
boost, then the RV), then ``"stage"`` (the spent last stage, from burnout on)
if ``stage_object``. A class whose body does not separate (KN-23) has no
spent stage: its ``"stage"`` object is never in flight (NaN, phase -1).

Phases: 0 boost (thrusting), 1 midcourse, 2 re-entry (descending below 100 km),
-1 not in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim import dynamics as dyn
from sim.errors import InputError
from sim.missiles import MISSILES
from sim.rng import trial_generators
from sim.shaping import nominal_for_threat

REENTRY_HEIGHT = 100_000.0  # m, re-entry phase: descending below this height (contract of ARCHITECTURE.md)
Z_TRUNCATION = 5.0  # dispersion draws are clipped at +-5 sigma
N_DRAWS = 5  # standard normals per threat and trial: launch time, burnout speed, azimuth, beta rv, beta stage
PHASE_NOT_FLYING, PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY = -1, 0, 1, 2


@dataclass(frozen=True)
class Truth:
    """True states of every object on a uniform grid (docs/ARCHITECTURE.md).

    Attributes
    ----------
    t : ndarray, shape (T,)
        s since the scenario epoch, uniform with step dt_s.
    state : ndarray, shape (trials, objects, T, 6)
        ECEF [x, y, z, vx, vy, vz] in m and m/s (Earth-relative velocity); NaN where not in flight.
    phase : ndarray, shape (trials, objects, T), int8
        -1 not in flight, 0 boost, 1 midcourse, 2 re-entry.
    object_threat : ndarray, shape (objects,), int
        Index of the threat of each object.
    object_kind : tuple of str
        ``"rv"`` or ``"stage"`` per object.
    launch_time, impact_time : ndarray, shape (trials, objects)
        s (impact NaN for an object that never flies or lands after the grid).
    launch_ecef, impact_ecef : ndarray, shape (trials, objects, 3)
        m.
    trial_index : ndarray, shape (trials,), int
        Global trial numbers.
    """

    t: np.ndarray
    state: np.ndarray
    phase: np.ndarray
    object_threat: np.ndarray
    object_kind: tuple
    launch_time: np.ndarray
    impact_time: np.ndarray
    launch_ecef: np.ndarray
    impact_ecef: np.ndarray
    trial_index: np.ndarray


def dispersion_draws(seed: int, trial_indices, n_threats: int) -> np.ndarray:
    """Standard-normal draws ``(trials, threats, 5)``, truncated at +-5, one block per trial."""
    gens = trial_generators(seed, trial_indices, "truth")
    if not gens:
        return np.zeros((0, n_threats, N_DRAWS))
    z = np.stack([g.standard_normal((n_threats, N_DRAWS)) for g in gens])
    return np.clip(z, -Z_TRUNCATION, Z_TRUNCATION)


def _vacuum_window(nom_res):
    """Span of large steps for the dispersed batch: the nominal span shrunk by a margin."""
    a, b = nom_res.vacuum_span
    if not np.isfinite(a):
        return (np.inf, -np.inf)
    margin = 0.1 * (b - a) + 30.0
    return (a + margin, b - margin)


def _fly_threat(threat, nom, z):
    """Integrate all trials of one threat; return (flight result, n_trials, has_stage)."""
    m = MISSILES[threat.missile]
    d = threat.dispersion
    n = z.shape[0]
    has_stage = bool(threat.stage_object and m.separates)
    az = nom.azimuth + d.azimuth * z[:, 2]
    beta_rv = m.rv_ballistic_coeff * np.maximum(1.0 + d.ballistic_coeff_frac * z[:, 3], 0.05)
    dv = d.burnout_speed * z[:, 1]
    kw = dict(kick=nom.kick, t_cut=nom.t_cut)
    if has_stage:
        beta_st = m.stage_ballistic_coeff * np.maximum(1.0 + d.ballistic_coeff_frac * z[:, 4], 0.05)
        az2 = np.concatenate([az, az])
        beta = np.concatenate([beta_rv, beta_st])
        lg = np.concatenate([np.full(n, nom.lift_glide), np.zeros(n)])
        lp = np.concatenate([np.full(n, nom.lift_pullup), np.zeros(n)])
        dv = np.concatenate([dv, dv])
    else:
        az2, beta, lg, lp = az, beta_rv, np.full(n, nom.lift_glide), np.full(n, nom.lift_pullup)
    lat, lon = nom.launch_lat, nom.launch_lon
    # Nominal run (RV and stage, no dispersion) fixes the step schedule of the batch.
    nb = 2 if has_stage else 1
    pn = dyn.make_program(m, lat, lon, nom.azimuth, nom.kick, nom.t_cut,
                          np.array([m.rv_ballistic_coeff, m.stage_ballistic_coeff][:nb]),
                          np.array([nom.lift_glide, 0.0][:nb]), np.array([nom.lift_pullup, 0.0][:nb]))
    rn = dyn.fly(pn, dyn.launch_state(lat, lon, nb))
    prog = dyn.make_program(m, lat, lon, az2, kw["kick"], kw["t_cut"], beta, lg, lp)
    tau_max = 2.0 * float(np.nanmax(rn.impact_tau)) + 600.0
    res = dyn.fly(prog, dyn.launch_state(lat, lon, prog.n), tau_max=tau_max, burnout_dv=dv,
                  vacuum_window=_vacuum_window(rn), record=True)
    return res, n, has_stage


def _sample(res, obj_rows, L, t, t_cut, is_stage, state_out, phase_out, chunk=64):
    """Fill ``state_out (n, T, 6)`` and ``phase_out (n, T)`` by Hermite interpolation of the nodes.

    Parameters
    ----------
    res : dyn.FlightResult
        With nodes recorded.
    obj_rows : ndarray, shape (n,)
        Rows of the batch (elements of ``res``) to sample.
    L : ndarray, shape (n,)
        Launch times, s.
    t : ndarray, shape (T,)
        Output grid.
    t_cut : float
        Cut-off time since launch, s.
    is_stage : bool
        The stage object is not in flight before burnout.
    """
    nt = res.node_tau
    K = nt.size
    for c0 in range(0, obj_rows.size, chunk):
        rows = obj_rows[c0:c0 + chunk]
        Lc = L[c0:c0 + chunk]
        tau = t[None, :] - Lc[:, None]  # (c, T)
        t_imp = res.impact_tau[rows][:, None]
        start = t_cut if is_stage else 0.0
        fly = (tau >= start) & (tau <= t_imp) & (tau <= nt[-1])
        if is_stage:
            fly &= tau >= t_cut
        ci, ti = np.nonzero(fly)
        if ci.size == 0:
            continue
        tq = tau[ci, ti]
        k = np.clip(np.searchsorted(nt, tq, side="right") - 1, 0, K - 2)
        h = nt[k + 1] - nt[k]
        s = np.where(h > 0, (tq - nt[k]) / np.where(h > 0, h, 1.0), 0.0)
        Xa = res.node_state[k, rows[ci]]
        Xb = res.node_state[k + 1, rows[ci]]
        Xq = _hermite_var(Xa, Xb, h, s)
        sv = state_out[c0:c0 + chunk]
        sv[ci, ti] = Xq
        r = Xq[:, :3]
        vz = np.einsum("ij,ij->i", Xq[:, 3:], r)
        hq = dyn.height_fast(r)
        ph = np.where((vz < 0) & (hq < REENTRY_HEIGHT), PHASE_REENTRY, PHASE_MIDCOURSE)
        ph = np.where(tq < t_cut, PHASE_BOOST, ph)
        pv = phase_out[c0:c0 + chunk]
        pv[ci, ti] = ph.astype(np.int8)


def _hermite_var(Xa, Xb, h, s):
    """Cubic Hermite between node states with per-sample step ``h`` (see :func:`sim.dynamics.hermite`)."""
    hh = np.where(h > 0, h, 1.0)[:, None]
    s = s[:, None]
    s2, s3 = s * s, s * s * s
    ra, rb, va, vb = Xa[:, :3], Xb[:, :3], Xa[:, 3:] * hh, Xb[:, 3:] * hh
    pos = (2 * s3 - 3 * s2 + 1) * ra + (s3 - 2 * s2 + s) * va + (-2 * s3 + 3 * s2) * rb + (s3 - s2) * vb
    vel = ((6 * s2 - 6 * s) * ra + (3 * s2 - 4 * s + 1) * va + (-6 * s2 + 6 * s) * rb + (3 * s2 - 2 * s) * vb) / hh
    return np.concatenate([pos, vel], axis=1)


def generate_truth(threats: Sequence, trial_indices: Sequence[int], seed: int, dt_s: float = 1.0,
                   duration_s: float | None = None) -> Truth:
    """Dispersed true trajectories of all threats for a batch of Monte Carlo trials.

    Parameters
    ----------
    threats : sequence of sim.config.ThreatConfig
        SI units (rad, m, s).
    trial_indices : sequence of int
        Global trial numbers (trial k is identical in any batch).
    seed : int
        Scenario seed (>= 0).
    dt_s : float
        Output step, s (> 0).
    duration_s : float, optional
        Length of the grid from its start, s; None: until the last impact in the batch.

    Returns
    -------
    Truth
        Grid ``t = t0 + dt_s * arange(T)`` with ``t0`` the multiple of dt_s at or
        below the earliest possible launch (nominal minus 5 sigma).

    Raises
    ------
    sim.errors.InputError
        Bad dt_s or duration_s, no threats, or a threat the class cannot fly.
    """
    if not (isinstance(dt_s, (int, float, np.floating)) and np.isfinite(dt_s) and dt_s > 0):
        raise InputError.single("scenario.dt_s", dt_s, "a positive number of seconds")
    if duration_s is not None and not (np.isfinite(duration_s) and duration_s > 0):
        raise InputError.single("scenario.duration_s", duration_s, "a positive number of seconds or none")
    threats = list(threats)
    if not threats:
        raise InputError.single("threat", [], "at least one [[threat]]")
    trials = np.asarray(list(trial_indices), dtype=np.int64)
    n = trials.size
    noms = []
    for i, th in enumerate(threats):
        try:
            noms.append(nominal_for_threat(th))
        except InputError as e:
            raise InputError([type(p)(f"threat[{i}].{p.key_path}", p.value, p.allowed, p.file)
                              for p in e.problems]) from None
    z = dispersion_draws(seed, trials, len(threats))

    kinds, owner = [], []
    for i, th in enumerate(threats):
        kinds.append("rv")
        owner.append(i)
        if th.stage_object:
            kinds.append("stage")
            owner.append(i)
    n_obj = len(kinds)

    earliest = min(th.launch_time - Z_TRUNCATION * th.dispersion.launch_time for th in threats)
    t0 = dt_s * np.floor(earliest / dt_s + 1e-9)
    launch_time = np.zeros((n, n_obj))
    launch_ecef = np.zeros((n, n_obj, 3))
    impact_time = np.full((n, n_obj), np.nan)
    impact_ecef = np.full((n, n_obj, 3), np.nan)
    runs = []
    o = 0
    for i, (th, nom) in enumerate(zip(threats, noms)):
        res, nt, has_stage = _fly_threat(th, nom, z[:, i, :])
        L = th.launch_time + th.dispersion.launch_time * z[:, i, 0]
        x0 = dyn.launch_state(nom.launch_lat, nom.launch_lon, 1)[0, :3]
        cols = [o] + ([o + 1] if th.stage_object else [])
        for j, col in enumerate(cols):
            launch_time[:, col] = L
            launch_ecef[:, col] = x0
            if j == 0 or has_stage:
                rows = np.arange(n) + j * n
                impact_time[:, col] = L + res.impact_tau[rows]
                impact_ecef[:, col] = res.impact_state[rows, :3]
                runs.append((col, res, rows, L, nom.t_cut, j == 1))
        o += len(cols)

    if duration_s is None:
        last = np.nanmax(impact_time) if np.isfinite(impact_time).any() else t0
        T = int(np.floor((last - t0) / dt_s + 1e-9)) + 2
    else:
        T = int(np.floor(duration_s / dt_s + 1e-9)) + 1
    t = t0 + dt_s * np.arange(T)
    state = np.full((n, n_obj, T, 6), np.nan)
    phase = np.full((n, n_obj, T), PHASE_NOT_FLYING, dtype=np.int8)
    for col, res, rows, L, t_cut, is_stage in runs:
        _sample(res, rows, L, t, t_cut, is_stage, state[:, col], phase[:, col])
    return Truth(t=t, state=state, phase=phase, object_threat=np.asarray(owner, dtype=np.int64),
                 object_kind=tuple(kinds), launch_time=launch_time, impact_time=impact_time,
                 launch_ecef=launch_ecef, impact_ecef=impact_ecef, trial_index=trials)
