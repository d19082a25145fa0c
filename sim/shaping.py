"""Trajectory shaping: the steering that flies a class to a ground range with a given shape.

The steering program of :mod:`sim.dynamics` has two free parameters: the
pitch-over (kick) angle :math:`\\kappa` and the thrust-termination time
:math:`t_c` (energy cut-off). For a given class and launch geometry they map
to the ground range :math:`R(\\kappa, t_c)` and the apogee height
:math:`A(\\kappa, t_c)`:

``minimum-energy``
    the smallest energy that reaches the range: :math:`R(\\kappa, t_c) = R^*`
    and :math:`\\partial R/\\partial\\kappa = 0` (the range is maximal over the
    kick at that cut-off time).
``lofted``, ``depressed``
    :math:`R = R^*` and :math:`A = A^*`, with the apogee above (lofted) or
    below (depressed) the minimum-energy apogee :math:`A_{me}(R^*)`. A lofted
    apogee is bounded above by the full-burn (:math:`t_c` = burn time) lofted
    trajectory. A depressed apogee lies in :math:`[A_{min}(R^*), A_{me}(R^*)]`,
    where :math:`A_{min}` is the lowest apogee on the contour
    :math:`R(\\kappa, t_c) = R^*` of the depressed (pitch-and-hold) program:
    for a multi-stage class the lowest apogee at a given range comes from a cut
    before full burn at the largest hold angle, not from the full burn (a full
    burn with the thrust held horizontal overshoots the range of the class). The
    pitch-and-hold boost climbs while it pitches down, and the held attitude is
    fixed in the launch frame, so a long burn still ends climbing: beyond some
    range :math:`A_{min} > A_{me}` and the class cannot fly a depressed
    trajectory there (the error names the ranges where it can).

Both are solved with :func:`scipy.optimize.least_squares` (bounded
trust-region reflective) on the batched RK4 flights, the Jacobian by finite
differences evaluated as extra members of the same batch. The start point
comes from a coarse grid scan over :math:`(\\kappa, t_c)`, which also gives
the feasible intervals named in the errors (linear interpolation along the
grid edges that the contour :math:`R = R^*` crosses). The aim azimuth is then
corrected once so that the impact lies on the requested bearing (Coriolis
deflects the gravity turn).

A class with a gliding body (``glide_lift_to_drag`` > 0, the KN-23) flies its
``depressed`` shape as a quasi-ballistic glide: after burnout, lift at that
L/D holds the body in the upper atmosphere, which is how a 50 km apogee
reaches 600 km. The ``pull-up`` manoeuvre adds a terminal pull-up (see
:data:`sim.dynamics.PULLUP_TOP`); the steering is solved with it, so the
range is still met.

References
----------
Zarchan, *Tactical and Strategic Missile Guidance*, 6th ed., AIAA 2012, ch. 36-37;
Wheelon, "Free flight of a ballistic missile", *ARS Journal* 29, 1959 (minimum-energy
trajectory); Wright, Postol et al., UCS analyses of lofted North Korean tests (2017).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from sim import dynamics as dyn
from sim.config import MANEUVERS, SHAPES
from sim.earth import ecef_to_geodetic, geodesic_inverse
from sim.errors import InputError, did_you_mean
from sim.missiles import MISSILES, MissileClass

RANGE_TOL = 0.002  # relative; the solver aims well inside the 1 % contract
APOGEE_TOL = 0.005  # relative; inside the 2 % contract
_STATIONARY_TOL = 2e-3  # 1/rad, |dR/dkick| / R at the minimum-energy solution (range loss ~1e-6)
_KICK_MAX = np.radians(85.0)
_PITCH_KICK_MAX = np.radians(90.0)  # pitch-and-hold program: at most a horizontal thrust
_KICK_MIN = np.radians(0.02)
_T_CUT_MIN_AFTER_PITCH = 2.0  # s after the end of the pitch-over
_AIM_TOL = np.radians(0.02)  # rad, impact azimuth off the bearing that ends the re-aim
_AIM_DIVERGED = np.radians(1.0)  # rad, a miss left by the unit-slope re-aim that calls the secant re-aim


@dataclass(frozen=True)
class Nominal:
    """A solved nominal flight of one class (no dispersion).

    Attributes
    ----------
    missile : str
        Catalog key.
    launch_lat, launch_lon : float
        rad.
    azimuth : float
        Aim azimuth of the steering, rad (corrected for the Coriolis deflection).
    kick : float
        Pitch-over angle, rad.
    t_cut : float
        Thrust termination time since launch, s.
    lift_glide, lift_pullup : float
        L/D of the glide and of the pull-up after burnout.
    range, apogee, flight_time : float
        Achieved ground range (m), apogee height (m) and time of flight (s).
    burnout_speed, max_speed : float
        m/s, Earth-relative.
    impact_lat, impact_lon : float
        rad.
    shape, maneuver : str
    pitch_program : bool
        True for the pitch-and-hold boost of the ``depressed`` shape (see
        :data:`sim.dynamics.PITCH_HOLD_FRACTION`), False for the gravity turn.
    """

    missile: str
    launch_lat: float
    launch_lon: float
    azimuth: float
    kick: float
    t_cut: float
    lift_glide: float
    lift_pullup: float
    range: float
    apogee: float
    flight_time: float
    burnout_speed: float
    max_speed: float
    impact_lat: float
    impact_lon: float
    shape: str
    maneuver: str
    pitch_program: bool = False


def _fly_batch(m: MissileClass, lat, lon, az, kick, t_cut, lift_glide, lift_pullup, pitch_program=False):
    """Fly N candidates; return range (m), apogee (m), flight time (s), impact azimuth (deg), result."""
    prog = dyn.make_program(m, lat, lon, az, kick, t_cut, m.rv_ballistic_coeff, lift_glide, lift_pullup,
                            pitch_program)
    res = dyn.fly(prog, dyn.launch_state(lat, lon, prog.n), tau_max=8_000.0)
    ilat, ilon, _ = ecef_to_geodetic(res.impact_state[:, :3])
    ok = np.isfinite(res.impact_tau)
    n = prog.n
    rng = np.zeros(n)
    azi = np.full(n, np.nan)
    if ok.any():
        a, d = geodesic_inverse(np.full(ok.sum(), np.degrees(lat)), np.full(ok.sum(), np.degrees(lon)),
                                np.degrees(ilat[ok]), np.degrees(ilon[ok]))
        # Signed down-range: an impact behind the launch point (a near-vertical flight drifts
        # west as the Earth turns under it) counts negative, so range grows monotonically with the kick.
        rng[ok] = d * np.sign(np.cos(np.radians(a) - az))
        azi[ok] = a
    # A candidate that does not come down (near-orbital) counts as out of range.
    rng[~ok] = np.inf
    return rng, res.apogee, res.impact_tau, azi, res


def _t_cut_min(m: MissileClass) -> float:
    return m.vertical_rise + dyn.PITCH_OVER_DURATION + _T_CUT_MIN_AFTER_PITCH


@functools.lru_cache(maxsize=64)
def _scan(key: str, lat: float, lon: float, az: float, lift_glide: float, lift_pullup: float,
          pitch_program: bool = False):
    """Coarse (kick, cut-off) grid: ranges and apogees, shape (n_cut, n_kick)."""
    m = MISSILES[key]
    if pitch_program:
        # Pitch-and-hold: the hold attitude spans the whole quadrant (90 deg: thrust horizontal).
        kicks = np.radians(np.linspace(10.0, 90.0, 21))
        # Cut-off rows from early cuts (short ranges at a low apogee) and dense near full burn,
        # where the range of a multi-stage class grows several-fold within a few seconds of
        # cut-off: the lowest depressed apogee at a range is interpolated between rows (rows at
        # 0.85 and 1.0 alone put it 10 % high at 12,000 km for the Hwasong-15).
        fr = np.array([0.3, 0.42, 0.55, 0.65, 0.75, 0.83, 0.89, 0.93, 0.96, 0.98, 1.0])
    else:
        kicks = np.concatenate([np.radians(np.geomspace(0.05, 3.0, 8)), np.radians(np.linspace(4.0, 85.0, 19))])
        fr = np.array([0.55, 0.7, 0.85, 1.0])
    t_cuts = np.maximum(_t_cut_min(m), fr * m.burn_time)
    K, Tc = np.meshgrid(kicks, t_cuts)
    rng, apo, _, _, _ = _fly_batch(m, lat, lon, az, K.ravel(), Tc.ravel(), lift_glide, lift_pullup, pitch_program)
    return kicks, t_cuts, rng.reshape(K.shape), apo.reshape(K.shape)


def _envelope(kicks, rng_row, apo_row, R):
    """Full-burn row: max range, kick at max, and apogees where the row reaches R on each side."""
    r = np.where(np.isfinite(rng_row), rng_row, 0.0)
    i = int(np.argmax(r))
    lo = hi = np.nan
    if r[i] >= R:
        # Lofted side: kicks below the max-range kick, range increasing with kick.
        left = r[: i + 1]
        j = np.flatnonzero(left >= R)
        if j.size and j[0] > 0:
            j0 = j[0]
            w = (R - left[j0 - 1]) / (left[j0] - left[j0 - 1])
            hi = apo_row[j0 - 1] + w * (apo_row[j0] - apo_row[j0 - 1])
        elif j.size:
            hi = apo_row[0]
        right = r[i:]
        j = np.flatnonzero(right < R)
        if j.size:
            j0 = i + j[0]
            w = (r[j0 - 1] - R) / (r[j0 - 1] - r[j0])
            lo = apo_row[j0 - 1] + w * (apo_row[j0] - apo_row[j0 - 1])
        else:
            lo = apo_row[-1]
    return r[i], kicks[i], lo, hi


def _minimum_energy_curve(kicks, t_cuts, rng, apo, R):
    """Minimum-energy apogee, cut-off and kick at range ``R`` from a scan grid.

    The maximum range of each cut-off row over the kick is the minimum-energy
    flight of that energy; the three are interpolated in that maximum range
    (``R`` may be an array).
    """
    r_rows = np.where(np.isfinite(rng), rng, 0.0)
    imax = np.argmax(r_rows, axis=1)
    rmax_rows = r_rows[np.arange(len(t_cuts)), imax]
    amax_rows = apo[np.arange(len(t_cuts)), imax]
    order = np.argsort(rmax_rows)
    a_me = np.interp(R, rmax_rows[order], amax_rows[order])
    t_me = np.interp(R, rmax_rows[order], t_cuts[order])
    k_me = np.interp(R, rmax_rows[order], kicks[imax][order])
    return a_me, t_me, k_me, imax


def _contour_apogees(rng, apo, R):
    """Apogees (m) where the range crosses ``R`` along the edges of a scan grid.

    Each edge between neighbouring grid points, along the kick (within a row)
    and along the cut-off (within a column), whose end ranges bracket ``R``
    gives one apogee by linear interpolation in range. Ends that do not come
    down (infinite range) or land behind the launch point (negative: a flight
    past the antipode) are left out, so no edge spans a wrap-around.
    """
    out = []
    for ra, rb, aa, ab in ((rng[:, :-1], rng[:, 1:], apo[:, :-1], apo[:, 1:]),
                           (rng[:-1], rng[1:], apo[:-1], apo[1:])):
        ok = np.isfinite(ra) & np.isfinite(rb) & (ra >= 0) & (rb >= 0) & (ra != rb)
        ok &= (np.minimum(ra, rb) <= R) & (R <= np.maximum(ra, rb))
        w = (R - ra[ok]) / (rb[ok] - ra[ok])
        out.append(aa[ok] + w * (ab[ok] - aa[ok]))
    return np.concatenate(out)


def _depressed_floor(rng, apo, R):
    """Lowest apogee (m) of the depressed program's grid at range ``R``; NaN if no grid flight brackets it."""
    a = _contour_apogees(rng, apo, R)
    return float(a.min()) if a.size else np.nan


