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
ECEF do not depend on the launch time), with a step schedule fixed in advance
by flights at the corners of the dispersion box (so trial k does not depend on
the batch); the output samples at ``t_j - L`` are cubic Hermite interpolants
of each RK4 step, written while integrating (no node history is kept).

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
# m/s, retrograde speed of the spent stage relative to the RV at separation. Assumption: springs or
# retro-motors give about 1-5 m/s (Wright & Kadyshev, Science & Global Security 4, 1994; UCS/MIT
# "Countermeasures", 2000, ch. 6); the exact value only sets how fast the two objects part.
STAGE_SEPARATION_SPEED = 3.0
N_DRAWS = 5  # standard normals per threat and trial: launch time, burnout speed, azimuth, beta rv, beta stage
PHASE_NOT_FLYING, PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY = -1, 0, 1, 2
_IMPACT_MARGIN = 60.0  # s, added to the corner flights' latest impact when sizing the output grid


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


def _batch(threat, nom, z):
    """Program, burnout impulses and object rows of one threat's dispersed batch.

    Returns
    -------
    prog : dyn.Program
        RV rows first (one per trial), then the spent stage rows if the class separates.
    dv : ndarray, shape (N,)
        Burnout speed impulses, m/s (the stage rows less :data:`STAGE_SEPARATION_SPEED`).
    has_stage : bool
    """
    m = MISSILES[threat.missile]
    d = threat.dispersion
    n = z.shape[0]
    has_stage = bool(threat.stage_object and m.separates)
    az = nom.azimuth + d.azimuth * z[:, 2]
    beta_rv = m.rv_ballistic_coeff * np.maximum(1.0 + d.ballistic_coeff_frac * z[:, 3], 0.05)
    dv = d.burnout_speed * z[:, 1]
    lg, lp = np.full(n, nom.lift_glide), np.full(n, nom.lift_pullup)
    if has_stage:
        beta_st = m.stage_ballistic_coeff * np.maximum(1.0 + d.ballistic_coeff_frac * z[:, 4], 0.05)
        # The spent stage leaves the RV with a small retrograde separation speed, so the two objects drift apart
        # (kilometres over a midcourse) instead of flying one point that no radar could resolve.
        az, beta = np.concatenate([az, az]), np.concatenate([beta_rv, beta_st])
        dv = np.concatenate([dv, dv - STAGE_SEPARATION_SPEED])
        lg, lp = np.concatenate([lg, np.zeros(n)]), np.concatenate([lp, np.zeros(n)])
    else:
        beta = beta_rv
    prog = dyn.make_program(m, nom.launch_lat, nom.launch_lon, az, nom.kick, nom.t_cut, beta, lg, lp,
                            nom.pitch_program)
    return prog, dv, has_stage


def _schedule(threat, nom):
    """Step schedule of a threat's batch, fixed before any trial is flown.

    The RV (and stage) are flown at the corners of the dispersion box, burnout
    speed and ballistic coefficient at +-5 sigma (the truncation), in one batch:
    the span of time since launch where all of them are above the atmosphere
    is where every trial is, so large steps are taken there whatever trials
    share the batch (trial k identical in any batch). Returns the vacuum window
    (shrunk by one large step and 20 s) and the latest impact time of the corners.
    """
    zc = np.array([[0.0, zv, 0.0, zb, zb] for zv in (-Z_TRUNCATION, 0.0, Z_TRUNCATION)
                   for zb in (-Z_TRUNCATION, Z_TRUNCATION)])
    prog, dv, _ = _batch(threat, nom, zc)
    res = dyn.fly(prog, dyn.launch_state(nom.launch_lat, nom.launch_lon, prog.n), burnout_dv=dv)
    a, b = res.vacuum_span
    margin = dyn.STEP_VACUUM + 20.0
    window = (a + margin, b - margin) if np.isfinite(a) else (np.inf, -np.inf)
    return window, float(np.nanmax(res.impact_tau))


