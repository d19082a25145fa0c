"""Equations of motion of a ballistic missile in ECEF and their batched RK4 integration.

State ``x = [r, v]`` (m, m/s) in the rotating WGS-84 ECEF frame, velocity
relative to the Earth (so also to the still air):

.. math::

    \\dot{\\mathbf v} = \\mathbf g_{J2}(\\mathbf r) - 2\\boldsymbol\\omega\\times\\mathbf v
        - \\boldsymbol\\omega\\times(\\boldsymbol\\omega\\times\\mathbf r)
        + \\frac{F(\\tau)}{m(\\tau)}\\,\\hat{\\mathbf u}(\\tau)
        - \\frac{\\rho(h)\\,|\\mathbf v|\\,\\mathbf v}{2\\beta}
        + \\frac{L}{D}\\,\\frac{\\rho(h)\\,|\\mathbf v|^2}{2\\beta}\\,\\hat{\\mathbf n}

(Zipfel 2007, sec. 10.2; Vallado 2013 eq. 8-30 for :math:`\\mathbf g_{J2}`).
:math:`\\tau` is the time since launch. Thrust :math:`F` and mass :math:`m`
follow the stage table (constant mass flow); the thrust direction
:math:`\\hat{\\mathbf u}` is the steering program of :class:`Program`:
vertical rise, a linear pitch-over by the kick angle toward the aim azimuth,
then a gravity turn (thrust along the Earth-relative velocity), until the
thrust-termination (cut-off) time; or, for the depressed shape, a
pitch-and-hold program (linear pitch-down by the kick angle over
:data:`PITCH_HOLD_FRACTION` of the powered flight, then that attitude held in
the launch frame). In boost the drag uses the stack's
:math:`C_DA` and current mass (:math:`\\beta = m/C_DA`); after cut-off each
object uses its own ballistic coefficient :math:`\\beta`. Lift (quasi-ballistic
glide and pull-up) acts in the vertical plane of the velocity, along
:math:`\\hat{\\mathbf n}`, the local up direction made orthogonal to the velocity;
the glide lift is the one that pulls the path toward level flight, limited to
:math:`L/D` times the drag (see :func:`acceleration`).

Integration is a classical fixed-step RK4 over a batch of N objects that
share the time since launch, so every per-step quantity that depends only on
:math:`\\tau` (stage, thrust, mass) is a scalar and the rest is vectorized over
the batch. Step boundaries fall exactly on every discontinuity (end of the
vertical rise and of the pitch-over, staging, cut-off); discontinuous switches
are evaluated at the step midpoint so that the four RK4 stages see one branch.

References
----------
Zipfel, *Modeling and Simulation of Aerospace Vehicle Dynamics*, 2nd ed., AIAA 2007;
Vallado, *Fundamentals of Astrodynamics and Applications*, 4th ed., 2013;
Zarchan, *Tactical and Strategic Missile Guidance*, 6th ed., AIAA 2012 (ch. 36-37:
gravity turn and thrust-termination range control of ballistic missiles);
Press et al., *Numerical Recipes*, 3rd ed., 2007, sec. 17.1 (RK4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.atmosphere import TOP_OF_ATMOSPHERE, density
from sim.earth import EARTH_ROTATION_RATE, FLATTENING, GM, J2, SEMI_MAJOR_AXIS, enu_rotation, geodetic_to_ecef
from sim.missiles import MissileClass

_B = SEMI_MAJOR_AXIS * (1.0 - FLATTENING)  # m, semi-minor axis
_AB = SEMI_MAJOR_AXIS * _B
_K_J2 = 1.5 * J2 * GM * SEMI_MAJOR_AXIS**2
PITCH_OVER_DURATION = 10.0  # s, linear pitch-over from vertical to the kick angle (assumption)
# Depressed pitch program (pitch-and-hold, as the V-2 and Scud-family open-loop programs): the
# thrust pitches down linearly from the vertical to the kick angle over this fraction of the
# powered flight after the vertical rise, then holds that attitude in the launch frame to cut-off.
PITCH_HOLD_FRACTION = 0.6  # assumption
STEP_BOOST = 1.0  # s, RK4 step while any object thrusts (classes burning 60 s or more)
STEP_BOOST_SHORT = 0.5  # s, boost step of short-burn classes (high acceleration low in the air, e.g. KN-23)
STEP_ATMOSPHERE = 0.5  # s, RK4 step while any active object is (or will be within a step) below 125 km
STEP_VACUUM = 20.0  # s, RK4 step above the atmosphere (RK4 local error there < 1 mm)
_ATMOSPHERE_GUARD = TOP_OF_ATMOSPHERE + 5_000.0  # m
_R_AIR = SEMI_MAJOR_AXIS + TOP_OF_ATMOSPHERE  # m; a geocentric radius above this is above the atmosphere

# Pull-up manoeuvre window (assumption, after the KN-23 / Iskander reports of a terminal
# pull-up in the 20-40 km band): lift on while descending between these heights.
PULLUP_TOP = 35_000.0  # m
PULLUP_BOTTOM = 12_000.0  # m
_PULLUP_SOFT = 2_000.0  # m, logistic width of the window edges (keeps the dynamics smooth)
_PULLUP_VZ_SOFT = 100.0  # m/s, logistic width of the "descending" switch
_LIFT_SOFT = 0.5  # m/s^2, width of the smooth saturation of the glide lift
GLIDE_PULLOUT_TIME = 10.0  # s, time constant of the glide's pull toward level flight (assumption)


def height_fast(r):
    """Height above the WGS-84 ellipsoid along the geocentric radius, ``(...)`` m.

    :math:`h = |\\mathbf r| - R(\\phi_c)` with :math:`R(\\phi_c) = ab/\\sqrt{b^2\\cos^2\\phi_c + a^2\\sin^2\\phi_c}`
    the ellipsoid radius at the geocentric latitude. It is exact at h = 0 (so
    impact points are on the ellipsoid) and differs from the geodetic height
    by about :math:`h\\,\\delta^2/2` (< 1 m below 150 km, ~20 m at 4,000 km),
    which only affects density and phase labels, far below any tolerance.
    Cheaper than an iterative geodetic conversion in the RK4 hot loop. Integer
    and float32 inputs are cast to float64 first (an int32 square overflows).
    """
    r = np.asarray(r, dtype=np.float64)
    p2 = r[..., 0] ** 2 + r[..., 1] ** 2
    z2 = r[..., 2] ** 2
    rn2 = p2 + z2
    R = SEMI_MAJOR_AXIS * _B / np.sqrt((_B * _B * p2 + SEMI_MAJOR_AXIS**2 * z2) / rn2)
    return np.sqrt(rn2) - R


@dataclass(frozen=True)
class Program:
    """Steering, propulsion and aerodynamics of a batch of N objects of one missile class.

    Attributes
    ----------
    missile : MissileClass
    up : ndarray, shape (N, 3)
        Geodetic up unit vector at the launch point (ECEF).
    aim : ndarray, shape (N, 3)
        Horizontal unit vector along the aim azimuth at the launch point (ECEF).
    kick : ndarray, shape (N,)
        Pitch-over (kick) angle from the vertical, rad.
    t_cut : ndarray, shape (N,)
        Thrust termination time since launch, s (<= total burn time).
    beta : ndarray, shape (N,)
        Ballistic coefficient after cut-off, kg/m^2.
    lift_glide : ndarray, shape (N,)
        L/D of the quasi-ballistic glide after cut-off (0 for none).
    lift_pullup : ndarray, shape (N,)
        L/D of the terminal pull-up (0 for none), see :data:`PULLUP_TOP`.
    pitch_program : bool
        True: the depressed pitch-and-hold boost (``kick`` is the held pitch
        angle from the vertical); False: pitch-over and gravity turn.
    """

    missile: MissileClass
    up: np.ndarray
    aim: np.ndarray
    kick: np.ndarray
    t_cut: np.ndarray
    beta: np.ndarray
    lift_glide: np.ndarray
    lift_pullup: np.ndarray
    pitch_program: bool = False

    def __post_init__(self):
        # Derived constants of the hot loop (acceleration), computed once per program.
        d = object.__setattr__
        d(self, "t_cut_min", float(np.min(self.t_cut)))
        d(self, "t_cut_max", float(np.max(self.t_cut)))
        d(self, "inv_beta", 1.0 / self.beta)
        d(self, "any_glide", bool(np.any(self.lift_glide)))
        d(self, "any_pullup", bool(np.any(self.lift_pullup)))
        d(self, "inv_pitch_time",
          1.0 / np.maximum(PITCH_HOLD_FRACTION * (self.t_cut - self.missile.vertical_rise), 1e-9))

    @property
    def n(self) -> int:
        return self.kick.shape[0]

    def breakpoints(self) -> np.ndarray:
        """Sorted times since launch where the right-hand side is discontinuous, s."""
        m = self.missile
        t_end = np.cumsum([s.burn_time for s in m.stages])
        tc = float(np.max(self.t_cut))
        pts = [0.0, m.vertical_rise, m.vertical_rise + PITCH_OVER_DURATION, *t_end, *np.unique(self.t_cut)]
        if self.pitch_program:  # end of the pitch-down of each object (the attitude is held after it)
            pts.extend(np.unique(m.vertical_rise + PITCH_HOLD_FRACTION * (self.t_cut - m.vertical_rise)))
        pts = np.unique(np.round(np.array([p for p in pts if p <= tc + 1e-9]), 9))
        return pts


def make_program(missile: MissileClass, lat, lon, azimuth, kick, t_cut, beta, lift_glide=0.0, lift_pullup=0.0,
                 pitch_program: bool = False):
    """Build a :class:`Program` for N objects launched from one site.

    Parameters
    ----------
    missile : MissileClass
    lat, lon : float
        Launch point, geodetic, rad.
    azimuth : array_like, shape (N,) or scalar
        Aim azimuth, rad clockwise from north.
    kick, t_cut, beta, lift_glide, lift_pullup : array_like, shape (N,) or scalar
        See :class:`Program`.
    pitch_program : bool
        See :class:`Program`.
    """
    az, kick, t_cut, beta, lg, lp = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (azimuth, kick, t_cut, beta, lift_glide, lift_pullup))
    )
    E = enu_rotation(lat, lon)  # rows east, north, up
    aim = np.sin(az)[:, None] * E[0] + np.cos(az)[:, None] * E[1]
    up = np.broadcast_to(E[2], aim.shape)
    return Program(missile, np.ascontiguousarray(up), np.ascontiguousarray(aim), kick.copy(), t_cut.copy(),
                   beta.copy(), lg.copy(), lp.copy(), bool(pitch_program))


class _StageTable:
    """Scalar thrust and mass of a class versus time since launch (piecewise, constant mass flow)."""

    def __init__(self, m: MissileClass):
        self.t_start = np.concatenate([[0.0], np.cumsum([s.burn_time for s in m.stages])[:-1]])
        self.t_end = self.t_start + [s.burn_time for s in m.stages]
        self.t_end_list = [float(t) for t in self.t_end]
        self.thrust = np.array([s.thrust for s in m.stages])
        self.mdot = np.array([s.mass_flow for s in m.stages])
        # Mass at the ignition of stage i: the launch mass minus all earlier stages.
        rest = [m.rv_mass + sum(s.propellant_mass + s.dry_mass for s in m.stages[i:]) for i in range(len(m.stages))]
        self.m_start = np.array(rest)

    def stage_at(self, tau_switch: float) -> int:
        """Index of the burning stage at ``tau_switch`` (-1 after the last)."""
        for i, te in enumerate(self.t_end_list):
            if tau_switch < te:
                return i
        return -1

    def thrust_mass(self, tau: float, i: int):
        """Thrust (N) and mass (kg) at ``tau`` in stage ``i``."""
        if i < 0:
            return 0.0, np.inf
        return self.thrust[i], self.m_start[i] - self.mdot[i] * (tau - self.t_start[i])


def _tables(m: MissileClass) -> _StageTable:
    tab = _TABLES.get(m.key)
    if tab is None or tab[0] is not m:
        tab = _TABLES[m.key] = (m, _StageTable(m))
    return tab[1]


_TABLES: dict = {}


def acceleration(tau: float, tau_switch: float, r, v, prog: Program):
    """Total acceleration of the batch, ``(N, 3)`` m/s^2 (module equation).

    Parameters
    ----------
    tau : float
        Time since launch, s (continuous terms: mass, pitch-over angle).
    tau_switch : float
        Time at which discontinuous switches (stage, cut-off) are evaluated,
        the midpoint of the current step.
    r, v : ndarray, shape (N, 3)
        ECEF position (m) and Earth-relative velocity (m/s).
    prog : Program

    Notes
    -----
    Written for a small number of numpy calls per evaluation (it runs four
    times per RK4 step): the height is the closed form of :func:`height_fast`
    reusing :math:`|\\mathbf r|^2`, and drag and lift are skipped outright when
    every object is above :data:`sim.atmosphere.TOP_OF_ATMOSPHERE`.
    """
    m = prog.missile
    # Gravity: point mass + J2 (Vallado 2013 eq. 8-30), inlined from sim.gravity.gravity_j2 for speed:
    # g = -(GM/r^3 + k (1 - 5 z^2/r^2)) r - 2 k z e_z with k = 3/2 J2 GM a^2 / r^5.
    x, y, z = r[:, 0], r[:, 1], r[:, 2]
    r2 = x * x + y * y + z * z
    rn = np.sqrt(r2)
    inv_r2 = 1.0 / r2
    z2r2 = z * z * inv_r2
    k = _K_J2 * inv_r2 * inv_r2 / rn
    gm = GM * inv_r2 / rn
    a = r * (-(gm + k * (1.0 - 5.0 * z2r2)))[:, None]
    a[:, 2] -= 2.0 * k * z
    # Centrifugal and Coriolis terms of the rotating frame (omega along +z).
    w = EARTH_ROTATION_RATE
    a[:, :2] += (w * w) * r[:, :2]
    a[:, 0] += (2.0 * w) * v[:, 1]
    a[:, 1] -= (2.0 * w) * v[:, 0]

    tab = _tables(m)
    if tau_switch < prog.t_cut_min:
        powered = True  # every object thrusts
    elif tau_switch >= prog.t_cut_max:
        powered = False
    else:
        powered = prog.t_cut > tau_switch  # (N,)
    any_powered = powered is not False
    i_stage = tab.stage_at(tau_switch) if any_powered else -1
    any_powered = any_powered and i_stage >= 0
    speed = None
    if any_powered:
        F, mass = tab.thrust_mass(tau, i_stage)
        # Steering program: vertical rise, linear pitch-over, gravity turn (Zarchan 2012 ch. 36),
        # or the pitch-and-hold program of the depressed shape.
        if tau_switch < m.vertical_rise:
            u = prog.up
        elif prog.pitch_program:
            th = prog.kick * np.minimum((tau - m.vertical_rise) * prog.inv_pitch_time, 1.0)
            u = np.cos(th)[:, None] * prog.up + np.sin(th)[:, None] * prog.aim
        elif tau_switch < m.vertical_rise + PITCH_OVER_DURATION:
            th = prog.kick * ((tau - m.vertical_rise) / PITCH_OVER_DURATION)
            u = np.cos(th)[:, None] * prog.up + np.sin(th)[:, None] * prog.aim
        else:
            speed = np.sqrt(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1] + v[:, 2] * v[:, 2])
            u = v / np.maximum(speed, 1e-9)[:, None]
        f = F / mass
        if powered is True:
            a += f * u
        else:
            a += np.where(powered, f, 0.0)[:, None] * u
    if np.min(rn) < _R_AIR:
        # Height above the ellipsoid along the geocentric radius (height_fast), from r^2 and z^2/r^2.
        h = rn - _AB / np.sqrt(_B * _B + (SEMI_MAJOR_AXIS**2 - _B * _B) * z2r2)
        if np.min(h) >= TOP_OF_ATMOSPHERE:
            return a
        if speed is None:
            speed = np.sqrt(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1] + v[:, 2] * v[:, 2])
        rho = density(h)
        if any_powered:
            inv_beta = m.drag_area / mass if powered is True else np.where(powered, m.drag_area / mass, prog.inv_beta)
        else:
            inv_beta = prog.inv_beta
        q_over_beta = 0.5 * rho * speed * inv_beta  # drag acceleration / speed
        a -= q_over_beta[:, None] * v
        glide = prog.any_glide
        pull = prog.any_pullup
        if (glide or pull) and powered is not True:
            # Lift in the vertical plane of the velocity, along n: the local up made
            # orthogonal to the velocity (|rhat - (rhat.vhat) vhat| = cos(gamma)).
            vz = (v[:, 0] * x + v[:, 1] * y + v[:, 2] * z) / rn
            inv_speed = 1.0 / np.maximum(speed, 1e-9)
            sin_g = np.clip(vz * inv_speed, -1.0, 1.0)
            cos_g = np.sqrt(np.maximum(1.0 - sin_g * sin_g, 1e-24))
            drag_acc = q_over_beta * speed
            lift_acc = 0.0
            if glide:
                # Quasi-ballistic glide: the lift that pulls the flight path toward the
                # horizontal, v dgamma/dt = -v gamma / tau_g, on top of the equilibrium lift
                # (g - v^2/r) cos(gamma) that holds it (Vinh, Busemann & Culp 1980 ch. 4;
                # Zipfel 2007 sec. 10.4), limited to [0, (L/D) x drag]. It never pushes
                # the path above the horizontal, so the body glides instead of skipping.
                l_eq = (gm * rn - speed * speed / rn) * cos_g
                l_cmd = l_eq - speed * np.arcsin(sin_g) / GLIDE_PULLOUT_TIME
                # Smooth saturation (width _LIFT_SOFT) instead of a hard clip: a kink in the
                # right-hand side would cost RK4 its order wherever the lift saturates.
                l_pos = 0.5 * (l_cmd + np.sqrt(l_cmd * l_cmd + _LIFT_SOFT**2))
                l_max = prog.lift_glide * drag_acc
                d_l = l_pos - l_max
                lift_acc = l_max + 0.5 * (d_l - np.sqrt(d_l * d_l + _LIFT_SOFT**2))
            if pull:
                # Terminal pull-up: full lift (L/D x drag) while descending through the window.
                win = (_logistic((PULLUP_TOP - h) / _PULLUP_SOFT) * _logistic((h - PULLUP_BOTTOM) / _PULLUP_SOFT)
                       * _logistic(-vz / _PULLUP_VZ_SOFT))
                lift_acc = np.maximum(lift_acc, prog.lift_pullup * drag_acc * win)
            if powered is not False:
                lift_acc = np.where(powered, 0.0, lift_acc)
            c = lift_acc / cos_g
            a += (c / rn)[:, None] * r - (c * sin_g * inv_speed)[:, None] * v
    return a


def _logistic(s):
    return 0.5 * (1.0 + np.tanh(0.5 * s))


def rk4_step(tau: float, h: float, X, prog: Program):
    """One classical RK4 step of the batch, ``X (N, 6) -> (N, 6)`` (Numerical Recipes eq. 17.1.3)."""
    ts = tau + 0.5 * h
    r, v = X[:, :3], X[:, 3:]
    a1 = acceleration(tau, ts, r, v, prog)
    r2 = r + 0.5 * h * v
    v2 = v + 0.5 * h * a1
    a2 = acceleration(ts, ts, r2, v2, prog)
    r3 = r + 0.5 * h * v2
    v3 = v + 0.5 * h * a2
    a3 = acceleration(ts, ts, r3, v3, prog)
    r4 = r + h * v3
    v4 = v + h * a3
    a4 = acceleration(tau + h, ts, r4, v4, prog)
    out = np.empty_like(X)
    out[:, :3] = r + (h / 6.0) * (v + 2.0 * v2 + 2.0 * v3 + v4)
    out[:, 3:] = v + (h / 6.0) * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
    return out


def hermite(Xa, Xb, h, s):
    """Cubic Hermite interpolation of states between two RK4 nodes.

    Parameters
    ----------
    Xa, Xb : ndarray, shape (N, 6)
        States at the step ends (position and its derivative, velocity).
    h : float
        Step, s.
    s : ndarray, shape (N,)
        Fraction of the step in [0, 1].

    Returns
    -------
    ndarray, shape (N, 6)
        Interpolated position (cubic Hermite) and velocity (its derivative).
        Accelerations are not used, so velocity errors are of order h^3 x''''.
    """
    s = s[:, None]
    s2, s3 = s * s, s * s * s
    ra, rb, va, vb = Xa[:, :3], Xb[:, :3], Xa[:, 3:] * h, Xb[:, 3:] * h
    pos = (2 * s3 - 3 * s2 + 1) * ra + (s3 - 2 * s2 + s) * va + (-2 * s3 + 3 * s2) * rb + (s3 - s2) * vb
    vel = ((6 * s2 - 6 * s) * ra + (3 * s2 - 4 * s + 1) * va + (-6 * s2 + 6 * s) * rb + (3 * s2 - 2 * s) * vb) / h
    return np.concatenate([pos, vel], axis=1)


@dataclass
class FlightResult:
    """Summary of a batch integration (arrays over the N objects).

    Attributes
    ----------
    impact_tau : ndarray, shape (N,)
        Time since launch of the crossing of the ellipsoid, s (NaN: none before ``tau_max``).
    impact_state : ndarray, shape (N, 6)
        ECEF state at impact.
    apogee : ndarray, shape (N,)
        Maximum height, m.
    burnout_state : ndarray, shape (N, 6)
        State at the cut-off time (before any burnout impulse).
    max_speed : ndarray, shape (N,)
        Maximum Earth-relative speed at the RK4 nodes, m/s.
    vacuum_span : tuple of float
        First and last time since launch of the exo-atmospheric (large) steps,
        (nan, nan) if none.
    node_tau : ndarray, shape (K,) or None
        RK4 node times when recorded; the cut-off time appears twice (state
        before and after the burnout impulse), so ``searchsorted(node_tau, tau,
        "right") - 1`` picks the right interval.
    node_state : ndarray, shape (K, N, 6) or None
        States at the nodes (meaningless after an object's impact).
    """

    impact_tau: np.ndarray
    impact_state: np.ndarray
    apogee: np.ndarray
    burnout_state: np.ndarray
    max_speed: np.ndarray
    vacuum_span: tuple = (np.nan, np.nan)
    node_tau: np.ndarray | None = None
    node_state: np.ndarray | None = None


def launch_state(lat, lon, n: int):
    """ECEF state ``(n, 6)`` at rest on the ellipsoid at a launch point (rad)."""
    X = np.zeros((n, 6))
    X[:, :3] = geodetic_to_ecef(lat, lon, 0.0)
    return X


def _radial(X):
    """Height (m), vertical speed (m/s) and speed (m/s) of states ``X (N, 6)``, one pass."""
    x, y, z, vx, vy, vz = X[:, 0], X[:, 1], X[:, 2], X[:, 3], X[:, 4], X[:, 5]
    p2 = x * x + y * y
    z2 = z * z
    rn2 = p2 + z2
    rn = np.sqrt(rn2)
    h = rn - SEMI_MAJOR_AXIS * _B / np.sqrt((_B * _B * p2 + SEMI_MAJOR_AXIS**2 * z2) / rn2)
    return h, (vx * x + vy * y + vz * z) / rn, np.sqrt(vx * vx + vy * vy + vz * vz)


def fly(prog: Program, X0, tau_max: float = 20_000.0, burnout_dv=None, on_step=None,
        vacuum_window=None, record: bool = False) -> FlightResult:
    """Integrate a batch from launch to impact with fixed-step RK4.

    Parameters
    ----------
    prog : Program
        N objects of one class.
    X0 : ndarray, shape (N, 6)
        States at launch (tau = 0).
    tau_max : float
        Stop after this time since launch, s.
    burnout_dv : ndarray, shape (N,), optional
        Speed increment (m/s) added along the velocity at each object's
        cut-off (burnout-speed dispersion as an impulse).
    on_step : callable, optional
        ``on_step(tau_a, X_a, tau_b, X_b, active, impact_tau)`` after each
        step: ``X_b`` is the state at ``tau_b`` *before* any burnout impulse
        applied at ``tau_b`` (so the step is one smooth arc), ``active`` (N,)
        marks objects not yet impacted at ``tau_a`` and ``impact_tau`` (N,)
        holds the impact times found so far (NaN: none yet). Used to sample
        outputs by Hermite interpolation while integrating.
    vacuum_window : (float, float), optional
        If given, large steps are taken only inside this span of time since
        launch (a schedule fixed in advance, so that an object's trajectory
        does not depend on the other members of the batch); an object found
        below 125 km there still forces small steps (accuracy first).
    record : bool
        Keep every node (``node_tau``, ``node_state``).

    Returns
    -------
    FlightResult

    Notes
    -----
    Steps: :data:`STEP_BOOST` (:data:`STEP_BOOST_SHORT` for a class burning
    less than 60 s) between the breakpoints of the program while
    any object thrusts, then :data:`STEP_ATMOSPHERE` whenever an active
    object is (or could be, within one vacuum step) below 125 km, else
    :data:`STEP_VACUUM`. The impact is found by secant iterations of the
    height along the Hermite interpolant within the step that crosses h = 0.
    """
    n = prog.n
    X = np.array(X0, dtype=np.float64)
    active = np.ones(n, dtype=bool)
    impact_tau = np.full(n, np.nan)
    impact_state = np.full((n, 6), np.nan)
    apogee = np.zeros(n)
    max_speed = np.zeros(n)
    burnout = np.full((n, 6), np.nan)
    h_prev, vz_prev, _ = _radial(X)
    bps = prog.breakpoints()
    t_cut = prog.t_cut
    t_rise = prog.missile.vertical_rise
    grid = [0.0]
    step_boost = STEP_BOOST if prog.missile.burn_time >= 60.0 else STEP_BOOST_SHORT
    for a, b in zip(bps[:-1], bps[1:]):
        k = max(1, int(np.ceil((b - a) / step_boost - 1e-9)))
        grid.extend(np.linspace(a, b, k + 1)[1:])
    tau = 0.0
    j = 1
    vac = [np.nan, np.nan]
    nodes_t, nodes_x = ([0.0], [X.copy()]) if record else (None, None)
    n_active = n
    while n_active and tau < tau_max:
        if j < len(grid):
            tb = grid[j]
            j += 1
        else:
            if n_active == n:
                low = np.min(h_prev + np.minimum(vz_prev, 0.0) * STEP_VACUUM) < _ATMOSPHERE_GUARD
            else:
                low = np.min((h_prev + np.minimum(vz_prev, 0.0) * STEP_VACUUM)[active]) < _ATMOSPHERE_GUARD
            if vacuum_window is not None and not (vacuum_window[0] <= tau and tau + STEP_VACUUM <= vacuum_window[1]):
                low = True
            tb = tau + (STEP_ATMOSPHERE if low else STEP_VACUUM)
            if not low:
                vac[0] = tau if np.isnan(vac[0]) else vac[0]
                vac[1] = tb
        hstep = tb - tau
        Xb = rk4_step(tau, hstep, X, prog)
        Xb_arc = Xb
        # Burnout: record the state, then apply the speed dispersion impulse.
        cut_now = np.abs(t_cut - tb) < 1e-7
        any_cut = bool(cut_now.any())
        if any_cut:
            burnout[cut_now] = Xb[cut_now]
            if record:
                nodes_t.append(tb)
                nodes_x.append(Xb.copy())
            if burnout_dv is not None:
                Xb_arc = Xb.copy()
                vb = Xb[cut_now, 3:]
                Xb[cut_now, 3:] = vb + (burnout_dv[cut_now] / np.linalg.norm(vb, axis=1))[:, None] * vb
        hb, vzb, spd = _radial(Xb)
        # Apogee: the height is near-quadratic in a step, so the vertex of the parabola
        # through the end heights and vertical speeds (linear vz) is exact to O(h^3).
        top = (vz_prev > 0) & (vzb <= 0) & active
        if top.any():
            s = vz_prev[top] / (vz_prev[top] - vzb[top])
            Xm = hermite(X[top], Xb[top], hstep, s)
            apogee[top] = np.maximum(apogee[top], height_fast(Xm[:, :3]))
        np.maximum(apogee, np.where(active, np.maximum(h_prev, hb), 0.0), out=apogee)
        np.maximum(max_speed, np.where(active, spd, 0.0), out=max_speed)
        hit = (hb < 0.0) & active
        if tb > t_rise and hit.any():
            idx = np.flatnonzero(hit)
            s0, s1 = np.zeros(idx.size), np.ones(idx.size)
            f0, f1 = h_prev[idx], hb[idx]
            Xa_i, Xb_i = X[idx], Xb_arc[idx]
            for _ in range(30):  # secant / regula falsi on the Hermite interpolant
                s = np.clip(s1 - f1 * (s1 - s0) / np.where(f1 != f0, f1 - f0, 1.0), 0.0, 1.0)
                fs = height_fast(hermite(Xa_i, Xb_i, hstep, s)[:, :3])
                s0, f0, s1, f1 = s1, f1, s, fs
                if np.all(np.abs(fs) < 1e-4):
                    break
            impact_tau[idx] = tau + s1 * hstep
            impact_state[idx] = hermite(Xa_i, Xb_i, hstep, s1)
        else:
            idx = None
        if on_step is not None:
            on_step(tau, X, tb, Xb_arc, active, impact_tau)
        if idx is not None:
            active[idx] = False
            n_active -= idx.size
        X = Xb
        h_prev, vz_prev = hb, vzb
        tau = tb
        if record:
            nodes_t.append(tb)
            nodes_x.append(Xb)
    if record:
        return FlightResult(impact_tau, impact_state, apogee, burnout, max_speed, tuple(vac),
                            np.array(nodes_t), np.stack(nodes_x))
    return FlightResult(impact_tau, impact_state, apogee, burnout, max_speed, tuple(vac))