def _minimum_energy_apogee(missile, launch_lat, launch_lon, bearing, R):
    """Apogee (m) of the solved ``minimum-energy`` flight to ``R``, the one ``--minimum-energy`` prints.

    The coarse grid's minimum-energy curve is too coarse here: for a multi-stage class
    its maximum range jumps between the last two cut-off rows (Hwasong-15: 5,900 km to
    near-orbital), so interpolating it puts the apogee at 12,000 km at 2,300 km against
    1,070 km solved. NaN if that flight cannot be solved.
    """
    try:
        # Same positional arguments as flight_summary's call, so both share the cache.
        return solve_nominal(missile, launch_lat, launch_lon, bearing, R, "minimum-energy", None, "none").apogee
    except InputError:
        return np.nan


def _depressed_reach(missile, launch_lat, launch_lon, bearing, rng, apo, R):
    """Largest ground range (m) where the depressed program flies below the minimum-energy apogee.

    The root of :math:`g = A_{min}/A_{me} - 1` in the log of the range, by
    regula falsi (Illinois variant) from the program's longest grid range
    (where it is not below) and the largest feasible one of half, a quarter, ...
    of it, to about 0.3 % of range (:math:`|g| < 0.003`; :math:`A_{min}` grows
    about as the range there, the minimum-energy apogee slowly). Starting from
    the longest range rather than the request ``R`` gives one answer per site
    and bearing (from ``R`` a trial saw 3,167 km and 3,279 km for one site);
    if the program is below at that range, the search starts from ``R``.
    NaN if no such range is found down to 1/32 of the start.
    """
    def g(r):
        a_me = _minimum_energy_apogee(missile, launch_lat, launch_lon, bearing, r)
        f = _depressed_floor(rng, apo, r) / a_me - 1.0
        return f if np.isfinite(f) else np.inf  # no depressed flight brackets r: not feasible

    finite = rng[np.isfinite(rng) & (rng > 0)]
    start = float(finite.max()) if finite.size else R
    g_start = g(start)
    if g_start < 0:
        start, g_start = R, g(R)
    x_hi, g_hi = np.log(start), g_start
    x_lo = x_hi
    for _ in range(5):
        x_lo -= np.log(2.0)
        g_lo = g(np.exp(x_lo))
        if g_lo < 0:
            break
        x_hi, g_hi = x_lo, g_lo
    else:
        return np.nan
    moved = 0  # which end the last step moved (-1 lower, +1 upper), for the Illinois halving
    for _ in range(12):
        # Bisect while the upper end has no finite value (no depressed flight brackets that range).
        x = x_lo - g_lo * (x_hi - x_lo) / (g_hi - g_lo) if np.isfinite(g_hi) else 0.5 * (x_lo + x_hi)
        gx = g(np.exp(x))
        if gx < 0:
            x_lo, g_lo = x, gx
            g_hi = g_hi * 0.5 if moved == -1 else g_hi
            moved = -1
        else:
            x_hi, g_hi = x, gx
            g_lo = g_lo * 0.5 if moved == 1 else g_lo
            moved = 1
        if abs(gx) < 0.003 or x_hi - x_lo < 0.006:
            break
    return float(np.exp(x if abs(gx) < 0.003 else x_lo))