class _Sampler:
    """``on_step`` callback of :func:`sim.dynamics.fly`: Hermite samples of each step onto the output grid.

    Object row ``i`` of the batch was launched at ``L[i]`` and owns the flat
    rows ``slot[i] * T + j`` of the output (``j`` the grid index); a grid time
    ``t_j`` falls in the step ``[tau_a, tau_b)`` when ``tau_a <= t_j - L[i] <
    tau_b``, a partition of the time axis, so each sample is written once. The
    stage rows fly from the cut-off time on; nothing is written after impact.
    """

    def __init__(self, t0, dt, T, L, slot, is_stage, t_cut, state_flat, phase_flat):
        self.t0, self.dt, self.T, self.t_cut = t0, dt, T, t_cut
        self.L, self.slot, self.is_stage = L, slot, is_stage
        self.state, self.phase = state_flat, phase_flat
        self.c = (L - t0) / dt  # grid index of the launch, fractional

    def __call__(self, tau_a, Xa, tau_b, Xb, active, impact_tau):
        dt = self.dt
        ok = active if tau_a >= self.t_cut - 1e-9 else active & ~self.is_stage
        ja = np.ceil(self.c + tau_a / dt - 1e-9).astype(np.intp)
        jb = np.ceil(self.c + tau_b / dt - 1e-9).astype(np.intp)
        cnt = np.where(ok, np.minimum(jb, self.T) - ja, 0)
        smax = int(cnt.max()) if cnt.size else 0
        if smax <= 0:
            return
        h = tau_b - tau_a
        if smax == 1:
            # Small steps (boost, atmosphere): at most one sample per object, gathered.
            ri = np.flatnonzero(cnt > 0)
            js = ja[ri]
            tq = self.t0 + js * dt - self.L[ri]
            keep = ~(tq > impact_tau[ri])
            if not keep.all():
                ri, js, tq = ri[keep], js[keep], tq[keep]
            out = _hermite_rows(Xa[ri], Xb[ri], h, (tq - tau_a) / h)
            flat = self.slot[ri] * self.T + js
            self.state[flat] = out
            r = out[:, :3]
            hq = dyn.height_fast(r)
            vz = out[:, 3] * r[:, 0] + out[:, 4] * r[:, 1] + out[:, 5] * r[:, 2]
            ph = np.where((vz < 0) & (hq < REENTRY_HEIGHT), PHASE_REENTRY, PHASE_MIDCOURSE)
            self.phase[flat] = np.where(tq < self.t_cut, PHASE_BOOST, ph)
            return
        # Large (exo-atmospheric) steps: a block of samples per object. The samples of
        # object i sit at s = s0_i + k dt/h (k = 0, 1, ...), so the Hermite cubic, re-expanded
        # as a polynomial in k (Taylor at s0_i), gives every sample of every object from one
        # matrix product: out (S, n*6) = [k^0 k^1 k^2 k^3] (S, 4) @ coefficients (4, n*6).
        # fly() takes these steps only while every active object stays above 125 km, so the
        # phase is midcourse (after cut-off) or boost.
        ri = np.flatnonzero(cnt > 0)
        n_r = ri.size
        k = np.arange(smax)
        jr = ja[ri]
        s0 = (self.t0 + jr * dt - self.L[ri] - tau_a) / h
        delta = dt / h
        xa, xb = Xa[ri], Xb[ri]
        ra, va, rb, vb = xa[:, :3], xa[:, 3:], xb[:, :3], xb[:, 3:]
        # Cubic Hermite in power form p(u) = ra + c1 u + c2 u^2 + c3 u^3 (u = step fraction).
        c1 = h * va
        c2 = 3.0 * (rb - ra) - h * (2.0 * va + vb)
        c3 = 2.0 * (ra - rb) + h * (va + vb)
        u = s0[:, None]
        p1 = c1 + u * (2.0 * c2 + 3.0 * u * c3)  # dp/du at s0
        p2 = 2.0 * c2 + 6.0 * u * c3  # d2p/du2 at s0
        C = np.empty((4, n_r, 6))
        C[0, :, :3] = ra + u * (c1 + u * (c2 + u * c3))
        C[1, :, :3] = p1 * delta
        C[2, :, :3] = p2 * (0.5 * delta * delta)
        C[3, :, :3] = c3 * delta**3
        C[0, :, 3:] = p1 * (1.0 / h)  # velocity = (dp/du) / h
        C[1, :, 3:] = p2 * (delta / h)
        C[2, :, 3:] = c3 * (3.0 * delta * delta / h)
        C[3, :, 3:] = 0.0
        kf = k.astype(np.float64)[:, None]
        K = np.concatenate([np.ones_like(kf), kf, kf * kf, kf * kf * kf], axis=1)
        out = (K @ C.reshape(4, n_r * 6)).reshape(smax, n_r, 6)
        jt = jr + k[:, None]  # (S, n)
        flat = self.slot[ri] * self.T + jt
        tq = self.t0 + jt * dt - self.L[ri]
        valid = (k[:, None] < cnt[ri]) & ~(tq > impact_tau[ri])
        ph = np.where(tq < self.t_cut, PHASE_BOOST, PHASE_MIDCOURSE).astype(np.int8)
        if valid.all():
            self.state[flat] = out
            self.phase[flat] = ph
        else:
            self.state[flat[valid]] = out[valid]
            self.phase[flat[valid]] = ph[valid]