def _raise_no_depressed(missile, launch_lat, launch_lon, bearing, rng, apo, R, why):
    """Raise the error of a range the depressed program cannot fly, with the reason and the ranges it can."""
    reach = _depressed_reach(missile, launch_lat, launch_lon, bearing, rng, apo, R)
    where = (f"from this site and bearing it flies depressed only to about {reach / 1e3:.0f} km"
             if np.isfinite(reach) else "it flies no depressed trajectory from this site and bearing")
    other = ("; shapes 'minimum-energy' and 'lofted' reach this range"
             if np.isfinite(_minimum_energy_apogee(missile, launch_lat, launch_lon, bearing, R)) else "")
    raise _bad("shape", "depressed",
               f"{missile} cannot fly a depressed trajectory to {R / 1e3:.0f} km (model): {why}; {where}{other}")


def target_range_problem(problem, target, key_path: str, launch: str):
    """A ``range_km`` problem re-worded for a flight given by its target point.

    The range is computed from the target, so the user never wrote it: the problem
    names ``key_path`` (the flag or keys typed), shows ``target`` as typed and puts
    the distance in the words (new-user trials). Other problems pass unchanged.

    Parameters
    ----------
    problem : sim.errors.Problem
    target : object
        The target as the user gave it (e.g. ``"-34.5,-68"`` or ``(-33.9, 151.2)``).
    key_path : str
        What to name, e.g. ``--target`` or ``target_lat_deg/target_lon_deg``.
    launch : str
        The launch point's name in the words, e.g. ``--launch``.
    """
    if problem.key_path != "range_km":
        return problem
    far = f"it is {problem.value:,.0f} km from {launch}; " if isinstance(problem.value, (int, float)) else ""
    return replace(problem, key_path=key_path, value=target, allowed=far + problem.allowed)


def _bad(key, value, allowed):
    return InputError.single(key, value, allowed)


def _residual_solver(m, lat, lon, az, lift_glide, lift_pullup, pitch_program):
    """Memoized batch evaluation of (kick, t_cut) with finite-difference neighbours."""
    dk, dt = 2e-4, 0.05
    cache = {}

    def run(p):
        key = (float(p[0]), float(p[1]))
        if key not in cache:
            k, t = key
            t_hi = m.burn_time
            ts = t - dt if t + dt > t_hi else t + dt
            kicks = np.array([k, k + dk, k - dk, k, k + dk, k - dk])
            cuts = np.array([t, t, t, ts, ts, ts])
            rng, apo, tof, azi, res = _fly_batch(m, lat, lon, az, kicks, cuts, lift_glide, lift_pullup,
                                                 pitch_program)
            cache[key] = (rng, apo, tof, azi, res, ts - t)
        return cache[key]

    return run, dk


def _solve(m, lat, lon, az, R, shape, A, lift_glide, lift_pullup, p0):
    pitch_program = shape == "depressed"
    run, dk = _residual_solver(m, lat, lon, az, lift_glide, lift_pullup, pitch_program)
    t_lo, t_hi = _t_cut_min(m), m.burn_time

    if shape == "minimum-energy":
        def fun(p):
            rng, *_ = run(p)
            dRdk = (rng[1] - rng[2]) / (2 * dk)
            return np.array([rng[0] / R - 1.0, dRdk / R])

        def jac(p):
            rng, _, _, _, _, dts = run(p)
            dRdk = (rng[1] - rng[2]) / (2 * dk)
            d2Rdk2 = (rng[1] - 2 * rng[0] + rng[2]) / dk**2
            dRdt = (rng[3] - rng[0]) / dts
            dRdk_t = (rng[4] - rng[5]) / (2 * dk)
            d2Rdkdt = (dRdk_t - dRdk) / dts
            return np.array([[dRdk / R, dRdt / R], [d2Rdk2 / R, d2Rdkdt / R]])
    else:
        def fun(p):
            rng, apo, *_ = run(p)
            return np.array([rng[0] / R - 1.0, apo[0] / A - 1.0])

        def jac(p):
            rng, apo, _, _, _, dts = run(p)
            return np.array([
                [(rng[1] - rng[2]) / (2 * dk) / R, (rng[3] - rng[0]) / dts / R],
                [(apo[1] - apo[2]) / (2 * dk) / A, (apo[3] - apo[0]) / dts / A],
            ])

    lo = np.array([_KICK_MIN, t_lo])
    hi = np.array([_PITCH_KICK_MAX if pitch_program else _KICK_MAX, t_hi])
    p0 = np.clip(p0, lo + [1e-6, 1e-3], hi - [1e-6, 1e-3])
    # Stop as soon as the residuals are well inside the tolerances (a quarter of them): every
    # evaluation is a batch of full flights, and least_squares' own tests would go on to 1e-10.
    done = np.array([RANGE_TOL / 4, _STATIONARY_TOL if shape == "minimum-energy" else APOGEE_TOL / 4])

    def fun_stop(p):
        f = fun(p)
        if np.all(np.abs(f) < done):
            raise _Converged(np.array(p, dtype=np.float64))
        return f

    try:
        sol = least_squares(fun_stop, p0, jac=jac, bounds=(lo, hi), x_scale=np.array([0.05, 10.0]),
                            xtol=1e-10, ftol=1e-12, gtol=1e-12, max_nfev=40, method="trf")
        x = sol.x
    except _Converged as c:
        x = c.x
    return x, run(x)