def _hermite_rows(xa, xb, h, s):
    """Cubic Hermite between node states ``xa, xb (M, 6)`` at step fractions ``s (M,)`` (see dyn.hermite)."""
    s = s[:, None]
    dr = xa[:, :3] - xb[:, :3]
    va, vb = xa[:, 3:], xb[:, 3:]
    s2 = s * s
    s3 = s2 * s
    out = np.empty((xa.shape[0], 6))
    # h01 = 1 - h00 and d01 = -d00 folded into the node difference dr.
    out[:, :3] = xb[:, :3] + (2.0 * s3 - 3.0 * s2 + 1.0) * dr + h * ((s3 - 2.0 * s2 + s) * va + (s3 - s2) * vb)
    out[:, 3:] = ((6.0 * s2 - 6.0 * s) / h) * dr + (3.0 * s2 - 4.0 * s + 1.0) * va + (3.0 * s2 - 2.0 * s) * vb
    return out


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
        Length of the grid from its start, s; None: until the latest impact any trial can
        have (every threat's corner flights at the dispersion bounds, plus a margin), so the
        grid does not depend on which trials share the batch.

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
    # The step schedule of every threat, and from it a bound on the last impact, so the output
    # grid can be allocated before flying and sampled while integrating.
    schedules = [_schedule(th, nom) for th, nom in zip(threats, noms)]
    if duration_s is None:
        last = max(th.launch_time + Z_TRUNCATION * th.dispersion.launch_time + imp
                   for th, (_, imp) in zip(threats, schedules))
        T_alloc = int(np.floor((last + _IMPACT_MARGIN - t0) / dt_s + 1e-9)) + 2
    else:
        T_alloc = int(np.floor(duration_s / dt_s + 1e-9)) + 1
    state = np.full((n, n_obj, T_alloc, 6), np.nan)
    phase = np.full((n, n_obj, T_alloc), PHASE_NOT_FLYING, dtype=np.int8)
    state_flat = state.reshape(-1, 6)
    phase_flat = phase.reshape(-1)

    launch_time = np.zeros((n, n_obj))
    launch_ecef = np.zeros((n, n_obj, 3))
    impact_time = np.full((n, n_obj), np.nan)
    impact_ecef = np.full((n, n_obj, 3), np.nan)
    o = 0
    for i, (th, nom) in enumerate(zip(threats, noms)):
        window, imp = schedules[i]
        prog, dv, has_stage = _batch(th, nom, z[:, i, :])
        L = th.launch_time + th.dispersion.launch_time * z[:, i, 0]
        x0 = dyn.launch_state(nom.launch_lat, nom.launch_lon, 1)[0, :3]
        cols = [o] + ([o + 1] if th.stage_object else [])
        for col in cols:
            launch_time[:, col] = L
            launch_ecef[:, col] = x0
        nb = 2 if has_stage else 1
        trial = np.tile(np.arange(n), nb)
        col = np.repeat(np.array(cols[:nb]), n)
        sampler = _Sampler(t0, dt_s, T_alloc, np.tile(L, nb), trial * n_obj + col, np.repeat(np.arange(nb) == 1, n),
                           nom.t_cut, state_flat, phase_flat)
        if n:
            res = dyn.fly(prog, dyn.launch_state(nom.launch_lat, nom.launch_lon, prog.n), tau_max=2.0 * imp + 600.0,
                          burnout_dv=dv, vacuum_window=window, on_step=sampler)
            for j, c in enumerate(cols[:nb]):
                rows = np.arange(n) + j * n
                impact_time[:, c] = L + res.impact_tau[rows]
                impact_ecef[:, c] = res.impact_state[rows, :3]
        o += len(cols)

    if duration_s is None:
        last = np.nanmax(impact_time) if np.isfinite(impact_time).any() else t0
        T = int(np.floor((last - t0) / dt_s + 1e-9)) + 2
        if T > T_alloc:
            # The corner flights did not bound this batch (not expected): fly again on the full grid.
            return generate_truth(threats, trials, seed, dt_s, (T - 1) * dt_s)
    # The whole allocated grid, not cut at this batch's last impact: it is fixed by the threats alone,
    # so trial k sees the same grid, the same radar scans and the same false alarms in any batch.
    T = T_alloc
    t = t0 + dt_s * np.arange(T)
    return Truth(t=t, state=state, phase=phase, object_threat=np.asarray(owner, dtype=np.int64),
                 object_kind=tuple(kinds), launch_time=launch_time, impact_time=impact_time,
                 launch_ecef=launch_ecef, impact_ecef=impact_ecef, trial_index=trials)


PHASE_NAMES = {PHASE_BOOST: "boost", PHASE_MIDCOURSE: "midcourse", PHASE_REENTRY: "re-entry"}
SERIES_COLUMNS = ("time_s", "x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps", "lat_deg", "lon_deg", "alt_km",
                  "speed_mps", "phase")


def nominal_series_csv(threat, dt_s: float = 1.0) -> str:
    """The nominal flight of one threat (no dispersion, the RV only) as CSV text, one row per step.

    Parameters
    ----------
    threat : sim.config.ThreatConfig
        SI units; its dispersion and stage object are ignored.
    dt_s : float
        Step, s.

    Returns
    -------
    str
        Header :data:`SERIES_COLUMNS`: time since launch (s), ECEF position (m) and velocity (m/s),
        WGS-84 geodetic latitude and longitude (deg) and height (km, :func:`sim.earth.ecef_to_geodetic`),
        Earth-relative speed (m/s, the ECEF velocity's norm) and phase (boost, midcourse, re-entry),
        from launch to impact, from :func:`generate_truth` (the simulator's own truth).

    Raises
    ------
    sim.errors.InputError
        A flight the class cannot fly.
    """
    import dataclasses

    from sim.config import Dispersion
    from sim.earth import ecef_to_geodetic

    nominal = dataclasses.replace(threat, launch_time=0.0, stage_object=False, dispersion=Dispersion())
    truth = generate_truth([nominal], [0], 0, dt_s)
    flying = truth.phase[0, 0] != PHASE_NOT_FLYING
    t = truth.t[flying]
    X = truth.state[0, 0][flying]
    lat, lon, alt = ecef_to_geodetic(X[:, :3])
    speed = np.linalg.norm(X[:, 3:], axis=1)
    lines = [",".join(SERIES_COLUMNS)]
    for k in range(t.size):
        lines.append(f"{t[k]:.3f},{X[k, 0]:.3f},{X[k, 1]:.3f},{X[k, 2]:.3f},{X[k, 3]:.4f},{X[k, 4]:.4f},"
                     f"{X[k, 5]:.4f},{np.degrees(lat[k]):.7f},{np.degrees(lon[k]):.7f},{alt[k] / 1e3:.4f},"
                     f"{speed[k]:.4f},{PHASE_NAMES[int(truth.phase[0, 0][flying][k])]}")
    return "\n".join(lines) + "\n"