def _reaim_secant(m, lat, lon, R, shape, apogee, lift_glide, lift_pullup, miss, tried):
    """Secant steps on the impact-azimuth miss when the unit-slope re-aim did not converge.

    A high lofted flight drifts far west as the Earth turns under it while it climbs, so the
    aim must carry it well past the target and the impact azimuth moves two or more times as
    fast as the aim: the unit-slope re-aim diverges (Hwasong-19 lofted to 7,690 km at 1,000 km
    landed 51 deg off the bearing). ``tried`` holds (aim, miss, steering, flight) of the passes
    so far; each step re-solves from the best of them, with the slope of the miss between the
    two best (Press et al. 2007 sec. 9.2), the step at most 20 deg. Returns the steering, the
    flight and the aim of the smallest miss found.
    """
    def key(x):
        return abs(x[1]) if np.isfinite(x[1]) else np.inf

    for _ in range(8):
        (a0, f0, p0, _), (a1, f1, _, _) = sorted(tried, key=key)[:2]
        if not np.isfinite(f0) or abs(f0) <= _AIM_TOL:
            break
        slope = (f1 - f0) / (a1 - a0) if (a1 != a0 and np.isfinite(f1) and f1 != f0) else 1.0
        az = a0 + float(np.clip(-f0 / slope, -np.radians(20.0), np.radians(20.0)))
        p, out = _solve(m, lat, lon, az, R, shape, apogee, lift_glide, lift_pullup, p0)
        tried.append((az, miss(out), p, out))
    az, _, p, out = min(tried, key=key)
    return p, out, az


class _Converged(Exception):
    """Raised from inside the least-squares residual once the request is met (carries the point)."""

    def __init__(self, x):
        super().__init__()
        self.x = x


@functools.lru_cache(maxsize=256)
def solve_nominal(missile: str, launch_lat: float, launch_lon: float, bearing: float, range_m: float,
                  shape: str = "minimum-energy", apogee: float | None = None, maneuver: str = "none") -> Nominal:
    """Solve the steering of one class for a range and shape (cached per request).

    Parameters
    ----------
    missile : str
        Key of :data:`sim.missiles.MISSILES`.
    launch_lat, launch_lon : float
        Launch point, geodetic, rad.
    bearing : float
        Azimuth of the target from the launch point, rad clockwise from north.
    range_m : float
        Ground (geodesic) range to reach, m.
    shape : str
        ``"minimum-energy"``, ``"lofted"`` or ``"depressed"``.
    apogee : float, optional
        Apogee height, m (required for lofted and depressed, not allowed otherwise).
    maneuver : str
        ``"none"`` or ``"pull-up"`` (classes with a lifting body only).

    Returns
    -------
    Nominal
        Range within 1 % and apogee within 2 % of the request.

    Raises
    ------
    sim.errors.InputError
        Unknown class, shape or manoeuvre; a range outside (0, max range] of
        the class; an apogee outside the interval the class can fly at that
        range (the error names the interval); a depressed shape at a range
        where the class flies none (the error says why and names the farthest
        range it can); a solve that does not converge.
    """
    if missile not in MISSILES:
        raise _bad("missile", missile, f"unknown name; {did_you_mean(missile, MISSILES)}allowed: {', '.join(MISSILES)}")
    if shape not in SHAPES:
        raise _bad("shape", shape, f"one of {', '.join(SHAPES)}")
    if maneuver not in MANEUVERS:
        raise _bad("maneuver", maneuver, f"one of {', '.join(MANEUVERS)}")
    m = MISSILES[missile]
    if maneuver == "pull-up" and m.glide_lift_to_drag <= 0:
        gliders = [k for k, c in MISSILES.items() if c.glide_lift_to_drag > 0]
        raise _bad("maneuver", maneuver, f"'pull-up' needs a lifting body: classes {', '.join(gliders)}")
    if not (np.isfinite(range_m) and 0 < range_m <= m.max_range):
        raise _bad("range_km", range_m / 1e3, f"{missile} flies ranges in (0, {m.max_range / 1e3:.0f}] km")
    if shape == "minimum-energy" and apogee is not None:
        raise _bad("apogee_km", apogee / 1e3, "no apogee with shape 'minimum-energy' (it follows from the range)")
    if shape != "minimum-energy" and (apogee is None or not np.isfinite(apogee) or apogee <= 0):
        raise _bad("apogee_km", None if apogee is None else apogee / 1e3,
                   f"shape '{shape}' needs a positive apogee_km")
    lift_glide = m.glide_lift_to_drag if shape == "depressed" else 0.0
    lift_pullup = m.glide_lift_to_drag if maneuver == "pull-up" else 0.0
    R = float(range_m)

    az = float(bearing)
    pitch_program = shape == "depressed"
    kicks, t_cuts, rng, apo = _scan(missile, launch_lat, launch_lon, round(az, 4), lift_glide, lift_pullup,
                                    pitch_program)
    r_max, k_max, a_dep, a_loft = _envelope(kicks, rng[-1], apo[-1], R)
    if r_max < R and shape == "depressed":
        _raise_no_depressed(missile, launch_lat, launch_lon, bearing, rng, apo, R,
                            f"its pitch-and-hold boost reaches at most about {r_max / 1e3:.0f} km")
    if r_max < R:
        raise _bad("range_km", R / 1e3,
                   f"{missile} reaches at most about {r_max / 1e3:.0f} km from this site and bearing (model)")
    # Approximate minimum-energy curve: max over kick of each cut-off row.
    a_me, t_me, k_me, imax = _minimum_energy_curve(kicks, t_cuts, rng, apo, R)
    a_me, t_me, k_me = float(a_me), float(t_me), float(k_me)

    if shape == "lofted":
        # Lofted means above the minimum-energy apogee. Near it the coarse grid's value can be 30 %
        # low (Hwasong-14 at 8000 km: 682 km against 873 km solved), which let a lofted request
        # through that 'depressed' refused (new-user trial); the solved flight settles it. Far above
        # (twice the grid value) and inside the top no solve is needed; an error always quotes the
        # solved value (a third new-user trial saw [225, 6086] km for one request, [429, 6086] km for another).
        a_lo = a_me
        if apogee < 2.0 * a_me or apogee > a_loft:
            a_solved = _minimum_energy_apogee(missile, launch_lat, launch_lon, bearing, R)
            a_lo = a_solved if np.isfinite(a_solved) else a_me
        if not a_loft > a_lo:
            raise _bad("shape", "lofted",
                       f"{missile} flies no lofted trajectory to {R / 1e3:.0f} km (model): its highest apogee "
                       f"there, about {a_loft / 1e3:.0f} km, is not above the minimum-energy apogee, about "
                       f"{a_lo / 1e3:.0f} km; shape 'minimum-energy' or 'depressed'")
        if not (a_lo * 0.97 <= apogee <= a_loft):
            hint = " (below the minimum-energy apogee the flight is depressed)" if apogee < a_lo else ""
            raise _bad("apogee_km", apogee / 1e3,
                       f"{missile} lofted to {R / 1e3:.0f} km needs an apogee in about "
                       f"[{a_lo / 1e3:.0f}, {a_loft / 1e3:.0f}] km{hint}")
    if shape == "depressed":
        # Depressed means below the apogee of the minimum-energy flight (the gravity turn without
        # lift, as shape 'minimum-energy' flies it), not below the maximum-range apogee of the
        # pitch-and-hold program, which lies higher for a long burn (Hwasong-15 at 5000 km: about
        # 1015 km against 865 km). The lowest apogee is the lowest on the range contour of the
        # pitch-and-hold grid (not the full-burn row's: that one overshoots every range).
        a_me_solved = _minimum_energy_apogee(missile, launch_lat, launch_lon, bearing, R)
        a_me = a_me_solved if np.isfinite(a_me_solved) else a_me
        a_dep = _depressed_floor(rng, apo, R)
        if not a_dep < a_me:
            _raise_no_depressed(missile, launch_lat, launch_lon, bearing, rng, apo, R,
                                f"its pitch-and-hold boost, even with the thrust held horizontal, climbs to an "
                                f"apogee of at least about {a_dep / 1e3:.0f} km at that range, above the "
                                f"minimum-energy apogee of about {a_me / 1e3:.0f} km" if np.isfinite(a_dep) else
                                "no pitch-and-hold boost of the scan comes down at that range")
        # 1 % under the floor, as 3 % over the top: the floor is interpolated on the scan grid, and a
        # request at the printed (rounded) floor must not be refused (new-user trial: "[1080, 1081] km"
        # refused 1080); the solve then has the last word.
        if not (a_dep * 0.99 <= apogee <= a_me * 1.03):
            hint = " (above the minimum-energy apogee the flight is lofted)" if apogee > a_me else ""
            raise _bad("apogee_km", apogee / 1e3,
                       f"{missile} depressed to {R / 1e3:.0f} km needs an apogee in about "
                       f"[{a_dep / 1e3:.0f}, {a_me / 1e3:.0f}] km{hint}")

    if shape == "minimum-energy":
        p0 = np.array([k_me, t_me])
    else:
        # Start from the grid point nearest the request on the requested side of the max-range kick.
        err = (rng / R - 1.0) ** 2 + (apo / apogee - 1.0) ** 2
        side = (kicks[None, :] <= kicks[imax][:, None]) if shape == "lofted" else (kicks[None, :] >= kicks[imax][:, None])
        err = np.where(side & np.isfinite(err), err, np.inf)
        i, j = np.unravel_index(np.argmin(err), err.shape)
        p0 = np.array([kicks[j], t_cuts[i]])

    lat, lon = launch_lat, launch_lon
    p, out = _solve(m, lat, lon, az, R, shape, apogee, lift_glide, lift_pullup, p0)
    # Coriolis turns the gravity turn off the aim line: re-aim once so the impact lies on the bearing.
    # The deflection depends on the steering, so iterate (it converges in 2-3 passes).
    def miss(o):
        return np.radians(((o[3][0] - np.degrees(bearing)) + 180.0) % 360.0 - 180.0)

    tried = []
    for _ in range(4):
        d_az = miss(out)
        tried.append((az, d_az, p, out))
        if not (np.isfinite(d_az) and abs(d_az) > _AIM_TOL):
            break
        az = az - d_az
        p, out = _solve(m, lat, lon, az, R, shape, apogee, lift_glide, lift_pullup, p)
    else:
        # Unit slope did not converge in 4 passes. A miss under _AIM_DIVERGED (at most about 17 km at
        # 1,000 km) is kept as it is, so that the flights it flew before (the scenario files) do not move.
        if not abs(miss(out)) <= _AIM_DIVERGED:
            p, out, az = _reaim_secant(m, lat, lon, R, shape, apogee, lift_glide, lift_pullup, miss,
                                       tried + [(az, miss(out), p, out)])
    rng_f, apo_f, tof, azi, res, _ = out
    ok_r = abs(rng_f[0] / R - 1.0) <= RANGE_TOL
    ok_a = shape == "minimum-energy" or abs(apo_f[0] / apogee - 1.0) <= APOGEE_TOL
    if not ok_r and shape == "minimum-energy" and rng_f[0] > R:
        # The minimum-energy flight to a very short range burns for less than the shortest burn the
        # class allows; the old text listed lofted apogees, which say nothing here (new-user trial).
        raise _bad("range_km", R / 1e3,
                   f"{missile} minimum-energy to {R / 1e3:.0f} km could not be fitted: with its shortest burn "
                   f"the minimum-energy flight goes no shorter than about {rng_f[0] / 1e3:.0f} km (model); "
                   f"a lofted flight reaches shorter ranges")
    if not (ok_r and ok_a):
        what = f"range {rng_f[0] / 1e3:.0f} km" + ("" if shape == "minimum-energy" else f", apogee {apo_f[0] / 1e3:.0f} km")
        raise _bad("apogee_km" if shape != "minimum-energy" else "range_km",
                   (apogee if apogee is not None else R) / 1e3,
                   f"{missile} {shape} to {R / 1e3:.0f} km could not be fitted (best: {what}); "
                   f"feasible apogees about [{a_dep / 1e3:.0f}, "
                   f"{(a_me if shape == 'depressed' else a_loft) / 1e3:.0f}] km")
    ilat, ilon, _ = ecef_to_geodetic(res.impact_state[0, :3])
    return Nominal(
        missile=missile, launch_lat=float(launch_lat), launch_lon=float(launch_lon), azimuth=float(az),
        kick=float(p[0]), t_cut=float(p[1]), lift_glide=float(lift_glide), lift_pullup=float(lift_pullup),
        pitch_program=pitch_program,
        range=float(rng_f[0]), apogee=float(apo_f[0]), flight_time=float(tof[0]),
        burnout_speed=float(np.linalg.norm(res.burnout_state[0, 3:])), max_speed=float(res.max_speed[0]),
        impact_lat=float(ilat), impact_lon=float(ilon), shape=shape, maneuver=maneuver,
    )


def nominal_for_threat(threat) -> Nominal:
    """Solve the nominal flight of a :class:`sim.config.ThreatConfig` (bearing/range or target point)."""
    bearing, rng = _bearing_range(threat.launch_lat, threat.launch_lon, threat.bearing, threat.range,
                                  threat.target_lat, threat.target_lon, "threat")
    return solve_nominal(threat.missile, float(threat.launch_lat), float(threat.launch_lon), bearing, rng,
                         threat.shape, threat.apogee, threat.maneuver)


def _bearing_range(lat, lon, bearing, rng, tlat, tlon, where):
    """(bearing rad, range m) from either bearing+range or a target point (rad)."""
    if tlat is not None and tlon is not None:
        if bearing is not None or rng is not None:
            raise _bad(f"{where}.bearing_deg", bearing, "give either bearing and range or a target point, not both")
        a, d = geodesic_inverse(np.degrees(lat), np.degrees(lon), np.degrees(tlat), np.degrees(tlon))
        return float(np.radians(a)), float(d)
    if bearing is None or rng is None:
        raise _bad(f"{where}.range_km", rng, "give bearing and range, or a target latitude and longitude")
    if not np.isfinite(bearing):
        raise _bad(f"{where}.bearing_deg", bearing, "a finite bearing in degrees")
    return float(np.mod(bearing, 2 * np.pi)), float(rng)


def flight_summary(missile: str, launch_lat_deg, launch_lon_deg, *, bearing_deg=None, range_km=None,
                   target_lat_deg=None, target_lon_deg=None, shape="minimum-energy", apogee_km=None) -> dict:
    """Solve one nominal flight and summarize it (for the CLI).

    Parameters
    ----------
    missile : str
        Catalog key.
    launch_lat_deg, launch_lon_deg : float
        Launch point, degrees.
    bearing_deg, range_km : float, optional
        Aim bearing (degrees from north) and ground range (km); or
    target_lat_deg, target_lon_deg : float, optional
        a target point (degrees).
    shape : str
        ``"minimum-energy"``, ``"lofted"`` or ``"depressed"``.
    apogee_km : float, optional
        Apogee for lofted and depressed shapes, km.

    Returns
    -------
    dict
        Exactly ``flight_time_s``, ``apogee_km``, ``range_km``, ``burnout_time_s``,
        ``burnout_speed_mps``, ``max_speed_mps``, ``impact_lat_deg``,
        ``impact_lon_deg`` (plain floats).

    Raises
    ------
    sim.errors.InputError
        Bad or infeasible request.
    """
    try:
        lat = float(launch_lat_deg)
        lon = float(launch_lon_deg)
    except (TypeError, ValueError):
        raise _bad("launch_lat_deg", (launch_lat_deg, launch_lon_deg), "numbers in degrees") from None
    if not (np.isfinite(lat) and -90 <= lat <= 90):
        raise _bad("launch_lat_deg", launch_lat_deg, "a latitude in [-90, 90] degrees")
    if not (np.isfinite(lon) and -360 <= lon <= 360):
        raise _bad("launch_lon_deg", launch_lon_deg, "a longitude in [-180, 360] degrees")
    for name, v in (("bearing_deg", bearing_deg), ("range_km", range_km), ("target_lat_deg", target_lat_deg),
                    ("target_lon_deg", target_lon_deg), ("apogee_km", apogee_km)):
        if v is not None and not (isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v)):
            raise _bad(name, v, "a finite number")
    bearing, rng = _bearing_range(
        np.radians(lat), np.radians(lon),
        None if bearing_deg is None else np.radians(float(bearing_deg)),
        None if range_km is None else float(range_km) * 1e3,
        None if target_lat_deg is None else np.radians(float(target_lat_deg)),
        None if target_lon_deg is None else np.radians(float(target_lon_deg)), "flight")
    nom = solve_nominal(missile, float(np.radians(lat)), float(np.radians(lon)), bearing, rng, shape,
                        None if apogee_km is None else float(apogee_km) * 1e3, "none")
    return {
        "flight_time_s": float(nom.flight_time),
        "apogee_km": float(nom.apogee / 1e3),
        "range_km": float(nom.range / 1e3),
        "burnout_time_s": float(nom.t_cut),
        "burnout_speed_mps": float(nom.burnout_speed),
        "max_speed_mps": float(nom.max_speed),
        "impact_lat_deg": float(np.degrees(nom.impact_lat)),
        "impact_lon_deg": float(((np.degrees(nom.impact_lon) + 180.0) % 360.0) - 180.0),
    }
